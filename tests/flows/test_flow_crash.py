"""Crash test on flows: a graph of side-effecting nodes SIGKILLed at chosen progress
points (journal writes, effects), resumed in a new process. Checked: the final state
is the uninterrupted run's, every effect is applied exactly once, and no node whose
end was on disk at the kill runs again. A handful of kill points on SQLite and on
PostgreSQL; the 100-kill version is `benchmarks/flows.py --crash`.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pilothouse.events import NodeFinished
from pilothouse.runtime.journal import SQLiteStore, open_store

WORKER = Path(__file__).resolve().parent / "flow_crash_worker.py"
SRC = Path(__file__).resolve().parents[2] / "src"
KEYS = [
    "a1-0", "a2-0", "b0-0", "item-0-0", "item-0-1", "item-0-2", "bjoin-0", "c1-0", "c2-0",
    "done-0",
]  # fmt: skip


def _worker(*args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, str(WORKER), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _ledger(path: Path, table: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        return list(db.execute(f"SELECT * FROM {table}"))


def _crash_and_resume(tmp_path: Path, store: str, kill_at: int, run_id: str) -> None:
    ledger = tmp_path / f"ledger-{kill_at}.db"
    common = ["--store", store, "--ledger", str(ledger), "--run-id", run_id]
    killed = _worker("run", *common, "--kill-at", str(kill_at))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    journal = SQLiteStore(store) if "://" not in store else open_store(store)
    try:
        on_disk = {e.key for e in journal.events(run_id) if isinstance(e, NodeFinished)}
    except Exception:
        on_disk = set()  # killed before the run's first write
    resumed = _worker("resume", *common)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert sorted(report["state"]["log"]) == sorted(
        [k if not k.startswith("item") else f"{k}:{'xyz'[int(k[-1])]}" for k in KEYS]
    )
    expected = {f"{run_id}:{k}" for k in KEYS}
    effects = [row[0] for row in _ledger(ledger, "effects")]
    assert sorted(effects) == sorted(expected)  # every effect exactly once: 0 duplicates
    rerun = [
        key
        for key, pid in _ledger(ledger, "attempts")
        if pid == report["pid"] and key.split(":", 1)[1] in on_disk
    ]
    assert rerun == []  # 0 completed nodes re-run
    stored = [e for e in journal.events(run_id) if isinstance(e, NodeFinished)]
    assert sorted(e.key for e in stored) == sorted(KEYS)  # each node finished once
    assert journal.get_run(run_id).status == "final"


@pytest.mark.parametrize("kill_at", [1, 9, 17, 30])
def test_sigkill_then_resume_on_sqlite(tmp_path: Path, kill_at: int) -> None:
    _crash_and_resume(tmp_path, str(tmp_path / "journal.db"), kill_at, f"flow{kill_at}")


@pytest.mark.parametrize("kill_at", [12, 25])
def test_sigkill_then_resume_on_postgres(
    tmp_path: Path, fresh_postgres_dsn: str, kill_at: int
) -> None:
    _crash_and_resume(tmp_path, fresh_postgres_dsn, kill_at, f"pg{kill_at}")
