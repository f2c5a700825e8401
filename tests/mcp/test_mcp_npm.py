"""Published MCP servers no one on the project wrote, from the npm registry (installed
once by the fixtures; no network when they run): `@modelcontextprotocol/server-memory`
over stdio, `@modelcontextprotocol/server-everything` over streamable HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("mcp", reason="the mcp extra is not installed: pip install 'pilothouse[mcp]'")

from pilothouse import Agent, ScriptedModel, call
from pilothouse.events import ToolCalled, ToolReturned
from pilothouse.exceptions import MCPServerError
from pilothouse.mcp import MCPClient
from pilothouse.policy import Policy, Rule


async def test_the_published_memory_server_over_stdio(
    memory_server_command: list[str], tmp_path: Path
) -> None:
    command, *args = memory_server_command
    env = {"MEMORY_FILE_PATH": str(tmp_path / "memory.jsonl")}
    async with MCPClient.stdio("memory", command, args, env=env, deadline=10) as memory:
        tools = {t.name: t for t in await memory.tools()}
        assert {"create_entities", "read_graph", "search_nodes"} <= set(tools)
        assert tools["read_graph"].effect == "read_only"  # it says readOnlyHint
        assert tools["create_entities"].effect != "read_only"
        entity = {"name": "Ada", "entityType": "person", "observations": ["wrote notes"]}
        model = ScriptedModel(
            [call("create_entities", entities=[entity]), call("search_nodes", query="Ada"), "done"]
        )
        policy = Policy([Rule("create_entities", "allow", id="memory-writes")])
        agent = Agent(model, tools=list(tools.values()), store=":memory:", policy=policy)
        result = await agent.run("remember Ada")
    events = agent.store.events(result.run_id)
    effects = {e.call.name: e.effect for e in events if isinstance(e, ToolCalled)}
    assert effects["search_nodes"] == "read_only"
    created, found = [e.result for e in events if isinstance(e, ToolReturned)]
    assert not created.is_error and not found.is_error
    assert "Ada" in found.content and "wrote notes" in found.content
    # the server really wrote its memory file
    lines = (tmp_path / "memory.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["name"] == "Ada"


async def test_the_published_everything_server_over_streamable_http(
    everything_http_url: str,
) -> None:
    async with MCPClient.http(
        "everything", everything_http_url, deadlines={"trigger-long-running-operation": 2}
    ) as everything:
        tools = {t.name: t for t in await everything.tools()}
        assert tools["get-sum"].effect == "read_only" and tools["get-sum"].on_doubt == "retry"
        model = ScriptedModel(
            [[call("echo", message="hi there"), call("get-sum", a=2, b=40)], "done"]
        )
        agent = Agent(model, tools=list(tools.values()), store=":memory:")
        result = await agent.run("go")
        echoed, summed = [
            e.result for e in agent.store.events(result.run_id) if isinstance(e, ToolReturned)
        ]
        assert "hi there" in echoed.content and "42" in summed.content
        image = await everything.call("get-tiny-image", {})
        assert "[image: image/png" in image.text  # described, not dumped into the context
        # a real long-running tool past our deadline: a timeout, and the session goes on
        with pytest.raises(MCPServerError) as failed:
            await everything.call("trigger-long-running-operation", {"duration": 30, "steps": 3})
        assert (failed.value.kind, failed.value.tool) == (
            "timeout",
            "trigger-long-running-operation",
        )
        assert "hi" in (await everything.call("echo", {"message": "hi"})).text
