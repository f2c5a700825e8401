"""The flow the crash test kills: three branches of side-effecting nodes and a join.

    python tests/flows/flow_crash_worker.py run    --store S --ledger L.db --run-id ID [--kill-at N]
    python tests/flows/flow_crash_worker.py resume --store S --ledger L.db --run-id ID [--kill-at N]

`--store` is a SQLite path or a PostgreSQL URL. `--kill-at N` SIGKILLs this process at
its N-th progress point: a journal write that landed, or a ledger effect (just before
and just after it is written), so a kill lands at a point chosen by count, not by a
clock. `resume` of a run killed before its first write (it does not exist) starts it
afresh under the same id; of a run that already ended, reads its final state.
Prints one JSON line: how it went, the final state, the pid.

The ledger (SQLite) records, per node execution key (`ctx.idempotency_key`):
`attempts` (every execution, with the pid), `applied` (the node's deduplication: an
effect is applied only if its key is new there) and `effects` (one row per effect
applied, no unique key: an effect applied twice shows twice).

The flow (`build`): START -> a1 -> a2; START -> b0 => item (3 items) -> bjoin;
START -> c1 -(route)-> c2; a2, bjoin, c2 -> done.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import sys
from typing import Annotated, Any

from pydantic import BaseModel

from pilothouse.exceptions import RunFinishedError, RunNotFoundError
from pilothouse.flows import END, START, Graph, NodeContext, append, replace
from pilothouse.runtime.journal import SQLiteStore, Store, open_store


class Work(BaseModel):
    log: Annotated[list[str], append] = []
    items: Annotated[list[str], replace] = []


class Points:
    """Counts progress points; SIGKILLs the process at the chosen one."""

    def __init__(self, kill_at: int | None) -> None:
        self.kill_at, self.count = kill_at, 0

    def hit(self) -> None:
        self.count += 1
        if self.kill_at is not None and self.count >= self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)


class CountingStore:
    """The real store, with a progress point after each write that landed."""

    def __init__(self, store: Store, points: Points) -> None:
        self._store, self._points = store, points

    def write(self, *args: Any, **kwargs: Any) -> None:
        self._store.write(*args, **kwargs)
        self._points.hit()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def create_ledger(path: str) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS attempts (key TEXT, pid INTEGER)")
        db.execute("CREATE TABLE IF NOT EXISTS applied (key TEXT PRIMARY KEY)")
        db.execute("CREATE TABLE IF NOT EXISTS effects (key TEXT)")


def build(ledger: str, points: Points) -> Any:
    def effect(ctx: NodeContext) -> None:
        key = ctx.idempotency_key
        with sqlite3.connect(ledger, isolation_level=None) as db:
            db.execute("INSERT INTO attempts VALUES (?, ?)", (key, os.getpid()))
        points.hit()
        with sqlite3.connect(ledger, isolation_level=None) as db:
            db.execute("BEGIN IMMEDIATE")
            if db.execute("INSERT OR IGNORE INTO applied VALUES (?)", (key,)).rowcount:
                db.execute("INSERT INTO effects VALUES (?)", (key,))
            db.execute("COMMIT")
        points.hit()

    def node(name: str, update: Any = None) -> Any:
        async def run(state: Work, ctx: NodeContext) -> dict[str, Any]:
            effect(ctx)
            await asyncio.sleep(0)
            out = {"log": [ctx.key if ctx.item is None else f"{ctx.key}:{ctx.item}"]}
            return {**out, **(update or {})}

        run.__name__ = name
        return run

    g = Graph(Work, name="crashy")
    g.node("a1", node("a1")).node("a2", node("a2")).edge(START, "a1").edge("a1", "a2")
    g.node("b0", node("b0", {"items": ["x", "y", "z"]})).edge(START, "b0")
    g.node("item", node("item")).node("bjoin", node("bjoin"))
    g.map("b0", "item", over=lambda s: s.items, join="bjoin")
    g.node("c1", node("c1")).node("c2", node("c2")).edge(START, "c1")
    g.route("c1", lambda s: "c2", ["c2", END])
    g.node("done", node("done"))
    g.edge("a2", "done").edge("bjoin", "done").edge("c2", "done")
    return g.build()


def open_journal(spec: str) -> Store:
    return open_store(spec) if "://" in spec else SQLiteStore(spec)


async def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["run", "resume"])
    parser.add_argument("--store", required=True)
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--kill-at", type=int)
    args = parser.parse_args(argv)
    create_ledger(args.ledger)
    points = Points(args.kill_at)
    store: Any = CountingStore(open_journal(args.store), points)
    flow = build(args.ledger, points)
    how = args.mode
    try:
        if args.mode == "run":
            result = await flow.run(store=store, run_id=args.run_id)
        else:
            try:
                store.get_run(args.run_id)
                result = await flow.resume(args.run_id, store=store)
            except RunNotFoundError:
                how = "fresh"
                result = await flow.run(store=store, run_id=args.run_id)
        state = result.state.model_dump()
    except RunFinishedError:
        how = "finished"
        final = store.events(args.run_id)[-1]
        state = final.output
    return {"how": how, "state": state, "pid": os.getpid(), "points": points.count}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1:]))), flush=True)
