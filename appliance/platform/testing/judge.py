"""An LLM as judge: a rubric (or an evaluation criterion) against a transcript, decoded under a
grammar into a rationale, then a verdict: pass / fail / unknown.

The rationale comes first so the small model reasons before it commits. Any GGUF in models/ can
judge; by default the agent's own model does (one model load serves the whole run).
"""

import json
from dataclasses import dataclass

VERDICTS = ("pass", "fail", "unknown")

_SCHEMA = {
    "type": "object",
    "properties": {
        "rationale": {"type": "string", "minLength": 1, "maxLength": 300},
        "verdict": {"enum": list(VERDICTS)},
        "turn": {"type": "integer", "minimum": 0},
    },
    "required": ["rationale", "verdict", "turn"],
    "additionalProperties": False,
}

_INSTRUCTIONS = (
    "You are a strict quality reviewer of a phone support conversation. You are given a transcript "
    "and one requirement. Decide whether the transcript meets the requirement. Answer \"pass\" only "
    "when the transcript clearly shows it is met, \"fail\" when it clearly is not, and \"unknown\" "
    "when the transcript does not tell. Reply with JSON: a one-sentence \"rationale\" citing what was "
    "said, the \"verdict\", and \"turn\": the number of the turn the verdict hinges on (0 if none)."
)


class JudgeReplyError(ValueError):
    """The judge's reply could not be read as a verdict (cut off, or not JSON)."""


@dataclass(frozen=True)
class Verdict:
    verdict: str
    rationale: str
    turn: int = 0
    """The numbered transcript turn the verdict hinges on; 0 when none."""


class Judge:
    def __init__(self, engine, *, max_tokens=160):
        self.engine = engine
        self.grammar = engine.grammar(_SCHEMA)
        self.max_tokens = max_tokens

    def __call__(self, requirement, transcript_lines):
        """Judge ``requirement`` on ``transcript_lines`` (speaker-labelled lines, numbered here from 1)."""
        from parley.appliance.agent.llm import chatml

        numbered = "\n".join(f"{i}. {line}" for i, line in enumerate(transcript_lines, 1))
        prompt = chatml([("system", _INSTRUCTIONS),
                         ("user", f"Transcript:\n{numbered}\n\nRequirement: {requirement}")])
        reply = "".join(self.engine.stream(prompt, grammar=self.grammar, max_tokens=self.max_tokens, temperature=0.0))
        return parse_verdict(reply)


def parse_verdict(reply):
    try:
        data = json.loads(reply)
    except json.JSONDecodeError as exc:
        raise JudgeReplyError(f"the judge's reply is not JSON ({exc.msg} at {exc.pos}): {reply[:120]!r}") from None
    if not isinstance(data, dict) or data.get("verdict") not in VERDICTS or not isinstance(data.get("rationale"), str):
        raise JudgeReplyError(f"the judge's reply has no verdict and rationale: {reply[:120]!r}")
    turn = data.get("turn", 0)
    return Verdict(data["verdict"], data["rationale"].strip(), turn if isinstance(turn, int) and turn >= 0 else 0)
