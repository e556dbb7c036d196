"""The store's typed API over a real SQLite file: what it records, and what it refuses."""

import hashlib
import re
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from parley.appliance.store import (
    Channel,
    DatabaseFileError,
    DuplicateRecordError,
    InvalidRecordError,
    Outcome,
    Role,
    SpanName,
    Store,
    StoreBusyError,
    ToolStatus,
    UnknownRecordError,
)

NO_SUCH_CALL = "0d6f7d9e-6b7e-4c5e-9d7a-2f4b8c1e0a55"
ACME = {"name": "acme", "prompt": {"role": "You answer for Acme."}, "tools": ["lookup_order", "refund"]}


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "var" / "parley.db") as opened:
        yield opened


@pytest.fixture
def version(store):
    return store.save_agent_version("acme", ACME, author="ana", message="first")


@pytest.fixture
def call(store, version):
    return store.start_call(version.id, Channel.TEST, caller="+44 20 7946 0000")


def pragma(store, name):
    return store.db.execute(f"PRAGMA {name}").fetchone()[0]


def count(store, table):
    return store.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


# Opening the file


def test_open_creates_the_folder_and_sets_wal_full_sync_foreign_keys_and_busy_timeout(store, tmp_path):
    assert store.path == tmp_path / "var" / "parley.db"
    assert store.path.is_file()
    assert pragma(store, "journal_mode") == "wal"
    assert pragma(store, "synchronous") == 2  # FULL
    assert pragma(store, "foreign_keys") == 1
    assert pragma(store, "busy_timeout") == 5000


def test_open_defaults_to_the_appliance_db_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PARLEY_HOME", str(tmp_path))
    with Store.open() as store:
        assert store.path == tmp_path / "var" / "parley.db"


def test_a_file_that_is_not_sqlite_is_refused_and_left_as_it_was(tmp_path):
    path = tmp_path / "parley.db"
    path.write_bytes(b"call log exported by hand\n" * 100)

    with pytest.raises(DatabaseFileError, match=r"parley\.db: is not an SQLite database; .*move it aside") as caught:
        Store.open(path)

    assert caught.value.path == path
    assert path.read_bytes() == b"call log exported by hand\n" * 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parley.db"]


def test_a_damaged_database_is_refused_and_not_recreated(tmp_path):
    path = tmp_path / "parley.db"
    with Store.open(path) as store:
        store.save_agent_version("acme", ACME, author="ana", message="first")
    damaged = bytearray(path.read_bytes())
    damaged[100:4096] = b"\xff" * (4096 - 100)  # page 1 past the header: the schema's root page
    path.write_bytes(bytes(damaged))

    with pytest.raises(DatabaseFileError, match=r"parley\.db: is damaged .*restore the latest backup"):
        Store.open(path)

    assert path.read_bytes() == bytes(damaged)


def test_a_folder_where_the_file_should_be_is_refused(tmp_path):
    (tmp_path / "parley.db").mkdir()
    with pytest.raises(DatabaseFileError, match="is a folder"):
        Store.open(tmp_path / "parley.db")


# Agent versions


def test_agent_versions_are_numbered_per_agent_and_hashed_by_content(store):
    first = store.save_agent_version("acme", ACME, author="ana", message="first")
    second = store.save_agent_version(
        "acme",
        {**ACME, "tools": ["lookup_order"]},
        author="ben",
        message="no refunds",
        lowered_bar_reason="refund tests removed with the tool",
    )
    other = store.save_agent_version("bistro", {"name": "bistro"}, author="ana", message="first")

    assert [first.number, second.number, other.number] == [1, 2, 1]
    assert first.content == ACME
    assert first.content_hash == hashlib.sha256(
        b'{"name":"acme","prompt":{"role":"You answer for Acme."},"tools":["lookup_order","refund"]}'
    ).hexdigest()
    assert second.lowered_bar_reason == "refund tests removed with the tool"
    assert store.agent_versions("acme") == [first, second]


