"""Judge agreement: the labelled set, its checks, the arithmetic of agreement and kappa, and
`parley judge-check`, with the scripted model standing in for the judge (and one test on the
real model)."""

import argparse
import itertools
import textwrap
from collections import Counter

import pytest

from parley.appliance.agent.config import load_agent
from parley.appliance.agent.llm import find_model_file
from parley.appliance.platform.testing.judge import Judge
from parley.appliance.platform.testing.judge_check import (
    JUDGE_SET,
    JudgeSetError,
    LabelledTranscript,
    check,
    load_judge_set,
)
from parley.appliance.cli import UserError
from parley.appliance.cli import judge_check as judge_check_command
from parley.appliance.demo import ACME_DIR
from scripted_model import ScriptedModel

CRITERIA = {"resolved": "The caller's request was resolved in the call, or correctly handed to a person."}
REAL_MODEL = "llm-qwen2.5-coder-1.5b"


def verdict(v, rationale="because", turn=1):
    return {"rationale": rationale, "verdict": v, "turn": turn}


def labelled(item_id, expected):
    return LabelledTranscript(item_id, "The agent is polite.", expected, "said so",
                              ("caller: Hi.", "agent: Hello, how can I help?"))


def acme_criteria(tmp_path):
    agent = load_agent(ACME_DIR, variables={"var": str(tmp_path)})
    return {c.id: c.description for c in agent.evaluation_criteria}


def write_set(tmp_path, text):
    path = tmp_path / "judge_set.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def ticking_clock(step):
    """A clock that moves ``step`` seconds on every reading."""
    ticks = itertools.count()
    return lambda: next(ticks) * step


# --- agreement ---------------------------------------------------------------------------------


def test_agreement_kappa_and_confusion_are_counted_from_expected_and_got():
    items = [labelled("a", "pass"), labelled("b", "pass"), labelled("c", "fail"), labelled("d", "fail")]
    judge = Judge(ScriptedModel(verdict("pass"), verdict("fail"), verdict("fail"), verdict("fail")))
    agreement = check(judge, items)
    assert (agreement.rate.passed, agreement.rate.total) == (3, 4)
    assert agreement.confusion == Counter({("pass", "pass"): 1, ("pass", "fail"): 1, ("fail", "fail"): 2})
    # observed 0.75; by chance 0.5 x 0.25 + 0.5 x 0.75 = 0.5; kappa (0.75 - 0.5) / (1 - 0.5)
    assert agreement.kappa == pytest.approx(0.5)
    assert [j.item.id for j in agreement.disagreements] == ["b"]


def test_a_judge_that_always_passes_agrees_on_half_a_balanced_set_and_has_kappa_zero():
    items = [labelled("a", "pass"), labelled("b", "fail")]
    agreement = check(Judge(ScriptedModel(verdict("pass"), verdict("pass"))), items)
    assert agreement.rate.value == 0.5 and agreement.kappa == pytest.approx(0.0)


def test_unknown_counts_as_a_disagreement():
    items = [labelled("a", "pass"), labelled("b", "fail")]
    agreement = check(Judge(ScriptedModel(verdict("unknown", "cannot tell"), verdict("fail"))), items)
    assert agreement.rate.passed == 1
    assert agreement.confusion[("pass", "unknown")] == 1
    assert agreement.disagreements[0].rationale == "cannot tell"


def test_a_reply_that_does_not_parse_is_a_disagreement_labelled_error_not_a_crash():
    items = [labelled("a", "pass"), labelled("b", "pass")]
    agreement = check(Judge(ScriptedModel('{"rationale": "cut off', verdict("pass"))), items)
    broken = agreement.disagreements[0]
    assert (broken.item.id, broken.got) == ("a", "error")
    assert broken.rationale.startswith("the judge's reply is not JSON")
    assert agreement.rate.passed == 1 and agreement.confusion[("pass", "error")] == 1


def test_seconds_per_item_come_from_the_clock_around_each_judgement():
    items = [labelled("a", "pass"), labelled("b", "fail")]
    agreement = check(Judge(ScriptedModel(verdict("pass"), verdict("fail"))), items, clock=ticking_clock(2.5))
    assert [j.seconds for j in agreement.judgements] == [2.5, 2.5]
    assert agreement.seconds_per_item == 2.5


