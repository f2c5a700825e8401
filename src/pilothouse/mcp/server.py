"""Pilothouse tools and agents offered to any MCP client (`pilothouse mcp serve`).

A tool is offered as itself: its schema, its description, and annotations saying its
effect kind (``read_only`` -> ``readOnlyHint``, ``irreversible`` -> ``destructiveHint``,
``on_doubt="retry"`` -> ``idempotentHint``), so the client's host can ask its user
before a side effect. A served tool runs as the client calls it: no Pilothouse
policy stands between (the client is the one deciding); to put a policy in front of
tools, serve an agent that has them.

An agent is offered as one tool: ``input`` (text) in, its final output out. Each run
is a journaled run of that agent (in the agent's store); each step sends a progress
notification (``step N: calling a, b (run ID)`` / ``step N: answered (run ID)``) when
the client asked for progress, and a cancellation from the client
(``notifications/cancelled``) cancels the run, which the journal records as
interrupted (resumable).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pilothouse.agent import Agent
from pilothouse.exceptions import ConfigurationError, PilothouseError
from pilothouse.messages import ToolCall
from pilothouse.tools.tool import Tool, ToolContext, as_tool

if TYPE_CHECKING:
    from mcp import types as mcp_types
    from mcp.server.lowlevel import Server

    from pilothouse.events import Event

_AGENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"input": {"type": "string", "description": "The task or question."}},
    "required": ["input"],
    "additionalProperties": False,
}


def _entries(target: Any) -> list[Tool | Agent[Any, Any]]:
    """What `target` offers: an Agent, a Tool, a function, or a list/tuple/dict of them."""
    if isinstance(target, Mapping):
        target = list(target.values())
    items = list(target) if isinstance(target, (list, tuple)) else [target]
    entries: list[Tool | Agent[Any, Any]] = []
    for item in items:
        if isinstance(item, (Agent, Tool)):
            entries.append(item)
        elif callable(item):
            entries.append(as_tool(item))
        else:
            raise ConfigurationError(
                f"cannot serve {type(item).__name__} over MCP: give an Agent, a Tool, a "
                "function or a list of them"
            )
    if not entries:
        raise ConfigurationError("nothing to serve over MCP: the list is empty")
    return entries


def _annotations(tool: Tool) -> mcp_types.ToolAnnotations:
    from mcp import types

    return types.ToolAnnotations(
        read_only_hint=tool.effect == "read_only",
        destructive_hint=tool.effect == "irreversible",
        idempotent_hint=tool.effect == "read_only" or tool.on_doubt == "retry",
        open_world_hint=None,
    )


def _agent_name(agent: Agent[Any, Any]) -> str:
    from pilothouse.mcp.toolset import sanitise

    return sanitise(agent.name)


def _agent_description(agent: Agent[Any, Any]) -> str:
    first = agent.instructions.strip().splitlines()[0] if agent.instructions.strip() else ""
    return f"Ask the agent {agent.name!r}: it works on `input` and answers." + (
        f" Its instructions begin: {first[:200]}" if first else ""
    )


def _output_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    from pydantic_core import to_json

    return to_json(value).decode()


class _Progress:
    """A run's step events as progress notifications, sent in order from one task."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.queue: asyncio.Queue[tuple[float, str] | None] = asyncio.Queue()
        self.task = asyncio.create_task(self._send())

    def __call__(self, event: Event) -> None:
        from pilothouse.events import ModelResponded

        if isinstance(event, ModelResponded):
            calls = event.response.tool_calls
            what = f"calling {', '.join(c.name for c in calls)}" if calls else "answered"
            message = f"step {event.step}: {what} (run {event.run_id})"
            self.queue.put_nowait((float(event.step), message))

    async def _send(self) -> None:
        while (item := await self.queue.get()) is not None:
            try:
                await self.ctx.session.report_progress(item[0], None, item[1])
            except Exception:
                continue

    async def finish(self) -> None:
        self.queue.put_nowait(None)
        await self.task

    def cancel(self) -> None:
        self.task.cancel()


