"""An MCP tool call's overhead over a plain tool, on stdio and on streamable HTTP.

Run: `.venv/bin/python benchmarks/mcp_overhead.py [--calls N]`.

Workload: one `echo(text)` tool three ways: a plain Pilothouse `@tool`; the same
function served by the official SDK's `MCPServer` as a subprocess over stdio; and the
same server on loopback over streamable HTTP (uvicorn). Each call goes through
`Tool.prepare` + `Tool.invoke`, what the agent loop does per call (schema check,
the request, the result's text). Calls are sequential on a warm connection (the
first 20 are warm-up); each is timed on its own (perf_counter). Printed: p50 and
p90 per call, and the overhead over the plain tool (p50). A server process's start
(seconds: Python importing the SDK) is printed apart: it is paid once per
connection, and again when a stdio server is recycled after a fault.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pilothouse.mcp import MCPClient
from pilothouse.messages import ToolCall
from pilothouse.tools import Tool, ToolContext, tool

SERVER = '''
import sys
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("bench")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def echo(text: str) -> str:
    """Return the text."""
    return text


if len(sys.argv) > 1:
    server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
else:
    server.run("stdio")
'''


@tool
def echo(text: str) -> str:
    """Return the text."""
    return text


async def time_calls(t: Tool, calls: int) -> list[float]:
    context = ToolContext(run_id="bench", step=0, index=0)
    times: list[float] = []
    for i in range(calls + 20):
        call = ToolCall(f"c{i}", t.name, {"text": f"hello {i}"})
        began = time.perf_counter()
        prepared = t.prepare(call)
        assert isinstance(prepared, dict)
        result = await t.invoke(call, prepared, context)
        elapsed = time.perf_counter() - began
        assert result.content == f"hello {i}", result.content
        if i >= 20:
            times.append(elapsed)
    return times


def summary(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.9)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the HTTP server did not listen on {port} within {seconds} s")


def start_http_server(script: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(script), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def main(calls: int) -> None:
    rows: list[tuple[str, float, float]] = []
    plain = await time_calls(echo, calls)
    rows.append(("plain @tool", *summary(plain)))
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "bench_server.py"
        script.write_text(SERVER)

        began = time.perf_counter()
        async with MCPClient.stdio("bench", sys.executable, [str(script)]) as server:
            started = time.perf_counter() - began
            (t,) = await server.tools()
            rows.append(("MCP over stdio", *summary(await time_calls(t, calls))))

        port = free_port()
        process = start_http_server(script, port)
        try:
            wait_for_port(port)
            url = f"http://127.0.0.1:{port}/mcp"
            async with MCPClient.http("bench", url) as server:
                (t,) = await server.tools()
                rows.append(("MCP over HTTP", *summary(await time_calls(t, calls))))
        finally:
            process.terminate()
            process.wait(10)

    base = rows[0][1]
    print(f"{calls} sequential calls of echo(text) each, after 20 warm-up calls")
    print(f"{'':16} {'p50':>10} {'p90':>10} {'overhead (p50)':>16}")
    for name, p50, p90 in rows:
        extra = "" if name.startswith("plain") else f"{(p50 - base) * 1e3:13.3f} ms"
        print(f"{name:16} {p50 * 1e3:8.3f} ms {p90 * 1e3:8.3f} ms {extra:>16}")
    print(f"stdio server start and handshake (once per connection): {started:.2f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    asyncio.run(main(parser.parse_args().calls))
