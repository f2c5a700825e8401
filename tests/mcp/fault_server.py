"""An MCP server (the SDK's `MCPServer`) that misbehaves on demand, for the fault suite.

Run as ``python fault_server.py [stdio|http PORT]``. Its tools: `echo` (read-only),
`add` (idempotent), `write_note` (no annotations: side-effecting), `wipe`
(destructive), `big` (a result of N characters), `sleep` (never answers in time),
`exit_now` (the process dies mid-call), `garbage` (a line that is not JSON-RPC on
stdout), `half_close` (closes its stdout and stays alive), `progress` (reports
progress). Faults act on the real process and its real pipes, not on a mock.
"""

from __future__ import annotations

import json
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


def _mark(path: str) -> None:
    with open(path, "w") as handle:
        handle.write("cancelled")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
async def sleep(seconds: float, marker: str = "") -> str:
    """Sleep, then answer; a cancelled sleep writes "cancelled" to `marker` (a path)."""
    try:
        await anyio.sleep(seconds)
    except anyio.get_cancelled_exc_class():
        if marker:
            _mark(marker)
        raise
    return "slept"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def exit_now() -> str:
    """The process exits in the middle of the call."""
    os._exit(3)


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def exit_when(path: str) -> str:
    """Answer, then the process exits once `path` exists (the client is idle by then)."""
    import threading

    def leave() -> None:
        while not os.path.exists(path):
            time.sleep(0.02)
        os._exit(0)

    threading.Thread(target=leave, daemon=True).start()
    return "armed"


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


if os.environ.get("FAULT_VARIANT_FILE") and os.path.exists(os.environ["FAULT_VARIANT_FILE"]):

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def extra() -> str:
        """A tool this server did not list before (its tool list changed)."""
        return "new"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def bad_gateway() -> str:
    """Over HTTP, a proxy in front answers this call with 502 Bad Gateway."""
    return "not over HTTP"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def half_close_http() -> str:
    """Over HTTP, the response stream opens and ends without an answer."""
    return "not over HTTP"


def _faulty_http_app() -> object:
    """The SDK's streamable HTTP app behind a misbehaving front: 502 for `bad_gateway`,
    an event stream that ends without a message for `half_close_http`."""
    app = server.streamable_http_app(host="127.0.0.1")

    async def front(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        if scope["type"] != "http" or scope["method"] != "POST":
            return await app(scope, receive, send)  # type: ignore[operator]
        messages = []
        body = b""
        while True:
            message = await receive()  # type: ignore[operator]
            messages.append(message)
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            name = json.loads(body).get("params", {}).get("name")
        except ValueError:
            name = None
        if name == "bad_gateway":
            await send(
                {
                    "type": "http.response.start",
                    "status": 502,  # type: ignore[operator]
                    "headers": [(b"content-type", b"text/html")],
                }
            )
            await send({"type": "http.response.body", "body": b"<h1>502 Bad Gateway</h1>"})  # type: ignore[operator]
            return None
        if name == "half_close_http":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,  # type: ignore[operator]
                    "headers": [(b"content-type", b"text/event-stream")],
                }
            )
            await send({"type": "http.response.body", "body": b"", "more_body": False})  # type: ignore[operator]
            return None
        pending = iter(messages)

        async def replay() -> object:
            try:
                return next(pending)
            except StopIteration:
                return await receive()  # type: ignore[operator]

        return await app(scope, replay, send)  # type: ignore[operator]

    return front


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "http":
        import uvicorn

        uvicorn.run(
            _faulty_http_app(), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning"
        )
    else:
        server.run("stdio")
