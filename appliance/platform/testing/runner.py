"""Runs agent tests through the agent's own orchestrator (``AgentRunner``): the code path that
answers callers answers tests, only the caller's words come from a test file or a simulated caller.

Every run starts the tools' data fresh (the agent's ``testing.fixture``), samples with its own
seed (so a failure can be replayed), and ends as a ``RunOutcome``: passed, failed (with the
reasons) or error (the run itself broke: a judge reply that does not parse, a crash).
"""

import dataclasses
import inspect
import json
import logging
import re
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from types import SimpleNamespace

from parley.appliance.agent import governance
from parley.appliance.agent.conversation import new_state, record_interruption, transcript
from parley.appliance.agent.llm import chatml
from parley.appliance.agent.orchestrator import AgentRunner, Handoff, Sentence, ToolRun, TurnResult
from parley.appliance.platform.testing.judge import Judge
from parley.appliance.agent.tools import ToolContext, ToolError, call_tool, load_handler

log = logging.getLogger(__name__)

SIMULATED_CALLER_TEMPERATURE = 0.7
"""The simulated caller varies its wording run to run; the agent samples at its own temperature."""

BEHAVIOUR_TEXT = {
    "vague": "You are vague: you describe your problem loosely and give the order number only when asked twice.",
    "angry": "You are angry and impatient about the service, and you say so.",
    "changes_topic": "Halfway through you switch to a different question about your order before going back to your goal.",
    "interrupts": "You often cut the agent off before it has finished.",
    "wrong_order_number_first": "You first give a wrong order number (two digits swapped) and correct it only when "
                                "the agent cannot find the order or reads back the wrong one.",
    "terse": "You answer in as few words as possible.",
    "chatty": "You add small talk that has nothing to do with your request.",
}

_CALLER_SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string", "minLength": 2, "maxLength": 240}},
    "required": ["text"],
    "additionalProperties": False,
}


class UnmockedCall(Exception):
    """A mocked tool was called with arguments none of its canned results matches (``unmatched: fail``)."""


@dataclass(frozen=True)
class RunOutcome:
    test_id: str
    run: int
    seed: int
    status: str
    """``passed``, ``failed`` or ``error``."""
    reasons: tuple = ()
    details: dict = field(default_factory=dict)
    """The transcript, the tool calls, each judge's rationale: what a person reads to see why."""
    seconds: float = 0.0


@dataclass
class _Turn:
    """What one agent turn did, gathered from the orchestrator's outputs."""

    result: TurnResult
    sentences: list
    tool_runs: list
    handoff: Handoff | None
    calls: list
    """(tool, arguments) the model chose this turn, system tools included."""