def test_saving_identical_content_again_is_refused(store, version):
    reordered = dict(reversed(list(ACME.items())))
    with pytest.raises(DuplicateRecordError, match="version 1 already has exactly this content"):
        store.save_agent_version("acme", reordered, author="ben", message="again")
    assert count(store, "agent_versions") == 1


def test_versions_of_an_unknown_agent_name_the_known_ones(store, version):
    with pytest.raises(UnknownRecordError, match=r"'acmee'.*saved agents: \['acme'\]"):
        store.agent_versions("acmee")


# Calls, turns, spans, tool calls


def test_a_call_is_recorded_from_start_to_end(store, version):
    started = datetime(2025, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=1)))
    call = store.start_call(
        version.id, "sip", caller="201", rollout_branch="b", metadata={"trunk": "pbx-1"}, started_at=started
    )
    ended = store.end_call(call.id, "escalated", ended_at=started + timedelta(minutes=3))

    assert ended == store.call(call.id)
    assert (ended.channel, ended.outcome, ended.rollout_branch) == (Channel.SIP, Outcome.ESCALATED, "b")
    assert ended.metadata == {"trunk": "pbx-1"}
    assert ended.started_at == datetime(2025, 3, 1, 8, 30, tzinfo=UTC)
    stored = store.db.execute("SELECT started_at, ended_at FROM calls").fetchone()
    assert stored == ("2025-03-01T08:30:00.000000Z", "2025-03-01T08:33:00.000000Z")


def test_turns_spans_and_tool_calls_are_recorded_against_their_call(store, call):
    asked = store.append_turn(call.id, Role.CALLER, "Where is order 1042?", started_ns=1_000, ended_ns=2_000)
    answer = store.append_turn(
        call.id,
        "agent",
        "It shipped on Monday and should arrive",
        started_ns=3_000,
        ended_ns=4_000,
        heard_text="It shipped on Monday",
        kb_chunk_ids=["shipping#2"],
    )
    for offset, name in enumerate(SpanName):
        store.record_span(asked.id, name, 2_000 + offset * 100)
    lookup = store.record_tool_call(
        answer.id, "lookup_order", {"order": 42}, ToolStatus.OK, result={"status": "shipped"}, started_ns=5, ended_ns=6
    )

    assert [turn.position for turn in store.turns(call.id)] == [0, 1]
    assert store.turns(call.id)[1] == answer
    assert (answer.interrupted, answer.heard_text) == (True, "It shipped on Monday")
    assert answer.kb_chunk_ids == ["shipping#2"]
    assert asked.interrupted is False
    trace = store.spans(asked.id)
    assert [span.name for span in trace] == list(SpanName)
    assert {span.call_id for span in trace} == {call.id}
    assert trace[-1].t_ns - trace[0].t_ns == 600  # voice-to-voice: playout_start - user_speech_end
    assert store.tool_calls(call.id) == [lookup]
    assert (lookup.call_id, lookup.result, lookup.confirmed) == (call.id, {"status": "shipped"}, False)


@pytest.mark.parametrize("channel", list(Channel))
def test_every_channel_is_allowed_by_the_schema(store, version, channel):
    assert store.start_call(version.id, channel).channel is channel


@pytest.mark.parametrize("outcome", list(Outcome))
def test_every_outcome_is_allowed_by_the_schema(store, call, outcome):
    assert store.end_call(call.id, outcome).outcome is outcome


@pytest.mark.parametrize("role", list(Role))
def test_every_role_is_allowed_by_the_schema(store, call, role):
    assert store.append_turn(call.id, role, "…").role is role


@pytest.mark.parametrize("status", list(ToolStatus))
def test_every_tool_status_is_allowed_by_the_schema(store, call, status):
    turn = store.append_turn(call.id, "agent", "One moment.")
    assert store.record_tool_call(turn.id, "refund", {}, status, started_ns=1, ended_ns=2).status is status


