"""Which worker runs which job: the router's logic, with no sockets and no clock (sans-I/O).

The router feeds a ``Dispatcher`` the messages it receives and the time ``now``; the dispatcher
queues what to send in ``outbox``, names the workers it declared dead in ``declared_dead``, and
says in ``next_timer()`` when it wants ``handle_timer(now)``. Tests drive it directly, exactly.

Policy: a worker runs one job at a time, so a job goes to a free live worker of its service,
the one idle longest (least-loaded, then round-robin); further jobs wait here, where a dead
worker cannot take them down with it. When a worker dies, each of its jobs that is
retryable, has not relayed a reply yet and has attempts left moves to another worker; every
other job ends with an ``error`` naming the worker and the cause. A client never waits forever.
"""

import enum
import logging
from collections import Counter, deque
from dataclasses import dataclass, field

from parley.appliance.bus.messages import ErrorCode, Message, Sequencer

log = logging.getLogger("parley.bus.dispatch")


class Peer(enum.Enum):
    CLIENT = "client"
    WORKER = "worker"


@dataclass(frozen=True)
class Outgoing:
    """A message for the router to send to one peer."""

    peer: Peer
    identity: bytes
    message: Message


@dataclass(eq=False)
class WorkerState:
    identity: bytes
    service: str
    name: str
    pid: int
    interval: float
    """The worker's own heartbeat interval, from its announcement."""
    expires_at: float
    jobs: set = field(default_factory=set)
    """request_ids in flight on this worker."""
    idle_since: float = 0.0
    served: int = 0


@dataclass(eq=False)
class Job:
    request_id: str
    client: bytes
    request: Message
    deadline: float
    """When a queued job gives up waiting for a free worker."""
    worker: bytes | None = None
    replies: int = 0
    attempts: int = 1
    cancelling: bool = False

    @property
    def service(self):
        return self.request.body["service"]


@dataclass(frozen=True)
class LostWorker:
    """A worker the dispatcher stopped using, and why."""

    name: str
    pid: int
    service: str
    reason: str


