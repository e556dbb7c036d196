"""Every message on the Parley bus: the envelope, the registry of types, and the wire codec.

On the wire a message is one msgpack map ``{v, type, call_id, turn_id, seq, t_ns, body}``,
followed, for the types that carry audio, by one raw frame of PCM16 little-endian mono at the
body's ``sample_rate``. Audio never goes inside msgpack: the buffer is handed to ZeroMQ as is.

Bodies are plain dicts checked against the schema registered for their type, not dataclasses:
they map one to one onto msgpack maps, so nothing is converted on the way in or out, and the
schema table below is the single place a reader looks to learn what a message holds.

``t_ns`` is ``time.monotonic_ns()`` of the sender. On Linux that clock is system-wide, so spans
stamped by different processes on one box subtract exactly; it is not comparable across boxes
and is not a wall-clock time (the store adds wall-clock time when it writes a call).
"""

import enum
import itertools
import time
from dataclasses import dataclass, field
from types import MappingProxyType

import msgpack

PROTOCOL_VERSION = 1
"""Bumped when an envelope or a body changes incompatibly; receivers reject other versions."""

ENVELOPE_KEYS = frozenset({"v", "type", "call_id", "turn_id", "seq", "t_ns", "body"})


class MalformedMessage(ValueError):
    """Frames that are not a valid Parley message; the receiver drops them and keeps serving."""


class Behaviour(enum.Enum):
    """How a queue treats a message (pipecat's SystemFrame / DataFrame split)."""

    SYSTEM = "system"
    """Jumps ahead of queued data and is never dropped: control, errors, call events."""
    DATA = "data"
    """Stays in order and is dropped when its turn is interrupted: jobs, tokens, audio."""


class Audio(enum.Enum):
    """Whether a raw PCM frame follows the envelope."""

    NONE = "none"
    REQUIRED = "required"
    OF_WRAPPED = "of_wrapped"
    """Job envelopes: a frame follows exactly when the message they wrap carries one."""


class ErrorCode(enum.StrEnum):
    """Why a job ended without ``done``; the ``error`` body's ``code``."""

    WORKER_DIED = "worker_died"
    NO_WORKER = "no_worker"
    SERVICE_DOWN = "service_down"
    HANDLER_FAILED = "handler_failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    MALFORMED = "malformed"


@dataclass(frozen=True)
class MessageType:
    """One registered type: its body schema and how the bus treats it."""

    name: str
    behaviour: Behaviour
    required: MappingProxyType
    """Body fields that must be present, with the Python type(s) each value must have."""
    optional: MappingProxyType
    audio: Audio
    event: bool
    """Published on the call-event bus (PUB/SUB) rather than sent as a job."""
    retryable: bool
    """For job payloads: safe to run again on another worker if the first one dies."""
    doc: str


MESSAGE_TYPES: dict[str, MessageType] = {}
"""Every type the bus knows, by name. Nothing outside this module defines one."""


def _define(name, behaviour, required=None, optional=None, *, audio=Audio.NONE, event=False, retryable=False, doc):
    MESSAGE_TYPES[name] = MessageType(
        name, behaviour, MappingProxyType(required or {}), MappingProxyType(optional or {}), audio, event, retryable, doc
    )


SYSTEM, DATA = Behaviour.SYSTEM, Behaviour.DATA
_worker_identity = {"service": str, "worker": str, "pid": int, "interval_ms": int}

# Control between the router and its workers.
_define("worker_ready", SYSTEM, _worker_identity, doc="A worker has loaded its models and takes jobs.")
_define("heartbeat", SYSTEM, _worker_identity,
        doc="A worker is alive; also sent while a handler runs. Carries the identity so a restarted router relearns it.")
_define("shutdown", SYSTEM, {"reason": str}, doc="A worker should finish and exit.")
_define("cancel", SYSTEM, {"reason": str}, {"request_id": str},
        doc="Stop the jobs of call_id (and turn_id, unless None), or the one request_id: barge-in races ahead of data.")

# Job envelopes: a client's request, relayed by the router to one worker, and what comes back.
_define("request", DATA, {"request_id": str, "service": str, "retryable": bool, "timeout_ms": int, "message": "Message"},
        audio=Audio.OF_WRAPPED, doc="Run `message` on a worker of `service`; the router waits `timeout_ms` for a free one.")
