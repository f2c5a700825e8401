"""What a team's handoff and delegation cost, in microseconds (`pilothouse.teams`).

Run: `python benchmarks/teams.py [--quick]`.

Workload: `ScriptedModel`s that answer at once, sequential runs, the in-memory
journal and the SQLite journal (a file in a temporary directory). Four runs, each
timed start to finish:

- plain tool: a two-step run whose first step calls a read-only tool returning at
  once (the baseline of a source agent: one call, then an answer);
- member alone: a one-step run (what the target or the member does by itself);
- handoff: a team whose entry agent calls `transfer_to_b` (typed payload, context
  policy `payload`) and b answers in one step; the entry run ends with b's output
  through the team's step hook (no second model call);
- delegation: an agent whose first step calls `ask_b` (`agent_tool`), b answers in
  one step, and the agent answers.

Overhead per handoff = handoff - plain tool - member alone; per delegation =
delegation - plain tool - member alone: what the team layer adds over running the
two agents by themselves (the child's start and end, the journal records of the
transfer, the run-tree reads of the loop guard, the hook). Printed: the best of N
batches (least disturbed by other work on the machine) and the median beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from pilothouse import Agent, ScriptedModel, call, tool
from pilothouse.runtime.journal import MemoryStore, SQLiteStore, Store
from pilothouse.teams import Handoff, Team, agent_tool


@tool
def noop(x: str) -> str:
    """Return at once."""
    return x


def scripted(replies: list[Any]) -> ScriptedModel:
    """A model answering the same script on every run (the script restarts)."""

    def reply(request: Any) -> Any:
        tools = [m for m in request.messages if m.role == "tool"]
        return replies[min(len(tools), len(replies) - 1)]

    return ScriptedModel(reply, record=False)


def runners(store: Store) -> dict[str, Callable[[str], Coroutine[Any, Any, Any]]]:
    plain = Agent(scripted([call("noop", x="a"), "done"]), "A.", [noop], name="a0", store=store)
    alone = Agent(scripted(["b done"]), "B.", name="b", store=store)
    source = Agent(
        scripted([call("transfer_to_b", reason="yours", payload={"request": "go"})]),
        "A.",
        name="a",
        store=store,
    )
    team = Team(source, handoffs={"a": [Handoff(alone)]})
    lead = Agent(
        scripted([call("ask_b", task="go"), "done"]),
        "L.",
        [agent_tool(alone)],
        name="lead",
        store=store,
    )
    return {
        "plain tool": lambda rid: plain.run("go", run_id=rid),
        "member alone": lambda rid: alone.run("go", run_id=rid),
        "handoff": lambda rid: team.run("go", run_id=rid),
        "delegation": lambda rid: lead.run("go", run_id=rid),
    }


async def measure(store: Store, batches: int, per_batch: int) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {}
    run = runners(store)
    n = 0
    for _ in range(batches):
        for name, start in run.items():
            began = time.perf_counter()
            for _ in range(per_batch):
                n += 1
                result = await start(f"r{n}")
                assert result.outcome == "final", (name, result.outcome)
            found.setdefault(name, []).append((time.perf_counter() - began) / per_batch * 1e6)
    return found


def report(label: str, found: dict[str, list[float]]) -> None:
    best = {k: min(v) for k, v in found.items()}
    median = {k: statistics.median(v) for k, v in found.items()}
    print(f"{label}:")
    for name in found:
        print(f"  {name:<13} {best[name]:8.0f} µs per run (median {median[name]:.0f})")
    for kind in ("handoff", "delegation"):
        over = best[kind] - best["plain tool"] - best["member alone"]
        over_median = median[kind] - median["plain tool"] - median["member alone"]
        print(f"  overhead per {kind}: {over:.0f} µs (median {over_median:.0f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (a smoke test)")
    args = parser.parse_args()
    batches, per_batch = (3, 20) if args.quick else (7, 100)
    report("memory journal", asyncio.run(measure(MemoryStore(), batches, per_batch)))
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(str(Path(tmp) / "bench.db"))
        report("SQLite journal", asyncio.run(measure(store, batches, per_batch)))


if __name__ == "__main__":
    main()
