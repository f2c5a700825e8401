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
run took, its pid, the progress points it passed (see `point`).

Two more ways to break a run (the crash test's other modes): `--outage EVENT:STEP:K`
makes the journal store's real engine fail K consecutive write attempts from a
chosen commit point on (`OutageStore`: a held SQLite write lock, or the PostgreSQL
backend terminated); a run still down after the loop's retries ends `RunInterrupted`
and is reported as "interrupted" (with `--then-resume`, it is resumed in the same
process once the store is back). `--gate` makes a process print READY and wait for a
line on stdin, so the test can release two `resume`s of one run at the same moment; a
resume refused because the other drives the run (`RunLeasedError`) is reported as
"refused", as is a fresh start that lost the run's first write to the other.

`serve` is a fork server for the test: it imports pilothouse and builds the tools
once, says so (a "ready" line), then for each request line (JSON: argv, out) forks
a child that runs `main` with that argv, its stdout and stderr going to the file
`out`. It answers with the child's pid, which the test kills with SIGKILL, and
reaps a child only when asked ("wait"), so a pid the test kills cannot have been
reused. The child runs the same code as the `run`/`resume` command lines; forking
saves the interpreter start and imports (about half a CPU-second each) that the
test's ~1,200 processes would otherwise cost. `--hold-after-charge` stops a run for
good just after its first charge happened (a test kills it there). A "start" request
may ask for a gate (the child's stdin is a pipe the server writes "go" to on
"release"), and "dead" waits for a killed child without reaping it (a zombie).

`--tree` runs tree mode instead: a parent agent whose `delegate` tool starts child
runs (`ToolContext.run_child`), two in parallel in one step and a third later, each
child with side-effecting calls of its own; `resume` resumes the parent only, which
re-attaches to its children. Tree mode has no delays: `--kill-at N` SIGKILLs the
process at its N-th progress point (a journal write or a ledger effect, before or
after it lands), so a kill lands at a point chosen by count, not by a clock; the
report says how many points the process passed and, in tree mode, which (`trace`).

The ledger is a separate SQLite file the tools write each effect to, keyed by
`ToolContext.idempotency_key`; the test counts effects there:

- `effects`: one row per effect applied (no unique key, so an effect applied twice
  shows as two rows);
- `applied`: the idempotent tools' deduplication (`INSERT OR IGNORE` on the key);
- `attempts`: every execution of a side-effecting tool (a retried idempotent call
  shows here twice, in `effects` once);
- `reads`: every execution of the read-only tool (its argument);
- `reconciles`: every reconcile of a charge: its key and whether it was found.

The last three also record the pid of the process that did it: a resume refused
because another process drives the run must not appear there.

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
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pilothouse import Agent, Budget, ScriptedModel, SQLiteStore, tool
from pilothouse.events import Event, ToolCalled, ToolReturned
from pilothouse.exceptions import (
    RunFinishedError,
    RunInterrupted,
    RunLeasedError,
    RunNotFoundError,
    StoreError,
    WriteConflictError,
)
from pilothouse.messages import ToolCall
from pilothouse.models.base import ModelRequest
from pilothouse.policy import Policy
from pilothouse.runtime import loop
from pilothouse.runtime.journal import RunInfo, Store
from pilothouse.tools import ToolContext

MODEL_DELAY = 0.02  # seconds the scripted model "thinks" before each reply
TOOL_DELAY = 0.008  # seconds a tool works before, and again after, its effect

_LEDGER_SCHEMA = """
CREATE TABLE IF NOT EXISTS effects (key TEXT NOT NULL, tool TEXT NOT NULL,
    args TEXT NOT NULL, result TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS applied (key TEXT PRIMARY KEY, result TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attempts (key TEXT NOT NULL, tool TEXT NOT NULL, pid INTEGER);
CREATE TABLE IF NOT EXISTS reads (key TEXT NOT NULL, pid INTEGER);
CREATE TABLE IF NOT EXISTS reconciles (key TEXT NOT NULL, found INTEGER NOT NULL, pid INTEGER);
"""

_ledger_path: str | None = None  # set by `main`: the tools of this process write here
_hold_after_charge = False  # --hold-after-charge: stop for good once a charge is done
_kill_at: int | None = None  # --kill-at N: SIGKILL this process at its N-th progress point
_points = 0  # progress points this process has passed
_trace: list[tuple[str, str, str, bool]] = []  # each point's (kind, when, run, final)
_points_lock = threading.Lock()  # blocking tools reach points from worker threads


def point(kind: str, when: str, run: str, final: bool = False) -> None:
    """A progress point: a journal write or a ledger effect about to commit ("before")
    or just committed ("after"), by run `run` (an effect names its idempotency key);
    `final`: the write carries the run's final answer.

    With `--kill-at N`, the N-th point of this process SIGKILLs it on the spot, after
    writing one JSON line saying where (`killed_at`, `kind`, `when`, `run`, `final`). The
    points are where what is on disk changes, so every state a kill can leave is one of
    them, and which one is chosen by a count, not by a clock. A tree-mode report lists the
    points passed (`trace`), so the test can aim a kill at a kind of point.
    """
    global _points
    with _points_lock:
        _points += 1
        _trace.append((kind, when, run, final))
        if _points != _kill_at:
            return
        line = {"killed_at": _points, "kind": kind, "when": when, "run": run, "final": final}
        os.write(1, (json.dumps(line) + "\n").encode())
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)  # not reached: SIGKILL is not deferred


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
        db.execute("INSERT INTO attempts VALUES (?, ?, ?)", (key, name, os.getpid()))
        new = db.execute("INSERT OR IGNORE INTO applied VALUES (?, ?)", (key, result)).rowcount
        if new:
            db.execute(
                "INSERT INTO effects VALUES (?, ?, ?, ?)",
                (key, name, json.dumps(args, sort_keys=True), result),
            )
        stored: str = db.execute("SELECT result FROM applied WHERE key=?", (key,)).fetchone()[0]
        point("effect", "before", key)
        db.execute("COMMIT")
        point("effect", "after", key)
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
    db.execute("INSERT INTO reads VALUES (?, ?)", (key, os.getpid()))
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
        db.execute(
            "INSERT INTO reconciles VALUES (?, ?, ?)",
            (ctx.idempotency_key, row is not None, os.getpid()),
        )
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
        db.execute("INSERT INTO attempts VALUES (?, ?, ?)", (key, "charge", os.getpid()))
        db.execute(
            "INSERT INTO effects VALUES (?, ?, ?, ?)",
            (
                key,
                "charge",
                json.dumps({"account": account, "amount": amount}, sort_keys=True),
                result,
            ),
        )
        point("effect", "before", key)
        db.execute("COMMIT")
        point("effect", "after", key)
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