_define("reply", DATA, {"request_id": str, "message": "Message"}, audio=Audio.OF_WRAPPED,
        doc="One result of a job; a job may stream many.")
_define("done", DATA, {"request_id": str}, doc="The job ended normally: no more replies.")
_define("error", SYSTEM, {"request_id": str, "code": str, "reason": str, "worker": (str, None)},
        doc="The job ended without `done`; `code` is an ErrorCode, `reason` says what happened and what to do.")

# Job payloads.
_define("stt_request", DATA, {"sample_rate": int}, {"language": str}, audio=Audio.REQUIRED, retryable=True,
        doc="Transcribe one speech segment; the segment follows as PCM16.")
_define("stt_partial", DATA, {"text": str}, doc="The transcript so far; may still change.")
_define("stt_final", DATA, {"text": str}, {"confidence": float}, doc="The segment's transcript.")
_define("tts_request", DATA, {"text": str}, {"voice": str, "sample_rate": int}, retryable=True,
        doc="Speak one sentence (or a few).")
_define("tts_audio", DATA, {"sample_rate": int, "offset_samples": int}, {"sentence_index": int}, audio=Audio.REQUIRED,
        doc="Synthesised audio; offset_samples places it in the utterance so a barge-in can cut the context.")
_define("tts_done", DATA, {"samples": int}, doc="Synthesis finished; total samples produced.")
_define("llm_request", DATA, {"messages": list}, {"tools": list, "max_tokens": int},
        doc="Generate the agent's next message; not retryable, since its stream is relayed as it comes.")
_define("llm_token", DATA, {"text": str}, doc="Streamed text.")
_define("llm_sentence", DATA, {"text": str, "index": int}, doc="A complete sentence, ready for TTS.")
_define("llm_tool_call", DATA, {"id": str, "name": str, "arguments": dict}, doc="The model asks to run a tool.")
_define("llm_done", DATA, {"reason": str}, doc="Generation ended: stop, length, tool_call or cancelled.")
_define("agent_turn", DATA, {"agent": str, "state": dict}, {"text": str},
        doc="The agent's next turn in a call: `agent` is its folder, `state` the conversation so far (see "
            "agent/conversation.py), `text` what the caller said (absent: the call starts, say the greeting). "
            "Replies stream llm_token (the first only), llm_sentence, tool_result and handoff, then agent_state.")
_define("tool_result", DATA, {"name": str, "arguments": dict, "status": str, "message": str, "confirmed": bool,
                              "started_ns": int, "ended_ns": int}, {"result": dict, "state": dict},
        doc="A tool the agent ran (or that policy refused) this turn; `state` is the conversation as the tool left it, "
            "kept by the call when the reply is cut off before agent_state.")
_define("handoff", DATA, {"reason": str, "summary": str, "collected": dict, "transcript": str},
        doc="The agent hands the caller to a person: the record the colleague sees.")
_define("agent_prefill", DATA, {"agent": str, "state": dict, "text": str}, retryable=True,
        doc="The caller paused after saying `text`: evaluate the prompt of the reply to it ahead, so that if the turn "
            "has ended the agent_turn that follows starts from it. Nothing is said or done, and no reply comes: the "
            "job ends at once and the worker evaluates after it, giving way to the next job it is sent.")
_define("agent_state", DATA, {"state": dict, "action": str, "kb_chunk_ids": list, "text": str},
        doc="The turn is over: the updated conversation state, and listen, end_call or transfer.")

_define("evaluate_call", DATA, {"agent": str}, doc="Judge a finished call (its call_id) on the agent's evaluation "
        "criteria and extract its data-collection fields, into the store; replies call_evaluated.")
_define("call_evaluated", DATA, {"criteria": dict, "data": dict},
        doc="Criterion id -> success/failure/unknown, field -> value, as written to the store.")

