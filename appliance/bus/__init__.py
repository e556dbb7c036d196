"""The message bus: msgpack envelopes over ZeroMQ between the call loops, the model workers,
the agent, the store and the TUI. Jobs go through a ROUTER/DEALER broker (``WorkerRouter``)
that supervises local workers; call events fan out over PUB/SUB (``EventHub``).
"""

from parley.appliance.bus.client import (
    BusClient,
    BusError,
    HandlerFailed,
    NoWorkerAvailable,
    RequestCancelled,
    RequestRejected,
    RequestTimeout,
    ServiceDown,
    WorkerDied,
)
from parley.appliance.bus.events import EventHub, EventPublisher, EventSubscriber
from parley.appliance.bus.messages import (
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    Behaviour,
    ErrorCode,
    MalformedMessage,
    Message,
    Sequencer,
    decode,
    encode,
)
from parley.appliance.bus.router import RouterStatus, WorkerRouter
from parley.appliance.bus.settings import BusEndpoints, BusTiming, EndpointError
from parley.appliance.bus.supervision import WorkerSpec
from parley.appliance.bus.worker import Worker

__all__ = [
    "MESSAGE_TYPES", "PROTOCOL_VERSION", "Behaviour", "BusClient", "BusEndpoints", "BusError", "BusTiming",
    "EndpointError", "ErrorCode", "EventHub", "EventPublisher", "EventSubscriber", "HandlerFailed",
    "MalformedMessage", "Message", "NoWorkerAvailable", "RequestCancelled", "RequestRejected", "RequestTimeout",
    "RouterStatus", "Sequencer", "ServiceDown", "Worker", "WorkerDied", "WorkerRouter", "WorkerSpec",
    "decode", "encode",
]
