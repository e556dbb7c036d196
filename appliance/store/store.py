"""The typed face of the appliance's database: what the store writer, the platform and exports call."""

import hashlib
import json
import sqlite3
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from sqlite_utils import Database

from ..config import load_settings
from .audit import GENESIS_HASH, AuditChainReport, entry_hash, verify_chain
from .database import BUSY_TIMEOUT_S, open_database, translated_errors
from .errors import DuplicateRecordError, InvalidRecordError, StoreError, UnknownRecordError
from .records import (
    AgentVersion,
    AuditEntry,
    Call,
    Channel,
    Handoff,
    Outcome,
    Role,
    Span,
    SpanName,
    ToolCall,
    ToolStatus,
    Turn,
)
from .schema import MigrationSet
from .timestamps import from_utc_text, utc_text

EnumT = TypeVar("EnumT", bound=StrEnum)


class Store:
    """Calls with their turns, latency spans and tool calls; agent versions; the audit log.

    Open one per process with ``Store.open``. Every write is its own transaction unless grouped
    with ``transaction()``. Bad input raises a ``StoreError`` subclass and writes nothing.
    """

    def __init__(self, db: Database, path: Path):
        """Wrap an already opened and migrated database; use ``Store.open``."""
        self.db = db
        """The sqlite-utils handle, for read queries the methods below do not cover."""
        self.path = path

    @classmethod
    def open(cls, path: str | Path | None = None, *, busy_timeout: float = BUSY_TIMEOUT_S) -> "Store":
        """Open the store at ``path`` (default: the appliance's ``db_path``); create it, apply pending migrations."""
        path = Path(path) if path is not None else load_settings().db_path
        db = open_database(path, busy_timeout)
        try:
            with translated_errors(path):
                MigrationSet.packaged().apply(db)
        except BaseException:
            db.close()
            raise
        return cls(db, path)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one commit: all or nothing, and one fsync instead of one per write.

        Takes the write lock at once (``BEGIN IMMEDIATE``) so a read-then-write inside it (the
        next version number, the audit chain's last hash) cannot race another writer process.
        Nested, it is a savepoint of the outer transaction.
        """
        conn = self.db.conn
        nested = conn.in_transaction
        try:
            with translated_errors(self.path):
                conn.execute("SAVEPOINT store_write" if nested else "BEGIN IMMEDIATE")
                try:
                    yield
                    conn.execute("RELEASE store_write" if nested else "COMMIT")
                except BaseException:
                    if nested and conn.in_transaction:
                        conn.execute("ROLLBACK TO store_write")
                        conn.execute("RELEASE store_write")
                    elif conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
        except sqlite3.IntegrityError as exc:
            raise _schema_refusal(exc) from exc

    # Agent versions

    def save_agent_version(
        self,
        agent: str,
        content: Mapping[str, Any],
        *,
        author: str,
        message: str,
        lowered_bar_reason: str | None = None,
    ) -> AgentVersion:
        """Save ``content`` (the agent's serialized files) as the agent's next version, numbered 1, 2, …

        Identical content is refused: it already is a version.
        """
        content_text = _json_text(content, "content")
        content_hash = hashlib.sha256(content_text.encode("utf-8")).hexdigest()
        now = utc_text()
        with self.transaction():
            self.db.execute("INSERT INTO agents (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING", [agent, now])
            [agent_row] = self._rows("SELECT id FROM agents WHERE name = ?", [agent])
            same = self._rows(
                "SELECT number FROM agent_versions WHERE agent_id = ? AND content_hash = ?",
                [agent_row["id"], content_hash],
            )
            if same:
                raise DuplicateRecordError(
                    f"agent {agent!r} version {same[0]['number']} already has exactly this content; nothing was saved"
                )
            [row] = self._rows(
                """
                INSERT INTO agent_versions
                    (agent_id, number, content_hash, author, message, lowered_bar_reason, content, created_at)
                VALUES (:agent_id, (SELECT coalesce(max(number), 0) + 1 FROM agent_versions WHERE agent_id = :agent_id),
                        :content_hash, :author, :message, :lowered_bar_reason, :content, :created_at)
                RETURNING *
                """,
                {
                    "agent_id": agent_row["id"],
                    "content_hash": content_hash,
                    "author": author,
                    "message": message,
                    "lowered_bar_reason": lowered_bar_reason,
                    "content": content_text,
                    "created_at": now,
                },
            )
        return _agent_version(row, agent)

    def agent_versions(self, agent: str) -> list[AgentVersion]:
        """Every saved version of ``agent``, oldest first."""
        rows = self._rows(
            """
            SELECT agent_versions.* FROM agent_versions JOIN agents ON agents.id = agent_versions.agent_id
            WHERE agents.name = ? ORDER BY number
            """,
            [agent],
        )
        if not rows:
            known = [row["name"] for row in self._rows("SELECT name FROM agents ORDER BY name")]
            raise UnknownRecordError(f"no agent named {agent!r} has a saved version; saved agents: {known or 'none'}")
        return [_agent_version(row, agent) for row in rows]

    # Calls

    def start_call(
        self,
        agent_version_id: int,
        channel: Channel | str,
        *,
        caller: str | None = None,
        rollout_branch: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        call_id: str | None = None,
        started_at: datetime | None = None,
    ) -> Call:
        """Record a call as it begins; ``call_id`` (default: a new UUID) is the one the bus carries."""
        record = {
            "id": _uuid_text(call_id) if call_id is not None else str(uuid.uuid4()),
            "agent_version_id": agent_version_id,
            "channel": _member(Channel, channel, "channel"),
            "caller": caller,
            "started_at": utc_text(started_at),
            "rollout_branch": rollout_branch,
            "metadata": _json_text(metadata or {}, "metadata"),
        }
        with self.transaction():
            if not self._rows("SELECT 1 FROM agent_versions WHERE id = ?", [agent_version_id]):
                raise UnknownRecordError(
                    f"agent version id {agent_version_id} does not exist: save it first (Store.save_agent_version)"
                )
            [row] = self._rows(
                """
                INSERT INTO calls (id, agent_version_id, channel, caller, started_at, rollout_branch, metadata)
                VALUES (:id, :agent_version_id, :channel, :caller, :started_at, :rollout_branch, :metadata)
                RETURNING *
                """,
                record,
            )
        return _call(row)

    def end_call(self, call_id: str, outcome: Outcome | str, *, ended_at: datetime | None = None) -> Call:
        """Record how and when a call ended; a call ends once."""
        outcome = _member(Outcome, outcome, "outcome")
        ended_text = utc_text(ended_at)
        with self.transaction():
            started = self._call_row(call_id)
            if started["ended_at"] is not None:
                raise InvalidRecordError(
                    f"call {call_id} already ended at {started['ended_at']} ({started['outcome']}); a call ends once"
                )
            [row] = self._rows(
                "UPDATE calls SET ended_at = ?, outcome = ? WHERE id = ? RETURNING *", [ended_text, outcome, call_id]
            )
        return _call(row)

    def call(self, call_id: str) -> Call:
        return _call(self._call_row(call_id))

    # Turns, spans and tool calls

    def append_turn(
        self,
        call_id: str,
        role: Role | str,
        text: str,
        *,
        started_ns: int | None = None,
        ended_ns: int | None = None,
        heard_text: str | None = None,
        kb_chunk_ids: Sequence[str] = (),
    ) -> Turn:
        """Add the call's next turn. ``heard_text`` marks an agent turn cut by barge-in: what the caller heard."""
        record = {
            "call_id": call_id,
            "role": _member(Role, role, "role"),
            "text": text,
            "started_ns": started_ns,
            "ended_ns": ended_ns,
            "interrupted": heard_text is not None,
            "heard_text": heard_text,
            "kb_chunk_ids": _json_text(list(kb_chunk_ids), "kb_chunk_ids"),
        }
        with self.transaction():
            self._call_row(call_id)
            [row] = self._rows(
                """
                INSERT INTO turns
                    (call_id, position, role, text, started_ns, ended_ns, interrupted, heard_text, kb_chunk_ids)
                VALUES (:call_id, (SELECT count(*) FROM turns WHERE call_id = :call_id), :role, :text,
                        :started_ns, :ended_ns, :interrupted, :heard_text, :kb_chunk_ids)
                RETURNING *
                """,
                record,
            )
        return _turn(row)

    def turns(self, call_id: str) -> list[Turn]:
        """The call's turns in order."""
        self._call_row(call_id)
        return [_turn(row) for row in self._rows("SELECT * FROM turns WHERE call_id = ? ORDER BY position", [call_id])]

    def record_span(self, turn_id: int, name: SpanName | str, t_ns: int) -> Span:
        """Record when ``turn_id`` passed a point of the latency trace; each point once per turn."""
        name = _member(SpanName, name, "span name")
        with self.transaction():
            turn = self._turn_row(turn_id)
            [row] = self._rows(
                "INSERT INTO spans (call_id, turn_id, name, t_ns) VALUES (?, ?, ?, ?) RETURNING *",
                [turn["call_id"], turn_id, name, t_ns],
            )
        return _span(row)

    def spans(self, turn_id: int) -> list[Span]:
        """The turn's latency trace, in time order."""
        self._turn_row(turn_id)
        return [_span(row) for row in self._rows("SELECT * FROM spans WHERE turn_id = ? ORDER BY t_ns", [turn_id])]

    def record_tool_call(
        self,
        turn_id: int,
        tool: str,
        arguments: Mapping[str, Any],
        status: ToolStatus | str,
        *,
        result: Any = None,
        confirmed: bool = False,
        started_ns: int,
        ended_ns: int,
    ) -> ToolCall:
        """Record a tool call the agent made (or governance refused) during ``turn_id``."""
        record = {
            "turn_id": turn_id,
            "tool": tool,
            "arguments": _json_text(arguments, "arguments"),
            "result": None if result is None else _json_text(result, "result"),
            "status": _member(ToolStatus, status, "tool status"),
            "confirmed": bool(confirmed),
            "started_ns": started_ns,
            "ended_ns": ended_ns,
        }
        with self.transaction():
            record["call_id"] = self._turn_row(turn_id)["call_id"]
            [row] = self._rows(
                """
                INSERT INTO tool_calls
                    (call_id, turn_id, tool, arguments, result, status, confirmed, started_ns, ended_ns)
                VALUES (:call_id, :turn_id, :tool, :arguments, :result, :status, :confirmed, :started_ns, :ended_ns)
                RETURNING *
                """,
                record,
            )
        return _tool_call(row)

    def tool_calls(self, call_id: str) -> list[ToolCall]:
        """The call's tool calls in the order they started."""
        self._call_row(call_id)
        rows = self._rows("SELECT * FROM tool_calls WHERE call_id = ? ORDER BY started_ns, id", [call_id])
        return [_tool_call(row) for row in rows]

    # Hand-offs

    def record_handoff(
        self, call_id: str, *, reason: str, summary: str, collected: Mapping[str, Any], transcript: str,
        target: str | None = None,
    ) -> Handoff:
        """Keep the hand-off record of a call transferred to a person."""
        with self.transaction():
            self._call_row(call_id)
            [row] = self._rows(
                """
                INSERT INTO handoffs (call_id, created_at, reason, summary, collected, transcript, target)
                VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *
                """,
                [call_id, utc_text(), reason, summary, _json_text(collected, "collected"), transcript, target],
            )
        return _handoff(row)

    def handoffs(self, call_id: str) -> list[Handoff]:
        self._call_row(call_id)
        return [_handoff(row) for row in self._rows("SELECT * FROM handoffs WHERE call_id = ? ORDER BY id", [call_id])]

    # Media (SIP calls)

    def record_call_media(self, call_id: str, media: Mapping[str, Any]) -> None:
        """Keep a SIP call's media figures (see migration 0007) when it ends; once per call."""
        columns = ("sip_call_id", "remote", "codec", "packets_sent", "packets_received", "packets_lost", "jitter_ms",
                   "remote_lost", "remote_jitter_ms", "late_packets", "max_late_ms", "dtmf_keys", "ended_by")
        missing = [name for name in columns if name not in media]
        if missing:
            raise InvalidRecordError(f"call media for {call_id} lacks {', '.join(missing)}")
        with self.transaction():
            self._call_row(call_id)
            self.db.execute(f"INSERT INTO call_media (call_id, {', '.join(columns)}) "
                            f"VALUES (?, {', '.join('?' * len(columns))})", [call_id, *(media[name] for name in columns)])

    def call_media(self, call_id: str) -> dict[str, Any] | None:
        self._call_row(call_id)
        rows = self._rows("SELECT * FROM call_media WHERE call_id = ?", [call_id])
        return rows[0] if rows else None

    # Audit log

    def append_audit(
        self,
        actor: str,
        action: str,
        subject: str,
        details: Mapping[str, Any] | None = None,
        *,
        at: datetime | None = None,
    ) -> AuditEntry:
        """Append an entry to the audit log, chained to the one before it (see ``audit``)."""
        details_text = _json_text(details or {}, "details")
        at_text = utc_text(at)
        with self.transaction():
            last = self._rows("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            seq, prev_hash = (last[0]["seq"] + 1, last[0]["hash"]) if last else (1, GENESIS_HASH)
            chain_hash = entry_hash(prev_hash, seq, at_text, actor, action, subject, details_text)
            [row] = self._rows(
                """
                INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_hash, hash)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING *
                """,
                [seq, at_text, actor, action, subject, details_text, prev_hash, chain_hash],
            )
        return _audit_entry(row)

    def verify_audit_chain(self) -> AuditChainReport:
        """Recompute the audit log's hash chain and report the first entry that does not fit."""
        with translated_errors(self.path):
            return verify_chain(self.db.query("SELECT * FROM audit_log ORDER BY seq"))

    # Helpers

    def _rows(self, sql: str, params: Sequence | Mapping = ()) -> list[dict[str, Any]]:
        with translated_errors(self.path):
            return list(self.db.query(sql, params))

    def _call_row(self, call_id: str) -> dict[str, Any]:
        rows = self._rows("SELECT * FROM calls WHERE id = ?", [call_id])
        if not rows:
            raise UnknownRecordError(f"call {call_id!r} does not exist: start it with Store.start_call() first")
        return rows[0]

    def _turn_row(self, turn_id: int) -> dict[str, Any]:
        rows = self._rows("SELECT * FROM turns WHERE id = ?", [turn_id])
        if not rows:
            raise UnknownRecordError(f"turn id {turn_id!r} does not exist: record it with Store.append_turn() first")
        return rows[0]


def _schema_refusal(exc: sqlite3.IntegrityError) -> StoreError:
    """The typed error for a write the schema refused (a CHECK, UNIQUE, FOREIGN KEY or trigger)."""
    name = getattr(exc, "sqlite_errorname", "")
    if name == "SQLITE_CONSTRAINT_FOREIGNKEY":
        return UnknownRecordError(f"a record it refers to does not exist ({exc}); nothing was written")
    if name in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"):
        return DuplicateRecordError(f"it is already stored ({exc}); the stored record was left as it was")
    return InvalidRecordError(f"the schema refused it ({exc}); nothing was written")


def _member(kind: type[EnumT], value: EnumT | str, field: str) -> EnumT:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise InvalidRecordError(f"{field} must be one of {allowed}, not {value!r}") from None


def _json_text(value: Any, field: str) -> str:
    """Canonical JSON (sorted keys, compact), so equal content always has equal text and hash."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidRecordError(f"{field} must be plain JSON data (dict, list, str, number, bool): {exc}") from None


def _uuid_text(call_id: str) -> str:
    try:
        return str(uuid.UUID(call_id))
    except (ValueError, TypeError, AttributeError):
        raise InvalidRecordError(f"call_id must be a UUID such as {uuid.uuid4()}, not {call_id!r}") from None


def _optional_time(text: str | None) -> datetime | None:
    return None if text is None else from_utc_text(text)


def _agent_version(row: dict[str, Any], agent: str) -> AgentVersion:
    return AgentVersion(
        id=row["id"],
        agent=agent,
        number=row["number"],
        content_hash=row["content_hash"],
        author=row["author"],
        message=row["message"],
        lowered_bar_reason=row["lowered_bar_reason"],
        content=json.loads(row["content"]),
        created_at=from_utc_text(row["created_at"]),
    )


def _call(row: dict[str, Any]) -> Call:
    return Call(
        id=row["id"],
        agent_version_id=row["agent_version_id"],
        channel=Channel(row["channel"]),
        caller=row["caller"],
        started_at=from_utc_text(row["started_at"]),
        ended_at=_optional_time(row["ended_at"]),
        outcome=None if row["outcome"] is None else Outcome(row["outcome"]),
        rollout_branch=row["rollout_branch"],
        metadata=json.loads(row["metadata"]),
    )


def _turn(row: dict[str, Any]) -> Turn:
    return Turn(
        id=row["id"],
        call_id=row["call_id"],
        position=row["position"],
        role=Role(row["role"]),
        text=row["text"],
        started_ns=row["started_ns"],
        ended_ns=row["ended_ns"],
        interrupted=bool(row["interrupted"]),
        heard_text=row["heard_text"],
        kb_chunk_ids=json.loads(row["kb_chunk_ids"]),
    )


def _span(row: dict[str, Any]) -> Span:
    return Span(
        id=row["id"], call_id=row["call_id"], turn_id=row["turn_id"], name=SpanName(row["name"]), t_ns=row["t_ns"]
    )


def _tool_call(row: dict[str, Any]) -> ToolCall:
    return ToolCall(
        id=row["id"],
        call_id=row["call_id"],
        turn_id=row["turn_id"],
        tool=row["tool"],
        arguments=json.loads(row["arguments"]),
        result=None if row["result"] is None else json.loads(row["result"]),
        status=ToolStatus(row["status"]),
        confirmed=bool(row["confirmed"]),
        started_ns=row["started_ns"],
        ended_ns=row["ended_ns"],
    )


def _handoff(row: dict[str, Any]) -> Handoff:
    return Handoff(
        id=row["id"], call_id=row["call_id"], created_at=from_utc_text(row["created_at"]), reason=row["reason"],
        summary=row["summary"], collected=json.loads(row["collected"]), transcript=row["transcript"], target=row["target"],
    )


def _audit_entry(row: dict[str, Any]) -> AuditEntry:
    return AuditEntry(
        seq=row["seq"],
        at=from_utc_text(row["at"]),
        actor=row["actor"],
        action=row["action"],
        subject=row["subject"],
        details=json.loads(row["details"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )
