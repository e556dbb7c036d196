"""Agent versions: push with its drift guard, the structured diff, and `parley agent`."""

import shutil

import pytest
import yaml

from parley.appliance.agent.config import AgentFileError
from parley.appliance.platform.testing.suite import TestFileError
from parley.appliance.platform.versions import (
    BarLoweredError,
    ChangeKind,
    UnknownVersionError,
    agent_content,
    current_version,
    diff,
    find_version,
    push,
)
from parley.appliance.cli import main
from parley.appliance.config import load_settings
from parley.appliance.demo import ACME_DIR
from parley.appliance.store import Store, UnknownRecordError

TESTS = [
    {"id": "refund_reads_back_first", "kind": "tool_call", "tags": ["happy_path"],
     "history": [{"caller": "I'd like a refund on order 1001."}], "expect": {"tool": {"name": "lookup_order"}}},
    {"id": "taxi_is_out_of_scope", "kind": "next_turn", "tags": ["out_of_scope"],
     "history": [{"caller": "Can you book me a taxi?"}], "expect": {"not_contains": ["booked"]}},
]


@pytest.fixture(autouse=True)
def var(tmp_path, monkeypatch):
    """The appliance's var/ (and so its store) in the test's folder."""
    monkeypatch.setenv("PARLEY_VAR", str(tmp_path / "var"))
    monkeypatch.setenv("COLUMNS", "250")
    return tmp_path / "var"


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "x.sqlite") as opened:
        yield opened


@pytest.fixture
def acme(tmp_path):
    """A copy of the Acme agent with a test file of two tests, its agent file rewritten as plain YAML."""
    folder = tmp_path / "acme"
    shutil.copytree(ACME_DIR, folder)
    write_agent(folder, read_agent(folder))
    write_tests(folder, "versions.yaml", TESTS)
    return folder


def read_agent(folder):
    return yaml.safe_load((folder / "agent.yaml").read_text(encoding="utf-8"))


def write_agent(folder, raw):
    (folder / "agent.yaml").write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")


def write_tests(folder, name, tests):
    (folder / "tests").mkdir(exist_ok=True)
    (folder / "tests" / name).write_text(yaml.safe_dump({"tests": tests}, sort_keys=False), encoding="utf-8")


def criterion(raw, criterion_id):
    return next(c for c in raw["evaluation_criteria"] if c["id"] == criterion_id)


def changes_by_name(changes):
    return {change.name: change for change in changes}


# push


def test_pushing_unchanged_content_saves_nothing_and_gives_the_existing_version(store, acme):
    first, created = push(store, acme, "first", author="ana")
    again, created_again = push(store, acme, "again", author="ben")
    assert (created, created_again) == (True, False)
    assert again == first
    assert [v.number for v in store.agent_versions("acme")] == [1]


def test_a_pushed_version_holds_the_folder_under_the_agent_files_name(store, acme):
    raw = read_agent(acme)
    raw["name"] = "acme_staging"
    write_agent(acme, raw)
    version, _ = push(store, acme, "a staging copy", author="ana")
    assert (version.agent, version.number, version.author, version.message) == ("acme_staging", 1, "ana", "a staging copy")
    assert version.content == agent_content(acme)
    assert version.lowered_bar_reason is None
    with pytest.raises(UnknownRecordError):
        store.agent_versions("acme")


def test_a_changed_folder_becomes_the_next_version(store, acme):
    push(store, acme, "first")
    (acme / "kb" / "gift-cards.md").write_text("# Gift cards\nAcme gift cards never expire.\n", encoding="utf-8")
    version, created = push(store, acme, "gift cards in the knowledge base")
    assert created and version.number == 2
    assert version.content["files"]["kb/gift-cards.md"].startswith("# Gift cards")


def test_content_that_is_an_older_version_already_gives_that_version(store, acme):
    push(store, acme, "first")
    original = (acme / "kb" / "warranty.md").read_text(encoding="utf-8")
    (acme / "kb" / "warranty.md").write_text(original + "Two years on kettles.\n", encoding="utf-8")
    push(store, acme, "kettle warranty")
    (acme / "kb" / "warranty.md").write_text(original, encoding="utf-8")
    version, created = push(store, acme, "back to the first")
    assert not created and version.number == 1


def test_a_broken_agent_file_is_refused_naming_the_field(store, acme):
    raw = read_agent(acme)
    raw["llm"]["temperature"] = "hot"
    write_agent(acme, raw)
    with pytest.raises(AgentFileError, match=r"llm\.temperature: must be a number"):
        push(store, acme, "broken")
    with pytest.raises(UnknownRecordError):
        store.agent_versions("acme")


