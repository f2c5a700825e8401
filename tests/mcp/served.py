"""What the MCP server tests serve: `pilothouse mcp serve tests.mcp.served:everything`.

A deterministic agent (a `ScriptedModel` answering from the request: look the input up,
then answer with what the tool returned; ``block`` waits until cancelled), a plain
tool, and `run_status` to read the agent's journal from the client's side.
"""

from __future__ import annotations

import asyncio
import os

from pilothouse import Agent, ScriptedModel, call, tool
from pilothouse.models.base import ModelRequest
from pilothouse.models.scripted import Reply

FACTS = {"alpha": "the first letter", "omega": "the last letter"}


@tool
def lookup(key: str) -> str:
    """Look a key up in the table of facts."""
    return FACTS.get(key, "unknown")


@tool
async def block() -> str:
    """Wait until cancelled (for the cancellation test)."""
    await asyncio.Event().wait()
    return "never"


def reply(request: ModelRequest) -> Reply:
    results = [m for m in request.messages if m.role == "tool"]
    question = next(m.content for m in request.messages if m.role == "user")
    if results:
        return f"answer: {results[-1].content}"
    return call("block") if question == "block" else call("lookup", key=question)


agent = Agent(
    ScriptedModel(reply),
    "Answer from the table of facts.",
    tools=[lookup, block],
    name="helper",
    store=os.environ.get("SERVED_STORE", ":memory:"),
)


@tool
async def run_status(run_id: str) -> str:
    """The status of one of the agent's runs, once it is no longer running (10 s at most)."""
    for _ in range(500):
        status = agent.store.get_run(run_id).status
        if status != "running":
            return status
        await asyncio.sleep(0.02)
    return "running"


everything = [agent, lookup, run_status]