def test_the_judge_is_asked_the_requirement_on_the_numbered_transcript():
    model = ScriptedModel(verdict("pass"))
    check(Judge(model), [labelled("a", "pass")])
    assert "1. caller: Hi.\n2. agent: Hello, how can I help?" in model.prompts[0]
    assert "Requirement: The agent is polite." in model.prompts[0]


def test_progress_hears_of_every_judgement_in_order():
    seen = []
    check(Judge(ScriptedModel(verdict("pass"), verdict("pass"))), [labelled("a", "pass"), labelled("b", "fail")],
          progress=lambda judgement: seen.append((judgement.item.id, judgement.agrees)))
    assert seen == [("a", True), ("b", False)]


def test_an_empty_check_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        check(Judge(ScriptedModel()), [])


# --- the labelled set --------------------------------------------------------------------------


def test_the_shipped_set_is_balanced_with_at_least_30_items_on_every_acme_criterion(tmp_path):
    criteria = acme_criteria(tmp_path)
    items = load_judge_set(JUDGE_SET, criteria)
    counts = Counter(item.verdict for item in items)
    assert len(items) >= 30 and counts["pass"] == counts["fail"]
    asked = Counter(item.requirement for item in items)
    for criterion, description in criteria.items():
        assert asked[description] >= 3, f"{criterion} is asked fewer than 3 times"
        assert {item.verdict for item in items if item.requirement == description} == {"pass", "fail"}
    assert all(3 <= len(item.transcript) <= 10 for item in items)


def test_a_criterion_item_is_asked_the_criterion_description(tmp_path):
    path = write_set(tmp_path, """\
        items:
          - id: handed-over
            criterion: resolved
            verdict: pass
            why: handed to a person as asked
            transcript: |
              caller: A person, please.
              agent calls transfer_to_human {"reason": "asked for a person"}
              transfer_to_human ok: {}
        """)
    [item] = load_judge_set(path, CRITERIA)
    assert item.requirement == CRITERIA["resolved"]
    assert item.transcript == ("caller: A person, please.",
                               'agent calls transfer_to_human {"reason": "asked for a person"}',
                               "transfer_to_human ok: {}")


GOOD_ITEM = """\
  - id: polite
    requirement: The agent is polite.
    verdict: pass
    why: it is
    transcript: |
      caller: Hi.
      agent: Hello!
"""


@pytest.mark.parametrize(("text", "message"), [
    ("tests: []\n", "a mapping with one key, `items:`"),
    ("items: [\n", "not valid YAML at line 2"),
    ("items:\n  - just text\n", "item 1: each item is a mapping"),
    ("items:\n  - requirement: x\n    verdict: pass\n    why: y\n    transcript: 'caller: a'\n", "item 1: id must be"),
    (GOOD_ITEM + GOOD_ITEM, "item 2 ('polite'): a second item with id 'polite'"),
    (GOOD_ITEM.replace("verdict: pass", "verdict: unknown"), "verdict must be pass or fail, not 'unknown'"),
    (GOOD_ITEM.replace("    why: it is\n", ""), "item 1 ('polite'): why is required"),
    (GOOD_ITEM.replace("verdict: pass", "verdict: pass\n    notes: x"), "unknown field 'notes'"),
    (GOOD_ITEM.replace("requirement: The agent is polite.", "criterion: polite"), "unknown criterion 'polite'; "
                                                                                 "the agent's criteria: resolved"),
    (GOOD_ITEM.replace("verdict: pass", "verdict: pass\n    criterion: resolved"), "either `criterion:`"),
    (GOOD_ITEM.replace("agent: Hello!", "bot: Hello!"), "transcript line 2 is not `caller: ...`"),
    (GOOD_ITEM.replace("agent: Hello!", 'agent calls lookup_order {"order_id": 4512'),
     "transcript line 2 is not `caller: ...`"),
    (GOOD_ITEM.replace("agent: Hello!", 'lookup_order ok: {"order_id": 4512,}'),
     "transcript line 2 has JSON that does not parse"),
])
def test_a_malformed_set_is_an_error_naming_the_file_and_the_item(tmp_path, text, message):
    path = write_set(tmp_path, text if text.startswith(("items", "tests")) else "items:\n" + text)
    with pytest.raises(JudgeSetError) as raised:
        load_judge_set(path, CRITERIA)
    assert str(raised.value).startswith(f"{path}: ") and message in str(raised.value)


