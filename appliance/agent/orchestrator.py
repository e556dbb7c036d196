"""The agent's turn: from what the caller said to what the agent says and does.

``AgentRunner.respond(state, caller_text)`` is the one code path behind callers, agent tests and
simulations. It retrieves knowledge, asks the model for its next action under the tools'
grammar, enforces each tool's policy (caller-given arguments, required look-ups, limits, a
read-back and a yes before side effects), runs tools, and streams what to say sentence by
sentence while the model is still writing. It yields outputs in order and ends with a
``TurnResult`` holding the updated state; nothing is kept in the runner between turns.
"""

import json
import logging
import re
import time
from dataclasses import dataclass, field

from parley.appliance.agent import governance
from parley.appliance.agent.conversation import copy_state, new_state, transcript
from parley.appliance.agent.kb import KnowledgeBase
from parley.appliance.agent.llm import (
    SAY,
    ReplyParseError,
    SayStream,
    action_schema,
    all_tools,
    chatml,
    new_knowledge,
    parse_action,
    render_messages,
    render_system,
)
from parley.appliance.agent.tools import ToolContext, ToolError, call_tool, load_handler

log = logging.getLogger("parley.agent")

MAX_STEPS = 4
"""Model actions per caller turn (e.g. look up, then speak): a loop of tool calls is cut here."""
NOT_UNDERSTOOD = "Sorry, I didn't catch that. Could you say it again?"
CLOSING_ACTIONS = ("end_call", "transfer_to_human")


@dataclass(frozen=True)
class Sentence:
    text: str
    index: int
    """Position in the agent's reply this turn, from 0."""


@dataclass(frozen=True)
class FirstToken:
    """The model produced its first token this turn (a point of the latency trace)."""

    t_ns: int


@dataclass(frozen=True)
class ToolRun:
    name: str
    arguments: dict
    status: str
    """``ok``, ``error`` (the tool failed) or ``refused`` (policy or a business rule said no)."""
    result: dict | None
    message: str
    """For error and refused: what went wrong, as the model is told it."""
    confirmed: bool
    started_ns: int
    ended_ns: int
    state: dict | None = None
    """The turn's state as this tool left it: the caller's words, the call and its result in
    the entries, the read-back it answered closed. A reply cut off before the turn's end keeps
    this, so a tool that ran is never taken for one still waiting for the caller's yes."""


@dataclass(frozen=True)
class Handoff:
    reason: str
    summary: str
    collected: dict
    transcript: str


@dataclass(frozen=True)
class TurnResult:
    state: dict
    action: str
    """``listen`` (the call goes on), ``end_call`` or ``transfer``."""
    kb_chunk_ids: tuple = ()
    text: str = ""
    """Everything the agent said this turn."""


@dataclass
class _Turn:
    state: dict
    said: list = field(default_factory=list)
    chunk_ids: list = field(default_factory=list)
    first_token: bool = False
    filled: bool = False
    closing: str | None = None


FIRST_CLAUSE_WORDS = 4
"""The reply's first piece may end at a clause of at least this many words ("I'm sorry to hear
that,") instead of the sentence's end: the voice starts while the model writes the rest."""


class SentenceSplitter:
    """Cuts streamed text into sentences as soon as each one is complete; the first piece may end
    at a clause (a comma, semicolon, colon or dash after ``first_clause_words`` words or more)."""

    _END = re.compile(r"[.!?]+[\"')]?\s+(?=\S)")
    _NOT_AN_END = re.compile(r"(?:\b(?:Mr|Ms|Mrs|Dr|St|vs|etc|e\.g|i\.e)|\b[A-Z])\.$")
    _CLAUSE = re.compile(r"[,;:]\s+(?=\S)|\s[-\u2013\u2014]\s+(?=\S)")

    def __init__(self, first_clause_words=FIRST_CLAUSE_WORDS):
        self.first_clause_words = first_clause_words
        self._buffer = ""
        self._cut = False

    def feed(self, text):
        self._buffer += text
        pieces = []
        while (end := self._next_end()) is not None:
            piece, self._buffer = self._buffer[:end].strip(), self._buffer[end:]
            if piece:
                pieces.append(piece)
                self._cut = True
        return pieces

    def flush(self):
        rest, self._buffer = self._buffer.strip(), ""
        return [rest] if rest else []

    def _next_end(self):
        sentence_end = next((m.end() for m in self._END.finditer(self._buffer)
                             if not self._NOT_AN_END.search(self._buffer[:m.start() + 1])), None)
        if not self._cut and self.first_clause_words:
            for match in self._CLAUSE.finditer(self._buffer):
                if sentence_end is not None and match.start() >= sentence_end:
                    break
                if len(self._buffer[:match.start()].split()) >= self.first_clause_words:
                    return match.end()
        return sentence_end


