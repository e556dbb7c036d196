"""The broker between clients and model workers, and the supervisor of local worker processes.

A thin adapter: one thread owns two ROUTER sockets (workers, clients) and the pidfds of the
supervised processes, and feeds what arrives to the sans-I/O ``Dispatcher`` and ``Supervisor``.
Sends never block the loop: a peer whose queue is full, or that has gone, loses that message
(logged), and a worker that cannot be reached is treated as dead.
"""

import dataclasses
import errno
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

import zmq

from parley.appliance.bus.dispatch import Dispatcher, LostWorker, Peer
from parley.appliance.bus.messages import Behaviour, ErrorCode, MalformedMessage, Sequencer, decode, encode
from parley.appliance.bus.settings import BusTiming, EndpointError, bind
from parley.appliance.bus.supervision import ProcessExit, Supervisor

log = logging.getLogger("parley.bus.router")


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    service: str
    pid: int
    jobs: int
    """Jobs in flight (0 or 1)."""
    served: int
    """Jobs finished with ``done``."""


@dataclass(frozen=True)
class RouterStatus:
    """A snapshot taken by the router thread after each turn of its loop; safe to read anywhere."""

    workers: tuple[WorkerInfo, ...] = ()
    lost: tuple[LostWorker, ...] = ()
    """Recently lost workers with the cause, oldest first."""
    exits: tuple[ProcessExit, ...] = ()
    """Recent exits of supervised processes, with their output tails."""
    services_down: dict = dataclasses.field(default_factory=dict)
    queued: int = 0
    malformed: int = 0
    failovers: int = 0
    restarts: int = 0

    def live(self, service):
        return [w for w in self.workers if w.service == service]


