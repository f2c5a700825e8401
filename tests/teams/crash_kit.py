"""What the SOP and group-chat crash tests share: the worker's kill points and the
test's kill-then-resume in a second process.

Worker side (imported by `sop_crash_worker.py`, `chat_crash_worker.py`, run as scripts):
`KillingStore` SIGKILLs the process right after its N-th journal write landed, and
`ledgered` wraps a reply function so that each model call appends one line to the
ledger (O_APPEND: a line written before a SIGKILL is kept) and the N-th call SIGKILLs
the process before its reply. `worker_main` parses the common command line and runs
`run` or `resume` of what `build` makes.

Test side: `run_worker` runs a worker in a temporary folder; `kill_then_resume` kills
one at a point (``write:N``, ``call:N`` or ``last``) and resumes it in a new process.
Kill points are counts, not clock times, so a kill lands at the same place on every
machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pilothouse import ScriptedModel
from pilothouse.exceptions import RunFinishedError, RunNotFoundError
from pilothouse.models.base import ModelRequest
from pilothouse.runtime.journal import SQLiteStore

KILL = {"call": 0, "write": 0}
COUNT = {"call": 0, "write": 0}


class KillingStore(SQLiteStore):
    def write(self, *args: Any, **kwargs: Any) -> None:
        super().write(*args, **kwargs)
        COUNT["write"] += 1
        if COUNT["write"] == KILL["write"]:
            os.kill(os.getpid(), signal.SIGKILL)


def ledgered(name: str, ledger: int, reply: Callable[[ModelRequest], Any]) -> ScriptedModel:
    def answer(request: ModelRequest) -> str:
        os.write(ledger, f"{os.getpid()} {name}\n".encode())
        COUNT["call"] += 1
        if COUNT["call"] == KILL["call"]:
            os.kill(os.getpid(), signal.SIGKILL)
        return str(reply(request))

    return ScriptedModel(answer, name=name)


def worker_main(
    argv: list[str],
    build: Callable[[SQLiteStore, int], Any],
    task: str,
    report: Callable[[Any], dict[str, Any]],
    report_finished: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    """Run (or resume) what `build(store, ledger)` makes and print one JSON line:
    ``how`` it ended (run, resume, started: the kill came before the first write,
    finished: after the last), `report(result)` and the counters, or
    `report_finished(output)` read from the journal of a run that had ended."""
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["run", "resume"])
    parser.add_argument("--store", required=True)
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--kill-call", type=int, default=0)
    parser.add_argument("--kill-write", type=int, default=0)
    args = parser.parse_args(argv)
    KILL["call"], KILL["write"] = args.kill_call, args.kill_write
    ledger = os.open(args.ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    store = KillingStore(args.store)
    runnable = build(store, ledger)

    async def go() -> tuple[str, Any]:
        if args.mode == "run":
            return "run", await runnable.run(task, run_id=args.run_id)
        try:
            return "resume", await runnable.resume(args.run_id)
        except RunNotFoundError:  # killed before its first write: nothing happened
            return "started", await runnable.run(task, run_id=args.run_id)

    try:
        how, result = asyncio.run(go())
    except RunFinishedError:  # killed after its end was written
        output = store.events(args.run_id)[-1].output  # type: ignore[attr-defined]
        print(json.dumps({"how": "finished", **report_finished(output)}))
        return
    tokens = result.usage.total_tokens
    print(json.dumps({"how": how, **report(result), "tokens": tokens, **COUNT}))


def run_worker(worker: Path, tmp: Path, mode: str, run_id: str, *extra: str) -> Any:
    """One worker process in `tmp` (its journal ``j.db``, its ledger ``l.txt``)."""
    files = ["--store", "j.db", "--ledger", "l.txt", "--run-id", run_id]
    return subprocess.run(
        [sys.executable, str(worker), mode, *files, *extra],
        capture_output=True,
        text=True,
        cwd=tmp,
        timeout=120,
        env=dict(os.environ),
    )


def model_calls(tmp: Path) -> int:
    """Model calls made in `tmp` across every process (the ledger's lines)."""
    return len((tmp / "l.txt").read_text().splitlines())


def baseline_of(worker: Path, tmp: Path, run_id: str) -> dict[str, Any]:
    """An uninterrupted run's printed line, with its model calls as ``calls``."""
    done = run_worker(worker, tmp, "run", run_id)
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout)
    out["calls"] = model_calls(tmp)
    return out


def kill_then_resume(
    worker: Path, tmp: Path, run_id: str, point: str, baseline: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """SIGKILL a run at `point`, resume it in a new process; the kill's kind and the
    resumed process's printed line. ``last``: just after the run's last write (its end)."""
    kind, _, n = point.partition(":")
    if kind == "last":
        kind, n = "write", str(baseline["write"])
    killed = run_worker(worker, tmp, "run", run_id, f"--kill-{kind}", n)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = run_worker(worker, tmp, "resume", run_id)
    assert resumed.returncode == 0, resumed.stderr
    return kind, json.loads(resumed.stdout)