def build_agent(seed: int, store: Store) -> Agent[None, str]:
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


# --------------------------------------------------------------------------- the run tree

# Tree mode (`--tree`): the run is a parent whose `delegate` tool starts child runs
# (`ToolContext.run_child`): children "a" and "b" in parallel (two calls in one
# reply), "c" in a later step. Each child makes side-effecting calls of its own
# through the same ledger and answers; the parent's answer carries theirs.
TREE_POLICY = Policy.from_dict(
    {
        "version": 1,
        "name": "crash-test-tree",
        "defaults": {"read_only": "allow", "side_effect": "deny", "irreversible": "deny"},
        "rules": [
            {
                "id": "stock-mail-and-helpers",
                "tools": ["reserve", "notify", "delegate"],
                "effect": "allow",
            },
            {
                "id": "charge-after-lookup",
                "tools": ["charge"],
                "effect": "allow",
                "when": {"after": ["lookup"]},
            },
        ],
    }
)


def tree_plan(seed: int) -> list[str]:
    """The parent's script in tree mode: one entry per model call.

    Parts of an entry (joined by "+", called in parallel): "stock" (lookup and
    reserve), "mixed" (stock and notify), "charge", "reserve", "notify", "ab"
    (children a and b), "c" (child c). First "stock" or "mixed" (the charge rule
    needs a lookup), then "ab" (with a notify of the parent's own for some seeds),
    for some seeds a step of the parent's own, then "c", for some a notify, then the
    final answer. Every step but the last has a side-effecting call, so each is
    committed when it runs (none is left to `Journal.due`, a clock): a process's
    progress points are counted, never timed.
    """
    rng = random.Random(f"tree-{seed}")
    steps = [rng.choice(["stock", "mixed"]), rng.choice(["ab", "ab+notify"])]
    if rng.random() < 0.6:
        steps.append(rng.choice(["charge", "charge+notify", "reserve"]))
    steps.append(rng.choice(["c", "c+reserve"]))
    if rng.random() < 0.3:
        steps.append("notify")
    steps.append("final")
    return steps


