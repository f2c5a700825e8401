"""`MCPClient`: one MCP server (stdio or streamable HTTP), every request under a deadline.

The peers' users hit `initialize` hanging forever when the server process exits, calls
without a read timeout, and cancel-scope errors masking the real failure and breaking
later calls. So here:

- each connection lives in a task of its own, which enters and leaves the SDK's
  transport and `ClientSession` (anyio cancel scopes must be left by the task that
  entered them); callers only send requests on it, from any task;
- every request (the handshake included) has a deadline; a request past it is
  abandoned (the SDK sends ``notifications/cancelled``) and, on stdio, the process is
  recycled: the next call starts a fresh one, so a wedged server costs one call;
- a server that exits or closes its output ends its stdout, which the SDK turns into
  "connection closed" at once (no poll, no wait for the deadline); a line on stdout
  that is not JSON-RPC fails the calls in flight at once;
- whatever goes wrong becomes one `MCPServerError` naming the server and the tool,
  with a `kind`; a tool turns it into an error result for the model.

The server's tool list is read at connect time; its hash (`list_hash`) goes into the
agent's definition through each tool's `fingerprint` (see `pilothouse.mcp.toolset`),
and a recycled connection whose list changed refuses every call (``changed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pilothouse.exceptions import MCPServerError

if TYPE_CHECKING:
    from mcp import ClientSession
    from mcp import types as mcp_types

    from pilothouse.tools.tool import Effect, Tool

logger = logging.getLogger("pilothouse.mcp")

DEFAULT_DEADLINE = 30.0
DEFAULT_CONNECT_DEADLINE = 15.0
DEFAULT_MAX_RESULT_CHARS = 16_000
CLOSE_TIMEOUT = 10.0  # seconds `aclose` waits for connections to shut down


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """A finished `tools/call`: its text for the model and whether the server said error."""

    text: str
    is_error: bool


def _import_sdk() -> Any:
    try:
        import mcp
    except ImportError as exc:  # pragma: no cover - the extra is installed in dev
        from pilothouse.exceptions import ConfigurationError

        raise ConfigurationError(
            "pilothouse.mcp needs the official MCP SDK: pip install 'pilothouse[mcp]'"
        ) from exc
    return mcp


def list_hash(tools: Sequence[mcp_types.Tool]) -> str:
    """A stable hash of a server's tool list: names, descriptions, schemas, annotations.

    Order-independent; `_meta` and icons are left out (they tell a model nothing)."""
    entries = []
    for t in sorted(tools, key=lambda t: t.name):
        entry = t.model_dump(mode="json", by_alias=True, exclude_none=True)
        entry.pop("_meta", None)
        entry.pop("icons", None)
        entries.append(entry)
    text = json.dumps(entries, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _unwrap(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups: the cause, not the noise."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


class _Connection:
    """One live session to the server, owned by its own task (see the module doc)."""

    def __init__(self, client: MCPClient) -> None:
        self.client = client
        self.session: ClientSession | None = None
        self.tools: list[mcp_types.Tool] = []
        self.ready = asyncio.Event()  # connected, or failed (then `failure` says why)
        self.closing = asyncio.Event()  # asked to close
        self.broken = asyncio.Event()  # the transport failed (garbage, closed, ...)
        self.broken_reason = ""  # set for a protocol violation
        self.ended = False  # the server's output ended (it exited or closed it)
        self.failure: BaseException | None = None
        self.inflight: set[asyncio.Task[Any]] = set()  # tasks waiting on a call
        self.interrupted: set[asyncio.Task[Any]] = set()  # ... cancelled by a broken protocol
        self.http_status: int | None = None
        self.task = asyncio.create_task(self._run(), name=f"mcp:{client.name}")

    async def _run(self) -> None:
        mcp = _import_sdk()
        import anyio

        try:
            async with self.client._open_transport(self) as (read, write):
                session = mcp.ClientSession(
                    _Watched(read, self),
                    write,
                    message_handler=self._on_message,
                    client_info=mcp.types.Implementation(name="pilothouse", version="1"),
                )
                async with session:
                    with anyio.fail_after(self.client.connect_deadline):
                        await session.initialize()
                        self.tools = await _list_all(session)
                    self.session = session
                    self.ready.set()
                    await self.closing.wait()
        except BaseException as exc:
            self.failure = _unwrap(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self.session = None
            self.ended = True
            self.broken.set()
            self.ready.set()

    async def _on_message(self, message: Any) -> None:
        """The SDK hands transport errors here. On stdio that is a line of the server's
        output that is not JSON-RPC: the stream can no longer be trusted, the calls in
        flight fail at once. Over HTTP each request has its own response, so an error
        of one stream (an SSE parse error, a GET stream refused) is logged and the
        requests' own answers and deadlines decide."""
        if not isinstance(message, Exception):
            return
        if self.client.transport != "stdio":
            logger.warning("MCP server %r: transport error: %r", self.client.name, message)
            return
        self.broken_reason = "it wrote a line that is not JSON-RPC to its output"
        logger.warning("MCP server %r: %s", self.client.name, self.broken_reason)
        self.broken.set()
        for task in self.inflight:  # their answers can no longer be trusted to come
            self.interrupted.add(task)
            task.cancel()

    def end(self) -> None:
        """The server's output ended: requests in flight get "connection closed" from
        the SDK; an idle connection is marked so the next call starts a new one."""
        self.ended = True
        self.broken.set()

    def close(self) -> None:
        """Ask the owner task to leave the session (it stops a stdio process, bounded)."""
        self.closing.set()