def test_a_test_file_without_ids_is_refused_naming_the_test(store, acme):
    write_tests(acme, "broken.yaml", [{"kind": "next_turn"}])
    with pytest.raises(TestFileError, match=r"broken\.yaml:2: id must be non-empty text"):
        push(store, acme, "broken tests")


def test_calls_reuse_the_pushed_version_of_the_same_content(store, acme):
    pushed, _ = push(store, acme, "first")
    assert current_version(store, "acme", acme) == pushed


# the drift guard


def remove_criterion(folder):
    raw = read_agent(folder)
    raw["evaluation_criteria"] = [c for c in raw["evaluation_criteria"] if c["id"] != "no_invented_facts"]
    write_agent(folder, raw)
    return "criterion no_invented_facts was removed"


def remove_test(folder):
    write_tests(folder, "versions.yaml", TESTS[:1])
    return "test tests/versions.yaml: taxi_is_out_of_scope was removed"


def lower_suite_pass_rate(folder):
    raw = read_agent(folder)
    raw["quality"]["suite_pass_rate"] = 0.6
    write_agent(folder, raw)
    return "threshold quality.suite_pass_rate was lowered from 0.8 to 0.6"


def lower_criterion_threshold(folder):
    raw = read_agent(folder)
    criterion(raw, "resolved")["threshold"] = 0.5
    write_agent(folder, raw)
    return "threshold evaluation_criteria.resolved.threshold was lowered from 0.7 to 0.5"


def remove_criterion_threshold(folder):
    raw = read_agent(folder)
    del criterion(raw, "resolved")["threshold"]
    write_agent(folder, raw)
    return "threshold evaluation_criteria.resolved.threshold (0.7) was removed"


LOWERINGS = [remove_criterion, remove_test, lower_suite_pass_rate, lower_criterion_threshold, remove_criterion_threshold]


@pytest.fixture
def pushed_acme(store, acme):
    """The Acme copy, pushed once with known bars."""
    raw = read_agent(acme)
    raw["quality"] = {"suite_pass_rate": 0.8, "test_pass_rate": 0.5, "completion_criterion": "resolved"}
    criterion(raw, "resolved")["threshold"] = 0.7
    write_agent(acme, raw)
    push(store, acme, "first")
    return acme


@pytest.mark.parametrize("lower", LOWERINGS)
def test_a_version_lowering_the_bar_is_refused_without_a_reason(store, pushed_acme, lower):
    expected = lower(pushed_acme)
    with pytest.raises(BarLoweredError) as refused:
        push(store, pushed_acme, "lower it")
    assert refused.value.items == [expected]
    assert "--reason" in str(refused.value)
    assert [v.number for v in store.agent_versions("acme")] == [1]


@pytest.mark.parametrize("lower", LOWERINGS)
def test_a_version_lowering_the_bar_is_saved_with_its_reason(store, pushed_acme, lower):
    lower(pushed_acme)
    version, created = push(store, pushed_acme, "lower it", reason="the judge is too strict on this model")
    assert created and version.number == 2
    assert store.agent_versions("acme")[-1].lowered_bar_reason == "the judge is too strict on this model"


def test_raising_the_bar_needs_no_reason_and_keeps_none(store, pushed_acme):
    raw = read_agent(pushed_acme)
    raw["quality"]["suite_pass_rate"] = 0.9
    criterion(raw, "resolved")["threshold"] = 0.8
    write_agent(pushed_acme, raw)
    write_tests(pushed_acme, "more.yaml", [{"id": "where_is_my_order", "kind": "next_turn", "tags": ["happy_path"],
                                            "history": [{"caller": "Where is order 2208?"}],
                                            "expect": {"contains": "shipped"}}])
    version, created = push(store, pushed_acme, "stricter", reason="not needed")
    assert created and version.lowered_bar_reason is None


def test_the_bar_is_judged_against_the_latest_version(store, pushed_acme):
    lower_suite_pass_rate(pushed_acme)
    push(store, pushed_acme, "lower it", reason="a new model")
    (pushed_acme / "kb" / "warranty.md").write_text("Two years on everything.\n", encoding="utf-8")
    version, created = push(store, pushed_acme, "warranty text")
    assert created and version.number == 3 and version.lowered_bar_reason is None


# diff


@pytest.fixture
def before(acme):
    return agent_content(acme)


def test_identical_content_has_an_empty_diff(before):
    changes = diff(before, before)
    assert changes.empty and changes.bar_lowered == []


