"""After a call: each evaluation criterion of the agent file judged on the stored transcript, and
each data-collection field extracted and checked against its type; both written to the store
(migration 0004). Runs in the ``evaluator`` worker, never on a call's latency path.
"""

import json
import logging
from dataclasses import dataclass

from parley.appliance.agent.llm import chatml
from parley.appliance.platform.testing.judge import Judge, JudgeReplyError
from parley.appliance.store.timestamps import utc_text

log = logging.getLogger("parley.agent.evaluation")

RESULTS = {"pass": "success", "fail": "failure", "unknown": "unknown"}
"""The judge's verdicts as a criterion's results."""
DETERMINISTIC = "deterministic"
"""The judge_model stored for a criterion decided by a check of the record, not by a model."""


@dataclass(frozen=True)
class CriterionResult:
    criterion: str
    result: str
    rationale: str
    turn: int | None
    """The position of the turn the result hinges on (None: the judge named none)."""


@dataclass(frozen=True)
class DataValue:
    field: str
    value: object
    valid: bool
    problem: str | None = None


def call_transcript(store, call_id):
    """(lines, positions): speaker-labelled lines of the stored call, tool calls included, and the
    turn position each line belongs to (so the judge's line number maps back to a turn). A hand-off
    to a person is the closing agent turn's ``transfer_to_human`` call, as agent tests and the
    judge set write it: without it a judge cannot tell a handed-off call from one left unresolved."""
    tools = {}
    for call in store.tool_calls(call_id):
        tools.setdefault(call.turn_id, []).append(call)
    turns = store.turns(call_id)
    closing = next((t.id for t in reversed(turns) if t.role == "agent"), None)
    handoffs = [f"agent calls transfer_to_human {json.dumps({'reason': h.reason})}" for h in store.handoffs(call_id)]
    lines, positions = [], []
    for turn in turns:
        if turn.id == closing:
            lines += handoffs
            positions += [turn.position] * len(handoffs)
        for call in tools.get(turn.id, []):
            outcome = json.dumps(call.result, separators=(",", ":")) if call.result is not None else call.status
            lines.append(f"agent calls {call.tool} {json.dumps(call.arguments)} -> {call.status}: {outcome}")
            positions.append(turn.position)
        if turn.role == "agent" and turn.interrupted:
            lines.append(f"agent: {turn.heard_text or ''} [interrupted by the caller]")
        else:
            lines.append(f"{turn.role}: {turn.text}")
        positions.append(turn.position)
    return lines, positions


class CallEvaluator:
    """Judges and extracts for one agent with one engine (the judge model)."""

    def __init__(self, config, engine, *, judge_model):
        self.config = config
        self.engine = engine
        self.judge = Judge(engine)
        self.judge_model = judge_model

    def evaluate(self, store, call_id):
        """Judge and extract, write the results (replacing earlier ones for this call); returns them."""
        lines, positions = call_transcript(store, call_id)
        criteria = [self._checked(c, store, call_id) if c.check else self._criterion(c, lines, positions)
                    for c in self.config.evaluation_criteria]
        data = self._data(lines) if self.config.data_collection else []
        now = utc_text()
        with store.transaction():
            for result in criteria:
                store.db.execute(
                    """INSERT INTO call_evaluations (call_id, criterion, result, rationale, turn, judge_model, created_at)
                       VALUES (?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT (call_id, criterion) DO UPDATE SET result = excluded.result,
                           rationale = excluded.rationale, turn = excluded.turn, judge_model = excluded.judge_model,
                           created_at = excluded.created_at""",
                    [call_id, result.criterion, result.result, result.rationale, result.turn,
                     DETERMINISTIC if self._is_checked(result.criterion) else self.judge_model, now])
            for value in data:
                store.db.execute(
                    """INSERT INTO call_data (call_id, field, value, valid, problem, created_at) VALUES (?, ?, ?, ?, ?, ?)
                       ON CONFLICT (call_id, field) DO UPDATE SET value = excluded.value, valid = excluded.valid,
                           problem = excluded.problem, created_at = excluded.created_at""",
                    [call_id, value.field, None if value.value is None else json.dumps(value.value), int(value.valid),
                     value.problem, now])
        return criteria, data

    def _is_checked(self, criterion_id):
        return any(c.id == criterion_id and c.check for c in self.config.evaluation_criteria)

    def _checked(self, criterion, store, call_id):
        """``side_effects_confirmed`` from the tool calls the call session stored."""
        side_effects = {t.name for t in self.config.tools if t.side_effects}
        positions = {t.id: t.position for t in store.turns(call_id)}
        ran = [c for c in store.tool_calls(call_id) if c.tool in side_effects and str(c.status) == "ok"]
        unconfirmed = [c for c in ran if not c.confirmed]
        if unconfirmed:
            first = unconfirmed[0]
            return CriterionResult(criterion.id, "failure", f"{first.tool} ran without the caller's yes to its read-back",
                                   positions.get(first.turn_id))
        return CriterionResult(criterion.id, "success", f"{len(ran)} side-effecting tool call(s), each confirmed by the "
                                                        "caller" if ran else "no side-effecting tool ran", None)

    def _criterion(self, criterion, lines, positions):
        try:
            verdict = self.judge(criterion.description, lines)
        except JudgeReplyError as exc:
            return CriterionResult(criterion.id, "unknown", f"the judge's reply did not parse: {exc}", None)
        turn = positions[verdict.turn - 1] if 1 <= verdict.turn <= len(positions) else None
        return CriterionResult(criterion.id, RESULTS[verdict.verdict], verdict.rationale, turn)

    def _data(self, lines):
        """Every field from one grammar-constrained reply, then each value checked against its type."""
        properties = {f.id: f.json_schema() for f in self.config.data_collection}
        schema = {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}
        described = "\n".join(f"- {f.id} ({_type_text(f)}): {f.description}" for f in self.config.data_collection)
        prompt = chatml([
            ("system", "You extract facts from a phone call transcript. For each field give the value the "
                       "transcript states, or null when it does not say. Never guess."),
            ("user", "Transcript:\n" + "\n".join(lines) + f"\n\nFields:\n{described}\n\nReply with JSON."),
        ])
        reply = "".join(self.engine.stream(prompt, grammar=self.engine.grammar(schema), max_tokens=200, temperature=0.0))
        try:
            extracted = json.loads(reply)
        except json.JSONDecodeError as exc:
            problem = f"the extraction reply did not parse ({exc.msg})"
            return [DataValue(f.id, None, False, problem) for f in self.config.data_collection]
        return [check_value(f, extracted.get(f.id)) for f in self.config.data_collection]


def _type_text(field):
    return f"one of {', '.join(field.values)}" if field.type == "enum" else field.type


def check_value(field, value):
    """``value`` against the field's declared type; None (not said) is valid and stays None."""
    if value is None:
        return DataValue(field.id, None, True)
    ok = {
        "string": lambda v: isinstance(v, str) and v.strip() != "",
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "enum": lambda v: v in field.values,
    }[field.type](value)
    return DataValue(field.id, value, ok, None if ok else f"{value!r} is not a valid {_type_text(field)}")
