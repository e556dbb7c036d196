"""The agent's LLM: llama.cpp through llama-cpp-python, prompts in ChatML, replies under a grammar.

Every agent reply is one JSON object, either ``{"action": "say", "text": "..."}`` or
``{"action": "<tool>", "arguments": {...}}``, decoded under a GBNF grammar generated from the
tools' JSON Schemas: a small model cannot emit a malformed call, an unknown tool or a missing
argument. The action comes first, so the model commits to speaking or acting before it writes.

Prompt caching: the prompt is rendered so that each turn only appends to the previous one (the
system prompt first, then the history, new knowledge as a history entry), and llama.cpp reuses
the evaluated prefix: after the first turn only the new tokens are evaluated.
"""

import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from parley.appliance.agent.conversation import known_chunk_ids

SAY = "say"


class LlmError(RuntimeError):
    """The model could not be loaded or run; the message says what to do."""


class ReplyParseError(ValueError):
    """The model's reply is not one JSON action (cut off at max_tokens, or a model without grammar)."""


def find_model_file(models_dir, name):
    folder = Path(models_dir) / name
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"{folder} has no .gguf model: run `parley models fetch` (or set llm.model in the agent file)")
    return files[0]


def action_schema(tools):
    """The JSON Schema of one reply: say something, or call one of ``tools`` (name, parameters)."""
    choices = [{"type": "object", "properties": {"action": {"const": SAY}, "text": {"type": "string", "minLength": 1}},
                "required": ["action", "text"], "additionalProperties": False}]
    for name, parameters in tools:
        choices.append({"type": "object", "properties": {"action": {"const": name}, "arguments": dict(parameters)},
                        "required": ["action", "arguments"], "additionalProperties": False})
    return {"anyOf": choices}


def parse_action(text):
    """(action, payload) from a complete reply: payload is the text for ``say``, else the arguments."""
    try:
        reply = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReplyParseError(f"reply is not JSON ({exc.msg}): {text[:120]!r}") from None
    if not isinstance(reply, dict) or not isinstance(reply.get("action"), str):
        raise ReplyParseError(f"reply has no action: {text[:120]!r}")
    if reply["action"] == SAY:
        if not isinstance(reply.get("text"), str):
            raise ReplyParseError(f"say without text: {text[:120]!r}")
        return SAY, reply["text"]
    if not isinstance(reply.get("arguments"), dict):
        raise ReplyParseError(f"{reply['action']} without arguments: {text[:120]!r}")
    return reply["action"], reply["arguments"]


class SayStream:
    """Pulls the spoken text out of a ``say`` reply while it is still being generated."""

    _HEAD = re.compile(r'^\s*\{\s*"action"\s*:\s*"([a-z_0-9]+)"')
    _TEXT = re.compile(r'"text"\s*:\s*"')
    _ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "", "f": "", "n": " ", "r": " ", "t": " "}

    def __init__(self):
        self.raw = ""
        self.action = None
        self._pos = None
        self._closed = False

    def feed(self, piece):
        """Add generated text; return the new spoken characters (empty unless the action is say)."""
        self.raw += piece
        if self.action is None:
            match = self._HEAD.match(self.raw)
            if match is None:
                return ""
            self.action = match.group(1)
        if self.action != SAY or self._closed:
            return ""
        if self._pos is None:
            match = self._TEXT.search(self.raw)
            if match is None:
                return ""
            self._pos = match.end()
        out = []
        raw = self.raw
        while self._pos < len(raw):
            char = raw[self._pos]
            if char == '"':
                self._closed = True
                break
            if char == "\\":
                if self._pos + 1 >= len(raw):
                    break
                code = raw[self._pos + 1]
                if code == "u":
                    if self._pos + 6 > len(raw):
                        break
                    out.append(chr(int(raw[self._pos + 2:self._pos + 6], 16)))
                    self._pos += 6
                    continue
                out.append(self._ESCAPES.get(code, code))
                self._pos += 2
                continue
            out.append(char)
            self._pos += 1
        return "".join(out)