def test_a_missing_set_says_so(tmp_path):
    with pytest.raises(JudgeSetError, match="no such file"):
        load_judge_set(tmp_path / "absent.yaml", CRITERIA)


# --- parley judge-check ------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An appliance home whose models/ holds one (fake) judge model."""
    models = tmp_path / "models"
    (models / "llm-fake").mkdir(parents=True)
    (models / "llm-fake" / "fake.gguf").write_bytes(b"GGUF")
    monkeypatch.setenv("PARLEY_HOME", str(tmp_path))
    monkeypatch.delenv("PARLEY_MODELS", raising=False)
    monkeypatch.delenv("PARLEY_VAR", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


def judge_check(*argv):
    parser = argparse.ArgumentParser(prog="parley")
    judge_check_command.register(parser.add_subparsers())
    args = parser.parse_args(["judge-check", *argv])
    return args.run(args)


def scripted_engines(monkeypatch, *replies):
    """Every model the command loads is the scripted model; returns the paths it was asked for."""
    loaded = []
    model = ScriptedModel(*replies)

    def engine(path):
        loaded.append(path)
        return model

    monkeypatch.setattr("parley.appliance.agent.llm.LlamaEngine", engine)
    return loaded


def test_judge_check_prints_agreement_kappa_and_each_disagreement(home, monkeypatch, capsys):
    first, second = load_judge_set(JUDGE_SET, acme_criteria(home))[:2]
    wrong = {"pass": "fail", "fail": "pass"}[second.verdict]
    loaded = scripted_engines(monkeypatch, verdict(first.verdict), verdict(wrong, "the judge's reason"))
    assert judge_check("--model", "llm-fake", "--limit", "2") == 0
    out = capsys.readouterr().out
    assert loaded == [home / "models" / "llm-fake" / "fake.gguf"]
    assert "judge llm-fake" in out and "50% [9%, 91%] (1/2)" in out and "Cohen's kappa" in out
    assert "where llm-fake disagrees" in out and second.id in out and "the judge's reason" in out
    assert first.id not in out


def test_without_a_model_the_acme_agents_own_is_asked_for(home):
    default = load_agent(ACME_DIR, variables={"var": str(home)}).llm.model
    with pytest.raises(UserError, match=f"run `parley models fetch --only {default}`"):
        judge_check()


def test_a_missing_model_is_named_before_any_model_is_loaded(home, monkeypatch):
    loaded = scripted_engines(monkeypatch)
    with pytest.raises(UserError, match="llm-absent has no .gguf model: run `parley models fetch --only llm-absent`"):
        judge_check("--model", "llm-fake", "--model", "llm-absent")
    assert loaded == []


def test_a_malformed_set_is_a_user_error_naming_the_file(home, tmp_path):
    path = write_set(tmp_path, "items: []\n")
    with pytest.raises(UserError, match=str(path)):
        judge_check("--model", "llm-fake", "--set", str(path))


def test_limit_must_be_positive(home):
    with pytest.raises(UserError, match="--limit must be at least 1"):
        judge_check("--model", "llm-fake", "--limit", "0")


# --- the real model ----------------------------------------------------------------------------


@pytest.mark.models
@pytest.mark.slow
def test_the_real_judge_gives_a_verdict_and_a_rationale_on_shipped_items(models_dir, tmp_path):
    if not any(models_dir.joinpath(REAL_MODEL).glob("*.gguf")):
        pytest.skip(f"{models_dir / REAL_MODEL} has no .gguf: run `parley models fetch --only {REAL_MODEL}`")
    from parley.appliance.agent.llm import LlamaEngine

    items = load_judge_set(JUDGE_SET, acme_criteria(tmp_path))[:4]
    agreement = check(Judge(LlamaEngine(find_model_file(models_dir, REAL_MODEL))), items)
    for judgement in agreement.judgements:
        assert judgement.got in ("pass", "fail", "unknown"), f"{judgement.item.id}: {judgement.rationale}"
        assert judgement.rationale.strip()
