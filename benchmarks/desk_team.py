"""The support desk's batch as a team beside the single agent, on the same model.

    python benchmarks/desk_team.py                 # embedded model, 13 customers, 1 round
    python benchmarks/desk_team.py --rounds 2 --only status,cancel

Each round runs the shipped batch (`pilothouse_desk.batch`, a fresh shop and journal
per run) with the single agent, then with the team, and prints per mode: expected
outcomes, resolved without a human, approvals decided by the supervisor agent, median
seconds per conversation, tokens and model calls (every model call of every run of each
turn's tree, from the journals). The machine's load (`os.getloadavg`) is printed beside
each run: on a shared machine the seconds are a measurement of that moment, the tokens
and outcomes are not (the model is deterministic).

With the embedded model, the work of its generations is printed per conversation too
(load-independent, `embedded_latency.instrument`): generations, prompt tokens evaluated
and reused from the KV cache, tokens generated. ``--prefix-cache 0`` turns
`LocalModel`'s KV snapshots off (``PREFIX_CACHE_MB``), for an A/B on the same tree.
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

from pilothouse_desk.batch import run_batch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embedded_latency import Gen, instrument

GENS: list[Gen] = []


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.1f} {five:.1f} {fifteen:.1f}"


async def one(workdir: Path, team: bool, only: list[str] | None, model: str | None) -> str:
    before = load()
    first = len(GENS)
    started = time.perf_counter()
    outcomes, figures = await run_batch(
        workdir, model=model, only=only, team=team, echo=lambda line: None
    )
    seconds = time.perf_counter() - started
    median = statistics.median(o.seconds for o in outcomes) if outcomes else 0.0
    expected = sum(o.as_expected for o in outcomes)
    tokens = sum(o.tokens for o in outcomes)
    calls = sum(o.model_calls for o in outcomes)
    mode = "team" if team else "single"
    gens = GENS[first:]
    n = len(outcomes) or 1
    work = (
        f"  per conversation: {len(gens) / n:.1f} generations, "
        f"{sum(g.evaluated for g in gens) / n:.0f} evaluated, "
        f"{sum(g.reused for g in gens) / n:.0f} reused, "
        f"{sum(g.generated for g in gens) / n:.0f} generated"
        if gens
        else ""
    )
    return (
        f"{mode:6} expected {expected}/{len(outcomes)}  resolved without a human "
        f"{figures.resolved_without_human}/{figures.conversations}  supervisor decisions "
        f"{figures.supervisor_decisions}  median {median:.1f} s/conversation  tokens {tokens} "
        f"in {calls} calls  batch {seconds:.0f} s  ({before} -> {load()}){work}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--only", default="", help="comma-separated conversation ids")
    parser.add_argument("--model", default=None, help="model string (default: embedded)")
    parser.add_argument(
        "--prefix-cache", type=int, default=None, help="MB of KV snapshots (0: off)"
    )
    parser.add_argument("--modes", default="single,team", help="single, team or both")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="the agents' time budget per run (a busy machine; default: the desk's own)",
    )
    args = parser.parse_args()
    if args.max_seconds is not None:
        from dataclasses import replace

        from pilothouse_desk import agent, team

        longer = replace(agent.DEFAULT_BUDGET, max_seconds=args.max_seconds)
        agent.DEFAULT_BUDGET = team.DEFAULT_BUDGET = longer
        team.TEAM_BUDGET = replace(team.TEAM_BUDGET, max_seconds=args.max_seconds)
    only = [x for x in args.only.split(",") if x] or None
    if args.model is None:
        from pilothouse.models import local

        if args.prefix_cache is not None and hasattr(local, "PREFIX_CACHE_MB"):
            local.PREFIX_CACHE_MB = args.prefix_cache
        instrument([""], GENS)
    modes = [m == "team" for m in args.modes.split(",") if m in ("single", "team")]
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(1, args.rounds + 1):
            for team in modes:  # interleaved: both modes see similar load
                workdir = Path(tmp) / f"{round_}-{'team' if team else 'single'}"
                print(f"round {round_}: {await one(workdir, team, only, args.model)}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