def child_plan(seed: int, name: str) -> list[str]:
    """Child `name`'s script: stock or mixed, a charge (and a notify), maybe one more."""
    rng = random.Random(f"tree-{seed}-{name}")
    steps = [rng.choice(["stock", "mixed"]), rng.choice(["charge", "charge+notify"])]
    if rng.random() < 0.5:
        steps.append(rng.choice(["reserve", "notify"]))
    steps.append("final")
    return steps


def _tree_calls(kind: str, tag: str, step: int, seen: list[str]) -> list[ToolCall]:
    """The calls of one scripted step `kind`; arguments derive from the results seen."""
    basis = _digest(f"{tag}|" + "|".join(seen) + f"#{step}")
    number = int(basis, 16)
    calls: list[tuple[str, dict[str, Any]]] = []
    for part in kind.split("+"):
        if part in ("stock", "mixed"):
            calls.append(("lookup", {"key": f"{tag}-{step}"}))
        if part in ("stock", "mixed", "reserve"):
            calls.append(("reserve", {"item": f"item-{basis[:4]}", "quantity": 1 + number % 5}))
        if part == "charge":
            calls.append(("charge", {"account": f"acct-{tag}", "amount": 100 + number % 900}))
        if part in ("mixed", "notify"):
            message = f"step {step}: {basis[:6]}"
            calls.append(("notify", {"to": f"{tag}@example.org", "message": message}))
        if part == "ab":
            calls += [("delegate", {"name": n, "brief": f"part {n} of {basis[:6]}"}) for n in "ab"]
        if part == "c":  # its brief carries what a and b answered: a wrong answer shows
            calls.append(("delegate", {"name": "c", "brief": f"part c after {basis}"}))
    return [ToolCall(f"{tag}t{step}c{j}", name, args) for j, (name, args) in enumerate(calls)]


def tree_model(seed: int) -> ScriptedModel:
    """The parent's model: answers from how far the conversation got (`tree_plan`)."""
    steps = tree_plan(seed)

    def reply(request: ModelRequest) -> Any:
        turn = sum(1 for m in request.messages if m.role == "assistant")
        seen = _observations(request)
        if steps[turn] == "final":
            return json.dumps({"seed": seed, "tree": True, "observations": seen}, sort_keys=True)
        return _tree_calls(steps[turn], f"s{seed}", turn + 1, seen)

    return ScriptedModel(reply, name="scripted-crash-tree")


def child_model() -> ScriptedModel:
    """The children's model: the seed and the child's name come from its input."""

    def reply(request: ModelRequest) -> Any:
        brief = json.loads(next(m.content for m in request.messages if m.role == "user"))
        seed, name = brief["seed"], brief["child"]
        steps = child_plan(seed, name)
        turn = sum(1 for m in request.messages if m.role == "assistant")
        seen = _observations(request)
        if steps[turn] == "final":
            answer = {"seed": seed, "child": name, "brief": brief["brief"], "observations": seen}
            return json.dumps(answer, sort_keys=True)
        return _tree_calls(steps[turn], f"s{seed}{name}", turn + 1, seen)

    return ScriptedModel(reply, name="scripted-crash-tree-child")


