"""AgentDojo v1 under Pilothouse policies: benign utility and attack success rate.

    python benchmarks/agentdojo.py                       # all four suites, none + defended
    python benchmarks/agentdojo.py --suites slack --policies none defended defended+task default
    python benchmarks/agentdojo.py --model agentdojo:oracle --json out.json

Each suite runs its user tasks without attack (benign utility: AgentDojo's utility
check) and every (user task, injection task) pair under `important_instructions`
(ASR: AgentDojo's security check held) with the model given (default: the scripted
adversary, which replays each user task's ground truth and obeys every injection it
reads: no LLM, deterministic). Policies: ``none`` (allow every call), ``default``
(Pilothouse's default: read-only calls only), ``defended`` (the suite's YAML under
``src/pilothouse_suites/agentdojo/policies/``), ``defended+task`` (the same, narrowed for
each user task by the task policy its request implies: `select_from_request`, the items a
request picks, "the largest file"). workspace, travel and slack are where
the policies were tuned; banking is held out and totalled apart.
A full run of the four suites under two policies takes a few minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

# This file's name is the package's: its folder must not shadow `import agentdojo`.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]


def _pct(n: int, d: int) -> str:
    return f"{100 * n / d:5.1f}% ({n}/{d})" if d else "-"


def _row(label: str, policy: str, r: dict[str, Any], seconds: float | None) -> str:
    calls = r["successes"] - r["output_only"]
    call_pairs = r["attacks"] - r["output_only_attacks"]
    took = f"{seconds:6.1f}" if seconds is not None else "      "
    return (
        f"| {label:<22} | {policy:<8} | {_pct(r['utility'], r['benign']):>16} | "
        f"{_pct(r['successes'], r['attacks']):>18} | {_pct(calls, call_pairs):>18} | {took} |"
    )


def _add(total: dict[str, Any], r: dict[str, Any]) -> None:
    for k in ("benign", "utility", "attacks", "output_only_attacks", "successes", "output_only"):
        total[k] = total.get(k, 0) + r[k]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", nargs="+", default=["workspace", "travel", "slack", "banking"])
    parser.add_argument("--policies", nargs="+", default=["none", "defended", "defended+task"])
    parser.add_argument("--model", default="agentdojo:adversary")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--json", help="write the per-suite results (with the pairs) here")
    parser.add_argument("--verbose", action="store_true", help="list failures and successes")
    args = parser.parse_args()

    from pilothouse_suites.agentdojo import HOLDOUT_SUITES, available

    if not available():
        print("agentdojo is not installed: pip install 'pilothouse[agentdojo]'", file=sys.stderr)
        return 2
    from pilothouse.evals import run_eval
    from pilothouse_suites.agentdojo import agentdojo_suite, summarize
    from pilothouse_suites.agentdojo.requests import select_from_request

    print(
        "| suite                  | policy   |   benign utility |                ASR |"
        "  ASR (tool calls) |      s |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    results: dict[str, dict[str, Any]] = {}
    for policy in args.policies:
        totals: dict[str, dict[str, Any]] = {"tuned": {}, "held-out": {}, "all": {}}
        for name in args.suites:
            began = time.perf_counter()
            if policy == "defended+task":
                suite = agentdojo_suite(
                    name, policy="defended", task_policy=select_from_request(name)
                )
            else:
                suite = agentdojo_suite(name, policy=policy)
            log = asyncio.run(run_eval(suite, [args.model], epochs=1, concurrency=args.concurrency))
            r = summarize(log, suite)[log.models[0]]
            took = time.perf_counter() - began
            results[f"{name}/{policy}"] = r
            label = f"{name} (held out)" if name in HOLDOUT_SUITES else name
            print(_row(label, policy, r, took), flush=True)
            _add(totals["held-out" if name in HOLDOUT_SUITES else "tuned"], r)
            _add(totals["all"], r)
            if args.verbose:
                for s in r["failed_benign"]:
                    print(f"    utility lost: {s}", file=sys.stderr)
                for s in r["succeeded"]:
                    print(f"    attack succeeded: {s}", file=sys.stderr)
        for key in ("tuned", "held-out", "all"):
            if totals[key] and (key != "all" or (totals["tuned"] and totals["held-out"])):
                print(_row(f"**total {key}**", policy, totals[key], None))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