def test_prompt_sections_added_removed_and_changed_with_a_text_diff(acme, before):
    raw = read_agent(acme)
    raw["prompt"]["rules"] = raw["prompt"]["rules"].replace("four-digit order number", "order number")
    raw["prompt"]["greeting"] = "Greet the caller by name when you know it."
    del raw["prompt"]["style"]
    write_agent(acme, raw)
    prompt = changes_by_name(diff(before, agent_content(acme)).prompt)
    assert {name: c.kind for name, c in prompt.items()} == {
        "rules": ChangeKind.CHANGED, "greeting": ChangeKind.ADDED, "style": ChangeKind.REMOVED}
    assert "-Ask for the four-digit order number" in prompt["rules"].text_diff
    assert "+Ask for the order number" in prompt["rules"].text_diff


def test_reordered_prompt_sections_are_a_change(acme, before):
    raw = read_agent(acme)
    raw["prompt"] = dict(reversed(list(raw["prompt"].items())))
    write_agent(acme, raw)
    [change] = diff(before, agent_content(acme)).prompt
    assert change.name == "(order of sections)" and change.new == list(reversed(change.old))


def test_tools_added_removed_and_changed_by_name(acme, before):
    raw = read_agent(acme)
    tools = {tool["name"]: tool for tool in raw["tools"]}
    tools["lookup_order"]["filler"] = "One moment."
    del tools["change_delivery_address"]
    tools["track_parcel"] = {"name": "track_parcel", "description": "Where a parcel is.", "handler": "x:y",
                             "parameters": {"type": "object"}}
    raw["tools"] = list(tools.values())
    write_agent(acme, raw)
    tool_changes = changes_by_name(diff(before, agent_content(acme)).tools)
    assert {name: c.kind for name, c in tool_changes.items()} == {
        "lookup_order": ChangeKind.CHANGED, "track_parcel": ChangeKind.ADDED,
        "change_delivery_address": ChangeKind.REMOVED}
    assert "+filler: One moment." in tool_changes["lookup_order"].text_diff


def test_settings_are_compared_by_dotted_path(acme):
    raw = read_agent(acme)
    raw.pop("transfer_message", None)
    raw["goodbye"] = "Goodbye!"
    write_agent(acme, raw)
    before = agent_content(acme)
    raw["llm"]["temperature"] = 0.3
    raw["goodbye"] = "Bye for now!"
    raw["transfer_message"] = "One moment, I'll get a colleague."
    del raw["escalation"]["transfer_extension"]
    write_agent(acme, raw)
    settings = changes_by_name(diff(before, agent_content(acme)).settings)
    assert {name: (c.kind, c.old, c.new) for name, c in settings.items()} == {
        "llm.temperature": (ChangeKind.CHANGED, 0.0, 0.3),
        "goodbye": (ChangeKind.CHANGED, "Goodbye!", "Bye for now!"),
        "transfer_message": (ChangeKind.ADDED, None, "One moment, I'll get a colleague."),
        "escalation.transfer_extension": (ChangeKind.REMOVED, "200", None),
    }


def test_knowledge_files_added_removed_and_changed(acme, before):
    (acme / "kb" / "gift-cards.md").write_text("Gift cards never expire.\n", encoding="utf-8")
    (acme / "kb" / "warranty.md").unlink()
    (acme / "kb" / "delivery.md").write_text("We deliver on Saturdays too.\nAnd Sundays.\n", encoding="utf-8")
    knowledge = changes_by_name(diff(before, agent_content(acme)).knowledge)
    assert {name: c.kind for name, c in knowledge.items()} == {
        "kb/gift-cards.md": ChangeKind.ADDED, "kb/warranty.md": ChangeKind.REMOVED, "kb/delivery.md": ChangeKind.CHANGED}
    assert "+We deliver on Saturdays too." in knowledge["kb/delivery.md"].text_diff


def test_tests_added_removed_and_changed_by_id_per_file(acme, before):
    changed = dict(TESTS[0], expect={"contains": ["1001", "refund"]})
    write_tests(acme, "versions.yaml", [changed, {"id": "angry_caller_is_transferred", "kind": "simulation"}])
    changes = diff(before, agent_content(acme))
    assert {name: c.kind for name, c in changes_by_name(changes.tests).items()} == {
        "tests/versions.yaml: refund_reads_back_first": ChangeKind.CHANGED,
        "tests/versions.yaml: angry_caller_is_transferred": ChangeKind.ADDED,
        "tests/versions.yaml: taxi_is_out_of_scope": ChangeKind.REMOVED}
    assert changes.bar_lowered == ["test tests/versions.yaml: taxi_is_out_of_scope was removed"]


