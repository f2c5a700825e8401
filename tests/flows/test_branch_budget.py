"""Adversarial: executions of a flow that run at once never share its budget, however far
apart their causes are. Each execution carries an allotment, split where branches part
(counting every node that can reach an agent or a subgraph, not only agent nodes) and
pooled where they join; a subgraph node's child flow is capped to its allotment too.

Before: two branches that began with a plain node each gave their agent the flow's whole
remainder (a flow given 20 steps made 40 model calls), and a subgraph ran on its own
budget whatever the parent had left."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from crash_points import after_each_commit
from pilothouse import Agent, ScriptedModel, call, tool
from pilothouse.events import NodeStarted
from pilothouse.exceptions import FlowError
from pilothouse.flows import START, Graph, append, replace
from pilothouse.runtime.budget import Budget
from pilothouse.runtime.journal import MemoryStore, Store


class Notes(BaseModel):
    topics: Annotated[list[str], replace] = []
    notes: Annotated[list[str], append] = []


@tool
async def read(name: str) -> str:
    """Read a source."""
    await asyncio.sleep(0)  # a real source takes a moment: branches interleave
    return f"{name} says figs"


def reader(name: str, answer_after: int = -1) -> Agent[None, str]:
    """An agent that reads a source per step and answers after `answer_after` steps
    (-1: never, until a limit stops it); its own step limit is far above any flow's."""

    def reply(request: Any) -> Any:
        done = sum(1 for m in request.messages if m.role == "assistant")
        if done + 1 == answer_after:
            return f"{name}: figs"
        return call("read", name=f"{name}{done}")

    return Agent(ScriptedModel(reply), tools=[read], name=name, max_steps=100)


def _note(state: Any, output: Any) -> dict[str, Any]:
    return {"notes": [str(output)]}


def model_calls(store: Store) -> int:
    return sum(
        1
        for info in store.list_runs()
        for e in store.events(info.run_id)
        if e.type == "model_request"
    )


def caps(store: Store, run_id: str) -> dict[str, Any]:
    return {
        e.key: e.capped for e in store.events(run_id) if isinstance(e, NodeStarted) and e.capped
    }


def two_chains(budget: Budget, north: int = -1, south: int = -1) -> Any:
    """plan, then two branches side by side, each a plain node then an agent then
    another agent; the branches' agents are separate causes' effects."""
    g = Graph(Notes, name="chains", budget=budget, on_error="finish")
    g.node("plan", lambda s: {"topics": ["n", "s"]}).edge(START, "plan")
    for side, needs in (("north", north), ("south", south)):
        g.node(f"{side}_setup", lambda s: {"notes": ["set up"]})
        g.agent(f"{side}_1", reader(f"{side}1", needs), prompt=lambda s: "go", output=_note)
        g.agent(f"{side}_2", reader(f"{side}2", needs), prompt=lambda s: "go", output=_note)
        g.edge("plan", f"{side}_setup").edge(f"{side}_setup", f"{side}_1")
        g.edge(f"{side}_1", f"{side}_2")
    return g.build()


async def test_branches_that_begin_with_a_plain_node_split_the_budget() -> None:
    """Abuse: the two branches' first agents were each capped to all 20 steps and made 40
    model calls between them. Now the plan's two branches can each reach an agent, so
    they split the 20: 10 each, and the tree makes 20."""
    store = MemoryStore()
    with pytest.raises(FlowError, match="steps budget exhausted"):
        await two_chains(Budget(max_steps=20)).run(store=store, run_id="ch")
    assert caps(store, "ch") == {
        "north_1-0": {"steps": [100, 10]},
        "south_1-0": {"steps": [100, 10]},
    }
    assert model_calls(store) == 20


async def test_a_branch_passes_what_it_left_down_its_own_chain() -> None:
    """Each branch's second agent gets what its first left of the branch's share, not
    what the other branch left: 10 each, the first agents use 3, the second get 7."""
    store = MemoryStore()
    result = await two_chains(Budget(max_steps=20), north=3, south=3).run(store=store, run_id="c2")
    assert result.outcome == "final"
    assert caps(store, "c2") == {
        "north_1-0": {"steps": [100, 10]},
        "south_1-0": {"steps": [100, 10]},
        "north_2-0": {"steps": [100, 7]},
        "south_2-0": {"steps": [100, 7]},
    }


