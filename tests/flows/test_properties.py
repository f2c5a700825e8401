"""Property tests over random DAGs: every join fires exactly once, no state update is
lost, every node sees exactly its causes' updates, and the final state does not depend
on the order branches finish in.

The order is not left to timing: every node waits on its own `asyncio.Event`, and a
controller releases the waiting node with the lowest drawn priority, one at a time, once
every ready node has reached its gate (a fixed number of event-loop turns, no clock).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from pilothouse.exceptions import FlowError
from pilothouse.flows import START, Graph, NodeContext, append
from pilothouse.runtime.journal import MemoryStore


class Trace(BaseModel):
    fired: Annotated[list[str], append] = []


class Dag:
    """A drawn DAG: nodes n0..nk, edges i -> j (i < j), maybe a fan-out n_i => m => n_j,
    maybe a failing node."""

    def __init__(self, data: st.DataObject) -> None:
        self.size = data.draw(st.integers(1, 7), label="size")
        self.parents: dict[int, list[int]] = {}
        for j in range(self.size):
            pool = list(range(j))
            self.parents[j] = data.draw(
                st.lists(st.sampled_from(pool), unique=True, max_size=3) if pool else st.just([]),
                label=f"parents of n{j}",
            )
        self.fan: tuple[int, int, int] | None = None
        if self.size >= 2 and data.draw(st.booleans(), label="fan-out"):
            source = data.draw(st.integers(0, self.size - 2), label="fan source")
            join = data.draw(st.integers(source + 1, self.size - 1), label="fan join")
            items = data.draw(st.integers(0, 3), label="items")
            self.fan = (source, join, items)
        self.failing = (
            data.draw(st.integers(0, self.size - 1), label="failing")
            if data.draw(st.booleans(), label="has a failing node")
            else None
        )

    def graph(self, gates: Gates) -> Any:
        g = Graph(Trace, name="dag", on_error="finish")
        for j in range(self.size):
            g.node(f"n{j}", gates.node(fail=j == self.failing))
            for p in self.parents[j]:
                g.edge(f"n{p}", f"n{j}")
            if not self.parents[j] and not (self.fan and self.fan[1] == j):
                g.edge(START, f"n{j}")
        if self.fan is not None:
            source, join, items = self.fan
            g.node("m", gates.node(fail=False))
            g.map(
                f"n{source}", "m", over=lambda s, items=items: list(range(items)), join=f"n{join}"
            )
        return g.build()

    def causes(self, j: int) -> set[str]:
        """The keys whose updates node n_j must see: its ancestors, fan-out items included."""
        seen: set[str] = set()
        todo = [j]
        while todo:
            k = todo.pop()
            preds = [f"n{p}" for p in self.parents[k]]
            if self.fan is not None and self.fan[1] == k:
                preds.append(f"n{self.fan[0]}")
                seen.update(f"m-0-{i}" for i in range(self.fan[2]))
            for p in preds:
                key = f"{p}-0"
                if key not in seen:
                    seen.add(key)
                    todo.append(int(p[1:]))
        return seen


class Gates:
    """Every node execution waits at a gate; `release` lets them through in priority order."""

    def __init__(self, priority: dict[str, int]) -> None:
        self.priority = priority
        self.waiting: dict[str, asyncio.Event] = {}
        self.runs: dict[str, int] = {}
        self.views: dict[str, list[str]] = {}

    def node(self, *, fail: bool) -> Any:
        async def run(state: Trace, ctx: NodeContext) -> dict[str, Any]:
            self.runs[ctx.key] = self.runs.get(ctx.key, 0) + 1
            self.views[ctx.key] = list(state.fired)
            gate = self.waiting[ctx.key] = asyncio.Event()
            await gate.wait()
            if fail:
                raise RuntimeError(f"{ctx.key} fails")
            return {"fired": [ctx.key]}

        return run

    async def release(self, run: asyncio.Task[Any]) -> None:
        while not run.done():
            for _ in range(20):  # let every ready node reach its gate (loop turns, no clock)
                await asyncio.sleep(0)
            if not self.waiting:
                continue
            key = min(self.waiting, key=lambda k: (self.priority.get(k, 0), k))
            self.waiting.pop(key).set()


async def _run(dag: Dag, priority: dict[str, int]) -> tuple[Any, Gates, MemoryStore]:
    gates = Gates(priority)
    store = MemoryStore()
    run = asyncio.ensure_future(dag.graph(gates).run(store=store, run_id="p"))
    await gates.release(run)
    try:
        return run.result(), gates, store
    except FlowError as exc:
        return exc, gates, store


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_random_dags_fire_every_join_once_and_lose_no_update(data: st.DataObject) -> None:
    dag = Dag(data)
    keys = [f"n{j}-0" for j in range(dag.size)]
    if dag.fan is not None:
        keys += [f"m-0-{i}" for i in range(dag.fan[2])]
    orders = [
        {k: data.draw(st.integers(0, 50), label=f"order {n} {k}") for k in keys} for n in (1, 2)
    ]
    outcomes = [asyncio.run(_run(dag, order)) for order in orders]
    blocked: set[str] = set()
    if dag.failing is not None:  # the failing node and everything after it never finish
        failing = f"n{dag.failing}-0"
        blocked = {k for k in keys if k == failing or failing in _causes_of(dag, k)}
    expected = set(keys) - blocked
    finals = []
    for result, gates, store in outcomes:
        ran = set(gates.runs)
        assert all(n == 1 for n in gates.runs.values())  # every node and join at most once
        finished = {k for k in ran if k not in blocked}
        assert finished == expected  # ... and every one that may run, exactly once
        for key, view in gates.views.items():  # each sees exactly its causes' updates
            if key.startswith("n"):
                assert set(view) == dag.causes(int(key[1:].split("-")[0])), key
        if dag.failing is None:
            assert sorted(result.state.fired) == sorted(expected)  # no lost update
            finals.append(result.state)
        else:
            assert isinstance(result, FlowError) and result.key == f"n{dag.failing}-0"
            finals.append(sorted(e.key for e in store.events("p") if e.type == "node_finished"))
    assert finals[0] == finals[1]  # whatever order the branches finished in


def _causes_of(dag: Dag, key: str) -> set[str]:
    if key.startswith("m-"):
        assert dag.fan is not None
        return {f"n{dag.fan[0]}-0"} | dag.causes(dag.fan[0])
    return dag.causes(int(key[1:].split("-")[0]))


@pytest.mark.parametrize("items", [0, 1, 5])
async def test_a_join_after_a_fan_out_fires_once_whatever_the_item_count(items: int) -> None:
    gates = Gates({})
    g = Graph(Trace, name="fan")
    g.node("src", gates.node(fail=False)).edge(START, "src")
    g.node("item", gates.node(fail=False)).node("join", gates.node(fail=False))
    g.map("src", "item", over=lambda s: list(range(items)), join="join")
    run = asyncio.ensure_future(g.build().run(store=MemoryStore()))
    await gates.release(run)
    assert gates.runs["join-0"] == 1
    assert sorted(run.result().state.fired) == sorted(
        ["src-0", "join-0", *[f"item-0-{i}" for i in range(items)]]
    )
