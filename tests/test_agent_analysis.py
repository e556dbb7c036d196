"""`parley analyze` points at the turn where a stored call went wrong; `parley agent gate` decides
pass / fail / inconclusive from test runs and judged calls. Real SQLite store, calls written
through the Store API as the call session writes them."""

import json

import pytest
import yaml

from parley.appliance.platform.analysis import analyze
from parley.appliance.platform.gate import gate, judge_bar, record_judge_check
from parley.appliance.platform.testing.stats import wilson_interval
from parley.appliance.platform.versions import agent_content
from parley.appliance.cli import main
from parley.appliance.config import load_settings
from parley.appliance.demo import ACME_DIR
from parley.appliance.store import Store


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("PARLEY_VAR", str(tmp_path / "var"))
    monkeypatch.setenv("COLUMNS", "200")
    with Store.open(load_settings().db_path) as opened:
        yield opened


@pytest.fixture
def version(store):
    return store.save_agent_version("acme", agent_content(ACME_DIR), author="t", message="m")


def answered(store, call_id, text, *, v2v_ms, tools=()):
    turn = store.append_turn(call_id, "agent", text)
    store.record_span(turn.id, "user_speech_end", 1_000_000_000)
    store.record_span(turn.id, "playout_start", 1_000_000_000 + v2v_ms * 1_000_000)
    for name, arguments, status, result in tools:
        store.record_tool_call(turn.id, name, arguments, status, result=result, started_ns=1, ended_ns=2)
    return turn


def failed_call(store, version):
    """A call that went wrong at turn 4: the lookup failed there, the next answer was slow."""
    call_id = store.start_call(version.id, "file").id
    store.append_turn(call_id, "agent", "Thanks for calling Acme.")
    store.append_turn(call_id, "caller", "Where is order 2208?")
    answered(store, call_id, "It has shipped.", v2v_ms=900, tools=[("lookup_order", {"order_id": "2208"}, "ok", {"status": "shipped"})])
    store.append_turn(call_id, "caller", "And order 1111?")
    answered(store, call_id, "Sorry, I could not find that order.", v2v_ms=1000,
             tools=[("lookup_order", {"order_id": "1111"}, "error", None)])
    store.append_turn(call_id, "caller", "Okay, what about my refund?")
    answered(store, call_id, "One moment.", v2v_ms=9000)
    store.end_call(call_id, "completed")
    return call_id


def test_analyze_points_at_the_first_turn_that_went_wrong_and_lists_the_rest(store, version):
    call_id = failed_call(store, version)
    analysis = analyze(store, call_id)
    assert [(p.turn, p.kind) for p in analysis.problems] == [(4, "tool_error"), (6, "latency")]
    assert analysis.went_wrong.turn == 4
    assert analysis.test_command().startswith(f"parley test from-call {call_id} --turn 4")
    assert analysis.timeline[2].spans_ms == {"playout_start": 900.0}


def test_a_failing_criterion_and_a_technical_hand_off_are_problems_at_their_turns(store, version):
    call_id = failed_call(store, version)
    store.db.execute("INSERT INTO call_evaluations (call_id, criterion, result, rationale, turn, judge_model, created_at) "
                     "VALUES (?, 'no_invented_facts', 'failure', 'said shipped without a lookup', 2, 'm', 'now')", [call_id])
    store.record_handoff(call_id, reason="technical problem: tts died", summary="s", collected={}, transcript="t")
    kinds = [(p.turn, p.kind) for p in analyze(store, call_id).problems]
    assert kinds == [(2, "criterion"), (4, "tool_error"), (6, "escalation"), (6, "latency")]


def test_a_call_that_went_well_has_no_moment_to_point_at(store, version):
    call_id = store.start_call(version.id, "file").id
    store.append_turn(call_id, "caller", "Where is order 2208?")
    answered(store, call_id, "It has shipped.", v2v_ms=900)
    assert analyze(store, call_id).went_wrong is None


def test_the_analyze_command_marks_the_turn_and_prints_the_test_command(store, version, capsys):
    call_id = failed_call(store, version)
    assert main(["analyze", call_id]) == 0
    out = capsys.readouterr().out
    assert "went wrong at turn 4 (tool_error)" in out and f"parley test from-call {call_id} --turn 4" in out
    assert main(["analyze", "00000000-0000-0000-0000-000000000000"]) == 2


