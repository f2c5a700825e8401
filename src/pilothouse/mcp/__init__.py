"""MCP both ways, with the official `mcp` SDK (extra ``mcp``).

As a client (`MCPClient`, `mcp_tools`): an MCP server's tools, over stdio or streamable
HTTP, become Pilothouse tools that pass the policy and the journal like any other,
every request under a deadline. As a server (`pilothouse mcp serve module:attr`,
`serve_stdio`, `serve_http`): Pilothouse tools and agents offered to any MCP client,
an agent as one tool with progress per step. See docs/mcp.md.

Nothing here is imported by ``import pilothouse``; the SDK loads with the first use.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pilothouse.mcp.client import MCPClient
    from pilothouse.mcp.server import build_server, serve_http, serve_stdio
    from pilothouse.mcp.toolset import MCPTool, mcp_tools

__all__ = ["MCPClient", "MCPTool", "build_server", "mcp_tools", "serve_http", "serve_stdio"]


def __getattr__(name: str) -> Any:
    if name == "MCPClient":
        from pilothouse.mcp.client import MCPClient

        return MCPClient
    if name in ("MCPTool", "mcp_tools"):
        from pilothouse.mcp import toolset

        return getattr(toolset, name)
    if name in ("build_server", "serve_http", "serve_stdio"):
        from pilothouse.mcp import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