def chatml(messages, *, reply=True):
    """ChatML (Qwen2.5, SmolLM2): the rendering whose prefix stays byte-identical as turns are added.

    ``reply=False`` leaves off the assistant header: the prefix to evaluate ahead of the next turn.
    """
    text = "".join(f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in messages)
    return text + "<|im_start|>assistant\n" if reply else text


def render_system(config):
    sections = [f"# {title.replace('_', ' ').capitalize()}\n{text}" for title, text in config.prompt.items()]
    tools = [f"- {tool.name}: {tool.description} Arguments: {_argument_summary(tool.parameters)}"
             for tool in all_tools(config)]
    sections.append(
        "# Output\nEvery reply is one JSON object: {\"action\": \"say\", \"text\": \"...\"} to speak to the caller, or "
        "{\"action\": \"<tool>\", \"arguments\": {...}} to use a tool. A tool's result comes back as a message "
        "starting with \"result of\". Speak in one or two short sentences: the caller hears you on a phone.\n"
        "Tools:\n" + "\n".join(tools))
    if config.examples:
        sections.append("# Examples\n" + "\n".join(_example_line(e) for e in config.examples))
    return "\n".join(sections)


def _example_line(example):
    if example.role == "caller":
        return f"caller: {example.text}"
    if example.role == "agent":
        return "you: " + json.dumps({"action": SAY, "text": example.text})
    if example.role == "tool":
        call = json.loads(example.text)
        return "you: " + json.dumps({"action": call["name"], "arguments": call["arguments"]})
    return f"result: {example.text}"


def _argument_summary(parameters):
    properties = parameters.get("properties", {})
    if not properties:
        return "none."
    return ", ".join(f"{name} ({spec.get('type', 'any')})" for name, spec in properties.items()) + "."


SYSTEM_TOOL_PARAMETERS = {
    "end_call": ("End the call once the caller has what they need and has said goodbye.",
                 {"type": "object", "properties": {}, "additionalProperties": False}),
    "transfer_to_human": ("Hand the caller to a human colleague, when the agent's escalation rules say so "
                          "(the agent file's escalation section decides when, not this description).",
                          {"type": "object", "properties": {"reason": {"type": "string", "minLength": 3}},
                           "required": ["reason"], "additionalProperties": False}),
    "skip_turn": ("Say nothing this turn: the caller is still thinking or said only \"hm\" or \"one moment\".",
                  {"type": "object", "properties": {}, "additionalProperties": False}),
}


class _SystemTool:
    def __init__(self, name):
        self.name = name
        self.description, self.parameters = SYSTEM_TOOL_PARAMETERS[name]


def all_tools(config):
    return [*config.tools, *(_SystemTool(name) for name in SYSTEM_TOOL_PARAMETERS)]


def render_messages(config, state):
    """The ChatML messages for the next reply: system prompt, then the history in order."""
    messages = [("system", render_system(config))]
    for entry in state["entries"]:
        role = entry["role"]
        if role == "caller":
            messages.append(("user", entry["text"]))
        elif role == "agent":
            text = entry["heard"] + " [the caller interrupted you here]" if entry.get("interrupted") else entry["text"]
            messages.append(("assistant", json.dumps({"action": SAY, "text": text})))
        elif role == "action":
            messages.append(("assistant", json.dumps({"action": entry["tool"], "arguments": entry["arguments"]})))
        elif role == "result":
            if entry["status"] == "ok":
                compact = json.dumps(entry["result"], separators=(",", ":"))  # a third fewer tokens to evaluate
                messages.append(("user", f"result of {entry['tool']}: {compact}"))
            else:
                messages.append(("user", f"result of {entry['tool']}: {entry['status']}: {entry['message']}"))
        elif role == "knowledge":
            text = "\n".join(f"[{chunk['id']}] {chunk['text']}" for chunk in entry["chunks"])
            messages.append(("system", f"# Knowledge (from the documents; use it only if it answers the caller)\n{text}"))
        elif role == "note":
            messages.append(("system", entry["text"]))
    return messages


def new_knowledge(state, chunks):
    """The chunks not yet in the conversation, as a ``knowledge`` entry, or None."""
    seen = known_chunk_ids(state)
    fresh = [{"id": c.id, "text": c.text} for c in chunks if c.id not in seen]
    return {"role": "knowledge", "chunks": fresh} if fresh else None


PREFILL_CHUNK_TOKENS = 64
"""Prompt tokens evaluated between two looks at ``stop`` (``warm``) or ``cancelled`` (``stream``).
Measured with the 1.5B model on 2 EPYC cores: 512 at once 155 tok/s, 64 147 (-5 %), 32 131 (-15 %),
16 113 (-27 %); 64 tokens take about 0.45 s, the longest a waiting job (or a barge-in) waits."""


@dataclass(frozen=True)
class Prefill:
    """What one ``LlamaEngine.warm`` did: the prompt's tokens found cached, evaluated by then, in all."""

    cached: int
    evaluated: int
    total: int

    @property
    def complete(self):
        return self.evaluated >= self.total


ACTION_HEAD = '{"action": "'
"""How every reply starts, as ``render_messages`` shows the agent's earlier replies."""
SAY_MIDDLE = ', "text": "'
TOOL_MIDDLE = ', "arguments": '
"""What follows the action's name: a ``say``'s text, or a tool's arguments."""
ACTION_NAME_TOKENS = 16
SAY_TEXT_GBNF = r"""root ::= char+ "\"}"
char ::= [^"\\] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])
"""
"""The rest of a ``say`` reply: the text (a JSON string's characters, at least one), then ``"}``."""


def _closing_the_reply(arguments_gbnf):
    """A tool's arguments grammar (``json_schema_to_gbnf``'s, its root renamed), then the reply's ``}``."""
    renamed = re.sub(r"^root ::= ", "tool-arguments ::= ", arguments_gbnf, count=1, flags=re.MULTILINE)
    return renamed + '\nroot ::= tool-arguments "}"\n'


def _common_prefix(cached, tokens):
    """How many leading tokens ``cached`` and ``tokens`` share."""
    count = 0
    for a, b in zip(cached, tokens):
        if a != b:
            break
        count += 1
    return count


