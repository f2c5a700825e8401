"""A tool that fans out: several researchers side by side, within the lead's budget.

Runs offline as written (scripted models stand in for real ones):

    python examples/fan_out.py

What it shows:
- `ctx.run_children([(agent, input), ...])`: the `survey` tool starts one researcher
  per topic at once; the call's share of the lead's budget is split evenly between
  them (each child's `child_started` records its cap), so fanning out buys no budget;
- each child runs exactly once: a lead resumed after a crash re-attaches to them;
- a child that needs more than its share is stopped by the budget, and the lead reads
  its outcome like any tool result.
"""

from __future__ import annotations

from typing import Any

from pilothouse import Agent, Budget, MemoryStore, ScriptedModel, ToolContext, call, tool
from pilothouse.events import ChildStarted

store = MemoryStore()


@tool
def read_source(name: str) -> str:
    """Read one source."""
    return f"{name}: figs ripen in late summer"


def researcher_reply(request: Any) -> Any:
    """A researcher reads two sources, then answers; "history" wants five."""
    messages = request.messages
    topic = next(m.content for m in messages if m.role == "user")
    read = sum(1 for m in messages if m.role == "assistant")
    needed = 5 if topic == "history" else 2
    if read < needed:
        return call("read_source", name=f"{topic} source {read + 1}")
    return f"{topic}: figs ripen in late summer"


researcher = Agent(
    ScriptedModel(researcher_reply),
    "You research one topic.",
    [read_source],
    name="researcher",
    store=store,
)


@tool(on_doubt="retry")  # run_children is exactly-once, so running this again is safe
async def survey(ctx: ToolContext, topics: str) -> str:
    """Research several topics at once."""
    names = [t.strip() for t in topics.split(",")]
    results = await ctx.run_children([(researcher, t) for t in names], keys=names)
    return "; ".join(
        f"{name}: {r.output if r.ok else r.outcome}" for name, r in zip(names, results, strict=True)
    )


lead = Agent(
    ScriptedModel([call("survey", topics="growing, cooking, history"), "Figs ripen in summer."]),
    "You lead a research desk.",
    [survey],
    name="lead",
    budget=Budget(max_steps=12),
    store=store,
)

result = lead.run_sync("When do figs ripen?")
print("answer:", result.output)
print(f"steps: lead {result.steps} + children {result.child_steps} (budget 12)")
for event in store.events(result.run_id):
    if isinstance(event, ChildStarted):
        child = store.get_run(event.child_run_id)
        cap = int(event.capped["steps"][1])
        print(f"  {event.child_run_id.rsplit('.', 1)[1]:<8} cap {cap} steps -> {child.status}")
tool_result = next(e for e in store.events(result.run_id) if e.type == "tool_result")
print("survey:", tool_result.result.content)