class TestRunner:
    """Runs tests of one agent on one LLM engine (and a judge, by default on the same engine)."""

    __test__ = False

    def __init__(self, config, engine, *, judge=None, knowledge=None, placer=None):
        """``placer`` (media.placer.CallPlacer over running workers) is needed by audio simulations only."""
        self.config = config
        self.engine = engine
        self.placer = placer
        self.judge = judge or Judge(engine)
        self.agent = AgentRunner(config, engine, knowledge=knowledge)
        self.real_handlers = dict(self.agent.handlers)
        self.fixture = load_handler(config.testing.fixture) if config.testing.fixture else None
        self.caller_grammar = engine.grammar(_CALLER_SCHEMA)

    def run(self, test, run, seed):
        """Run ``test`` once; never raises for a failure of the agent or the run itself."""
        started = time.monotonic()
        details = {}
        try:
            if self.fixture is not None:
                self.fixture(self.config.tool_config)
            self.engine.seed = seed
            unmocked = []
            self.agent.handlers = self._handlers(test.mocks, unmocked)
            if test.kind == "simulation" and test.mode == "audio":
                reasons = self._audio_simulation(test, details)
            elif test.kind == "simulation":
                reasons = self._simulation(test, seed, details)
            else:
                reasons = self._next_turn(test, details)
            reasons += [f"unmocked call: {call}" for call in unmocked]
            status = "failed" if reasons else "passed"
        except Exception as exc:  # the run broke, not the agent: reported as an error, the suite goes on
            log.exception("test_run_error test=%s run=%s", test.id, run)
            status, reasons = "error", [f"{type(exc).__name__}: {exc}"]
        finally:
            self.agent.handlers = dict(self.real_handlers)
        return RunOutcome(test.id, run, seed, status, tuple(reasons), details, time.monotonic() - started)

    # ---- next_turn and tool_call -------------------------------------------------------------
    def _next_turn(self, test, details):
        call_id = str(uuid.uuid4())
        state = self._history_state(test.history[:-1], call_id)
        before = len(state["entries"])
        turn = self._respond(state, test.history[-1][1], call_id)
        lines = transcript_lines(turn.result.state)
        details.update(transcript=lines, reply=turn.result.text, calls=[[n, a] for n, a in turn.calls],
                       tool_runs=[[r.name, r.arguments, r.status, r.confirmed] for r in turn.tool_runs],
                       new_entries=turn.result.state["entries"][before:])
        reasons = self._check_reply(test.expect, turn.result.text, lines, details)
        reasons += self._check_tools(test.expect.tools, turn.calls, lines, details)
        if test.kind == "tool_call":
            for run in turn.tool_runs:
                if run.status == "ok" and not run.confirmed and self.config.tool(run.name).side_effects:
                    reasons.append(f"{run.name} ran before the caller confirmed it")
        return reasons

    def _history_state(self, steps, call_id):
        """The conversation state a history describes; tools in it run (or are mocked) as written."""
        state = new_state()
        state["entries"].append({"role": "agent", "text": self.config.first_message})
        for role, payload in steps:
            if role != "tool":
                state["entries"].append({"role": role, "text": payload})
                continue
            name, arguments, result = payload["name"], payload["arguments"], payload["result"]
            tool = self.config.tool(name)
            if tool.side_effects and result is None:  # the agent read the call back; the caller answers next
                read_back = governance.read_back(tool, arguments)
                state["pending"] = {"tool": name, "arguments": arguments, "read_back": read_back}
                state["entries"].append({"role": "agent", "text": read_back})
                continue
            state["entries"].append({"role": "action", "tool": name, "arguments": arguments})
            if result is None:
                try:
                    result = call_tool(self.agent.handlers[name], ToolContext(call_id, self.config.tool_config), arguments)
                except ToolError as exc:
                    state["entries"].append({"role": "result", "tool": name, "arguments": arguments,
                                             "status": "error", "message": exc.spoken})
                    continue
            state["entries"].append({"role": "result", "tool": name, "arguments": arguments, "status": "ok",
                                     "result": result})
        return state

    def _respond(self, state, caller_text, call_id):
        outputs = list(self.agent.respond(state, caller_text, call_id=call_id))
        return self._gather(outputs, len(state["entries"]))

    def _gather(self, outputs, entries_before):
        result = outputs[-1]
        tool_runs = [o for o in outputs if isinstance(o, ToolRun)]
        handoff = next((o for o in outputs if isinstance(o, Handoff)), None)
        calls = [(e["tool"], e["arguments"]) for e in result.state["entries"][entries_before:] if e["role"] == "action"]
        if result.state.get("pending") and result.state["pending"] is not None:
            pending = result.state["pending"]
            if (pending["tool"], pending["arguments"]) not in calls:
                calls.append((pending["tool"], pending["arguments"]))
        if result.action == "end_call":
            calls.append(("end_call", {}))
        elif result.action == "transfer":
            calls.append(("transfer_to_human", {"reason": handoff.reason if handoff else ""}))
        elif not result.text:
            calls.append(("skip_turn", {}))
        sentences = [o.text for o in outputs if isinstance(o, Sentence)]
        return _Turn(result, sentences, tool_runs, handoff, calls)

    def _check_reply(self, expect, text, lines, details):
        reasons = []
        lowered = text.lower()
        reasons += [f"reply does not contain {want!r}: {text!r}" for want in expect.contains if want.lower() not in lowered]
        reasons += [f"reply contains {unwanted!r}: {text!r}" for unwanted in expect.not_contains
                    if unwanted.lower() in lowered]
        reasons += [f"reply does not match /{pattern}/: {text!r}" for pattern in expect.regex
                    if not re.search(pattern, text, re.IGNORECASE)]
        if expect.judge:
            reasons += self._judged(expect.judge, lines, details, "judge")
        return reasons

    def _judged(self, requirement, lines, details, key):
        verdict = self.judge(requirement, lines)
        details.setdefault("judged", {})[key] = dataclasses.asdict(verdict)
        if verdict.verdict == "pass":
            return []
        return [f"judge: {verdict.verdict}: {requirement} ({verdict.rationale})"]

    def _check_tools(self, expectations, calls, lines, details):
        reasons = []
        summary = ", ".join(f"{name}({json.dumps(args, sort_keys=True)})" for name, args in calls) or "no tool"
        for want in expectations:
            same = [args for name, args in calls if name == want.name]
            if not want.called:
                if same:
                    reasons.append(f"{want.name} was called but must not be ({summary})")
                continue
            if not same:
                reasons.append(f"{want.name} was not called (called: {summary})")
                continue
            problems = [self._argument_problems(want, args, lines, details) for args in same]
            if all(problems):
                reasons.append(f"{want.name} called with the wrong arguments: {'; '.join(problems[0])}")
        return reasons

    def _argument_problems(self, want, arguments, lines, details):
        problems = []
        for name, check in want.arguments.items():
            if name not in arguments:
                problems.append(f"{name} missing")
                continue
            value = arguments[name]
            if check.how == "exact" and not same_value(value, check.value):
                problems.append(f"{name}={value!r}, expected {check.value!r}")
            elif check.how == "regex" and not re.search(str(check.value), str(value), re.IGNORECASE):
                problems.append(f"{name}={value!r} does not match /{check.value}/")
            elif check.how == "judge":
                problems += self._judged(f"The value {value!r} given for {name} of {want.name}: {check.value}",
                                         lines, details, f"{want.name}.{name}")
        return problems

    # ---- simulation ----------------------------------------------------------------------------
    def _simulation(self, test, seed, details):
        call_id = str(uuid.uuid4())
        *_, greeting = self.agent.start(call_id)
        state, tool_runs, handoffs, ended_by = greeting.state, [], [], "max_turns"
        for turn_number in range(test.max_turns):
            said = self._simulated_caller(test.persona, conversation_lines(state))
            before = len(state["entries"])
            turn = self._gather(list(self.agent.respond(state, said, call_id=call_id)), before + 1)
            state = turn.result.state
            tool_runs += turn.tool_runs
            handoffs += [turn.handoff] if turn.handoff else []
            if turn.result.action != "listen":
                ended_by = turn.result.action
                break
            if "interrupts" in test.persona.behaviours and len(turn.sentences) > 1 and (seed + turn_number) % 2 == 0:
                record_interruption(state, " ".join(turn.sentences[:1]))
        lines = transcript_lines(state)
        details.update(transcript=lines, ended_by=ended_by,
                       tool_runs=[[r.name, r.arguments, r.status, r.confirmed] for r in tool_runs],
                       handoff=dataclasses.asdict(handoffs[0]) if handoffs else None)
        return self._check_outcome(test.expect, lines, tool_runs, handoffs, details, self.config.tool_config)

    def _audio_simulation(self, test, details):
        """The simulated caller's words spoken by espeak-ng into a real call: the call loop, STT, the
        agent worker and TTS as a caller meets them; the outcome read back from the store."""
        from parley.appliance.platform.evaluation import call_transcript
        from parley.appliance.platform.testing.audio import SimulatedCaller
        from parley.appliance.store import Store

        placer = self.placer
        if placer is None:
            raise RuntimeError("an audio simulation needs the appliance's workers: run it with `parley test`")
        if self.fixture is not None:
            self.fixture(placer.agent.tool_config)
        caller = SimulatedCaller(lambda lines: self._simulated_caller(test.persona, lines), placer.line_rate,
                                 max_lines=test.max_turns)
        session, _ = placer.place(caller, channel="test", max_seconds=60.0 + 30.0 * test.max_turns)
        with Store.open(placer.settings.db_path) as store:
            lines, _ = call_transcript(store, session.call_id)
            tool_runs = [SimpleNamespace(name=c.tool, status=str(c.status)) for c in store.tool_calls(session.call_id)]
            handoffs = store.handoffs(session.call_id)
        details.update(transcript=lines, call_id=session.call_id, ended_by=session.outcome or "max_turns",
                       caller_said=caller.said, tool_runs=[[r.name, r.status] for r in tool_runs])
        return self._check_outcome(test.expect, lines, tool_runs, handoffs, details, placer.agent.tool_config)

    def _simulated_caller(self, persona, lines):
        """The simulated caller's next words: the conversation is shown as a transcript (a small
        model given the agent's lines as chat turns starts answering as the agent)."""
        behaviours = " ".join(BEHAVIOUR_TEXT[b] for b in persona.behaviours)
        system = (f"You write what a caller says on the phone to {self.config.name}'s support line. "
                  f"The caller: {persona.description} The caller's goal: {persona.goal} {behaviours} "
                  "Write only the caller's next words: one or two short spoken sentences that move the caller "
                  "towards the goal, answering what the agent just asked. Never speak as the agent. Say numbers digit "
                  "by digit. Once the goal is met, thank the agent and say goodbye.")
        user = "Conversation so far:\n" + "\n".join(lines) + "\n\nThe caller's next words, as JSON {\"text\": ...}:"
        reply = "".join(self.engine.stream(chatml([("system", system), ("user", user)]), grammar=self.caller_grammar,
                                           max_tokens=100, temperature=SIMULATED_CALLER_TEMPERATURE))
        return json.loads(reply)["text"].strip() or "Hello?"

    def _check_outcome(self, expect, lines, tool_runs, handoffs, details, tool_config):
        reasons = []
        ran = {r.name for r in tool_runs if r.status == "ok"}
        reasons += [f"{name} never ran" for name in expect.tools_called if name not in ran]
        reasons += [f"{name} ran but must not" for name in expect.tools_not_called if name in ran]
        if expect.handoff is not None and bool(handoffs) != expect.handoff:
            reasons.append("the call was handed to a person" if handoffs else "the call was not handed to a person")
        criteria = {c.id: c for c in self.config.evaluation_criteria}
        for criterion_id in expect.criteria:
            if criterion_id not in criteria:
                reasons.append(f"criterion {criterion_id!r} is not in the agent file")
                continue
            reasons += self._judged(criteria[criterion_id].description, lines, details, criterion_id)
        for check in expect.database:
            reasons += database_problem(check, tool_config)
        if expect.judge:
            reasons += self._judged(expect.judge, lines, details, "judge")
        return reasons

    # ---- mocks ---------------------------------------------------------------------------------
    def _handlers(self, mocks, unmocked):
        handlers = dict(self.real_handlers)
        if mocks.mode == "none":
            return handlers
        names = handlers if mocks.mode == "all" else mocks.results
        for name in names:
            handlers[name] = _mock(name, self.real_handlers[name], mocks.results.get(name, ()), mocks.unmatched, unmocked)
        return handlers