class LlamaEngine:
    """One llama.cpp model in this process, shared by every call it serves (one at a time)."""

    def __init__(self, model_path, *, context_tokens=4096, threads=None):
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise LlmError(f"llama-cpp-python is not installed ({exc}): run `make setup`") from None
        model_path = Path(model_path)
        if not model_path.is_file():
            raise FileNotFoundError(f"{model_path} is missing: run `parley models fetch`")
        self.model_path = model_path
        threads = threads or int(os.environ.get("PARLEY_LLM_THREADS", 0)) or min(4, os.cpu_count() or 1)
        self._llm = Llama(str(model_path), n_ctx=context_tokens, n_threads=threads, verbose=False)
        self._grammars = {}
        self._lock = threading.Lock()
        self.seed = 0
        """The sampling seed (matters when temperature > 0): each agent-test run sets its own."""

    def grammar(self, schema):
        """The compiled grammar for a JSON Schema (cached: compiling takes milliseconds)."""
        from llama_cpp import LlamaGrammar
        from llama_cpp.llama_grammar import json_schema_to_gbnf

        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            self._grammars[key] = LlamaGrammar.from_string(json_schema_to_gbnf(key), verbose=False)
        return self._grammars[key]

    def choice_grammar(self, options):
        from llama_cpp import LlamaGrammar

        key = ("choice", *options)
        if key not in self._grammars:
            self._grammars[key] = LlamaGrammar.from_string(
                "root ::= " + " | ".join(json.dumps(o) for o in options), verbose=False)
        return self._grammars[key]

    def stream_action(self, prompt, schema, *, max_tokens=160, temperature=0.0, cancelled=None):
        """One reply under ``schema`` (``action_schema``), streamed as text. The parts every reply
        of an action shares are put in the prompt instead of being decoded one token at a time
        (a decoded token costs about 45 ms of a 1.5B model on 2 cores; a prompt token a few): the
        model writes the action's name, then the text or the arguments."""
        names, rests = self._action_grammars(schema)
        name = ""
        for piece in self.stream(prompt + ACTION_HEAD, grammar=names, max_tokens=ACTION_NAME_TOKENS,
                                 temperature=temperature, cancelled=cancelled):
            yield piece if name else ACTION_HEAD + piece
            name += piece
        action = name[:-1]
        if not name.endswith('"') or action not in rests or (cancelled is not None and cancelled.is_set()):
            return
        middle = SAY_MIDDLE if action == SAY else TOOL_MIDDLE
        yield middle
        yield from self.stream(prompt + ACTION_HEAD + name + middle, grammar=rests[action], max_tokens=max_tokens,
                               temperature=temperature, cancelled=cancelled)

    def _action_grammars(self, schema):
        """(the grammar of an action's name and its closing quote, {action: the grammar of the rest})."""
        key = ("actions", json.dumps(schema, sort_keys=True))
        if key not in self._grammars:
            from llama_cpp import LlamaGrammar
            from llama_cpp.llama_grammar import json_schema_to_gbnf

            actions = {c["properties"]["action"]["const"]: c["properties"] for c in schema["anyOf"]}
            names = "root ::= " + " | ".join(json.dumps(name + '"') for name in actions)
            rests = {name: SAY_TEXT_GBNF if name == SAY else _closing_the_reply(json_schema_to_gbnf(
                json.dumps(properties["arguments"]))) for name, properties in actions.items()}
            self._grammars[key] = (LlamaGrammar.from_string(names, verbose=False),
                                   {name: LlamaGrammar.from_string(rest, verbose=False) for name, rest in rests.items()})
        return self._grammars[key]

    def count_tokens(self, text):
        return len(self._llm.tokenize(text.encode(), add_bos=False, special=True))

    def warm(self, prompt, stop=None):
        """Evaluate ``prompt`` now, so that a reply whose prompt starts with it only evaluates what
        follows. The part already in the cache is kept; the rest is evaluated ``PREFILL_CHUNK_TOKENS``
        at a time, and when ``stop()`` turns true between two chunks the work ends there, what was
        evaluated kept for the next reply. Returns a ``Prefill``."""
        tokens = self._prompt_tokens(prompt)
        with self._lock:
            llm = self._llm
            cached = _common_prefix(llm._input_ids, tokens)
            llm.n_tokens = cached
            done = cached
            while done < len(tokens) and not (stop is not None and stop()):
                chunk = tokens[done:done + PREFILL_CHUNK_TOKENS]
                llm.eval(chunk)
                done += len(chunk)
        return Prefill(cached, done, len(tokens))

    def cached(self, prompt):
        """How many of ``prompt``'s leading tokens the model has evaluated already."""
        tokens = self._prompt_tokens(prompt)
        with self._lock:
            return _common_prefix(self._llm._input_ids, tokens)

    def _prompt_tokens(self, prompt):
        """``prompt``'s tokens as ``create_completion`` makes them (a BOS first where the model wants one)."""
        model = self._llm._model
        bos = [self._llm.token_bos()] if model.add_bos_token() and self._llm.token_bos() >= 0 else []
        return bos + self._llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    def stream(self, prompt, *, grammar=None, max_tokens=160, temperature=0.0, cancelled=None):
        """Generated text pieces, stopping at the end of the reply or when ``cancelled`` is set (the
        prompt is evaluated chunk by chunk first, so a cancel is heard during that too)."""
        if cancelled is not None and not self.warm(prompt, cancelled.is_set).complete:
            return
        with self._lock:
            pieces = self._llm.create_completion(prompt, max_tokens=max_tokens, temperature=temperature,
                                                 stream=True, grammar=grammar, stop=["<|im_end|>"], seed=self.seed)
            try:
                for piece in pieces:
                    yield piece["choices"][0]["text"]
                    if cancelled is not None and cancelled.is_set():
                        return
            finally:
                pieces.close()
