"""How an agent's versions do on real calls, from the store: per version, or per version and day.

The definitions, per agent version and (with ``by_day``) per UTC date of ``calls.started_at``:

* **calls**: every call started; **ended**: those with an ``ended_at``. Calls still in progress
  are counted but not measured: every figure below is over ended calls only.
* **task completion rate**: ended calls whose completion criterion (``quality.completion_criterion``
  of that version's agent.yaml) was judged ``success`` in ``call_evaluations``, over the ended calls
  where it was judged ``success`` or ``failure``. Calls judged ``unknown`` and calls with no
  judgement yet are left out and counted apart. A version without a completion criterion has none.
* **escalation rate**: ended calls with at least one ``handoffs`` row, over ended calls.
* **average handle time**: the mean of ``ended_at - started_at``, in seconds.
* **turns per call**: ``turns`` rows (caller, agent and tool turns) over ended calls.
* **interruptions per call**: turns with ``interrupted = 1`` (the caller barged in) over ended calls.
* **voice-to-voice latency**: ``playout_start - user_speech_end`` (``spans.t_ns``) in ms, over the
  agent turns that have both spans; p50 and p95 by nearest rank (the value at rank
  ceil(p/100 * n) of the sorted values).
* **tool error rate**: ``tool_calls`` with status ``error``, over every tool call (``ok``,
  ``error`` and ``refused``).

Every rate is a ``Rate`` (a count with its 95 % Wilson interval). ``find_calls`` searches calls
by version, criterion judgement, tool errors and collected data, newest first.
"""

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from statistics import fmean

import yaml

from parley.appliance.agent.config import AGENT_FILE
from parley.appliance.platform.testing.stats import Rate
from parley.appliance.store.timestamps import from_utc_text

JUDGEMENTS = ("success", "failure", "unknown")
"""What a criterion can be judged on a call (``call_evaluations.result``)."""

_CALLS = """
    SELECT calls.id, agents.name, agent_versions.number, calls.started_at, calls.ended_at, calls.outcome,
           (SELECT count(*) FROM turns WHERE turns.call_id = calls.id),
           (SELECT count(*) FROM turns WHERE turns.call_id = calls.id AND turns.interrupted = 1),
           EXISTS (SELECT 1 FROM handoffs WHERE handoffs.call_id = calls.id),
           (SELECT count(*) FROM tool_calls WHERE tool_calls.call_id = calls.id),
           (SELECT count(*) FROM tool_calls WHERE tool_calls.call_id = calls.id AND tool_calls.status = 'error')
    FROM calls
    JOIN agent_versions ON agent_versions.id = calls.agent_version_id
    JOIN agents ON agents.id = agent_versions.agent_id
"""
_LATENCIES = """
    SELECT turns.call_id, playout.t_ns - speech_end.t_ns
    FROM turns
    JOIN spans AS speech_end ON speech_end.turn_id = turns.id AND speech_end.name = 'user_speech_end'
    JOIN spans AS playout ON playout.turn_id = turns.id AND playout.name = 'playout_start'
    WHERE turns.role = 'agent' AND turns.call_id IN (SELECT value FROM json_each(?))
"""


