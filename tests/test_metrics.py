"""Platform metrics and call search over a real store: every figure of `parley metrics`, every filter
of `parley calls`, on a fixture whose answers are worked out by hand below."""

import json
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from parley.appliance import cli
from parley.appliance.platform.metrics import agent_metrics, completion_criteria, find_calls, nearest_rank
from parley.appliance.platform.testing.stats import Rate
from parley.appliance.cli import calls as calls_command
from parley.appliance.cli import metrics as metrics_command
from parley.appliance.config import load_settings
from parley.appliance.store import Store

V1_AGENT = """\
name: acme
evaluation_criteria:
  - {id: resolved, description: "Resolved or handed over."}
  - {id: polite, description: "Stayed polite."}
quality:
  completion_criterion: resolved
data_collection:
  - {id: order_id, type: string, description: "The order."}
  - {id: email, type: string, description: "The caller's e-mail."}
"""
V2_AGENT = """\
name: acme
evaluation_criteria:
  - {id: resolved, description: "Resolved or handed over."}
  - {id: refund_done, description: "The refund was issued."}
quality:
  completion_criterion: refund_done
data_collection:
  - {id: order_id, type: string, description: "The order."}
  - {id: email, type: string, description: "The caller's e-mail."}
  - {id: refunded, type: boolean, description: "A refund was issued."}
"""
OTHER_AGENT = """\
name: other
evaluation_criteria:
  - {id: resolved, description: "Resolved."}
data_collection:
  - {id: order_id, type: string, description: "The order."}
"""
DAY_1, DAY_2 = date(2025, 3, 1), date(2025, 3, 2)
EASTERN = timezone(timedelta(hours=-5))


def at(day, hour, minute=0, second=0, tz=UTC):
    return datetime(2025, 3, day, hour, minute, second, tzinfo=tz)


class CallWriter:
    """Writes one call through the Store API, with spans whose gap is the voice-to-voice latency."""

    def __init__(self, store, version, started_at):
        self.store = store
        self.id = store.start_call(version.id, "test", started_at=started_at).id
        self.clock_ns = 1_000_000_000

    def caller(self, text="Hello?", *, latency_ms=None):
        return self._turn("caller", text, None, latency_ms)

    def agent(self, text="Certainly.", *, latency_ms=None, heard=None, speech_end_only=False):
        turn = self._turn("agent", text, heard, latency_ms)
        if speech_end_only:
            self.store.record_span(turn, "user_speech_end", self.clock_ns)
        return turn

    def tool(self, turn, status):
        self.store.record_tool_call(turn, "lookup_order", {"order_id": "A1001"}, status, started_ns=self.clock_ns,
                                    ended_ns=self.clock_ns + 1)

    def handoff(self):
        self.store.record_handoff(self.id, reason="asked for a person", summary="-", collected={}, transcript="-")

    def judged(self, **results):
        for criterion, result in results.items():
            self.store.db.execute(
                "INSERT INTO call_evaluations (call_id, criterion, result, rationale, turn, judge_model, created_at) "
                "VALUES (?, ?, ?, 'because', NULL, 'judge', '2025-03-03T00:00:00.000000Z')",
                [self.id, criterion, result])

    def collected(self, field, value):
        self.store.db.execute(
            "INSERT INTO call_data (call_id, field, value, valid, problem, created_at) "
            "VALUES (?, ?, ?, ?, ?, '2025-03-03T00:00:00.000000Z')",
            [self.id, field, None if value is None else json.dumps(value), int(value is not None),
             None if value is not None else "not given"])

    def end(self, outcome, ended_at):
        self.store.end_call(self.id, outcome, ended_at=ended_at)

    def _turn(self, role, text, heard, latency_ms):
        turn = self.store.append_turn(self.id, role, text, heard_text=heard).id
        self.clock_ns += 10_000_000_000
        if latency_ms is not None:
            self.store.record_span(turn, "user_speech_end", self.clock_ns)
            self.store.record_span(turn, "playout_start", self.clock_ns + round(latency_ms * 1_000_000))
        return turn


@pytest.fixture
def appliance(tmp_path, monkeypatch):
    monkeypatch.setenv("PARLEY_VAR", str(tmp_path / "var"))
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setattr(cli, "NOUNS", tuple(n for n in cli.NOUNS if n not in (metrics_command, calls_command))
                        + (metrics_command, calls_command))


