"""`pilothouse mcp serve` driven by the official MCP client (the SDK's ClientSession)."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

pytest.importorskip("mcp", reason="the mcp extra is not installed: pip install 'pilothouse[mcp]'")
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_servers import free_port, start_http, stop  # type: ignore[import-not-found]

from pilothouse import Agent, ScriptedModel, tool
from pilothouse.exceptions import ConfigurationError
from pilothouse.mcp import build_server

ROOT = Path(__file__).resolve().parents[2]
SRC = str(ROOT / "src")
SERVE = [sys.executable, "-m", "pilothouse.cli", "mcp", "serve", "tests.mcp.served:everything"]


def env(store: Path) -> dict[str, str]:
    path = os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "SERVED_STORE": str(store)}


@asynccontextmanager
async def stdio_session(store: Path) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=SERVE[0], args=SERVE[1:], env=env(store), cwd=ROOT)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        with anyio.fail_after(60):
            await session.initialize()
        yield session


def text(result: Any) -> str:
    return "".join(block.text for block in result.content)


async def test_tools_and_an_agent_are_listed_with_their_effects(tmp_path: Path) -> None:
    async with stdio_session(tmp_path / "j.db") as session:
        listed = {t.name: t for t in (await session.list_tools()).tools}
    assert set(listed) == {"helper", "lookup", "run_status"}
    assert listed["helper"].input_schema["required"] == ["input"]
    assert "helper" in (listed["helper"].description or "")
    assert listed["lookup"].annotations is not None and listed["lookup"].annotations.read_only_hint
    assert listed["lookup"].input_schema["properties"]["key"]["type"] == "string"


async def test_an_agent_answers_as_one_tool_with_progress_per_step(tmp_path: Path) -> None:
    progress: list[tuple[float, str]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, message or ""))

    async with stdio_session(tmp_path / "j.db") as session:
        with anyio.fail_after(60):
            result = await session.call_tool(
                "helper", {"input": "alpha"}, progress_callback=on_progress
            )
            plain = await session.call_tool("lookup", {"key": "omega"})
    assert not result.is_error and text(result) == "answer: the first letter"
    run_id = (result.meta or {})["pilothouse/run_id"]
    assert [(v, m.split(" (run")[0]) for v, m in progress] == [
        (1.0, "step 1: calling lookup"),
        (2.0, "step 2: answered"),
    ]
    assert all(m.endswith(f"(run {run_id})") for _, m in progress)
    assert text(plain) == "the last letter"


async def test_a_cancelled_call_cancels_the_run_and_the_journal_says_so(tmp_path: Path) -> None:
    blocked = anyio.Event()
    run_ids: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        if message and "calling block" in message:
            run_ids.append(message.rsplit("(run ", 1)[1].rstrip(")"))
            blocked.set()

    async with stdio_session(tmp_path / "j.db") as session:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:

                async def ask() -> None:
                    await session.call_tool(
                        "helper", {"input": "block"}, progress_callback=on_progress
                    )

                group.start_soon(ask)
                await blocked.wait()
                group.cancel_scope.cancel()  # the SDK sends notifications/cancelled
            status = await session.call_tool("run_status", {"run_id": run_ids[0]})
    assert text(status) == "interrupted"  # journaled as cancelled: resumable, not lost


async def test_an_unknown_tool_or_bad_arguments_are_error_results(tmp_path: Path) -> None:
    async with stdio_session(tmp_path / "j.db") as session:
        unknown = await session.call_tool("nope", {})
        not_text = await session.call_tool("helper", {"input": 5})
        bad_key = await session.call_tool("lookup", {"key": ["a"], "extra": 1})
    assert unknown.is_error and "Unknown tool 'nope'" in text(unknown)
    assert not_text.is_error and "`input` must be a string" in text(not_text)
    assert bad_key.is_error and "Invalid arguments for tool 'lookup'" in text(bad_key)


async def test_serving_over_streamable_http(tmp_path: Path) -> None:
    port = free_port()
    process = start_http(
        [*SERVE, "--http", str(port)], port, env=os.environ | env(tmp_path / "j.db")
    )
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        async with (
            streamable_http_client(url) as (read, write),
            ClientSession(read, write) as session,
        ):
            with anyio.fail_after(60):
                await session.initialize()
                result = await session.call_tool("helper", {"input": "omega"})
    finally:
        stop(process)
    assert text(result) == "answer: the last letter"


def test_two_entries_of_one_name_are_refused_before_serving() -> None:
    @tool
    def helper(x: str) -> str:
        """A tool named like the agent."""
        return x

    agent = Agent(ScriptedModel(["x"]), name="helper", store=":memory:")
    with pytest.raises(ConfigurationError, match="'helper'"):
        build_server([agent, helper])
    with pytest.raises(ConfigurationError, match="cannot serve int"):
        build_server(3)


def test_the_cli_refuses_a_bad_spec(cli: Any) -> None:
    result = cli("mcp", "serve", "no_such_module_xyz:thing")
    assert result.returncode == 1 and "cannot import" in result.stderr
