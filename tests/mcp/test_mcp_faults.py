"""Fault injection: a server that sleeps, exits, writes garbage, half-closes, answers 502.

Every case ends as a tool error naming the server and the tool, of the right kind, with
short deadlines (2 s) and no hang (pytest's own timeout in CI would show one); the
next call works again. Elapsed time is not asserted: the deadline is the SDK's and
ours, and `benchmarks/mcp_overhead.py` prints times.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest

pytest.importorskip("mcp", reason="the mcp extra is not installed: pip install 'pilothouse[mcp]'")
from mcp_servers import free_port  # type: ignore[import-not-found]

from pilothouse import Agent, ScriptedModel, call
from pilothouse.events import ToolReturned
from pilothouse.exceptions import MCPServerError
from pilothouse.mcp import MCPClient

FAULT_SERVER = str(Path(__file__).with_name("fault_server.py"))
DEADLINE = 2.0


# Only the tool that never answers gets the short deadline: a call that should succeed
# is not raced against the clock (a loaded machine may take seconds to echo).
SHORT = {"sleep": DEADLINE}


def stdio_server(**options: object) -> MCPClient:
    options.setdefault("deadlines", SHORT)
    return MCPClient.stdio(  # type: ignore[arg-type]
        "faulty", sys.executable, [FAULT_SERVER], **options
    )


@pytest.mark.parametrize(
    ("tool", "arguments", "kind"),
    [
        ("sleep", {"seconds": 600}, "timeout"),
        ("exit_now", {}, "closed"),
        ("garbage", {}, "protocol"),
        ("half_close", {}, "closed"),
    ],
)
async def test_a_stdio_fault_is_a_tool_error_and_the_next_call_works(
    tool: str, arguments: dict[str, object], kind: str
) -> None:
    async with stdio_server() as server:
        with pytest.raises(MCPServerError) as failed:
            await server.call(tool, arguments)
        assert failed.value.kind == kind
        assert failed.value.server == "faulty" and failed.value.tool == tool
        assert f"MCP server 'faulty' (tool {tool!r})" in str(failed.value)
        assert server.recycled == 1  # the process was replaced ...
        assert (await server.call("echo", {"text": "again"})).text == "again"  # ... and works


async def test_an_idle_server_that_exits_is_seen_at_once_and_replaced_on_the_next_call(
    tmp_path: Path,
) -> None:
    trigger = tmp_path / "exit"
    async with stdio_server() as server:
        assert (await server.call("exit_when", {"path": str(trigger)})).text == "armed"
        await anyio.Path(trigger).touch()  # the server exits now, while the client is idle
        # seen by the end of its output, not a poll or a deadline; the bound is a hang
        # guard only (how soon it is seen is a figure for benchmarks, not an assertion)
        with anyio.fail_after(60):
            await server.wait_disconnected()
        assert not server.connected
        assert (await server.call("echo", {"text": "new process"})).text == "new process"
        assert server.recycled == 1 and server.connected


async def test_through_an_agent_a_fault_is_what_the_model_reads() -> None:
    async with stdio_server() as server:
        model = ScriptedModel([call("sleep", seconds=600), call("echo", text="ok"), "done"])
        agent = Agent(model, tools=await server.tools(), store=":memory:")
        result = await agent.run("go")
    assert result.outcome == "final"
    first, second = [
        e.result for e in agent.store.events(result.run_id) if isinstance(e, ToolReturned)
    ]
    assert (
        first.is_error
        and "MCP server 'faulty' (tool 'sleep'): no answer within 2 s" in first.content
    )
    assert "cancel" not in first.content.lower().replace("(cancelled)", "")  # no scope noise
    assert second.content == "ok"


async def test_a_per_tool_deadline_overrides_the_clients() -> None:
    async with stdio_server(deadlines={"sleep": 30}) as server:
        assert (await server.call("sleep", {"seconds": 0.2})).text == "slept"
        with pytest.raises(MCPServerError) as failed:
            await server.call("sleep", {"seconds": 600}, deadline=1)
    assert failed.value.kind == "timeout"


async def test_a_server_that_exits_before_the_handshake_is_reported_not_awaited() -> None:
    client = MCPClient.stdio("gone", sys.executable, ["-c", "import sys; sys.exit(3)"])
    with pytest.raises(MCPServerError) as failed:
        await client.connect()
    await client.aclose()
    assert failed.value.kind == "closed" and "MCP server 'gone'" in str(failed.value)


async def test_a_server_that_never_answers_the_handshake_times_out() -> None:
    silent = ["-c", "import time; time.sleep(600)"]
    client = MCPClient.stdio("mute", sys.executable, silent, connect_deadline=DEADLINE)
    with pytest.raises(MCPServerError) as failed:
        await client.connect()
    await client.aclose()
    assert failed.value.kind == "timeout" and "handshake" in str(failed.value)


async def test_a_command_that_does_not_exist_is_a_connect_error() -> None:
    client = MCPClient.stdio("missing", "/nonexistent/mcp-server")
    with pytest.raises(MCPServerError) as failed:
        await client.connect()
    await client.aclose()
    assert failed.value.kind == "connect"


# --- streamable HTTP: the SDK's server on loopback, behind a misbehaving front -----------


@pytest.mark.parametrize(
    ("tool", "arguments", "kind"),
    [
        ("sleep", {"seconds": 600}, "timeout"),
        ("bad_gateway", {}, "http"),
        ("half_close_http", {}, "closed"),
    ],
)
async def test_an_http_fault_is_a_tool_error_and_the_next_call_works(
    fault_http_url: str, tool: str, arguments: dict[str, object], kind: str
) -> None:
    async with MCPClient.http("remote", fault_http_url, deadlines=SHORT) as server:
        with pytest.raises(MCPServerError) as failed:
            await server.call(tool, arguments)
        assert (failed.value.kind, failed.value.tool) == (kind, tool)
        assert f"MCP server 'remote' (tool {tool!r})" in str(failed.value)
        assert (await server.call("echo", {"text": "again"})).text == "again"


async def test_a_call_past_its_deadline_is_cancelled_on_the_server(
    fault_http_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "cancelled"
    async with MCPClient.http("remote", fault_http_url, deadlines=SHORT) as server:
        with pytest.raises(MCPServerError) as failed:
            await server.call("sleep", {"seconds": 600, "marker": str(marker)})
        assert failed.value.kind == "timeout"
        # the server's handler was cancelled, not left running (10 s at most)
        for _ in range(200):
            if await anyio.Path(marker).exists():
                break
            await anyio.sleep(0.05)
        assert await anyio.Path(marker).exists()


async def test_a_502_names_the_status(fault_http_url: str) -> None:
    async with MCPClient.http("remote", fault_http_url, deadlines=SHORT) as server:
        with pytest.raises(MCPServerError, match="HTTP 502"):
            await server.call("bad_gateway", {})


async def test_nothing_listening_is_a_connect_error_within_the_deadline() -> None:
    client = MCPClient.http(
        "nobody", f"http://127.0.0.1:{free_port()}/mcp", connect_deadline=DEADLINE
    )
    with pytest.raises(MCPServerError) as failed:
        await client.connect()
    await client.aclose()
    assert failed.value.kind in ("connect", "timeout") and "MCP server 'nobody'" in str(
        failed.value
    )