def build_tree_agent(seed: int, store: Store) -> Agent[None, str]:
    """The parent agent of tree mode, with its helper (the children's agent)."""
    helper = Agent(
        child_model(),
        "Do the subtask you are given, then report every observation.",
        TOOLS,
        name="crash-tree-child",
        store=store,
        policy=POLICY,
        max_steps=40,  # capped to what the parent has left (ChildStarted.capped says so)
    )

    @tool(effect="side_effect", on_doubt="retry")
    async def delegate(name: str, brief: str, ctx: ToolContext) -> str:
        """Hand a subtask to a helper (a child run); its final answer is the result.

        Args:
            name: the subtask's name (the child's key under this call).
            brief: what the helper is to do.
        """
        text = json.dumps({"seed": seed, "child": name, "brief": brief}, sort_keys=True)
        result = await ctx.run_child(helper, text, key=name)
        return str(result.output)

    return Agent(
        tree_model(seed),
        "Do the seeded errand with helpers, then report every observation.",
        [*TOOLS, delegate],
        name="crash-tree",
        store=store,
        policy=TREE_POLICY,
        # The children's steps and tokens count against these, and each child is capped
        # to what is left: the same, the test checks, whether the parent was resumed.
        budget=Budget(max_steps=30, max_tokens=100_000),
    )


def tree_task(seed: int) -> str:
    return f"crash test tree errand {seed}"


