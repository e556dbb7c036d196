"""Agent versions: an agent folder's files as immutable content in the store.

A call records the version that served it (``current_version``). People save versions with
``push``, which checks the folder first and guards against drift: a version that lowers the bar
(removes an evaluation criterion or a test, lowers a quality threshold) is saved only with a
reason, kept beside it. ``diff`` says what changed between two versions, part by part.
"""

import dataclasses
import difflib
import getpass
import hashlib
import json
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import yaml

from parley.appliance.agent.config import AGENT_FILE, AgentFileError, QualitySettings, load_agent
from parley.appliance.agent.worker import agent_variables
from parley.appliance.config import load_settings

CONTENT_SUFFIXES = (".yaml", ".yml", ".md", ".txt")
KB_FOLDER = "kb/"
TESTS_FOLDER = "tests/"
VERSION_REF = re.compile(r"^v?(\d+)$")
AGENT_FILE_PARTS = ("prompt", "tools", "evaluation_criteria")
"""Top-level keys of agent.yaml with a part of their own in a diff; every other key is a setting."""


class BarLoweredError(ValueError):
    """A push that lowers the bar without a reason; ``items`` says how, one sentence each."""

    def __init__(self, agent, items):
        self.agent, self.items = agent, list(items)
        listed = "".join(f"\n  - {item}" for item in self.items)
        super().__init__(f"agent {agent!r}: this version lowers the bar:{listed}\n"
                         f"nothing was saved; push again with a reason (--reason \"...\") if that is intended")


class UnknownVersionError(LookupError):
    """A version reference that is not ``vN``, ``N`` or ``latest``, or names no saved version."""


