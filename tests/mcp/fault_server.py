"""An MCP server (the SDK's `MCPServer`) that misbehaves on demand, for the fault suite.

Run as ``python fault_server.py [stdio|http PORT]``. Its tools: `echo` (read-only),
`add` (idempotent), `write_note` (no annotations: side-effecting), `wipe`
(destructive), `big` (a result of N characters), `sleep` (never answers in time),
`exit_now` (the process dies mid-call), `garbage` (a line that is not JSON-RPC on
stdout), `half_close` (closes its stdout and stays alive), `progress` (reports
progress). Faults act on the real process and its real pipes, not on a mock.
"""

from __future__ import annotations

import os
import sys
import time

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("faulty")
NOTES: list[str] = []


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def echo(text: str) -> str:
    """Return the text as given."""
    return text


@server.tool(annotations=ToolAnnotations(read_only_hint=False, idempotent_hint=True))
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def write_note(text: str) -> str:
    """Store a note."""
    NOTES.append(text)
    return f"stored note {len(NOTES)}"


@server.tool(annotations=ToolAnnotations(destructive_hint=True))
def wipe() -> str:
    """Delete every note."""
    NOTES.clear()
    return "wiped"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def big(n: int) -> str:
    """A result of n characters: 'A' * n, with markers at both ends."""
    return "<start>" + "A" * max(0, n - 14) + "<end>.."


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
async def sleep(seconds: float) -> str:
    """Sleep, then answer."""
    await anyio.sleep(seconds)
    return "slept"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def exit_now() -> str:
    """The process exits in the middle of the call."""
    os._exit(3)


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def garbage() -> str:
    """Write a line that is not JSON-RPC to the real stdout, then never answer."""
    os.write(_wire(), b"this is not JSON-RPC\n")
    time.sleep(3600)
    return "unreachable"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def half_close() -> str:
    """Close the process's output and stay alive."""
    os.close(_wire())
    time.sleep(3600)
    return "unreachable"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
async def progress(steps: int, ctx: Context) -> str:
    """Report progress `steps` times."""
    for i in range(steps):
        await ctx.report_progress(i + 1, steps)
    return f"{steps} steps"


_STDOUT = os.fstat(1)  # the pipe to the client, before the SDK moves it off fd 1


def _wire() -> int:
    """The fd the SDK now writes protocol messages on: its private duplicate of stdout."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if fd > 2 and (st.st_dev, st.st_ino) == (_STDOUT.st_dev, _STDOUT.st_ino):
            return fd
    raise RuntimeError("the protocol's fd was not found")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run("stdio")