# What the store refuses


INVALID_WRITES = [
    pytest.param(
        lambda s, c: s.start_call(c.agent_version_id, "pstn"),
        "channel must be one of sip, file, local, test, not 'pstn'",
        id="channel",
    ),
    pytest.param(
        lambda s, c: s.end_call(c.id, "hung up"),
        "outcome must be one of completed, escalated, abandoned, failed",
        id="outcome",
    ),
    pytest.param(lambda s, c: s.append_turn(c.id, "bot", "hi"), "role must be one of caller, agent, tool", id="role"),
    pytest.param(lambda s, c: s.record_span(1, "vad_end", 5), "span name must be one of user_speech_end", id="span"),
    pytest.param(
        lambda s, c: s.start_call(c.agent_version_id, "test", call_id="call-7"), "call_id must be a UUID", id="call id"
    ),
    pytest.param(
        lambda s, c: s.start_call(c.agent_version_id, "test", started_at=datetime(2025, 1, 1)),
        "has no time zone",
        id="naive time",
    ),
    pytest.param(
        lambda s, c: s.start_call(c.agent_version_id, "test", metadata={"at": datetime.now}),
        "plain JSON data",
        id="not json",
    ),
    pytest.param(
        lambda s, c: s.start_call(c.agent_version_id, "test", caller={"name": "Ana"}),
        "type 'dict' is not supported: the store takes text, numbers or None there",
        id="dict for text",
    ),
    pytest.param(
        lambda s, c: s.end_call(c.id, "failed", ended_at=c.started_at - timedelta(seconds=1)),
        "call_ends_after_it_starts",
        id="call ends before it starts",
    ),
    pytest.param(
        lambda s, c: s.append_turn(c.id, "caller", "hi", heard_text="h"),
        "only_agent_turns_are_interrupted",
        id="caller turn interrupted",
    ),
    pytest.param(
        lambda s, c: s.append_turn(c.id, "caller", "hi", started_ns=9, ended_ns=3),
        "turn_ends_after_it_starts",
        id="turn ends before it starts",
    ),
    pytest.param(
        lambda s, c: s.append_turn(c.id, "caller", "hi", started_ns="soon"),
        "cannot store TEXT value in INTEGER column turns.started_ns",
        id="text for nanoseconds",
    ),
    pytest.param(
        lambda s, c: s.save_agent_version("", {}, author="a", message="m"),
        "agent_name_is_not_empty",
        id="empty agent name",
    ),
]


@pytest.mark.parametrize("write, message", INVALID_WRITES)
def test_invalid_input_is_refused_with_a_typed_error_and_nothing_is_written(store, call, write, message):
    before = {table: count(store, table) for table in ("agents", "agent_versions", "calls", "turns", "spans")}

    with pytest.raises(InvalidRecordError, match=re.escape(message)):
        write(store, call)

    assert {table: count(store, table) for table in before} == before
    assert store.call(call.id) == call


@pytest.mark.parametrize(
    "write, message",
    [
        (lambda s, c: s.start_call(404, "test"), "agent version id 404 does not exist"),
        (lambda s, c: s.append_turn(NO_SUCH_CALL, "caller", "hi"), "does not exist: start it"),
        (lambda s, c: s.record_span(404, "endpoint", 5), "turn id 404 does not exist"),
        (lambda s, c: s.record_tool_call(404, "refund", {}, "ok", started_ns=1, ended_ns=2), "turn id 404"),
        (lambda s, c: s.end_call(NO_SUCH_CALL, "completed"), "does not exist"),
    ],
    ids=["agent version", "call", "turn for span", "turn for tool call", "call to end"],
)
def test_a_reference_to_a_missing_record_is_refused(store, call, write, message):
    with pytest.raises(UnknownRecordError, match=re.escape(message)):
        write(store, call)


