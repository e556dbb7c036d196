"""The base of every model worker: connect to the router, take jobs, stream replies, stay alive.

Two threads, one socket owner. The thread that calls ``run()`` owns the DEALER socket: it
receives jobs, acts on ``cancel`` and ``shutdown`` the moment they arrive (system messages jump
the job queue), forwards replies, and sends a heartbeat every interval. Handlers run in a
second thread and pass their replies back over an inproc pipe. So a slow inference (which
releases the GIL in onnxruntime or llama.cpp) never delays a heartbeat, and the worker does not
look dead while it thinks; a handler that holds the GIL in pure Python still yields it every
few milliseconds. A worker that truly hangs (a native call stuck holding the GIL) stops
heart-beating and is declared dead, which is the right outcome.
"""

import logging
import os
import secrets
import threading
import time
from collections import deque

import zmq

from parley.appliance.bus.messages import ErrorCode, MalformedMessage, Message, Sequencer, decode, encode
from parley.appliance.bus.settings import BusTiming

log = logging.getLogger("parley.bus.worker")


class _Job:
    def __init__(self, request):
        self.request = request
        self.request_id = request.body["request_id"]
        self.cancelled = threading.Event()
        self.cancel_reason = ""


class Worker:
    """Subclass, set ``service``, override ``handle`` (and ``setup`` to load models), then ``run()``."""

    service = ""
    """The service this worker offers: "stt", "tts", "agent", ..."""

    def __init__(self, endpoint, *, name=None, heartbeat_interval=BusTiming.heartbeat_interval, parent_pid=None, context=None):
        if not self.service:
            raise TypeError(f"{type(self).__name__} must set the class attribute `service` (e.g. service = \"stt\")")
        self.endpoint = endpoint
        self.name = name or f"{self.service}-{os.getpid()}"
        self.identity = f"{self.name}/{secrets.token_hex(3)}".encode()
        self.heartbeat_interval = heartbeat_interval
        self.parent_pid = parent_pid
        """Exit when this process is no longer our parent (the supervisor died)."""
        self.malformed = 0
        """Frames rejected since start."""
        self._context = context or zmq.Context.instance()
        self._sequencer = Sequencer()
        self._stop = threading.Event()
        self._lock = threading.Condition()
        self._queue = deque()
        self._jobs = {}
        self._current = None
        self._after_job = None

    # ---- to override --------------------------------------------------------------------
    def setup(self):
        """Load models; runs in ``run()`` before the worker announces itself ready."""

    def handle(self, message, audio):
        """Run one job; return or yield the replies (Messages from ``self.reply``).

        A generator streams: each reply is sent as it is yielded, and after a cancel the
        generator is closed at its next yield. A long blocking step should check ``self.cancelled``.
        """
        raise NotImplementedError(f"{type(self).__name__}.handle() must be overridden")

    # ---- for handlers -------------------------------------------------------------------
    @property
    def cancelled(self) -> threading.Event:
        """Set when the job being handled is cancelled (barge-in, client gone, shutdown)."""
        return self._current.cancelled

    def after_job(self, work):
        """Have ``work(stop)`` run once the job being handled has ended and its ``done`` is sent, on
        the handler thread, while the worker would otherwise be idle: work that makes the next job
        faster. ``stop()`` turns true as soon as another job is waiting or the worker is stopping;
        ``work`` checks it often and returns then. Its failures are logged, never sent."""
        self._after_job = work

    def job_waiting(self):
        """Whether another job is waiting for this worker (or it is stopping): a handler doing optional
        work checks it and gives way."""
        return bool(self._queue) or self._stop.is_set()

    def reply(self, request, type, body=None, *, audio=None) -> Message:
        """A reply to ``request``, on its call and turn, stamped by this worker."""
        return self._sequencer.make(type, body, call_id=request.call_id, turn_id=request.turn_id, audio=audio)

    # ---- running ------------------------------------------------------------------------
    def stop(self):
        """Ask ``run()`` to return (within one heartbeat interval); thread-safe."""
        self._stop.set()

    def run(self):
        self.setup()
        dealer = self._context.socket(zmq.DEALER)
        dealer.setsockopt(zmq.IDENTITY, self.identity)
        dealer.linger = 1000
        dealer.connect(self.endpoint)
        pipe_address = f"inproc://parley-worker-{id(self)}"
        replies = self._context.socket(zmq.PAIR)
        replies.bind(pipe_address)
        handler_thread = threading.Thread(target=self._handle_jobs, args=(pipe_address,), name=f"{self.name}-handler", daemon=True)
        handler_thread.start()
        self._announce(dealer, "worker_ready")
        log.info("worker_ready worker=%s service=%s pid=%d endpoint=%s", self.name, self.service, os.getpid(), self.endpoint)
        poller = zmq.Poller()
        poller.register(dealer, zmq.POLLIN)
        poller.register(replies, zmq.POLLIN)
        next_beat = time.monotonic() + self.heartbeat_interval
        try:
            while not self._stop.is_set():
                timeout_ms = max(0.0, next_beat - time.monotonic()) * 1000
                for socket, _ in poller.poll(timeout_ms):
                    if socket is dealer:
                        self._receive(dealer.recv_multipart(copy=False))
                    else:
                        self._send(dealer, replies.recv_multipart(copy=False))
                if time.monotonic() >= next_beat:
                    self._announce(dealer, "heartbeat")
                    next_beat = time.monotonic() + self.heartbeat_interval
                    if self.parent_pid is not None and os.getppid() != self.parent_pid:
                        log.warning("worker_orphaned worker=%s parent_pid=%d: the supervisor is gone, exiting", self.name, self.parent_pid)
                        self._stop.set()
        finally:
            self._shut_down(handler_thread, dealer, replies)

    def _announce(self, dealer, type):
        body = {"service": self.service, "worker": self.name, "pid": os.getpid(), "interval_ms": round(self.heartbeat_interval * 1000)}
        self._send(dealer, encode(self._sequencer.make(type, body)))

    def _send(self, dealer, frames):
        """Send without blocking: with the router gone, queued heartbeats and replies are worthless,
        and a blocked loop could not notice that its supervisor died."""
        try:
            dealer.send_multipart(frames, zmq.NOBLOCK, copy=False)
        except zmq.Again:
            log.warning("send_dropped worker=%s reason=router unreachable, queue full", self.name)

    def _receive(self, frames):
        try:
            message = decode(frames)
        except MalformedMessage as exc:
            self.malformed += 1
            log.warning("malformed_frame receiver=worker worker=%s frames=%d reason=%s", self.name, len(frames), exc)
            return
        if message.type == "request":
            job = _Job(message)
            with self._lock:
                self._jobs[job.request_id] = job
                self._queue.append(job)
                self._lock.notify()
        elif message.type == "cancel":
            self._cancel(message)
        elif message.type == "shutdown":
            log.info("worker_shutdown worker=%s reason=%s", self.name, message.body["reason"])
            self._stop.set()
        else:
            log.warning("unexpected_message receiver=worker worker=%s message=%s", self.name, message)

    def _cancel(self, cancel):
        wanted = cancel.body.get("request_id")
        with self._lock:
            for job in self._jobs.values():
                inner = job.request
                if (wanted == job.request_id if wanted is not None else
                        inner.call_id == cancel.call_id and cancel.turn_id in (None, inner.turn_id)):
                    job.cancel_reason = cancel.body["reason"]
                    job.cancelled.set()
                    log.info("job_cancelled worker=%s request_id=%s call_id=%s turn_id=%s reason=%s",
                             self.name, job.request_id, inner.call_id, inner.turn_id, job.cancel_reason)

    def _handle_jobs(self, pipe_address):
        pipe = self._context.socket(zmq.PAIR)
        pipe.linger = 1000
        pipe.connect(pipe_address)
        try:
            while True:
                with self._lock:
                    while not self._queue and not self._stop.is_set():
                        self._lock.wait()
                    if not self._queue:
                        return
                    job = self._queue.popleft()
                self._current = job
                try:
                    self._run_job(job, pipe)
                finally:
                    with self._lock:
                        del self._jobs[job.request_id]
                work, self._after_job = self._after_job, None
                if work is not None:
                    self._run_after_job(work)
        finally:
            pipe.close()

    def _run_after_job(self, work):
        try:
            work(self.job_waiting)
        except Exception:
            log.exception("after_job_failed worker=%s", self.name)

    def _run_job(self, job, pipe):
        request, inner = job.request, job.request.body["message"]

        def end(kind, **body):
            pipe.send_multipart(encode(self._sequencer.make(kind, {"request_id": job.request_id, **body},
                                                            call_id=request.call_id, turn_id=request.turn_id)), copy=False)

        started = time.monotonic()
        try:
            replies = () if job.cancelled.is_set() else self.handle(inner, inner.audio)
            for reply in replies or ():
                if job.cancelled.is_set():
                    if hasattr(replies, "close"):
                        replies.close()
                    break
                if not isinstance(reply, Message):
                    raise TypeError(f"handle() produced {type(reply).__name__}; produce Messages made with self.reply(...)")
                pipe.send_multipart(encode(self._sequencer.wrap("reply", reply, request_id=job.request_id)), copy=False)
        except Exception as exc:
            log.exception("handler_failed worker=%s request_id=%s call_id=%s turn_id=%s message=%s",
                          self.name, job.request_id, inner.call_id, inner.turn_id, inner)
            end("error", code=str(ErrorCode.HANDLER_FAILED), reason=f"{self.name} failed on {inner.type}: {type(exc).__name__}: {exc}",
                 worker=self.name)
            return
        if job.cancelled.is_set():
            end("error", code=str(ErrorCode.CANCELLED), reason=f"cancelled ({job.cancel_reason})", worker=self.name)
        else:
            end("done")
        log.debug("job_done worker=%s request_id=%s call_id=%s turn_id=%s seconds=%.3f cancelled=%s",
                  self.name, job.request_id, inner.call_id, inner.turn_id, time.monotonic() - started, job.cancelled.is_set())

    def _shut_down(self, handler_thread, dealer, replies):
        with self._lock:
            self._stop.set()
            for job in self._jobs.values():
                job.cancel_reason = "worker stopping"
                job.cancelled.set()
            self._lock.notify_all()
        handler_thread.join(timeout=self.heartbeat_interval)
        while replies.poll(0):
            self._send(dealer, replies.recv_multipart(copy=False))
        replies.close()
        dealer.close()
        log.info("worker_stopped worker=%s", self.name)
