"""A research graph: fan-out and join, an agent node, a bounded revision cycle, and a
question for a person; journaled to the node, paused, answered and resumed.

Runs offline as written (a scripted model stands in for a real one; swap in
``"openai:gpt-4o-mini"`` or ``"local"``):

    python examples/flow_graph.py

What it shows:
- typed state with one reducer per key (`append`, `replace`, `add`);
- `map`: `research` runs once per topic, all at once; `write` joins them, once;
- `agent`: the writer is a child run of the flow's run, capped to the flow's budget;
- `route` with `max_visits`: the draft is revised until it is long enough, at most 3
  times;
- `ask`: the flow pauses for an editor while other branches finish; `resume` with
  the answer continues it, and no node that finished runs again;
- `mermaid()`: the graph as a diagram, also recorded in the run's journal, where
  `pilothouse.trace.flow_nodes` reads each execution's status (and `pilothouse flow
  show RUN_ID --store flow_graph.db` prints both).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

from pydantic import BaseModel

from pilothouse import Agent, Budget, ScriptedModel
from pilothouse.flows import END, START, Graph, NodeContext, add, append, replace
from pilothouse.runtime.journal import SQLiteStore
from pilothouse.trace import flow_graph, flow_nodes

FACTS = {
    "tides": "the moon's pull raises two bulges of water",
    "seasons": "the earth's axis is tilted by 23.4 degrees",
    "eclipses": "the moon's orbit is tilted by about 5 degrees",
}


class Report(BaseModel):
    question: Annotated[str, replace] = ""
    topics: Annotated[list[str], replace] = []
    notes: Annotated[list[str], append] = []
    draft: Annotated[str, replace] = ""
    revisions: Annotated[int, add] = 0
    verdict: Annotated[str, replace] = ""
    published: Annotated[bool, replace] = False


def plan(state: Report) -> dict[str, Any]:
    return {"topics": sorted(FACTS)}


async def research(state: Report, ctx: NodeContext) -> dict[str, Any]:
    return {"notes": [f"{ctx.item}: {FACTS[ctx.item]}"]}


def revise(state: Report) -> dict[str, Any]:
    return {"draft": state.draft + " (revised)", "revisions": 1}


def long_enough(state: Report) -> str:
    return "review" if len(state.draft) > 60 else "revise"


def publish(state: Report) -> dict[str, Any]:
    return {"published": state.verdict == "yes"}


def build(model: ScriptedModel) -> Any:
    writer = Agent(model, "Write one paragraph from the notes.", name="writer")
    g = Graph(Report, name="research", budget=Budget(max_steps=10, max_tokens=2_000))
    g.node("plan", plan).node("research", research)
    g.agent("write", writer, prompt=lambda s: "\n".join(s.notes), into="draft")
    g.node("revise", revise, max_visits=3)
    g.ask("review", lambda s: f"Publish this draft? {s.draft}", into="verdict")
    g.node("publish", publish)
    g.edge(START, "plan")
    g.map("plan", "research", over=lambda s: s.topics, join="write")
    g.route("write", long_enough, ["revise", "review"])
    g.route("revise", long_enough, ["revise", "review"])
    g.edge("review", "publish").edge("publish", END)
    return g.build()


async def main() -> None:
    model = ScriptedModel(["Tides, seasons and eclipses all come from tilts and pulls."])
    flow = build(model)
    print(flow.mermaid())
    store = SQLiteStore("flow_graph.db")
    run_id = f"report-{uuid.uuid4().hex[:8]}"
    first = await flow.run({"question": "Why?"}, store=store, run_id=run_id)
    print(f"outcome: {first.outcome}; waiting for: {first.pending[0].tool}")
    print(f"question: {first.pending[0].reason}")
    done = await flow.resume(run_id, store=store, answers={first.pending[0].key: "yes"})
    state = done.state
    print(f"outcome: {done.outcome}; published: {state.published}; revisions: {state.revisions}")
    print(f"draft: {state.draft}")
    print(f"usage: {done.usage.total_tokens} tokens over {done.steps} agent step(s)")
    print("journal:")
    for event in store.events(run_id):
        if event.type in ("node_finished", "approval_requested", "approval_given"):
            key = str(getattr(event, "key", "")).removeprefix(f"{run_id}:")
            print(f"  {event.type:<18} {key}")
    children = [c.run_id.removeprefix(run_id) for c in store.children(run_id)]
    print(f"children: {children}")
    events = store.events(run_id)
    print(f"graph recorded in the journal: {flow_graph(events) == flow.mermaid()}")
    print(f"nodes, read back from the journal (pilothouse flow show {run_id}):")
    for row in flow_nodes(events):
        print(f"  {row.key:<14} {row.status:<9} {row.detail}")
    store.close()


if __name__ == "__main__":
    asyncio.run(main())
