"""Pilothouse against its peers: the same agent workload on each, in one run.

    make bench-peers            (creates /tmp/pilothouse-peers-venv on first use)
    python benchmarks/peers/run.py [--quick] [--only NAME ...] [--no-parse] [--no-flows]
                                   [--no-teams] [--json PATH]

Run it with the peers' virtual environment (benchmarks/peers/requirements.txt plus
`pip install -e .`), so that every framework runs in the same interpreter. The
workload is in `workloads.py`: one sync tool, an instant scripted model, nine tool
calls and a final answer per run, each run checked. Printed, for Pilothouse (in-memory
journal, SQLite journal, and with the tool moved to a worker thread) and for
LangGraph, PydanticAI, the OpenAI Agents SDK and smolagents:

- import time: median over fresh interpreters of the workload's imports, less the
  median start-up of a bare interpreter;
- microseconds per step (model call + tool call): median run over 200 sequential runs
  after 20 warm-up runs, with CPU microseconds per step beside it;
- wall time and peak RSS of 200 concurrent runs (sequential for a framework without an
  async API, and marked so), each in a fresh interpreter;

then LangChain's parse recovery beside Pilothouse's (`benchmarks/parse_recovery.py
--langchain`), the flows workload on Pilothouse's `Graph` and LangGraph's `StateGraph`
(`flow_workloads.py`: a DAG's wall time against its critical path, start delays, per-node
overhead), the overhead per handoff on Pilothouse's `Team`, the OpenAI Agents SDK and
LangGraph swarm (`team_workloads.py`), and last the ratio of each peer to Pilothouse
(in-memory journal).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from workloads import IMPORTS, STEPS_PER_RUN  # noqa: E402

PEERS = ["langgraph", "pydantic-ai", "openai-agents", "smolagents"]
DISTRIBUTION = {
    "pilothouse": "pilothouse",
    "langgraph": "langgraph",
    "pydantic-ai": "pydantic-ai-slim",
    "openai-agents": "openai-agents",
    "smolagents": "smolagents",
}
# Table rows: (label, framework for workloads.py, import key, Pilothouse store or None).
PILOTHOUSE_ROWS = [
    ("pilothouse", "pilothouse", "pilothouse", ":memory:"),
    ("pilothouse, SQLite journal", "pilothouse", "pilothouse", "sqlite"),
    ("pilothouse, tool in a thread", "pilothouse-blocking", "pilothouse", ":memory:"),
]
BASELINE = "pilothouse"


def version_of(framework: str) -> str:
    try:
        return metadata.version(DISTRIBUTION[framework])
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def child(args: list[str], timeout: float) -> dict[str, Any]:
    """Run workloads.py in a fresh interpreter; its last stdout line is JSON."""
    proc = subprocess.run(
        [sys.executable, str(HERE / "workloads.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"workloads.py {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def import_times(keys: list[str], repeats: int) -> dict[str, float]:
    """Seconds to run each key's import statement in a fresh interpreter (median).

    The interpreters are started round-robin (bare, then every framework, repeated),
    so a burst of load on the machine touches every framework alike.
    """

    def once(code: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        return time.perf_counter() - t0

    samples: dict[str, list[float]] = {key: [] for key in ["", *keys]}
    for _ in range(repeats):
        for key in samples:
            samples[key].append(once(IMPORTS[key] if key else "pass"))
    base = statistics.median(samples[""])
    return {key: statistics.median(samples[key]) - base for key in keys}


def measure_row(framework: str, store: str, runs: int, tmp: Path) -> dict[str, Any]:
    if store == "sqlite":
        seq_store, conc_store = str(tmp / "seq.db"), str(tmp / "conc.db")
    else:
        seq_store = conc_store = store
    timeout = 900.0
    seq = child([framework, "seq", "--store", seq_store, "--runs", str(runs)], timeout)
    conc = child([framework, "conc", "--store", conc_store, "--runs", str(runs)], timeout)
    return {**seq, **conc}


def parse_recovery() -> list[str]:
    """benchmarks/parse_recovery.py --langchain, as it prints (it owns LangChain's venv)."""
    try:
        proc = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "parse_recovery.py"), "--langchain"],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ["parse recovery: timed out"]
    lines = [
        line
        for line in proc.stdout.splitlines()
        if line.startswith(("corpus:", "pilothouse", "langchain"))
    ]
    if proc.returncode != 0 or not lines:
        return [f"parse recovery did not run: {(proc.stderr or proc.stdout).strip()[-500:]}"]
    return lines


