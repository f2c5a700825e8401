"""A published MCP server no one on the project wrote: `@modelcontextprotocol/server-memory`
from the npm registry (installed once by the fixture; no network when it runs)."""

from __future__ import annotations

import json
from pathlib import Path

from pilothouse import Agent, ScriptedModel, call
from pilothouse.events import ToolCalled, ToolReturned
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