class ChangeKind(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass(frozen=True)
class Change:
    """One named part that differs between two versions."""

    name: str
    """A prompt section, a tool, a setting's dotted path, a criterion, a file, or ``file: test_id``."""
    kind: ChangeKind
    old: object = None
    """The value before; None when added."""
    new: object = None
    """The value after; None when removed."""
    text_diff: str = ""
    """A unified diff of the old and new text when either spans lines; empty otherwise."""


@dataclass(frozen=True)
class AgentDiff:
    """What changed from one version's content to another's, part by part, each in file order."""

    prompt: tuple[Change, ...]
    tools: tuple[Change, ...]
    settings: tuple[Change, ...]
    """Every other key of agent.yaml by dotted path (``llm.temperature``), except thresholds."""
    criteria: tuple[Change, ...]
    thresholds: tuple[Change, ...]
    """Numbers under ``quality:`` (defaults applied) and criterion thresholds, by dotted path."""
    knowledge: tuple[Change, ...]
    tests: tuple[Change, ...]
    files: tuple[Change, ...]
    """Files that are neither agent.yaml, knowledge, nor readable test files."""
    bar_lowered: list[str]
    """One sentence per way the new version lowers the bar; empty when it lowers none."""

    def parts(self):
        """(title, changes) for each part of the agent, in the order a reader wants them."""
        return (("prompt", self.prompt), ("tools", self.tools), ("settings", self.settings),
                ("evaluation criteria", self.criteria), ("thresholds", self.thresholds),
                ("knowledge", self.knowledge), ("tests", self.tests), ("other files", self.files))

    @property
    def empty(self):
        """No part differs (the files may still differ in comments or layout)."""
        return not any(changes for _, changes in self.parts())


def agent_content(folder):
    """Every text file of the agent folder (agent.yaml, kb/, tests/) by relative path."""
    folder = Path(folder)
    files = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and path.suffix in CONTENT_SUFFIXES and not any(p.startswith(".") for p in relative.parts):
            files[relative.as_posix()] = path.read_text(encoding="utf-8")
    return {"files": files}


def content_hash(content):
    """The store's hash of ``content``: sha256 of its canonical JSON."""
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def current_version(store, name, folder, *, message="saved when first used by a call"):
    """The version of agent ``name`` with the folder's exact content, saved now if there is none."""
    content = agent_content(folder)
    saved = _with_hash(_saved_versions(store, name), content_hash(content))
    if saved is not None:
        return saved
    return store.save_agent_version(name, content, author=getpass.getuser(), message=message)


def push(store, folder, message, *, author=None, reason=None):
    """Save the agent in ``folder`` as its next version; (version, created).

    The agent file and the test files (fully, as `parley test` reads them) are checked first, so a broken agent is never saved. Content
    that already is a version saves nothing and gives that version. A version that lowers the bar
    against the latest raises ``BarLoweredError`` unless ``reason`` is given; the reason is kept
    with it (and ignored when the bar is not lowered).
    """
    from parley.appliance.agent.llm import all_tools
    from parley.appliance.platform.testing.suite import load_tests

    folder = Path(folder)
    config = load_agent(folder, variables=agent_variables(load_settings()))
    name = config.name
    content = agent_content(folder)
    if (folder / "tests").is_dir():
        load_tests([folder / "tests"], tools={t.name for t in all_tools(config)})
    with store.transaction():
        versions = _saved_versions(store, name)
        same = _with_hash(versions, content_hash(content))
        if same is not None:
            return same, False
        lowered = diff(versions[-1].content, content).bar_lowered if versions else []
        if lowered and not reason:
            raise BarLoweredError(name, lowered)
        version = store.save_agent_version(name, content, author=author or getpass.getuser(), message=message,
                                           lowered_bar_reason=reason if lowered else None)
    return version, True


def find_version(store, agent, ref):
    """Version ``ref`` of ``agent``: ``vN``, ``N`` or ``latest``."""
    versions = store.agent_versions(agent)
    if ref == "latest":
        return versions[-1]
    match = VERSION_REF.match(ref)
    if match is None:
        raise UnknownVersionError(f"{ref!r} is not a version: give vN, N or latest")
    for version in versions:
        if version.number == int(match[1]):
            return version
    raise UnknownVersionError(f"agent {agent!r} has no version {ref}; it has v1 to v{versions[-1].number}")


def read_tests(path, text):
    """The agent tests of one test file by id; ``AgentFileError`` when it is not a ``tests:`` list with unique ids."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AgentFileError(path, "", f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("tests"), list):
        raise AgentFileError(path, "tests", "a test file holds a list of tests under `tests:`")
    tests = {}
    for i, item in enumerate(raw["tests"]):
        test_id = item.get("id") if isinstance(item, dict) else None
        if not isinstance(test_id, str) or not test_id:
            raise AgentFileError(path, f"tests[{i}].id", "every test needs an id (text)")
        if test_id in tests:
            raise AgentFileError(path, f"tests[{i}].id", f"a second test with id {test_id}")
        tests[test_id] = item
    return tests


def diff(old, new):
    """What changed from content ``old`` to content ``new`` (each as ``agent_content`` gives it).

    The bar is lowered by a criterion removed (its threshold with it), a test whose id is gone from
    every test file (one moved to another file does not count), and a threshold lowered or removed.
    """
    old_files, new_files = old["files"], new["files"]
    old_agent, new_agent = _agent_file(old_files), _agent_file(new_files)
    old_tests, old_unread = _tests(old_files)
    new_tests, new_unread = _tests(new_files)
    old_criteria = _by_key(old_agent.get("evaluation_criteria"), "id")
    new_criteria = _by_key(new_agent.get("evaluation_criteria"), "id")
    old_thresholds, new_thresholds = _thresholds(old_agent), _thresholds(new_agent)
    parts = {
        "prompt": _prompt_changes(_mapping(old_agent.get("prompt")), _mapping(new_agent.get("prompt"))),
        "tools": _changes(_by_key(old_agent.get("tools"), "name"), _by_key(new_agent.get("tools"), "name")),
        "settings": _changes(_settings(old_agent, old_thresholds), _settings(new_agent, new_thresholds)),
        "criteria": _changes(old_criteria, new_criteria),
        "thresholds": _changes(old_thresholds, new_thresholds),
        "knowledge": _changes(_under(old_files, KB_FOLDER), _under(new_files, KB_FOLDER)),
        "tests": _changes(old_tests, new_tests),
        "files": _changes(_other_files(old_files, old_unread), _other_files(new_files, new_unread)),
    }
    removed_criteria = [name for name in old_criteria if name not in new_criteria]
    new_test_ids = {test["id"] for test in new_tests.values()}
    bar_lowered = [f"criterion {name} was removed" for name in removed_criteria]
    bar_lowered += [f"test {name} was removed" for name, test in old_tests.items() if test["id"] not in new_test_ids]
    gone_with_criteria = {_criterion_threshold(name) for name in removed_criteria}
    for change in parts["thresholds"]:
        if change.kind is ChangeKind.REMOVED and change.name not in gone_with_criteria:
            bar_lowered.append(f"threshold {change.name} ({change.old}) was removed")
        elif change.kind is ChangeKind.CHANGED and change.new < change.old:
            bar_lowered.append(f"threshold {change.name} was lowered from {change.old} to {change.new}")
    return AgentDiff(**parts, bar_lowered=bar_lowered)


def _saved_versions(store, name):
    try:
        return store.agent_versions(name)
    except LookupError:
        return []


def _with_hash(versions, wanted):
    return next((version for version in versions if version.content_hash == wanted), None)


def _is_test_file(path):
    return path.startswith(TESTS_FOLDER) and path.endswith((".yaml", ".yml"))


def _agent_file(files):
    return _mapping(yaml.safe_load(files.get(AGENT_FILE, "")))


def _mapping(value):
    return value if isinstance(value, dict) else {}


def _by_key(items, key):
    """A list of mappings (tools, criteria) as key -> item; items without the key are skipped."""
    return {item[key]: item for item in items or () if isinstance(item, dict) and key in item}


def _flatten(mapping, prefix=""):
    """Nested mappings as dotted path -> value (``llm.temperature``); an empty mapping adds nothing."""
    flat = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _thresholds(agent):
    """The agent's bars by dotted path: numbers under ``quality:`` over their defaults, criterion thresholds."""
    defaults = {f"quality.{f.name}": f.default for f in dataclasses.fields(QualitySettings) if _is_number(f.default)}
    stated = {path: value for path, value in _flatten({"quality": _mapping(agent.get("quality"))}).items()
              if _is_number(value)}
    criteria = {_criterion_threshold(name): item["threshold"]
                for name, item in _by_key(agent.get("evaluation_criteria"), "id").items()
                if _is_number(item.get("threshold"))}
    return {**defaults, **stated, **criteria}


def _criterion_threshold(criterion):
    return f"evaluation_criteria.{criterion}.threshold"


def _settings(agent, thresholds):
    rest = {key: value for key, value in agent.items() if key not in AGENT_FILE_PARTS}
    return {path: value for path, value in _flatten(rest).items() if path not in thresholds}


def _tests(files):
    """Every test of the readable test files as ``file: id`` -> test, and the test files that cannot be read."""
    tests, unread = {}, set()
    for path, text in files.items():
        if _is_test_file(path):
            try:
                tests.update({f"{path}: {test_id}": item for test_id, item in read_tests(path, text).items()})
            except AgentFileError:
                unread.add(path)
    return tests, unread


def _under(files, folder):
    return {path: text for path, text in files.items() if path.startswith(folder)}


def _other_files(files, unread):
    return {path: text for path, text in files.items() if path != AGENT_FILE and not path.startswith(KB_FOLDER)
            and (path in unread or not _is_test_file(path))}


def _prompt_changes(old, new):
    """Section changes, and the order of the sections when it changed: the prompt is rendered in file order."""
    changes = _changes(old, new)
    old_order, new_order = [s for s in old if s in new], [s for s in new if s in old]
    if old_order != new_order:
        changes += (Change("(order of sections)", ChangeKind.CHANGED, old_order, new_order),)
    return changes


def _changes(old, new):
    """Added, changed and removed entries between two mappings name -> value: new's order, then removals."""
    changes = []
    for name, value in new.items():
        if name not in old:
            changes.append(Change(name, ChangeKind.ADDED, new=value))
        elif old[name] != value:
            changes.append(Change(name, ChangeKind.CHANGED, old[name], value, _text_diff(name, old[name], value)))
    changes += [Change(name, ChangeKind.REMOVED, old=value) for name, value in old.items() if name not in new]
    return tuple(changes)


def _text_diff(name, old, new):
    old_text, new_text = _as_text(old), _as_text(new)
    if "\n" not in old_text and "\n" not in new_text:
        return ""
    lines = difflib.unified_diff(old_text.splitlines(), new_text.splitlines(), f"a/{name}", f"b/{name}", lineterm="")
    return "\n".join(lines)


def _as_text(value):
    if isinstance(value, (dict, list)):
        return yaml.safe_dump(value, sort_keys=False, allow_unicode=True, default_flow_style=False).strip()
    return str(value).strip()