async def test_a_join_pools_what_its_branches_left() -> None:
    """Where branches meet again, the join gets what every branch left: 20 - 3 - 3 - 3 -
    3, and a plain branch that can reach no agent takes no share at all."""
    g = Graph(Notes, name="pool", budget=Budget(max_steps=20))
    g.node("plan", lambda s: {"topics": ["x"]}).edge(START, "plan")
    g.node("log", lambda s: {"notes": ["logged"]}).edge("plan", "log")  # reaches no agent
    for side in ("north", "south"):
        g.agent(f"{side}_1", reader(f"{side}1", 3), prompt=lambda s: "go", output=_note)
        g.agent(f"{side}_2", reader(f"{side}2", 3), prompt=lambda s: "go", output=_note)
        g.edge("plan", f"{side}_1").edge(f"{side}_1", f"{side}_2").edge(f"{side}_2", "merge")
    g.agent("merge", reader("merge", 1), prompt=lambda s: "merge", output=_note)
    store = MemoryStore()
    result = await g.build().run(store=store, run_id="pool")
    assert result.outcome == "final"
    got = caps(store, "pool")
    assert got["north_1-0"] == got["south_1-0"] == {"steps": [100, 10]}
    assert got["merge-0"] == {"steps": [100, 20 - 4 * 3]}


def sub_flow(answer_after: int = -1) -> Any:
    """A child flow of two agents in a row, with no budget of its own."""
    g = Graph(Notes, name="sub")
    g.agent("dig", reader("dig", answer_after), prompt=lambda s: "dig", output=_note)
    g.agent("sum", reader("sum", answer_after), prompt=lambda s: "sum", output=_note)
    g.edge(START, "dig").edge("dig", "sum")
    return g.build()


async def test_a_subgraph_is_capped_to_what_the_flow_has_left() -> None:
    """Abuse: a subgraph node ran its child flow on the child's own budget (none here),
    so its agents ran to their own 100-step limits under a parent given 6. Now the
    child flow is capped to the node's allotment and makes 6 model calls."""
    g = Graph(Notes, name="outer", budget=Budget(max_steps=6))
    g.subgraph("deep", sub_flow()).edge(START, "deep")
    store = MemoryStore()
    with pytest.raises(FlowError):
        await g.build().run(store=store, run_id="out")
    assert caps(store, "out") == {"deep-0": {"steps": [-1, 6]}}
    assert model_calls(store) == 6


async def test_the_items_of_a_map_over_a_subgraph_split_the_budget() -> None:
    """A map whose target is a subgraph: each item's child flow (two agents in a row)
    gets an even share, and together the items spend no more than the flow had."""
    g = Graph(Notes, name="mapped", budget=Budget(max_steps=30), on_error="finish")
    g.node("plan", lambda s: {"topics": ["a", "b", "c"]}).edge(START, "plan")
    g.subgraph("deep", sub_flow())
    g.node("join", lambda s: None)
    g.map("plan", "deep", over=lambda s: s.topics, join="join")
    store = MemoryStore()
    with pytest.raises(FlowError):
        await g.build().run(store=store, run_id="map")
    assert caps(store, "map") == {f"deep-0-{k}": {"steps": [-1, 10]} for k in range(3)}
    assert model_calls(store) == 30


async def test_branch_allotments_are_the_same_resumed_from_every_commit() -> None:
    """The allotments are a function of the graph and the recorded routes, items and
    usage: a flow resumed after a crash at any commit gives every node the cap it had
    and ends in the same state."""
    flow = two_chains(Budget(max_steps=20, max_tokens=3000), north=3, south=4)
    source = MemoryStore()
    whole = await flow.run(store=source, run_id="rs")
    want = caps(source, "rs")
    assert set(want) == {"north_1-0", "south_1-0", "north_2-0", "south_2-0"}
    for k, store in after_each_commit(source, "rs"):
        resumed = await flow.resume("rs", store=store)
        assert caps(store, "rs") == want, k
        assert (resumed.state, resumed.usage) == (whole.state, whole.usage), k