# Call events, published for the store and the TUI; every one matters, so all are SYSTEM.
_define("call_started", SYSTEM, {"caller": str, "callee": str, "agent": str}, event=True, doc="A call was answered.")
_define("speech_start", SYSTEM, {"at_ns": int}, event=True, doc="The caller started speaking; at_ns is the first speech frame.")
_define("end_of_turn", SYSTEM, {"at_ns": int}, event=True, doc="The endpointer ended the caller's turn.")
_define("barge_in", SYSTEM, {"at_ns": int, "played_samples": int}, event=True,
        doc="The caller interrupted; played_samples is how much of the agent's audio they heard.")
_define("turn_trace_span", SYSTEM, {"name": str, "t_ns": int}, event=True,
        doc="One point of the latency trace (user_speech_end, endpoint, stt_final, ... playout_start).")
_define("call_ended", SYSTEM, {"reason": str}, event=True, doc="The call is over.")
del SYSTEM, DATA


@dataclass(frozen=True, slots=True)
class Message:
    """One validated message; constructing an invalid one raises MalformedMessage."""

    type: str
    body: dict = field(default_factory=dict)
    call_id: str | None = None
    turn_id: int | None = None
    seq: int = 0
    t_ns: int = 0
    audio: object = field(default=None, compare=False, repr=False)
    """The raw PCM frame (any bytes-like object) for types that carry one; never copied."""

    def __post_init__(self):
        _validate(self)

    @property
    def kind(self) -> MessageType:
        return MESSAGE_TYPES[self.type]

    def __str__(self):
        return f"{self.type}#{self.seq} call_id={self.call_id} turn_id={self.turn_id}"


class Sequencer:
    """Stamps one sender's messages with its own gap-free ``seq`` and the monotonic clock."""

    def __init__(self):
        self._seq = itertools.count()  # next() on a count is atomic under the GIL

    def make(self, type, body=None, *, call_id=None, turn_id=None, audio=None) -> Message:
        return Message(type, {} if body is None else body, call_id, turn_id, next(self._seq), time.monotonic_ns(), audio)

    def wrap(self, type, message, **fields) -> Message:
        """A job envelope (request, reply) around ``message``, carrying its call, turn and audio."""
        body = {**fields, "message": message}
        return self.make(type, body, call_id=message.call_id, turn_id=message.turn_id, audio=message.audio)


def encode(message, audio=None) -> list:
    """The frames to hand to ``send_multipart``: the envelope, then the audio buffer itself.

    ``audio`` defaults to ``message.audio``. Sent with ``copy=False`` the buffer goes to ZeroMQ
    without a copy, so do not change it afterwards.
    """
    audio = message.audio if audio is None else audio
    _check_audio(message, audio)
    envelope = msgpack.packb(_to_wire(message), use_bin_type=True)
    return [envelope] if audio is None else [envelope, audio]


def decode(frames) -> Message:
    """The message in ``frames`` (bytes, memoryviews or zmq.Frame); audio stays a view, uncopied."""
    if len(frames) not in (1, 2):
        raise MalformedMessage(f"expected 1 or 2 frames (envelope, then optional audio), got {len(frames)}")
    try:
        wire = msgpack.unpackb(memoryview(frames[0]), raw=False)
    except Exception as exc:  # msgpack raises a zoo of types for bad input
        raise MalformedMessage(f"envelope frame is not msgpack ({type(exc).__name__} {exc})".replace(" )", ")")) from None
    audio = memoryview(frames[1]) if len(frames) == 2 else None
    message = _from_wire(wire, audio)
    _check_audio(message, audio)
    return message


def _to_wire(message):
    body = {k: _to_wire(v) if isinstance(v, Message) else v for k, v in message.body.items()}
    return {"v": PROTOCOL_VERSION, "type": message.type, "call_id": message.call_id,
            "turn_id": message.turn_id, "seq": message.seq, "t_ns": message.t_ns, "body": body}


