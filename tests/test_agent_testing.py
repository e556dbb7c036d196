"""Agent tests (next_turn, tool_call, simulation) with the scripted model: the test files, the
runner's verdicts, mocks, the judge, storage, summaries and the comparison of two versions."""

import json
import textwrap
import time
from dataclasses import replace

import numpy as np
import pytest

from parley.appliance.agent.config import load_agent
from parley.appliance.agent.kb import KnowledgeBase
from parley.appliance.platform.testing import results
from parley.appliance.platform.testing.runner import TestRunner, same_value
from parley.appliance.platform.testing.session import AgentUnderTest, run_suite
from parley.appliance.platform.testing.suite import TestFileError, load_tests, mostly_happy, tag_coverage
from parley.appliance.platform.versions import current_version
from parley.appliance.demo import ACME_DIR
from parley.appliance.demo.shop import refunds_for
from parley.appliance.store import Store
from scripted_model import ScriptedModel, call, say

TOOLS = {"lookup_order", "issue_refund", "change_delivery_address", "end_call", "transfer_to_human", "skip_turn"}


def verdict(v, rationale="because", turn=0):
    return {"rationale": rationale, "verdict": v, "turn": turn}


def write(tmp_path, text, name="suite.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def acme(tmp_path):
    return load_agent(ACME_DIR, variables={"var": str(tmp_path / "var")})


def runner_for(agent, *replies):
    return TestRunner(agent, ScriptedModel(*replies), knowledge=KnowledgeBase())


def one(tmp_path, text):
    [test] = load_tests([write(tmp_path, text)], tools=TOOLS)
    return test


REFUND_AFTER_LOOKUP = """\
tests:
  - id: refund-the-kettle
    kind: tool_call
    tags: [tool_heavy]
    history:
      - caller: "I want a refund on order 4512, the kettle."
      - tool: lookup_order
        arguments: {order_id: "4512"}
      - agent: "Order 4512 has a kettle at 49 dollars 99 and two mugs. What would you like refunded?"
      - caller: "Just the kettle please."
    expect:
      tool:
        name: issue_refund
        arguments: {order_id: {exact: "4512"}, amount: {exact: 49.99}}
"""


# --- test files ---------------------------------------------------------------------------------

def test_a_test_file_reads_into_tests_with_their_source_line(tmp_path):
    test = one(tmp_path, REFUND_AFTER_LOOKUP)
    assert test.id == "refund-the-kettle" and test.kind == "tool_call" and test.source.endswith("suite.yaml:2")
    assert [role for role, _ in test.history] == ["caller", "tool", "agent", "caller"]
    [want] = test.expect.tools
    assert want.name == "issue_refund" and want.arguments["amount"].how == "exact"


@pytest.mark.parametrize("change, line, words", [
    (("tags: [tool_heavy]", "tags: [happy]"), 2, "unknown tag 'happy'"),
    (("name: issue_refund", "name: refund_everything"), 13, "unknown tool 'refund_everything'"),
    (('      - caller: "Just the kettle please."\n', ""), 9, "must end with a caller line"),
    (("kind: tool_call", "kind: guess"), 2, "kind must be one of"),
    (("amount: {exact: 49.99}", "amount: {about: 49.99}"), 13, "a check is `anything`"),
    (("    expect:", "    hope:"), 2, "unknown field 'hope'"),
    (("history:", "history: ["), 0, "not valid YAML"),
])
def test_a_broken_test_file_names_the_file_and_line(tmp_path, change, line, words):
    path = write(tmp_path, REFUND_AFTER_LOOKUP.replace(*change))
    with pytest.raises(TestFileError) as caught:
        load_tests([path], tools=TOOLS)
    assert words in str(caught.value) and str(path) in str(caught.value)
    if line:
        assert caught.value.line == line


def test_two_tests_with_one_id_are_refused_naming_both_places(tmp_path):
    write(tmp_path, REFUND_AFTER_LOOKUP, "a.yaml")
    write(tmp_path, REFUND_AFTER_LOOKUP, "b.yaml")
    with pytest.raises(TestFileError, match=r"b.yaml:2: a second test with id 'refund-the-kettle' \(the first is at .*a.yaml:2\)"):
        load_tests([tmp_path], tools=TOOLS)


def test_tag_coverage_lists_every_tag_and_warns_on_a_happy_path_suite(tmp_path):
    happy = one(tmp_path, REFUND_AFTER_LOOKUP.replace("[tool_heavy]", "[happy_path]"))
    coverage = tag_coverage([happy])
    assert coverage["happy_path"] == 1 and coverage["adversarial"] == 0 and len(coverage) == 9
    assert mostly_happy([happy]) and not mostly_happy([one(tmp_path, REFUND_AFTER_LOOKUP)])


# --- next_turn and tool_call --------------------------------------------------------------------

def test_the_expected_refund_call_passes_and_runs_the_lookup_in_the_history_for_real(acme, tmp_path):
    runner = runner_for(acme, call("issue_refund", order_id="4512", amount=49.99, reason="kettle"))
    outcome = runner.run(one(tmp_path, REFUND_AFTER_LOOKUP), 1, seed=1)
    assert outcome.status == "passed", outcome.reasons
    assert outcome.details["calls"] == [["issue_refund", {"order_id": "4512", "amount": 49.99, "reason": "kettle"}]]
    assert '"refundable": 64.97' in outcome.details["transcript"][3], "the history's lookup ran against the shop"
    assert runner.engine.seed == 1


def test_a_wrong_amount_fails_with_the_argument_named(acme, tmp_path):
    outcome = runner_for(acme, call("issue_refund", order_id="4512", amount=64.97, reason="kettle")).run(
        one(tmp_path, REFUND_AFTER_LOOKUP), 1, seed=1)
    assert outcome.status == "failed"
    assert outcome.reasons == ("issue_refund called with the wrong arguments: amount=64.97, expected 49.99",)


def test_a_yes_to_the_read_back_runs_the_refund_confirmed_and_the_reply_is_checked(acme, tmp_path):
    text = REFUND_AFTER_LOOKUP.replace(
        '      - caller: "Just the kettle please."\n',
        '      - caller: "Just the kettle please."\n      - tool: issue_refund\n'
        '        arguments: {order_id: "4512", amount: 49.99, reason: "kettle"}\n      - caller: "Yes, go ahead."\n'
    ).replace("    expect:\n", "    expect:\n      contains: [\"49.99 dollars\", \"5 to 7 business days\"]\n      not_contains: sorry\n")
    runner = runner_for(acme)  # the yes is recognised without the model; the done line is a template
    outcome = runner.run(one(tmp_path, text), 1, seed=1)
    assert outcome.status == "passed", outcome.reasons
    assert outcome.details["tool_runs"] == [["issue_refund", {"order_id": "4512", "amount": 49.99, "reason": "kettle"}, "ok", True]]
    assert [r["amount_cents"] for r in refunds_for(acme.tool_config["shop_db"], "4512")] == [4999]


def test_the_tool_data_starts_fresh_for_every_run(acme, tmp_path):
    test = one(tmp_path, REFUND_AFTER_LOOKUP.replace('      - caller: "Just the kettle please."\n',
                                                     '      - caller: "Just the kettle please."\n      - tool: issue_refund\n'
                                                     '        arguments: {order_id: "4512", amount: 49.99, reason: "kettle"}\n'
                                                     '      - caller: "Yes."\n'))
    runner = runner_for(acme)
    for run in (1, 2):
        runner.run(test, run, seed=run)
    assert len(refunds_for(acme.tool_config["shop_db"], "4512")) == 1


def test_a_tool_that_must_not_be_called_fails_the_test_when_it_is(acme, tmp_path):
    text = REFUND_AFTER_LOOKUP.replace(
        "      tool:\n        name: issue_refund\n        arguments: {order_id: {exact: \"4512\"}, amount: {exact: 49.99}}\n",
        "      tool: [{name: transfer_to_human, called: false}, {name: lookup_order, called: false}]\n"
    ).replace("kind: tool_call", "kind: next_turn")
    outcome = runner_for(acme, call("transfer_to_human", reason="caller wants a person"),
                         {"summary": "Wants a refund.", "data": {}}).run(one(tmp_path, text), 1, seed=1)
    assert outcome.status == "failed"
    assert [r.split(" was ")[0] for r in outcome.reasons] == ["transfer_to_human"]


def test_a_mocked_lookup_returns_its_canned_result_and_an_unmatched_call_fails_the_run(acme, tmp_path):
    text = textwrap.dedent("""\
    tests:
      - id: mocked
        kind: next_turn
        tags: [tool_heavy]
        mock_tools:
          mode: named
          unmatched: fail
          tools:
            lookup_order: {when: {order_id: "9999"}, result: {order_id: "9999", status: lost, refundable: 0}}
        history:
          - caller: "Where is order 9999?"
        expect:
          contains: lost
    """)
    test = one(tmp_path, text)
    runner = runner_for(acme, call("lookup_order", order_id="9999"), say("Order 9999 is lost, I'm sorry."))
    assert runner.run(test, 1, seed=1).status == "passed"
    unmatched = replace(test, history=(("caller", "Where is order 4512?"),))
    outcome = runner_for(acme, call("lookup_order", order_id="4512"), say("Let me see, it is lost.")).run(unmatched, 1, seed=1)
    assert outcome.status == "failed" and 'unmocked call: lookup_order({"order_id": "4512"})' in outcome.reasons


def test_a_judged_reply_records_the_rationale_and_fails_on_a_fail(acme, tmp_path):
    text = textwrap.dedent("""\
    tests:
      - id: polite-decline
        kind: next_turn
        tags: [out_of_scope]
        history:
          - caller: "Can you book me a taxi?"
        expect:
          judge: "The agent declines politely and offers help with Acme orders."
    """)
    test = one(tmp_path, text)
    passed = runner_for(acme, say("Sorry, I can only help with Acme orders."), verdict("pass", "declines and offers help", 3))
    outcome = passed.run(test, 1, seed=1)
    assert outcome.status == "passed"
    assert outcome.details["judged"]["judge"] == {"verdict": "pass", "rationale": "declines and offers help", "turn": 3}
    failed = runner_for(acme, say("Sure, a taxi is on its way."), verdict("fail", "it pretended to book a taxi"))
    assert failed.run(test, 1, seed=1).reasons[0].startswith("judge: fail: The agent declines politely")


def test_a_judge_reply_that_does_not_parse_is_an_error_that_says_so(acme, tmp_path):
    text = REFUND_AFTER_LOOKUP.replace("    expect:\n", "    expect:\n      judge: \"The agent refunds the kettle.\"\n")
    outcome = runner_for(acme, call("issue_refund", order_id="4512", amount=49.99, reason="kettle"), '{"rationale": "cut off').run(
        one(tmp_path, text), 1, seed=1)
    assert outcome.status == "error" and outcome.reasons[0].startswith("JudgeReplyError: the judge's reply is not JSON")


# --- simulation ---------------------------------------------------------------------------------

SIMULATION = """\
tests:
  - id: kettle-refund-simulated
    kind: simulation
    tags: [tool_heavy, happy_path]
    caller:
      persona: "Maria, a calm customer."
      goal: "Get a refund for the kettle on order 4512."
      behaviours: [terse]
    max_turns: 4
    expect:
      criteria: [resolved]
      tools_called: [lookup_order, issue_refund]
      handoff: false
      database:
        - {database: shop_db, sql: "SELECT count(*) FROM refunds WHERE order_number = '4512'", equals: 1}
"""


def caller_says(text):
    return {"text": text}


def test_a_simulated_call_is_judged_on_its_outcome_and_the_database(acme, tmp_path):
    runner = runner_for(
        acme,
        caller_says("Refund the kettle on order 4 5 1 2."),
        call("lookup_order", order_id="4512"), call("issue_refund", order_id="4512", amount=49.99, reason="kettle"),
        caller_says("Yes."),
        caller_says("Thanks, bye."),
        call("end_call"),
        verdict("pass", "the kettle was refunded", 5),
    )
    outcome = runner.run(one(tmp_path, SIMULATION), 1, seed=1)
    assert outcome.status == "passed", outcome.reasons
    assert outcome.details["ended_by"] == "end_call"
    assert [r[0] for r in outcome.details["tool_runs"]] == ["lookup_order", "issue_refund"]
    assert "caller: Yes." in outcome.details["transcript"]


def test_a_simulated_call_that_never_refunds_fails_on_tools_database_and_criterion(acme, tmp_path):
    runner = runner_for(
        acme,
        caller_says("Refund the kettle on order 4 5 1 2."), say("Sorry, I cannot do refunds."),
        caller_says("Okay, bye."), call("end_call"),
        verdict("fail", "no refund was made", 2),
    )
    outcome = runner.run(one(tmp_path, SIMULATION), 1, seed=1)
    assert outcome.status == "failed"
    assert outcome.reasons[:2] == ("lookup_order never ran", "issue_refund never ran")
    assert any(r.startswith("judge: fail") for r in outcome.reasons)
    assert any("gave 0, expected 1" in r for r in outcome.reasons)


# --- runs, storage, summaries, comparison -------------------------------------------------------

def test_a_suite_run_stores_each_result_and_summarises_pass_rates_and_flaky_tests(acme, tmp_path):
    text = REFUND_AFTER_LOOKUP.replace("    kind: tool_call\n", "    kind: tool_call\n    runs: 3\n")
    [test] = load_tests([write(tmp_path, text)], tools=TOOLS)
    hot = replace(acme, llm=replace(acme.llm, temperature=0.7))
    runner = runner_for(hot, call("issue_refund", order_id="4512", amount=49.99, reason="kettle"),
                        call("issue_refund", order_id="4512", amount=64.97, reason="kettle"),
                        call("issue_refund", order_id="4512", amount=49.99, reason="kettle"))
    with Store.open(tmp_path / "parley.db") as store:
        agent = AgentUnderTest(hot, current_version(store, "acme", ACME_DIR), ACME_DIR)
        seen = []
        run_id, summary = run_suite(store, agent, runner, [test], progress=lambda t, o: seen.append(o.status))
        stored = results.results(store, run_id)
        [ended] = store.db.execute("SELECT verdict FROM test_runs WHERE id = ?", [run_id]).fetchall()
    assert seen == ["passed", "failed", "passed"] and [r.run for r in stored] == [1, 2, 3]
    [summary_of_test] = summary.tests
    assert (summary_of_test.rate.passed, summary_of_test.rate.total) == (2, 3) and summary_of_test.flaky
    assert summary.by_tag["tool_heavy"].total == 3 and summary.by_kind["tool_call"].passed == 2
    assert summary.verdict == "failed" and ended == ("failed",)  # 67 % is under Acme's suite bar of 80 %


def test_a_greedy_agent_runs_each_turn_test_once_instead_of_faking_an_interval(acme, tmp_path):
    [test] = load_tests([write(tmp_path, REFUND_AFTER_LOOKUP)], tools=TOOLS)
    greedy = replace(acme, llm=replace(acme.llm, temperature=0.0))
    runner = runner_for(greedy, call("issue_refund", order_id="4512", amount=49.99, reason="kettle"))
    with Store.open(tmp_path / "parley.db") as store:
        agent = AgentUnderTest(greedy, current_version(store, "acme", ACME_DIR), ACME_DIR)
        _, summary = run_suite(store, agent, runner, [test], runs=5)
    assert summary.overall.total == 1 and summary.verdict == "passed"


def test_a_crash_mid_suite_keeps_the_results_already_stored(acme, tmp_path):
    tests = load_tests([write(tmp_path, REFUND_AFTER_LOOKUP + REFUND_AFTER_LOOKUP[7:].replace("refund-the-kettle", "again"))],
                       tools=TOOLS)
    runner = runner_for(acme, call("issue_refund", order_id="4512", amount=49.99, reason="kettle"))

    def crash(test, outcome):
        raise KeyboardInterrupt

    with Store.open(tmp_path / "parley.db") as store:
        agent = AgentUnderTest(acme, current_version(store, "acme", ACME_DIR), ACME_DIR)
        with pytest.raises(KeyboardInterrupt):
            run_suite(store, agent, runner, tests, progress=crash)
    with Store.open(tmp_path / "parley.db") as store:
        [(run_id, ended)] = store.db.execute("SELECT id, ended_at FROM test_runs").fetchall()
        assert ended is None and [r.status for r in results.results(store, run_id)] == ["passed"]


def stored(test_id, outcomes):
    return [results.StoredResult(test_id, "next_turn", ("refusal",), i, s, (), 0.1) for i, s in enumerate(outcomes, 1)]


def test_compare_puts_a_significant_regression_first():
    a = stored("scope", ["passed"] * 10) + stored("refund", ["passed"] * 9 + ["failed"])
    b = stored("scope", ["failed"] * 8 + ["passed"] * 2) + stored("refund", ["passed"] * 10)
    rows, overall = results.compare(a, b)
    assert [r.test_id for r in rows] == ["scope", "refund"]
    assert rows[0].regression and rows[0].significant and rows[0].p_value == pytest.approx(0.000714, rel=1e-2)
    assert not rows[1].significant and overall.a.total == 20


def test_failure_reasons_group_across_tests_with_their_particulars_blanked(acme):
    runs = [results.StoredResult("a", "tool_call", (), 1, "failed", ("issue_refund called with the wrong arguments: amount=64.97, expected 49.99",), 1),
            results.StoredResult("b", "tool_call", (), 1, "failed", ("issue_refund called with the wrong arguments: amount=7.49, expected 14.98",), 1)]
    summary = results.summarize(runs, acme.quality)
    assert summary.failure_groups == (("issue_refund called with the wrong arguments: amount=N, expected N", 2),)


@pytest.mark.parametrize("actual, expected, same", [
    (49.99, "49.99", True), ("4512", 4512, True), ("  Main  Street ", "main street", True),
    (64.97, 49.99, False), (True, 1, False), (None, 0, False),
])
def test_values_compare_as_a_person_means_them(actual, expected, same):
    assert same_value(actual, expected) is same


def test_the_stored_details_are_json(acme, tmp_path):
    outcome = runner_for(acme, call("issue_refund", order_id="4512", amount=49.99, reason="kettle")).run(
        one(tmp_path, REFUND_AFTER_LOOKUP), 1, seed=1)
    assert json.loads(json.dumps(outcome.details))["calls"][0][0] == "issue_refund"


def test_an_audio_simulation_is_read_and_needs_the_workers(acme, tmp_path):
    test = one(tmp_path, SIMULATION.replace("    max_turns: 4\n", "    max_turns: 4\n    mode: audio\n"))
    assert test.mode == "audio"
    outcome = runner_for(acme).run(test, 1, seed=1)
    assert outcome.status == "error" and "needs the appliance's workers" in outcome.reasons[0]
    with pytest.raises(TestFileError, match="mode must be text or audio"):
        one(tmp_path, SIMULATION.replace("    max_turns: 4\n", "    max_turns: 4\n    mode: video\n"))
    with pytest.raises(TestFileError, match="are for simulations"):
        one(tmp_path, REFUND_AFTER_LOOKUP.replace("    tags: [tool_heavy]\n", "    tags: [tool_heavy]\n    mode: audio\n"))


def test_the_simulated_caller_waits_for_the_agent_then_speaks_what_the_persona_wrote():
    from types import SimpleNamespace

    from parley.appliance.platform.testing.audio import SimulatedCaller

    heard = []
    caller = SimulatedCaller(lambda lines: heard.append(lines) or "Where is order 2208?", 8000, max_lines=1,
                             pause_ms=100, speak=lambda text, rate: np.ones(800, np.float32))
    closed = SimpleNamespace(is_set=lambda: False)
    busy = SimpleNamespace(agent_speaking=True, closed=closed, turns=[])
    assert all(np.max(caller.next_frame(busy, 0)) < 0.01 for _ in range(20)), "spoke over the agent"
    quiet = SimpleNamespace(agent_speaking=False, closed=closed, turns=[])
    frames = []
    for _ in range(400):  # the persona writes in a thread: frames go on meanwhile (a ms apart here)
        frames.append(caller.next_frame(quiet, 0))
        if caller.done:
            break
        time.sleep(0.001)
    assert any(np.max(f) > 0.9 for f in frames) and caller.said == ["Where is order 2208?"] and caller.done
    assert heard == [[]]