@pytest.fixture
def store(appliance):
    with Store.open(load_settings().db_path) as opened:
        yield opened


@pytest.fixture
def calls(store):
    """Seven acme calls over two versions and two UTC days, and one call of another agent.

    v1: c1, c2 on 1 March; c3 on 2 March UTC (23:00 on 1 March in UTC-5); c4 still in progress,
    with a slow turn, an interruption and a tool error that must not count. v2: c5, c6, c7 on 2 March.
    """
    v1 = store.save_agent_version("acme", {"files": {"agent.yaml": V1_AGENT}}, author="ana", message="first")
    v2 = store.save_agent_version("acme", {"files": {"agent.yaml": V2_AGENT}}, author="ana", message="refunds")
    other = store.save_agent_version("other", {"files": {"agent.yaml": OTHER_AGENT}}, author="ana", message="first")

    c1 = CallWriter(store, v1, at(1, 9))
    c1.caller("Where is my order?")
    c1.tool(c1.agent("It shipped yesterday.", latency_ms=600), "ok")
    c1.caller("And when will it…")
    c1.agent("It will arrive on Monday.", latency_ms=800.25, heard="It will")
    c1.judged(resolved="success", polite="success")
    c1.collected("order_id", "A1001")
    c1.end("completed", at(1, 9, 1, 30))

    c2 = CallWriter(store, v1, at(1, 10))
    c2.caller("I want my money back.")
    c2.tool(c2.agent("Let me look.", latency_ms=1000), "error")
    c2.agent("One moment.", speech_end_only=True)
    c2.handoff()
    c2.judged(resolved="failure", polite="unknown")
    c2.collected("order_id", "B2002")
    c2.collected("email", None)
    c2.end("escalated", at(1, 10, 2))

    c3 = CallWriter(store, v1, at(1, 23, tz=EASTERN))
    c3.caller("Hello?")
    c3.judged(resolved="unknown")
    c3.end("abandoned", at(1, 23, 0, 30, tz=EASTERN))

    c4 = CallWriter(store, v1, at(2, 12))
    c4.caller("Is anyone there?")
    c4.tool(c4.agent("Yes, hello.", latency_ms=5000, heard="Yes"), "error")

    c5 = CallWriter(store, v2, at(2, 13))
    c5.caller("Refund order C3003, please.")
    first = c5.agent("Looking it up.", latency_ms=400)
    for status in ("ok", "error", "refused"):
        c5.tool(first, status)
    c5.caller("Is it done?")
    c5.agent("Yes, the refund is on its way.", latency_ms=700, heard="Yes, the")
    c5.agent("Anything else?", heard="Any")
    c5.judged(refund_done="success", resolved="success")
    c5.collected("order_id", "C3003")
    c5.collected("email", "Ann@Example.com")
    c5.collected("refunded", True)
    c5.end("completed", at(2, 13, 3))

    c6 = CallWriter(store, v2, at(2, 14))
    c6.caller("Refund 1234.", latency_ms=9000)
    c6.agent("Done.", latency_ms=500)
    c6.handoff()
    c6.handoff()
    c6.judged(refund_done="success", resolved="failure")
    c6.collected("order_id", 1234)
    c6.collected("refunded", False)
    c6.end("escalated", at(2, 14, 1))

    c7 = CallWriter(store, v2, at(2, 15))
    c7.end("failed", at(2, 15, 0, 45))

    elsewhere = CallWriter(store, other, at(2, 16))
    elsewhere.caller("Where is A1001?")
    elsewhere.handoff()
    elsewhere.judged(resolved="failure")
    elsewhere.collected("order_id", "A1001")
    elsewhere.end("escalated", at(2, 16, 5))

    return {name: writer.id for name, writer in
            (("c1", c1), ("c2", c2), ("c3", c3), ("c4", c4), ("c5", c5), ("c6", c6), ("c7", c7),
             ("other", elsewhere))}


def ids(found, calls):
    names = {call_id: name for name, call_id in calls.items()}
    return [names[call.id] for call in found]


def interval(rate):
    return pytest.approx(rate.interval, abs=5e-5)


# Figures per version


