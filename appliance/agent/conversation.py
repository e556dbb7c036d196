"""One call's conversation as the agent sees it: a plain, JSON-serialisable state.

The state travels with every ``agent_turn`` job and comes back updated, so the agent worker
keeps nothing between turns: a restarted worker, a second replica or an agent test picks the
call up exactly where it was. It is a dict (msgpack and the store take it as is) with:

* ``entries``: the history, oldest first; each has a ``role``:
  ``caller`` {text}; ``agent`` {text, interrupted?, heard?}; ``action`` {tool, arguments}: the model
  asked for a tool; ``result`` {tool, status: ok|error|refused, result | message};
  ``knowledge`` {chunks: [{id, text}]}; ``note`` {text}: something the orchestrator tells the model.
* ``pending``: a side-effecting tool call waiting for the caller's yes, or None.
* ``failed_attempts``: tool failures and not-understood turns so far (escalation counts them).
* ``outcome``: None while the call goes on; ``ended`` or ``transferred`` once the agent decided.
"""

import copy
import json

ROLES = ("caller", "agent", "action", "result", "knowledge", "note")


def new_state():
    return {"entries": [], "pending": None, "failed_attempts": 0, "outcome": None}


def check_state(state):
    """Raise ValueError unless ``state`` has the shape above (it comes from another process)."""
    if not isinstance(state, dict) or not isinstance(state.get("entries"), list):
        raise ValueError("conversation state must be a dict with an 'entries' list")
    for i, entry in enumerate(state["entries"]):
        if not isinstance(entry, dict) or entry.get("role") not in ROLES:
            raise ValueError(f"conversation entry {i} has no known role: {str(entry)[:80]}")
    if not isinstance(state.get("failed_attempts", 0), int):
        raise ValueError("failed_attempts must be an integer")
    return state


def copy_state(state):
    return copy.deepcopy(check_state(state))


def caller_texts(state):
    return [e["text"] for e in state["entries"] if e["role"] == "caller"]


def last_result(state, tool, status="ok"):
    """The most recent result entry of ``tool`` with ``status``, or None."""
    for entry in reversed(state["entries"]):
        if entry["role"] == "result" and entry["tool"] == tool and entry["status"] == status:
            return entry
    return None


def known_chunk_ids(state):
    return {chunk["id"] for e in state["entries"] if e["role"] == "knowledge" for chunk in e["chunks"]}


def record_interruption(state, heard_text):
    """Cut the last agent message to what the caller heard before barging in.

    The context then holds only the words that reached the caller, so the model does not believe
    it said what was cut off (pipecat's users saw exactly that bug).
    """
    for entry in reversed(state["entries"]):
        if entry["role"] == "agent":
            entry["interrupted"] = True
            entry["heard"] = heard_text.strip()
            return state
    return state


def heard_words(sentences, played_samples):
    """The text heard of an utterance cut after ``played_samples`` samples.

    ``sentences`` are (text, start_sample, end_sample) in utterance order; a sentence cut part
    way counts its words in proportion to the samples played (speech rate is nearly even
    within one synthesized sentence).
    """
    heard = []
    for text, start, end in sentences:
        if played_samples >= end:
            heard.append(text)
        elif played_samples > start:
            words = text.split()
            share = (played_samples - start) / max(1, end - start)
            heard.append(" ".join(words[: int(len(words) * share)]))
            break
        else:
            break
    return " ".join(part for part in heard if part)


def transcript(state, *, heard_only=True):
    """The call as lines a person reads: ``caller: ...``, ``agent: ...``, ``tool ...``."""
    lines = []
    for entry in state["entries"]:
        role = entry["role"]
        if role == "caller":
            lines.append(f"caller: {entry['text']}")
        elif role == "agent":
            text = entry.get("heard", entry["text"]) if heard_only and entry.get("interrupted") else entry["text"]
            lines.append(f"agent: {text}" + (" [interrupted]" if entry.get("interrupted") else ""))
        elif role == "action":
            lines.append(f"agent calls {entry['tool']} {json.dumps(entry['arguments'])}")
        elif role == "result":
            detail = json.dumps(entry["result"]) if entry["status"] == "ok" else entry.get("message", "")
            lines.append(f"{entry['tool']} {entry['status']}: {detail}")
    return "\n".join(lines)