class _Watched:
    """The transport's read stream, seen through: its end marks the connection at once,
    idle or not (the session alone tells only the requests in flight). No extra task
    or hop per message."""

    def __init__(self, stream: Any, conn: _Connection) -> None:
        self._stream = stream
        self._conn = conn

    async def receive(self) -> Any:
        import anyio

        try:
            return await self._stream.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._conn.end()
            raise

    def __aiter__(self) -> _Watched:
        return self

    async def __anext__(self) -> Any:
        import anyio

        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def __aenter__(self) -> _Watched:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __getattr__(self, name: str) -> Any:  # e.g. `last_context`, read with getattr
        return getattr(self._stream, name)


async def _list_all(session: ClientSession) -> list[mcp_types.Tool]:
    """Every page of `tools/list` (bounded: a server paging forever is an error)."""
    from mcp import types

    tools: list[mcp_types.Tool] = []
    cursor: str | None = None
    for _ in range(1000):
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        result = await session.list_tools(params=params)
        tools.extend(result.tools)
        cursor = result.next_cursor
        if not cursor:
            return tools
    raise RuntimeError("tools/list returned more than 1000 pages")


class MCPClient:
    """A connection to one MCP server whose tools become Pilothouse tools.

        async with MCPClient.stdio("notes", "python", ["notes_server.py"]) as notes:
            agent = Agent(model, tools=await notes.tools(), policy=...)

    `deadline` bounds each tool call (seconds; `deadlines` per tool name overrides it),
    `connect_deadline` the start and handshake. `effects` overrides the effect kind
    the server's annotations imply, per tool (a server's annotations are its claim:
    for a server you do not trust, say what its tools do). `include` keeps only the
    named tools. `max_result_chars` caps what the model reads of a result (head and
    tail kept; the whole result is journaled).
    """

    def __init__(
        self,
        name: str,
        *,
        stdio: tuple[str, Sequence[str], Mapping[str, str] | None, str | Path | None] | None = None,
        url: str | None = None,
        headers: Mapping[str, str] | None = None,
        deadline: float = DEFAULT_DEADLINE,
        deadlines: Mapping[str, float] | None = None,
        connect_deadline: float = DEFAULT_CONNECT_DEADLINE,
        effects: Mapping[str, Effect] | None = None,
        include: Sequence[str] | None = None,
        max_result_chars: int = DEFAULT_MAX_RESULT_CHARS,
    ) -> None:
        if (stdio is None) == (url is None):
            from pilothouse.exceptions import ConfigurationError

            raise ConfigurationError("MCPClient needs exactly one of stdio=... or url=...")
        if deadline <= 0 or connect_deadline <= 0:
            from pilothouse.exceptions import ConfigurationError

            raise ConfigurationError("MCP deadlines must be positive seconds")
        if max_result_chars < 1:
            from pilothouse.exceptions import ConfigurationError

            raise ConfigurationError("max_result_chars must be at least 1")
        self.name = name
        self._stdio = stdio
        self.url = url
        self._headers = dict(headers or {})
        self.deadline = deadline
        self.deadlines = dict(deadlines or {})
        self.connect_deadline = connect_deadline
        self.effects: dict[str, Effect] = dict(effects or {})
        self.include = None if include is None else tuple(include)
        self.max_result_chars = max_result_chars
        self._conn: _Connection | None = None
        self._lock = asyncio.Lock()
        self._retired: set[asyncio.Task[None]] = set()
        self._listing: list[mcp_types.Tool] | None = None
        self.list_hash: str | None = None
        self.recycled = 0  # how many times a connection was replaced (for tests and traces)

    @classmethod
    def stdio(
        cls,
        name: str,
        command: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        **options: Any,
    ) -> MCPClient:
        """A server run as a subprocess speaking MCP on its stdin/stdout.

        `env` is added to the SDK's safe default environment (PATH, HOME, ...): the
        server does not inherit your API keys unless you pass them."""
        return cls(name, stdio=(command, tuple(args), env, cwd), **options)

    @classmethod
    def http(
        cls, name: str, url: str, *, headers: Mapping[str, str] | None = None, **options: Any
    ) -> MCPClient:
        """A server reached over streamable HTTP at `url` (e.g. http://127.0.0.1:8000/mcp)."""
        return cls(name, url=url, headers=headers, **options)

    @property
    def connected(self) -> bool:
        """Whether a live connection is up: False as soon as a stdio server exits or
        closes its output (its end of stream is seen at once, idle or not; the next call
        starts a new process) and after a failure that recycles the connection."""
        return self._conn is not None and not self._conn.broken.is_set()

    async def wait_disconnected(self) -> None:
        """Until the current connection ends (the server exited, closed its output, or
        broke the protocol); at once if there is none."""
        if self._conn is not None:
            await self._conn.broken.wait()

    @property
    def transport(self) -> str:
        return "stdio" if self._stdio is not None else "http"

    # --- lifecycle ---------------------------------------------------------------

    async def __aenter__(self) -> MCPClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def connect(self) -> None:
        """Start the server (stdio) or open the session (HTTP), handshake, list its tools.

        Raises `MCPServerError` (kind ``connect``, ``timeout``, ``closed``, ...) within
        `connect_deadline` (+1 s), never hangs."""
        async with self._lock:
            conn = await self._ensure(None, self.connect_deadline)
        if self._listing is None:
            self._listing = conn.tools
            self.list_hash = list_hash(conn.tools)

    async def aclose(self) -> None:
        """Close the connection; a stdio server is stopped (stdin closed, then signals)."""
        if self._conn is not None:
            self._retire(self._conn)
            self._conn = None
        if not self._retired:
            return
        # A stdio server gets the SDK's shutdown (stdin closed, 2 s, SIGTERM, 2 s, SIGKILL);
        # an HTTP session its DELETE. Bounded: a peer that never answers is left behind.
        _, pending = await asyncio.wait(set(self._retired), timeout=CLOSE_TIMEOUT)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)

    def _retire(self, conn: _Connection) -> None:
        conn.close()
        if not conn.task.done():
            self._retired.add(conn.task)
            conn.task.add_done_callback(self._retired.discard)

    @contextlib.asynccontextmanager
    async def _open_transport(self, conn: _Connection) -> AsyncIterator[Any]:
        """The SDK's transport streams, stdio or streamable HTTP."""
        if self._stdio is not None:
            from mcp.client.stdio import StdioServerParameters, stdio_client

            command, args, env, cwd = self._stdio
            params = StdioServerParameters(
                command=command, args=list(args), env=dict(env) if env else None, cwd=cwd
            )
            async with stdio_client(params, errlog=_errlog()) as streams:
                yield streams
        else:
            from mcp.client.streamable_http import streamable_http_client
            from mcp.shared._httpx_utils import create_mcp_http_client

            async def note_status(response: Any) -> None:
                if response.status_code >= 400:
                    conn.http_status = response.status_code

            client = create_mcp_http_client(headers=self._headers or None)
            client.event_hooks["response"].append(note_status)
            async with client:
                assert self.url is not None
                async with streamable_http_client(self.url, http_client=client) as streams:
                    yield streams

    async def _ensure(self, tool: str | None, budget: float) -> _Connection:
        """The live connection, starting one (a recycle) if there is none; under the lock."""
        conn = self._conn
        if conn is not None and not conn.broken.is_set():
            return conn
        if conn is not None:
            self._retire(conn)
            self._conn = None
            self.recycled += 1
        conn = _Connection(self)
        try:
            await asyncio.wait_for(conn.ready.wait(), budget + 0.5)
        except TimeoutError:
            self._retire(conn)
            raise self._error(
                tool,
                "timeout",
                f"did not finish starting (process and handshake) within {budget:g} s",
            ) from None
        if conn.failure is not None or conn.session is None:
            self._retire(conn)
            raise self._error(tool, *self._describe_failure(conn)) from None
        if self.list_hash is not None and list_hash(conn.tools) != self.list_hash:
            self._retire(conn)
            raise self._error(
                tool,
                "changed",
                f"its tool list changed since the tools were built (hash {self.list_hash} -> "
                f"{list_hash(conn.tools)}); refusing calls: rebuild the agent from the new list",
            )
        self._conn = conn
        return conn

    def _describe_failure(self, conn: _Connection) -> tuple[str, str]:
        """(kind, what happened) for a connection that failed or ended."""
        failure = conn.failure
        if conn.broken_reason:
            return "protocol", conn.broken_reason
        if conn.http_status is not None:
            return "http", f"answered HTTP {conn.http_status}"
        if isinstance(failure, TimeoutError):
            return "timeout", f"did not finish its handshake within {self.connect_deadline:g} s"
        code = getattr(getattr(failure, "error", None), "code", None)
        if failure is None or code == _CONNECTION_CLOSED:
            return "closed", "its connection ended (the server exited or closed its output)"
        if isinstance(failure, OSError):
            return "connect", f"could not be started or reached ({failure})"
        return "connect", f"failed to connect ({type(failure).__name__}: {failure})"

    def _error(self, tool: str | None, kind: str, what: str) -> MCPServerError:
        where = f"MCP server {self.name!r}" + (f" (tool {tool!r})" if tool else "")
        return MCPServerError(f"{where}: {what}", server=self.name, tool=tool, kind=kind)

    # --- the tool list -----------------------------------------------------------

    @property
    def listing(self) -> list[mcp_types.Tool]:
        """The server's tool list as read at connect time (call `connect` first)."""
        if self._listing is None:
            from pilothouse.exceptions import ConfigurationError

            raise ConfigurationError(
                f"MCP server {self.name!r} is not connected: use `async with` or connect()"
            )
        return list(self._listing)

    async def tools(self, *, prefix: str | None = None) -> list[Tool]:
        """This server's tools as Pilothouse tools (connecting first if needed).

        `prefix` namespaces their names (``prefix__tool``); `mcp_tools` does it for
        several servers. Names are sanitised to what every provider accepts; two
        tools that end up with one name raise `ToolDefinitionError`."""
        if self._listing is None:
            await self.connect()
        from pilothouse.mcp.toolset import build_tools

        return build_tools(self, prefix)

    # --- calls -------------------------------------------------------------------

    async def call(
        self, tool: str, arguments: Mapping[str, Any], *, deadline: float | None = None
    ) -> CallOutcome:
        """One `tools/call`, bounded by `deadline` (default: the tool's or the client's).

        A connection that has to be (re)started first is bounded by `connect_deadline`.
        Returns the server's answer (an ``isError`` answer too: the model reads it);
        raises `MCPServerError` for everything else, within the deadline (+1 s)."""
        budget = deadline or self.deadlines.get(tool, self.deadline)
        async with self._lock:  # a (re)connection has its own deadline: connect_deadline
            conn = await self._ensure(tool, self.connect_deadline)
        remaining = budget
        session = conn.session
        if session is None:
            raise self._error(tool, *self._describe_failure(conn))
        task = asyncio.current_task()
        assert task is not None
        conn.inflight.add(task)
        try:
            try:
                # the SDK's read timeout sends notifications/cancelled; ours is a backstop
                async with asyncio.timeout(remaining + 0.25):
                    result = await session.call_tool(
                        tool, dict(arguments), read_timeout_seconds=remaining
                    )
            finally:
                conn.inflight.discard(task)
        except asyncio.CancelledError:
            if task not in conn.interrupted:
                raise  # the caller's own cancellation
            conn.interrupted.discard(task)
            task.uncancel()
            self._recycle(conn)
            raise self._error(tool, *self._describe_failure(conn)) from None
        except TimeoutError:
            self._recycle_after_timeout(conn)
            raise self._error(
                tool, "timeout", f"no answer within {remaining:g} s (cancelled)"
            ) from None
        except Exception as exc:
            raise self._call_failure(conn, tool, _unwrap(exc), remaining) from None
        return _outcome(result)

    def _call_failure(
        self, conn: _Connection, tool: str, exc: BaseException, budget: float
    ) -> MCPServerError:
        code = getattr(getattr(exc, "error", None), "code", None)
        message = getattr(getattr(exc, "error", None), "message", None) or str(exc)
        if code == _REQUEST_TIMEOUT:
            self._recycle_after_timeout(conn)
            return self._error(tool, "timeout", f"no answer within {budget:g} s (cancelled)")
        if code == _CONNECTION_CLOSED:
            self._recycle(conn)
            if conn.broken_reason:
                return self._error(tool, "protocol", conn.broken_reason)
            return self._error(
                tool, "closed", "the connection closed during the call (the server exited?)"
            )
        if conn.http_status is not None and code == _INTERNAL_ERROR:
            status, conn.http_status = conn.http_status, None
            return self._error(tool, "http", f"answered HTTP {status} ({message})")
        if isinstance(exc, asyncio.CancelledError):
            raise exc
        if code is not None:
            return self._error(tool, "error", f"answered with error {code}: {message}")
        return self._error(tool, "error", f"failed: {type(exc).__name__}: {exc}")

    def _recycle(self, conn: _Connection) -> None:
        """Drop a connection that failed; the next call starts a fresh one."""
        if self._conn is conn:
            self._conn = None
            self.recycled += 1
        self._retire(conn)

    def _recycle_after_timeout(self, conn: _Connection) -> None:
        """A stdio server that missed a deadline may be wedged: replace its process.
        Over HTTP the SDK abandoned the request's own POST; the session stays."""
        if self.transport == "stdio":
            self._recycle(conn)


