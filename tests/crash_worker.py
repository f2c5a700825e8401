"""The agent the crash test kills: a seeded multi-step run with side-effecting tools.

Run as a script (the crash test starts it, SIGKILLs it at a random moment, then
resumes it in a new process):

    python tests/crash_worker.py run    --store J.db --ledger L.db --run-id ID --seed N
    python tests/crash_worker.py resume --store J.db --ledger L.db --run-id ID --seed N
    python tests/crash_worker.py serve

`run` starts run ID; `resume` continues it from its journal. `resume` also covers
the two ends of a run's life, explicitly: a run killed before its first commit
(`run_started` never reached the disk) does not exist, so `resume` starts it
afresh under the same id (its idempotency keys are the same, so nothing could have
happened under them yet); a run killed after its `final` was committed has nothing
to resume (`RunFinishedError`), so `resume` reads the output from the journal.
Either mode prints one JSON line: how it went (`how`), the output, the seconds the
run took.

`serve` is a fork server for the test: it imports pilothouse and builds the tools
once, says so (a "ready" line), then for each request line (JSON: argv, out) forks
a child that runs `main` with that argv, its stdout and stderr going to the file
`out`. It answers with the child's pid, which the test kills with SIGKILL, and
reaps a child only when asked ("wait"), so a pid the test kills cannot have been
reused. The child runs the same code as the `run`/`resume` command lines; forking
saves the interpreter start and imports (about half a CPU-second each) that the
test's ~450 processes would otherwise cost. `--hold-after-charge` stops a run for
good just after its first charge happened (a test kills it there).

The ledger is a separate SQLite file the tools write each effect to, keyed by
`ToolContext.idempotency_key`; the test counts effects there:

- `effects`: one row per effect applied (no unique key, so an effect applied twice
  shows as two rows);
- `applied`: the idempotent tools' deduplication (`INSERT OR IGNORE` on the key);
- `attempts`: every execution of a side-effecting tool (a retried idempotent call
  shows here twice, in `effects` once);
- `reads`: every execution of the read-only tool (its argument);
- `reconciles`: every reconcile of a charge: its key and whether it was found.

Tools: `lookup` (read-only, async), `reserve` (side effect, idempotent, sync in a
worker thread), `notify` (side effect, idempotent, async), `charge` (irreversible,
not idempotent: every execution is an effect; on_doubt="reconcile" looks its key
up in the ledger). Each sleeps a little before and after writing its effect, and
the scripted model sleeps before answering, so random kill times land everywhere
in a run: before the first commit, between a call and its result (before or after
the effect), between steps, after the final answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import select
import signal
import sqlite3
import sys
import time
from collections.abc import Sequence
from typing import Any

from pilothouse import Agent, ScriptedModel, SQLiteStore, tool
from pilothouse.exceptions import RunFinishedError, RunNotFoundError
from pilothouse.messages import ToolCall
from pilothouse.models.base import ModelRequest
from pilothouse.policy import Policy
from pilothouse.runtime.journal import Store
from pilothouse.tools import ToolContext

MODEL_DELAY = 0.02  # seconds the scripted model "thinks" before each reply
TOOL_DELAY = 0.008  # seconds a tool works before, and again after, its effect

_LEDGER_SCHEMA = """
CREATE TABLE IF NOT EXISTS effects (key TEXT NOT NULL, tool TEXT NOT NULL,
    args TEXT NOT NULL, result TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS applied (key TEXT PRIMARY KEY, result TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attempts (key TEXT NOT NULL, tool TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reads (key TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reconciles (key TEXT NOT NULL, found INTEGER NOT NULL);
"""

_ledger_path: str | None = None  # set by `main`: the tools of this process write here
_hold_after_charge = False  # --hold-after-charge: stop for good once a charge is done


def ledger() -> sqlite3.Connection:
    """A connection to this process's ledger (autocommit; transactions are explicit)."""
    if _ledger_path is None:
        raise RuntimeError("the ledger path is not set: call main() with --ledger")
    db = sqlite3.connect(_ledger_path, isolation_level=None, timeout=10)
    # As the journal: WAL, no fsync per commit; a killed process loses nothing.
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def create_ledger(path: str) -> None:
    db = sqlite3.connect(path, isolation_level=None, timeout=10)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(_LEDGER_SCHEMA)
    db.close()


def _digest(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _apply_once(key: str, name: str, args: dict[str, Any], result: str) -> str:
    """An idempotent effect: applied under `key` at most once; returns the stored result."""
    db = ledger()
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO attempts VALUES (?, ?)", (key, name))
        new = db.execute("INSERT OR IGNORE INTO applied VALUES (?, ?)", (key, result)).rowcount
        if new:
            db.execute(
                "INSERT INTO effects VALUES (?, ?, ?, ?)",
                (key, name, json.dumps(args, sort_keys=True), result),
            )
        stored: str = db.execute("SELECT result FROM applied WHERE key=?", (key,)).fetchone()[0]
        db.execute("COMMIT")
        return stored
    finally:
        db.close()


@tool
async def lookup(key: str) -> str:
    """Read a record (read-only: running it again is harmless).

    Args:
        key: the record's key.
    """
    await asyncio.sleep(TOOL_DELAY)
    db = ledger()
    db.execute("INSERT INTO reads VALUES (?)", (key,))
    db.close()
    return f"{key}={_digest(key, 6)}"


@tool(effect="side_effect", on_doubt="retry", blocking=True)
def reserve(item: str, quantity: int, ctx: ToolContext) -> str:
    """Reserve stock; idempotent under the call's idempotency key.

    Args:
        item: what to reserve.
        quantity: how many.
    """
    time.sleep(TOOL_DELAY)
    result = f"reserved {quantity} x {item} (ref {_digest(ctx.idempotency_key)})"
    stored = _apply_once(
        ctx.idempotency_key, "reserve", {"item": item, "quantity": quantity}, result
    )
    time.sleep(TOOL_DELAY)
    return stored


@tool(effect="side_effect", on_doubt="retry")
async def notify(to: str, message: str, ctx: ToolContext) -> str:
    """Send a message; idempotent under the call's idempotency key.

    Args:
        to: the recipient.
        message: the text.
    """
    await asyncio.sleep(TOOL_DELAY)
    result = f"sent to {to}: {message!r}"
    stored = _apply_once(ctx.idempotency_key, "notify", {"to": to, "message": message}, result)
    await asyncio.sleep(TOOL_DELAY)
    return stored


def reconcile_charge(ctx: ToolContext, arguments: dict[str, Any]) -> str | None:
    """Did this charge happen? The ledger knows it by its idempotency key."""
    db = ledger()
    try:
        row = db.execute(
            "SELECT result FROM effects WHERE key=? AND tool='charge'", (ctx.idempotency_key,)
        ).fetchone()
        db.execute("INSERT INTO reconciles VALUES (?, ?)", (ctx.idempotency_key, row is not None))
    finally:
        db.close()
    return None if row is None else str(row[0])


@tool(effect="irreversible", on_doubt="reconcile", reconcile=reconcile_charge)
def charge(account: str, amount: int, ctx: ToolContext) -> str:
    """Charge an account. Not idempotent: every execution moves money.

    Args:
        account: the account to charge.
        amount: how much, in cents.
    """
    time.sleep(TOOL_DELAY)
    key = ctx.idempotency_key
    result = f"charged {amount} to {account}, receipt {_digest(key)}"
    db = ledger()
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO attempts VALUES (?, ?)", (key, "charge"))
        db.execute(
            "INSERT INTO effects VALUES (?, ?, ?, ?)",
            (
                key,
                "charge",
                json.dumps({"account": account, "amount": amount}, sort_keys=True),
                result,
            ),
        )
        db.execute("COMMIT")
    finally:
        db.close()
    if _hold_after_charge:  # a test kills us here: the effect happened, no result yet
        print("HOLD", key, flush=True)
        time.sleep(600)
    time.sleep(TOOL_DELAY)
    return result


TOOLS = [lookup, reserve, notify, charge]

# Side effects are allowed by rules, not by allow_all: the charge rule reads the run's
# history ("after a lookup"), so resume must rebuild the policy's RunContext correctly.
POLICY = Policy.from_dict(
    {
        "version": 1,
        "name": "crash-test",
        "defaults": {"read_only": "allow", "side_effect": "deny", "irreversible": "deny"},
        "rules": [
            {"id": "stock-and-mail", "tools": ["reserve", "notify"], "effect": "allow"},
            {
                "id": "charge-after-lookup",
                "tools": ["charge"],
                "effect": "allow",
                "when": {"after": ["lookup"]},
            },
        ],
    }
)


# --------------------------------------------------------------------------- the script


def plan(seed: int) -> list[str]:
    """The seed's script: one entry per model call.

    Entries: "read" (one lookup), "reads" (2-3 parallel lookups), "reserve",
    "charge", "mixed" (lookup + reserve + notify in parallel), "charge+notify" (in
    parallel), "empty" (an empty answer: the loop asks again), "final". 4 to 6
    model calls; the first step always reads (the charge rule needs a lookup), at
    least one charge and one parallel step.
    """
    rng = random.Random(seed)
    calls = rng.randint(4, 6)
    middle_kinds = ["read", "reads", "reserve", "charge", "mixed", "charge+notify"]
    steps = [rng.choice(["read", "reads", "mixed"])]
    empty = calls >= 5 and rng.random() < 0.3
    while len(steps) < calls - 1 - empty:
        steps.append(rng.choice(middle_kinds))
    if not any(s.startswith("charge") for s in steps):
        steps[rng.randrange(1, len(steps))] = rng.choice(["charge", "charge+notify"])
    if not any(s in ("reads", "mixed", "charge+notify") for s in steps):
        steps[0] = rng.choice(["reads", "mixed"])
    if empty:
        steps.append("empty")
    steps.append("final")
    return steps


def _observations(request: ModelRequest) -> list[str]:
    return [m.content for m in request.messages if m.role == "tool"]


def scripted_model(seed: int) -> ScriptedModel:
    """A model that answers from how far the conversation got, as a real one would:
    a resumed run gets the same reply for the same step. Arguments of later calls
    are derived from earlier tool results, so a wrong result changes the run."""
    steps = plan(seed)

    def reply(request: ModelRequest) -> Any:
        time.sleep(MODEL_DELAY)
        turn = sum(1 for m in request.messages if m.role == "assistant")
        kind = steps[turn]
        seen = _observations(request)
        basis = _digest("|".join(seen) + f"#{turn}")
        number = int(basis, 16)
        step = turn + 1

        def c(j: int, name: str, **args: Any) -> ToolCall:
            return ToolCall(f"s{seed}t{step}c{j}", name, args)

        if kind == "read":
            return [c(0, "lookup", key=f"k{seed}-{step}")]
        if kind == "reads":
            return [c(j, "lookup", key=f"k{seed}-{step}-{j}") for j in range(2 + number % 2)]
        if kind == "reserve":
            return [c(0, "reserve", item=f"item-{basis[:4]}", quantity=1 + number % 5)]
        if kind == "charge":
            return [c(0, "charge", account=f"acct-{seed}", amount=100 + number % 900)]
        if kind == "mixed":
            return [
                c(0, "lookup", key=f"k{seed}-{step}"),
                c(1, "reserve", item=f"item-{basis[:4]}", quantity=1 + number % 3),
                c(2, "notify", to=f"user{seed}@example.org", message=f"step {step}: {basis[:6]}"),
            ]
        if kind == "charge+notify":
            return [
                c(0, "charge", account=f"acct-{seed}", amount=100 + number % 900),
                c(1, "notify", to=f"ops{seed}@example.org", message=f"charged at step {step}"),
            ]
        if kind == "empty":
            return ""
        return json.dumps({"seed": seed, "observations": seen}, sort_keys=True)

    return ScriptedModel(reply, name=f"scripted-crash-{seed}")


def open_journal(spec: str) -> Store:
    """A new store object for `spec`: a SQLite file path or a postgresql:// DSN."""
    if spec.startswith(("postgresql://", "postgres://")):
        from pilothouse.runtime.postgres import PostgresStore

        return PostgresStore(spec)
    return SQLiteStore(spec)


def build_agent(seed: int, store: Store) -> Agent[str]:
    return Agent(
        scripted_model(seed),
        "Do the seeded errand, then report every observation.",
        TOOLS,
        name="crash-test",
        store=store,
        policy=POLICY,
        max_steps=12,
    )


def task(seed: int) -> str:
    return f"crash test errand {seed}"


# --------------------------------------------------------------------------- modes


def _final_output(store: Store, run_id: str) -> Any:
    events = store.events(run_id)
    finals = [e for e in events if e.type == "final"]
    if not finals:
        last = events[-1].type if events else "nothing"
        raise RuntimeError(f"run {run_id} ended without a final event (last: {last})")
    return finals[-1].output  # type: ignore[attr-defined]


def execute(mode: str, store_path: str, ledger_path: str, run_id: str, seed: int) -> dict[str, Any]:
    """Run or resume `run_id`; the JSON-able report the command prints."""
    global _ledger_path
    _ledger_path = ledger_path
    began = time.monotonic()
    create_ledger(ledger_path)
    store = open_journal(store_path)
    agent = build_agent(seed, store)
    how: str
    try:
        if mode == "run":
            how = "ran"
            output: Any = agent.run_sync(task(seed), run_id=run_id).output
        else:
            try:
                store.get_run(run_id)
            except RunNotFoundError:
                # Killed before run_started was committed: the run does not exist.
                how = "fresh: no run on disk (killed before run_started), started anew"
                output = agent.run_sync(task(seed), run_id=run_id).output
            else:
                try:
                    output = agent.resume_sync(run_id).output
                    how = "resumed"
                except RunFinishedError:
                    how = "nothing to resume: the run had already finished"
                    output = _final_output(store, run_id)
        journal_output = _final_output(store, run_id)
        if journal_output != output:
            raise RuntimeError(f"output {output!r} differs from the journal's {journal_output!r}")
    finally:
        store.close()
    return {"how": how, "output": output, "seconds": round(time.monotonic() - began, 4)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("mode", choices=["run", "resume", "serve"])
    parser.add_argument("--store", help="the journal: a SQLite file or a postgresql:// DSN")
    parser.add_argument("--ledger", help="the side-effect ledger (SQLite file)")
    parser.add_argument("--run-id")
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--hold-after-charge",
        action="store_true",
        help="after the first charge's effect, print HOLD and wait (to be killed there)",
    )
    args = parser.parse_args(argv)
    if args.mode == "serve":
        return serve()
    if not (args.store and args.ledger and args.run_id) or args.seed is None:
        parser.error(f"{args.mode} needs --store, --ledger, --run-id and --seed")
    global _hold_after_charge
    _hold_after_charge = args.hold_after_charge
    report = execute(args.mode, args.store, args.ledger, args.run_id, args.seed)
    print(json.dumps(report), flush=True)
    return 0


# --------------------------------------------------------------------------- fork server


def _child(argv: list[str], out: str) -> None:
    """In the forked child: run `main(argv)` with output to `out`; never returns."""
    code = 1
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 (fd 1 outlives this frame)
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _wait(pid: int, timeout: float) -> dict[str, Any]:
    """Reap child `pid`, waiting at most `timeout` seconds (then kill it).

    On Linux a pidfd says when the child ends (no polling, which would cost the CPU
    the runs share); elsewhere, poll.
    """
    deadline = time.monotonic() + timeout
    if hasattr(os, "pidfd_open"):
        pidfd = os.pidfd_open(pid)
        try:
            select.select([pidfd], [], [], timeout)
        finally:
            os.close(pidfd)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return {"pid": pid, "status": os.waitstatus_to_exitcode(status)}
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return {"pid": pid, "status": "timeout"}
        time.sleep(0.005)


def serve() -> int:
    """Say it is ready, then answer request lines on stdin until it closes.

    {"op": "start", "argv": [...], "out": PATH} -> {"pid": N}: fork a child running
    main(argv). {"op": "wait", "pid": N, "timeout": S} -> {"pid": N, "status": CODE}:
    reap it (a negative code is the signal that ended it; "timeout": it was killed
    after S seconds).
    """
    with contextlib.suppress(ImportError):  # the PostgreSQL store too, if it can load
        import psycopg  # noqa: F401

        import pilothouse.runtime.postgres  # noqa: F401
    sys.stdout.write(json.dumps({"ready": os.getpid()}) + "\n")  # imports done
    sys.stdout.flush()
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "start":
            pid = os.fork()
            if pid == 0:
                _child(list(request["argv"]), request["out"])
            answer: dict[str, Any] = {"pid": pid}
        elif request["op"] == "wait":
            answer = _wait(int(request["pid"]), float(request.get("timeout", 60)))
        else:
            answer = {"error": f"unknown op {request['op']!r}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
