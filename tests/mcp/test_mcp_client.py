"""The MCP client against real servers: tools that pass the policy and the journal."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("mcp", reason="the mcp extra is not installed: pip install 'pilothouse[mcp]'")

from pilothouse import Agent, ScriptedModel, call
from pilothouse.events import ToolCalled, ToolReturned
from pilothouse.exceptions import ConfigurationError, MCPServerError, ToolDefinitionError
from pilothouse.mcp import MCPClient, MCPTool, mcp_tools
from pilothouse.mcp.toolset import cap, sanitise
from pilothouse.policy import Policy, Rule
from pilothouse.tools import ToolArgumentError

FAULT_SERVER = str(Path(__file__).with_name("fault_server.py"))


def faulty(name: str = "faulty", **options: object) -> MCPClient:
    return MCPClient.stdio(name, sys.executable, [FAULT_SERVER], **options)  # type: ignore[arg-type]


def mark_changed(path: Path) -> None:
    path.write_text("changed")


def by_name(tools: list) -> dict[str, MCPTool]:  # type: ignore[type-arg]
    return {t.name: t for t in tools}


async def test_a_servers_tools_become_tools_with_effects_from_their_annotations() -> None:
    async with faulty() as server:
        tools = by_name(await server.tools())
    assert {"echo", "add", "write_note", "wipe", "big", "sleep"} <= set(tools)
    # readOnlyHint -> read_only; destructiveHint -> irreversible; none -> side_effect
    assert tools["echo"].effect == "read_only"
    assert tools["wipe"].effect == "irreversible"
    assert tools["write_note"].effect == "side_effect" and tools["write_note"].on_doubt == "ask"
    # idempotentHint without readOnlyHint: side-effecting, but safe to run again
    assert tools["add"].effect == "side_effect" and tools["add"].on_doubt == "retry"
    spec = tools["add"].spec()
    assert spec.description == "Add two integers."
    assert spec.parameters["required"] == ["a", "b"] and "$schema" not in spec.parameters


async def test_effects_can_be_overridden_and_tools_filtered_by_name() -> None:
    async with faulty(effects={"echo": "irreversible"}, include=["echo", "add"]) as server:
        tools = by_name(await server.tools())
    assert set(tools) == {"echo", "add"} and tools["echo"].effect == "irreversible"
    with pytest.raises(ToolDefinitionError, match="no tool named 'nope'"):
        async with faulty(include=["nope"]) as server:
            await server.tools()


async def test_mcp_tools_pass_the_policy_and_the_journal_like_any_other() -> None:
    async with faulty() as server:
        model = ScriptedModel(
            [[call("echo", text="hello"), call("write_note", text="x"), call("wipe")], "done"]
        )
        agent = Agent(model, tools=await server.tools(), store=":memory:")  # default policy
        result = await agent.run("go")
    events = agent.store.events(result.run_id)
    called = {e.call.name: e for e in events if isinstance(e, ToolCalled)}
    returned = {e.result.name: e.result for e in events if isinstance(e, ToolReturned)}
    assert called["echo"].effect == "read_only" and called["echo"].decision.allowed  # type: ignore[union-attr]
    assert returned["echo"].content == "hello" and not returned["echo"].is_error
    # the default policy denies side effects: an unannotated tool is one (fail-closed)
    for name, effect in (("write_note", "side_effect"), ("wipe", "irreversible")):
        assert called[name].effect == effect and not called[name].decision.allowed  # type: ignore[union-attr]
        assert returned[name].is_error and "Policy denied" in returned[name].content


async def test_a_policy_rule_allows_an_mcp_tool_by_its_name() -> None:
    async with faulty() as server:
        model = ScriptedModel([call("write_note", text="kept"), "done"])
        policy = Policy([Rule("write_note", "allow", id="notes-ok")])
        agent = Agent(model, tools=await server.tools(), store=":memory:", policy=policy)
        result = await agent.run("go")
    returned = [e.result for e in agent.store.events(result.run_id) if isinstance(e, ToolReturned)]
    assert returned[0].content == "stored note 1" and not returned[0].is_error


async def test_a_server_error_answer_is_a_tool_error_naming_server_and_tool() -> None:
    async with faulty() as server:
        model = ScriptedModel([call("add", a=1, b="not a number"), "done"])
        agent = Agent(model, tools=await server.tools(), store=":memory:")
        result = await agent.run("go")
    (returned,) = [
        e.result for e in agent.store.events(result.run_id) if isinstance(e, ToolReturned)
    ]
    # our own schema check stops it before the server: the model reads why
    assert returned.is_error and "Invalid arguments for tool 'add'" in returned.content


async def test_a_long_result_reaches_the_model_capped_and_the_journal_whole(
    tmp_path: Path,
) -> None:
    async with faulty(max_result_chars=1_000) as server:
        model = ScriptedModel([call("big", n=50_000), "done"])
        store = str(tmp_path / "journal.db")  # read back from SQLite: `full` is stored
        agent = Agent(model, tools=await server.tools(), store=store)
        result = await agent.run("go")
    (returned,) = [
        e.result for e in agent.store.events(result.run_id) if isinstance(e, ToolReturned)
    ]
    assert returned.content.startswith("<start>AAA") and returned.content.endswith("AAA<end>..")
    assert "49000 of 50000 characters omitted" in returned.content
    assert len(returned.content) < 1_200
    assert returned.full is not None and len(returned.full) == 50_000
    # what the model read on the next step is the capped text, not the whole
    last_request = model.requests[-1]
    tool_message = next(m for m in last_request.messages if m.role == "tool")
    assert len(tool_message.content) < 1_200


def test_cap_keeps_head_and_tail_and_leaves_short_text_alone() -> None:
    assert cap("short", 10) == "short"
    text = "H" * 600 + "T" * 400
    capped = cap(text, 100)
    assert capped.startswith("H" * 67) and capped.endswith("T" * 33)
    assert "900 of 1000 characters omitted" in capped


def test_names_are_sanitised_to_what_every_provider_accepts() -> None:
    assert sanitise("files.read") == "files_read"
    assert sanitise("9lives") == "_9lives"
    assert sanitise("a b/c") == "a_b_c"
    long_a, long_b = "x" * 80 + "a", "x" * 80 + "b"
    assert len(sanitise(long_a)) == 64 and sanitise(long_a) != sanitise(long_b)


async def test_several_servers_are_namespaced_and_a_collision_is_a_build_time_error() -> None:
    async with faulty("notes") as notes, faulty("files") as files:
        tools = await mcp_tools(notes, files)
        names = {t.name for t in tools}
        assert {"notes__echo", "files__echo"} <= names
        # the agent refuses two tools of one name; mcp_tools refuses first, naming both
        with pytest.raises(ToolDefinitionError, match="'notes' and 'files'"):
            await mcp_tools(notes, files, namespace=False)
    async with faulty("a.b") as one, faulty("a_b") as two:
        with pytest.raises(ToolDefinitionError, match="share the namespace 'a_b'"):
            await mcp_tools(one, two)


async def test_a_namespaced_tool_calls_the_servers_own_name() -> None:
    async with faulty("notes") as notes, faulty("files") as files:
        tools = await mcp_tools(notes, files)
        model = ScriptedModel([call("files__echo", text="via files"), "done"])
        agent = Agent(model, tools=tools, store=":memory:")
        result = await agent.run("go")
    (returned,) = [
        e.result for e in agent.store.events(result.run_id) if isinstance(e, ToolReturned)
    ]
    assert returned.name == "files__echo" and returned.content == "via files"


async def test_a_changed_tool_list_changes_the_definition_and_resume_refuses_it(
    tmp_path: Path, variant_file: Path
) -> None:
    store = str(tmp_path / "journal.db")
    env = {"FAULT_VARIANT_FILE": str(variant_file)}
    policy = Policy([Rule("write_note", "ask", id="person")])  # pauses: no approver

    async def build() -> tuple[MCPClient, Agent]:  # type: ignore[type-arg]
        client = faulty(env=env)
        await client.connect()
        model = ScriptedModel([call("write_note", text="x"), "done"])
        return client, Agent(model, tools=await client.tools(), store=store, policy=policy)

    client, agent = await build()
    paused = await agent.run("go")
    await client.aclose()
    assert paused.outcome == "paused"

    client, same = await build()  # the same list: the same definition, resume goes on
    assert same.run_spec().definition_hash == agent.run_spec().definition_hash
    await client.aclose()

    mark_changed(variant_file)  # the server now lists one more tool
    client, changed = await build()
    assert changed.run_spec().definition_hash != agent.run_spec().definition_hash
    with pytest.raises(ConfigurationError, match="definition"):
        await changed.resume(paused.run_id, approvals={paused.pending[0].key: True})
    await client.aclose()


async def test_a_recycled_connection_whose_list_changed_refuses_calls(variant_file: Path) -> None:
    async with faulty(env={"FAULT_VARIANT_FILE": str(variant_file)}, deadline=5) as server:
        mark_changed(variant_file)
        with pytest.raises(MCPServerError) as exited:
            await server.call("exit_now", {})
        assert exited.value.kind == "closed"
        with pytest.raises(MCPServerError) as refused:
            await server.call("echo", {"text": "x"})
    assert refused.value.kind == "changed" and "tool list changed" in str(refused.value)


async def test_an_unconnected_client_says_so() -> None:
    with pytest.raises(ConfigurationError, match="not connected"):
        _ = faulty().listing
    with pytest.raises(ConfigurationError, match="exactly one"):
        MCPClient("x")


def test_the_sdk_loads_with_the_first_connection_not_with_the_import() -> None:
    import subprocess

    code = (
        "import sys; from pilothouse.mcp import MCPClient, mcp_tools, build_server; "
        "MCPClient.stdio('x', 'true'); "
        "print(sorted(m for m in sys.modules if m == 'mcp' or m.startswith('mcp.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_schema_beyond_the_validator_still_makes_a_tool(caplog: pytest.LogCaptureFixture) -> None:
    from types import SimpleNamespace

    from mcp import types

    remote = types.Tool(
        name="fetch",
        description="Fetch a thing.",
        input_schema={"type": "object", "properties": {"x": {"$ref": "http://elsewhere/x"}}},
    )
    client = SimpleNamespace(name="web")
    t = MCPTool(client, remote, "fetch", effect="read_only", on_doubt="retry", fingerprint="f")  # type: ignore[arg-type]
    assert t.validate({"x": 1}) == {"x": 1}  # the server checks its own arguments
    with pytest.raises(ToolArgumentError):
        t.validate([1])  # type: ignore[arg-type]  # still an object, at least
    assert "not checked here" in caplog.text