def test_each_version_is_measured_over_its_ended_calls_only(store, calls):
    v1, v2 = agent_metrics(store, "acme")

    assert (v1.version, v1.day, v1.calls, v1.ended) == (1, None, 4, 3)
    assert v1.completion_criterion == "resolved"
    assert v1.completion == Rate(1, 2) and (v1.completion_unknown, v1.completion_unjudged) == (1, 0)
    assert interval(v1.completion) == (0.0945, 0.9055)
    assert v1.escalation == Rate(1, 3) and interval(v1.escalation) == (0.0615, 0.7923)
    assert v1.handle_time_s == pytest.approx(80.0)
    assert v1.turns_per_call == pytest.approx(8 / 3)
    assert v1.interruptions_per_call == pytest.approx(1 / 3)
    assert (v1.latency.p50_ms, v1.latency.p95_ms, v1.latency.turns) == (800.25, 1000.0, 3)
    assert v1.tool_errors == Rate(1, 2)

    assert (v2.version, v2.calls, v2.ended) == (2, 3, 3)
    assert v2.completion_criterion == "refund_done"
    assert v2.completion == Rate(2, 2) and (v2.completion_unknown, v2.completion_unjudged) == (0, 1)
    assert interval(v2.completion) == (0.3424, 1.0)
    assert v2.escalation == Rate(1, 3)
    assert v2.handle_time_s == pytest.approx(95.0)
    assert v2.turns_per_call == pytest.approx(7 / 3)
    assert v2.interruptions_per_call == pytest.approx(2 / 3)
    assert (v2.latency.p50_ms, v2.latency.p95_ms, v2.latency.turns) == (500.0, 700.0, 3)
    assert v2.tool_errors == Rate(1, 3) and interval(v2.tool_errors) == (0.0615, 0.7923)


def test_by_day_groups_calls_by_the_utc_date_they_started(store, calls):
    rows = agent_metrics(store, "acme", by_day=True)

    assert [(row.version, row.day, row.calls, row.ended) for row in rows] == [
        (1, DAY_1, 2, 2), (1, DAY_2, 2, 1), (2, DAY_2, 3, 3)]
    first, quiet, _ = rows
    assert first.completion == Rate(1, 2) and first.completion_unknown == 0
    assert first.escalation == Rate(1, 2) and first.handle_time_s == pytest.approx(105.0)
    assert (first.turns_per_call, first.interruptions_per_call) == (3.5, 0.5)
    assert (first.latency.p50_ms, first.latency.p95_ms) == (800.25, 1000.0)
    assert quiet.completion == Rate(0, 0) and quiet.completion_unknown == 1
    assert quiet.escalation == Rate(0, 1) and interval(quiet.escalation) == (0.0, 0.7935)
    assert (quiet.handle_time_s, quiet.turns_per_call, quiet.interruptions_per_call) == (30.0, 1.0, 0.0)
    assert quiet.latency.turns == 0 and quiet.latency.p50_ms is None and quiet.latency.p95_ms is None
    assert quiet.tool_errors == Rate(0, 0)


def test_version_and_since_keep_only_those_calls(store, calls):
    [v2] = agent_metrics(store, "acme", version=2)
    assert (v2.version, v2.calls, v2.completion) == (2, 3, Rate(2, 2))

    v1, v2 = agent_metrics(store, "acme", since=DAY_2)
    assert (v1.day, v1.calls, v1.ended, v1.completion_unknown, v1.escalation) == (None, 2, 1, 1, Rate(0, 1))
    assert v2.calls == 3
    assert agent_metrics(store, "acme", since=date(2025, 3, 3)) == []


def test_a_version_without_a_completion_criterion_has_no_completion_rate(store, calls):
    [row] = agent_metrics(store, "other")
    assert row.completion_criterion is None
    assert (row.completion, row.completion_unknown, row.completion_unjudged) == (Rate(0, 0), 0, 0)
    assert row.escalation == Rate(1, 1)
    assert completion_criteria(store, "acme") == {1: "resolved", 2: "refund_done"}


def test_percentiles_are_by_nearest_rank():
    assert nearest_rank(range(1, 21), 95) == 19 and nearest_rank(range(1, 21), 50) == 10
    assert nearest_rank([30, 10, 20], 50) == 20 and nearest_rank([30, 10, 20], 95) == 30
    assert nearest_rank([5, 4, 3, 2, 1], 50) == 3 and nearest_rank(range(1, 31), 95) == 29
    assert nearest_rank([7], 50) == 7 and nearest_rank([], 95) is None


