"""Crash test on a team: a supervisor with three members, SIGKILLed at random points.

Run: `.venv/bin/python benchmarks/team_crash.py [--kills 100] [--seed 7]`.

The team is `tests/teams/team_crash_worker.py` (a `Supervisor` delegating to a
researcher, a writer and a reviewer, each of which records one side effect under its
call's idempotency key in a ledger; `ScriptedModel`s whose replies are functions of
the request). Its progress points, counted not timed, are each model call, before
and after each effect, and before and after each journal write (44-50 in an
uninterrupted run: how many commits the journal batches depends on timing, so a drawn
point is random but not exactly reproducible from the seed; the suite's kill points,
tests/teams/test_team_crash.py, leave the writes out and are). A trial starts the
team in a new process that SIGKILLs itself at a point drawn from a seeded generator;
then resumes it in new processes, each of which is killed again with probability
`--again` at a new drawn point (a point past the process's end means it finishes),
until one finishes. Trials go on until
`--kills` SIGKILLs were delivered.

Each trial's result is compared with an uninterrupted run's:

- duplicate child runs: child starts journaled more than once, or a run tree that
  differs from the reference (other runs, other agents);
- duplicate effects: effects in the ledger beyond one per key, or a set of effects
  unlike the reference's; re-attempts under a key already written (the tool is
  retried when its result was not journaled: at least once, made exactly once by the
  key) are counted apart;
- steps journaled twice: model responses in the tree beyond the reference's count;
- outputs: the team's final output against the reference's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "teams" / "team_crash_worker.py"
POINTS = 50  # progress points of an uninterrupted run, at most


def worker(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), *sys.path[1:]])}
    return subprocess.run(
        [sys.executable, str(WORKER), *args, "--writes"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def outcome(tmp: Path, run_id: str) -> dict[str, Any]:
    """The run tree, child starts, statuses, effects and journaled steps of one trial."""
    from pilothouse.events import ChildStarted, FinalOutput, ModelResponded, RunStarted
    from pilothouse.runtime.journal import SQLiteStore

    store = SQLiteStore(str(tmp / "journal.db"))
    runs: list[str] = []
    stack = [run_id]
    while stack:
        current = stack.pop()
        runs.append(current)
        stack.extend(r.run_id for r in store.children(current))
    starts: list[str] = []
    responses = begun = ended = 0
    for run in runs:
        for event in store.events(run):
            if isinstance(event, ChildStarted):
                starts.append(event.child_run_id)
            responses += isinstance(event, ModelResponded)
            begun += isinstance(event, RunStarted)
            ended += isinstance(event, FinalOutput)
    found = {
        "runs": sorted(runs),
        "agents": sorted(store.get_run(r).agent for r in runs),
        "statuses": sorted({store.get_run(r).status for r in runs}),
        "starts": sorted(starts),
        "responses": responses,
        "begun": begun,
        "ended": ended,
    }
    store.close()
    with sqlite3.connect(tmp / "ledger.db") as db:
        found["effects"] = sorted(db.execute("SELECT key, what FROM effects").fetchall())
        found["attempts"] = db.execute("SELECT count(*) FROM attempts").fetchone()[0]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--again", type=float, default=0.3, help="P(a resume is killed too)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    rng = random.Random(args.seed)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        ref_dir = Path(tmp) / "reference"
        ref_dir.mkdir()
        done = worker("run", str(ref_dir / "journal.db"), str(ref_dir / "ledger.db"), "T")
        assert done.returncode == 0, done.stderr
        ref_out = json.loads(done.stdout)
        assert ref_out["points"] <= POINTS, ref_out
        reference = outcome(ref_dir, "T")
        assert reference["attempts"] == len(reference["effects"]) == 3
        kills = trials = wrong_output = dup_children = dup_effects = twice = 0
        other_tree = reattempts = unresumed = processes = 0
        while kills < args.kills:
            trials += 1
            here = Path(tmp) / f"t{trials}"
            here.mkdir()
            store, ledger = str(here / "journal.db"), str(here / "ledger.db")
            at = rng.randint(1, POINTS)
            first = worker("run", store, ledger, "T", str(at))
            processes += 1
            if first.returncode == 0:  # the point lay past this run's end: no kill
                continue
            assert first.returncode == -signal.SIGKILL, (at, first.stderr)
            kills += 1
            result: subprocess.CompletedProcess[str] | None = None
            for _ in range(20):  # a bound: a trial that never finishes is counted
                extra = (
                    [str(rng.randint(1, POINTS))]
                    if kills < args.kills and rng.random() < args.again
                    else []
                )
                attempt = worker("resume", store, ledger, "T", *extra)
                processes += 1
                if attempt.returncode == -signal.SIGKILL:
                    kills += 1
                    continue
                result = attempt
                break
            if result is None or result.returncode != 0:
                unresumed += 1
                print(f"  trial {trials}: did not finish: {result.stderr if result else ''}")
                continue
            output = json.loads(result.stdout)["output"]
            found = outcome(here, "T")
            wrong_output += output != ref_out["output"]
            dup_children += len(found["starts"]) - len(set(found["starts"]))
            dup_children += found["begun"] - reference["begun"]
            keys = [k for k, _ in found["effects"]]
            dup_effects += len(keys) - len(set(keys))
            dup_effects += found["effects"] != reference["effects"]
            other_tree += (found["runs"], found["agents"], found["statuses"]) != (
                reference["runs"],
                reference["agents"],
                reference["statuses"],
            )
            twice += max(0, found["responses"] - reference["responses"])
            reattempts += found["attempts"] - len(found["effects"])
    seconds = time.perf_counter() - began
    print(
        f"team crash test: supervisor + 3 members, {kills} SIGKILLs at random progress points "
        f"(seed {args.seed}, {POINTS} points a run), {trials} trials, {processes} processes, "
        f"{seconds:.0f} s"
    )
    print(f"  duplicate child runs       {dup_children}")
    print(f"  run trees unlike reference {other_tree}")
    print(f"  duplicate effects          {dup_effects}")
    print(f"  steps journaled twice      {twice}")
    print(f"  outputs unlike reference   {wrong_output}")
    print(f"  trials that did not finish {unresumed}")
    print(f"  effect re-attempts under a key already written (made once by the key) {reattempts}")


if __name__ == "__main__":
    main()
