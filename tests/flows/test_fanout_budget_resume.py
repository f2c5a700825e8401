"""Adversarial: the items of a fan-out split the flow's budget the same way whether
the flow runs through or is resumed from any point of its journal (a crash after any
commit), and their shares never add up to more than what was left."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from crash_points import after_each_commit
from pilothouse import Agent, ScriptedModel
from pilothouse.events import NodeStarted
from pilothouse.flows import START, Graph, append, replace
from pilothouse.models.base import ModelRequest
from pilothouse.runtime.budget import Budget
from pilothouse.runtime.journal import MemoryStore


class Notes(BaseModel):
    topics: Annotated[list[str], replace] = []
    notes: Annotated[list[str], append] = []
    scouted: Annotated[str, replace] = ""


def told_cap(request: ModelRequest) -> str:
    """A writer that says the token limit it was asked under (what remains of its
    capped budget): the flow's final state then shows each item's cap."""
    topic = next(m.content for m in request.messages if m.role == "user").split()[-1]
    return f"{topic} under {request.settings.max_tokens}"


def fanned(budget: Budget) -> Any:
    """A scout agent (it spends tokens first), a plan of five topics, a writer agent
    for each (the fan-out), and a join."""
    scout = Agent(ScriptedModel(lambda r: "look at five topics " * 3), name="scout")
    writer = Agent(ScriptedModel(told_cap), name="writer")
    g = Graph(Notes, name="fanned", budget=budget)
    g.agent("scout", scout, prompt=lambda s: "scout", into="scouted").edge(START, "scout")
    g.node("plan", lambda s: {"topics": ["a", "b", "c", "d", "e"]}).edge("scout", "plan")
    g.agent("write", writer, prompt=lambda s, ctx: f"write on {ctx.item}", output=_note)
    g.node("join", lambda s: None)
    g.map("plan", "write", over=lambda s: s.topics, join="join")
    return g.build()


def _note(state: Any, output: Any) -> dict[str, Any]:
    return {"notes": [output]}


@pytest.mark.parametrize(
    "budget",
    [Budget(max_steps=None, max_tokens=103), Budget(max_steps=9, max_tokens=1000, max_cost=0.5)],
)
async def test_fan_out_items_get_the_same_caps_resumed_from_every_commit(budget: Budget) -> None:
    flow = fanned(budget)
    source = MemoryStore()
    whole = await flow.run(store=source, run_id="fan")
    events = source.events("fan")
    caps = [e.capped for e in events if isinstance(e, NodeStarted) and e.node == "write"]
    assert len(caps) == 5
    for limit in ("steps", "tokens", "cost"):  # the shares add up to what was left
        if getattr(budget, f"max_{limit}") is not None:
            shares = [c[limit][1] for c in caps]
            assert len(set(shares)) <= 2 and max(shares) - min(shares) <= 1
    left = 103 - whole.usage.total_tokens + sum(len(n) // 4 + 1 for n in whole.state.notes)
    if budget.max_tokens == 103:
        assert sum(c["tokens"][1] for c in caps) == left
    for k, store in after_each_commit(source, "fan"):
        resumed = await flow.resume("fan", store=store)
        assert resumed.state == whole.state, k
        assert resumed.usage == whole.usage, k


async def test_an_agent_node_that_delegates_counts_its_helpers_steps() -> None:
    """Abuse: an agent node whose agent delegates must not hide the steps of the runs
    it started from the flow's `max_steps` (before, the node counted its own 2 steps,
    not its helper's 4, and the next agent node was given 4 more of a 6-step budget)."""
    from pilothouse import Budget as FlowBudget
    from pilothouse import call, tool
    from pilothouse.events import NodeFinished
    from pilothouse.policy import Policy
    from pilothouse.tools import ToolContext

    @tool
    def read(name: str) -> str:
        """Read a source."""
        return f"{name}: figs"

    reads = [call("read", name="s1"), call("read", name="s2"), call("read", name="s3"), "figs"]
    helper = Agent(ScriptedModel(reads), tools=[read], name="helper")

    @tool
    async def consult(ctx: ToolContext, question: str) -> str:
        """Ask the helper."""
        return str((await ctx.run_child(helper, question)).output)

    lead = Agent(
        ScriptedModel([call("consult", question="figs?"), "figs, says the helper"]),
        tools=[consult],
        name="lead",
        policy=Policy.allow_all(),
    )
    after = Agent(ScriptedModel(["more"]), name="after")
    g = Graph(Notes, name="deep", budget=FlowBudget(max_steps=6))
    g.agent("lead", lead, prompt=lambda s: "figs?", into="scouted").edge(START, "lead")
    g.agent("after", after, prompt=lambda s: "more?", output=_note).edge("lead", "after")
    store = MemoryStore()
    result = await g.build().run(store=store, run_id="deep")
    ends = {e.node: e.steps for e in store.events("deep") if isinstance(e, NodeFinished)}
    assert ends == {"lead": 2 + 4}  # the lead's steps and its helper's; "after" never ran
    assert result.outcome == "budget_stop"
