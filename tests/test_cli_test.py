"""`parley test`: the command around the runner, with the scripted model standing in for the LLM
(the real model: tests/test_agent_testing_real.py)."""

import shutil
import textwrap

import pytest
import yaml

from parley.appliance.platform.versions import push
from parley.appliance.cli import main
from parley.appliance.cli import test as test_command
from parley.appliance.config import load_settings
from parley.appliance.demo import ACME_DIR
from parley.appliance.store import Store
from scripted_model import ScriptedModel, call, say

SCOPE_TEST = """\
tests:
  - id: taxi
    kind: next_turn
    tags: [out_of_scope]
    runs: 3
    history:
      - caller: "Book me a taxi."
    expect:
      contains: "only help with Acme orders"
"""


@pytest.fixture
def appliance(tmp_path, monkeypatch):
    monkeypatch.setenv("PARLEY_VAR", str(tmp_path / "var"))
    monkeypatch.setenv("COLUMNS", "200")
    folder = tmp_path / "acme"
    shutil.copytree(ACME_DIR, folder)
    agent_file = folder / "agent.yaml"  # a sampling agent: each run of a test is a new sample
    agent_file.write_text(agent_file.read_text().replace("temperature: 0.0", "temperature: 0.7"))
    shutil.rmtree(folder / "tests")
    (folder / "tests").mkdir()
    (folder / "tests" / "scope.yaml").write_text(SCOPE_TEST)
    return folder


def script(monkeypatch, *replies):
    model = ScriptedModel(*replies)
    monkeypatch.setattr(test_command.Suite, "engine", lambda self, name: model)
    return model


GOOD = say("Sorry, I can only help with Acme orders.")
BAD = say("Sure, your taxi is booked.")


def test_a_passing_suite_prints_rates_stores_the_run_and_exits_0(appliance, monkeypatch, capsys):
    script(monkeypatch, GOOD, GOOD, GOOD)
    assert main(["test", str(appliance)]) == 0
    out = capsys.readouterr().out
    assert "taxi" in out and "100% [44%, 100%] (3/3)" in out and "suite passed" in out
    with Store.open(load_settings().db_path) as store:
        assert store.db.execute("SELECT count(*), min(status) FROM test_results").fetchone() == (3, "passed")
        assert store.db.execute("SELECT verdict FROM test_runs").fetchone() == ("passed",)


def test_a_flaky_failing_suite_is_flagged_and_exits_1(appliance, monkeypatch, capsys):
    script(monkeypatch, GOOD, BAD, GOOD)
    assert main(["test", str(appliance)]) == 1
    out = capsys.readouterr().out
    assert "flaky" in out and "67%" in out and "suite failed" in out and "below the bar of 80%" in out


def test_a_broken_test_file_is_an_error_naming_file_and_line(appliance, monkeypatch, capsys):
    (appliance / "tests" / "scope.yaml").write_text(SCOPE_TEST.replace("tags: [out_of_scope]", "tags: [scope]"))
    script(monkeypatch)
    assert main(["test", str(appliance)]) == 2
    assert "scope.yaml:2: test 'taxi': unknown tag 'scope'" in capsys.readouterr().err


def test_compare_shows_a_broken_prompt_as_a_significant_regression(appliance, monkeypatch, capsys):
    (appliance / "tests" / "scope.yaml").write_text(SCOPE_TEST.replace("runs: 3", "runs: 8"))
    with Store.open(load_settings().db_path) as store:
        push(store, appliance, "good")
    script(monkeypatch, *[GOOD] * 8)
    assert main(["test", str(appliance), "--version", "v1"]) == 0
    raw = yaml.safe_load((appliance / "agent.yaml").read_text())
    raw["prompt"]["scope"] = "Help with anything the caller asks."
    (appliance / "agent.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    with Store.open(load_settings().db_path) as store:
        push(store, appliance, "broken scope")
    script(monkeypatch, *[BAD] * 8)
    capsys.readouterr()
    assert main(["test", str(appliance), "--compare", "v1", "v2"]) == 1
    out = capsys.readouterr().out
    assert "v2 has no stored test run made this way: running its suite now" in out
    taxi = next(line for line in out.splitlines() if line.startswith("│ taxi"))
    assert "100%" in taxi and "0% [0%, 32%] (0/8)" in taxi and "regression" in taxi


def test_from_call_writes_a_next_turn_test_that_runs(appliance, monkeypatch, tmp_path, capsys):
    with Store.open(load_settings().db_path) as store:
        version, _ = push(store, appliance, "first")
        call_id = store.start_call(version.id, "test").id
        store.append_turn(call_id, "agent", "Thanks for calling Acme. What can I do for you?")
        store.append_turn(call_id, "caller", "Where is order 2208?")
        answer = store.append_turn(call_id, "agent", "Order 2208 was delivered.")
        store.record_tool_call(answer.id, "lookup_order", {"order_id": "2208"}, "ok",
                               result={"order_id": "2208", "status": "shipped"}, started_ns=1, ended_ns=2)
        store.append_turn(call_id, "caller", "Thanks, bye.")
    out = tmp_path / "from-call.yaml"
    assert main(["test", "from-call", call_id, "--turn", "1"]) == 2
    assert "is the caller's; give the agent turn that answers it (2)" in capsys.readouterr().err
    assert main(["test", "from-call", call_id, "--turn", "2", "--out", str(out)]) == 0
    [written] = yaml.safe_load(out.read_text())["tests"]
    assert written["history"] == [{"caller": "Where is order 2208?"}] and written["kind"] == "next_turn"
    script(monkeypatch, call("lookup_order", order_id="2208"), say("Order 2208 has shipped."),
           {"rationale": "states the shipped status from the lookup", "verdict": "pass", "turn": 3})
    assert main(["test", str(appliance), "--file", str(out), "--runs", "1"]) == 0
    assert "1/1" in capsys.readouterr().out


def test_from_call_of_an_unknown_call_says_so(appliance, capsys):
    assert main(["test", "from-call", "00000000-0000-0000-0000-000000000000", "--turn", "1"]) == 2
    assert "error:" in capsys.readouterr().err


def test_test_file_from_elsewhere_and_only_and_tag_filters(appliance, monkeypatch, tmp_path, capsys):
    other = tmp_path / "more.yaml"
    other.write_text(textwrap.dedent(SCOPE_TEST).replace("id: taxi", "id: taxi-again").replace("runs: 3", "runs: 1"))
    script(monkeypatch, GOOD)
    assert main(["test", str(appliance), "--file", str(other), "--tag", "out_of_scope"]) == 0
    assert main(["test", str(appliance), "--only", "nothing-like-this"]) == 2
    assert "no test with id nothing-like-this" in capsys.readouterr().err
