"""How the rest of the appliance asks a worker for something: ``BusClient.request`` / ``stream``.

A client is one DEALER socket to the router, so it belongs to one thread (ZeroMQ sockets are
not thread-safe); give each thread, or each asyncio adapter, its own. Every wait has a
deadline: a job ends with its replies, or with one of the typed errors below, never a hang.
"""

import dataclasses
import itertools
import logging
import secrets
import time
from collections import deque

import zmq

from parley.appliance.bus.messages import ErrorCode, MalformedMessage, Sequencer, decode, encode
from parley.appliance.bus.settings import BusTiming

log = logging.getLogger("parley.bus.client")

BACKSTOP = 0.25
"""Seconds a client waits beyond its timeout: the router answers a job that found no worker in
time itself, so the client's own deadline only catches a router that is gone."""


class BusError(RuntimeError):
    """A job ended without its result; the message says what happened and what to do."""

    code = None

    def __init__(self, reason, *, request_id="", worker=None):
        super().__init__(reason)
        self.request_id = request_id
        self.worker = worker
        """The worker's name, when one was involved."""


class WorkerDied(BusError):
    code = ErrorCode.WORKER_DIED


class NoWorkerAvailable(BusError):
    code = ErrorCode.NO_WORKER


class ServiceDown(BusError):
    code = ErrorCode.SERVICE_DOWN


class HandlerFailed(BusError):
    code = ErrorCode.HANDLER_FAILED


class RequestCancelled(BusError):
    code = ErrorCode.CANCELLED


class RequestTimeout(BusError):
    code = ErrorCode.TIMEOUT


class RequestRejected(BusError):
    """The router could not read the request: a bug in the sender, not a passing fault."""

    code = ErrorCode.MALFORMED


ERRORS = {cls.code: cls for cls in (WorkerDied, NoWorkerAvailable, ServiceDown, HandlerFailed, RequestCancelled, RequestTimeout, RequestRejected)}


class BusClient:
    def __init__(self, endpoint, *, name="client", timing=BusTiming(), context=None):
        self.timing = timing
        self._socket = (context or zmq.Context.instance()).socket(zmq.DEALER)
        self._socket.linger = 0
        self._socket.connect(endpoint)
        self._ids = (f"{name}.{secrets.token_hex(4)}-{n}" for n in itertools.count(1))
        self._sequencer = Sequencer()
        self._pending: dict[str, deque] = {}

    def request(self, service, message, audio=None, *, timeout=None, retryable=None):
        """Run ``message`` on a worker of ``service``; the list of its replies, each with its ``audio``."""
        return list(self.stream(service, message, audio, timeout=timeout, retryable=retryable))

    def stream(self, service, message, audio=None, *, timeout=None, retryable=None):
        """Send the job now; iterate over its replies as they come.

        ``timeout`` is the longest wait for the next reply (and for a free worker);
        ``retryable`` defaults to the payload type's (True for STT and TTS). Leaving the loop
        early cancels the job on its worker.
        """
        timeout = self.timing.request_timeout if timeout is None else timeout
        if audio is not None:
            message = dataclasses.replace(message, audio=audio)
        request_id = next(self._ids)
        request = self._sequencer.wrap(
            "request", message, request_id=request_id, service=service,
            retryable=message.kind.retryable if retryable is None else retryable, timeout_ms=round(timeout * 1000),
        )
        self._socket.send_multipart(encode(request), copy=False)
        self._pending[request_id] = deque()
        return self._replies(service, request_id, timeout)

    def cancel(self, call_id, turn_id=None, *, reason="barge_in"):
        """Stop every job of this call (of this turn, unless None), queued or running, whoever sent it."""
        self._socket.send_multipart(encode(self._sequencer.make("cancel", {"reason": reason}, call_id=call_id, turn_id=turn_id)))

    def close(self):
        """Close, giving queued messages (a last cancel) up to 100 ms to leave: a barge-in's cancel is never dropped."""
        self._socket.close(linger=100)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _replies(self, service, request_id, timeout):
        inbox = self._pending[request_id]
        finished = False
        try:
            while True:
                deadline = time.monotonic() + timeout + BACKSTOP
                while not inbox:
                    if not self._receive(deadline):
                        raise RequestTimeout(f"no reply from a {service} worker within {timeout:g} s for {request_id}: "
                                             "the router or the worker is stuck; check `parley doctor`", request_id=request_id)
                message = inbox.popleft()
                if message.type == "reply":
                    yield message.body["message"]
                elif message.type == "done":
                    finished = True
                    return
                else:
                    finished = True
                    body = message.body
                    raise ERRORS.get(body["code"], BusError)(body["reason"], request_id=request_id, worker=body["worker"])
        finally:
            del self._pending[request_id]
            if not finished:
                self._socket.send_multipart(encode(self._sequencer.make("cancel", {"reason": "client stopped waiting", "request_id": request_id})))

    def _receive(self, deadline):
        """Wait until ``deadline`` for one message and file it under its job; False on timeout."""
        if not self._socket.poll(max(0.0, deadline - time.monotonic()) * 1000):
            return False
        frames = self._socket.recv_multipart(copy=False)
        try:
            message = decode(frames)
        except MalformedMessage as exc:
            log.warning("malformed_frame receiver=client reason=%s", exc)
            return True
        if message.type not in ("reply", "done", "error"):
            log.warning("unexpected_message receiver=client message=%s", message)
        elif message.body["request_id"] in self._pending:
            self._pending[message.body["request_id"]].append(message)
        elif message.type == "error" and not message.body["request_id"]:
            log.error("router_rejected_message reason=%s", message.body["reason"])
        else:
            log.debug("late_message receiver=client message=%s request_id=%s", message, message.body["request_id"])
        return True