class PointStore:
    """The journal store, with each write between two progress points (`point`):
    "before" (nothing of it on disk) and "after" (all of it), named by the run."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner

    def write(self, events: Sequence[Event], run: RunInfo | None = None, **lease: Any) -> None:
        who = run.run_id if run is not None else events[0].run_id if events else "?"
        final = any(e.type == "final" for e in events)
        point("journal", "before", who, final)
        self.inner.write(events, run, **lease)
        point("journal", "after", who, final)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _final_output(store: Store, run_id: str) -> Any:
    events = store.events(run_id)
    finals = [e for e in events if e.type == "final"]
    if not finals:
        last = events[-1].type if events else "nothing"
        raise RuntimeError(f"run {run_id} ended without a final event (last: {last})")
    return finals[-1].output  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- store outages

# The loop's waits between attempts at a failed commit, in this process: short, so an
# outage costs milliseconds; their number (the retry budget) is the runtime's own.
RETRY_DELAY = 0.004
OUTAGE_EVENTS = ("run_started", "tool_call", "tool_result", "final", "first")


@dataclass(frozen=True)
class Outage:
    """`failures` consecutive write attempts fail, starting with the first write whose
    batch carries the `event` of `step` ("first": this process's first write)."""

    event: str
    step: int
    failures: int

    @classmethod
    def parse(cls, text: str) -> Outage:
        event, step, failures = text.split(":")
        if event not in OUTAGE_EVENTS:
            raise ValueError(f"unknown outage event {event!r} (one of {OUTAGE_EVENTS})")
        return cls(event, int(step), int(failures))

    def __str__(self) -> str:
        return f"{self.event}:{self.step}:{self.failures}"


class OutageStore:
    """The real journal store, with one outage of its real engine at a chosen write.

    From the first write that `Outage` names, `failures` consecutive write attempts
    fail, and so does anything else meanwhile asked of the store that needs the engine
    (the lease's claim and release); then the store is back. The failures are the
    engines' own, not exceptions raised in front of the store:

    - SQLite: another connection holds the file's write lock (``BEGIN IMMEDIATE``, as a
      backup or a second writer would) and the store's connection stops waiting for
      locks (``busy_timeout`` 0, else each attempt would wait 5 s): every write fails
      with "database is locked"; reads go on (WAL). ``PRAGMA max_page_count`` (a full
      disk) was not used: a write that fits in pages already allocated goes through, so
      how many attempts fail would depend on how full the last page is, not on the seed.
    - PostgreSQL: before each call the store's own backend is terminated from another
      connection (``pg_terminate_backend``, waiting until it is gone): the call fails on
      the lost connection, the store reconnects at the next call, which is cut again.

    `failed` counts the write attempts that failed, `misses` those in the outage that
    went through anyway (the injection did not work: the test fails), `point` says
    which commit point the first failing write was.
    """

    def __init__(self, inner: Store, spec: str, outage: Outage) -> None:
        self.inner, self.spec, self.outage = inner, spec, outage
        self.writes = 0
        self.failed = 0
        self.misses = 0
        self.active = False
        self.over = False
        self.point = ""
        self._side_steps: set[int] = set()  # steps with a side-effecting call
        self._blocker: sqlite3.Connection | None = None
        self._admin: Any = None  # psycopg connection that terminates the store's backend

    def _starts(self, events: Sequence[Event]) -> bool:
        if self.outage.event == "first":
            return True
        return any(e.type == self.outage.event and e.step == self.outage.step for e in events)

    def _label(self, events: Sequence[Event]) -> str:
        """Which commit point (docs/ARCHITECTURE.md) a write is, from what it carries."""
        types = {e.type for e in events}
        if not events:
            return "index row only (a resume's first write)"
        if "run_started" in types:
            return "run start (commit 0)"
        if "final" in types:
            return "the end (commit 4)"
        results = {(e.step, e.index) for e in events if isinstance(e, ToolReturned)}
        calls = [e for e in events if isinstance(e, ToolCalled) and e.effect != "read_only"]
        if any((e.step, e.index) not in results for e in calls):
            return "before a side effect (commit 1)"
        if any(isinstance(e, ToolReturned) and e.step in self._side_steps for e in events):
            return "after a side effect (commit 2)"
        return "read-only steps (commit 3)"

    def write(self, events: Sequence[Event], run: RunInfo | None = None, **lease: Any) -> None:
        self.writes += 1
        self._side_steps.update(
            e.step for e in events if isinstance(e, ToolCalled) and e.effect != "read_only"
        )
        if not (self.active or self.over) and self._starts(events):
            self.point = self._label(events)
            self._begin()
        if not self.active:
            self.inner.write(events, run, **lease)
            return
        self._cut()
        try:
            self.inner.write(events, run, **lease)
        except StoreError:
            self.failed += 1
            if self.failed >= self.outage.failures:
                self.end()
            raise
        self.misses += 1

    def _begin(self) -> None:
        self.active = True
        if isinstance(self.inner, SQLiteStore):
            self._blocker = sqlite3.connect(self.inner.path, isolation_level=None)
            self._blocker.execute("BEGIN IMMEDIATE")
            self.inner.pragma("busy_timeout", 0)
        else:
            import psycopg

            self._admin = psycopg.connect(self.spec, autocommit=True)

    def _cut(self) -> None:
        """PostgreSQL: end the store's backend now (connecting first if it has none)."""
        if self._admin is None:
            return
        inner: Any = self.inner
        with inner._lock:  # the store's own connection, as its next call will use it
            pid = inner._connection().info.backend_pid
        (gone,) = self._admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone()
        if not gone:
            raise RuntimeError(f"backend {pid} was not terminated")

    def end(self) -> None:
        """The store is back."""
        if not self.active:
            return
        self.active, self.over = False, True
        if self._blocker is not None:
            self._blocker.execute("ROLLBACK")
            self._blocker.close()
            self._blocker = None
            self.inner.pragma("busy_timeout", 5000)
        if self._admin is not None:
            self._admin.close()
            self._admin = None

    def close(self) -> None:
        self.end()
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.active:
                self._cut()
            return attr(*args, **kwargs)

        return call


# --------------------------------------------------------------------------- modes


def _resume(agent: Agent[None, str], store: Store, run_id: str, text: str) -> tuple[str, Any, Any]:
    """What `resume` does: (how it went, the output, the lease holder if refused);
    `text` is the run's input, for a run that is started afresh."""
    try:
        store.get_run(run_id)
    except RunNotFoundError:
        # Stopped before run_started was committed: the run does not exist.
        try:
            output = agent.run_sync(text, run_id=run_id).output
        except WriteConflictError as exc:  # another process started it first
            return f"refused: the fresh start lost the first write ({exc})", None, None
        return "fresh: no run on disk (stopped before run_started), started anew", output, None
    try:
        return "resumed", agent.resume_sync(run_id).output, None
    except RunFinishedError:
        return "nothing to resume: the run had already finished", _final_output(store, run_id), None
    except RunLeasedError as exc:
        return f"refused: RunLeasedError ({exc})", None, exc.holder


def execute(
    mode: str,
    store_path: str,
    ledger_path: str,
    run_id: str,
    seed: int,
    *,
    outage: Outage | None = None,
    then_resume: bool = False,
    gate: bool = False,
    tree: bool = False,
    kill_at: int | None = None,
) -> dict[str, Any]:
    """Run or resume `run_id`; the JSON-able report the command prints.

    `outage`: the journal store fails as `Outage` says (a run that stays down through
    every retry ends `RunInterrupted`, reported as "interrupted"); with `then_resume`
    such a run is resumed in this same process once the store is back. `gate`: print
    READY and wait for a line on stdin before starting (the test releases two resumes
    at once). A resume refused because another process drives the run (or, for a run
    not on disk, because another process started it first) is reported, not raised.
    `tree`: the run is tree mode's parent (resuming it resumes its children), with no
    delays (its kills are placed by `kill_at`, not by a clock). `kill_at`: SIGKILL this
    process at its `kill_at`-th progress point (`point`); the report says how many
    points the process passed (`points`).
    """
    global _ledger_path, _kill_at, MODEL_DELAY, TOOL_DELAY
    _ledger_path = ledger_path
    _kill_at = kill_at
    if tree:
        MODEL_DELAY = TOOL_DELAY = 0.0
    loop.COMMIT_RETRY_DELAYS = (RETRY_DELAY,) * len(loop.COMMIT_RETRY_DELAYS)
    began = time.monotonic()
    create_ledger(ledger_path)
    real = open_journal(store_path)
    store: Any = real
    if outage is not None:
        store = OutageStore(real, store_path, outage)
    elif tree or kill_at is not None:
        store = PointStore(real)
    agent = build_tree_agent(seed, store) if tree else build_agent(seed, store)
    text = tree_task(seed) if tree else task(seed)
    if gate:
        print("READY", flush=True)
        sys.stdin.readline()
    how: str
    output: Any = None
    holder: str | None = None  # who held the run's lease, if this process was refused
    try:
        try:
            if mode == "run":
                how = "ran"
                output = agent.run_sync(text, run_id=run_id).output
            else:
                how, output, holder = _resume(agent, store, run_id, text)
        except RunInterrupted:
            how = "interrupted"
            if isinstance(store, OutageStore):
                store.end()
            if then_resume:  # the store is back: resume here, as a service would
                again, output, holder = _resume(agent, store, run_id, text)
                how = f"interrupted, then {again}"
        if output is not None:
            journal_output = _final_output(store, run_id)
            if journal_output != output:
                raise RuntimeError(
                    f"output {output!r} differs from the journal's {journal_output!r}"
                )
    finally:
        store.close()
    report: dict[str, Any] = {
        "how": how,
        "output": output,
        "seconds": round(time.monotonic() - began, 4),
        "pid": os.getpid(),
        "holder": holder,
        "points": _points,
    }
    if tree:
        report["trace"] = _trace
    if isinstance(store, OutageStore):
        report.update(
            failed=store.failed, misses=store.misses, point=store.point, writes=store.writes
        )
    return report


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
    parser.add_argument(
        "--outage",
        type=Outage.parse,
        help="EVENT:STEP:K: from the first write carrying that event (or 'first:0:K': "
        "this process's first write), K write attempts of the journal store fail",
    )
    parser.add_argument(
        "--then-resume",
        action="store_true",
        help="a run interrupted by the outage is resumed in this process once it is over",
    )
    parser.add_argument(
        "--gate", action="store_true", help="print READY, then wait for a line on stdin"
    )
    parser.add_argument(
        "--tree", action="store_true", help="the run is a parent that starts three child runs"
    )
    parser.add_argument(
        "--kill-at",
        type=int,
        metavar="N",
        help="SIGKILL this process at its N-th progress point (a journal write or ledger "
        "effect, before or after it lands), after a JSON line saying where",
    )
    args = parser.parse_args(argv)
    if args.mode == "serve":
        return serve()
    if not (args.store and args.ledger and args.run_id) or args.seed is None:
        parser.error(f"{args.mode} needs --store, --ledger, --run-id and --seed")
    global _hold_after_charge
    _hold_after_charge = args.hold_after_charge
    report = execute(
        args.mode,
        args.store,
        args.ledger,
        args.run_id,
        args.seed,
        outage=args.outage,
        then_resume=args.then_resume,
        gate=args.gate,
        tree=args.tree,
        kill_at=args.kill_at,
    )
    print(json.dumps(report), flush=True)
    return 0


# --------------------------------------------------------------------------- fork server


def _child(argv: list[str], out: str, stdin: int | None, others: Sequence[int]) -> None:
    """In the forked child: run `main(argv)` with output to `out` and stdin from the
    pipe `stdin` (None: /dev/null); `others` are the server's gate pipes of other
    children, closed here. Never returns."""
    code = 1
    try:
        for fd in others:
            os.close(fd)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        source = os.open(os.devnull, os.O_RDONLY) if stdin is None else stdin
        os.dup2(source, 0)
        os.close(source)
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 (fd 1 outlives this frame)
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 (not the server's buffered one)
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


def _until_ended(pid: int, timeout: float) -> None:
    """Block until child `pid` ends (at most `timeout` s) without reaping it. On Linux a
    pidfd says when (no polling, which would cost the CPU the runs share); elsewhere
    this returns at once and the caller polls."""
    if hasattr(os, "pidfd_open"):
        pidfd = os.pidfd_open(pid)
        try:
            select.select([pidfd], [], [], timeout)
        finally:
            os.close(pidfd)


def _wait(pid: int, timeout: float) -> dict[str, Any]:
    """Reap child `pid`, waiting at most `timeout` seconds (then kill it)."""
    deadline = time.monotonic() + timeout
    _until_ended(pid, timeout)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return {"pid": pid, "status": os.waitstatus_to_exitcode(status)}
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return {"pid": pid, "status": "timeout"}
        time.sleep(0.005)


def _dead(pid: int, timeout: float) -> dict[str, Any]:
    """Wait until child `pid` has ended, without reaping it: it stays a zombie, and
    says so in /proc (what `holder_is_dead` reads)."""
    _until_ended(pid, timeout)
    ended = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
    state = "?"
    with (
        contextlib.suppress(OSError, IndexError),
        open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat,
    ):
        state = stat.read().rpartition(")")[2].split()[0]
    return {"pid": pid, "ended": ended is not None, "state": state}


def serve() -> int:
    """Say it is ready, then answer request lines on stdin until it closes.

    {"op": "start", "argv": [...], "out": PATH, "gate": BOOL} -> {"pid": N}: fork a
    child running main(argv) (with "gate", its stdin is a pipe the server holds).
    {"op": "release", "pids": [...]}: write a line to those children's stdin pipes, one
    right after the other. {"op": "dead", "pid": N, "timeout": S} -> {"pid": N,
    "ended": BOOL, "state": "Z"}: wait until it ended, without reaping it.
    {"op": "wait", "pid": N, "timeout": S} -> {"pid": N, "status": CODE}: reap it (a
    negative code is the signal that ended it; "timeout": it was killed after S
    seconds).
    """
    with contextlib.suppress(ImportError):  # the PostgreSQL store too, if it can load
        import psycopg  # noqa: F401

        import pilothouse.runtime.postgres  # noqa: F401
    sys.stdout.write(json.dumps({"ready": os.getpid()}) + "\n")  # imports done
    sys.stdout.flush()
    gates: dict[int, int] = {}  # child pid -> the write end of its stdin pipe
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "start":
            read = None
            if request.get("gate"):
                read, write = os.pipe()
            pid = os.fork()
            if pid == 0:
                _child(list(request["argv"]), request["out"], read, list(gates.values()))
            if read is not None:
                os.close(read)
                gates[pid] = write
            answer: dict[str, Any] = {"pid": pid}
        elif request["op"] == "release":
            for pid in request["pids"]:
                os.write(gates[pid], b"go\n")
            for pid in request["pids"]:
                os.close(gates.pop(pid))
            answer = {"released": request["pids"]}
        elif request["op"] == "dead":
            answer = _dead(int(request["pid"]), float(request.get("timeout", 60)))
        elif request["op"] == "wait":
            answer = _wait(int(request["pid"]), float(request.get("timeout", 60)))
        else:
            answer = {"error": f"unknown op {request['op']!r}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