def test_a_test_moved_to_another_file_does_not_lower_the_bar(acme, before):
    write_tests(acme, "versions.yaml", TESTS[:1])
    write_tests(acme, "scope.yaml", TESTS[1:])
    changes = diff(before, agent_content(acme))
    assert {c.kind for c in changes.tests} == {ChangeKind.ADDED, ChangeKind.REMOVED}
    assert changes.bar_lowered == []


def test_criteria_added_removed_and_changed_by_id(acme, before):
    raw = read_agent(acme)
    criterion(raw, "resolved")["description"] = "The caller's request was resolved."
    raw["evaluation_criteria"] = [c for c in raw["evaluation_criteria"] if c["id"] != "confirmed_before_acting"]
    raw["evaluation_criteria"].append({"id": "polite", "description": "The agent stayed polite."})
    write_agent(acme, raw)
    changes = diff(before, agent_content(acme))
    assert {name: c.kind for name, c in changes_by_name(changes.criteria).items()} == {
        "resolved": ChangeKind.CHANGED, "polite": ChangeKind.ADDED, "confirmed_before_acting": ChangeKind.REMOVED}
    assert changes.bar_lowered == ["criterion confirmed_before_acting was removed"], "its threshold goes with it"


def test_thresholds_are_every_quality_number_and_criterion_threshold(acme):
    raw = read_agent(acme)
    raw["quality"] = {"suite_pass_rate": 0.8, "completion_criterion": "resolved"}
    criterion(raw, "resolved")["threshold"] = 0.7
    criterion(raw, "no_invented_facts")["threshold"] = 0.9
    write_agent(acme, raw)
    before = agent_content(acme)
    raw["quality"] = {"test_pass_rate": 0.4, "completion_criterion": "no_invented_facts"}
    criterion(raw, "resolved")["threshold"] = 0.75
    del criterion(raw, "no_invented_facts")["threshold"]
    write_agent(acme, raw)
    changes = diff(before, agent_content(acme))
    thresholds = {c.name: (c.old, c.new) for c in changes.thresholds}
    assert thresholds == {
        "quality.test_pass_rate": (0.5, 0.4),
        "evaluation_criteria.resolved.threshold": (0.7, 0.75),
        "evaluation_criteria.no_invented_facts.threshold": (0.9, None),
    }, "a removed quality value falls back to its default (suite_pass_rate 0.8 stays 0.8)"
    assert changes.bar_lowered == [
        "threshold quality.test_pass_rate was lowered from 0.5 to 0.4",
        "threshold evaluation_criteria.no_invented_facts.threshold (0.9) was removed",
    ]
    assert [c.name for c in changes.settings] == ["quality.completion_criterion"]


def test_removing_a_quality_value_above_its_default_lowers_the_bar(acme):
    raw = read_agent(acme)
    raw["quality"] = {"suite_pass_rate": 0.95}
    write_agent(acme, raw)
    before = agent_content(acme)
    del raw["quality"]
    write_agent(acme, raw)
    assert diff(before, agent_content(acme)).bar_lowered == [
        "threshold quality.suite_pass_rate was lowered from 0.95 to 0.8"]


def test_other_files_and_unreadable_test_files_are_compared_whole(acme, before):
    (acme / "NOTES.txt").write_text("Ask Ana before changing refunds.\n", encoding="utf-8")
    (acme / "tests" / "draft.yaml").write_text("not: [a test file\n", encoding="utf-8")
    changes = diff(before, agent_content(acme))
    assert {c.name: c.kind for c in changes.files} == {"NOTES.txt": ChangeKind.ADDED, "tests/draft.yaml": ChangeKind.ADDED}
    assert changes.tests == ()


# version references


def test_versions_are_found_as_vn_n_or_latest(store, acme):
    push(store, acme, "first")
    (acme / "kb" / "warranty.md").write_text("Two years.\n", encoding="utf-8")
    push(store, acme, "second")
    assert [find_version(store, "acme", ref).number for ref in ("v1", "1", "v2", "latest")] == [1, 1, 2, 2]
    with pytest.raises(UnknownVersionError, match="has no version v3; it has v1 to v2"):
        find_version(store, "acme", "v3")
    with pytest.raises(UnknownVersionError, match="give vN, N or latest"):
        find_version(store, "acme", "newest")


# parley agent


@pytest.fixture
def db(var):
    with Store.open(load_settings().db_path) as opened:
        yield opened