def _from_wire(wire, audio, *, wrapped=False):
    if not isinstance(wire, dict):
        raise MalformedMessage(f"envelope must be a msgpack map, got {type(wire).__name__}")
    keys = set(wire)
    if keys != ENVELOPE_KEYS:
        missing, extra = sorted(ENVELOPE_KEYS - keys), sorted(map(str, keys - ENVELOPE_KEYS))
        raise MalformedMessage(f"envelope keys wrong: missing {missing}, unexpected {extra}")
    if wire["v"] != PROTOCOL_VERSION or not _is_int(wire["v"]):
        raise MalformedMessage(
            f"unsupported protocol version {wire['v']!r}; this side speaks v{PROTOCOL_VERSION}: run the same Parley version on both ends"
        )
    kind = MESSAGE_TYPES.get(wire["type"]) if isinstance(wire["type"], str) else None
    if kind is None:
        raise MalformedMessage(f"unknown message type {wire['type']!r}")
    body = wire["body"]
    if not isinstance(body, dict):
        raise MalformedMessage(f"{kind.name} body must be a map, got {type(body).__name__}")
    body = dict(body)
    for name, spec in kind.required.items():
        if spec == "Message" and isinstance(body.get(name), dict):
            if wrapped:
                raise MalformedMessage(f"{kind.name} may not wrap another job envelope")
            body[name] = _from_wire(body[name], audio, wrapped=True)
    try:
        return Message(kind.name, body, wire["call_id"], wire["turn_id"], wire["seq"], wire["t_ns"], audio)
    except TypeError as exc:  # unhashable or odd values from hostile input
        raise MalformedMessage(f"{kind.name}: {exc}") from None


def _validate(message):
    kind = MESSAGE_TYPES.get(message.type)
    if kind is None:
        raise MalformedMessage(f"unknown message type {message.type!r}; known: {sorted(MESSAGE_TYPES)}")
    if not (message.call_id is None or isinstance(message.call_id, str)):
        raise MalformedMessage(f"{kind.name}: call_id must be a string or None, got {message.call_id!r}")
    for name in ("turn_id", "seq", "t_ns"):
        value = getattr(message, name)
        if not ((value is None and name == "turn_id") or (_is_int(value) and value >= 0)):
            raise MalformedMessage(f"{kind.name}: {name} must be a non-negative integer, got {value!r}")
    body = message.body
    if not isinstance(body, dict):
        raise MalformedMessage(f"{kind.name}: body must be a dict, got {type(body).__name__}")
    missing = [name for name in kind.required if name not in body]
    extra = [name for name in body if name not in kind.required and name not in kind.optional]
    if missing or extra:
        raise MalformedMessage(f"{kind.name} body: missing {missing}, unexpected {extra}; schema: {_describe(kind)}")
    for name, value in body.items():
        spec = kind.required.get(name, kind.optional.get(name))
        if not _matches(value, spec):
            raise MalformedMessage(f"{kind.name} body: {name}={value!r:.60} is not {_spec_name(spec)}")
        if spec == "Message" and value.kind.audio is Audio.OF_WRAPPED:
            raise MalformedMessage(f"{kind.name} may not wrap another job envelope ({value.type})")


def _check_audio(message, audio):
    kind = message.kind
    needed = kind.audio is Audio.REQUIRED
    if kind.audio is Audio.OF_WRAPPED:
        needed = message.body["message"].kind.audio is Audio.REQUIRED
    if needed and audio is None:
        raise MalformedMessage(f"{message} carries audio but no audio frame came with it")
    if not needed and audio is not None:
        raise MalformedMessage(f"{message} carries no audio, yet an audio frame came with it")
    if audio is not None and memoryview(audio).nbytes % 2:
        raise MalformedMessage(f"{message}: audio frame of {memoryview(audio).nbytes} bytes is not PCM16 (odd length)")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _matches(value, spec):
    if isinstance(spec, tuple):
        return any(_matches(value, one) for one in spec)
    if spec is None:
        return value is None
    if spec == "Message":
        return isinstance(value, Message)
    if spec is int:
        return _is_int(value)
    if spec is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, spec)


def _spec_name(spec):
    if isinstance(spec, tuple):
        return " or ".join(_spec_name(one) for one in spec)
    return "None" if spec is None else spec if isinstance(spec, str) else spec.__name__


def _describe(kind):
    fields = [f"{n}: {_spec_name(s)}" for n, s in kind.required.items()]
    fields += [f"{n}?: {_spec_name(s)}" for n, s in kind.optional.items()]
    return "{" + ", ".join(fields) + "}"
