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

Each row also carries the tokens generated, each guided stage's seconds and tokens, and
the load average; a held-out row's message and stages are left out of the progress
lines (they stay in the file: counted, not read). ``--pool FILE`` runs the ids a pool
sample file lists instead (benchmarks/data/bfcl_pool_sample.json: a seeded draw of the
tune pool, `data.draw_pool_sample`), tagged part ``pool``. ``--label`` names the construction in
the rows (before/after); ``--ablate NAME ...`` (`ABLATIONS`)
switches parts of the guided construction off in this process, for ablations
(docs/bfcl.md, third round).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

CATEGORIES = ["simple_python", "multiple", "irrelevance", "live_simple"]
# the live-like set (user tools from public code, tune/holdout by tool):
# --categories livelike_simple livelike_irrelevance


def _kind(message: str, failure: str | None) -> str:
    if message.startswith("[") and "]" in message:
        return message[1 : message.index("]")]
    return failure or "pass"


def _stages(events: list[dict[str, Any]]) -> list[list[Any]]:
    """[stage, seconds, tokens generated] of each guided stage in a sample's journal."""
    out = []
    for e in events:
        if e.get("type") == "stage_response":
            usage = (e.get("response") or {}).get("usage") or {}
            out.append(
                [e.get("stage"), round(e.get("duration") or 0.0, 2), usage.get("output_tokens")]
            )
    return out


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    """What the progress line shows of a row: a held-out case's failure is counted, not
    read (its message and stages are left out; they stay in the jsonl file)."""
    if row["part"] in ("tune", "pool"):
        return row
    return {k: v for k, v in row.items() if k not in ("message", "stages")}


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
        for part in ("tune", "pool", "holdout", "all"):
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
    tokens = []
    for c in constructions:
        mine = [r["output_tokens"] for r in rows if r["construction"] == c and "output_tokens" in r]
        tokens.append(f"{sum(mine) / len(mine):.1f}" if mine else "-")
    lines.append("| mean tokens generated per case | | " + " | ".join(tokens) + " |")
    loads = [r["load"] for r in rows if "load" in r]
    if loads:
        shown = []
        for c in constructions:
            mine = [r["load"] for r in rows if r["construction"] == c and "load" in r]
            shown.append(f"{min(mine):.1f}-{max(mine):.1f}" if mine else "-")
        lines.append("| load average (1 min) | | " + " | ".join(shown) + " |")
    lines.append("")
    for c in constructions:
        for part in ("tune", "pool", "holdout"):
            kinds = Counter(
                r["kind"]
                for r in rows
                if r["construction"] == c and r["part"] == part and not r["ok"]
            )
            if kinds:
                shown = ", ".join(f"{k} {n}" for k, n in kinds.most_common())
                lines.append(f"- {c} failures ({part}): {shown}")
    return "\n".join(lines)


ABLATIONS = (
    "fillable",
    "echo",
    "grounded",
    "spans",
    "settle",
    "brevity",
    "asked",
    "forms",
    "labels",
)


def ablate(names: list[str]) -> None:
    """Switch parts of the guided construction off in this process (measurement only).

    fillable: the relevance gate's number rule (`relevance.fillable`) always passes;
    echo: an answer made of the request's words is taken as an answer (`relevance.echoes`);
    grounded: the first arguments stage is not held to the request (`grounded_parameters`);
    spans: only its strings are not (numbers still are); settle: no settling after the
    arguments (`arguments.settle`); brevity: an answer before any tool ran is not asked
    short (`brevity`); asked: a request that plainly asks for a tool may still be answered
    (`relevance.asked_for`); forms: no value put in its parameter's form (`guided.forms`:
    currency codes, a description's mapping); labels: a value that only names its
    parameter is not asked again (`arguments.self_named`).
    """
    from pilothouse.guided import arguments, model, relevance

    original = model.grounded_parameters
    if "fillable" in names:
        relevance.fillable = lambda query, spec: True  # type: ignore[assignment]
    if "echo" in names:
        model.echoes = lambda answer, query: False  # type: ignore[assignment]
    if "grounded" in names:
        model.grounded_parameters = lambda spec, text: None  # type: ignore[assignment]
    elif "spans" in names:

        def numbers_only(spec: Any, text: str) -> Any:
            held = original(spec, text)
            if held is None:
                return None
            own = (spec.parameters or {}).get("properties") or {}
            props = dict(held["properties"])
            for name, prop in own.items():
                target = prop.get("items") if prop.get("type") == "array" else prop
                if isinstance(target, dict) and target.get("type") == "string":
                    props[name] = prop
            return {**held, "properties": props}

        model.grounded_parameters = numbers_only  # type: ignore[assignment]
    if "brevity" in names:
        model.short = lambda settings: settings  # type: ignore[assignment]
        model.trimmed = lambda text: text  # type: ignore[assignment]
    if "asked" in names:
        model.asked_for = lambda query, spec: False  # type: ignore[assignment]
    if "forms" in names:
        arguments._in_form = lambda name, prop, value, text: None  # type: ignore[assignment]
        arguments.currency_codes = lambda text: []  # type: ignore[assignment]
    if "labels" in names:
        model.self_named = lambda arguments, spec: []  # type: ignore[assignment]
    if "settle" in names:
        model.settle = lambda arguments, spec, text: (arguments, [])  # type: ignore[assignment]


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
    parser.add_argument("--ablate", nargs="+", default=[], choices=ABLATIONS)
    parser.add_argument("--pool", help="run the ids of this pool sample file (part 'pool')")
    parser.add_argument("--label", help="the construction's name in the rows (default/naive)")
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

    ablate(args.ablate)

    from pilothouse.evals import run_eval
    from pilothouse_suites.bfcl import bfcl_suite, case_ids

    queues: dict[str, list[tuple[str, str]]] = {}
    pool = json.loads(Path(args.pool).read_text())["categories"] if args.pool else None
    for category in args.categories:
        if pool is not None:
            ids = pool.get(category, [])[: args.per_part]
            queues[category] = [(i, "pool") for i in ids if not args.cases or i in args.cases]
            continue
        queue = []
        parts = [p for p in args.parts if case_ids(category, p)]
        for part in parts:  # a live category is all holdout: it takes the other part's share
            ids = case_ids(category, part)
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
                    stages = _stages(s.events)
                    row = {
                        "category": category,
                        "construction": args.label or construction,
                        "part": part_of[s.scenario],
                        "case": s.scenario,
                        "ok": s.ok,
                        "kind": "pass" if s.ok else _kind(s.message, s.failure),
                        "message": s.message,
                        "seconds": round(s.latency, 2),
                        "output_tokens": s.output_tokens,
                        "stages": stages,
                        "load": round(os.getloadavg()[0], 2),
                    }
                    rows.append(row)
                    if args.jsonl:
                        with Path(args.jsonl).open("a", encoding="utf-8") as out:
                            out.write(json.dumps(row) + "\n")
                    print(json.dumps(_shown(row)), file=sys.stderr, flush=True)
        start += args.round
    print(report(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