def _mock(name, real, canned, unmatched, unmocked):
    def handler(context, **arguments):
        for when, result in canned:
            if all(same_value(arguments.get(key), value) for key, value in when.items()):
                return dict(result)
        if unmatched == "real":
            return real(context, **arguments)
        unmocked.append(f"{name}({json.dumps(arguments, sort_keys=True)})")
        raise UnmockedCall(name)

    handler.__signature__ = inspect.signature(real)  # the real tool's arguments are still checked
    handler.__qualname__ = f"mock of {getattr(real, '__qualname__', name)}"
    return handler


def database_problem(check, tool_config):
    if check.database not in tool_config:
        return [f"database {check.database!r} is not a tool_config entry"]
    with sqlite3.connect(f"file:{tool_config[check.database]}?mode=ro", uri=True) as conn:
        row = conn.execute(check.sql).fetchone()
    value = None if row is None else row[0]
    return [] if same_value(value, check.equals) else [f"{check.sql!r} gave {value!r}, expected {check.equals!r}"]


def conversation_lines(state):
    """What was said, as the simulated caller reads it: ``agent: ...`` and ``caller: ...`` lines."""
    lines = []
    for entry in state["entries"]:
        if entry["role"] == "agent":
            lines.append("agent: " + (entry["heard"] if entry.get("interrupted") else entry["text"]))
        elif entry["role"] == "caller":
            lines.append("caller: " + entry["text"])
    return lines


def same_value(actual, expected):
    """Test equality as a person means it: 49.99 == "49.99", "4512" == 4512, case and spaces aside."""
    if isinstance(actual, bool) or isinstance(expected, bool):
        return actual is expected
    numbers = []
    for value in (actual, expected):
        try:
            numbers.append(float(value))
        except (TypeError, ValueError):
            numbers.append(None)
    if None not in numbers:
        return abs(numbers[0] - numbers[1]) < 1e-6
    if isinstance(actual, str) and isinstance(expected, str):
        return " ".join(actual.split()).lower() == " ".join(expected.split()).lower()
    return actual == expected


def transcript_lines(state):
    """Speaker-labelled lines for a judge: what was said (as heard) and what the tools did."""
    return [line for line in transcript(state, heard_only=True).splitlines() if line.strip()]
