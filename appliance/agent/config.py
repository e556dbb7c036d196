"""The agent file, ``agents/<name>/agent.yaml``: what an agent says, knows, may do and is judged on.

Loaded into frozen dataclasses and checked in full before anything runs: every problem is an
``AgentFileError`` naming the file and the field path (``tools[1].policy.limits.amount``) and
saying what is expected, so a broken agent file never reaches a caller. One agent folder holds
``agent.yaml``, ``kb/`` (knowledge documents) and ``tests/`` (agent tests).
"""

import dataclasses
import importlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import jsonschema
import yaml

from parley.core.bargein import BargeInSettings
from parley.core.endpointer import EndpointerSettings

AGENT_FILE = "agent.yaml"
SYSTEM_TOOLS = ("end_call", "transfer_to_human", "skip_turn")
"""Tools every agent has; an agent file may not define tools with these names."""
TOOL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
SECTION_NAME = TOOL_NAME


class AgentFileError(ValueError):
    """The agent file cannot be used; the message names the file, the field and the fix."""

    def __init__(self, path, field_path, problem):
        self.path, self.field_path, self.problem = Path(path), field_path, problem
        super().__init__(f"{path}: {field_path}: {problem}" if field_path else f"{path}: {problem}")


@dataclass(frozen=True)
class LlmSettings:
    model: str = "llm-qwen2.5-coder-1.5b"
    """A directory under models/ holding one .gguf file (MODELS.md: the default agent LLM)."""
    temperature: float = 0.0
    """0 decodes greedily: every run of an agent test then gives the same reply, so a pass rate
    over several runs needs a temperature above 0 (each run samples with its own seed)."""
    max_tokens: int = 160
    """Longest single reply or tool call; phone replies are a sentence or two."""
    context_tokens: int = 4096
    threads: int = 2


@dataclass(frozen=True)
class VoiceSettings:
    name: str = "voice-en_US-joe-medium"
    """A voice directory under models/ (`parley voices` lists them)."""
    speed: float = 1.0


@dataclass(frozen=True)
class ToolPolicy:
    """Governance for one tool: the orchestrator enforces it, whatever the model asks."""

    confirm: str | None = None
    """A read-back said before the tool runs, with ``{argument}`` placeholders; the tool runs only
    after the caller says yes. Set it for every tool with side effects."""
    done: str | None = None
    """Said after the tool succeeded, with ``{argument}`` and ``{result field}`` placeholders; without
    it the model words the outcome itself."""
    from_caller: tuple[str, ...] = ()
    """Arguments whose value must appear in what the caller said (an order number is heard, never invented)."""
    requires: str | None = None
    """A tool that must have succeeded earlier in the call with the same values for the shared arguments."""
    limits: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    """``argument -> "tool.field"``: the argument may not exceed that field of the required tool's result."""


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: MappingProxyType
    """JSON Schema of the arguments; also compiled into the grammar the model decodes under."""
    handler: str | None
    """``package.module:function`` for agent tools; None for system tools."""
    side_effects: bool = False
    policy: ToolPolicy = field(default_factory=ToolPolicy)
    filler: str | None = None
    """Said the moment the model chooses this tool ("Let me look that up."), so the caller is not
    left in silence while the call is written and run; not shown to the model."""


EAGERNESS = {
    "patient": {"min_speech_ms": 250, "hangover_ms": 1100, "short_silence_ms": 300},
    "normal": {},
    "eager": {"min_speech_ms": 150, "hangover_ms": 450, "short_silence_ms": 150},
}
"""Turn eagerness presets over the endpointer's defaults: how long the agent waits before it
decides the caller has finished. ``turn_taking`` values in the agent file apply on top."""
END_OF_TURN = {"acoustic": {"short_silence_ms": 100, "hangover_ms": 900}, "silence": {}}
"""The ways an agent may decide the caller has finished (``conversation.end_of_turn``), each with
the endpointer timings it works best with (eagerness and ``turn_taking`` apply on top). Acoustic:
the words so far are heard and read after 100 ms of silence (``parley.appliance.media.end_of_turn``),
and a pause they do not call final is waited out for 900 ms: on the evaluation set that ends
complete turns 100 ms (median, before compute) after the last word and cuts 5 in 100 mid-sentence
pauses of 400-900 ms (0 in the 24 of recorded speech), where a fixed 800 ms hangover waits 800 ms
and cuts 20 (scripts/evaluate_turn_taking.py --acoustic-only)."""


