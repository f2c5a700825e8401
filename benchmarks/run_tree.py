"""What a child run's start costs, next to a plain run's (`ToolContext.run_child`).

Run: `.venv/bin/python benchmarks/run_tree.py [--quick]`.

Target (the run-tree issue): a child run's start costs at most 2x a plain run's start.

Workload: `ScriptedModel`s that answer at once, sequential runs, the in-memory
journal and the SQLite journal (a file in a temporary directory, WAL mode). Three
agents, each measured as microseconds per run (start to finish):

- plain: a one-step run (one model call, its final answer);
- parent + plain tool: a two-step run whose first step calls a side-effecting tool
  (``on_doubt="retry"``, as a delegating tool is declared) that returns at once;
- parent + child: the same, but the tool starts a one-step child run with
  `run_child` and returns the child's answer.

The child run's cost is (parent + child) - (parent + plain tool): the child's start,
its one step and its end, and what the parent records of it (child_started,
child_finished, the usage rolled up). Printed: the best of N batches (the figure
least disturbed by other work on the machine, as `timeit` reports) on the wall clock
(`time.perf_counter`), the median beside it, and the best in CPU time of this process
(`time.process_time`); the three agents are measured in turn within each round, so a
busy moment of the machine falls on all of them. Then child / plain.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VARIANTS = ("plain", "parent + plain tool", "parent + child")


def make_agents(store: object) -> dict[str, Any]:
    """The three agents of the workload, on one journal store."""
    from pilothouse import Agent, Policy, ScriptedModel, tool
    from pilothouse.messages import ToolCall
    from pilothouse.tools import ToolContext

    def answer(request: object) -> object:
        return "final answer"

    def parent_model(tool_name: str) -> ScriptedModel:
        call = ToolCall("c1", tool_name, {"task": "t"})

        def reply(request: Any) -> object:
            answered = sum(1 for m in request.messages if m.role == "assistant")
            return call if answered == 0 else "done"

        return ScriptedModel(reply, record=False)

    child = Agent(ScriptedModel(answer, record=False), name="child", store=store)

    @tool(effect="side_effect", on_doubt="retry")
    async def delegate(ctx: ToolContext, task: str) -> str:
        """Hand the task to a child run; its answer is the result."""
        result = await ctx.run_child(child, task)
        return str(result.output)

    @tool(effect="side_effect", on_doubt="retry")
    async def handle(ctx: ToolContext, task: str) -> str:
        """Handle the task here."""
        return "final answer"

    allow = Policy.allow_all()
    return {
        "plain": Agent(ScriptedModel(answer, record=False), name="plain", store=store),
        "parent + plain tool": Agent(
            parent_model("handle"), tools=[handle], name="lead-tool", store=store, policy=allow
        ),
        "parent + child": Agent(
            parent_model("delegate"), tools=[delegate], name="lead-child", store=store, policy=allow
        ),
    }


def measure(store: object, runs: int, repeats: int) -> dict[str, dict[str, float]]:
    """Per variant, µs per run: best and median wall time, best CPU time."""
    agents = make_agents(store)
    steps = {"plain": 1, "parent + plain tool": 2, "parent + child": 2}

    async def batch(name: str, n: int) -> tuple[float, float]:
        agent = agents[name]
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            result = await agent.run("go")
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert result.ok and result.steps == steps[name], (name, result.outcome)
        if name == "parent + child":
            assert result.usage.requests == 3  # the child's one model call rolled up
        return wall / n * 1e6, cpu / n * 1e6

    async def main() -> dict[str, list[tuple[float, float]]]:
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
        for name in VARIANTS:  # warm up
            await batch(name, max(20, runs // 10))
        for _ in range(repeats):
            for name in VARIANTS:
                samples[name].append(await batch(name, max(1, runs // repeats)))
        return samples

    samples = asyncio.run(main())
    return {
        name: {
            "best": min(w for w, _ in got),
            "median": statistics.median(w for w, _ in got),
            "cpu": min(c for _, c in got),
        }
        for name, got in samples.items()
    }


def table(label: str, figures: dict[str, dict[str, float]]) -> None:
    plain, tool, child = (figures[name] for name in VARIANTS)
    for name in VARIANTS:
        f = figures[name]
        print(f"{label:<7} {name:<22} {f['best']:9.1f} {f['median']:9.1f} {f['cpu']:9.1f}")
    cost = {k: child[k] - tool[k] for k in ("best", "median", "cpu")}
    print(
        f"{label:<7} {'child run (difference)':<22} "
        f"{cost['best']:9.1f} {cost['median']:9.1f} {cost['cpu']:9.1f}"
    )
    ratio = {k: cost[k] / plain[k] for k in ("best", "median", "cpu")}
    print(
        f"{label:<7} {'child / plain':<22} {ratio['best']:8.2f}x {ratio['median']:8.2f}x "
        f"{ratio['cpu']:8.2f}x   (target ≤ 2x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--runs", type=int, help="runs per variant in all (default 3000)")
    parser.add_argument("--repeats", type=int, default=15, help="batches per variant")
    args = parser.parse_args()

    from pilothouse import MemoryStore, SQLiteStore, __version__

    runs = args.runs or (300 if args.quick else 3000)
    print(f"pilothouse {__version__} · Python {sys.version.split()[0]} · {os.cpu_count()} CPUs")
    print(
        f"workload: ScriptedModel, sequential runs; {runs} runs per variant in "
        f"{args.repeats} batches (after a warm-up)\n"
    )
    print(f"{'store':<7} {'µs per run':<22} {'best':>9} {'median':>9} {'CPU best':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        table("memory", measure(MemoryStore(), runs, args.repeats))
        table("SQLite", measure(SQLiteStore(Path(tmp) / "bench.db"), runs, args.repeats))


if __name__ == "__main__":
    main()