def flows(runs: int) -> list[str]:
    """benchmarks/peers/flow_workloads.py, as it prints: a DAG's wall time against its
    critical path, start delays and per-node overhead, on Pilothouse and LangGraph."""
    try:
        proc = subprocess.run(
            [sys.executable, str(HERE / "flow_workloads.py"), "--runs", str(runs)],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ["flows: timed out"]
    if proc.returncode != 0:
        return [f"flows did not run: {(proc.stderr or proc.stdout).strip()[-500:]}"]
    return proc.stdout.splitlines()


def teams(runs: int) -> list[str]:
    """benchmarks/peers/team_workloads.py, as it prints: µs per handoff on Pilothouse's
    `Team`, the OpenAI Agents SDK and LangGraph swarm."""
    try:
        proc = subprocess.run(
            [sys.executable, str(HERE / "team_workloads.py"), "--runs", str(runs)],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ["teams: timed out"]
    if proc.returncode != 0:
        return [f"teams did not run: {(proc.stderr or proc.stdout).strip()[-500:]}"]
    return proc.stdout.splitlines()


def table(rows: list[dict[str, Any]], runs: int) -> list[str]:
    header = [
        "framework",
        "version",
        "import s",
        "µs/step",
        "CPU µs/step",
        f"{runs} runs wall s",
        "peak RSS MiB",
        f"{runs} runs were",
    ]
    body = []
    for r in rows:
        if "error" in r:
            body.append([r["label"], r["version"], "failed: " + r["error"], "", "", "", "", ""])
            continue
        body.append(
            [
                r["label"],
                r["version"],
                f"{r['import_s']:.3f}",
                f"{r['us_per_step']:.1f}",
                f"{r['cpu_us_per_step']:.1f}",
                f"{r['wall_s']:.3f}",
                f"{r['rss_mib']:.1f}",
                "concurrent" if r["concurrent"] else "SEQUENTIAL (no async API)",
            ]
        )
    widths = [max(len(str(row[i])) for row in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [
            str(c).ljust(w) if i in (0, 1, 7) else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return [line(header), rule, *(line(b) for b in body)]


def ratios(rows: list[dict[str, Any]]) -> list[str]:
    """Each peer's figure divided by Pilothouse's (in-memory journal): > 1 means slower."""
    base = next(r for r in rows if r["label"] == BASELINE and "error" not in r)
    keys = [
        ("import_s", "import"),
        ("us_per_step", "µs/step"),
        ("cpu_us_per_step", "CPU µs/step"),
        ("wall_s", "wall"),
        ("rss_mib", "peak RSS"),
    ]
    width = max(len(r["label"]) for r in rows)
    out = [f"{'peer / pilothouse':<{width}}  " + "  ".join(f"{k[1]:>11}" for k in keys)]
    for r in rows:
        if r["label"].startswith("pilothouse") or "error" in r:
            continue
        cells = []
        for key, _ in keys:
            cells.append(f"{r[key] / base[key]:>10.1f}x" if base[key] > 0 else f"{'n/a':>11}")
        out.append(f"{r['label']:<{width}}  " + "  ".join(cells))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 runs and 3 imports (smoke)")
    parser.add_argument("--only", nargs="*", choices=PEERS, help="peers to run (default all)")
    parser.add_argument("--no-parse", action="store_true", help="skip the parse comparison")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--no-flows", action="store_true", help="skip the flows workload (flow_workloads.py)"
    )
    parser.add_argument(
        "--no-teams", action="store_true", help="skip the handoff workload (team_workloads.py)"
    )
    options = parser.parse_args()
    peers = PEERS if options.only is None else options.only
    runs = 20 if options.quick else 200
    repeats = 3 if options.quick else 7

    missing = [p for p in peers if version_of(p) == "not installed"]
    if missing:
        print(
            f"not installed here: {', '.join(missing)}; run `make bench-peers` "
            "(it creates the peers' virtual environment)",
            file=sys.stderr,
        )
        return 2

    started = time.perf_counter()
    load_before = os.getloadavg()
    print(
        f"Python {platform.python_version()} · {cpu_model()} · {os.cpu_count()} CPUs · "
        f"load average {load_before[0]:.1f} at start"
    )
    print(
        f"workload: 1 sync tool, instant scripted model, {STEPS_PER_RUN - 1} tool calls + "
        f"answer = {STEPS_PER_RUN} steps per run; every run checked\n"
    )

    print("import times ...", file=sys.stderr)
    imports = import_times(["pilothouse", *peers], repeats)
    rows: list[dict[str, Any]] = []
    specs = [*PILOTHOUSE_ROWS, *((p, p, p, ":memory:") for p in peers)]
    with tempfile.TemporaryDirectory() as tmp:
        for label, framework, import_key, store in specs:
            print(f"{label} ...", file=sys.stderr)
            row: dict[str, Any] = {
                "label": label,
                "version": version_of(import_key),
                "import_s": imports[import_key],
            }
            try:
                row.update(measure_row(framework, store, runs, Path(tmp)))
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                print(str(exc), file=sys.stderr)
                row["error"] = str(exc).splitlines()[0][:60]
            rows.append(row)

    for line in table(rows, runs):
        print(line)
    print(
        "\nimport s: median of fresh interpreters less bare start-up · µs/step: median run "
        f"of {runs} sequential runs / {STEPS_PER_RUN} · CPU µs/step: CPU time of those runs "
        f"/ steps · wall and peak RSS: {runs} runs in a fresh interpreter"
    )

    parse_lines: list[str] = []
    if not options.no_parse:
        print("parse recovery ...", file=sys.stderr)
        parse_lines = parse_recovery()
        print("\nparse recovery on the shared corpus (benchmarks/parse_recovery.py --langchain):")
        for line in parse_lines:
            print("  " + line)

    flow_lines: list[str] = []
    if not options.no_flows and "langgraph" in peers:
        print("flows ...", file=sys.stderr)
        flow_lines = flows(runs=5 if options.quick else 20)
        print("\nthe same graph on Pilothouse and LangGraph (benchmarks/peers/flow_workloads.py):")
        for line in flow_lines:
            print("  " + line)

    team_lines: list[str] = []
    if not options.no_teams and "openai-agents" in peers:
        print("teams ...", file=sys.stderr)
        team_lines = teams(runs=20 if options.quick else 200)
        print("\nhandoffs on Pilothouse, the OpenAI Agents SDK and LangGraph swarm:")
        for line in team_lines:
            print("  " + line)

    load_after = os.getloadavg()
    elapsed = time.perf_counter() - started
    print(f"\nload average {load_after[0]:.1f} at the end · took {elapsed:.0f} s")
    print("\nratios to pilothouse (in-memory journal), > 1x means the peer is slower or larger:")
    for line in ratios(rows):
        print(line)

    if options.json:
        options.json.write_text(
            json.dumps(
                {
                    "python": platform.python_version(),
                    "cpu": cpu_model(),
                    "cpus": os.cpu_count(),
                    "load_average": [load_before[0], load_after[0]],
                    "runs": runs,
                    "rows": rows,
                    "parse_recovery": parse_lines,
                    "flows": flow_lines,
                    "teams": team_lines,
                },
                indent=2,
            )
        )
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
