"""An MCP server's tools as Pilothouse `Tool`s: policy, journal and resume like any other.

- **Effect kinds** come from the tool's annotations: ``readOnlyHint`` -> ``read_only``,
  ``destructiveHint`` -> ``irreversible``, anything else (no annotations included)
  -> ``side_effect``: fail-closed, so the default policy denies an unannotated tool.
  ``idempotentHint`` makes a call cut off by a crash safe to run again
  (``on_doubt="retry"``); otherwise resume asks. `MCPClient(effects=...)` overrides.
- **Names** are sanitised to ``[A-Za-z0-9_-]{1,64}`` (what every provider accepts) and,
  for several servers, namespaced ``server__tool``. Two tools that end up with one
  name are a `ToolDefinitionError` when the tools are built, never a silent shadow.
- **Results** longer than the client's `max_result_chars` reach the model as head and
  tail around a marker (prompt ``mcp_result_capped``); the whole text is journaled
  (`ToolResult.full`).
- **The definition**: each tool's `fingerprint` is its server's tool-list hash, which
  `Agent` puts into the definition hash: a run started against one list is refused on
  resume against a changed one ("rug pull").
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from pilothouse.exceptions import MCPServerError, ToolDefinitionError
from pilothouse.jsonschema_check import compile_schema
from pilothouse.messages import ToolCall, ToolResult
from pilothouse.prompts import Prompts
from pilothouse.tools.tool import Effect, OnDoubt, Tool, ToolArgumentError, ToolContext

if TYPE_CHECKING:
    from mcp import types as mcp_types


class MCPClient(Protocol):
    """What a tool needs of its server's client (`pilothouse.mcp.client.MCPClient`)."""

    @property
    def name(self) -> str: ...

    @property
    def list_hash(self) -> str | None: ...

    @property
    def effects(self) -> Mapping[str, Effect]: ...

    @property
    def include(self) -> tuple[str, ...] | None: ...

    @property
    def max_result_chars(self) -> int: ...

    @property
    def listing(self) -> list[mcp_types.Tool]: ...

    async def call(
        self, tool: str, arguments: Mapping[str, Any], *, deadline: float | None = None
    ) -> Any: ...

    async def tools(self, *, prefix: str | None = None) -> list[Tool]: ...


logger = logging.getLogger("pilothouse.mcp")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_MAX_NAME = 64


def sanitise(name: str) -> str:
    """A tool name every provider accepts: ``[A-Za-z0-9_-]``, starting with a letter or
    ``_``, at most 64 characters (a long one keeps a hash of the original, so two long
    names stay apart)."""
    safe = _UNSAFE.sub("_", name) or "_"
    if not (safe[0].isalpha() or safe[0] == "_"):
        safe = "_" + safe
    if len(safe) > _MAX_NAME:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        safe = f"{safe[: _MAX_NAME - 9]}_{digest}"
    return safe


def effect_of(tool: mcp_types.Tool) -> tuple[Effect, OnDoubt]:
    """The effect kind and in-doubt handling a tool's annotations imply (fail-closed)."""
    hints = tool.annotations
    idempotent = bool(hints is not None and hints.idempotent_hint)
    if hints is not None and hints.read_only_hint:
        return "read_only", "retry"
    if hints is not None and hints.destructive_hint:
        return "irreversible", "retry" if idempotent else "ask"
    return "side_effect", "retry" if idempotent else "ask"


def cap(text: str, limit: int, prompts: Prompts | None = None) -> str:
    """`text` if it fits in `limit` characters, else its head and tail around a marker."""
    if len(text) <= limit:
        return text
    keep = max(limit, 2)
    head, tail = keep - keep // 3, keep // 3
    marker = (prompts or Prompts.default()).render(
        "mcp_result_capped", omitted=len(text) - head - tail, total=len(text)
    )
    return f"{text[:head]}\n{marker.strip()}\n{text[len(text) - tail :]}"


