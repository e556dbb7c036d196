"""The rows the store hands back, as frozen dataclasses, and the enumerations its CHECKs allow.

Each enumeration mirrors a CHECK constraint in ``migrations/``; the store tests insert every
member, so the two cannot drift apart unnoticed. Wall-clock fields are timezone-aware UTC
``datetime``; ``*_ns`` fields are host monotonic nanoseconds, meaningful only as differences.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class Channel(StrEnum):
    """How a call reached the appliance."""

    SIP = "sip"
    FILE = "file"
    LOCAL = "local"
    TEST = "test"


class Outcome(StrEnum):
    """How a call ended."""

    COMPLETED = "completed"
    ESCALATED = "escalated"
    ABANDONED = "abandoned"
    FAILED = "failed"


class Role(StrEnum):
    """Who a turn belongs to."""

    CALLER = "caller"
    AGENT = "agent"
    TOOL = "tool"


class SpanName(StrEnum):
    """The fixed points of the latency trace, in the order a turn passes them."""

    USER_SPEECH_END = "user_speech_end"
    ENDPOINT = "endpoint"
    STT_FINAL = "stt_final"
    LLM_FIRST_TOKEN = "llm_first_token"
    FIRST_SENTENCE = "first_sentence"
    TTS_FIRST_AUDIO = "tts_first_audio"
    PLAYOUT_START = "playout_start"


class ToolStatus(StrEnum):
    """What became of a tool call: run (ok or error), or refused by governance policy."""

    OK = "ok"
    ERROR = "error"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class AgentVersion:
    """One saved, immutable version of an agent; calls point at it so every answer is attributable."""

    id: int
    agent: str
    number: int
    """1, 2, 3, … per agent."""
    content_hash: str
    """sha256 of the canonical JSON of ``content``: the same content is never saved twice."""
    author: str
    message: str
    lowered_bar_reason: str | None
    """Why this version was accepted although it lowers a test or evaluation bar; None when it does not."""
    content: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Call:
    id: str
    """A UUID, shared with the bus envelope's ``call_id``."""
    agent_version_id: int
    channel: Channel
    caller: str | None
    """Caller id as the channel gave it; None when withheld."""
    started_at: datetime
    ended_at: datetime | None
    outcome: Outcome | None
    """None while the call is in progress."""
    rollout_branch: str | None
    """The rollout branch that served this call; None outside a rollout."""
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Turn:
    id: int
    call_id: str
    position: int
    """0, 1, 2, … within the call."""
    role: Role
    text: str
    started_ns: int | None
    ended_ns: int | None
    interrupted: bool
    """The caller barged in while this agent turn played."""
    heard_text: str | None
    """What the caller actually heard of an interrupted turn; the agent's context is cut to it."""
    kb_chunk_ids: list[str]
    """Knowledge-base chunks the answer drew on."""


@dataclass(frozen=True, slots=True)
class Span:
    id: int
    call_id: str
    turn_id: int
    name: SpanName
    t_ns: int


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: int
    call_id: str
    turn_id: int
    tool: str
    arguments: dict[str, Any]
    result: Any
    """The tool's JSON result; None when it produced none (refused, or failed before answering)."""
    status: ToolStatus
    confirmed: bool
    """The caller confirmed a read-back before the tool ran."""
    started_ns: int
    ended_ns: int


@dataclass(frozen=True, slots=True)
class Handoff:
    """The record a colleague receives with a transferred call."""

    id: int
    call_id: str
    created_at: datetime
    reason: str
    summary: str
    collected: dict[str, Any]
    transcript: str
    target: str | None
    """Where the call was sent (a SIP extension), when it was sent anywhere."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: datetime
    actor: str
    """Who acted: ``agent:<name>@<version>``, ``operator:<login>``, ``system``."""
    action: str
    subject: str
    """What was acted on: a call id, ``agent:<name>``, an order number."""
    details: dict[str, Any]
    prev_hash: str
    hash: str
