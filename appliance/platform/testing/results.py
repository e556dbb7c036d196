"""Agent test runs in the store (migration 0003), and what they add up to: per-test pass rates with
Wilson intervals, flaky tests, failures grouped by reason, rates per kind and per tag, the suite's
verdict against the agent's quality bars, and the comparison of two versions (Fisher's exact test).
"""

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass

from parley.appliance.platform.testing.stats import Rate, fisher_exact
from parley.appliance.store.timestamps import utc_text

SIGNIFICANCE = 0.05


def start_run(store, version, settings):
    """A new test run of ``version`` (records.AgentVersion); returns its id."""
    with store.transaction():
        return store.db.execute(
            "INSERT INTO test_runs (agent_version_id, started_at, settings) VALUES (?, ?, ?) RETURNING id",
            [version.id, utc_text(), json.dumps(settings)]).fetchone()[0]


def record(store, run_id, test, outcome):
    """One run of one test, stored at once (a crash later keeps it)."""
    with store.transaction():
        store.db.execute(
            """INSERT INTO test_results (test_run_id, test_id, kind, tags, source, run, seed, status, reasons, details,
                                         seconds, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [run_id, test.id, test.kind, json.dumps(list(test.tags)), test.source, outcome.run, outcome.seed,
             outcome.status, json.dumps(list(outcome.reasons)), json.dumps(outcome.details, default=str),
             outcome.seconds, utc_text()])


def finish_run(store, run_id, verdict):
    with store.transaction():
        store.db.execute("UPDATE test_runs SET ended_at = ?, verdict = ? WHERE id = ?", [utc_text(), verdict, run_id])


@dataclass(frozen=True)
class StoredResult:
    test_id: str
    kind: str
    tags: tuple
    run: int
    status: str
    reasons: tuple
    seconds: float


def results(store, run_id):
    rows = store.db.execute(
        "SELECT test_id, kind, tags, run, status, reasons, seconds FROM test_results WHERE test_run_id = ? ORDER BY id",
        [run_id]).fetchall()
    return [StoredResult(r[0], r[1], tuple(json.loads(r[2])), r[3], r[4], tuple(json.loads(r[5])), r[6]) for r in rows]


def latest_run(store, version, *, like=None):
    """The id of the most recent finished test run of ``version``, or None. With ``like`` (a
    settings dict: runs, temperature, tests), only a run made the same way counts: a comparison
    of two versions must not set a sampled run against a greedy one, or a subset against all."""
    rows = store.db.execute("SELECT id, settings FROM test_runs WHERE agent_version_id = ? AND ended_at IS NOT NULL "
                            "ORDER BY id DESC", [version.id]).fetchall()
    for run_id, settings in rows:
        settings = json.loads(settings)
        if like is None or (all(settings.get(k) == like.get(k) for k in ("runs", "temperature"))
                            and set(like.get("tests", ())) <= set(settings.get("tests", ()))):
            return run_id
    return None


@dataclass(frozen=True)
class TestSummary:
    __test__ = False

    test_id: str
    kind: str
    tags: tuple
    rate: Rate
    errors: int
    reasons: tuple
    """Each distinct failure reason with how many runs it failed, most frequent first."""

    @property
    def flaky(self):
        return 0 < self.rate.passed < self.rate.total


@dataclass(frozen=True)
class SuiteSummary:
    tests: tuple
    overall: Rate
    by_kind: dict
    by_tag: dict
    failure_groups: tuple
    """(reason pattern, runs) over the whole suite: the same failure in many tests shows once."""
    verdict: str
    why: tuple


def summarize(stored, quality):
    """The suite's results against ``quality`` (config.QualitySettings)."""
    per_test = defaultdict(list)
    for result in stored:
        per_test[result.test_id].append(result)
    tests = []
    for test_id, runs in per_test.items():
        passed = sum(r.status == "passed" for r in runs)
        reasons = Counter(reason for r in runs for reason in r.reasons)
        tests.append(TestSummary(test_id, runs[0].kind, runs[0].tags, Rate(passed, len(runs)),
                                 sum(r.status == "error" for r in runs), tuple(reasons.most_common())))
    overall = Rate(sum(t.rate.passed for t in tests), sum(t.rate.total for t in tests))
    by_kind, by_tag = defaultdict(lambda: [0, 0]), defaultdict(lambda: [0, 0])
    for test in tests:
        for bucket in [by_kind[test.kind], *(by_tag[tag] for tag in test.tags)]:
            bucket[0] += test.rate.passed
            bucket[1] += test.rate.total
    groups = Counter(_reason_group(reason) for r in stored for reason in r.reasons)
    why = []
    if overall.total and overall.value < quality.suite_pass_rate:
        why.append(f"overall pass rate {overall.value:.0%} is below the bar of {quality.suite_pass_rate:.0%}")
    below = [t.test_id for t in tests if t.rate.value < quality.test_pass_rate]
    if below:
        why.append(f"{len(below)} test(s) pass less than {quality.test_pass_rate:.0%} of their runs: {', '.join(below)}")
    if not overall.total:
        why.append("no test ran")
    return SuiteSummary(tuple(tests), overall, {k: Rate(*v) for k, v in by_kind.items()},
                        {k: Rate(*v) for k, v in by_tag.items()}, tuple(groups.most_common()),
                        "failed" if why else "passed", tuple(why))


def _reason_group(reason):
    """A reason with its particulars (quoted text, numbers) blanked, so like failures group together."""
    return re.sub(r"\d+(\.\d+)?", "N", re.sub(r"'[^']*'|\"[^\"]*\"|\([^)]*\)", "…", reason))[:120]


@dataclass(frozen=True)
class Comparison:
    test_id: str
    a: Rate
    b: Rate
    p_value: float

    @property
    def difference(self):
        return self.b.value - self.a.value

    @property
    def significant(self):
        return self.p_value < SIGNIFICANCE

    @property
    def regression(self):
        return self.difference < 0


def compare(stored_a, stored_b):
    """Per test present in both and overall: B's pass rate against A's, two-sided Fisher exact test.
    Regressions first (the largest drop first), then the rest by test id."""
    rates = []
    for stored in (stored_a, stored_b):
        per_test = defaultdict(lambda: [0, 0])
        for result in stored:
            per_test[result.test_id][0] += result.status == "passed"
            per_test[result.test_id][1] += 1
        rates.append(per_test)
    rows = []
    for test_id in sorted(set(rates[0]) & set(rates[1])):
        a, b = Rate(*rates[0][test_id]), Rate(*rates[1][test_id])
        rows.append(Comparison(test_id, a, b, fisher_exact(a.passed, a.total, b.passed, b.total)))
    rows.sort(key=lambda c: (not c.regression, c.difference if c.regression else 0, c.test_id))
    shared = {c.test_id for c in rows}
    totals = [Rate(sum(r.status == "passed" for r in s if r.test_id in shared), sum(r.test_id in shared for r in s))
              for s in (stored_a, stored_b)]
    overall = Comparison("(all shared tests)", *totals, fisher_exact(totals[0].passed, totals[0].total,
                                                                      totals[1].passed, totals[1].total))
    return rows, overall