class MCPTool(Tool):
    """One tool of an MCP server; `invoke` calls it through its `MCPClient`."""

    __slots__ = ("_check", "client", "fingerprint", "remote_name")

    def __init__(
        self,
        client: MCPClient,
        remote: mcp_types.Tool,
        name: str,
        *,
        effect: Effect,
        on_doubt: OnDoubt,
        fingerprint: str,
    ) -> None:
        self.client = client
        self.remote_name = remote.name
        self.fingerprint = fingerprint
        parameters = dict(remote.input_schema or {"type": "object", "properties": {}})
        parameters.pop("$schema", None)  # some providers refuse it; it tells a model nothing
        try:
            self._check = compile_schema(parameters)
        except Exception as exc:
            # A schema beyond our validator's subset: the server still checks its own
            # arguments; we check only that they are an object, and say so once.
            logger.warning(
                "MCP server %r tool %r: its input schema is not checked here (%s)",
                client.name,
                remote.name,
                exc,
            )
            self._check = compile_schema({"type": "object"})
        # Tool's own fields (its __init__ builds them from a Python signature)
        self.function = self._run
        self.name = name
        self.description = remote.description or remote.title or ""
        self.title = remote.title
        self.effect = effect
        self.on_doubt = on_doubt
        self.reconcile = None
        self.interrupt = None
        self.blocking = False
        self.is_async = True
        self._context_param = None
        self._validator = None
        self.parameters = parameters

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Check the model's arguments against the server's input schema."""
        problem = self._check(arguments)
        if problem is not None:
            raise ToolArgumentError(f"Invalid arguments for tool {self.name!r}: {problem}")
        return dict(arguments)

    async def _run(self, **arguments: Any) -> str:
        """Plain-Python call (`tool(**args)`): the text, or `MCPServerError`."""
        outcome = await self.client.call(self.remote_name, arguments)
        if outcome.is_error:
            raise MCPServerError(
                self._error_text(outcome.text),
                server=self.client.name,
                tool=self.remote_name,
                kind="error",
            )
        return str(outcome.text)

    def _error_text(self, text: str) -> str:
        return (
            f"MCP server {self.client.name!r} (tool {self.remote_name!r}) returned an error: {text}"
        )

    async def invoke(
        self, call: ToolCall, kwargs: dict[str, Any], context: ToolContext
    ) -> ToolResult:
        try:
            outcome = await self.client.call(self.remote_name, kwargs)
        except MCPServerError as exc:
            return ToolResult(call.id, self.name, str(exc), True)
        text = self._error_text(outcome.text) if outcome.is_error else outcome.text
        shown = cap(text, self.client.max_result_chars)
        return ToolResult(
            call.id, self.name, shown, outcome.is_error, None if shown is text else text
        )

    def __repr__(self) -> str:
        return f"MCPTool({self.name!r}, server={self.client.name!r}, effect={self.effect!r})"


def build_tools(client: MCPClient, prefix: str | None) -> list[Tool]:
    """The client's listed tools as `MCPTool`s (see the module doc for names and effects)."""
    assert client.list_hash is not None
    listing = client.listing
    names = {t.name for t in listing}
    unknown = sorted(set(client.effects) - names) + sorted(set(client.include or ()) - names)
    if unknown:
        raise ToolDefinitionError(
            f"MCP server {client.name!r} has no tool named {', '.join(map(repr, unknown))} "
            f"(it lists: {', '.join(sorted(names)) or 'nothing'})"
        )
    fingerprint = f"mcp:{client.name}:{client.list_hash}"
    tools: list[Tool] = []
    seen: dict[str, str] = {}
    for remote in listing:
        if client.include is not None and remote.name not in client.include:
            continue
        name = sanitise(f"{prefix}__{remote.name}" if prefix else remote.name)
        if name in seen:
            raise ToolDefinitionError(
                f"MCP server {client.name!r}: tools {seen[name]!r} and {remote.name!r} both "
                f"become {name!r}; keep one with include=[...]"
            )
        seen[name] = remote.name
        effect, on_doubt = effect_of(remote)
        override = client.effects.get(remote.name)
        if override is not None:
            effect = override
            on_doubt = "retry" if override == "read_only" else on_doubt
        tools.append(
            MCPTool(client, remote, name, effect=effect, on_doubt=on_doubt, fingerprint=fingerprint)
        )
    return tools


async def mcp_tools(*clients: MCPClient, namespace: bool | None = None) -> list[Tool]:
    """The tools of several MCP servers, namespaced ``server__tool`` (by default when
    there is more than one server), connecting each first if needed.

    A name two tools share after namespacing and sanitising (servers ``a.b`` and ``a_b``)
    raises `ToolDefinitionError` naming both: at build time, not on the first call."""
    if namespace is None:
        namespace = len(clients) > 1
    servers: dict[str, str] = {}
    for client in clients:
        key = sanitise(client.name)
        if namespace and key in servers:
            raise ToolDefinitionError(
                f"MCP servers {servers[key]!r} and {client.name!r} would share the "
                f"namespace {key!r}: give them distinct names"
            )
        servers[key] = client.name
    tools: list[Tool] = []
    owner: dict[str, str] = {}
    for client in clients:
        for t in await client.tools(prefix=sanitise(client.name) if namespace else None):
            if t.name in owner:
                raise ToolDefinitionError(
                    f"tool name {t.name!r} comes from MCP servers {owner[t.name]!r} and "
                    f"{client.name!r}: namespace them (mcp_tools(..., namespace=True))"
                )
            owner[t.name] = client.name
            tools.append(t)
    return tools
