"""The journal's overhead per agent step: no journal, in-memory, SQLite, PostgreSQL.

Run: `make bench` (or `.venv/bin/python benchmarks/journal_overhead.py [--quick]`).

Workload: 10-step runs (nine tool calls, then an answer) against an instant
`ScriptedModel`, one sync tool, run one after another. Two variants:
- read-only tool: the journal groups such steps (one write per `flush_interval`), so a
  fast run costs about one transaction;
- side-effecting tool: every step commits twice, the `tool_call` before the tool runs
  and its `tool_result` after (docs/ARCHITECTURE.md, commit points).

Each figure is microseconds per step: the best of 5 batches, median beside it; the
overhead is the figure minus the same run with a store that discards everything.
PostgreSQL is a throwaway server started for the benchmark on 127.0.0.1 (the Debian
package, as in the tests: tests/pgserver.py) with its default durability (fsync on,
``synchronous_commit=on``); it is measured once more with ``synchronous_commit=off``
set by the client (``?options=-c%20synchronous_commit%3Doff`` in the URL), which
keeps the database consistent but may lose the last commits if the server crashes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/pgserver.py

STEPS_PER_RUN = 10


class DiscardStore:
    """The baseline: a store that keeps nothing, so the difference is the journal's cost."""

    def write(self, events: Sequence[Any], run: Any = None) -> None:
        pass

    def close(self) -> None:
        pass


def make_agent(store: Any, effect: str) -> Any:
    from pilothouse import Agent, Policy, ScriptedModel, tool
    from pilothouse.messages import ToolCall

    @tool(effect=effect)  # type: ignore[call-overload]
    def note(key: str) -> str:
        """Write a note (side_effect) or read one (read_only)."""
        return f"value-of-{key}"

    calls = [ToolCall(f"c{i}", "note", {"key": f"k{i}"}) for i in range(STEPS_PER_RUN - 1)]

    def reply(request: Any) -> Any:
        done = (len(request.messages) - 1) // 2
        return calls[done] if done < len(calls) else "final answer"

    return Agent(
        ScriptedModel(reply, record=False),
        tools=[note],
        store=store,
        policy=Policy.allow_all(),
        max_steps=STEPS_PER_RUN + 1,
    )


def per_step(store: Any, effect: str, runs: int, repeats: int = 5) -> tuple[float, float]:
    """Microseconds per step: (best, median) over `repeats` batches of sequential runs."""
    agent = make_agent(store, effect)

    async def batch(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            result = await agent.run("go")
        elapsed = time.perf_counter() - t0
        assert result.output == "final answer" and result.steps == STEPS_PER_RUN
        return elapsed / (n * STEPS_PER_RUN) * 1e6

    async def main() -> list[float]:
        await batch(max(5, runs // 10))  # warm up (PostgreSQL: prepared statements)
        return [await batch(max(1, runs // repeats)) for _ in range(repeats)]

    samples = asyncio.run(main())
    return min(samples), statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs per batch")
    parser.add_argument(
        "--dsn", help="measure this PostgreSQL database instead of starting a throwaway server"
    )
    args = parser.parse_args()

    from pilothouse import MemoryStore, SQLiteStore, __version__

    runs = {"read_only": 100 if args.quick else 1000, "side_effect": 40 if args.quick else 200}
    print(f"pilothouse {__version__} · Python {sys.version.split()[0]} · {os.cpu_count()} CPUs")
    print(f"workload: {STEPS_PER_RUN}-step runs, 1 sync tool, ScriptedModel; µs per step,")
    print("best of 5 batches (median); overhead = minus the same run with no journal\n")

    stores: list[tuple[str, Any]] = []
    server = None
    with tempfile.TemporaryDirectory() as tmp:
        stores += [("no journal", lambda: DiscardStore()), ("in-memory", MemoryStore)]
        stores.append(("SQLite (WAL)", lambda: SQLiteStore(Path(tmp) / "bench.db")))
        dsn = args.dsn
        if dsn is None:
            from pgserver import PostgresUnavailable, start_postgres

            try:
                server = start_postgres("bench", durable=True)
                dsn = server.dsn
            except PostgresUnavailable as exc:
                print(f"PostgreSQL skipped: {exc}\n")
        try:
            if dsn is not None:
                from pilothouse.runtime.postgres import PostgresStore

                fast = dsn + ("&" if "?" in dsn else "?") + "options=-c%20synchronous_commit%3Doff"
                stores.append(("PostgreSQL", lambda: PostgresStore(dsn)))
                stores.append(("PostgreSQL, sync commit off", lambda: PostgresStore(fast)))
            for effect in runs:  # warm the interpreter up before the baseline is taken
                per_step(DiscardStore(), effect, runs[effect])
            print(f"{'store':<28} {'read-only tool':>26}   {'side-effecting tool':>26}")
            base: dict[str, float] = {}
            for name, make in stores:
                cells = []
                for effect in ("read_only", "side_effect"):
                    store = make()
                    best, median = per_step(store, effect, runs[effect])
                    store.close()
                    if name == "no journal":
                        base[effect] = best
                        cells.append(f"{best:8.1f} ({median:7.1f})         ")
                    else:
                        extra = best - base[effect]
                        cells.append(f"{best:8.1f} ({median:7.1f}) {extra:+8.1f}")
                print(f"{name:<28} {cells[0]:>26}   {cells[1]:>26}")
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
