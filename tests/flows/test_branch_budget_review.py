"""Review of the flow budget's split (session 15): a branch that can reach an agent only
through a node its sibling also always reaches held a share it could never spend
before the sibling ended, and so made a flow that fits its budget fail.

Abuse case kept: executions that run at once never share a budget (no overspend)."""

from __future__ import annotations

from typing import Any

import pytest
from test_branch_budget import Notes, caps, model_calls, reader

from crash_points import after_each_commit
from pilothouse.exceptions import FlowError
from pilothouse.flows import START, Graph
from pilothouse.runtime.budget import Budget
from pilothouse.runtime.journal import MemoryStore


def note(state: Any, output: Any) -> dict[str, Any]:
    return {"notes": [str(output)]}


def log_beside_long(long_needs: int, *, routed: bool = False) -> Any:
    """`long` (an agent needing `long_needs` steps) and `log` (a plain node) side by
    side from the start, both ending in `join`, then `summary` (an agent answering at
    once). `routed`: long reaches join through a route, which may go elsewhere."""
    g = Graph(Notes, name="beside", budget=Budget(max_steps=10), on_error="finish")
    g.agent("long", reader("long", long_needs), prompt=lambda s: "go", output=note)
    g.node("log", lambda s: {"notes": ["logged"]})
    g.node("join", lambda s: None)
    g.agent("summary", reader("summary", 1), prompt=lambda s: "sum", output=note)
    g.edge(START, "long").edge(START, "log").edge("log", "join").edge("join", "summary")
    if routed:
        g.route("long", lambda s: "join", targets=["join"])
    else:
        g.edge("long", "join")
    return g.build()


async def test_a_branch_that_reaches_agents_only_through_its_siblings_join_takes_no_share() -> None:
    """9 steps of work on a 10-step flow: before, `log` took half the budget for the
    summary it can only reach through `join`, which waits for `long`, so `long` was
    capped to 5 and the flow failed. Now long gets the 10 and the summary what it left."""
    store = MemoryStore()
    result = await log_beside_long(8).run(store=store, run_id="b")
    assert result.outcome == "final"
    assert caps(store, "b") == {"long-0": {"steps": [100, 10]}, "summary-0": {"steps": [100, 2]}}
    assert model_calls(store) == 9


async def test_the_sibling_that_keeps_the_share_still_cannot_overspend() -> None:
    """A long branch that never answers spends its whole 10 and leaves the summary
    nothing: the flow stops having made 10 model calls, not 15."""
    store = MemoryStore()
    with pytest.raises(FlowError, match="steps budget exhausted"):
        await log_beside_long(-1).run(store=store, run_id="n")
    assert caps(store, "n") == {"long-0": {"steps": [100, 10]}}
    assert model_calls(store) == 10


async def test_a_route_may_go_elsewhere_so_the_share_is_held() -> None:
    """Reached through a route, the join may never get long's leftover: log keeps its
    share (5 each), so the summary has a share whatever long does."""
    store = MemoryStore()
    with pytest.raises(FlowError, match="steps budget exhausted"):
        await log_beside_long(8, routed=True).run(store=store, run_id="r")
    assert caps(store, "r") == {"long-0": {"steps": [100, 5]}}


async def test_the_kept_shares_are_the_same_resumed_from_every_commit() -> None:
    """Which branch keeps a share is a function of the graph alone: a flow resumed after
    a crash at any commit gives long and the summary the caps they had."""
    flow = log_beside_long(8)
    source = MemoryStore()
    whole = await flow.run(store=source, run_id="rs")
    want = caps(source, "rs")
    assert want == {"long-0": {"steps": [100, 10]}, "summary-0": {"steps": [100, 2]}}
    for k, store in after_each_commit(source, "rs"):
        resumed = await flow.resume("rs", store=store)
        assert caps(store, "rs") == want, k
        assert (resumed.state, resumed.usage) == (whole.state, whole.usage), k


def map_then_reduce(over: list[str]) -> Any:
    """`plan` fans out to `dig` (an agent needing 4 steps) per topic; `reduce`, an agent
    answering at once, is the map's join."""
    g = Graph(Notes, name="mapreduce", budget=Budget(max_steps=14), on_error="finish")
    g.node("plan", lambda s: {"topics": over}).edge(START, "plan")
    g.agent("dig", reader("dig", 4), prompt=lambda s: "dig", output=note)
    g.agent("reduce", reader("reduce", 1), prompt=lambda s: "reduce", output=note)
    g.map("plan", "dig", over=lambda s: s.topics, join="reduce")
    return g.build()


async def test_a_maps_join_takes_no_share_from_its_items() -> None:
    """The join runs after every item and gets what they left either way: holding a
    share for it only starved the items (14 steps: the join held 4 and two of the
    three items, capped to 3, failed). Now the items split the 14 (5, 5, 4), use 12,
    and the join gets the 2 left."""
    store = MemoryStore()
    result = await map_then_reduce(["a", "b", "c"]).run(store=store, run_id="m")
    assert result.outcome == "final"
    assert caps(store, "m") == {
        "dig-0-0": {"steps": [100, 5]},
        "dig-0-1": {"steps": [100, 5]},
        "dig-0-2": {"steps": [100, 4]},
        "reduce-0": {"steps": [100, 2]},
    }
    assert model_calls(store) == 13


async def test_an_empty_maps_join_gets_the_whole_leftover() -> None:
    """No item runs, so the join is not deferred to them: it gets all 14 (a guard; the
    same before)."""
    store = MemoryStore()
    result = await map_then_reduce([]).run(store=store, run_id="e")
    assert result.outcome == "final"
    assert caps(store, "e") == {"reduce-0": {"steps": [100, 14]}}
