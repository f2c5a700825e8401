"""The same graph on Pilothouse's `Graph` and on LangGraph's `StateGraph`, in one run.

    python benchmarks/peers/flow_workloads.py [--runs 20] [--json PATH]

Run with the peers' virtual environment (`make bench-peers` creates it; `run.py` calls
this script after the agent workload). Both graphs are built from one description:

1. **Critical path.** 20 tasks of 100 ms from the start, 10 tasks each after two of
   those (a join of two), one join after all ten (the critical path: 3 x 100 ms), and
   beside them a slow 250 ms task and a fast chain (3 x 10 ms, then a 100 ms task),
   the graph of `benchmarks/flows.py`. Printed: median wall time over `--runs` runs and
   its ratio to the 300 ms critical path; when the fast chain ended (no barrier: about
   130 ms); the start delay of every node after the end of the last task it depends
   on (both measured inside the node functions), p50 / p99 / max.
2. **Per-node overhead.** Instant nodes: a fan-out of 2,000 items into one join
   (Pilothouse `Graph.map`; LangGraph `Send`, its map-reduce) and a chain of 500
   nodes; wall time / node executions, best of 3, in µs.

Pilothouse runs with its in-memory journal (every node's start and end journaled);
LangGraph without a checkpointer and with its `InMemorySaver` (a checkpoint per
superstep), so each has a row with and without its persistence in memory.
Every run is checked (the state counts every task), and the script exits non-zero
when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import operator
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Annotated, Any, TypedDict

CRITICAL_PATH = 0.3
FANOUT = 2000
CHAIN = 500


def shape() -> tuple[dict[str, float], dict[str, list[str]]]:
    """The DAG: seconds per task, and each task's dependencies ([] = from the start)."""
    seconds: dict[str, float] = {}
    deps: dict[str, list[str]] = {}
    for i in range(20):
        seconds[f"a{i}"], deps[f"a{i}"] = 0.1, []
    for j in range(10):
        seconds[f"b{j}"], deps[f"b{j}"] = 0.1, [f"a{2 * j}", f"a{2 * j + 1}"]
    seconds["join"], deps["join"] = 0.1, [f"b{j}" for j in range(10)]
    seconds["slow"], deps["slow"] = 0.25, []
    previous: list[str] = []
    for k in range(3):
        seconds[f"fast{k}"], deps[f"fast{k}"] = 0.01, previous
        previous = [f"fast{k}"]
    seconds["after_fast"], deps["after_fast"] = 0.1, previous
    return seconds, deps


Marks = dict[str, tuple[float, float]]


@dataclass
class Built:
    """A compiled graph: `run()` runs it once and returns the state's task count."""

    run: Callable[[], Awaitable[int]]
    executions: int


def timed_task(name: str, seconds: float, marks: Marks) -> Callable[..., Awaitable[Any]]:
    async def task(state: Any) -> dict[str, int]:
        began = time.perf_counter()
        await asyncio.sleep(seconds)
        marks[name] = (began, time.perf_counter())
        return {"done": 1}

    return task


# --- Pilothouse ----------------------------------------------------------------------


def pilothouse_dag(marks: Marks) -> Built:
    from pydantic import BaseModel

    from pilothouse.flows import START, Graph, add
    from pilothouse.runtime.journal import MemoryStore

    class Tally(BaseModel):
        done: Annotated[int, add] = 0

    seconds, deps = shape()
    g = Graph(Tally, name="dag")
    for name, after in deps.items():
        g.node(name, timed_task(name, seconds[name], marks))
        for source in after or [START]:
            g.edge(source, name)
    flow = g.build()
    store = MemoryStore()
    runs = iter(range(1_000_000))

    async def run() -> int:
        result = await flow.run(store=store, run_id=f"r{next(runs)}")
        return int(result.state.done)

    return Built(run, len(seconds))


def pilothouse_instant(kind: str) -> Built:
    from pydantic import BaseModel

    from pilothouse.flows import START, Graph, add
    from pilothouse.runtime.journal import MemoryStore

    class Tally(BaseModel):
        done: Annotated[int, add] = 0

    def one(state: Tally) -> dict[str, int]:
        return {"done": 1}

    if kind == "fanout":
        g = Graph(Tally, name="fan", max_fanout=FANOUT)
        g.node("src", lambda s: None).node("item", one).node("join", lambda s: None)
        g.edge(START, "src").map("src", "item", over=lambda s: range(FANOUT), join="join")
        executions = FANOUT + 2
    else:
        g = Graph(Tally, name="chain")
        previous = START
        for k in range(CHAIN):
            g.node(f"n{k}", one).edge(previous, f"n{k}")
            previous = f"n{k}"
        executions = CHAIN
    flow = g.build()
    store = MemoryStore()
    runs = iter(range(1_000_000))

    async def run() -> int:
        result = await flow.run(store=store, run_id=f"o{next(runs)}")
        return int(result.state.done)

    return Built(run, executions)


# --- LangGraph -----------------------------------------------------------------------


class LGState(TypedDict):
    done: Annotated[int, operator.add]


def _compile(builder: Any, saver: bool, steps: int) -> Callable[[], Awaitable[int]]:
    if saver:
        from langgraph.checkpoint.memory import InMemorySaver

        app = builder.compile(checkpointer=InMemorySaver())
    else:
        app = builder.compile()
    runs = iter(range(1_000_000))

    async def run() -> int:
        config: dict[str, Any] = {"recursion_limit": steps + 10}
        if saver:
            config["configurable"] = {"thread_id": f"t{next(runs)}"}
        out = await app.ainvoke({"done": 0}, config=config)
        return int(out["done"])

    return run


