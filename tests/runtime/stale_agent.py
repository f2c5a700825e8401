"""The agent of the worker tests, and the worker process itself.

Imported by the tests to make stopped runs (the model "dies" part-way through), and
run as a script by each worker process to drain them::

    python stale_agent.py STORE LEDGER WORKER

A worker prints ``ready``, waits for a line on stdin (so all workers start draining
together), runs `resume_stale` and prints its report as JSON. The tool writes one
ledger row per call (idempotency key, run, worker) to a table outside the journal:
the tests count those rows to prove that no step was done twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import time
from typing import Any

from pilothouse import Agent, Policy, ScriptedModel, tool
from pilothouse.messages import ToolCall
from pilothouse.models.base import ModelRequest
from pilothouse.tools import ToolContext

REPLIES: list[Any] = [
    ToolCall("c1", "record", {"note": "a"}),
    ToolCall("c2", "record", {"note": "b"}),
    ToolCall("c3", "record", {"note": "c"}),
    "done",
]
TOOL_STEPS = 3


class Died(BaseException):
    """Stands in for the worker process dying mid-run: nothing catches it."""


def ledger_setup(ledger: str) -> None:
    sql = "CREATE TABLE IF NOT EXISTS ledger (key TEXT, run_id TEXT, worker TEXT)"
    if ledger.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(ledger, autocommit=True) as db:
            db.execute(sql)
    else:
        with sqlite3.connect(ledger) as db:
            db.execute(sql)


def ledger_rows(ledger: str) -> list[tuple[str, str, str]]:
    sql = "SELECT key, run_id, worker FROM ledger ORDER BY key"
    if ledger.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(ledger) as db:
            return [tuple(r) for r in db.execute(sql).fetchall()]  # type: ignore[misc]
    db = sqlite3.connect(ledger)
    try:
        return list(db.execute(sql).fetchall())
    finally:
        db.close()


def _ledger_write(ledger: str, row: tuple[str, str, str]) -> None:
    sql = "INSERT INTO ledger (key, run_id, worker) VALUES (?, ?, ?)"
    if ledger.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(ledger, autocommit=True) as db:
            db.execute(sql.replace("?", "%s"), row)
    else:
        db = sqlite3.connect(ledger, timeout=30, isolation_level=None)
        try:
            db.execute(sql, row)
        finally:
            db.close()


def _await_peer(ledger: str, worker: str) -> None:
    """Wait until another worker has written too: the workers overlap by construction."""
    deadline = time.monotonic() + 60  # a guard against a hang, not a tuning
    while len({w for _, _, w in ledger_rows(ledger)} - {"setup"}) < 2:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{worker}: no other worker wrote to the ledger in 60 s")
        time.sleep(0.01)


def make_agent(
    store: Any, ledger: str, worker: str, die_after: int | None = None, *, peers: bool = False
) -> Agent[None, str]:
    """The agent; with `die_after`, its model dies when asked for reply `die_after`;
    with `peers`, its tool returns only once another worker has written a row."""

    @tool(effect="side_effect")
    def record(note: str, ctx: ToolContext) -> str:
        """Write a note to the ledger (a side effect that must happen once)."""
        _ledger_write(ledger, (ctx.idempotency_key, ctx.run_id, worker))
        time.sleep(0.01)  # long enough for the workers' runs to interleave
        if peers:
            _await_peer(ledger, worker)
        return f"noted {note}"

    def reply(request: ModelRequest) -> Any:
        turn = sum(1 for m in request.messages if m.role == "assistant")
        if die_after is not None and turn >= die_after:
            raise Died
        return REPLIES[turn]

    return Agent(
        ScriptedModel(reply), tools=[record], store=store, policy=Policy.allow_all(), name="noter"
    )


def make_stale_runs(store: Any, ledger: str, count: int) -> list[str]:
    """`count` runs that stopped part-way (after 0, 1, 2 or 3 recorded steps)."""
    ids = []
    for i in range(count):
        agent = make_agent(store, ledger, "setup", die_after=i % (TOOL_STEPS + 1))
        try:
            agent.run_sync("take notes", run_id=f"stale-{i:02d}")
        except Died:
            ids.append(f"stale-{i:02d}")
    return ids


def cli_agent() -> Agent[None, str]:
    """For `pilothouse worker --agent stale_agent:cli_agent`: store, ledger and worker
    name come from $STALE_STORE, $STALE_LEDGER and $STALE_WORKER."""
    env = os.environ
    return make_agent(env["STALE_STORE"], env["STALE_LEDGER"], env["STALE_WORKER"])


def main() -> None:
    store, ledger, worker = sys.argv[1:4]
    agent = make_agent(store, ledger, worker, peers=True)
    print("ready", flush=True)
    sys.stdin.readline()
    report = asyncio.run(agent.resume_stale(worker=worker, lease_seconds=30, idle_for=0))
    outcome = {
        "resumed": {r.run_id: r.outcome for r in report.resumed},
        "failed": {k: repr(v) for k, v in report.failed.items()},
        "pid": os.getpid(),
    }
    print(json.dumps(outcome), flush=True)


if __name__ == "__main__":
    main()
