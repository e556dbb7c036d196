"""Per-tool policy, enforced by the orchestrator whatever the model asks for.

A small model may call a tool with an order number nobody said, refund more than was paid, or
act before the caller agreed. Each tool's ``policy`` in the agent file closes those doors: the
checks below run before every call, and a refusal goes back to the model as a result it must
speak about, never as silence.
"""

import re

from parley.appliance.agent.caller_words import unsaid_words
from parley.appliance.agent.conversation import caller_texts, last_result

_DIGIT_WORDS = {"zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "three": "3", "four": "4", "for": "4",
                "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ate": "8", "to": "2", "too": "2"}
_YES = re.compile(r"\b(yes|yeah|yep|yup|sure|ok|okay|please do|go ahead|correct|that's right|that is right|do it|"
                  r"absolutely|definitely|of course|sounds good|right)\b")
_NO = re.compile(r"\b(no|nope|don't|do not|not|wait|stop|cancel|wrong|hold on|never mind)\b")

def spoken_forms(text):
    """``text`` lower-cased, and its runs of digits, spoken or written ("four five one two" -> "4512").

    "for", "to" and "oh" count as digits too: a run then holds an extra digit ("for 4512" ->
    "44512"), which a substring match still finds.
    """
    lowered = text.lower()
    tokens = re.findall(r"[a-z']+|\d+", lowered)
    digits = "".join(_DIGIT_WORDS.get(t, t) if (t in _DIGIT_WORDS or t.isdigit()) else " " for t in tokens)
    return lowered, [run for run in digits.split() if run]


def said_by_caller(state, value):
    """Whether ``value`` (an order number, a name, an address) appears in anything the caller said.

    A value of one word must be in one caller turn, its digits spoken or written; a value of several
    words is compared word by word with all the caller said (``unsaid_words``).
    """
    needle = str(value).strip().lower()
    if not needle:
        return False
    if len(needle.split()) > 1:
        return not unsaid_words(state, value)
    for text in caller_texts(state):
        lowered, runs = spoken_forms(text)
        if needle in lowered or (needle.isdigit() and any(needle in run for run in runs)):
            return True
    return False


def confirmation(text):
    """``yes``, ``no`` or ``None`` (not clear) for a caller's answer to a read-back, by keywords.

    A "no" word wins over a "yes" word ("yes, but not that order" is not a yes); the orchestrator
    asks the model only when neither appears.
    """
    lowered = text.lower()
    if _NO.search(lowered):
        return "no"
    if _YES.search(lowered):
        return "yes"
    return None


class PolicyRefusal(Exception):
    """A tool call the policy does not allow; ``message`` goes back to the model."""

    def __init__(self, message, code):
        super().__init__(message)
        self.message = message
        self.code = code


def check_call(tool, arguments, state):
    """Raise PolicyRefusal when ``tool`` may not run with ``arguments`` now; else return None."""
    policy = tool.policy
    for name in policy.from_caller:
        if name in arguments and not said_by_caller(state, arguments[name]):
            raise PolicyRefusal(_never_said(state, name, arguments[name]), "not_from_caller")
    if policy.requires is None:
        return
    shared = [name for name in arguments if name in _result_arguments(state, policy.requires)]
    required = _matching_result(state, policy.requires, {name: arguments[name] for name in shared})
    if required is None:
        keys = ", ".join(f"{name} {arguments[name]}" for name in shared) or "these arguments"
        raise PolicyRefusal(f"call {policy.requires} for {keys} first", "requires_" + policy.requires)
    for name, source in policy.limits.items():
        field = source.partition(".")[2]
        bound = required["result"].get(field)
        value = arguments.get(name)
        if isinstance(bound, (int, float)) and isinstance(value, (int, float)) and value > bound + 1e-9:
            raise PolicyRefusal(f"{name} {value} is more than {field} {bound} from {policy.requires}", "limit_exceeded")


def read_back(tool, arguments):
    """The confirmation sentence for a side-effecting call, its placeholders filled in."""
    values = {name: _spoken_value(value) for name, value in arguments.items()}
    return tool.policy.confirm.format_map(_Blank(values))


def done_message(tool, arguments, result):
    """The sentence said after ``tool`` succeeded, from its ``done`` template, or None."""
    if tool.policy.done is None:
        return None
    values = {name: _spoken_value(value) for name, value in {**arguments, **result}.items()}
    return tool.policy.done.format_map(_Blank(values))


def _never_said(state, name, value):
    """The refusal for an argument the caller never said; for several words, which ones were not said."""
    missing = unsaid_words(state, value) if len(str(value).split()) > 1 else []
    said = f" (not said: {', '.join(missing)})" if missing else ""
    return f"the caller never said {name} {value!r}{said}: ask the caller for it, do not guess"


def _spoken_value(value):
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


class _Blank(dict):
    def __missing__(self, key):
        return ""


def _result_arguments(state, tool_name):
    entry = last_result(state, tool_name)
    return entry.get("arguments", {}) if entry else {}


def _matching_result(state, tool_name, wanted):
    for entry in reversed(state["entries"]):
        if entry["role"] == "result" and entry["tool"] == tool_name and entry["status"] == "ok":
            given = entry.get("arguments", {})
            if all(str(given.get(k)) == str(v) for k, v in wanted.items()):
                return entry
    return None