# Finding calls


def test_find_calls_lists_newest_first_with_what_happened(store, calls):
    found = find_calls(store, agent="acme")
    assert ids(found, calls) == ["c7", "c6", "c5", "c4", "c3", "c2", "c1"]
    c2 = found[5]
    assert (c2.agent, c2.version, c2.started_at, c2.outcome) == ("acme", 1, at(1, 10), "escalated")
    assert (c2.duration_s, c2.turns, c2.handed_off) == (120.0, 3, True)
    assert c2.criteria == {"polite": "unknown", "resolved": "failure"}
    c4 = found[3]
    assert (c4.outcome, c4.duration_s, c4.handed_off, c4.criteria) == (None, None, False, {})
    assert ids(find_calls(store), calls)[0] == "other"
    assert ids(find_calls(store, agent="acme", limit=2), calls) == ["c7", "c6"]


def test_find_calls_by_version_judgement_and_tool_errors(store, calls):
    assert ids(find_calls(store, agent="acme", version=1), calls) == ["c4", "c3", "c2", "c1"]
    assert ids(find_calls(store, agent="acme", where=[("resolved", "failure")]), calls) == ["c6", "c2"]
    assert ids(find_calls(store, where=[("resolved", "failure")]), calls) == ["other", "c6", "c2"]
    assert ids(find_calls(store, agent="acme", version=1, where=[("resolved", "failure")]), calls) == ["c2"]
    assert ids(find_calls(store, agent="acme", where=[("resolved", "unknown")]), calls) == ["c3"]
    both = [("refund_done", "success"), ("resolved", "success")]
    assert ids(find_calls(store, agent="acme", where=both), calls) == ["c5"]
    assert ids(find_calls(store, agent="acme", tool_errored=True), calls) == ["c5", "c4", "c2"]
    with pytest.raises(ValueError, match="not 'maybe'"):
        find_calls(store, agent="acme", where=[("resolved", "maybe")])
    with pytest.raises(ValueError, match="needs the agent"):
        find_calls(store, version=1)


def test_find_calls_matches_collected_data_as_text_whatever_the_case(store, calls):
    assert ids(find_calls(store, agent="acme", data=[("order_id", "a1001")]), calls) == ["c1"]
    assert ids(find_calls(store, data=[("order_id", "A1001")]), calls) == ["other", "c1"]
    assert ids(find_calls(store, agent="acme", data=[("email", "ann@EXAMPLE.com")]), calls) == ["c5"]
    assert ids(find_calls(store, agent="acme", data=[("order_id", "1234")]), calls) == ["c6"]
    assert ids(find_calls(store, agent="acme", data=[("refunded", "TRUE")]), calls) == ["c5"]
    assert ids(find_calls(store, agent="acme", data=[("refunded", "false")]), calls) == ["c6"]
    assert find_calls(store, agent="acme", data=[("order_id", "A100")]) == []
    assert find_calls(store, agent="acme", data=[("order_id", "a1001"), ("email", "ann@example.com")]) == []


# `parley metrics`


def table_rows(out):
    """Each line of a table's body as its cells, stripped; a cell's second line is a row of its own."""
    return [[cell.strip() for cell in line.split("│")[1:-1]] for line in out.splitlines() if line.startswith("│")]


def test_metrics_prints_a_row_per_version_with_rates_and_intervals(calls, capsys):
    assert cli.main(["metrics"]) == 0
    assert table_rows(capsys.readouterr().out) == [
        ["v1", "4", "3", "resolved: 50% [9%, 91%] (1/2)", "33% [6%, 79%] (1/3)", "80.0 s", "2.67", "0.33",
         "800 / 1000 ms (3 turns)", "50% [9%, 91%] (1/2)"],
        ["", "", "", "(1 unknown)", "", "", "", "", "", ""],
        ["v2", "3", "3", "refund_done: 100% [34%, 100%] (2/2)", "33% [6%, 79%] (1/3)", "95.0 s", "2.33", "0.67",
         "500 / 700 ms (3 turns)", "33% [6%, 79%] (1/3)"],
        ["", "", "", "(1 not judged)", "", "", "", "", "", ""],
    ]


