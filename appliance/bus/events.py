"""Call events fanned out over PUB/SUB: many publishers (call loops, the agent), many readers
(the store writer, the TUI), joined by one ``EventHub``.

Each event travels as ``[topic, envelope, audio?]`` with topic ``call_id NUL type NUL``, so
ZeroMQ itself filters on a call, or on a call and a type, at the publisher; a filter on types
across all calls is applied by the subscriber. PUB/SUB drops messages for a subscriber that
falls behind its high-water mark, and one that connects late misses what came before: events
are for watching and recording live calls, not a log to replay.
"""

import logging
import threading
import time

import zmq

from parley.appliance.bus.messages import MalformedMessage, decode, encode
from parley.appliance.bus.settings import bind as bind_socket

log = logging.getLogger("parley.bus.events")


def topic(call_id, type=""):
    """The prefix for a call (and a type): what a subscriber filters on."""
    if "\0" in (call_id or ""):
        raise ValueError(f"call_id {call_id!r} contains NUL, which the event topic uses as separator")
    return f"{call_id or ''}\0{type}\0".encode() if type else f"{call_id or ''}\0".encode()


class EventPublisher:
    """Publishes call events; connects to the hub (or binds, for a lone publisher)."""

    def __init__(self, endpoint, *, bind=False, context=None):
        self._socket = (context or zmq.Context.instance()).socket(zmq.PUB)
        self._socket.linger = 0
        if bind:
            self.endpoint = bind_socket(self._socket, endpoint)
        else:
            self._socket.connect(endpoint)
            self.endpoint = endpoint

    def publish(self, message):
        if not message.kind.event:
            raise ValueError(f"{message.type} is not a call event; jobs go through BusClient.request")
        self._socket.send_multipart([topic(message.call_id, message.type), *encode(message)], copy=False)

    def close(self):
        self._socket.close()


class EventSubscriber:
    """Receives the call events it asked for; ``call_ids`` and ``types`` empty means all."""

    def __init__(self, endpoint, *, call_ids=(), types=(), bind=False, context=None):
        self.types = frozenset(types)
        self.malformed = 0
        """Frames rejected since start."""
        self._socket = (context or zmq.Context.instance()).socket(zmq.SUB)
        self._socket.linger = 0
        if call_ids:
            prefixes = [topic(call_id, type) for call_id in call_ids for type in (self.types or [""])]
        else:
            prefixes = [b""]
        for prefix in prefixes:
            self._socket.setsockopt(zmq.SUBSCRIBE, prefix)
        if bind:
            self.endpoint = bind_socket(self._socket, endpoint)
        else:
            self._socket.connect(endpoint)
            self.endpoint = endpoint

    def receive(self, timeout):
        """The next wanted event, or None if none came within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self._socket.poll(max(0.0, deadline - time.monotonic()) * 1000):
            message = self._accept(self._socket.recv_multipart(copy=False))
            if message is not None:
                return message
        return None

    def _accept(self, frames):
        try:
            message = decode(frames[1:])
            if frames[0].bytes != topic(message.call_id, message.type):
                raise MalformedMessage(f"topic {frames[0].bytes!r} does not match the envelope ({message})")
            if not message.kind.event:
                raise MalformedMessage(f"{message.type} is not a call event")
        except (MalformedMessage, ValueError) as exc:
            self.malformed += 1
            log.warning("malformed_frame receiver=subscriber frames=%d reason=%s", len(frames), exc)
            return None
        if self.types and message.type not in self.types:
            return None
        return message

    def close(self):
        self._socket.close()


class EventHub:
    """An XSUB/XPUB proxy: publishers and subscribers find each other at two fixed endpoints."""

    def __init__(self, endpoints, *, context=None):
        self._context = context or zmq.Context.instance()
        self._in = self._context.socket(zmq.XSUB)
        self._out = self._context.socket(zmq.XPUB)
        for socket in (self._in, self._out):
            socket.linger = 0
        self.events_in = bind_socket(self._in, endpoints.events_in)
        self.events_out = bind_socket(self._out, endpoints.events_out)
        control_address = f"inproc://parley-event-hub-{id(self)}"
        self._control = self._context.socket(zmq.PAIR)
        self._control.bind(control_address)
        self._controller = self._context.socket(zmq.PAIR)
        self._controller.connect(control_address)
        self._thread = threading.Thread(target=self._serve, name="bus-event-hub", daemon=True)

    def start(self):
        self._thread.start()
        log.info("event_hub_started in=%s out=%s", self.events_in, self.events_out)
        return self

    def _serve(self):
        try:
            zmq.proxy_steerable(self._in, self._out, None, self._control)
        finally:
            for socket in (self._in, self._out, self._control):
                socket.close()

    def stop(self):
        self._controller.send(b"TERMINATE")
        self._thread.join()
        self._controller.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