@dataclass(frozen=True)
class ConversationSettings:
    """Conversation flow, as hosted voice-agent platforms let their users set it."""

    eagerness: str = "normal"
    """patient, normal or eager: a preset of the endpointer's timings (EAGERNESS)."""
    end_of_turn: str = "acoustic"
    """How the agent decides the caller has finished (END_OF_TURN): ``acoustic`` (after
    ``turn_taking.short_silence_ms`` of silence, the words so far may end the turn at once, else
    the hangover does) or ``silence`` (the hangover alone)."""
    head_start: bool = True
    """At each pause of ``turn_taking.short_silence_ms`` the turn so far is transcribed and the
    agent evaluates its prompt, so that when the turn has ended the reply is well under way; nothing
    is said or done before the turn ends. Costs a transcription and some LLM work per pause: turn
    it off on an appliance short of CPU for its calls."""
    soft_timeout_ms: int = 1500
    """When the reply's first sentence is not ready this long after the caller's turn ended, the
    filler is played (on a CPU box this hides the LLM's first-token time); 0 turns it off."""
    soft_timeout_filler: str = "One moment."
    silence_timeout_s: float = 12.0
    """Caller silence (the agent done speaking) after which the silence prompt is played; 0 turns it off."""
    silence_prompt: str = "Are you still there?"
    silence_prompts: int = 1
    """Prompts before the call is ended politely (with the agent's goodbye)."""
    max_call_s: float = 900.0
    """Longest call; at the limit the time-limit message is played and the call ends."""
    time_limit_message: str = "I'm sorry, we have reached the time limit for this call. Please call again. Goodbye."


@dataclass(frozen=True)
class KnowledgeSettings:
    folder: str = "kb"
    chunks_per_turn: int = 2


@dataclass(frozen=True)
class EscalationSettings:
    max_failed_attempts: int = 3
    """Failed tool calls or not-understood turns after which the call goes to a person."""
    transfer_extension: str = "100"
    """Where a SIP call is transferred (REFER target) on hand-off."""


@dataclass(frozen=True)
class Criterion:
    id: str
    description: str
    threshold: float | None = None
    """Share of recent calls that must be judged a success for the go-live gate (None: reported only)."""
    check: str | None = None
    """A deterministic check from the call record instead of the LLM judge (CRITERION_CHECKS)."""


CRITERION_CHECKS = ("side_effects_confirmed",)
"""``side_effects_confirmed``: every side-effecting tool that ran had the caller's yes to its read-back."""


@dataclass(frozen=True)
class QualitySettings:
    """The bars the agent must clear; lowering one is a "bar lowered" change (`parley agent push`)."""

    suite_pass_rate: float = 0.8
    """Overall pass rate of the agent tests' runs for the suite to pass."""
    test_pass_rate: float = 0.5
    """Each test's own pass rate below which the suite fails whatever the overall rate."""
    completion_criterion: str | None = None
    """The evaluation criterion that says a call completed its task (platform metrics)."""


@dataclass(frozen=True)
class TestingSettings:
    __test__ = False  # not a pytest test class

    runs: int = 3
    """How often each agent test runs by default (a pass rate needs several)."""
    fixture: str | None = None
    """``package.module:function(tool_config)`` called before every test run so the tools' data
    starts fresh (the Acme shop database is recreated)."""
    judge_model: str | None = None
    """A model directory under models/ judging rubrics and criteria (default: the agent's own)."""


@dataclass(frozen=True)
class DataField:
    id: str
    type: str
    """string, number, integer, boolean or enum."""
    description: str
    values: tuple[str, ...] = ()
    """The allowed values of an enum field."""

    def json_schema(self):
        """The field's value as JSON Schema, null allowed (not said in the call)."""
        if self.type == "enum":
            return {"enum": [*self.values, None], "description": self.description}
        return {"type": [self.type, "null"], "description": self.description}


@dataclass(frozen=True)
class Example:
    """One few-shot exchange shown to the model: who says what, or which tool it calls."""

    role: str
    text: str


