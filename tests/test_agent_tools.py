"""The tool interface: loading a handler named in an agent file, and every way a call can fail."""

import pytest

from parley.appliance.agent.tools import (
    ToolConfigError,
    ToolContext,
    ToolError,
    ToolRefused,
    call_tool,
    load_handler,
)

CONTEXT = ToolContext(call_id="call-1", config={"greeting": "hello"})


def greet(context, name, excited=False):
    return {"text": f"{context.config['greeting']} {name}{'!' if excited else ''}", "call_id": context.call_id}


def refuse(context, amount):
    raise ToolRefused("I can refund at most $10.00 on that order.", code="limit_exceeded")


def crash(context, order_id):
    raise KeyError("total_cents")


def raise_type_error_inside(context, order_id):
    return {"length": len(None)}


def return_list(context):
    return ["not", "a", "dict"]


def return_unserialisable(context):
    return {"when": object()}


def return_nan(context):
    return {"total": float("nan")}


async def async_tool(context):
    return {}


NOT_CALLABLE = {"a": 1}


def test_load_handler_finds_a_module_function():
    assert load_handler(f"{__name__}:greet") is greet
    assert load_handler("json:dumps").__name__ == "dumps"


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        (f"{__name__}.greet", "not of the form 'package.module:function'"),
        (":greet", "not of the form"),
        (f"{__name__}:", "not of the form"),
        ("parley.no_such_module:lookup", "module 'parley.no_such_module' cannot be imported"),
        (f"{__name__}:no_such_function", "has no 'no_such_function'"),
        (f"{__name__}:NOT_CALLABLE", "is a dict, not a function"),
        (f"{__name__}:async_tool", "is async"),
    ],
)
def test_load_handler_names_the_bad_reference(reference, message):
    with pytest.raises(ToolConfigError, match=message) as raised:
        load_handler(reference)
    assert repr(reference) in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_load_handler_refuses_a_reference_that_is_not_text():
    with pytest.raises(ToolConfigError, match="not of the form"):
        load_handler(42)


def test_call_tool_passes_context_and_arguments_and_returns_the_result():
    result = call_tool(greet, CONTEXT, {"name": "Maria", "excited": True})
    assert result == {"text": "hello Maria!", "call_id": "call-1"}


@pytest.mark.parametrize(
    "arguments",
    [{}, {"name": "Maria", "colour": "red"}, {"name": "Maria", "context": CONTEXT}],
    ids=["missing", "unknown", "context-as-argument"],
)
def test_arguments_that_do_not_fit_the_signature_are_invalid_argument(arguments):
    with pytest.raises(ToolError) as raised:
        call_tool(greet, CONTEXT, arguments)
    assert raised.value.code == "invalid_argument"
    assert "greet" in raised.value.detail
    assert raised.value.spoken


def test_arguments_that_are_not_an_object_are_invalid_argument():
    with pytest.raises(ToolError) as raised:
        call_tool(greet, CONTEXT, ["Maria"])
    assert raised.value.code == "invalid_argument"


def test_a_refusal_reaches_the_caller_unchanged():
    with pytest.raises(ToolRefused) as raised:
        call_tool(refuse, CONTEXT, {"amount": 50})
    assert raised.value.code == "limit_exceeded"
    assert raised.value.spoken == "I can refund at most $10.00 on that order."


def test_a_crashing_tool_becomes_an_apology_with_the_original_as_cause():
    with pytest.raises(ToolError) as raised:
        call_tool(crash, CONTEXT, {"order_id": "4512"})
    assert raised.value.code == "tool_crashed"
    assert raised.value.spoken.startswith("Sorry, something went wrong on my side while")
    assert isinstance(raised.value.__cause__, KeyError)
    assert "KeyError" in raised.value.detail


def test_a_type_error_inside_the_tool_is_a_crash_not_a_bad_argument():
    with pytest.raises(ToolError) as raised:
        call_tool(raise_type_error_inside, CONTEXT, {"order_id": "4512"})
    assert raised.value.code == "tool_crashed"
    assert isinstance(raised.value.__cause__, TypeError)


@pytest.mark.parametrize("handler", [return_list, return_unserialisable, return_nan])
def test_a_result_that_is_not_a_json_object_is_invalid_result(handler):
    with pytest.raises(ToolError) as raised:
        call_tool(handler, CONTEXT, {})
    assert raised.value.code == "invalid_result"
    assert raised.value.spoken


def test_keyboard_interrupt_is_not_swallowed():
    def interrupted(context):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        call_tool(interrupted, CONTEXT, {})


def test_tool_context_is_frozen():
    with pytest.raises(AttributeError):
        CONTEXT.call_id = "other"
