"""The go-live gate (`parley agent gate vN`): is this version good enough to serve callers?

Evidence: the pass rate over the runs of the version's latest stored test run, and each
thresholded evaluation criterion's success rate on the version's recent calls. Each is compared
with its bar by its 95 % Wilson interval: the whole interval above the bar passes, the whole
interval below fails, an interval straddling the bar is inconclusive — and says how many more
runs (or calls) at the same rate would decide. The version passes when every bar passes, fails
when any fails, and is otherwise inconclusive. The verdict and its evidence are stored.
"""

import json
from dataclasses import asdict, dataclass, replace

import yaml

from parley.appliance.platform.testing import results
from parley.appliance.platform.testing.stats import Rate, runs_to_decide
from parley.appliance.store.timestamps import utc_text

RECENT_CALLS = 200
"""How many of the version's most recent judged calls the criteria are measured on."""
JUDGE_KAPPA_BAR = 0.6
"""Cohen's kappa a judge model must reach on the labelled set (`parley judge-check`) before the
criteria it judged count in the gate ("substantial agreement"); below it they are advisory."""


@dataclass(frozen=True)
class Bar:
    name: str
    threshold: float
    passed: int
    total: int
    verdict: str
    """pass, fail or inconclusive."""
    more_needed: int | None = None
    """For inconclusive: more runs (or calls) at the same rate that would decide; None if none would."""
    unit: str = "runs"
    advisory: bool = False
    """Shown, not counted: its judge has not shown it agrees with people."""

    @property
    def rate(self):
        return Rate(self.passed, self.total)


@dataclass(frozen=True)
class GateVerdict:
    version: int
    verdict: str
    bars: tuple
    notes: tuple


def judge_bar(name, threshold, passed, total, unit):
    if total == 0:
        return Bar(name, threshold, 0, 0, "inconclusive", None, unit)
    low, high = Rate(passed, total).interval
    if low >= threshold:
        return Bar(name, threshold, passed, total, "pass", unit=unit)
    if high < threshold:
        return Bar(name, threshold, passed, total, "fail", unit=unit)
    return Bar(name, threshold, passed, total, "inconclusive", runs_to_decide(passed, total, threshold), unit)


def gate(store, version):
    """The gate's verdict for ``version`` (records.AgentVersion), stored with its evidence."""
    agent = yaml.safe_load(version.content["files"]["agent.yaml"])
    quality = agent.get("quality") or {}
    bars, notes = [], []
    run_id = results.latest_run(store, version)
    if run_id is None:
        notes.append(f"no test run of v{version.number}: run `parley test --version v{version.number}`")
        bars.append(judge_bar("agent tests pass rate", quality.get("suite_pass_rate", 0.8), 0, 0, "runs"))
    else:
        stored = results.results(store, run_id)
        passed = sum(r.status == "passed" for r in stored)
        bars.append(judge_bar(f"agent tests pass rate (test run {run_id})", quality.get("suite_pass_rate", 0.8),
                              passed, len(stored), "runs"))
    trusted = {}
    for criterion in agent.get("evaluation_criteria") or ():
        threshold = criterion.get("threshold")
        if threshold is None:
            continue
        rows = store.db.execute(
            """SELECT e.result, e.judge_model FROM call_evaluations e JOIN calls c ON c.id = e.call_id
               WHERE c.agent_version_id = ? AND e.criterion = ? AND e.result != 'unknown'
               ORDER BY c.started_at DESC LIMIT ?""", [version.id, criterion["id"], RECENT_CALLS]).fetchall()
        successes = sum(r[0] == "success" for r in rows)
        bar = judge_bar(f"criterion {criterion['id']} on recent calls", threshold, successes, len(rows), "calls")
        judges = {r[1] for r in rows}
        for model in judges - set(trusted):
            trusted[model] = judge_trusted(store, model, notes)
        if not all(trusted[m] for m in judges):
            bar = replace(bar, advisory=True)
        bars.append(bar)
        if not rows:
            notes.append(f"no judged call of v{version.number} for {criterion['id']}")
    verdicts = {b.verdict for b in bars if not b.advisory}
    verdict = "fail" if "fail" in verdicts else "inconclusive" if "inconclusive" in verdicts else "pass"
    outcome = GateVerdict(version.number, verdict, tuple(bars), tuple(notes))
    with store.transaction():
        store.db.execute("INSERT INTO gate_verdicts (agent_version_id, verdict, evidence, created_at) VALUES (?, ?, ?, ?)",
                         [version.id, verdict, json.dumps({"bars": [asdict(b) for b in bars], "notes": notes}), utc_text()])
    return outcome


def record_judge_check(store, model, agreed, items, kappa, set_sha256):
    with store.transaction():
        store.db.execute("INSERT INTO judge_checks (model, items, agreed, kappa, set_sha256, created_at) "
                         "VALUES (?, ?, ?, ?, ?, ?)", [model, items, agreed, kappa, set_sha256, utc_text()])


def judge_trusted(store, model, notes):
    """Whether ``model``'s latest judge check reached the kappa bar; says why not in ``notes``.
    A deterministic check of the record needs no judge check."""
    from parley.appliance.platform.evaluation import DETERMINISTIC

    if model == DETERMINISTIC:
        return True
    row = store.db.execute("SELECT kappa, agreed, items FROM judge_checks WHERE model = ? ORDER BY id DESC LIMIT 1",
                           [model]).fetchone()
    if row is None:
        notes.append(f"judge {model} has no judge check: its criteria results are advisory "
                     f"(run `parley judge-check --model {model}`)")
        return False
    if row[0] < JUDGE_KAPPA_BAR:
        notes.append(f"judge {model} agreed with people on {row[1]}/{row[2]} labelled calls, kappa {row[0]:.2f} < "
                     f"{JUDGE_KAPPA_BAR}: its criteria results are advisory")
        return False
    return True