def _result(text: str, *, error: bool = False, meta: dict[str, Any] | None = None) -> Any:
    from mcp import types

    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], is_error=error, _meta=meta
    )


async def _run_agent(agent: Agent[Any, Any], arguments: Mapping[str, Any], ctx: Any) -> Any:
    text = arguments.get("input")
    if not isinstance(text, str):
        return _result("Invalid arguments: `input` must be a string", error=True)
    progress = _Progress(ctx)
    try:
        result = await agent.run(text, subscribers=[progress])
    except PilothouseError as exc:
        await progress.finish()
        return _result(f"agent {agent.name!r} failed: {exc}", error=True)
    except BaseException:  # cancelled by the client (the run is journaled interrupted), a bug
        progress.cancel()
        raise
    await progress.finish()
    meta = {"pilothouse/run_id": result.run_id, "pilothouse/outcome": result.outcome}
    if result.outcome != "final":
        message = result.stop.message if result.stop is not None else result.outcome
        return _result(
            f"agent {agent.name!r} stopped ({result.outcome}) in run {result.run_id}: {message}",
            error=True,
            meta=meta,
        )
    return _result(_output_text(result.output), meta=meta)


async def _run_tool(tool: Tool, arguments: Mapping[str, Any]) -> Any:
    run_id = f"mcp-{secrets.token_hex(6)}"
    call = ToolCall(f"{run_id}-0", tool.name, dict(arguments))
    outcome = await tool.execute(call, ToolContext(run_id=run_id, step=0, index=0))
    return _result(outcome.content, error=outcome.is_error)


def build_server(target: Any, *, name: str = "pilothouse") -> Server[Any]:
    """An MCP server (the SDK's low-level `Server`) offering `target`'s tools and agents.

    Two entries with one name raise `ConfigurationError` here, before anything is served.
    """
    from mcp import types
    from mcp.server.lowlevel import Server

    offered: dict[str, tuple[mcp_types.Tool, Tool | Agent[Any, Any]]] = {}
    for entry in _entries(target):
        if isinstance(entry, Agent):
            spec = types.Tool(
                name=_agent_name(entry),
                description=_agent_description(entry),
                input_schema=_AGENT_SCHEMA,
                annotations=types.ToolAnnotations(
                    read_only_hint=all(t.effect == "read_only" for t in entry.tools.values()),
                    destructive_hint=any(t.effect == "irreversible" for t in entry.tools.values()),
                ),
            )
        else:
            spec = types.Tool(
                name=entry.name,
                title=entry.title,
                description=entry.description,
                input_schema=entry.parameters,
                annotations=_annotations(entry),
            )
        if spec.name in offered:
            raise ConfigurationError(f"two served entries are named {spec.name!r}")
        offered[spec.name] = (spec, entry)

    async def list_tools(ctx: Any, params: Any) -> mcp_types.ListToolsResult:
        return types.ListToolsResult(tools=[spec for spec, _ in offered.values()])

    async def call_tool(ctx: Any, params: mcp_types.CallToolRequestParams) -> Any:
        found = offered.get(params.name)
        if found is None:
            return _result(
                f"Unknown tool {params.name!r}; this server offers: {', '.join(offered)}",
                error=True,
            )
        entry = found[1]
        arguments = params.arguments or {}
        if isinstance(entry, Agent):
            return await _run_agent(entry, arguments, ctx)
        return await _run_tool(entry, arguments)

    return Server(name, on_list_tools=list_tools, on_call_tool=call_tool)


async def serve_stdio(target: Any, *, name: str = "pilothouse") -> None:
    """Serve `target` over this process's stdin/stdout until the client closes them."""
    from mcp.server.stdio import stdio_server

    server = build_server(target, name=name)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


async def serve_http(
    target: Any,
    *,
    port: int,
    host: str = "127.0.0.1",
    name: str = "pilothouse",
    path: str = "/mcp",
) -> None:
    """Serve `target` over streamable HTTP at http://host:port/path (loopback by default)."""
    import uvicorn

    server = build_server(target, name=name)
    app = server.streamable_http_app(streamable_http_path=path, host=host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    await uvicorn.Server(config).serve()
