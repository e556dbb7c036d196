"""How far an LLM judge agrees with a careful person: transcripts whose verdict is known, judged
again, with the agreement, Cohen's kappa and the disagreements to read.

A labelled set (``appliance/demo/acme/judge_set.yaml``) holds short calls, each with one
requirement (an evaluation criterion of the agent, or a rubric as agent tests write them), the
verdict a person gives and why. Agreement is the share of items where the judge's verdict is the
person's; ``unknown`` and an unreadable reply (``error``) count as disagreements. Kappa discounts
the agreement a judge gets by chance (one that always says "pass" agrees on half a balanced set).
"""

import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from parley.appliance.platform.testing.judge import JudgeReplyError
from parley.appliance.platform.testing.stats import Rate, cohens_kappa
from parley.appliance.demo import ACME_DIR

JUDGE_SET = ACME_DIR / "judge_set.yaml"
"""The Acme agent's labelled transcripts: what `parley judge-check` measures on by default."""

LABELS = ("pass", "fail")
"""The verdicts a labelled item can have: a careful reader always decides."""

ERROR = "error"
"""What a judge "said" when its reply could not be read as a verdict."""

_FIELDS = ("id", "criterion", "requirement", "verdict", "why", "transcript")
_TOOL = r"[a-z][a-z0-9_]*"
_LINE = re.compile(rf"(?:caller|agent): \S.*"
                   rf"|agent calls {_TOOL} (?P<arguments>\{{.*\}})"
                   rf"|{_TOOL} (?:ok: (?P<result>\S.*)|(?:refused|error): \S.*)")


class JudgeSetError(ValueError):
    """A labelled set that cannot be used; the message names the file, the item and the fix."""

    def __init__(self, path, item, problem):
        self.path, self.item, self.problem = Path(path), item, problem
        super().__init__(f"{path}: {item}: {problem}" if item else f"{path}: {problem}")


@dataclass(frozen=True)
class LabelledTranscript:
    id: str
    requirement: str
    """What the judge is asked: a criterion's description, or a rubric."""
    verdict: str
    """``pass`` or ``fail``: what a careful person decides."""
    why: str
    """The person's reason, in a line: what to read when the judge disagrees."""
    transcript: tuple
    """Speaker-labelled lines, as the test runner hands them to the judge."""


@dataclass(frozen=True)
class Judgement:
    item: LabelledTranscript
    got: str
    """``pass``, ``fail``, ``unknown``, or ``error`` when the reply did not parse."""
    rationale: str
    """The judge's rationale, or what was wrong with its reply."""
    seconds: float

    @property
    def agrees(self):
        return self.got == self.item.verdict


@dataclass(frozen=True)
class Agreement:
    """One judge over one labelled set."""

    judgements: tuple

    @property
    def rate(self):
        """Items where the judge gave the person's verdict, with its Wilson interval."""
        return Rate(sum(j.agrees for j in self.judgements), len(self.judgements))

    @property
    def kappa(self):
        return cohens_kappa((j.item.verdict, j.got) for j in self.judgements)

    @property
    def confusion(self):
        """(expected, got) -> how many items."""
        return Counter((j.item.verdict, j.got) for j in self.judgements)

    @property
    def seconds_per_item(self):
        return sum(j.seconds for j in self.judgements) / len(self.judgements)

    @property
    def disagreements(self):
        return [j for j in self.judgements if not j.agrees]


def check(judge, items, *, progress=None, clock=time.monotonic):
    """Judge every item; ``progress(judgement)`` is called after each. Needs at least one item."""
    if not items:
        raise ValueError("a judge check needs at least one labelled transcript")
    judgements = []
    for item in items:
        started = clock()
        try:
            verdict = judge(item.requirement, list(item.transcript))
            got, rationale = verdict.verdict, verdict.rationale
        except JudgeReplyError as exc:
            got, rationale = ERROR, str(exc)
        judgement = Judgement(item, got, rationale, clock() - started)
        judgements.append(judgement)
        if progress is not None:
            progress(judgement)
    return Agreement(tuple(judgements))


def load_judge_set(path, criteria):
    """The labelled transcripts in ``path``, checked; ``criteria`` maps the criterion ids items may
    name to their descriptions (the agent's evaluation criteria)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise JudgeSetError(path, None, "no such file") from None
    except UnicodeDecodeError as exc:
        raise JudgeSetError(path, None, f"not UTF-8 text ({exc.reason})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise JudgeSetError(path, None, f"not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict) or set(raw) != {"items"} or not isinstance(raw["items"], list) or not raw["items"]:
        raise JudgeSetError(path, None, "a judge set is a mapping with one key, `items:`, a non-empty list")
    items, seen = [], {}
    for position, node in enumerate(raw["items"], 1):
        item = _item(path, position, node, criteria)
        if item.id in seen:
            raise JudgeSetError(path, f"item {position} ({item.id!r})",
                                f"a second item with id {item.id!r} (the first is item {seen[item.id]})")
        seen[item.id] = position
        items.append(item)
    return items


def _item(path, position, node, criteria):
    where = f"item {position}"

    def fail(problem):
        raise JudgeSetError(path, where, problem)

    if not isinstance(node, dict):
        fail("each item is a mapping: id, criterion or requirement, verdict, why, transcript")
    unknown = sorted(set(map(str, node)) - set(_FIELDS))
    if unknown:
        fail(f"unknown field {unknown[0]!r}; known: {', '.join(_FIELDS)}")
    if not _is_text(node.get("id")):
        fail("id must be non-empty text")
    where = f"item {position} ({node['id'].strip()!r})"
    for name in ("verdict", "why", "transcript"):
        if not _is_text(node.get(name)):
            fail(f"{name} is required, as non-empty text")
    if node["verdict"] not in LABELS:
        fail(f"verdict must be {' or '.join(LABELS)}, not {node['verdict']!r}")
    if ("criterion" in node) == ("requirement" in node):
        fail("give either `criterion:` (an evaluation criterion id) or `requirement:` (a rubric), not both or neither")
    if "criterion" in node:
        if not isinstance(node["criterion"], str) or node["criterion"] not in criteria:
            fail(f"unknown criterion {node['criterion']!r}; the agent's criteria: {', '.join(sorted(criteria))}")
        requirement = criteria[node["criterion"]]
    else:
        if not _is_text(node["requirement"]):
            fail("requirement must be non-empty text")
        requirement = node["requirement"].strip()
    lines = tuple(line.strip() for line in node["transcript"].splitlines() if line.strip())
    for number, line in enumerate(lines, 1):
        problem = _line_problem(line)
        if problem:
            fail(f"transcript line {number} {problem}: {line[:60]!r}")
    return LabelledTranscript(node["id"].strip(), requirement, node["verdict"], node["why"].strip(), lines)


def _is_text(value):
    return isinstance(value, str) and bool(value.strip())


def _line_problem(line):
    match = _LINE.fullmatch(line)
    if match is None:
        return "is not `caller: ...`, `agent: ...`, `agent calls TOOL {...}` or `TOOL ok|refused|error: ...`"
    payload = match.group("arguments") or match.group("result")
    if payload is None:
        return None
    try:
        json.loads(payload)
    except json.JSONDecodeError as exc:
        return f"has JSON that does not parse ({exc.msg} at {exc.pos})"
    return None
