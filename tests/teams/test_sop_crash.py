"""An SOP pipeline with a review loop, SIGKILLed at chosen points and resumed in a new
process, ends as the uninterrupted one does: the same artefacts and versions, no
finished activation run again, the same usage.

Kill points are chosen by count (the N-th journal write, the N-th model call), not by
a clock, so where a kill lands is the same on every machine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pilothouse.runtime.journal import SQLiteStore

WORKER = Path(__file__).with_name("sop_crash_worker.py")


def _worker(tmp: Path, mode: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(WORKER),
            mode,
            "--store",
            "j.db",
            "--ledger",
            "l.txt",
            "--run-id",
            "sop",
            *extra,
        ],
        capture_output=True,
        text=True,
        cwd=tmp,
        timeout=120,
        env=dict(os.environ),
    )


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("baseline")
    done = _worker(tmp, "run")
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout)
    out["calls"] = len((tmp / "l.txt").read_text().splitlines())
    return out


def test_baseline_goes_round_the_review_loop(baseline: dict[str, Any]) -> None:
    kinds = [(a["kind"], a["version"]) for a in baseline["pool"]]
    assert kinds == [
        ("task", 1),
        ("PRD", 1),
        ("Design", 1),
        ("Code", 1),
        ("Review", 1),
        ("Code", 2),
        ("Review", 2),
    ]
    assert baseline["reason"] == "idle" and baseline["calls"] == 6


@pytest.mark.parametrize("point", ["write:1", "write:6", "write:14", "call:2", "call:5", "last"])
def test_kill_and_resume(tmp_path: Path, baseline: dict[str, Any], point: str) -> None:
    kind, _, n = point.partition(":")
    if kind == "last":  # just after the pipeline's last write (its end) landed
        kind, n = "write", str(baseline["write"])
    killed = _worker(tmp_path, "run", f"--kill-{kind}", n)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = _worker(tmp_path, "resume")
    assert resumed.returncode == 0, resumed.stderr
    out = json.loads(resumed.stdout)
    assert (out["pool"], out["reason"]) == (baseline["pool"], baseline["reason"])
    # model calls across both processes: the uninterrupted ones, plus the one a call
    # kill cut off before its reply; a finished activation is never asked again
    calls = (tmp_path / "l.txt").read_text().splitlines()
    assert len(calls) == baseline["calls"] + (1 if kind == "call" else 0)
    store = SQLiteStore(tmp_path / "j.db")
    events = store.events("sop")
    assert events[-1].type == "final"
    started = [e.child_run_id for e in events if e.type == "child_started"]  # type: ignore[attr-defined]
    assert len(started) == len(set(started)) == 6
    published = [(e.kind, e.version) for e in events if e.type == "artefact_published"]  # type: ignore[attr-defined]
    assert len(published) == len(set(published)) == 7
    for child in store.children("sop"):
        answered = [e for e in store.events(child.run_id) if e.type == "model_response"]
        assert len(answered) == 1, child.run_id
    assert events[-1].usage.total_tokens == baseline["tokens"]  # type: ignore[attr-defined]
