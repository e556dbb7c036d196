"""After a call: criteria judged on the stored transcript and data fields extracted and checked,
with the scripted model standing in for the judge (the real one: tests/test_voice_loop.py)."""

import pytest

from parley.appliance.agent.config import DataField, load_agent
from parley.appliance.platform.evaluation import CallEvaluator, call_transcript, check_value
from parley.appliance.demo import ACME_DIR
from parley.appliance.store import Store
from scripted_model import ScriptedModel


@pytest.fixture
def stored_call(tmp_path):
    store = Store.open(tmp_path / "parley.db")
    version = store.save_agent_version("acme", {"files": {}}, author="t", message="m")
    call_id = store.start_call(version.id, "test").id
    store.append_turn(call_id, "agent", "Thanks for calling Acme.")
    store.append_turn(call_id, "caller", "Refund the kettle on order 4512.")
    answer = store.append_turn(call_id, "agent", "Just to confirm: 49.99 dollars on order 4512?")
    store.record_tool_call(answer.id, "lookup_order", {"order_id": "4512"}, "ok", result={"refundable": 64.97},
                           started_ns=1, ended_ns=2)
    store.append_turn(call_id, "caller", "Yes.")
    store.append_turn(call_id, "agent", "Done.")
    yield store, call_id
    store.close()


def verdict(v, turn):
    return {"rationale": f"{v} because of line {turn}", "verdict": v, "turn": turn}


def test_each_criterion_is_judged_and_stored_with_the_turn_it_hinges_on(stored_call, tmp_path):
    store, call_id = stored_call
    acme = load_agent(ACME_DIR, variables={"var": str(tmp_path)})
    model = ScriptedModel(verdict("pass", 6), "not json",
                          {"order_id": "4512", "request": "refund the kettle", "caller_sentiment": "calm",
                           "refund_amount": "49.99"})
    criteria, data = CallEvaluator(acme, model, judge_model="llm-test").evaluate(store, call_id)
    assert [(c.criterion, c.result, c.turn) for c in criteria] == [
        ("resolved", "success", 4), ("no_invented_facts", "unknown", None), ("confirmed_before_acting", "success", None)]
    assert "did not parse" in criteria[1].rationale and criteria[2].rationale == "no side-effecting tool ran"
    stored = store.db.execute("SELECT criterion, result, turn, judge_model FROM call_evaluations ORDER BY id").fetchall()
    assert stored == [("resolved", "success", 4, "llm-test"), ("no_invented_facts", "unknown", None, "llm-test"),
                      ("confirmed_before_acting", "success", None, "deterministic")]
    values = {d.field: (d.value, d.valid) for d in data}
    assert values["order_id"] == ("4512", True) and values["caller_sentiment"] == ("calm", True)
    assert values["refund_amount"] == ("49.99", False), "a number field holding text is stored as invalid"
    assert "Transcript:" in model.prompts[0] and "lookup_order" in model.prompts[0]


def test_a_second_evaluation_replaces_the_first(stored_call, tmp_path):
    store, call_id = stored_call
    acme = load_agent(ACME_DIR, variables={"var": str(tmp_path)})
    for v in ("fail", "pass"):
        model = ScriptedModel(verdict(v, 1), verdict(v, 1), {"order_id": None, "request": None,
                                                              "caller_sentiment": None, "refund_amount": None})
        CallEvaluator(acme, model, judge_model="m").evaluate(store, call_id)
    results = store.db.execute("SELECT DISTINCT result FROM call_evaluations WHERE judge_model = 'm'").fetchall()
    assert results == [("success",)] and store.db.execute("SELECT count(*) FROM call_data").fetchone() == (4,)


def test_the_transcript_numbers_map_back_to_turn_positions(stored_call):
    store, call_id = stored_call
    lines, positions = call_transcript(store, call_id)
    assert lines[2].startswith("agent calls lookup_order") and positions == [0, 1, 2, 2, 3, 4]


def test_a_hand_off_to_a_person_is_in_the_transcript_at_the_closing_agent_turn(tmp_path):
    with Store.open(tmp_path / "parley.db") as store:
        version = store.save_agent_version("acme", {"files": {}}, author="t", message="m")
        call_id = store.start_call(version.id, "test").id
        store.append_turn(call_id, "agent", "Thanks for calling Acme.")
        store.append_turn(call_id, "caller", "Get me a manager, now!")
        store.append_turn(call_id, "agent", "I'll pass you to a colleague who can help. Please hold for a moment.")
        store.record_handoff(call_id, reason="caller asked for a manager", summary="Upset caller.", collected={},
                             transcript="")
        lines, positions = call_transcript(store, call_id)
    assert lines[2] == 'agent calls transfer_to_human {"reason": "caller asked for a manager"}'
    assert lines[3].startswith("agent: I'll pass you") and positions == [0, 1, 2, 2]


@pytest.mark.parametrize("field, value, valid", [
    (DataField("n", "number", "d"), 49.99, True), (DataField("n", "number", "d"), True, False),
    (DataField("i", "integer", "d"), 3.5, False), (DataField("b", "boolean", "d"), False, True),
    (DataField("e", "enum", "d", ("calm", "angry")), "angry", True), (DataField("e", "enum", "d", ("calm",)), "sad", False),
    (DataField("s", "string", "d"), " ", False), (DataField("s", "string", "d"), None, True),
])
def test_collected_values_are_checked_against_their_type(field, value, valid):
    assert check_value(field, value).valid is valid


def test_a_refund_without_the_callers_yes_fails_the_deterministic_check_at_its_turn(stored_call, tmp_path):
    store, call_id = stored_call
    refund = store.append_turn(call_id, "agent", "I refunded it.")
    store.record_tool_call(refund.id, "issue_refund", {"order_id": "4512", "amount": 49.99}, "ok", result={},
                           confirmed=False, started_ns=1, ended_ns=2)
    acme = load_agent(ACME_DIR, variables={"var": str(tmp_path)})
    model = ScriptedModel(verdict("pass", 1), verdict("pass", 1), {"order_id": None, "request": None,
                                                                  "caller_sentiment": None, "refund_amount": None})
    criteria, _ = CallEvaluator(acme, model, judge_model="m").evaluate(store, call_id)
    confirmed = criteria[2]
    assert (confirmed.result, confirmed.turn) == ("failure", refund.position)
    assert confirmed.rationale == "issue_refund ran without the caller's yes to its read-back"
