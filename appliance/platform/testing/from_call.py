"""A stored call turned into a ``next_turn`` test: the history is the call up to the agent turn
that went wrong, the expectation a rubric to sharpen (``parley test from-call``)."""

import yaml

DEFAULT_RUBRIC = ("The agent answers the caller's last words correctly and helpfully, states only facts given by "
                  "a tool result or the knowledge passages, and takes the right next step.")


class FromCallError(ValueError):
    """The call or turn cannot become a test (no such turn, or it is not the agent's)."""


def test_from_call(store, call_id, turn_position, *, test_id=None):
    """The YAML text of a test file holding one ``next_turn`` test for agent turn ``turn_position``."""
    turns = store.turns(call_id)
    by_position = {t.position: t for t in turns}
    target = by_position.get(turn_position)
    if target is None:
        raise FromCallError(f"call {call_id} has no turn {turn_position}; its turns are 0 to {len(turns) - 1}")
    if target.role != "agent":
        raise FromCallError(f"turn {turn_position} of call {call_id} is the caller's; give the agent turn that "
                            f"answers it ({turn_position + 1})")
    tools = {}
    for call in store.tool_calls(call_id):
        tools.setdefault(call.turn_id, []).append(call)
    history = []
    for turn in turns:
        if turn.position >= turn_position:
            break
        if turn.role == "caller":
            history.append({"caller": turn.text})
            continue
        for call in tools.get(turn.id, []):
            if call.status == "ok" and isinstance(call.result, dict):
                history.append({"tool": call.tool, "arguments": call.arguments, "result": call.result})
        text = turn.heard_text if turn.interrupted and turn.heard_text else turn.text
        if text:
            history.append({"agent": text})
    while history and "caller" not in history[-1]:
        history.pop()
    if not history:
        raise FromCallError(f"the caller said nothing before turn {turn_position} of call {call_id}")
    if "caller" not in history[0] and history[0].get("agent") and len(history) > 1:
        history = history[1:]  # the greeting: the runner starts every history with the agent's first message
    test = {
        "id": test_id or f"call-{call_id[:8]}-turn-{turn_position}",
        "kind": "next_turn",
        "description": f"From call {call_id}, turn {turn_position}. The agent said: {target.text}",
        "tags": ["happy_path"],
        "history": history,
        "expect": {"judge": DEFAULT_RUBRIC},
    }
    header = (f"# Written by `parley test from-call {call_id} --turn {turn_position}`.\n"
              "# Sharpen the expectation (judge, contains, tool) and the tags, then run `parley test`.\n")
    return header + yaml.safe_dump({"tests": [test]}, sort_keys=False, allow_unicode=True, width=110)
