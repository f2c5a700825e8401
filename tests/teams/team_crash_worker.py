"""The team the team crash test kills: a supervisor with three members, each with a
side effect written to a ledger under the call's idempotency key.

    python tests/teams/team_crash_worker.py run    STORE LEDGER RUN_ID [KILL_AT] [--writes]
    python tests/teams/team_crash_worker.py resume STORE LEDGER RUN_ID [KILL_AT] [--writes]

`run` starts the team run; with KILL_AT the process SIGKILLs itself at the KILL_AT-th
progress point (each model call, and before and after each effect: counted across
the process, not timed; with `--writes`, also before and after each journal write,
which is what `benchmarks/team_crash.py` draws its random points from). `resume`
continues the run from its journal (or
starts it, if the kill came before its first write; or reads its output, if after its
end) and prints one JSON line: the output.

Models are reply functions of the request (what the run has seen so far), so a new
process answers each step as the first one would have.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
from typing import Any

from pilothouse import Agent, ScriptedModel, call, tool
from pilothouse.exceptions import RunFinishedError, RunNotFoundError
from pilothouse.models.base import ModelRequest
from pilothouse.policy import Policy, Rule
from pilothouse.runtime.journal import SQLiteStore
from pilothouse.teams import Supervisor
from pilothouse.tools import ToolContext

KILL_AT = 0
POINTS = 0
LEDGER = ""


def point() -> None:
    """One progress point; the KILL_AT-th one kills the process (as a crash would)."""
    global POINTS
    POINTS += 1
    if KILL_AT and POINTS == KILL_AT:
        os.kill(os.getpid(), signal.SIGKILL)


class CountingStore(SQLiteStore):
    """A SQLite journal whose every write is two progress points: one before it (the
    write never lands) and one after (it landed, nothing after it happened)."""

    def write(self, *args: Any, **kwargs: Any) -> None:
        point()
        super().write(*args, **kwargs)
        point()


def ledger() -> sqlite3.Connection:
    db = sqlite3.connect(LEDGER, isolation_level=None)
    db.execute("CREATE TABLE IF NOT EXISTS effects (key TEXT PRIMARY KEY, what TEXT)")
    db.execute("CREATE TABLE IF NOT EXISTS attempts (key TEXT, what TEXT)")
    return db


@tool(effect="side_effect", on_doubt="retry")
def record(ctx: ToolContext[None], what: str) -> str:
    """Record a piece of work (idempotent under the call's key)."""
    point()
    db = ledger()
    db.execute("INSERT INTO attempts VALUES (?, ?)", (ctx.idempotency_key, what))
    db.execute("INSERT OR IGNORE INTO effects VALUES (?, ?)", (ctx.idempotency_key, what))
    db.close()
    point()
    return f"recorded {what}"


def member_reply(name: str) -> Any:
    def reply(request: ModelRequest) -> Any:
        point()
        results = [m for m in request.messages if m.role == "tool"]
        task = request.messages[-1].content if not results else ""
        if not results:
            return call("record", what=f"{name}: {task}")
        return f"{name} did it"

    return reply


def boss_reply(request: ModelRequest) -> Any:
    point()
    results = [m.content for m in request.messages if m.role == "tool"]
    plan = ["research", "write", "review"]
    if len(results) < len(plan):
        step = plan[len(results)]
        return call(f"ask_{step}er", task=f"{step} the report")
    return "report: " + "; ".join(results)


def team(store_path: str, writes: bool = False) -> Supervisor:
    store = CountingStore(store_path) if writes else SQLiteStore(store_path)
    allow = Policy([Rule("record", "allow")])
    members = [
        Agent(
            ScriptedModel(member_reply(n)),
            f"You {n}.",
            [record],
            name=f"{n}er",
            store=store,
            policy=allow,
        )
        for n in ("research", "write", "review")
    ]
    boss = Agent(ScriptedModel(boss_reply), "You run the team.", name="boss", store=store)
    return Supervisor(boss, members, autonomy="autonomous")


def main(argv: list[str]) -> None:
    global KILL_AT, LEDGER
    writes = "--writes" in argv
    argv = [a for a in argv if a != "--writes"]
    mode, store_path, LEDGER, run_id = argv[:4]
    KILL_AT = int(argv[4]) if len(argv) > 4 else 0
    ledger().close()
    t = team(store_path, writes)
    if mode == "run":
        result = t.run_sync("Write the report.", run_id=run_id)
        output = result.output
    else:
        try:
            output = t.resume_sync(run_id).output
        except RunNotFoundError:
            output = t.run_sync("Write the report.", run_id=run_id).output
        except RunFinishedError:
            output = t.store.get_run(run_id).output
    print(json.dumps({"output": output, "points": POINTS}))


if __name__ == "__main__":
    main(sys.argv[1:])
