"""What `from pilothouse import Agent, tool` costs beyond `import asyncio, pydantic`.

Each measurement is a fresh interpreter (bytecode cached first, as for an installed
package) timing the import with both the wall clock and the process's CPU time; CPU
time is what to compare on a busy machine. The two commands alternate, so load drifts
hit both. Also prints the Pilothouse modules with the largest own import time
(``python -X importtime``), the place to look when the figure grows.

    python benchmarks/import_cost.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

BASE = "import asyncio, pydantic"
WITH = "import asyncio, pydantic; from pilothouse import Agent, tool"
TIMED = (
    "import time; w = time.perf_counter(); c = time.process_time(); {code}; "
    "print(time.perf_counter() - w, time.process_time() - c)"
)


def _env(cache: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache  # compiled once, then read from the cache
    return env


def _time(code: str, env: dict[str, str]) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", TIMED.format(code=code)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.split()
    return float(out[0]) * 1000, float(out[1]) * 1000


def _own_times(env: dict[str, str], top: int) -> list[tuple[int, str]]:
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", WITH],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stderr
    rows: list[tuple[int, str]] = []
    for line in err.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[2].strip().startswith("pilothouse"):
            rows.append((int(parts[0].split(":")[1]), parts[2].strip()))
    return sorted(rows, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        env = _env(cache)
        _time(WITH, env)  # compile and cache the bytecode
        base: list[tuple[float, float]] = []
        with_: list[tuple[float, float]] = []
        for _ in range(args.runs):
            base.append(_time(BASE, env))
            with_.append(_time(WITH, env))
        own = _own_times(env, args.top)
    for label, index in (("wall", 0), ("cpu", 1)):
        b = [r[index] for r in base]
        w = [r[index] for r in with_]
        extra = [y - x for x, y in zip(b, w, strict=True)]
        print(
            f"{label:4}  asyncio+pydantic {min(b):6.1f} ms (min)  with pilothouse "
            f"{min(w):6.1f} ms  extra: min {min(w) - min(b):5.1f} ms, "
            f"median of pairs {statistics.median(extra):5.1f} ms"
        )
    print(f"\nlargest own import times of pilothouse modules (us, one run, {args.top}):")
    for micros, name in own:
        print(f"  {micros:7d}  {name}")


if __name__ == "__main__":
    main()
