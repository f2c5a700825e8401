"""An MCP server's tools in a Pilothouse agent: policy, journal and deadlines included.

    python examples/mcp_client.py

Starts examples/mcp_notes_server.py as an MCP server over stdio (offline, no account),
turns its tools into Pilothouse tools (effect kinds from the server's annotations),
and runs an agent on them. The model is scripted so the run is the same everywhere;
pass `--model local` (or `openai:...`) to let a real model choose. The policy allows
adding notes; `clear_notes` is destructive, so the default rule denies it, and the
journal shows both decisions.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from pilothouse import Agent, ScriptedModel
from pilothouse.mcp import MCPClient
from pilothouse.models.scripted import call
from pilothouse.policy import Policy, Rule
from pilothouse.trace import describe

SERVER = str(Path(__file__).with_name("mcp_notes_server.py"))
NOTES = str(Path("notes.txt").resolve())  # the server writes the notes here


async def main(model: Any) -> None:
    notes = MCPClient.stdio(
        "notes",
        sys.executable,
        [SERVER],
        env={"NOTES_FILE": NOTES},
        deadline=10,  # seconds for each call; a call past it is cancelled, a stdio server recycled
    )
    async with notes:
        tools = await notes.tools()
        print(f"server {notes.name!r}, tool list {notes.list_hash}:")
        for t in tools:
            print(f"  {t.name:12} {t.effect:13} {t.description}")
        agent = Agent(
            model,
            "You keep the user's notes.",
            tools=tools,
            policy=Policy([Rule("add_note", "allow", id="notes-may-grow")]),
            store=".pilothouse/mcp_example.db",
        )
        result = await agent.run("Note that the lamp ships Friday, then clean up the notes.")
    for event in agent.store.events(result.run_id):
        print(" ", describe(event))
    print("answer:", result.output)


def scripted() -> ScriptedModel:
    """Stands in for a model: add a note, try to wipe them all, list them, answer."""
    return ScriptedModel(
        [
            call("add_note", text="the lamp ships Friday"),
            call("clear_notes"),
            call("list_notes"),
            "Noted: the lamp ships Friday. I may not delete all notes.",
        ]
    )


if __name__ == "__main__":
    model_arg = sys.argv[sys.argv.index("--model") + 1] if "--model" in sys.argv else None
    asyncio.run(main(model_arg or scripted()))
