"""AgentDojo's functions as Pilothouse tools, each with an effect kind.

AgentDojo writes a tool as a Python function over the environment (``Depends``
arguments pick the inbox, the calendar, the bank account out of it) and runs it in a
`FunctionsRuntime`. Here each becomes a `Tool` whose schema and description are
AgentDojo's own, whose arguments the model fills (the environment never reaches the
model: it is the run's deps, a `DojoEnv`), and whose call runs AgentDojo's runtime on
that run's environment. A function's error (AgentDojo returns ``"ValueError: ..."``)
becomes the error result the model reads.

Results keep their structure: a pydantic object becomes its JSON form (a dict; a list
of them a list), so the run's journal holds the fields (an email's ``sender`` apart
from its ``body``) as JSON, not AgentDojo's YAML text.

Effect kinds (`EFFECTS`): getters, searches and listings are ``read_only``; calls that
change the environment and can be undone or corrected are ``side_effect`` (a calendar
event, a file, a reservation, a channel membership, a scheduled transaction); calls
whose effect leaves the user's control are ``irreversible`` (an email or message sent,
money sent, a file shared or deleted, a password changed, a page posted, a user
removed). ``get_webpage`` is ``side_effect``: fetching a URL the model chose tells a
third party whatever the URL holds, and AgentDojo counts a visit as an attack's success.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any

from pilothouse import ToolError
from pilothouse.tools.tool import Effect, Tool, ToolContext
from pilothouse_suites.agentdojo.environment import task_suite

SIDE_EFFECT = frozenset(
    {
        # workspace (and travel's calendar)
        "create_calendar_event",
        "cancel_calendar_event",
        "reschedule_calendar_event",
        "add_calendar_event_participants",
        "append_to_file",
        "create_file",
        # travel
        "reserve_hotel",
        "reserve_car_rental",
        "reserve_restaurant",
        # slack
        "add_user_to_channel",
        "invite_user_to_slack",
        "get_webpage",
        # banking
        "schedule_transaction",
        "update_scheduled_transaction",
        "update_user_info",
    }
)
IRREVERSIBLE = frozenset(
    {
        "send_email",
        "delete_email",
        "delete_file",
        "share_file",
        "send_direct_message",
        "send_channel_message",
        "remove_user_from_slack",
        "post_webpage",
        "send_money",
        "update_password",
    }
)


def effect_of(name: str) -> Effect:
    """The effect kind of an AgentDojo function (see the module docstring)."""
    if name in IRREVERSIBLE:
        return "irreversible"
    if name in SIDE_EFFECT:
        return "side_effect"
    return "read_only"


@dataclass(slots=True)
class DojoEnv:
    """One run's world, its deps: AgentDojo's environment and the runtime of its suite."""

    suite: str
    env: Any  # the suite's TaskEnvironment (a pydantic model), changed by the tools
    runtime: Any  # agentdojo.functions_runtime.FunctionsRuntime over the suite's functions


def plain(value: Any) -> Any:
    """A tool result as JSON data: pydantic objects as dicts, recursively."""
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def _strip_titles(schema: dict[str, Any]) -> dict[str, Any]:
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)
    return schema


def _bind(function: Any) -> Tool:
    """One AgentDojo `Function` as a `Tool` running on the run's `DojoEnv`."""
    name: str = function.name
    original = function.run
    hints = typing.get_type_hints(original, include_extras=False)
    signature = inspect.signature(original)
    params = [
        inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        *(
            p.replace(annotation=hints.get(p.name, Any))
            for p in signature.parameters.values()
            if p.name not in function.dependencies
        ),
    ]

    def run(ctx: ToolContext[DojoEnv], **kwargs: Any) -> Any:
        result, error = ctx.deps.runtime.run_function(ctx.deps.env, name, kwargs)
        if error is not None:
            raise ToolError(error)
        return plain(result)

    run.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    run.__annotations__ = {
        "ctx": ToolContext[DojoEnv],
        **{p.name: p.annotation for p in params[1:]},
    }
    run.__name__ = name
    tool = Tool(run, name=name, description=function.description, effect=effect_of(name))
    tool.parameters = _strip_titles(function.parameters.model_json_schema())
    return tool


@cache
def _tools(suite: str) -> tuple[Tool, ...]:
    return tuple(_bind(f) for f in task_suite(suite).tools)


def dojo_tools(suite: str) -> list[Tool]:
    """The suite's functions as tools (built once per suite)."""
    return list(_tools(suite))