def langgraph_dag(marks: Marks, saver: bool = False) -> Built:
    from langgraph.graph import END, START, StateGraph

    seconds, deps = shape()
    builder = StateGraph(LGState)
    for name in deps:
        builder.add_node(name, timed_task(name, seconds[name], marks))
    successors = {d for after in deps.values() for d in after}
    for name, after in deps.items():
        if not after:
            builder.add_edge(START, name)
        elif len(after) == 1:
            builder.add_edge(after[0], name)
        else:
            builder.add_edge(after, name)  # a join: waits for all of them
        if name not in successors:
            builder.add_edge(name, END)
    return Built(_compile(builder, saver, len(seconds)), len(seconds))


def langgraph_instant(kind: str, saver: bool = False) -> Built:
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Send

    def one(state: Any) -> dict[str, int]:
        return {"done": 1}

    def nothing(state: Any) -> dict[str, int]:
        return {"done": 0}

    builder = StateGraph(LGState)
    if kind == "fanout":
        builder.add_node("src", nothing).add_node("item", one).add_node("join", nothing)
        builder.add_edge(START, "src")
        builder.add_conditional_edges("src", lambda s: [Send("item", s) for _ in range(FANOUT)])
        builder.add_edge("item", "join")
        builder.add_edge("join", END)
        return Built(_compile(builder, saver, 3), FANOUT + 2)
    previous = START
    for k in range(CHAIN):
        builder.add_node(f"n{k}", one)
        builder.add_edge(previous, f"n{k}")
        previous = f"n{k}"
    builder.add_edge(previous, END)
    return Built(_compile(builder, saver, CHAIN), CHAIN)


# --- measuring -----------------------------------------------------------------------

Framework = tuple[str, Callable[[Marks], Built], Callable[[str], Built]]
FRAMEWORKS: list[Framework] = [
    ("pilothouse (memory journal)", pilothouse_dag, pilothouse_instant),
    ("langgraph", langgraph_dag, langgraph_instant),
    (
        "langgraph (InMemorySaver)",
        lambda m: langgraph_dag(m, saver=True),
        lambda k: langgraph_instant(k, saver=True),
    ),
]


class CheckFailed(Exception):
    pass


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def dag_figures(build: Callable[[Marks], Built], runs: int) -> dict[str, float]:
    seconds, deps = shape()
    walls: list[float] = []
    fast: list[float] = []
    delays: list[float] = []
    for _ in range(runs + 1):  # the first run warms up and is not counted
        marks: Marks = {}
        built = build(marks)
        began = time.perf_counter()
        done = await built.run()
        wall = time.perf_counter() - began
        if done != len(seconds) or set(marks) != set(seconds):
            raise CheckFailed(f"DAG run counted {done} of {len(seconds)} tasks")
        if _ == 0:
            continue
        walls.append(wall)
        fast.append(marks["after_fast"][1] - began)
        for name, after in deps.items():
            if after:
                delays.append(marks[name][0] - max(marks[d][1] for d in after))
    wall = statistics.median(walls)
    return {
        "wall_ms": wall * 1e3,
        "ratio": wall / CRITICAL_PATH,
        "fast_chain_ms": statistics.median(fast) * 1e3,
        "delay_p50_ms": percentile(delays, 0.5) * 1e3,
        "delay_p99_ms": percentile(delays, 0.99) * 1e3,
        "delay_max_ms": max(delays) * 1e3,
    }


async def overhead(build: Callable[[str], Built], kind: str) -> float:
    built = build(kind)
    expected = FANOUT if kind == "fanout" else CHAIN
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        done = await built.run()
        best = min(best, time.perf_counter() - began)
        if done != expected:
            raise CheckFailed(f"{kind} run counted {done} of {expected}")
    return best / built.executions * 1e6


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


async def measure(runs: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for label, dag, instant in FRAMEWORKS:
        print(f"{label} ...", file=sys.stderr)
        row: dict[str, Any] = {"label": label}
        row.update(await dag_figures(dag, runs))
        row["fanout_us"] = await overhead(instant, "fanout")
        row["chain_us"] = await overhead(instant, "chain")
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> list[str]:
    header = [
        "framework",
        "wall ms (CP 300)",
        "x CP",
        "fast chain ms",
        "start delay p50/p99/max ms",
        f"µs/node fan-out {FANOUT}",
        f"µs/node chain {CHAIN}",
    ]
    body = [
        [
            r["label"],
            f"{r['wall_ms']:.1f}",
            f"{r['ratio']:.2f}",
            f"{r['fast_chain_ms']:.1f}",
            f"{r['delay_p50_ms']:.2f} / {r['delay_p99_ms']:.2f} / {r['delay_max_ms']:.1f}",
            f"{r['fanout_us']:.1f}",
            f"{r['chain_us']:.1f}",
        ]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, body)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="DAG runs per framework")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if version("langgraph") == "not installed":
        print("langgraph is not installed here; run `make bench-peers`", file=sys.stderr)
        return 2
    load = os.getloadavg()[0]
    try:
        rows = asyncio.run(measure(args.runs))
    except CheckFailed as exc:
        print(f"check failed: {exc}", file=sys.stderr)
        return 1
    print(
        f"flows: pilothouse {version('pilothouse')}, langgraph {version('langgraph')}; "
        f"load average {load:.1f} at start, {os.getloadavg()[0]:.1f} at the end"
    )
    print(
        f"DAG of 32 tasks (100 ms; a slow 250 ms task beside a fast 3 x 10 ms + 100 ms "
        f"chain), critical path 300 ms, median of {args.runs} runs; instant nodes best of 3"
    )
    for line in table(rows):
        print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"load_average": load, "runs": args.runs, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