class Dispatcher:
    """The router's state: live workers, queued and running jobs, services that are down."""

    def __init__(self, *, heartbeat_liveness=3, failover_attempts=1):
        self.heartbeat_liveness = heartbeat_liveness
        self.failover_attempts = failover_attempts
        self.outbox: deque[Outgoing] = deque()
        self.declared_dead: deque[LostWorker] = deque()
        """Workers that went silent; the router kills the process if it supervises it."""
        self.lost: deque[LostWorker] = deque(maxlen=50)
        self.counters = Counter()
        self.workers: dict[bytes, WorkerState] = {}
        self.jobs: dict[str, Job] = {}
        self.queues: dict[str, deque[Job]] = {}
        self.down: dict[str, str] = {}
        """Services whose every worker slot gave up, with the reason to tell clients."""
        self._sequencer = Sequencer()

    # ---- input from workers -------------------------------------------------------------
    def worker_message(self, identity, message, now):
        worker = self.workers.get(identity)
        if message.type in ("worker_ready", "heartbeat"):
            self._announced(identity, worker, message, now)
            return
        if worker is None:
            log.warning("unknown_worker_message identity=%r message=%s: ignored until it announces itself", identity, message)
            return
        worker.expires_at = now + worker.interval * self.heartbeat_liveness
        if message.type not in ("reply", "done", "error"):
            log.warning("unexpected_message from=worker worker=%s message=%s", worker.name, message)
            return
        job = self.jobs.get(message.body["request_id"])
        if job is None or job.worker != identity:
            log.info("stale_job_message worker=%s message=%s request_id=%s: job ended or moved", worker.name, message, message.body["request_id"])
            return
        self._send(Peer.CLIENT, job.client, message)
        if message.type == "reply":
            job.replies += 1
        else:
            worker.served += message.type == "done"
            self._finish(job, now)

    def _announced(self, identity, worker, message, now):
        body = message.body
        if worker is None:
            worker = WorkerState(identity, body["service"], body["worker"], body["pid"], body["interval_ms"] / 1000, now, idle_since=now)
            self.workers[identity] = worker
            self.down.pop(worker.service, None)
            log.info("worker_up worker=%s service=%s pid=%d via=%s", worker.name, worker.service, worker.pid, message.type)
        worker.expires_at = now + worker.interval * self.heartbeat_liveness
        self._dispatch(worker.service, now)

    # ---- input from clients -------------------------------------------------------------
    def client_message(self, identity, message, now):
        if message.type == "request":
            self._submit(identity, message, now)
        elif message.type == "cancel":
            self.cancel(message, now)
        else:
            log.warning("unexpected_message from=client identity=%r message=%s", identity, message)
            self._send(Peer.CLIENT, identity, self._error(message, "", ErrorCode.MALFORMED,
                       f"a client may send request or cancel, not {message.type}"))

    def _submit(self, client, request, now):
        request_id, service = request.body["request_id"], request.body["service"]
        if request_id in self.jobs:
            self._send(Peer.CLIENT, client, self._error(request, request_id, ErrorCode.MALFORMED,
                       f"request_id {request_id} is already in flight: use a fresh id per request"))
            return
        if service in self.down and not self._live(service):
            self._send(Peer.CLIENT, client, self._error(request, request_id, ErrorCode.SERVICE_DOWN, self.down[service]))
            return
        job = Job(request_id, client, request, now + request.body["timeout_ms"] / 1000)
        self.jobs[request_id] = job
        self.queues.setdefault(service, deque()).append(job)
        log.debug("job_queued request_id=%s service=%s call_id=%s turn_id=%s", request_id, service, request.call_id, request.turn_id)
        self._dispatch(service, now)

    def cancel(self, cancel, now):
        """Drop matching queued jobs (data yields to an interruption) and tell workers to stop the rest."""
        wanted = cancel.body.get("request_id")
        for job in list(self.jobs.values()):
            inner = job.request
            if wanted is not None:
                if job.request_id != wanted:
                    continue
            elif inner.call_id != cancel.call_id or cancel.turn_id not in (None, inner.turn_id):
                continue
            if job.worker is None:
                self.queues[job.service].remove(job)
                self._send(Peer.CLIENT, job.client, self._error(inner, job.request_id, ErrorCode.CANCELLED,
                           f"cancelled before a worker took it ({cancel.body['reason']})"))
                del self.jobs[job.request_id]
            elif not job.cancelling:
                job.cancelling = True
                order = self._sequencer.make("cancel", {"reason": cancel.body["reason"], "request_id": job.request_id},
                                             call_id=inner.call_id, turn_id=inner.turn_id)
                self._send(Peer.WORKER, job.worker, order)
            log.info("job_cancel request_id=%s call_id=%s turn_id=%s reason=%s", job.request_id, inner.call_id, inner.turn_id, cancel.body["reason"])

    # ---- input from the supervisor and the sockets --------------------------------------
    def worker_lost(self, identity, reason, now):
        """The worker is gone (its process exited, or it cannot be reached): move or fail its jobs."""
        worker = self.workers.pop(identity, None)
        if worker is None:
            return
        lost = LostWorker(worker.name, worker.pid, worker.service, reason)
        self.lost.append(lost)
        self.counters["workers_lost"] += 1
        log.warning("worker_lost worker=%s service=%s pid=%d reason=%s jobs=%d", worker.name, worker.service, worker.pid, reason, len(worker.jobs))
        for request_id in sorted(worker.jobs):
            job = self.jobs[request_id]
            job.worker = None
            if job.request.body["retryable"] and not job.replies and not job.cancelling and job.attempts <= self.failover_attempts:
                job.attempts += 1
                job.deadline = now + job.request.body["timeout_ms"] / 1000
                self.queues.setdefault(job.service, deque()).appendleft(job)
                self.counters["failovers"] += 1
                log.warning("job_failover request_id=%s service=%s from=%s call_id=%s turn_id=%s", request_id, job.service, worker.name,
                            job.request.call_id, job.request.turn_id)
            else:
                why = ("it is not retryable" if not job.request.body["retryable"] else
                       f"{job.replies} replies were already relayed" if job.replies else
                       "it was being cancelled" if job.cancelling else f"it already ran on {job.attempts} workers")
                self._send(Peer.CLIENT, job.client, self._error(job.request, request_id, ErrorCode.WORKER_DIED,
                           f"{worker.service} worker {worker.name} (pid {worker.pid}) died running it: {reason}; "
                           f"not moved to another worker because {why}: retry the turn or hand the call off",
                           worker=worker.name))
                del self.jobs[request_id]
        self._dispatch(worker.service, now)
        return lost

    def process_exited(self, name, pid, reason, now):
        """A supervised process ended; the worker it ran (if it announced itself) is lost."""
        for identity, worker in list(self.workers.items()):
            if worker.name == name and worker.pid == pid:
                self.worker_lost(identity, reason, now)

    def service_down(self, service, reason):
        """No worker of ``service`` will come back; fail what waits for one and refuse new jobs."""
        self.down[service] = reason
        if self._live(service):
            return
        for job in self.queues.pop(service, ()):
            self._send(Peer.CLIENT, job.client, self._error(job.request, job.request_id, ErrorCode.SERVICE_DOWN, reason))
            del self.jobs[job.request_id]

    # ---- time ---------------------------------------------------------------------------
    def next_timer(self):
        times = [w.expires_at for w in self.workers.values()]
        times += [job.deadline for queue in self.queues.values() for job in queue]
        return min(times, default=None)

    def handle_timer(self, now):
        for identity, worker in list(self.workers.items()):
            if now >= worker.expires_at:
                lost = self.worker_lost(identity, f"missed {self.heartbeat_liveness} heartbeats ({worker.interval:g} s apart)", now)
                self.declared_dead.append(lost)
        for service, queue in self.queues.items():
            for job in [job for job in queue if now >= job.deadline]:
                queue.remove(job)
                del self.jobs[job.request_id]
                live = self._live(service)
                why = (f"all {len(live)} {service} workers stayed busy" if live else
                       f"no {service} worker was alive: check that one is configured and starting")
                self._send(Peer.CLIENT, job.client, self._error(job.request, job.request_id,
                           ErrorCode.TIMEOUT if live else ErrorCode.NO_WORKER,
                           f"waited {job.request.body['timeout_ms']} ms for a free {service} worker; {why}"))

    # ---- internals ----------------------------------------------------------------------
    def _live(self, service):
        return [w for w in self.workers.values() if w.service == service]

    def _dispatch(self, service, now):
        queue = self.queues.get(service)
        while queue:
            free = [w for w in self._live(service) if not w.jobs]
            if not free:
                return
            worker = min(free, key=lambda w: w.idle_since)
            job = queue.popleft()
            job.worker = worker.identity
            worker.jobs.add(job.request_id)
            self._send(Peer.WORKER, worker.identity, job.request)
            log.debug("job_dispatched request_id=%s worker=%s attempt=%d", job.request_id, worker.name, job.attempts)

    def _finish(self, job, now):
        del self.jobs[job.request_id]
        worker = self.workers.get(job.worker)
        if worker is not None:
            worker.jobs.discard(job.request_id)
            worker.idle_since = now
            self._dispatch(worker.service, now)

    def _error(self, about, request_id, code, reason, worker=None):
        body = {"request_id": request_id, "code": str(code), "reason": reason, "worker": worker}
        return self._sequencer.make("error", body, call_id=about.call_id, turn_id=about.turn_id)

    def _send(self, peer, identity, message):
        self.outbox.append(Outgoing(peer, identity, message))
