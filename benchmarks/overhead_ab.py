"""Per-step overhead of this tree against another revision, measured in one run.

"Measure before and after touching the loop": `benchmarks/overhead.py`'s per-step
workload (a sync tool, a `ScriptedModel`, 10 steps a run; in-memory and SQLite
journals) for the working tree and for `--base` (a git revision, unpacked with `git
archive`), each round in fresh interpreters, alternating which goes first. The clock is
the process's CPU time, so other work on a busy machine counts far less than with the
wall clock; the best of the rounds is printed for each tree.

    python benchmarks/overhead_ab.py --base ef503c4 [--rounds 6] [--runs 2000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = """
import json, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, {bench!r})
import overhead
from pilothouse import MemoryStore, SQLiteStore
overhead.time.perf_counter = time.process_time
mem = overhead.per_step(MemoryStore(), {runs})
with tempfile.TemporaryDirectory() as tmp:
    sql = overhead.per_step(SQLiteStore(Path(tmp) / "b.db"), {runs})
print(json.dumps([mem[0], sql[0]]))
"""


def _measure(tree: Path, bench: Path, runs: int) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", CODE.format(bench=str(bench), runs=runs)],
        env={"PYTHONPATH": str(tree / "src"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    mem, sql = json.loads(out)
    return float(mem), float(sql)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="a git revision to compare against")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        base.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.base], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        # the same workload for both: this tree's benchmark script over each tree's package
        trees = {f"base {args.base}": base, "this tree": ROOT}
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
        for r in range(args.rounds):
            order = list(trees.items()) if r % 2 == 0 else list(reversed(trees.items()))
            for name, tree in order:
                results[name].append(_measure(tree, ROOT / "benchmarks", args.runs))
                mem, sql = results[name][-1]
                print(f"round {r + 1}: {name:>16}  memory {mem:6.1f} µs  SQLite {sql:6.1f} µs")
    print()
    for name, xs in results.items():
        print(
            f"{name:>16}: best in-memory {min(x[0] for x in xs):.1f} µs/step, "
            f"best SQLite {min(x[1] for x in xs):.1f} µs/step (CPU time)"
        )


if __name__ == "__main__":
    main()