@dataclass(frozen=True)
class AgentConfig:
    name: str
    folder: Path
    first_message: str
    prompt: MappingProxyType
    """Section title -> text, in file order; rendered as labelled ``# Title`` sections."""
    examples: tuple[Example, ...]
    llm: LlmSettings
    voice: VoiceSettings
    tools: tuple[Tool, ...]
    tool_config: MappingProxyType
    knowledge: KnowledgeSettings
    endpointer: EndpointerSettings
    barge_in: BargeInSettings
    escalation: EscalationSettings
    evaluation_criteria: tuple[Criterion, ...]
    data_collection: tuple[DataField, ...]
    quality: QualitySettings
    testing: TestingSettings
    conversation: ConversationSettings
    goodbye: str
    transfer_message: str
    """Said before a hand-off to a person."""
    apology: str
    """Said when something breaks mid-call (a worker died) before the hand-off."""

    def tool(self, name):
        for tool in self.tools:
            if tool.name == name:
                return tool
        raise KeyError(name)

    @property
    def kb_folder(self):
        return self.folder / self.knowledge.folder


def load_agent(folder, *, variables=None):
    """The agent in ``folder`` (holding agent.yaml), fully checked.

    ``variables`` fill ``{name}`` placeholders in ``tool_config`` values (e.g. ``{var}`` for the
    appliance's var directory), so an agent file names its data without absolute paths.
    """
    folder = Path(folder)
    path = folder / AGENT_FILE
    if not path.is_file():
        raise AgentFileError(path, "", "no agent file here: an agent folder holds agent.yaml (see the embedded Acme agent)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise AgentFileError(path, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise AgentFileError(path, "", f"not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return _Reader(path, variables or {}).agent(raw, folder)


class _Reader:
    def __init__(self, path, variables):
        self.path = path
        self.variables = variables

    def fail(self, where, problem):
        raise AgentFileError(self.path, where, problem)

    def mapping(self, value, where, known, required=()):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.fail(where, f"must be a mapping, not {type(value).__name__}")
        unknown = sorted(set(map(str, value)) - set(known))
        if unknown:
            self.fail(f"{where}.{unknown[0]}" if where else unknown[0], f"unknown field; known: {', '.join(sorted(known))}")
        for name in required:
            if value.get(name) in (None, ""):
                self.fail(f"{where}.{name}" if where else name, "is required")
        return value

    def text(self, value, where, *, required=True):
        if value is None and not required:
            return None
        if not isinstance(value, str) or (required and not value.strip()):
            self.fail(where, f"must be non-empty text, not {value!r:.40}")
        return value.strip()

    def number(self, value, where, kind, low, high):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
            self.fail(where, f"must be {'an integer' if kind is int else 'a number'}, not {value!r:.40}")
        if not low <= value <= high:
            self.fail(where, f"must be between {low} and {high}, not {value}")
        return kind(value)

    def settings(self, cls, value, where, limits):
        value = self.mapping(value, where, [f.name for f in dataclasses.fields(cls)])
        checked = {}
        for name, item in value.items():
            spec = limits.get(name)
            if spec is None:
                checked[name] = self.text(item, f"{where}.{name}")
            else:
                checked[name] = self.number(item, f"{where}.{name}", *spec)
        try:
            return cls(**checked)
        except ValueError as exc:
            self.fail(where, str(exc))

    def agent(self, raw, folder):
        known = ("name", "first_message", "prompt", "examples", "llm", "voice", "tools", "tool_config", "knowledge",
                 "turn_taking", "barge_in", "escalation", "evaluation_criteria", "data_collection", "quality",
                 "testing", "conversation", "goodbye", "transfer_message", "apology")
        raw = self.mapping(raw, "", known, required=("name", "first_message", "prompt"))
        conversation = self.conversation(raw.get("conversation"))
        name = self.text(raw["name"], "name")
        if not TOOL_NAME.match(name):
            self.fail("name", f"{name!r} must be lower-case letters, digits and underscores, starting with a letter")
        return AgentConfig(
            name=name,
            folder=folder,
            first_message=self.text(raw["first_message"], "first_message"),
            prompt=self.prompt(raw["prompt"]),
            examples=self.examples(raw.get("examples")),
            llm=self.settings(LlmSettings, raw.get("llm"), "llm", {
                "temperature": (float, 0.0, 2.0), "max_tokens": (int, 16, 2048),
                "context_tokens": (int, 1024, 131072), "threads": (int, 1, 256)}),
            voice=self.settings(VoiceSettings, raw.get("voice"), "voice", {"speed": (float, 0.5, 2.0)}),
            tools=self.tools(raw.get("tools")),
            tool_config=self.tool_config(raw.get("tool_config")),
            knowledge=self.settings(KnowledgeSettings, raw.get("knowledge"), "knowledge", {"chunks_per_turn": (int, 0, 10)}),
            endpointer=self.endpointer(raw.get("turn_taking"), conversation),
            barge_in=self.settings(BargeInSettings, raw.get("barge_in"), "barge_in",
                                   {f.name: (int if f.type in (int, "int") else float, 0, 10_000)
                                    for f in dataclasses.fields(BargeInSettings)}),
            escalation=self.settings(EscalationSettings, raw.get("escalation"), "escalation",
                                     {"max_failed_attempts": (int, 1, 20)}),
            evaluation_criteria=self.criteria(raw.get("evaluation_criteria")),
            data_collection=self.data_fields(raw.get("data_collection")),
            quality=self.quality(raw.get("quality"), raw.get("evaluation_criteria")),
            testing=self.testing(raw.get("testing")),
            conversation=conversation,
            goodbye=self.text(raw.get("goodbye", "Thank you for calling. Goodbye!"), "goodbye"),
            transfer_message=self.text(raw.get("transfer_message", "I'll pass you to a colleague who can help. "
                                                                   "Please hold for a moment."), "transfer_message"),
            apology=self.text(raw.get("apology", "I'm sorry, I'm having a technical problem. "
                                                   "Let me pass you to a colleague who can help."), "apology"),
        )

    def prompt(self, value):
        if not isinstance(value, dict) or not value:
            self.fail("prompt", "must be a mapping of labelled sections (role: ..., scope: ..., rules: ...)")
        sections = {}
        for title, text in value.items():
            if not isinstance(title, str) or not SECTION_NAME.match(title):
                self.fail(f"prompt.{title}", "section names are lower-case words joined by underscores")
            sections[title] = self.text(text, f"prompt.{title}")
        return MappingProxyType(sections)

    def examples(self, value):
        if value is None:
            return ()
        if not isinstance(value, list):
            self.fail("examples", "must be a list of {caller: ...}, {agent: ...}, {tool: name, arguments: {...}} or {result: {...}}")
        examples = []
        for i, item in enumerate(value):
            where = f"examples[{i}]"
            item = self.mapping(item, where, ("caller", "agent", "tool", "arguments", "result"))
            if "caller" in item:
                examples.append(Example("caller", self.text(item["caller"], f"{where}.caller")))
            elif "agent" in item:
                examples.append(Example("agent", self.text(item["agent"], f"{where}.agent")))
            elif "tool" in item:
                examples.append(Example("tool", json.dumps({"name": self.text(item["tool"], f"{where}.tool"),
                                                            "arguments": item.get("arguments") or {}})))
            elif "result" in item:
                examples.append(Example("result", json.dumps(item["result"])))
            else:
                self.fail(where, "give one of caller, agent, tool (+ arguments) or result")
        return tuple(examples)

    def tools(self, value):
        if value is None:
            return ()
        if not isinstance(value, list):
            self.fail("tools", "must be a list of tools")
        tools, names = [], set()
        for i, item in enumerate(value):
            where = f"tools[{i}]"
            item = self.mapping(item, where, ("name", "description", "handler", "parameters", "side_effects", "policy",
                                              "filler"),
                                required=("name", "description", "handler", "parameters"))
            name = self.text(item["name"], f"{where}.name")
            if not TOOL_NAME.match(name):
                self.fail(f"{where}.name", f"{name!r} must be lower-case letters, digits and underscores")
            if name in SYSTEM_TOOLS:
                self.fail(f"{where}.name", f"{name} is a built-in system tool; pick another name")
            if name in names:
                self.fail(f"{where}.name", f"a second tool named {name}")
            names.add(name)
            handler = self.text(item["handler"], f"{where}.handler")
            if ":" not in handler:
                self.fail(f"{where}.handler", f"{handler!r} must be package.module:function")
            parameters = self.parameters(item["parameters"], f"{where}.parameters")
            side_effects = item.get("side_effects", False)
            if not isinstance(side_effects, bool):
                self.fail(f"{where}.side_effects", "must be true or false")
            policy = self.policy(item.get("policy"), f"{where}.policy", parameters)
            if side_effects and policy.confirm is None:
                self.fail(f"{where}.policy.confirm", "a tool with side effects needs a confirmation read-back")
            tools.append(Tool(name, self.text(item["description"], f"{where}.description"), parameters, handler,
                              side_effects, policy, self.text(item.get("filler"), f"{where}.filler", required=False)))
        for i, tool in enumerate(tools):
            required = tool.policy.requires
            if required is not None and required not in names:
                self.fail(f"tools[{i}].policy.requires", f"no tool named {required}; tools: {', '.join(sorted(names))}")
            for argument, source in tool.policy.limits.items():
                if source.partition(".")[0] != required:
                    self.fail(f"tools[{i}].policy.limits.{argument}", f"{source!r} must be a field of the required tool ({required})")
        return tuple(tools)

    def parameters(self, value, where):
        if isinstance(value, str):
            module_name, _, attribute = value.partition(":")
            try:
                value = getattr(importlib.import_module(module_name), attribute)
            except (ImportError, AttributeError, ValueError) as exc:
                self.fail(where, f"cannot load {value!r} ({exc}): give a JSON Schema or package.module:NAME")
        if not isinstance(value, dict) or value.get("type") != "object":
            self.fail(where, "must be a JSON Schema of type object")
        try:
            jsonschema.Draft202012Validator.check_schema(value)
        except jsonschema.SchemaError as exc:
            self.fail(where, f"not a valid JSON Schema: {exc.message}")
        return MappingProxyType(json.loads(json.dumps(value)))

    def policy(self, value, where, parameters):
        value = self.mapping(value, where, ("confirm", "done", "from_caller", "requires", "limits"))
        properties = parameters.get("properties", {})
        confirm = self.text(value.get("confirm"), f"{where}.confirm", required=False)
        if confirm is not None:
            for placeholder in re.findall(r"{(\w+)}", confirm):
                if placeholder not in properties:
                    self.fail(f"{where}.confirm", f"{{{placeholder}}} is not an argument of this tool")
        done = self.text(value.get("done"), f"{where}.done", required=False)
        from_caller = value.get("from_caller") or []
        if not isinstance(from_caller, list) or any(a not in properties for a in from_caller):
            self.fail(f"{where}.from_caller", f"must list arguments of this tool ({', '.join(properties)})")
        limits = self.mapping(value.get("limits"), f"{where}.limits", list(properties))
        for argument, source in limits.items():
            if not isinstance(source, str) or "." not in source:
                self.fail(f"{where}.limits.{argument}", "must be tool.field, the result field it may not exceed")
        requires = self.text(value.get("requires"), f"{where}.requires", required=False)
        if limits and requires is None:
            self.fail(f"{where}.requires", "limits need the tool whose result they come from")
        return ToolPolicy(confirm, done, tuple(from_caller), requires, MappingProxyType(dict(limits)))

    def tool_config(self, value):
        value = value or {}
        if not isinstance(value, dict):
            self.fail("tool_config", "must be a mapping")
        resolved = {}
        for key, item in value.items():
            if isinstance(item, str):
                try:
                    item = item.format(**self.variables)
                except KeyError as exc:
                    self.fail(f"tool_config.{key}", f"unknown placeholder {exc}; known: {', '.join(sorted(self.variables))}")
            resolved[key] = item
        return MappingProxyType(resolved)

    def criteria(self, value):
        items = self.id_list(value, "evaluation_criteria", ("id", "description", "threshold", "check"))
        for i, item in enumerate(items):
            if item.get("check") is not None and item["check"] not in CRITERION_CHECKS:
                self.fail(f"evaluation_criteria[{i}].check", f"must be one of {', '.join(CRITERION_CHECKS)}")
        return tuple(Criterion(item["id"], self.text(item["description"], f"evaluation_criteria[{i}].description"),
                               None if item.get("threshold") is None
                               else self.number(item["threshold"], f"evaluation_criteria[{i}].threshold", float, 0.0, 1.0),
                               item.get("check"))
                     for i, item in enumerate(items))

    def quality(self, value, criteria):
        value = self.mapping(value, "quality", [f.name for f in dataclasses.fields(QualitySettings)])
        checked = {name: self.number(value[name], f"quality.{name}", float, 0.0, 1.0)
                   for name in ("suite_pass_rate", "test_pass_rate") if name in value}
        completion = value.get("completion_criterion")
        if completion is not None:
            known = [c["id"] for c in criteria or () if isinstance(c, dict)]
            if completion not in known:
                self.fail("quality.completion_criterion", f"{completion!r} is not an evaluation criterion; known: {', '.join(known) or 'none'}")
            checked["completion_criterion"] = completion
        return QualitySettings(**checked)

    def conversation(self, value):
        value = self.mapping(value, "conversation", [f.name for f in dataclasses.fields(ConversationSettings)])
        if "eagerness" in value and value["eagerness"] not in EAGERNESS:
            self.fail("conversation.eagerness", f"must be one of {', '.join(EAGERNESS)}, not {value['eagerness']!r}")
        if "end_of_turn" in value and value["end_of_turn"] not in END_OF_TURN:
            self.fail("conversation.end_of_turn", f"must be one of {', '.join(END_OF_TURN)}, not {value['end_of_turn']!r}")
        value = dict(value)
        head_start = value.pop("head_start", True)
        if not isinstance(head_start, bool):
            self.fail("conversation.head_start", f"must be true or false, not {head_start!r}")
        limits = {"soft_timeout_ms": (int, 0, 10_000), "silence_timeout_s": (float, 0, 600),
                  "silence_prompts": (int, 0, 5), "max_call_s": (float, 5, 86_400)}
        return dataclasses.replace(self.settings(ConversationSettings, value, "conversation", limits), head_start=head_start)

    def endpointer(self, value, conversation):
        value = self.mapping(value, "turn_taking", [f.name for f in dataclasses.fields(EndpointerSettings)])
        timings = {name: self.number(item, f"turn_taking.{name}", int, 0, 600_000) for name, item in value.items()}
        try:
            return EndpointerSettings(**{**END_OF_TURN[conversation.end_of_turn], **EAGERNESS[conversation.eagerness],
                                         **timings})
        except ValueError as exc:
            self.fail("turn_taking", str(exc))

    def testing(self, value):
        value = self.mapping(value, "testing", [f.name for f in dataclasses.fields(TestingSettings)])
        checked = {}
        if "runs" in value:
            checked["runs"] = self.number(value["runs"], "testing.runs", int, 1, 100)
        for name in ("fixture", "judge_model"):
            if value.get(name) is not None:
                checked[name] = self.text(value[name], f"testing.{name}")
        if "fixture" in checked and ":" not in checked["fixture"]:
            self.fail("testing.fixture", f"{checked['fixture']!r} must be package.module:function")
        return TestingSettings(**checked)

    def data_fields(self, value):
        items = self.id_list(value, "data_collection", ("id", "type", "description", "values"))
        fields_ = []
        for i, item in enumerate(items):
            if item.get("type") not in ("string", "number", "integer", "boolean", "enum"):
                self.fail(f"data_collection[{i}].type", "must be string, number, integer, boolean or enum")
            values = item.get("values")
            if item["type"] == "enum":
                if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
                    self.fail(f"data_collection[{i}].values", "an enum field lists its values (non-empty text)")
            elif values is not None:
                self.fail(f"data_collection[{i}].values", "only an enum field has values")
            fields_.append(DataField(item["id"], item["type"], self.text(item["description"], f"data_collection[{i}].description"),
                                     tuple(values or ())))
        return tuple(fields_)

    def id_list(self, value, where, known):
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(where, "must be a list")
        seen = set()
        for i, item in enumerate(value):
            self.mapping(item, f"{where}[{i}]", known, required=("id", "description"))
            if not isinstance(item["id"], str) or not TOOL_NAME.match(item["id"]):
                self.fail(f"{where}[{i}].id", "must be a lower-case identifier")
            if item["id"] in seen:
                self.fail(f"{where}[{i}].id", f"a second entry with id {item['id']}")
            seen.add(item["id"])
        return value