def stored_run(store, version, passed, failed):
    run_id = store.db.execute("INSERT INTO test_runs (agent_version_id, started_at, ended_at, verdict, settings) "
                              "VALUES (?, 'x', 'y', 'passed', '{}') RETURNING id", [version.id]).fetchone()[0]
    for i, status in enumerate(["passed"] * passed + ["failed"] * failed):
        store.db.execute("INSERT INTO test_results (test_run_id, test_id, kind, tags, source, run, seed, status, reasons, "
                         "details, seconds, created_at) VALUES (?, ?, 'next_turn', '[]', 's', 1, 1, ?, '[]', '{}', 1, 'x')",
                         [run_id, f"t{i}", status])


def judged_calls(store, version, criterion, successes, failures):
    for result in ["success"] * successes + ["failure"] * failures:
        call_id = store.start_call(version.id, "file").id
        store.db.execute("INSERT INTO call_evaluations (call_id, criterion, result, rationale, turn, judge_model, created_at) "
                         "VALUES (?, ?, ?, 'r', 1, 'm', 'now')", [call_id, criterion, result])


def test_the_gate_fails_passes_or_says_how_many_more_runs_would_decide(store, version):
    raw = yaml.safe_load(version.content["files"]["agent.yaml"])
    thresholds = {c["id"]: c["threshold"] for c in raw["evaluation_criteria"]}
    record_judge_check(store, "m", 34, 36, 0.89, "set")
    stored_run(store, version, 40, 0)
    for criterion in thresholds:
        judged_calls(store, version, criterion, 80, 0)  # 80/80 clears even the 95 % bar: its interval starts at 95.4 %
    verdict = gate(store, version)
    assert verdict.verdict == "pass", verdict.bars
    stored_run(store, version, 9, 1)  # 90 % of 10: the interval [60 %, 98 %] straddles the 80 % bar
    verdict = gate(store, version)
    tests_bar = verdict.bars[0]
    assert verdict.verdict == "inconclusive" and tests_bar.verdict == "inconclusive" and tests_bar.more_needed > 0
    assert wilson_interval(9, 10)[0] < 0.8
    stored_run(store, version, 2, 8)
    assert gate(store, version).verdict == "fail"
    rows = store.db.execute("SELECT verdict, evidence FROM gate_verdicts ORDER BY id").fetchall()
    assert [r[0] for r in rows] == ["pass", "inconclusive", "fail"]
    assert json.loads(rows[-1][1])["bars"][0]["passed"] == 2


def test_a_version_without_evidence_is_inconclusive_and_says_what_to_run(store, version, capsys):
    assert main(["agent", "gate", "v1"]) == 3
    out = capsys.readouterr().out
    assert "inconclusive" in out and "parley test --version v1" in out


@pytest.mark.parametrize("passed, total, verdict", [(30, 30, "pass"), (0, 10, "fail"), (8, 10, "inconclusive")])
def test_one_bar_is_judged_by_its_whole_interval(passed, total, verdict):
    assert judge_bar("b", 0.8, passed, total, "runs").verdict == verdict


def test_criteria_judged_by_an_unproven_judge_are_advisory(store, version, capsys):
    stored_run(store, version, 40, 0)
    judged_calls(store, version, "resolved", 0, 40)
    judged_calls(store, version, "no_invented_facts", 80, 0)
    judged_calls(store, version, "confirmed_before_acting", 80, 0)
    verdict = gate(store, version)
    resolved = next(b for b in verdict.bars if "resolved" in b.name)
    assert resolved.verdict == "fail" and resolved.advisory and verdict.verdict == "pass"
    assert any("judge m has no judge check" in note for note in verdict.notes)
    record_judge_check(store, "m", 19, 36, 0.06, "set")
    assert any("kappa 0.06 < 0.6" in note for note in gate(store, version).notes)
    record_judge_check(store, "m", 34, 36, 0.89, "set")
    assert gate(store, version).verdict == "fail"
    assert main(["agent", "gate", "v1"]) == 1