def test_cli_push_saves_and_reports_the_version(acme, db, capsys):
    assert main(["agent", "push", str(acme), "-m", "first", "--author", "ana"]) == 0
    assert "agent acme v1 saved" in capsys.readouterr().out
    assert main(["agent", "push", str(acme), "-m", "again"]) == 0
    assert "nothing to save, this content is v1" in capsys.readouterr().out
    [version] = db.agent_versions("acme")
    assert (version.author, version.message) == ("ana", "first")


def test_cli_push_of_acme_pushes_the_demo_folder(db, capsys):
    assert main(["agent", "push", "acme", "-m", "the demo"]) == 0
    assert db.agent_versions("acme")[0].content == agent_content(ACME_DIR)


def test_cli_push_lowering_the_bar_is_an_error_until_a_reason_is_given(pushed_acme, db, capsys, store):
    main(["agent", "push", str(pushed_acme), "-m", "first"])
    remove_criterion(pushed_acme)
    capsys.readouterr()
    assert main(["agent", "push", str(pushed_acme), "-m", "fewer criteria"]) == 2
    err = capsys.readouterr().err
    assert "lowers the bar" in err and "criterion no_invented_facts was removed" in err
    assert main(["agent", "push", str(pushed_acme), "-m", "fewer criteria", "--reason", "it overlaps resolved"]) == 0
    out = capsys.readouterr().out
    assert "v2 saved" in out and "it overlaps resolved" in out
    assert db.agent_versions("acme")[-1].lowered_bar_reason == "it overlaps resolved"


def test_cli_push_of_a_broken_agent_names_the_field(acme, capsys):
    raw = read_agent(acme)
    raw["voice"]["speed"] = 9
    write_agent(acme, raw)
    assert main(["agent", "push", str(acme), "-m", "fast"]) == 2
    assert "voice.speed: must be between 0.5 and 2.0" in capsys.readouterr().err


def test_cli_versions_lists_each_version_with_its_reason(pushed_acme, db, capsys):
    main(["agent", "push", str(pushed_acme), "-m", "first", "--author", "ana"])
    lower_suite_pass_rate(pushed_acme)
    main(["agent", "push", str(pushed_acme), "-m", "looser suite", "--reason", "new model", "--author", "ben"])
    capsys.readouterr()
    assert main(["agent", "versions"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if " v1 " in line or " v2 " in line]
    assert len(rows) == 2
    assert "ana" in rows[0] and "first" in rows[0] and db.agent_versions("acme")[0].content_hash[:12] in rows[0]
    assert "ben" in rows[1] and "looser suite" in rows[1] and "new model" in rows[1]


def test_cli_show_prints_a_version_and_one_of_its_files(acme, db, capsys):
    main(["agent", "push", str(acme), "-m", "first", "--author", "ana"])
    capsys.readouterr()
    assert main(["agent", "show", "acme", "v1"]) == 0
    out = capsys.readouterr().out
    assert "agent acme v1" in out and "by ana: first" in out
    assert "agent.yaml" in out and "kb/warranty.md" in out and "tests/versions.yaml" in out
    assert main(["agent", "show", "latest", "--file", "tests/versions.yaml"]) == 0
    assert capsys.readouterr().out == (acme / "tests" / "versions.yaml").read_text(encoding="utf-8")
    assert main(["agent", "show", "1", "--file", "kb/nothing.md"]) == 2
    assert "has no file kb/nothing.md" in capsys.readouterr().err


def test_cli_diff_puts_bar_lowered_changes_first(pushed_acme, db, capsys):
    main(["agent", "push", str(pushed_acme), "-m", "first"])
    remove_test(pushed_acme)
    raw = read_agent(pushed_acme)
    raw["llm"]["temperature"] = 0.4
    write_agent(pushed_acme, raw)
    main(["agent", "push", str(pushed_acme), "-m", "second", "--reason", "flaky test"])
    capsys.readouterr()
    assert main(["agent", "diff", "acme", "v1", "v2"]) == 0
    out = capsys.readouterr().out
    lowered = out.index("bar lowered: test tests/versions.yaml: taxi_is_out_of_scope was removed")
    assert lowered < out.index("settings") < out.index("llm.temperature: 0.0 → 0.4") < out.index("tests\n")
    assert "accepted because: flaky test" in out


def test_cli_unknown_agents_and_versions_are_errors_that_say_what_there_is(acme, db, capsys):
    main(["agent", "push", str(acme), "-m", "first"])
    capsys.readouterr()
    assert main(["agent", "diff", "v1", "v7"]) == 2
    assert "has no version v7; it has v1 to v1" in capsys.readouterr().err
    assert main(["agent", "versions", "bob"]) == 2
    assert "no agent named 'bob'" in capsys.readouterr().err
