"""BFCL v4 on a model: the default construction against the naive JSON baseline.

    python benchmarks/bfcl.py --jsonl out.jsonl                 # local model, the sample
    python benchmarks/bfcl.py --per-part 6 --constructions naive --jsonl naive.jsonl
    python benchmarks/bfcl.py --report default.jsonl naive.jsonl   # the table again

Runs the fixed sample of each category (split.json: tune and holdout; live categories
are all holdout) one case at a time (the embedded model serves one generation at a
time), one model turn per case, scored by BFCL's AST checker. ``--per-part N`` takes
the first N ids of each part (the baseline in docs/bfcl.md). Cases are taken round-robin
across the categories, so a run cut short still covers every category. Each sample is
appended to ``--jsonl`` as it finishes (category, construction, part, case, pass,
failure kind, seconds); ``--report`` prints the table from such files (a case that
appears in several rows counts once: its last row). ``--cases`` reruns named cases,
e.g. those a loaded machine stopped on the time budget (``--max-seconds``): at
temperature 0 the replies do not depend on time, only whether they arrive in it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

CATEGORIES = ["simple_python", "multiple", "irrelevance", "live_simple"]


def _kind(message: str, failure: str | None) -> str:
    if message.startswith("[") and "]" in message:
        return message[1 : message.index("]")]
    return failure or "pass"


def _rate(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "-"
    passed = sum(bool(r["ok"]) for r in rows)
    return f"{100 * passed / len(rows):.0f}% ({passed}/{len(rows)})"


def report(rows: list[dict[str, Any]]) -> str:
    """The markdown table: pass rate per category and part, per construction."""
    constructions = sorted({r["construction"] for r in rows}, key=lambda c: c != "default")
    cells: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        cells[(r["category"], r["part"], r["construction"])].append(r)
        cells[(r["category"], "all", r["construction"])].append(r)
    head = "| category | part | " + " | ".join(constructions) + " |"
    lines = [head, "| --- | --- |" + " ---: |" * len(constructions)]
    categories = [c for c in CATEGORIES if any(r["category"] == c for r in rows)]
    categories += sorted({r["category"] for r in rows} - set(categories))
    for category in categories:
        for part in ("tune", "holdout", "all"):
            got = [cells.get((category, part, c), []) for c in constructions]
            if not any(got) or (
                part == "all"
                and not all(
                    cells.get((category, p, c)) for p in ("tune", "holdout") for c in constructions
                )
            ):
                continue
            shown = [_rate(g) for g in got]
            lines.append(f"| {category} | {part} | " + " | ".join(shown) + " |")
    means, medians = [], []
    for c in constructions:
        mine = sorted(r["seconds"] for r in rows if r["construction"] == c)
        means.append(f"{sum(mine) / len(mine):.1f} s" if mine else "-")
        medians.append(f"{mine[len(mine) // 2]:.1f} s" if mine else "-")
    lines.append("| mean seconds per case | | " + " | ".join(means) + " |")
    lines.append("| median seconds per case | | " + " | ".join(medians) + " |")
    lines.append("")
    for c in constructions:
        kinds = Counter(r["kind"] for r in rows if r["construction"] == c and not r["ok"])
        lines.append(f"- {c} failures: " + ", ".join(f"{k} {n}" for k, n in kinds.most_common()))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--categories", nargs="+", default=CATEGORIES)
    parser.add_argument("--constructions", nargs="+", default=["default", "naive"])
    parser.add_argument("--model", default="local")
    parser.add_argument("--per-part", type=int, default=None, help="first N ids of each part")
    parser.add_argument("--parts", nargs="+", default=["tune", "holdout"])
    parser.add_argument("--max-seconds", type=float, default=120)
    parser.add_argument("--round", type=int, default=4, help="cases per category per round")
    parser.add_argument("--jsonl", help="append each sample here as it finishes")
    parser.add_argument("--log-dir", help="also write each run's eval log here (drill-down)")
    parser.add_argument("--report", nargs="+", help="print the table from these files")
    parser.add_argument("--cases", nargs="+", help="only these case ids (rerun time-outs)")
    args = parser.parse_args()

    if args.report:
        rows = [json.loads(line) for f in args.report for line in Path(f).read_text().splitlines()]
        last = {(r["construction"], r["case"]): r for r in rows}
        rows = list(last.values())
        print(report(rows))
        return 0

    from pilothouse_suites.bfcl import available

    if not available():
        from pilothouse_suites.bfcl import INSTALL_HINT

        print(INSTALL_HINT, file=sys.stderr)
        return 2
    import dataclasses

    from pilothouse.evals import run_eval
    from pilothouse_suites.bfcl import bfcl_suite, sample_ids

    queues: dict[str, list[tuple[str, str]]] = {}
    for category in args.categories:
        queue = []
        parts = [p for p in args.parts if sample_ids(category, p)]
        for part in parts:  # a live category is all holdout: it takes the other part's share
            ids = sample_ids(category, part)
            limit = None if args.per_part is None else args.per_part * len(args.parts) // len(parts)
            queue += [(i, part) for i in ids[:limit] if not args.cases or i in args.cases]
        queues[category] = queue
    rows: list[dict[str, Any]] = []
    start = 0
    while any(start < len(q) for q in queues.values()):
        for category, queue in queues.items():
            chunk = queue[start : start + args.round]
            if not chunk:
                continue
            part_of = dict(chunk)
            for construction in args.constructions:
                suite = bfcl_suite(category, naive=construction == "naive", part="all")
                suite.scenarios = [s for s in suite.scenarios if s.name in part_of]
                budget = dataclasses.replace(suite.budget, max_seconds=args.max_seconds)
                log = asyncio.run(
                    run_eval(suite, [args.model], epochs=1, concurrency=1, budget=budget)
                )
                if args.log_dir:
                    from pilothouse.evals.report import write_log

                    name = f"{category}-{construction}-{start}.json"
                    write_log(log, Path(args.log_dir) / name)
                for s in log.samples:
                    row = {
                        "category": category,
                        "construction": construction,
                        "part": part_of[s.scenario],
                        "case": s.scenario,
                        "ok": s.ok,
                        "kind": "pass" if s.ok else _kind(s.message, s.failure),
                        "message": s.message,
                        "seconds": round(s.latency, 2),
                    }
                    rows.append(row)
                    if args.jsonl:
                        with Path(args.jsonl).open("a", encoding="utf-8") as out:
                            out.write(json.dumps(row) + "\n")
                    print(json.dumps(row), file=sys.stderr, flush=True)
        start += args.round
    print(report(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