@dataclass(frozen=True)
class CallSummary:
    """One call as a search lists it."""

    id: str
    agent: str
    version: int
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None
    """None while the call is in progress."""
    turns: int
    interruptions: int
    handed_off: bool
    """At least one hand-off to a person was recorded."""
    tool_calls: int
    tool_errors: int
    criteria: dict[str, str]
    """Each criterion judged on the call -> success, failure or unknown, by criterion id."""

    @property
    def duration_s(self):
        """Seconds from start to end; None while in progress."""
        return None if self.ended_at is None else (self.ended_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class Latency:
    """Voice-to-voice latency over the measured agent turns; None for each percentile when there are none."""

    p50_ms: float | None
    p95_ms: float | None
    turns: int


@dataclass(frozen=True)
class VersionMetrics:
    """The figures of one agent version, over all its calls or over one day's (see the module docstring)."""

    version: int
    day: date | None
    """The UTC date the calls started; None when the row covers every day."""
    calls: int
    """Every call started, ended or not."""
    ended: int
    """The calls every figure below is over."""
    completion_criterion: str | None
    completion: Rate
    completion_unknown: int
    """Ended calls whose completion criterion was judged unknown: left out of ``completion``."""
    completion_unjudged: int
    """Ended calls with no judgement of the completion criterion yet: left out of ``completion``."""
    escalation: Rate
    handle_time_s: float | None
    turns_per_call: float | None
    interruptions_per_call: float | None
    latency: Latency
    tool_errors: Rate


def agent_metrics(store, agent, *, version=None, since=None, by_day=False):
    """``VersionMetrics`` of ``agent``'s versions that have calls, by version (and day when ``by_day``).

    ``version`` keeps one version number; ``since`` (a ``date``) keeps calls started on or after
    that UTC date.
    """
    conditions, params = _scope(agent, version)
    if since is not None:
        conditions.append("calls.started_at >= ?")
        params.append(since.isoformat())
    calls = _summaries(store, conditions, params)
    criteria = completion_criteria(store, agent)
    latencies = _latencies(store, [call.id for call in calls if call.ended_at is not None])
    groups = defaultdict(list)
    for call in calls:
        groups[call.version, call.started_at.date() if by_day else None].append(call)
    return [_figures(number, day, groups[number, day], criteria.get(number), latencies)
            for number, day in sorted(groups)]


def find_calls(store, *, agent=None, version=None, where=(), tool_errored=False, data=(), limit=None):
    """Calls that match every filter, newest first, as ``CallSummary``.

    ``where``: (criterion, judgement) pairs, each judged so on the call (``unknown`` means judged
    unknown, not unjudged). ``tool_errored``: at least one tool call ended in error. ``data``:
    (field, value) pairs, each collected with that value: the stored JSON decoded, a string as
    itself and anything else as compact JSON (``true``, ``42``), compared case-insensitively.
    """
    if version is not None and agent is None:
        raise ValueError("a version number needs the agent it belongs to")
    conditions, params = _scope(agent, version)
    for criterion, judgement in where:
        if judgement not in JUDGEMENTS:
            raise ValueError(f"a criterion is judged {', '.join(JUDGEMENTS)}, not {judgement!r}")
        conditions.append("EXISTS (SELECT 1 FROM call_evaluations AS e "
                          "WHERE e.call_id = calls.id AND e.criterion = ? AND e.result = ?)")
        params += [criterion, judgement]
    if tool_errored:
        conditions.append("EXISTS (SELECT 1 FROM tool_calls AS t WHERE t.call_id = calls.id AND t.status = 'error')")
    if data:
        store.db.register_function(_data_text, deterministic=True, name="parley_data_text")
    for field, value in data:
        conditions.append("EXISTS (SELECT 1 FROM call_data AS d "
                          "WHERE d.call_id = calls.id AND d.field = ? AND parley_data_text(d.value) = ?)")
        params += [field, value.casefold()]
    return _summaries(store, conditions, params, limit)


def agent_file(content):
    """The parsed agent.yaml of a version's ``content`` ({"files": {path: text}}); {} when it has none."""
    parsed = yaml.safe_load(content.get("files", {}).get(AGENT_FILE, "")) or {}
    return parsed if isinstance(parsed, dict) else {}


def completion_criteria(store, agent):
    """Version number -> its ``quality.completion_criterion`` (None when it names none)."""
    rows = store.db.execute(
        """SELECT agent_versions.number, agent_versions.content FROM agent_versions
           JOIN agents ON agents.id = agent_versions.agent_id WHERE agents.name = ?""", [agent]).fetchall()
    return {number: (agent_file(json.loads(content)).get("quality") or {}).get("completion_criterion")
            for number, content in rows}


def nearest_rank(values, percentile):
    """The ``percentile`` (0-100] of ``values`` by nearest rank; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(percentile * len(ordered) / 100)) - 1]


def _scope(agent, version):
    conditions, params = [], []
    if agent is not None:
        conditions.append("agents.name = ?")
        params.append(agent)
    if version is not None:
        conditions.append("agent_versions.number = ?")
        params.append(version)
    return conditions, params


def _summaries(store, conditions, params, limit=None):
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = store.db.execute(f"{_CALLS} {where} ORDER BY calls.started_at DESC, calls.id LIMIT ?",
                            [*params, -1 if limit is None else limit]).fetchall()
    criteria = _judgements(store, [row[0] for row in rows])
    return [CallSummary(id=row[0], agent=row[1], version=row[2], started_at=from_utc_text(row[3]),
                        ended_at=None if row[4] is None else from_utc_text(row[4]), outcome=row[5], turns=row[6],
                        interruptions=row[7], handed_off=bool(row[8]), tool_calls=row[9], tool_errors=row[10],
                        criteria=criteria.get(row[0], {}))
            for row in rows]


def _judgements(store, call_ids):
    rows = store.db.execute(
        """SELECT call_id, criterion, result FROM call_evaluations
           WHERE call_id IN (SELECT value FROM json_each(?)) ORDER BY criterion""", [json.dumps(call_ids)]).fetchall()
    judged = defaultdict(dict)
    for call_id, criterion, result in rows:
        judged[call_id][criterion] = result
    return judged


def _latencies(store, call_ids):
    """Call id -> the voice-to-voice latency in ms of each of its measured agent turns."""
    measured = defaultdict(list)
    for call_id, gap_ns in store.db.execute(_LATENCIES, [json.dumps(call_ids)]).fetchall():
        measured[call_id].append(gap_ns / 1e6)
    return measured


def _figures(number, day, calls, criterion, latencies):
    ended = [call for call in calls if call.ended_at is not None]
    judged = [call.criteria.get(criterion) for call in ended] if criterion is not None else []
    gaps = [gap for call in ended for gap in latencies.get(call.id, ())]
    return VersionMetrics(
        version=number,
        day=day,
        calls=len(calls),
        ended=len(ended),
        completion_criterion=criterion,
        completion=Rate(judged.count("success"), judged.count("success") + judged.count("failure")),
        completion_unknown=judged.count("unknown"),
        completion_unjudged=judged.count(None),
        escalation=Rate(sum(call.handed_off for call in ended), len(ended)),
        handle_time_s=_mean([call.duration_s for call in ended]),
        turns_per_call=_mean([call.turns for call in ended]),
        interruptions_per_call=_mean([call.interruptions for call in ended]),
        latency=Latency(p50_ms=nearest_rank(gaps, 50), p95_ms=nearest_rank(gaps, 95), turns=len(gaps)),
        tool_errors=Rate(sum(call.tool_errors for call in ended), sum(call.tool_calls for call in ended)),
    )


def _mean(values):
    return fmean(values) if values else None


def _data_text(value):
    """A stored ``call_data.value`` as ``find_calls`` compares it: decoded, as text, case-folded."""
    if value is None:
        return None
    decoded = json.loads(value)
    text = decoded if isinstance(decoded, str) else json.dumps(decoded, separators=(",", ":"), ensure_ascii=False)
    return text.casefold()
