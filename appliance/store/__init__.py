"""The appliance's SQLite store: numbered SQL migrations, a typed API, a hash-chained audit log.

Wall-clock times are stored as UTC ISO-8601 text (``*_at``), trace times as host monotonic
nanoseconds (``*_ns``); ``database`` explains the durability settings, ``audit`` the chain.
"""

from .audit import GENESIS_HASH, AuditChainReport, entry_hash, verify_chain
from .database import BUSY_TIMEOUT_S
from .errors import (
    DatabaseFileError,
    DuplicateRecordError,
    InvalidRecordError,
    MigrationError,
    StoreBusyError,
    StoreError,
    UnknownRecordError,
)
from .records import AgentVersion, AuditEntry, Call, Channel, Handoff, Outcome, Role, Span, SpanName, ToolCall, ToolStatus, Turn
from .schema import AppliedMigration, Migration, MigrationSet
from .store import Store

__all__ = [
    "BUSY_TIMEOUT_S",
    "GENESIS_HASH",
    "AgentVersion",
    "AppliedMigration",
    "AuditChainReport",
    "AuditEntry",
    "Call",
    "Channel",
    "DatabaseFileError",
    "DuplicateRecordError",
    "Handoff",
    "InvalidRecordError",
    "Migration",
    "MigrationError",
    "MigrationSet",
    "Outcome",
    "Role",
    "Span",
    "SpanName",
    "Store",
    "StoreBusyError",
    "StoreError",
    "ToolCall",
    "ToolStatus",
    "Turn",
    "UnknownRecordError",
    "entry_hash",
    "verify_chain",
]
