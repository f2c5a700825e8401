"""Crash test on a team: a supervisor with three members, SIGKILLed at progress points.

Each case runs `team_crash_worker.py` in a subprocess that kills itself at the N-th
progress point (each model call, before and after each member's side effect: counted,
not timed; 16 in an uninterrupted run),
then resumes the team in a new process (in one case that resume is killed too, and
a third process resumes). Checked against an uninterrupted run: 0 duplicate child
runs (the same run tree, each child started once), 0 duplicate effects (the ledger's
effects equal the reference's, one per key), and the same output.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from team_helpers import tree

from pilothouse.events import ChildStarted
from pilothouse.runtime.journal import SQLiteStore

WORKER = Path(__file__).with_name("team_crash_worker.py")


def worker(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, str(WORKER), *args], capture_output=True, text=True, env=env, timeout=120
    )


def outcome(tmp: Path, run_id: str) -> dict[str, Any]:
    store = SQLiteStore(str(tmp / "journal.db"))
    runs = tree(store, run_id)
    starts = [e.child_run_id for r in runs for e in store.events(r) if isinstance(e, ChildStarted)]
    with sqlite3.connect(tmp / "ledger.db") as db:
        effects = sorted(db.execute("SELECT key, what FROM effects").fetchall())
    return {
        "runs": sorted(runs),
        "starts": sorted(starts),
        "statuses": {store.get_run(r).status for r in runs},
        "effects": effects,
        "agents": sorted(store.get_run(r).agent for r in runs),
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("reference")
    done = worker("run", str(tmp / "journal.db"), str(tmp / "ledger.db"), "T")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["points"] == 16
    return json.loads(done.stdout)["output"], outcome(tmp, "T")


@pytest.mark.parametrize("kills", [(1,), (3,), (6,), (9,), (13,), (15,), (4, 5)])
def test_a_killed_team_resumes_without_duplicates(
    tmp_path: Path, reference: tuple[str, dict[str, Any]], kills: tuple[int, ...]
) -> None:
    store, ledger = str(tmp_path / "journal.db"), str(tmp_path / "ledger.db")
    first = worker("run", store, ledger, "T", str(kills[0]))
    assert first.returncode == -9, first.stderr  # SIGKILLed at the point
    for again in kills[1:]:
        killed = worker("resume", store, ledger, "T", str(again))
        assert killed.returncode == -9, killed.stderr
    done = worker("resume", store, ledger, "T")
    assert done.returncode == 0, done.stderr
    output, expected = reference
    assert json.loads(done.stdout)["output"] == output
    found = outcome(tmp_path, "T")
    assert found == expected
    assert len(found["starts"]) == len(set(found["starts"])) == 3  # each child once
    assert found["statuses"] == {"final"}
    assert len(found["effects"]) == 3


def test_seeded_random_kills_resume_without_duplicates(
    tmp_path: Path, reference: tuple[str, dict[str, Any]]
) -> None:
    """Two trials of two kills each (the run, then its first resume) at progress points
    drawn from a fixed seed: the same points every time (benchmarks/team_crash.py draws
    100 the same way, with the journal's writes as points too)."""
    rng = random.Random(19)
    output, expected = reference
    for trial in range(2):
        here = tmp_path / f"t{trial}"
        here.mkdir()
        store, ledger = str(here / "journal.db"), str(here / "ledger.db")
        first = worker("run", store, ledger, "T", str(rng.randint(1, 16)))
        assert first.returncode == -9, first.stderr
        second = worker("resume", store, ledger, "T", str(rng.randint(1, 16)))
        assert second.returncode in (0, -9), second.stderr  # past its end: it finished
        done = worker("resume", store, ledger, "T")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["output"] == output
        found = outcome(here, "T")
        assert found == expected
        assert len(found["starts"]) == len(set(found["starts"])) == 3
