"""The audit log's hash chain: how an entry's hash is made, and how a chain is checked.

Each entry's hash covers the previous entry's hash and the entry's own stored columns, so
changing, removing or reordering any entry breaks every hash after it. The rule is simple
enough to re-implement in a few lines for an offline check by a regulator:

    hash = sha256_hex(prev_hash + json.dumps([seq, at, actor, action, subject, details],
                                             separators=(",", ":"), ensure_ascii=False))

where ``at`` and ``details`` are the stored texts and the first entry's ``prev_hash`` is
``GENESIS_HASH``. Cutting entries off the end leaves a valid shorter chain: publish the head
hash (``AuditChainReport.head_hash``) with each export to pin it.
"""

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of the first entry; also in the schema's chain trigger."""


def entry_hash(prev_hash: str, seq: int, at: str, actor: str, action: str, subject: str, details: str) -> str:
    """The hash that chains an entry, computed over its stored text exactly as the module says."""
    canonical_row = json.dumps([seq, at, actor, action, subject, details], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + canonical_row).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditChainReport:
    """The finding of a chain check: a broken chain is a result to report, not a program error."""

    entries: int
    """Entries that checked out before the first break (all of them when the chain is intact)."""
    head_hash: str
    """Hash of the last good entry; ``GENESIS_HASH`` for an empty log."""
    broken_at: int | None = None
    """``seq`` of the first entry that does not fit the chain."""
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def verify_chain(rows: Iterable[Mapping]) -> AuditChainReport:
    """Check audit rows (stored columns, in ``seq`` order) and report the first entry that breaks the chain."""
    expected_seq, expected_prev = 1, GENESIS_HASH
    for row in rows:
        seq = row["seq"]
        if seq != expected_seq:
            problem = f"entry {expected_seq} is missing (next stored entry is {seq})"
            return AuditChainReport(expected_seq - 1, expected_prev, broken_at=seq, problem=problem)
        if row["prev_hash"] != expected_prev:
            problem = f"prev_hash does not match the hash of entry {seq - 1}: an earlier entry was changed or removed"
            return AuditChainReport(seq - 1, expected_prev, broken_at=seq, problem=problem)
        recomputed = entry_hash(
            row["prev_hash"], seq, row["at"], row["actor"], row["action"], row["subject"], row["details"]
        )
        if row["hash"] != recomputed:
            problem = "the entry's content no longer matches its hash: it was changed after it was written"
            return AuditChainReport(seq - 1, expected_prev, broken_at=seq, problem=problem)
        expected_seq, expected_prev = seq + 1, row["hash"]
    return AuditChainReport(expected_seq - 1, expected_prev)