def test_metrics_by_day_marks_what_there_is_nothing_to_measure(calls, capsys):
    assert cli.main(["metrics", "acme", "--by", "day"]) == 0
    rows = [row for row in table_rows(capsys.readouterr().out) if row[0]]
    assert [row[:4] for row in rows] == [["v1", "2025-03-01", "2", "2"], ["v1", "2025-03-02", "2", "1"],
                                         ["v2", "2025-03-02", "3", "3"]]
    assert rows[1][4:] == ["resolved: –", "0% [0%, 79%] (0/1)", "30.0 s", "1.00", "0.00", "–", "–"]


def test_metrics_filters_by_version_and_since(calls, capsys):
    assert cli.main(["metrics", "--version", "v2", "--since", "2025-03-02"]) == 0
    out = capsys.readouterr().out
    assert "acme v2 since 2025-03-02" in out and [row[0] for row in table_rows(out)] == ["v2", ""]
    assert cli.main(["metrics", "--since", "2030-01-01"]) == 0
    assert "no calls to measure" in capsys.readouterr().out
    assert cli.main(["metrics", "other"]) == 0
    assert "– (no quality.completion_criterion)" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["metrics", "--since", "03/02/2025"], "--since '03/02/2025' is not a date: give YYYY-MM-DD"),
    (["metrics", "--version", "v9"], "agent 'acme' has no version v9"),
    (["metrics", "nobody"], "no agent named 'nobody' has a saved version"),
    (["calls", "--where", "resolved:failure"], "give criterion=ID:RESULT"),
    (["calls", "--where", "criterion=resolved:maybe"], "RESULT one of success, failure, unknown"),
    (["calls", "--where", "criterion=refund_done:success", "--version", "v1"],
     "no evaluation criterion 'refund_done'; known: polite, resolved"),
    (["calls", "--data", "order_id"], "give FIELD=VALUE"),
    (["calls", "--data", "colour=red"], "no data-collection field 'colour'; known: email, order_id, refunded"),
    (["calls", "--limit", "0"], "--limit must be at least 1"),
    (["calls", "nobody"], "no agent named 'nobody'"),
])
def test_bad_arguments_are_user_errors_that_exit_2(calls, capsys, argv, message):
    assert cli.main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "error:" in err and message in err


# `parley calls`


def test_calls_where_lists_matching_calls_newest_first_with_their_judgements(calls, capsys):
    assert cli.main(["calls", "--where", "criterion=resolved:failure"]) == 0
    out = capsys.readouterr().out
    shown = [name for name in calls if calls[name] in out]
    assert shown == ["c2", "c6"] and out.index(calls["c6"]) < out.index(calls["c2"])
    assert table_rows(out)[2:] == [
        [calls["c2"], "v1", "2025-03-01 10:00:00", "escalated", "120.0 s", "3", "yes", "? polite"],
        ["", "", "", "", "", "", "", "✗ resolved"]]


def test_calls_combines_filters(calls, capsys):
    assert cli.main(["calls", "--tool-errored", "--version", "v1"]) == 0
    out = capsys.readouterr().out
    assert [name for name in calls if calls[name] in out] == ["c2", "c4"] and "in progress" in out
    assert cli.main(["calls", "--data", "order_id=a1001", "--data", "email=nobody@example.com"]) == 0
    assert "no call of agent acme matches" in capsys.readouterr().out
    assert cli.main(["calls", "other", "--data", "order_id=a1001"]) == 0
    out = capsys.readouterr().out
    assert [name for name in calls if calls[name] in out] == ["other"]


def test_calls_limit_shows_the_newest_and_says_more_match(calls, capsys):
    assert cli.main(["calls", "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert [name for name in calls if calls[name] in out] == ["c6", "c7"]
    assert "more calls match: these are the newest 2" in out
    assert cli.main(["calls", "--limit", "7"]) == 0
    assert "more calls match" not in capsys.readouterr().out


def test_the_commands_register_as_nouns(appliance):
    from parley.appliance.cli import build_parser

    args = build_parser().parse_args(["calls", "--where", "criterion=a:b", "--where", "criterion=c:d",
                                      "--tool-errored"])
    assert args.run is calls_command.run and args.where == ["criterion=a:b", "criterion=c:d"] and args.tool_errored
    args = build_parser().parse_args(["metrics", "other", "--by", "day"])
    assert args.run is metrics_command.run
    assert (args.agent, args.by, args.version, args.since) == ("other", "day", None, None)
