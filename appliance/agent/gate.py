"""The go-live gate (`parley agent gate vN`): is this version good enough to serve callers?

Evidence: the pass rate over the runs of the version's latest stored test run, and each
thresholded evaluation criterion's success rate on the version's recent calls. Each is compared
with its bar by its 95 % Wilson interval: the whole interval above the bar passes, the whole
interval below fails, an interval straddling the bar is inconclusive — and says how many more
runs (or calls) at the same rate would decide. The version passes when every bar passes, fails
when any fails, and is otherwise inconclusive. The verdict and its evidence are stored.
"""

import json
from dataclasses import asdict, dataclass

import yaml

from parley.appliance.agent.testing import results
from parley.appliance.agent.testing.stats import Rate, runs_to_decide
from parley.appliance.store.timestamps import utc_text

RECENT_CALLS = 200
"""How many of the version's most recent judged calls the criteria are measured on."""


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
    for criterion in agent.get("evaluation_criteria") or ():
        threshold = criterion.get("threshold")
        if threshold is None:
            continue
        rows = store.db.execute(
            """SELECT e.result FROM call_evaluations e JOIN calls c ON c.id = e.call_id
               WHERE c.agent_version_id = ? AND e.criterion = ? AND e.result != 'unknown'
               ORDER BY c.started_at DESC LIMIT ?""", [version.id, criterion["id"], RECENT_CALLS]).fetchall()
        successes = sum(r[0] == "success" for r in rows)
        bars.append(judge_bar(f"criterion {criterion['id']} on recent calls", threshold, successes, len(rows), "calls"))
        if not rows:
            notes.append(f"no judged call of v{version.number} for {criterion['id']}")
    verdicts = {b.verdict for b in bars}
    verdict = "fail" if "fail" in verdicts else "inconclusive" if "inconclusive" in verdicts else "pass"
    outcome = GateVerdict(version.number, verdict, tuple(bars), tuple(notes))
    with store.transaction():
        store.db.execute("INSERT INTO gate_verdicts (agent_version_id, verdict, evidence, created_at) VALUES (?, ?, ?, ?)",
                         [version.id, verdict, json.dumps({"bars": [asdict(b) for b in bars], "notes": notes}), utc_text()])
    return outcome
