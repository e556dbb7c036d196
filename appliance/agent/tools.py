"""The tool interface: how the orchestrator finds a tool's handler, calls it, and hears it say no.

A tool is a plain function ``handler(context, **arguments) -> dict``. It knows nothing of the LLM,
the bus or governance: the orchestrator checks policy before it calls, and what the handler
returns (or the ``ToolError`` it raises) goes back into the conversation. A failure the caller
should hear about carries a sentence the agent can say; anything else is a crash, which
``call_tool`` turns into an apology and keeps as ``__cause__`` for the log.
"""

import importlib
import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

Handler = Callable[..., dict]


@dataclass(frozen=True)
class ToolContext:
    """What a handler may know about the call it works for, besides its arguments."""

    call_id: str
    """The call the tool runs in; handlers record it next to anything they change."""
    config: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """The agent file's ``tool_config`` block, e.g. ``{"shop_db": "/var/lib/parley/shop.sqlite"}``."""


class ToolError(Exception):
    """A tool failed in a way the caller should hear about.

    ``spoken`` is a short sentence the agent can say as it is ("I couldn't find order 4512.");
    ``code`` a short machine reason for logs, tests and metrics; ``detail`` what an operator
    reading the log needs and the caller does not.
    """

    def __init__(self, spoken: str, *, code: str, detail: str = ""):
        self.spoken = spoken
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {detail or spoken}")


class ToolRefused(ToolError):
    """A policy or business rule refused the action (a refund above what is refundable, an
    address change after shipping); nothing was changed."""


class ToolConfigError(ValueError):
    """A tool reference in an agent file does not lead to a callable handler."""


ERROR_CODES = {
    "not_found": "what was asked about does not exist",
    "limit_exceeded": "the amount is above what the rules allow",
    "not_allowed": "the action is not allowed in the current state",
    "invalid_argument": "an argument is missing, unknown or unusable",
    "unavailable": "the system behind the tool cannot be reached",
    "invalid_result": "the handler returned something that is not a JSON object",
    "tool_crashed": "the handler raised something other than a ToolError",
}
"""The codes Parley's own tools and ``call_tool`` use; a site's tools may add their own."""

_CRASHED_SPOKEN = "Sorry, something went wrong on my side while I was working on that."
_INVALID_ARGUMENT_SPOKEN = "Sorry, I didn't get the details I need for that."


def load_handler(reference: str) -> Handler:
    """The function named by ``"package.module:function"`` (the function part may be dotted)."""
    module_name, colon, attribute_path = str(reference).partition(":")
    if not isinstance(reference, str) or not colon or not module_name.strip() or not attribute_path.strip():
        raise ToolConfigError(
            f"tool handler {reference!r} is not of the form 'package.module:function', "
            "e.g. 'parley.appliance.demo.shop:lookup_order'"
        )
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise ToolConfigError(
            f"tool handler {reference!r}: module {module_name!r} cannot be imported ({error}); "
            "check the name and that its package is installed"
        ) from error
    for name in attribute_path.split("."):
        try:
            target = getattr(target, name)
        except AttributeError:
            raise ToolConfigError(
                f"tool handler {reference!r}: {module_name!r} has no {attribute_path!r}"
            ) from None
    if not callable(target):
        raise ToolConfigError(f"tool handler {reference!r} is a {type(target).__name__}, not a function")
    if inspect.iscoroutinefunction(target):
        raise ToolConfigError(
            f"tool handler {reference!r} is async; tools are plain functions the orchestrator runs in a thread"
        )
    return target


def call_tool(handler: Handler, context: ToolContext, arguments: Mapping[str, Any]) -> dict:
    """``handler(context, **arguments)``, with every way it can go wrong as a ``ToolError``.

    Arguments are bound to the handler's signature first, so a missing or unknown argument from
    the LLM is ``invalid_argument`` and a ``TypeError`` raised inside the tool stays a crash.
    """
    name = getattr(handler, "__qualname__", repr(handler))
    if not isinstance(arguments, Mapping):
        raise ToolError(
            _INVALID_ARGUMENT_SPOKEN,
            code="invalid_argument",
            detail=f"{name}: arguments must be an object, got {type(arguments).__name__}",
        )
    try:
        inspect.signature(handler).bind(context, **arguments)
    except TypeError as error:
        raise ToolError(_INVALID_ARGUMENT_SPOKEN, code="invalid_argument", detail=f"{name}: {error}") from None
    try:
        result = handler(context, **arguments)
    except ToolError:
        raise
    except Exception as error:
        raise ToolError(
            _CRASHED_SPOKEN, code="tool_crashed", detail=f"{name} raised {type(error).__name__}: {error}"
        ) from error
    if not isinstance(result, dict):
        raise ToolError(
            _CRASHED_SPOKEN,
            code="invalid_result",
            detail=f"{name} returned {type(result).__name__}, not a dict",
        )
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ToolError(
            _CRASHED_SPOKEN, code="invalid_result", detail=f"{name} returned a dict JSON cannot hold: {error}"
        ) from None
    return result