def test_the_schema_itself_refuses_bad_values_from_any_writer(store, call):
    with pytest.raises(sqlite3.IntegrityError, match="call_channel_is_known"):
        store.db.execute("UPDATE calls SET channel = 'pstn'")
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        store.db.execute("INSERT INTO turns (call_id, position, role, text) VALUES ('x', 0, 'caller', 'hi')")


def test_raw_writes_inside_a_store_transaction_get_typed_errors(store, call):
    with pytest.raises(UnknownRecordError, match="FOREIGN KEY constraint failed"):
        with store.transaction():
            store.db.execute("INSERT INTO turns (call_id, position, role, text) VALUES ('x', 0, 'caller', 'hi')")
    with pytest.raises(InvalidRecordError, match="call_channel_is_known"):
        with store.transaction():
            store.db.execute("UPDATE calls SET channel = 'pstn'")
    assert store.call(call.id).channel is Channel.TEST


def test_duplicates_are_refused_and_the_stored_record_kept(store, call):
    turn = store.append_turn(call.id, "caller", "hi")
    store.record_span(turn.id, "endpoint", 5)

    with pytest.raises(DuplicateRecordError, match="UNIQUE constraint failed: spans.turn_id, spans.name"):
        store.record_span(turn.id, "endpoint", 9)
    with pytest.raises(DuplicateRecordError, match="calls.id"):
        store.start_call(call.agent_version_id, "test", call_id=call.id)

    assert [span.t_ns for span in store.spans(turn.id)] == [5]


def test_a_call_ends_once(store, call):
    store.end_call(call.id, "completed")
    with pytest.raises(InvalidRecordError, match="already ended at .* a call ends once"):
        store.end_call(call.id, "failed")
    assert store.call(call.id).outcome is Outcome.COMPLETED


# Transactions and concurrency


def test_a_transaction_is_all_or_nothing(store, call):
    with pytest.raises(UnknownRecordError):
        with store.transaction():
            store.append_turn(call.id, "caller", "Refund order 1042.")
            store.record_span(404, "endpoint", 1)

    assert store.turns(call.id) == []


def test_a_failed_nested_transaction_undoes_only_itself(store, call):
    with store.transaction():
        kept = store.append_turn(call.id, "caller", "Refund order 1042.")
        with pytest.raises(InvalidRecordError):
            with store.transaction():
                store.append_turn(call.id, "agent", "Done.")
                store.append_turn(call.id, "caller", "hi", started_ns=9, ended_ns=3)

    assert store.turns(call.id) == [kept]


def test_readers_see_committed_data_while_a_writer_holds_its_transaction(store, call):
    with Store.open(store.path) as reader:
        with store.transaction():
            store.append_turn(call.id, "caller", "not yet committed")
            assert reader.turns(call.id) == []
        assert [turn.text for turn in reader.turns(call.id)] == ["not yet committed"]


def test_a_second_writer_waits_for_the_first_to_commit(store, call):
    holding = threading.Event()

    def first_writer():
        with Store.open(store.path) as first:
            with first.transaction():
                first.append_turn(call.id, "caller", "first")
                holding.set()
                time.sleep(0.2)

    writer = threading.Thread(target=first_writer)
    writer.start()
    holding.wait()
    store.append_turn(call.id, "caller", "second")  # waits, within the busy timeout, for the first to commit
    writer.join()

    assert [turn.text for turn in store.turns(call.id)] == ["first", "second"]


def test_a_writer_blocked_past_the_busy_timeout_gets_a_typed_error(store, call):
    with Store.open(store.path, busy_timeout=0.1) as impatient:
        with store.transaction():
            store.append_turn(call.id, "caller", "holding the lock")
            with pytest.raises(StoreBusyError, match="kept the write lock past the busy timeout"):
                impatient.append_turn(call.id, "caller", "blocked")
        assert [turn.text for turn in impatient.turns(call.id)] == ["holding the lock"]