_CONNECTION_CLOSED = -32000
_REQUEST_TIMEOUT = -32001
_INTERNAL_ERROR = -32603


def _init_codes() -> None:
    """Take the error codes from the SDK (they are constants of the protocol)."""
    global _CONNECTION_CLOSED, _REQUEST_TIMEOUT, _INTERNAL_ERROR
    try:
        import mcp_types
    except ImportError:  # pragma: no cover
        return
    _CONNECTION_CLOSED = mcp_types.CONNECTION_CLOSED
    _REQUEST_TIMEOUT = mcp_types.REQUEST_TIMEOUT
    _INTERNAL_ERROR = mcp_types.INTERNAL_ERROR


_init_codes()


def _errlog() -> Any:
    """Where a stdio server's stderr goes: ours, unless PILOTHOUSE_MCP_STDERR names a file."""
    import sys

    path = os.environ.get("PILOTHOUSE_MCP_STDERR")
    if path:
        return open(path, "a", encoding="utf-8")
    return sys.stderr


def _outcome(result: Any) -> CallOutcome:
    """A `CallToolResult` as text: text blocks joined, other blocks described, structured
    content as JSON when there is no text."""
    parts: list[str] = []
    for block in getattr(result, "content", None) or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            size = len(getattr(block, "data", "") or "") * 3 // 4
            parts.append(f"[{kind}: {getattr(block, 'mime_type', '?')}, about {size} bytes]")
        elif kind == "resource":
            resource = block.resource
            text = getattr(resource, "text", None)
            parts.append(text if text is not None else f"[resource {resource.uri}]")
        elif kind == "resource_link":
            parts.append(f"[resource link {block.uri}: {block.name}]")
        else:
            parts.append(f"[{kind or type(block).__name__} content]")
    structured = getattr(result, "structured_content", None)
    if not parts and structured is not None:
        parts.append(json.dumps(structured, ensure_ascii=False))
    return CallOutcome("\n".join(parts), bool(getattr(result, "is_error", False)))


CallFunction = Callable[[str, Mapping[str, Any]], Any]