class AgentRunner:
    """One agent (its config, knowledge and tools) bound to an LLM engine."""

    def __init__(self, config, engine, *, knowledge=None, audit=None):
        self.config = config
        self.engine = engine
        self.knowledge = knowledge if knowledge is not None else KnowledgeBase.from_folder(config.kb_folder)
        self.audit = audit or (lambda action, subject, details: None)
        self.handlers = {tool.name: load_handler(tool.handler) for tool in config.tools}
        self.schema = action_schema([(t.name, t.parameters) for t in all_tools(config)])
        self.schema_after_a_step = action_schema(
            [(t.name, t.parameters) for t in all_tools(config) if t.name != "skip_turn"])
        """Once a tool ran (or was refused) this turn the caller is waiting for an answer: saying
        nothing is no longer a choice (a small model otherwise goes silent after a refusal)."""

    def system_prompt(self):
        return chatml([("system", render_system(self.config))], reply=False)

    def prefill(self, state, stop=None):
        """Evaluate the conversation so far while the caller listens, so that the next turn only
        evaluates the caller's new words (on a 2-core CPU this saves seconds per turn); gives way
        when ``stop()`` turns true. Returns the engine's ``Prefill``."""
        return self.engine.warm(chatml(render_messages(self.config, state), reply=False), stop)

    def prefill_turn(self, state, caller_text, stop=None):
        """Evaluate the prompt ``respond`` would give the model first if the caller's turn were
        ``caller_text`` (their words and the knowledge they bring), giving way when ``stop()`` turns
        true. Returns the engine's ``Prefill``, or None when that turn would not start with the model
        (a read-back waiting for its yes or no)."""
        if state.get("pending") is not None:
            return None
        turn = _Turn(copy_state(state))
        turn.state["entries"].append({"role": "caller", "text": caller_text})
        self._add_knowledge(turn, caller_text)
        return self.engine.warm(chatml(render_messages(self.config, turn.state)), stop)

    def start(self, call_id):
        """The first turn of a call: the agent's greeting (no model involved)."""
        state = new_state()
        state["entries"].append({"role": "agent", "text": self.config.first_message})
        yield Sentence(self.config.first_message, 0)
        yield TurnResult(state, "listen", (), self.config.first_message)

    def respond(self, state, caller_text, *, call_id, cancelled=None):
        """The agent's turn after the caller said ``caller_text``; yields outputs, then a TurnResult."""
        turn = _Turn(copy_state(state))
        entries = turn.state["entries"]
        entries.append({"role": "caller", "text": caller_text})
        pending = turn.state.get("pending")
        if pending is not None:
            turn.state["pending"] = None
            answer = self._confirmation(turn, pending, caller_text, cancelled)
            if answer == "yes":
                ran = yield from self._run_tool(turn, pending["tool"], pending["arguments"], call_id, confirmed=True)
                if ran is not None:
                    yield from self._say(turn, ran)
                    return (yield from self._finish(turn, "listen"))
            elif answer == "no":
                entries.append({"role": "note", "text": f"The caller did not agree to {pending['tool']}: it was not done. "
                                                        "Ask what they would like instead."})
            else:
                turn.state["pending"] = pending
                yield from self._say(turn, "Sorry, was that a yes? " + pending["read_back"])
                return (yield from self._finish(turn, "listen"))
        self._add_knowledge(turn, caller_text)
        for step in range(MAX_STEPS):
            if cancelled is not None and cancelled.is_set():
                return (yield from self._finish(turn, "listen"))
            if turn.state["failed_attempts"] >= self.config.escalation.max_failed_attempts:
                return (yield from self._transfer(turn, f"{turn.state['failed_attempts']} failed attempts", call_id, cancelled))
            try:
                schema = self.schema_after_a_step if step else self.schema
                action, payload = yield from self._next_action(turn, cancelled, schema)
            except ReplyParseError as exc:
                log.warning("llm_reply_unparsed call_id=%s reason=%s", call_id, exc)
                if cancelled is not None and cancelled.is_set():
                    return (yield from self._finish(turn, "listen"))
                turn.state["failed_attempts"] += 1
                yield from self._say(turn, NOT_UNDERSTOOD)
                return (yield from self._finish(turn, "listen"))
            if action == SAY:
                return (yield from self._finish(turn, "listen"))
            if action == "end_call":
                if turn.closing != action:
                    yield from self._say(turn, self.config.goodbye)
                turn.state["outcome"] = "ended"
                return (yield from self._finish(turn, "end_call"))
            if action == "skip_turn":
                return (yield from self._finish(turn, "listen"))
            if action == "transfer_to_human":
                return (yield from self._transfer(turn, payload.get("reason", "the caller asked for a person"), call_id, cancelled))
            tool = self.config.tool(action)
            entries.append({"role": "action", "tool": action, "arguments": payload})
            try:
                governance.check_call(tool, payload, turn.state)
            except governance.PolicyRefusal as refusal:
                yield from self._record_refusal(turn, tool, payload, refusal, call_id)
                continue
            if tool.side_effects:
                read_back = governance.read_back(tool, payload)
                turn.state["pending"] = {"tool": action, "arguments": payload, "read_back": read_back}
                yield from self._say(turn, read_back)
                return (yield from self._finish(turn, "listen"))
            done = yield from self._run_tool(turn, action, payload, call_id, confirmed=False)
            if done is not None:
                yield from self._say(turn, done)
                return (yield from self._finish(turn, "listen"))
        yield from self._say(turn, NOT_UNDERSTOOD)
        return (yield from self._finish(turn, "listen"))

    def handoff(self, state, reason, cancelled=None):
        """A hand-off record: the model's summary for the colleague and the data collected so far."""
        fields = {f.id: f.json_schema() for f in self.config.data_collection}
        schema = {"type": "object", "properties": {"summary": {"type": "string", "minLength": 1},
                                                   "data": {"type": "object", "properties": fields,
                                                            "required": list(fields), "additionalProperties": False}},
                  "required": ["summary", "data"], "additionalProperties": False}
        note = ("The call is being handed to a human colleague (" + reason + "). Write the hand-off as JSON: "
                "\"summary\" in two sentences for the colleague (who the caller is, what they want, what was done), "
                "and \"data\" with each field taken from the conversation, or null when not given.")
        messages = render_messages(self.config, state) + [("system", note)]
        text = "".join(self.engine.stream(chatml(messages), grammar=self.engine.grammar(schema),
                                          max_tokens=120, temperature=0.0, cancelled=cancelled))
        try:
            record = json.loads(text)
            summary, collected = record["summary"], record["data"]
        except (json.JSONDecodeError, KeyError, TypeError):
            summary, collected = f"Transferred ({reason}); the summary could not be written, see the transcript.", {}
        return Handoff(reason, summary, collected, transcript(state))

    # ---- steps ----------------------------------------------------------------------------
    def _add_knowledge(self, turn, caller_text):
        limit = self.config.knowledge.chunks_per_turn
        if not limit or not len(self.knowledge):
            return
        entry = new_knowledge(turn.state, self.knowledge.search(caller_text, limit))
        if entry is not None:
            turn.state["entries"].append(entry)
            turn.chunk_ids.extend(chunk["id"] for chunk in entry["chunks"])

    def _next_action(self, turn, cancelled, schema):
        prompt = chatml(render_messages(self.config, turn.state))
        reply, splitter = SayStream(), SentenceSplitter()
        filler = None
        for piece in self.engine.stream_action(prompt, schema, max_tokens=self.config.llm.max_tokens,
                                               temperature=self.config.llm.temperature, cancelled=cancelled):
            if not turn.first_token:
                turn.first_token = True
                yield FirstToken(time.monotonic_ns())
            for sentence in splitter.feed(reply.feed(piece)):
                yield from self._emit(turn, sentence)
            if filler is None and reply.action not in (None, SAY):
                filler = self._filler(reply.action)
                if reply.action in CLOSING_ACTIONS:
                    turn.closing = reply.action  # the goodbye or hand-off line goes out while the call is written
                    yield from self._say(turn, self._closing_line(reply.action))
                elif filler and not turn.filled:
                    turn.filled = True  # one filler a turn: "let me check" twice sounds broken
                    yield from self._emit(turn, filler)
        action, payload = parse_action(reply.raw)
        if action == SAY:
            for sentence in splitter.flush():
                yield from self._emit(turn, sentence)
            turn.state["entries"].append({"role": "agent", "text": payload.strip()})
        elif action not in {t.name for t in all_tools(self.config)}:
            raise ReplyParseError(f"unknown tool {action!r}")
        return action, payload

    def _filler(self, action):
        """The tool's ``filler`` line, said while the model writes the call and the tool runs."""
        for tool in self.config.tools:
            if tool.name == action:
                return tool.filler or ""
        return ""

    def _emit(self, turn, sentence):
        turn.said.append(sentence)
        yield Sentence(sentence, len(turn.said) - 1)

    def _say(self, turn, text):
        """Speak a fixed line (read-back, goodbye, apology) and keep it in the history."""
        turn.state["entries"].append({"role": "agent", "text": text})
        splitter = SentenceSplitter()
        for sentence in splitter.feed(text) + splitter.flush():
            yield from self._emit(turn, sentence)

    def _confirmation(self, turn, pending, caller_text, cancelled):
        answer = governance.confirmation(caller_text)
        if answer is not None:
            return answer
        note = (f"You asked the caller: \"{pending['read_back']}\" Did the caller agree? Answer yes, no or unclear.")
        prompt = chatml(render_messages(self.config, turn.state) + [("system", note)])
        text = "".join(self.engine.stream(prompt, grammar=self.engine.choice_grammar(("yes", "no", "unclear")),
                                          max_tokens=3, temperature=0.0, cancelled=cancelled)).strip()
        if text == "unclear":
            turn.state["failed_attempts"] += 1
        return text if text in ("yes", "no") else None

    def _run_tool(self, turn, name, arguments, call_id, *, confirmed):
        """Run a tool under policy; returns its ``done`` sentence when it succeeded and has one."""
        tool = self.config.tool(name)
        if confirmed:
            turn.state["entries"].append({"role": "action", "tool": name, "arguments": arguments})
            try:
                governance.check_call(tool, arguments, turn.state)
            except governance.PolicyRefusal as refusal:
                yield from self._record_refusal(turn, tool, arguments, refusal, call_id)
                return
        started = time.monotonic_ns()
        self.audit("tool.call", f"{call_id}/{name}", {"arguments": arguments, "confirmed": confirmed})
        try:
            result = call_tool(self.handlers[name], ToolContext(call_id, self.config.tool_config), arguments)
        except ToolError as exc:
            status = "refused" if exc.code in ("limit_exceeded", "not_allowed") else "error"
            turn.state["failed_attempts"] += 1
            turn.state["entries"].append({"role": "result", "tool": name, "arguments": arguments, "status": status,
                                          "message": exc.spoken})
            self.audit(f"tool.{status}", f"{call_id}/{name}", {"code": exc.code, "spoken": exc.spoken, "detail": exc.detail})
            log.info("tool_failed call_id=%s tool=%s code=%s detail=%s", call_id, name, exc.code, exc.detail)
            yield ToolRun(name, arguments, status, None, exc.spoken, confirmed, started, time.monotonic_ns(),
                          copy_state(turn.state))
            return
        turn.state["entries"].append({"role": "result", "tool": name, "arguments": arguments, "status": "ok", "result": result})
        self.audit("tool.result", f"{call_id}/{name}", {"result": result})
        yield ToolRun(name, arguments, "ok", result, "", confirmed, started, time.monotonic_ns(), copy_state(turn.state))
        return governance.done_message(tool, arguments, result)

    def _record_refusal(self, turn, tool, arguments, refusal, call_id):
        now = time.monotonic_ns()
        turn.state["failed_attempts"] += 1
        turn.state["entries"].append({"role": "result", "tool": tool.name, "arguments": arguments, "status": "refused",
                                      "message": refusal.message})
        self.audit("tool.refused", f"{call_id}/{tool.name}", {"arguments": arguments, "policy": refusal.code,
                                                               "message": refusal.message})
        log.info("tool_refused call_id=%s tool=%s policy=%s", call_id, tool.name, refusal.code)
        yield ToolRun(tool.name, arguments, "refused", None, refusal.message, False, now, now, copy_state(turn.state))

    def _closing_line(self, action):
        return self.config.goodbye if action == "end_call" else self.config.transfer_message

    def _transfer(self, turn, reason, call_id, cancelled):
        if turn.closing != "transfer_to_human":
            yield from self._say(turn, self.config.transfer_message)
        turn.state["outcome"] = "transferred"
        record = self.handoff(turn.state, reason, cancelled)
        self.audit("handoff", call_id, {"reason": reason, "summary": record.summary, "collected": record.collected})
        yield record
        return (yield from self._finish(turn, "transfer"))

    def _finish(self, turn, action):
        yield TurnResult(turn.state, action, tuple(turn.chunk_ids), " ".join(turn.said))
