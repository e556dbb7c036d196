"""One agent test of each kind through the real model (the default 1.5B agent LLM), so the real
path — grammar-constrained replies, the judge, the simulated caller — cannot rot unnoticed."""

import pytest

from conftest import fetched
from parley.appliance.agent.config import load_agent
from parley.appliance.platform.testing.runner import TestRunner
from parley.appliance.platform.testing.suite import load_tests
from parley.appliance.demo import ACME_DIR

pytestmark = [pytest.mark.models, pytest.mark.slow]


@pytest.fixture(scope="module")
def runner(models_dir, tmp_path_factory):
    from parley.appliance.agent.llm import LlamaEngine, find_model_file

    acme = load_agent(ACME_DIR, variables={"var": str(tmp_path_factory.mktemp("var"))})
    fetched(models_dir, acme.llm.model)
    return TestRunner(acme, LlamaEngine(find_model_file(models_dir, acme.llm.model)))


@pytest.fixture(scope="module")
def acme_tests():
    return {t.id: t for t in load_tests([ACME_DIR / "tests"])}


def test_a_tool_call_test_passes_on_a_plain_status_question(runner, acme_tests):
    outcome = runner.run(acme_tests["status-of-a-shipped-order"], 1, seed=1)
    assert outcome.status == "passed", outcome.reasons
    assert outcome.details["calls"][0] == ["lookup_order", {"order_id": "2208"}]


def test_a_judged_next_turn_test_gets_a_verdict_with_a_rationale(runner, acme_tests):
    outcome = runner.run(acme_tests["declines-a-taxi-booking"], 1, seed=1)
    assert outcome.status in ("passed", "failed"), outcome.reasons
    judged = outcome.details["judged"]["judge"]
    assert judged["verdict"] in ("pass", "fail", "unknown") and judged["rationale"]


def test_a_short_simulation_talks_both_sides_and_checks_the_database(runner, acme_tests):
    from dataclasses import replace

    test = replace(acme_tests["simulated-kettle-refund"], max_turns=2)
    outcome = runner.run(test, 1, seed=1)
    assert outcome.status in ("passed", "failed"), outcome.reasons
    callers = [line for line in outcome.details["transcript"] if line.startswith("caller: ")]
    assert len(callers) >= 1 and all(not line.startswith("caller: Thanks for calling Acme") for line in callers)
