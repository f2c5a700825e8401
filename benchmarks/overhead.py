"""Pilothouse's own overhead: per agent step, under concurrency, and at import.

Run: `make bench` (or `.venv/bin/python benchmarks/overhead.py [--quick]`).

Workload: an agent with one plain sync tool and an instant `ScriptedModel` that makes
nine tool calls and then answers, i.e. 10 steps (model calls) per run. Printed:
- microseconds per step over sequential runs, with the in-memory journal and with the
  SQLite journal (a file in a temporary directory, WAL mode): the best of 5 batches,
  with the median beside it;
- wall time and peak RSS of 200 and of 10,000 concurrent runs (each in a fresh
  subprocess, so peak RSS belongs to that measurement alone);
- the time of `import pilothouse` and of `from pilothouse import Agent, tool` in a
  fresh interpreter (median of several, interpreter start-up subtracted).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS_PER_RUN = 10


def make_agent(store: object) -> object:
    from pilothouse import Agent, ScriptedModel, tool
    from pilothouse.messages import ToolCall

    @tool
    def lookup(key: str) -> str:
        """Look a key up."""
        return f"value-of-{key}"

    calls = [ToolCall(f"c{i}", "lookup", {"key": f"k{i}"}) for i in range(STEPS_PER_RUN - 1)]

    def reply(request: object) -> object:
        done = (len(request.messages) - 1) // 2  # type: ignore[attr-defined]
        return calls[done] if done < len(calls) else "final answer"

    return Agent(
        ScriptedModel(reply, record=False), tools=[lookup], store=store, max_steps=STEPS_PER_RUN + 1
    )


def per_step(store: object, runs: int, repeats: int = 5) -> tuple[float, float]:
    """Microseconds per step: (best, median) over `repeats` batches of sequential runs.

    The best batch is the figure least disturbed by other work on the machine (as
    `timeit` reports); the median says how steady it was.
    """
    agent = make_agent(store)

    async def batch(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            result = await agent.run("go")  # type: ignore[attr-defined]
        elapsed = time.perf_counter() - t0
        assert result.output == "final answer" and result.steps == STEPS_PER_RUN
        return elapsed / (n * STEPS_PER_RUN) * 1e6

    async def main() -> list[float]:
        await batch(max(20, runs // 10))  # warm up
        return [await batch(max(1, runs // repeats)) for _ in range(repeats)]

    samples = asyncio.run(main())
    return min(samples), statistics.median(samples)


def concurrent_child(n: int, store: str) -> None:
    """Runs in a subprocess: n concurrent runs; prints wall time and peak RSS as JSON."""
    agent = make_agent(store)

    async def main() -> float:
        await agent.run("warm up")  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        results = await asyncio.gather(*(agent.run(f"q{i}") for i in range(n)))  # type: ignore[attr-defined]
        elapsed = time.perf_counter() - t0
        assert all(r.output == "final answer" for r in results)
        return elapsed

    wall = asyncio.run(main())
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall": wall, "rss_mib": rss_mib}))


def concurrent(n: int, store: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(n), "--store", store],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def import_time(statement: str, repeats: int) -> float:
    def once(code: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - t0

    base = statistics.median(once("pass") for _ in range(repeats))
    return statistics.median(once(statement) for _ in range(repeats)) - base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--store", default=":memory:", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        concurrent_child(args.child, args.store)
        return

    from pilothouse import MemoryStore, SQLiteStore, __version__

    runs = 200 if args.quick else 2000
    print(f"pilothouse {__version__} · Python {sys.version.split()[0]} · {os.cpu_count()} CPUs")
    print(f"workload: 1 sync tool, ScriptedModel, {STEPS_PER_RUN} steps per run\n")

    with tempfile.TemporaryDirectory() as tmp:
        mem, mem_med = per_step(MemoryStore(), runs)
        sql, sql_med = per_step(SQLiteStore(Path(tmp) / "bench.db"), runs)
        print(f"per step, in-memory journal   {mem:8.1f} µs   (median {mem_med:.1f}; target ≤ 30)")
        print(f"per step, SQLite journal      {sql:8.1f} µs   (median {sql_med:.1f}; target ≤ 100)")

        for n, target in ((200, "wall ≤ 0.2 s"), (10_000, "RSS ≤ 1024 MiB")):
            m = concurrent(n, ":memory:")
            print(
                f"{n:>6} concurrent runs, memory  wall {m['wall']:6.3f} s   "
                f"peak RSS {m['rss_mib']:7.1f} MiB   (target {target})"
            )
        s = concurrent(200, str(Path(tmp) / "conc.db"))
        print(
            f"   200 concurrent runs, SQLite  wall {s['wall']:6.3f} s   "
            f"peak RSS {s['rss_mib']:7.1f} MiB"
        )

    repeats = 5 if args.quick else 15
    print(
        f"import pilothouse             {import_time('import pilothouse', repeats):8.3f} s   "
        "(target ≤ 0.15)"
    )
    full = import_time("from pilothouse import Agent, tool", repeats)
    print(f"from pilothouse import Agent, tool {full:5.3f} s   (loads pydantic)")


if __name__ == "__main__":
    main()
