"""Conversation analysis (`parley analyze CALL_ID`): a stored call as a timeline, and the moment
it went wrong pointed out, with the command that turns that moment into an agent test.

Problems, each tied to the agent turn it shows in: a tool that failed or was refused, a hand-off
made because the appliance failed (not because the caller needed a person), a failing evaluation
criterion (at the turn its judge named), and a latency outlier (voice-to-voice more than twice
the call's median and over ``LATENCY_OUTLIER_MS``). The moment it went wrong is the earliest.
"""

import statistics
from dataclasses import dataclass, field

LATENCY_OUTLIER_MS = 3000
TECHNICAL_HANDOFF = "technical problem"
"""How the call session words the reason of a hand-off made because a worker failed."""
SEVERITY = ("tool_error", "escalation", "criterion", "latency")
"""Order of problems found at the same turn: hard evidence before judged or timed."""


@dataclass(frozen=True)
class Problem:
    turn: int
    """The position of the agent turn it shows in."""
    kind: str
    detail: str


@dataclass
class TurnView:
    position: int
    role: str
    text: str
    heard_text: str | None
    interrupted: bool
    spans_ms: dict = field(default_factory=dict)
    """Span name -> ms after the caller stopped speaking (answered agent turns)."""
    tools: list = field(default_factory=list)
    kb_chunk_ids: list = field(default_factory=list)

    @property
    def voice_to_voice_ms(self):
        return self.spans_ms.get("playout_start")


@dataclass(frozen=True)
class Analysis:
    call: object
    timeline: tuple
    problems: tuple
    evaluations: tuple
    handoffs: tuple

    @property
    def went_wrong(self):
        return self.problems[0] if self.problems else None

    def test_command(self):
        problem = self.went_wrong
        if problem is None:
            return None
        return f"parley test from-call {self.call.id} --turn {problem.turn} --out tests/from-call-{self.call.id[:8]}.yaml"


def analyze(store, call_id):
    call = store.call(call_id)
    turns = store.turns(call_id)
    tools = {}
    for tool_call in store.tool_calls(call_id):
        tools.setdefault(tool_call.turn_id, []).append(tool_call)
    timeline = []
    for turn in turns:
        spans = {s.name: s.t_ns for s in store.spans(turn.id)}
        start = spans.get("user_speech_end")
        spans_ms = {name: (t - start) / 1e6 for name, t in spans.items() if start is not None and name != "user_speech_end"}
        timeline.append(TurnView(turn.position, str(turn.role), turn.text, turn.heard_text, turn.interrupted, spans_ms,
                                 tools.get(turn.id, []), list(turn.kb_chunk_ids)))
    evaluations = tuple(store.db.execute(
        "SELECT criterion, result, rationale, turn FROM call_evaluations WHERE call_id = ? ORDER BY id", [call_id]).fetchall())
    handoffs = tuple(store.handoffs(call_id))
    problems = _problems(timeline, evaluations, handoffs)
    return Analysis(call, tuple(timeline), tuple(problems), evaluations, handoffs)


def _problems(timeline, evaluations, handoffs):
    problems = []
    agent_turns = [t for t in timeline if t.role == "agent"]
    for turn in agent_turns:
        for tool in turn.tools:
            if str(tool.status) != "ok":
                problems.append(Problem(turn.position, "tool_error", f"{tool.tool} {tool.status}: {tool.arguments}"))
    for handoff in handoffs:
        if handoff.reason.startswith(TECHNICAL_HANDOFF) and agent_turns:
            problems.append(Problem(agent_turns[-1].position, "escalation", f"handed off because {handoff.reason}"))
    for criterion, result, rationale, turn in evaluations:
        if result == "failure":
            position = turn if turn is not None else (agent_turns[-1].position if agent_turns else 0)
            problems.append(Problem(position, "criterion", f"{criterion} failed: {rationale}"))
    latencies = [t.voice_to_voice_ms for t in agent_turns if t.voice_to_voice_ms is not None]
    if latencies:
        median = statistics.median(latencies)
        for turn in agent_turns:
            v2v = turn.voice_to_voice_ms
            if v2v is not None and v2v > LATENCY_OUTLIER_MS and v2v > 2 * median:
                problems.append(Problem(turn.position, "latency", f"voice-to-voice {v2v:.0f} ms (call median {median:.0f} ms)"))
    return sorted(problems, key=lambda p: (p.turn, SEVERITY.index(p.kind)))
