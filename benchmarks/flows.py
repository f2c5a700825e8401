"""Flow scheduling figures: wall time against the critical path, how soon a node starts
after its last dependency, and the per-node overhead; with ``--crash N``, the crash
test's N-kill version.

    python benchmarks/flows.py                 # scheduling and overhead
    python benchmarks/flows.py --crash 100     # 100 SIGKILLs at random points, resumed

1. **Critical path.** A DAG of 100 ms sleeping tasks whose longest chain is 3 tasks:
   20 tasks from the start, 10 tasks each after two of those, one join after all ten,
   plus a slow branch (250 ms) beside a fast chain (3 x 10 ms then a 100 ms task) to
   show that no superstep barrier holds the fast chain back. Printed: the wall time,
   the critical path (300 ms), and the ratio.
2. **Start delay.** For every node, its start minus the end of the last execution it
   waited for (both measured in the node functions), p50 and p99 over 20 runs.
3. **Per-node overhead.** No-op nodes: a fan-out of 2,000 items into one join, and a
   chain of 500 nodes, on the in-memory store and on SQLite (which commits each node's
   start and end): wall time / node executions, in µs.
4. **Concurrent runs** (``--concurrent N``, default 1,000): the graph of 1. with no-op
   tasks, N runs at once on one store; counted: state updates lost (the sum of every
   run's node count minus what its final state counted).
5. **Crash** (``--crash N``): `tests/flows/flow_crash_worker.py` SIGKILLed at a random
   progress point (seeded), resumed in a new process; counted: duplicate effects,
   completed nodes run again, runs not ending in the uninterrupted final state.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel

from pilothouse.events import NodeFinished, NodeStarted
from pilothouse.flows import START, Graph, NodeContext, add
from pilothouse.runtime.journal import MemoryStore, SQLiteStore

ROOT = Path(__file__).resolve().parents[1]


class Tally(BaseModel):
    done: Annotated[int, add] = 0


def timed_graph(seconds: dict[str, float], marks: dict[str, tuple[float, float]]) -> Any:
    def task(name: str) -> Any:
        async def run(state: Tally, ctx: NodeContext) -> dict[str, int]:
            began = time.perf_counter()
            await asyncio.sleep(seconds[name])
            marks[ctx.key] = (began, time.perf_counter())
            return {"done": 1}

        return run

    g = Graph(Tally, name="bench")
    for i in range(20):
        seconds[f"a{i}"] = 0.1
        g.node(f"a{i}", task(f"a{i}")).edge(START, f"a{i}")
    for j in range(10):
        seconds[f"b{j}"] = 0.1
        g.node(f"b{j}", task(f"b{j}")).edge(f"a{2 * j}", f"b{j}").edge(f"a{2 * j + 1}", f"b{j}")
    seconds["join"] = 0.1
    g.node("join", task("join"))
    for j in range(10):
        g.edge(f"b{j}", "join")
    seconds["slow"] = 0.25  # beside it, a fast chain that must not wait for it
    g.node("slow", task("slow")).edge(START, "slow")
    previous = START
    for k in range(3):
        seconds[f"fast{k}"] = 0.01
        g.node(f"fast{k}", task(f"fast{k}")).edge(previous, f"fast{k}")
        previous = f"fast{k}"
    seconds["after_fast"] = 0.1
    g.node("after_fast", task("after_fast")).edge(previous, "after_fast")
    return g.build()


async def critical_path(runs: int) -> None:
    walls: list[float] = []
    delays: list[float] = []
    fast_done: list[float] = []
    for n in range(runs):
        seconds: dict[str, float] = {}
        marks: dict[str, tuple[float, float]] = {}
        flow = timed_graph(seconds, marks)
        store = MemoryStore()
        began = time.perf_counter()
        await flow.run(store=store, run_id=f"r{n}")
        walls.append(time.perf_counter() - began)
        for e in store.events(f"r{n}"):
            if isinstance(e, NodeStarted) and e.after:
                delays.append(marks[e.key][0] - max(marks[k][1] for k in e.after))
        fast_done.append(marks["after_fast-0"][1] - began)
    wall = statistics.median(walls)
    print("1. critical path (3 x 100 ms), 32 nodes, median of", runs, "runs")
    print(f"   wall {wall * 1000:.1f} ms; critical path 300 ms; ratio {wall / 0.3:.3f}")
    print(f"   target: <= 1.10 x critical path + 50 ms = {0.3 * 1.1 * 1000 + 50:.0f} ms")
    print(
        f"   fast chain (3 x 10 ms + 100 ms) beside a 250 ms branch ended at "
        f"{statistics.median(fast_done) * 1000:.1f} ms (no barrier: ~130 ms)"
    )
    delays.sort()
    p50 = delays[len(delays) // 2] * 1e3
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))] * 1e3
    print(f"2. start delay after the last dependency ({len(delays)} nodes)")
    print(f"   p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {delays[-1] * 1e3:.3f} ms")


def noop(state: Tally) -> dict[str, int]:
    return {"done": 1}


def fan_graph(items: int) -> Any:
    g = Graph(Tally, name="fan", max_fanout=items)
    g.node("src", lambda s: None).node("item", noop).node("join", lambda s: None)
    g.edge(START, "src").map("src", "item", over=lambda s: range(items), join="join")
    return g.build()


def chain_graph(length: int) -> Any:
    g = Graph(Tally, name="chain")
    previous = START
    for k in range(length):
        g.node(f"n{k}", noop).edge(previous, f"n{k}")
        previous = f"n{k}"
    return g.build()


async def overhead() -> None:
    print("3. per-node overhead (no-op nodes; wall / executions)")
    with tempfile.TemporaryDirectory() as tmp:
        for label, flow, count in (
            ("fan-out 2000 + join", fan_graph(2000), 2002),
            ("chain of 500", chain_graph(500), 500),
        ):
            for store_name in ("memory", "sqlite"):
                best = float("inf")
                for attempt in range(3):
                    store: Any = (
                        MemoryStore()
                        if store_name == "memory"
                        else SQLiteStore(Path(tmp) / f"{label[:4]}{attempt}.db")
                    )
                    began = time.perf_counter()
                    await flow.run(store=store, run_id=f"o{attempt}")
                    best = min(best, time.perf_counter() - began)
                    if store_name == "sqlite":
                        store.close()
                print(f"   {label:<20} {store_name:<7} {best / count * 1e6:8.1f} µs/node")


async def concurrent(runs: int) -> None:
    """Many flows at once on one event loop and one store: no update lost in any."""
    seconds: dict[str, float] = {}
    marks: dict[str, tuple[float, float]] = {}
    flow = timed_graph(seconds, marks)
    for name in seconds:
        seconds[name] = 0.0
    store = MemoryStore()
    began = time.perf_counter()
    results = await asyncio.gather(*(flow.run(store=store, run_id=f"c{n}") for n in range(runs)))
    wall = time.perf_counter() - began
    lost = sum(len(flow.nodes) - r.state.done for r in results)
    print(f"4. {runs} concurrent runs of the 32-node graph (no-op tasks) on one store")
    print(f"   lost state updates {lost}; wall {wall:.2f} s")


def crash(kills: int, seed: int) -> None:
    worker = ROOT / "tests" / "flows" / "flow_crash_worker.py"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), *sys.path[:0]])}
    rng = random.Random(seed)
    dup = rerun = wrong = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        reference: dict[str, Any] | None = None
        for n in range(kills):
            journal, ledger = Path(tmp) / f"j{n}.db", Path(tmp) / f"l{n}.db"
            common = ["--store", str(journal), "--ledger", str(ledger), "--run-id", f"c{n}"]
            point = rng.randint(1, 42)
            killed = subprocess.run(
                [sys.executable, str(worker), "run", *common, "--kill-at", str(point)],
                capture_output=True,
                text=True,
                env=env,
            )
            assert killed.returncode == -signal.SIGKILL, killed.stderr
            on_disk: set[str] = set()
            if journal.exists():
                store = SQLiteStore(journal)
                try:
                    on_disk = {e.key for e in store.events(f"c{n}") if isinstance(e, NodeFinished)}
                except Exception:
                    on_disk = set()
                store.close()
            out = subprocess.run(
                [sys.executable, str(worker), "resume", *common],
                capture_output=True,
                text=True,
                env=env,
            )
            if out.returncode != 0:
                failed += 1
                print(f"   run c{n} (killed at point {point}) did not resume:\n{out.stderr}")
                continue
            report = json.loads(out.stdout)
            state = report["state"]
            state["log"] = sorted(state["log"])
            if reference is None:
                reference = state
            wrong += state != reference
            with sqlite3.connect(ledger) as db:
                effects = [r[0] for r in db.execute("SELECT key FROM effects")]
                again = [
                    key
                    for key, pid in db.execute("SELECT key, pid FROM attempts")
                    if pid == report["pid"] and key.split(":", 1)[1] in on_disk
                ]
            dup += len(effects) - len(set(effects))
            rerun += len(again)
    print(f"5. crash: {kills} SIGKILLs at random progress points (seed {seed}), each resumed")
    print(
        f"   duplicate effects {dup}; completed nodes run again {rerun}; "
        f"wrong final states {wrong}; runs that did not resume {failed}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--crash", type=int, default=0, help="SIGKILL this many runs")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--concurrent", type=int, default=1000, help="runs at once")
    args = parser.parse_args()
    if args.crash:
        crash(args.crash, args.seed)
        return
    asyncio.run(critical_path(args.runs))
    asyncio.run(overhead())
    asyncio.run(concurrent(args.concurrent))


if __name__ == "__main__":
    main()
