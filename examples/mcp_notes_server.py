"""A small MCP server (the official SDK's `MCPServer`, formerly FastMCP): notes in a file.

    python examples/mcp_notes_server.py            # stdio: an MCP client starts it
    python examples/mcp_notes_server.py --http 8765  # streamable HTTP on 127.0.0.1:8765/mcp

Its tools say what they do through MCP's annotations, which Pilothouse turns into
effect kinds: `list_notes` is read-only, `add_note` changes the file (idempotent: the
same note twice is stored once), `clear_notes` is destructive. `notes_file` is where
the notes live (NOTES_FILE, default ./notes.txt).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("notes")
NOTES = Path(os.environ.get("NOTES_FILE", "notes.txt"))


def _read() -> list[str]:
    return NOTES.read_text("utf-8").splitlines() if NOTES.exists() else []


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def list_notes(contains: str = "") -> str:
    """List the stored notes, optionally only those containing a word."""
    notes = [n for n in _read() if contains.lower() in n.lower()]
    return "\n".join(f"- {n}" for n in notes) or "(no notes)"


@server.tool(annotations=ToolAnnotations(read_only_hint=False, idempotent_hint=True))
def add_note(text: str) -> str:
    """Store a note (a note already stored is not stored twice)."""
    notes = _read()
    if text not in notes:
        NOTES.write_text("\n".join([*notes, text]) + "\n", "utf-8")
    return f"stored: {text}"


@server.tool(annotations=ToolAnnotations(destructive_hint=True))
def clear_notes() -> str:
    """Delete every note."""
    NOTES.write_text("", "utf-8")
    return "all notes deleted"


if __name__ == "__main__":
    if "--http" in sys.argv:
        port = int(sys.argv[sys.argv.index("--http") + 1])
        server.run("streamable-http", host="127.0.0.1", port=port)
    else:
        server.run("stdio")
