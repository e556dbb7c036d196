"""Agent test files (``agents/<name>/tests/*.yaml``, or any path): parsed and checked, every
problem a ``TestFileError`` naming the file and line.

A file holds ``tests:``, a list of tests. Every test has an ``id`` (unique in the suite), a
``kind`` and ``tags`` from ``TAGS``, and optionally ``runs`` and ``mock_tools``::

    - id: refund-reads-back-first
      kind: tool_call                 # next_turn | tool_call | simulation
      tags: [tool_heavy, happy_path]
      history:                        # next_turn and tool_call: the conversation so far
        - caller: "I'd like a refund on order 4512, the kettle."
        - tool: lookup_order          # the agent called a tool; the tool runs for real
          arguments: {order_id: "4512"}   # unless `result:` gives its result
        - agent: "Order 4512 has a kettle at 49 dollars 99. Shall I refund it?"
        - caller: "Yes, the kettle please."   # the last entry is the caller's: the agent answers it
      expect:
        contains: ["49"]              # also not_contains, regex, judge (a rubric)
        tool:                         # one or a list; `called: false` = must not be called
          name: issue_refund
          arguments: {order_id: {exact: "4512"}, amount: {exact: 49.99}}   # or anything, {regex}, {judge}

A ``simulation`` has instead ``caller`` (persona, goal, behaviours), ``max_turns``, ``mode``
(``text``, or ``audio`` through the whole voice path) and ``expect``
with ``criteria`` (ids judged a success), ``tools_called``, ``tools_not_called``, ``handoff``
(true/false) and ``database`` (SQL over a tool_config database, with the value it must give).
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

KINDS = ("next_turn", "tool_call", "simulation")
TAGS = ("happy_path", "refusal", "out_of_scope", "pivot", "ambiguous", "tool_heavy", "escalation",
        "long_context", "adversarial")
BEHAVIOURS = ("vague", "angry", "changes_topic", "interrupts", "wrong_order_number_first", "terse", "chatty")
ARGUMENT_CHECKS = ("anything", "exact", "regex", "judge")


class TestFileError(ValueError):
    """A test file that cannot be used; the message names the file, the line and the fix."""

    __test__ = False

    def __init__(self, path, line, problem):
        self.path, self.line, self.problem = Path(path), line, problem
        super().__init__(f"{path}:{line}: {problem}" if line else f"{path}: {problem}")


@dataclass(frozen=True)
class ArgumentCheck:
    how: str
    """``anything``, ``exact``, ``regex`` or ``judge``."""
    value: object = None


@dataclass(frozen=True)
class ToolExpectation:
    name: str
    called: bool = True
    arguments: dict = field(default_factory=dict)
    """Argument name -> ArgumentCheck; arguments not named are not checked."""


@dataclass(frozen=True)
class DatabaseCheck:
    database: str
    """A ``tool_config`` key naming an SQLite file (``shop_db``)."""
    sql: str
    equals: object


@dataclass(frozen=True)
class Expectations:
    contains: tuple = ()
    not_contains: tuple = ()
    regex: tuple = ()
    judge: str | None = None
    tools: tuple = ()
    criteria: tuple = ()
    tools_called: tuple = ()
    tools_not_called: tuple = ()
    handoff: bool | None = None
    database: tuple = ()


@dataclass(frozen=True)
class Persona:
    description: str
    goal: str
    behaviours: tuple = ()


@dataclass(frozen=True)
class ToolMocks:
    mode: str = "none"
    """``none``: every tool is real; ``all``: every tool is mocked; ``named``: the tools listed."""
    results: dict = field(default_factory=dict)
    """Tool -> list of (arguments it must match, a subset, or {}; the canned result)."""
    unmatched: str = "real"
    """A mocked tool called with arguments no canned result matches: ``real`` runs the real tool,
    ``fail`` fails the run."""


@dataclass(frozen=True)
class AgentTest:
    __test__ = False

    id: str
    kind: str
    tags: tuple
    expect: Expectations
    source: str
    """``file:line`` where the test is written."""
    history: tuple = ()
    """(role, payload) steps: ("caller", text), ("agent", text), ("tool", {name, arguments, result?})."""
    persona: Persona | None = None
    max_turns: int = 8
    mode: str = "text"
    """A simulation's path: ``text`` (the orchestrator alone, fast) or ``audio`` (espeak-ng speech
    through the call loop, STT, the agent worker and TTS, as a caller meets them)."""
    runs: int | None = None
    mocks: ToolMocks = field(default_factory=ToolMocks)
    description: str = ""


class _LineLoader(yaml.SafeLoader):
    """Keeps the line of every mapping so errors can point into the file."""


class _Mapping(dict):
    line = 0


def _construct_mapping(loader, node):
    mapping = _Mapping(loader.construct_mapping(node, deep=True))
    mapping.line = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_tests(paths, *, tools=None):
    """The tests in ``paths`` (files, or folders whose ``*.yaml`` are read), in order.

    ``tools``: the agent's tool names (system tools included), so an expectation naming a tool the
    agent does not have is an error here rather than a test that can never pass.
    """
    tests, seen = [], {}
    for path in _files(paths):
        for test in _Reader(path, tools).file():
            if test.id in seen:
                raise TestFileError(path, int(test.source.rsplit(":", 1)[1]),
                                    f"a second test with id {test.id!r} (the first is at {seen[test.id]})")
            seen[test.id] = test.source
            tests.append(test)
    return tests


def _files(paths):
    for path in map(Path, paths):
        if path.is_dir():
            yield from sorted(p for p in path.glob("*.yaml"))
        elif path.is_file():
            yield path
        else:
            raise TestFileError(path, 0, "no such file or folder")


class _Reader:
    def __init__(self, path, tools):
        self.path, self.tools = path, tools

    def fail(self, node, problem):
        raise TestFileError(self.path, getattr(node, "line", 0), problem)

    def file(self):
        try:
            raw = yaml.load(self.path.read_text(encoding="utf-8"), Loader=_LineLoader)
        except UnicodeDecodeError as exc:
            raise TestFileError(self.path, 0, f"not UTF-8 text ({exc.reason})") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise TestFileError(self.path, mark.line + 1 if mark else 0,
                                f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("tests"), list):
            self.fail(raw, "a test file is a mapping with a `tests:` list")
        self.known(raw, ("tests",), "the file")
        return [self.test(item) for item in raw["tests"]]

    def known(self, node, fields, what):
        unknown = sorted(set(map(str, node)) - set(fields))
        if unknown:
            self.fail(node, f"unknown field {unknown[0]!r} in {what}; known: {', '.join(fields)}")

    def text(self, node, value, what):
        if not isinstance(value, str) or not value.strip():
            self.fail(node, f"{what} must be non-empty text, not {value!r:.40}")
        return value.strip()

    def texts(self, node, value, what):
        if value is None:
            return ()
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list):
            self.fail(node, f"{what} must be text or a list of text")
        return tuple(self.text(node, v, what) for v in values)

    def tool_name(self, node, name):
        name = self.text(node, name, "a tool name")
        if self.tools is not None and name not in self.tools:
            self.fail(node, f"unknown tool {name!r}; this agent has: {', '.join(sorted(self.tools))}")
        return name

    def test(self, node):
        if not isinstance(node, dict):
            self.fail(node, "each test is a mapping with id, kind, tags and expect")
        fields = ("id", "kind", "description", "tags", "runs", "history", "caller", "max_turns", "mode", "expect",
                  "mock_tools")
        self.known(node, fields, "a test")
        test_id = self.text(node, node.get("id"), "id")
        where = f"test {test_id!r}"
        kind = node.get("kind")
        if kind not in KINDS:
            self.fail(node, f"{where}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
        tags = node.get("tags")
        if not isinstance(tags, list) or not tags:
            self.fail(node, f"{where}: tags must be a non-empty list from: {', '.join(TAGS)}")
        for tag in tags:
            if tag not in TAGS:
                self.fail(node, f"{where}: unknown tag {tag!r}; tags: {', '.join(TAGS)}")
        runs = node.get("runs")
        if runs is not None and (isinstance(runs, bool) or not isinstance(runs, int) or not 1 <= runs <= 100):
            self.fail(node, f"{where}: runs must be an integer from 1 to 100")
        expect = node.get("expect")
        if not isinstance(expect, dict):
            self.fail(node, f"{where}: expect is required (what must hold for the test to pass)")
        common = dict(id=test_id, kind=kind, tags=tuple(tags), runs=runs, source=f"{self.path}:{node.line}",
                      mocks=self.mocks(node.get("mock_tools"), where),
                      description=str(node.get("description") or "").strip())
        if kind == "simulation":
            if node.get("history") is not None:
                self.fail(node, f"{where}: a simulation has a `caller` persona, not a history")
            max_turns = node.get("max_turns", 8)
            if isinstance(max_turns, bool) or not isinstance(max_turns, int) or not 1 <= max_turns <= 40:
                self.fail(node, f"{where}: max_turns must be an integer from 1 to 40")
            mode = node.get("mode", "text")
            if mode not in ("text", "audio"):
                self.fail(node, f"{where}: mode must be text or audio, not {mode!r}")
            if mode == "audio" and node.get("mock_tools") is not None:
                self.fail(node, f"{where}: an audio simulation runs the agent worker's real tools; mock_tools is for text")
            return AgentTest(**common, persona=self.persona(node.get("caller"), node, where), max_turns=max_turns,
                             mode=mode, expect=self.simulation_expect(expect, where))
        if node.get("caller") is not None or node.get("mode") is not None:
            self.fail(node, f"{where}: `caller` and `mode` are for simulations; a {kind} test has a history")
        history = self.history(node.get("history"), node, where)
        expectations = self.turn_expect(expect, where)
        if kind == "tool_call" and not expectations.tools:
            self.fail(expect, f"{where}: a tool_call test needs expect.tool (which tool, which arguments)")
        return AgentTest(**common, history=history, expect=expectations)

    def history(self, steps, node, where):
        if not isinstance(steps, list) or not steps:
            self.fail(node, f"{where}: history must be a non-empty list of caller / agent / tool steps")
        history = []
        for step in steps:
            if not isinstance(step, dict) or len({"caller", "agent", "tool"} & set(step)) != 1:
                self.fail(step if isinstance(step, dict) else node,
                          f"{where}: each history step is one of caller: TEXT, agent: TEXT, tool: NAME")
            if "tool" in step:
                self.known(step, ("tool", "arguments", "result"), "a tool step")
                arguments = step.get("arguments", {})
                if not isinstance(arguments, dict):
                    self.fail(step, f"{where}: a tool step's arguments must be a mapping")
                result = step.get("result")
                if result is not None and not isinstance(result, dict):
                    self.fail(step, f"{where}: a tool step's result must be a mapping")
                history.append(("tool", {"name": self.tool_name(step, step["tool"]), "arguments": dict(arguments),
                                         "result": None if result is None else dict(result)}))
            else:
                role = "caller" if "caller" in step else "agent"
                self.known(step, (role,), f"a {role} step")
                history.append((role, self.text(step, step[role], f"a {role} line")))
        if history[-1][0] != "caller":
            self.fail(steps[-1], f"{where}: the history must end with a caller line (the agent answers it)")
        return tuple(history)

    def turn_expect(self, node, where):
        self.known(node, ("contains", "not_contains", "regex", "judge", "tool"), "expect")
        tools = node.get("tool")
        tools = [tools] if isinstance(tools, dict) else (tools or [])
        if not isinstance(tools, list):
            self.fail(node, f"{where}: expect.tool must be a mapping or a list of them")
        judge = node.get("judge")
        return Expectations(
            contains=self.texts(node, node.get("contains"), "expect.contains"),
            not_contains=self.texts(node, node.get("not_contains"), "expect.not_contains"),
            regex=self.patterns(node, node.get("regex")),
            judge=None if judge is None else self.text(node, judge, "expect.judge"),
            tools=tuple(self.tool_expectation(t, node, where) for t in tools))

    def patterns(self, node, value):
        patterns = self.texts(node, value, "expect.regex")
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                self.fail(node, f"expect.regex {pattern!r} does not compile: {exc}")
        return patterns

    def tool_expectation(self, node, parent, where):
        if not isinstance(node, dict):
            self.fail(parent, f"{where}: each expected tool is a mapping with a name")
        self.known(node, ("name", "called", "arguments"), "an expected tool")
        called = node.get("called", True)
        if not isinstance(called, bool):
            self.fail(node, f"{where}: called must be true or false")
        arguments = node.get("arguments") or {}
        if not isinstance(arguments, dict):
            self.fail(node, f"{where}: arguments must map argument names to checks")
        if not called and arguments:
            self.fail(node, f"{where}: a tool that must not be called has no arguments to check")
        return ToolExpectation(self.tool_name(node, node.get("name")), called,
                               {name: self.argument_check(node, check, name) for name, check in arguments.items()})

    def argument_check(self, node, check, name):
        if check == "anything":
            return ArgumentCheck("anything")
        if not isinstance(check, dict) or len(check) != 1 or next(iter(check)) not in ARGUMENT_CHECKS[1:]:
            self.fail(node, f"argument {name!r}: a check is `anything`, {{exact: V}}, {{regex: P}} or {{judge: TEXT}}")
        how, value = next(iter(check.items()))
        if how == "regex":
            self.patterns(node, value)
        if how == "judge":
            value = self.text(node, value, f"argument {name!r} judge")
        return ArgumentCheck(how, value)

    def simulation_expect(self, node, where):
        self.known(node, ("criteria", "tools_called", "tools_not_called", "handoff", "database", "judge"), "expect")
        handoff = node.get("handoff")
        if handoff is not None and not isinstance(handoff, bool):
            self.fail(node, f"{where}: expect.handoff must be true or false")
        checks = node.get("database") or []
        if not isinstance(checks, list):
            self.fail(node, f"{where}: expect.database must be a list of {{database, sql, equals}}")
        database = []
        for check in checks:
            if not isinstance(check, dict) or "equals" not in check:
                self.fail(node, f"{where}: each database check has database, sql and equals")
            self.known(check, ("database", "sql", "equals"), "a database check")
            database.append(DatabaseCheck(self.text(check, check.get("database"), "database"),
                                          self.text(check, check.get("sql"), "sql"), check["equals"]))
        judge = node.get("judge")
        return Expectations(
            criteria=self.texts(node, node.get("criteria"), "expect.criteria"),
            tools_called=tuple(self.tool_name(node, t) for t in self.texts(node, node.get("tools_called"), "tools")),
            tools_not_called=tuple(self.tool_name(node, t) for t in self.texts(node, node.get("tools_not_called"), "tools")),
            handoff=handoff, database=tuple(database),
            judge=None if judge is None else self.text(node, judge, "expect.judge"))

    def persona(self, node, parent, where):
        if not isinstance(node, dict):
            self.fail(parent, f"{where}: a simulation needs `caller:` with persona and goal")
        self.known(node, ("persona", "goal", "behaviours"), "caller")
        behaviours = self.texts(node, node.get("behaviours"), "behaviours")
        for behaviour in behaviours:
            if behaviour not in BEHAVIOURS:
                self.fail(node, f"{where}: unknown behaviour {behaviour!r}; behaviours: {', '.join(BEHAVIOURS)}")
        return Persona(self.text(node, node.get("persona"), "caller.persona"),
                       self.text(node, node.get("goal"), "caller.goal"), behaviours)

    def mocks(self, node, where):
        if node is None:
            return ToolMocks()
        if not isinstance(node, dict):
            self.fail(node, f"{where}: mock_tools is a mapping (mode, tools, unmatched)")
        self.known(node, ("mode", "tools", "unmatched"), "mock_tools")
        mode, unmatched = node.get("mode", "named"), node.get("unmatched", "real")
        if mode not in ("none", "all", "named"):
            self.fail(node, f"{where}: mock_tools.mode must be none, all or named")
        if unmatched not in ("real", "fail"):
            self.fail(node, f"{where}: mock_tools.unmatched must be real or fail")
        tools = node.get("tools") or {}
        if not isinstance(tools, dict):
            self.fail(node, f"{where}: mock_tools.tools maps tool names to canned results")
        results = {}
        for name, canned in tools.items():
            name = self.tool_name(node, name)
            canned = canned if isinstance(canned, list) else [canned]
            entries = []
            for item in canned:
                if not isinstance(item, dict) or "result" not in item or not isinstance(item["result"], dict):
                    self.fail(node, f"{where}: a canned result of {name} is {{when: {{...}}, result: {{...}}}}")
                self.known(item, ("when", "result"), "a canned result")
                entries.append((dict(item.get("when") or {}), dict(item["result"])))
            results[name] = tuple(entries)
        return ToolMocks(mode, results, unmatched)


def tag_coverage(tests):
    """Tag -> number of tests carrying it, every tag listed (zeros show what is untested)."""
    return {tag: sum(tag in t.tags for t in tests) for tag in TAGS}


def mostly_happy(tests):
    """True when more than half of the suite is happy paths: a suite that proves little."""
    return bool(tests) and sum("happy_path" in t.tags for t in tests) * 2 > len(tests)
