"""Graphs: reducers, edges, conditional edges, bounded cycles, fan-out and join,
subgraphs, failures, budgets, Mermaid, and what a hostile graph or node gets."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from pilothouse.events import ErrorOccurred, FinalOutput, NodeFailed, NodeFinished, NodeStarted
from pilothouse.exceptions import CycleLimitError, FlowDefinitionError, FlowError
from pilothouse.flows import END, START, Graph, NodeContext, add, append, merge, reducer, replace
from pilothouse.runtime.journal import MemoryStore


class Notes(BaseModel):
    topics: Annotated[list[str], replace] = []
    notes: Annotated[list[str], append] = []
    count: Annotated[int, add] = 0
    route: Annotated[str, replace] = ""


def _types(store: MemoryStore, run_id: str) -> list[str]:
    return [e.type for e in store.events(run_id)]


# -- reducers ---------------------------------------------------------------------------


def test_a_key_without_a_reducer_is_refused_when_the_graph_is_made() -> None:
    class Bad(BaseModel):
        ok: Annotated[list[str], append] = []
        lost: list[str] = []
        also: int = 0

    with pytest.raises(FlowDefinitionError, match="without a reducer in Bad: lost, also"):
        Graph(Bad)


def test_reducers_may_be_given_as_a_mapping_and_are_checked() -> None:
    class Plain(BaseModel):
        items: list[int] = []
        total: int = 0

    Graph(Plain, reducers={"items": append, "total": add})
    with pytest.raises(FlowDefinitionError, match="does not have"):
        Graph(Plain, reducers={"items": append, "total": add, "nope": add})
    with pytest.raises(FlowDefinitionError, match="must be a Reducer"):
        Graph(Plain, reducers={"items": append, "total": max})  # type: ignore[dict-item]


def test_a_required_key_is_refused() -> None:
    class Required(BaseModel):
        name: Annotated[str, replace]

    with pytest.raises(FlowDefinitionError, match="needs a default"):
        Graph(Required)


async def test_parallel_writes_meet_in_the_reducers_in_key_order() -> None:
    class S(BaseModel):
        log: Annotated[list[str], append] = []
        total: Annotated[int, add] = 0
        last: Annotated[str, replace] = ""
        seen: Annotated[dict[str, int], merge] = {}
        best: Annotated[int, reducer(max)] = 0

    gate = asyncio.Event()

    async def slow(s: S) -> dict[str, Any]:
        await gate.wait()  # finishes last, yet is applied by its key, not its time
        return {"log": ["a"], "total": 1, "last": "a", "seen": {"a": 1}, "best": 3}

    def fast(s: S) -> dict[str, Any]:
        gate.set()
        return {"log": ["b"], "total": 2, "last": "b", "seen": {"b": 2}, "best": 2}

    g = Graph(S, name="par").node("a", slow).node("b", fast)
    g.edge(START, "a").edge(START, "b")
    result = await g.build().run(store=MemoryStore())
    assert result.state == S(log=["a", "b"], total=3, last="b", seen={"a": 1, "b": 2}, best=3)


# -- edges, joins, conditional edges ----------------------------------------------------


async def test_a_join_waits_for_every_branch_and_fires_once() -> None:
    seen: list[list[str]] = []

    def branch(name: str) -> Any:
        return lambda s: {"notes": [name]}

    def join(s: Notes) -> dict[str, Any]:
        seen.append(list(s.notes))
        return {"count": 1}

    g = Graph(Notes, name="j")
    for name in ("a", "b", "c"):
        g.node(name, branch(name)).edge(START, name).edge(name, "join")
    g.node("c2", lambda s: {"notes": ["c2"]}).edge("c", "c2").edge("c2", "join")
    g.node("join", join)
    result = await g.build().run(store=MemoryStore())
    assert seen == [["a", "b", "c", "c2"]]
    assert result.state.count == 1


async def test_conditional_edges_choose_among_declared_targets() -> None:
    def decide(s: Notes) -> str:
        return "yes" if s.route == "go" else "no"

    g = Graph(Notes, name="cond")
    g.node("start", lambda s: None).edge(START, "start")
    g.node("yes", lambda s: {"notes": ["yes"]}).node("no", lambda s: {"notes": ["no"]})
    g.route("start", decide, ["yes", "no"])
    g.node("after", lambda s: {"notes": ["after"]}).edge("yes", "after").edge("no", "after")
    flow = g.build()
    store = MemoryStore()
    go = await flow.run({"route": "go"}, store=store, run_id="go")
    stay = await flow.run({"route": "stay"}, store=store, run_id="stay")
    assert go.state.notes == ["yes", "after"]
    assert stay.state.notes == ["no", "after"]
    finished = [e for e in store.events("go") if isinstance(e, NodeFinished)]
    assert finished[0].routes == ["yes"]


async def test_a_router_choosing_an_undeclared_target_fails_naming_it() -> None:
    g = Graph(Notes, name="bad_route")
    g.node("a", lambda s: None).node("b", lambda s: None).edge(START, "a")
    g.route("a", lambda s: "c", ["b", END])
    store = MemoryStore()
    with pytest.raises(FlowError, match="chose 'c', which is not among its declared targets"):
        await g.build().run(store=store, run_id="r")
    failed = [e for e in store.events("r") if isinstance(e, NodeFailed)]
    assert failed[0].node == "a" and failed[0].kind == "ValueError"


async def test_a_bounded_cycle_runs_until_its_condition_and_the_bound_is_enforced() -> None:
    def step(s: Notes) -> dict[str, Any]:
        return {"count": 1, "notes": [f"try {s.count}"]}

    def again(limit: int) -> Any:
        return lambda s: "step" if s.count < limit else END

    def build(limit: int) -> Any:
        g = Graph(Notes, name="loop")
        g.node("step", step, max_visits=3).edge(START, "step")
        g.route("step", again(limit), ["step", END])
        return g.build()

    result = await build(3).run(store=MemoryStore())
    assert result.state.notes == ["try 0", "try 1", "try 2"]
    store = MemoryStore()
    with pytest.raises(CycleLimitError, match="'step' would run a 4th time; its bound is"):
        await build(10).run(store=store, run_id="over")
    events = store.events("over")
    assert isinstance(events[-1], ErrorOccurred) and events[-1].kind == "CycleLimitError"
    assert store.get_run("over").status == "error"


def test_a_cycle_without_a_bound_is_refused_at_build() -> None:
    g = Graph(Notes, name="unbounded")
    g.node("a", lambda s: None).node("b", lambda s: None).edge(START, "a").edge("a", "b")
    g.route("b", lambda s: "a", ["a", END])
    with pytest.raises(FlowDefinitionError, match="cycle without a bound: a -> b -> a"):
        g.build()


# -- fan-out and join -------------------------------------------------------------------


def _mapped(items_of: Any) -> Any:
    joins: list[list[str]] = []

    def work(s: Notes, ctx: NodeContext) -> dict[str, Any]:
        return {"notes": [f"done {ctx.item}"]}

    def join(s: Notes) -> dict[str, Any]:
        joins.append(list(s.notes))
        return {"count": 1}

    g = Graph(Notes, name="fan")
    g.node("plan", lambda s: {"topics": items_of(s)}).edge(START, "plan")
    g.node("work", work).node("join", join)
    g.map("plan", "work", over=lambda s: s.topics, join="join")
    return g.build(), joins


async def test_map_runs_the_target_once_per_item_and_the_join_once() -> None:
    flow, joins = _mapped(lambda s: ["x", "y", "z"])
    store = MemoryStore()
    result = await flow.run(store=store, run_id="m")
    assert joins == [["done x", "done y", "done z"]]
    assert result.state.count == 1
    keys = [e.key for e in store.events("m") if isinstance(e, NodeStarted)]
    assert sorted(keys) == ["join-0", "plan-0", "work-0-0", "work-0-1", "work-0-2"]


async def test_an_empty_fan_out_fires_the_join_exactly_once() -> None:
    flow, joins = _mapped(lambda s: [])
    result = await flow.run(store=MemoryStore())
    assert joins == [[]] and result.state.count == 1


async def test_a_fan_out_past_its_limit_is_refused() -> None:
    g = Graph(Notes, name="huge", max_fanout=5)
    g.node("plan", lambda s: {"topics": [str(i) for i in range(6)]}).edge(START, "plan")
    g.node("work", lambda s: None).node("join", lambda s: None)
    g.map("plan", "work", over=lambda s: s.topics, join="join")
    with pytest.raises(FlowError, match="fanned out 6 items to 'work'; the flow allows 5"):
        await g.build().run(store=MemoryStore())


def test_map_rules_are_checked_at_build() -> None:
    g = Graph(Notes, name="maps")
    g.node("a", lambda s: None).node("w", lambda s: None).node("j", lambda s: None)
    g.edge(START, "a").edge(START, "w")
    g.map("a", "w", over=lambda s: [], join="j")
    with pytest.raises(FlowDefinitionError, match="map target 'w' is also reached from __start__"):
        g.build()


# -- subgraphs --------------------------------------------------------------------------


async def test_a_subgraph_runs_as_a_child_flow_and_its_updates_come_back() -> None:
    class Inner(BaseModel):
        notes: Annotated[list[str], append] = []
        count: Annotated[int, add] = 0

    inner = Graph(Inner, name="inner")
    inner.node("one", lambda s: {"notes": [f"inner saw {len(s.notes)}"], "count": 1})
    inner.node("two", lambda s: {"notes": ["inner two"], "count": 1})
    inner.edge(START, "one").edge("one", "two")
    outer = Graph(Notes, name="outer")
    outer.node("first", lambda s: {"notes": ["first"]}).edge(START, "first")
    outer.subgraph("sub", inner.build()).edge("first", "sub")
    outer.node("last", lambda s: {"notes": [f"last saw {len(s.notes)}"]}).edge("sub", "last")
    store = MemoryStore()
    result = await outer.build().run(store=store, run_id="o")
    assert result.state.notes == ["first", "inner saw 1", "inner two", "last saw 3"]
    assert result.state.count == 2
    children = store.children("o")
    assert [c.run_id for c in children] == ["o.2.0.sub-0"]
    assert children[0].status == "final" and children[0].root_run_id == "o"
    assert "child_started" in _types(store, "o") and "child_finished" in _types(store, "o")


# -- failures ---------------------------------------------------------------------------


async def test_a_failing_node_cancels_its_siblings_and_is_journaled_with_its_cause() -> None:
    started = asyncio.Event()

    async def hang(s: Notes) -> dict[str, Any]:
        started.set()
        await asyncio.Event().wait()
        return {}

    async def boom(s: Notes) -> dict[str, Any]:
        await started.wait()
        raise RuntimeError("the disk is full")

    g = Graph(Notes, name="cancel").node("hang", hang).node("boom", boom)
    g.edge(START, "hang").edge(START, "boom")
    store = MemoryStore()
    failed_with = "node 'boom' \\(boom-0\\) failed: RuntimeError: the disk"
    with pytest.raises(FlowError, match=failed_with) as e:
        await g.build().run(store=store, run_id="c")
    assert isinstance(e.value.cause, RuntimeError) and e.value.node == "boom"
    failed = {ev.node: ev for ev in store.events("c") if isinstance(ev, NodeFailed)}
    assert failed["boom"].message == "the disk is full" and not failed["boom"].cancelled
    assert failed["hang"].cancelled
    assert store.get_run("c").status == "error"


async def test_on_error_finish_lets_independent_branches_finish() -> None:
    async def boom(s: Notes) -> dict[str, Any]:
        raise ValueError("bad input")

    g = Graph(Notes, name="finish", on_error="finish")
    g.node("boom", boom).node("after_boom", lambda s: {"notes": ["never"]})
    g.node("ok", lambda s: {"notes": ["ok"]}).node("ok2", lambda s: {"notes": ["ok2"]})
    g.edge(START, "boom").edge("boom", "after_boom").edge(START, "ok").edge("ok", "ok2")
    store = MemoryStore()
    with pytest.raises(FlowError, match="bad input"):
        await g.build().run(store=store, run_id="f")
    finished = [e.node for e in store.events("f") if isinstance(e, NodeFinished)]
    assert sorted(finished) == ["ok", "ok2"]
    assert not any(isinstance(e, FinalOutput) for e in store.events("f"))


async def test_a_bad_update_fails_the_node_naming_the_key() -> None:
    g = Graph(Notes, name="upd")
    g.node("a", lambda s: {"count": "many"}).edge(START, "a")
    with pytest.raises(FlowError, match="updated 'count' with a value that does not fit"):
        await g.build().run(store=MemoryStore())
    g2 = Graph(Notes, name="upd2")
    g2.node("a", lambda s: {"secret": 1}).edge(START, "a")
    with pytest.raises(FlowError, match="updated 'secret', which is not a key of Notes"):
        await g2.build().run(store=MemoryStore())
    g3 = Graph(Notes, name="upd3")
    g3.node("a", lambda s: ["not", "a", "dict"]).edge(START, "a")
    with pytest.raises(FlowError, match="returned list: a node returns a dict"):
        await g3.build().run(store=MemoryStore())


def test_malformed_graphs_are_refused_at_build() -> None:
    with pytest.raises(FlowDefinitionError, match="node name 'a-b'"):
        Graph(Notes).node("a-b", lambda s: None)
    g = Graph(Notes, name="g").node("a", lambda s: None)
    with pytest.raises(FlowDefinitionError, match="no edge from START"):
        g.build()
    g.edge(START, "a").edge("a", "nowhere")
    with pytest.raises(FlowDefinitionError, match="names 'nowhere', which is no node"):
        g.build()
    g2 = Graph(Notes, name="g2").node("a", lambda s: None).node("b", lambda s: None)
    g2.edge(START, "a")
    with pytest.raises(FlowDefinitionError, match="no edge reaches b"):
        g2.build()
    with pytest.raises(FlowDefinitionError, match="already has a node"):
        Graph(Notes).node("a", lambda s: None).node("a", lambda s: None)
    with pytest.raises(FlowDefinitionError, match="must take \\(state\\) or \\(state, ctx\\)"):
        Graph(Notes).node("a", lambda: None)


def test_mermaid_draws_the_graph() -> None:
    g = Graph(Notes, name="draw")
    g.node("plan", lambda s: None).node("work", lambda s: None).node("join", lambda s: None)
    g.node("check", lambda s: None, max_visits=2).ask("review", lambda s: "ok?", into="route")
    g.edge(START, "plan").map("plan", "work", over=lambda s: [], join="join")
    g.edge("join", "check").route("check", lambda s: END, ["check", "review", END])
    assert g.mermaid() == (
        "flowchart TD\n"
        "  plan[plan]\n"
        "  work[work]\n"
        "  join[join]\n"
        "  check[check ≤2]\n"
        "  review{{review}}\n"
        "  __start__([start]) --> plan\n"
        "  join --> check\n"
        "  check -.-> check\n"
        "  check -.-> review\n"
        "  check -.-> __end__([end])\n"
        "  plan ==>|map| work\n"
        "  work -->|join| join\n"
        "  review --> __end__([end])\n"
    )


async def test_an_edge_and_a_route_to_one_node_deliver_once() -> None:
    runs: list[str] = []

    def b(s: Notes, ctx: NodeContext) -> dict[str, Any]:
        runs.append(ctx.key)
        return {"notes": ["b"]}

    g = Graph(Notes, name="twice")
    g.node("a", lambda s: {"notes": ["a"]}).node("b", b)
    g.edge(START, "a").edge("a", "b").route("a", lambda s: "b", ["b", END])
    store = MemoryStore()
    result = await g.build().run(store=store, run_id="t")
    assert runs == ["b-0"] and result.state.notes == ["a", "b"]
    started = [e for e in store.events("t") if isinstance(e, NodeStarted) and e.node == "b"]
    assert started[0].after == ["a-0"]


async def test_blocking_nodes_run_in_threads_side_by_side() -> None:
    import threading

    both = threading.Barrier(2, timeout=30)  # each waits for the other: only parallel passes

    def work(s: Notes, ctx: NodeContext) -> dict[str, Any]:
        both.wait()
        return {"notes": [ctx.node]}

    g = Graph(Notes, name="threads")
    g.node("a", work, blocking=True).node("b", work, blocking=True)
    g.edge(START, "a").edge(START, "b")
    result = await g.build().run(store=MemoryStore())
    assert result.state.notes == ["a", "b"]
