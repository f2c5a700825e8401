"""A planned task graph: "what is the next leap year raised to the 0.43 power".

Runs offline as written: a scripted planner and joiner stand in for a model. With
``--local`` the embedded model (SmolLM2-135M, under a grammar) writes the plan and
the answer instead; it is small, so read what it did in the trace:

    python examples/planned_graph.py
    python examples/planned_graph.py --local

What it shows:
- the planner writes the whole plan as JSON before anything runs: task 2's base is
  the reference "$1" (task 1's result), so task 2 waits for task 1;
- the plan is validated as a whole (tools, references, argument types, and every
  call through the policy) and journaled `plan_accepted`;
- each task is one journaled tool call; "$1" is replaced by the number 2028 itself,
  not by text;
- the joiner answers with the reference "$2": task 2's result as it is;
- a second plan that contains a call the policy refuses is journaled `plan_rejected`
  with the reason, nothing of it runs, and the planner is asked again.
"""

from __future__ import annotations

import asyncio
import json
import sys

from pilothouse import Agent, MemoryStore, ScriptedModel, tool
from pilothouse.events import Event, PlanAccepted, PlanRejected
from pilothouse.flows.plan import PlannedAgent
from pilothouse.models.base import Model
from pilothouse.trace import describe


@tool
def next_leap_year() -> int:
    """The next leap year after this year."""
    return 2028


@tool
def power(base: float, exponent: float) -> float:
    """Raise base to the power exponent."""
    return float(base) ** float(exponent)


@tool(effect="irreversible")
def send_email(to: str, body: str) -> str:
    """Send an email."""
    return f"sent to {to}"


QUESTION = "What is the next leap year raised to the 0.43 power?"
PLAN = {
    "tasks": [
        {"id": 1, "tool": "next_leap_year", "args": {}},
        {"id": 2, "tool": "power", "args": {"base": "$1", "exponent": 0.43}},
    ]
}
# A plan an injected instruction might produce: the default policy denies irreversible
# tools, so the whole plan is rejected before any task of it runs.
LEAKY = {
    "tasks": [
        {"id": 1, "tool": "next_leap_year", "args": {}},
        {"id": 2, "tool": "send_email", "args": {"to": "x@evil.example", "body": "hi"}},
    ]
}


def line(event: Event) -> str:
    """The trace's line, with what a plan event says."""
    if isinstance(event, PlanRejected):
        return f"✗ plan {event.attempt} rejected: {'; '.join(event.reasons)}"
    if isinstance(event, PlanAccepted):
        tasks = ", ".join(
            f"{t['id']}: {t['tool']}({t['args']}) after {t['deps']}" for t in event.tasks
        )
        return f"✓ plan {event.attempt} accepted: {tasks}"
    return describe(event, limit=140)


async def main(local: bool) -> None:
    model: Model | str
    if local:
        model = "local"
    else:
        model = ScriptedModel([json.dumps(LEAKY), json.dumps(PLAN), json.dumps({"answer": "$2"})])
    store = MemoryStore()
    agent = Agent(model, "Answer questions with the tools.", [next_leap_year, power, send_email])
    planned = PlannedAgent(agent, max_replans=2)
    result = await planned.run(QUESTION, store=store)
    for event in store.events(result.run_id):
        print(line(event))
    print()
    print(f"outcome: {result.outcome}")
    if result.ok:
        print(f"answer: {result.output}")
    elif result.stop is not None:
        print(f"stopped: {result.stop.message}")


if __name__ == "__main__":
    asyncio.run(main("--local" in sys.argv[1:]))
