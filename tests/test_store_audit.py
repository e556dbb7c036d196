"""The audit log: append-only, hash-chained, and checkable offline by someone who trusts nothing else."""

import hashlib
import json
import sqlite3
import threading

import pytest

from parley.appliance.store import GENESIS_HASH, Store


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "parley.db") as opened:
        yield opened


@pytest.fixture
def five_entries(store):
    return [
        store.append_audit("agent:acme@3", "tool.refund", "order:1042", {"amount": 19.99, "n": n}) for n in range(5)
    ]


def regulator_hash(row):
    """The rule as documented, re-implemented from the text alone."""
    canonical = json.dumps(
        [row["seq"], row["at"], row["actor"], row["action"], row["subject"], row["details"]],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256((row["prev_hash"] + canonical).encode()).hexdigest()


def tamper(store, sql):
    """What an attacker with the file could do: drop the guard, change a row, put the guard back."""
    [[trigger_sql]] = store.db.execute("SELECT sql FROM sqlite_master WHERE name = 'audit_log_refuses_update'")
    store.db.execute("DROP TRIGGER audit_log_refuses_update")
    store.db.execute(sql)
    store.db.execute(trigger_sql)


def test_an_empty_log_verifies(store):
    report = store.verify_audit_chain()
    assert (report.ok, report.entries, report.head_hash) == (True, 0, GENESIS_HASH)


def test_entries_chain_and_verify(store, five_entries):
    assert [entry.seq for entry in five_entries] == [1, 2, 3, 4, 5]
    assert five_entries[0].prev_hash == GENESIS_HASH
    assert all(later.prev_hash == earlier.hash for earlier, later in zip(five_entries, five_entries[1:]))
    assert five_entries[2].details == {"amount": 19.99, "n": 2}

    report = store.verify_audit_chain()

    assert (report.ok, report.entries, report.head_hash) == (True, 5, five_entries[-1].hash)


def test_the_chain_can_be_checked_from_the_documented_rule_alone(store, five_entries):
    rows = list(store.db.query("SELECT * FROM audit_log ORDER BY seq"))
    assert [regulator_hash(row) for row in rows] == [entry.hash for entry in five_entries]


def test_entries_cannot_be_updated_or_deleted(store, five_entries):
    with pytest.raises(sqlite3.IntegrityError, match="append-only: record a correcting entry"):
        store.db.execute("UPDATE audit_log SET actor = 'operator:mallory' WHERE seq = 2")
    with pytest.raises(sqlite3.IntegrityError, match="append-only: entries cannot be deleted"):
        store.db.execute("DELETE FROM audit_log WHERE seq = 5")

    assert [row["actor"] for row in store.db.query("SELECT actor FROM audit_log")] == ["agent:acme@3"] * 5


def test_an_entry_that_does_not_extend_the_chain_is_refused(store, five_entries):
    at = "2025-01-01T00:00:00.000000Z"
    forged_on_entry_2 = (6, at, "operator:mallory", "tool.refund", "order:1", "{}", five_entries[1].hash, "f" * 64)
    with pytest.raises(sqlite3.IntegrityError, match="must extend the chain"):
        store.db.execute("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)", forged_on_entry_2)


def test_a_row_changed_behind_the_triggers_breaks_the_chain_at_that_entry(store, five_entries):
    tamper(store, """UPDATE audit_log SET details = '{"amount":1999.0,"n":2}' WHERE seq = 3""")

    report = store.verify_audit_chain()

    assert (report.ok, report.broken_at, report.entries) == (False, 3, 2)
    assert "changed after it was written" in report.problem


def test_a_changed_row_with_a_recomputed_hash_breaks_the_chain_at_the_next_entry(store, five_entries):
    row = dict(next(store.db.query("SELECT * FROM audit_log WHERE seq = 3")), details='{"amount":1999.0,"n":2}')
    tamper(store, f"UPDATE audit_log SET details = '{row['details']}', hash = '{regulator_hash(row)}' WHERE seq = 3")

    report = store.verify_audit_chain()

    assert (report.ok, report.broken_at) == (False, 4)
    assert "prev_hash does not match the hash of entry 3" in report.problem


def test_a_removed_entry_breaks_the_chain(store, five_entries):
    store.db.execute("DROP TRIGGER audit_log_refuses_delete")
    store.db.execute("DELETE FROM audit_log WHERE seq = 3")

    report = store.verify_audit_chain()

    assert (report.ok, report.broken_at, report.entries) == (False, 4, 2)
    assert "entry 3 is missing" in report.problem


def test_writers_in_parallel_keep_one_chain(store):
    def append_ten(worker):
        with Store.open(store.path) as own:
            for n in range(10):
                own.append_audit(f"worker:{worker}", "test.append", "chain", {"n": n})

    workers = [threading.Thread(target=append_ten, args=(worker,)) for worker in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    report = store.verify_audit_chain()
    assert (report.ok, report.entries) == (True, 30)