class WorkerRouter:
    """Routes jobs from ``BusClient``s to ``Worker``s and keeps supervised workers running."""

    def __init__(self, endpoints, *, timing=BusTiming(), context=None):
        self.endpoints = endpoints
        """Where it listens; wildcard tcp ports are resolved once started."""
        self.timing = timing
        self._context = context or zmq.Context.instance()
        self._specs = []
        self._dispatcher = Dispatcher(heartbeat_liveness=timing.heartbeat_liveness, failover_attempts=timing.failover_attempts)
        self._supervisor = None
        self._sequencer = Sequencer()
        self._malformed = 0
        self._exits = deque(maxlen=20)
        self._status = RouterStatus()
        self._thread = None

    def supervise(self, spec):
        """Keep ``spec.replicas`` processes of a worker running; call before ``start()``."""
        if self._thread is not None:
            raise RuntimeError("supervise() must be called before start()")
        self._specs.append(spec)

    def start(self):
        """Bind, then serve in a background thread; returns once the sockets are bound."""
        self._workers, workers = self._listen(self.endpoints.workers)
        self._clients, clients = self._listen(self.endpoints.clients)
        self.endpoints = dataclasses.replace(self.endpoints, workers=workers, clients=clients)
        self._supervisor = Supervisor(self.endpoints.workers, self.timing)
        for spec in self._specs:
            self._supervisor.add(spec)
        wake_address = f"inproc://parley-router-wake-{id(self)}"
        self._wake = self._context.socket(zmq.PAIR)
        self._wake.bind(wake_address)
        self._waker = self._context.socket(zmq.PAIR)
        self._waker.connect(wake_address)
        self._thread = threading.Thread(target=self._serve, name="bus-router", daemon=True)
        self._thread.start()
        log.info("router_started workers=%s clients=%s supervised=%s", self.endpoints.workers, self.endpoints.clients,
                 ",".join(sorted(self._supervisor.slots)) or "none")
        return self

    def stop(self):
        """Shut the supervised workers down, then close; blocks up to ``timing.stop_grace``."""
        if self._thread is None:
            return
        self._waker.send(b"stop")
        self._thread.join()
        self._waker.close()
        self._thread = None

    def status(self) -> RouterStatus:
        return self._status

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    # ---- the router thread --------------------------------------------------------------
    def _listen(self, endpoint):
        socket = self._context.socket(zmq.ROUTER)
        socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        socket.linger = 0
        try:
            return socket, bind(socket, endpoint)
        except EndpointError:
            socket.close()
            raise

    def _serve(self):
        poller = zmq.Poller()
        for socket in (self._workers, self._clients, self._wake):
            poller.register(socket, zmq.POLLIN)
        try:
            while True:
                now = time.monotonic()
                for pidfd in self._supervisor.start_due(now):
                    poller.register(pidfd, zmq.POLLIN)
                ready = dict(poller.poll(self._poll_timeout_ms(now)))
                now = time.monotonic()
                if self._wake in ready:
                    break
                if self._workers in ready:
                    self._drain(self._workers, Peer.WORKER, now)
                if self._clients in ready:
                    self._drain(self._clients, Peer.CLIENT, now)
                for pidfd in [fd for fd in self._supervisor.watched() if fd in ready]:
                    poller.unregister(pidfd)
                    self._process_exited(self._supervisor.reap(pidfd, now), now)
                self._dispatcher.handle_timer(now)
                while self._dispatcher.declared_dead:
                    lost = self._dispatcher.declared_dead.popleft()
                    self._supervisor.kill(lost.name, lost.pid)
                self._publish_status()  # before the flush: whoever hears of a change sees it in status()
                self._flush(now)
        except Exception:
            log.exception("router_failed: the bus is down; restart the appliance")
            raise
        finally:
            self._shut_down()

    def _poll_timeout_ms(self, now):
        timers = [t for t in (self._dispatcher.next_timer(), self._supervisor.next_timer()) if t is not None]
        if not timers:
            return None
        return max(0.0, min(timers) - now) * 1000 + 1  # +1 ms: wake after the deadline, not just before

    def _drain(self, socket, peer, now):
        for _ in range(1000):  # then let the other socket have a turn
            try:
                frames = socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            identity = frames[0].bytes
            try:
                message = decode(frames[1:])
            except MalformedMessage as exc:
                self._malformed += 1
                log.warning("malformed_frame receiver=router from=%s identity=%r frames=%d reason=%s", peer.value, identity, len(frames) - 1, exc)
                if peer is Peer.CLIENT:
                    error = self._sequencer.make("error", {"request_id": "", "code": str(ErrorCode.MALFORMED),
                                                           "reason": f"the router could not read your message: {exc}", "worker": None})
                    self._send(self._clients, Peer.CLIENT, identity, error, now)
                continue
            if peer is Peer.WORKER:
                self._dispatcher.worker_message(identity, message, now)
            else:
                self._dispatcher.client_message(identity, message, now)

    def _process_exited(self, exit, now):
        self._exits.append(exit)
        self._dispatcher.process_exited(exit.name, exit.pid, exit.reason, now)
        if exit.restart_at is None and self._supervisor.service_gave_up(exit.service):
            last_line = exit.output_tail.splitlines()[-1] if exit.output_tail else "no output"
            self._dispatcher.service_down(
                exit.service,
                f"service {exit.service} is down: its workers keep crashing ({exit.reason}; last output: {last_line}); "
                "fix the cause (the worker_crash_loop log has the output tail), then restart the appliance",
            )

    def _flush(self, now):
        outbox = self._dispatcher.outbox
        while outbox:
            out = outbox.popleft()
            socket = self._workers if out.peer is Peer.WORKER else self._clients
            self._send(socket, out.peer, out.identity, out.message, now)

    def _send(self, socket, peer, identity, message, now):
        try:
            socket.send_multipart([identity, *encode(message)], zmq.NOBLOCK, copy=False)
        except zmq.Again:
            level = logging.ERROR if message.kind.behaviour is Behaviour.SYSTEM else logging.WARNING
            log.log(level, "send_dropped to=%s identity=%r message=%s reason=queue full", peer.value, identity, message)
        except zmq.ZMQError as exc:
            if exc.errno != errno.EHOSTUNREACH:
                raise
            log.warning("send_dropped to=%s identity=%r message=%s reason=peer gone", peer.value, identity, message)
            if peer is Peer.WORKER:
                self._dispatcher.worker_lost(identity, "its connection to the router is gone", now)

    def _publish_status(self):
        d = self._dispatcher
        self._status = RouterStatus(
            workers=tuple(WorkerInfo(w.name, w.service, w.pid, len(w.jobs), w.served) for w in d.workers.values()),
            lost=tuple(d.lost),
            exits=tuple(self._exits),
            services_down=dict(d.down),
            queued=sum(len(q) for q in d.queues.values()),
            malformed=self._malformed,
            failovers=d.counters["failovers"],
            restarts=self._supervisor.restarts,
        )

    def _shut_down(self):
        running = self._supervisor.running()
        told = set()
        for worker in self._dispatcher.workers.values():
            if running.get(worker.name) == worker.pid:
                shutdown = self._sequencer.make("shutdown", {"reason": "the router is stopping"})
                self._send(self._workers, Peer.WORKER, worker.identity, shutdown, time.monotonic())
                told.add(worker.name)
        self._supervisor.stop(self.timing.stop_grace, told)
        for socket in (self._workers, self._clients, self._wake):
            socket.close()
        log.info("router_stopped")
