"""Sessions on the real PostgreSQL: turns that begin at once, old databases.

Several processes share one PostgreSQL journal, so two turns of one conversation can
begin at the same moment (a customer sends twice, two servers behind a balancer).
Every session write locks the session's row first; these tests show that exactly one
of two concurrent turns begins, and that a begin really waits for a write in flight
on its session (a transaction held open) and then sees that write's lease.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest

from pilothouse.events import ModelResponded
from pilothouse.exceptions import RunNotFoundError, SessionBusyError
from pilothouse.messages import Message
from pilothouse.models.base import ModelResponse
from pilothouse.runtime.journal import RunInfo
from pilothouse.runtime.postgres import PostgresStore
from pilothouse.runtime.session import SessionWrite

HOUR = 3600.0


def event(run_id: str, seq: int) -> ModelResponded:
    e = ModelResponded(run_id=run_id, step=seq, response=ModelResponse(text=str(seq)))
    e.seq, e.ts = seq, 1000.0 + seq
    return e


def begin(store: PostgresStore, session_id: str, run_id: str) -> None:
    """Run `run_id`'s first write as a turn of `session_id`, taking its lease."""
    store.write(
        [event(run_id, 0)],
        RunInfo(run_id, "agent", "model", "in", created=time.time(), session_id=session_id),
        lease=("host:1:1", time.time() + HOUR),
        session=SessionWrite(session_id, run_id, ((0, Message.user(f"from {run_id}")),), True),
    )


def test_of_two_turns_beginning_at_once_exactly_one_begins(fresh_postgres_dsn: str) -> None:
    stores = [PostgresStore(fresh_postgres_dsn) for _ in range(2)]  # two connections
    rounds = 15
    for r in range(rounds):
        stores[0].create_session(f"s{r}")
    for r in range(rounds):
        session_id = f"s{r}"
        barrier = threading.Barrier(2)
        outcomes: dict[str, Any] = {}

        def turn(
            i: int,
            sid: str = session_id,
            gate: threading.Barrier = barrier,
            outcomes: dict[str, Any] = outcomes,
        ) -> None:
            run_id = f"{sid}-run{i}"
            gate.wait()
            try:
                begin(stores[i], sid, run_id)
                outcomes[run_id] = "began"
            except SessionBusyError as exc:
                outcomes[run_id] = exc

        threads = [threading.Thread(target=turn, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        began = [run for run, out in outcomes.items() if out == "began"]
        refused = [out for out in outcomes.values() if isinstance(out, SessionBusyError)]
        assert len(began) == 1 and len(refused) == 1, outcomes
        assert refused[0].run_id == began[0] and refused[0].session_id == session_id
        messages = stores[0].session_messages(session_id)
        assert [(m.seq, m.run_id) for m in messages] == [(0, began[0])]
        loser = next(run for run in outcomes if run != began[0])
        with pytest.raises(RunNotFoundError):
            stores[0].get_run(loser)
    for store in stores:
        store.close()


def test_a_begin_waits_for_a_write_in_flight_on_its_session_then_sees_its_lease(
    fresh_postgres_dsn: str,
) -> None:
    """Another turn's write holds the session's row (its transaction not committed yet):
    a begin must wait for it rather than check the leases it cannot see yet."""
    store = PostgresStore(fresh_postgres_dsn)
    store.create_session("s")
    other = psycopg.connect(fresh_postgres_dsn)  # not autocommit: one open transaction
    other.execute("SELECT messages FROM sessions WHERE session_id='s' FOR UPDATE")
    other.execute(
        "INSERT INTO runs (run_id, agent, model, input, status, created, updated, session_id, "
        "lease_owner, lease_expires) VALUES ('first', 'a', 'm', '\"in\"', 'running', 1, 1, 's', "
        "'host:2:1', %s)",
        (time.time() + HOUR,),
    )
    outcome: dict[str, Any] = {}

    def second() -> None:
        try:
            begin(store, "s", "second")
            outcome["result"] = "began"
        except Exception as exc:
            outcome["result"] = exc

    thread = threading.Thread(target=second)
    thread.start()
    with psycopg.connect(fresh_postgres_dsn, autocommit=True) as admin:
        deadline = time.monotonic() + 60
        waiting = False
        while not waiting and time.monotonic() < deadline and thread.is_alive():
            waiting = bool(
                admin.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name = 'pilothouse' AND wait_event_type = 'Lock'"
                ).fetchone()
            )
            time.sleep(0.01)
    assert waiting, f"the begin did not wait for the session's row: {outcome}"
    other.commit()
    other.close()
    thread.join(60)
    refused = outcome["result"]
    assert isinstance(refused, SessionBusyError), refused
    assert (refused.session_id, refused.run_id) == ("s", "first")
    assert store.get_session("s").messages == 0
    with pytest.raises(RunNotFoundError):
        store.get_run("second")
    store.close()


OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    model TEXT NOT NULL,
    input TEXT NOT NULL,
    status TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    updated DOUBLE PRECISION NOT NULL,
    steps INTEGER NOT NULL DEFAULT 0,
    input_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    cost DOUBLE PRECISION,
    output TEXT,
    lease_owner TEXT,
    lease_expires DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    seq INTEGER NOT NULL,
    ts DOUBLE PRECISION NOT NULL,
    step INTEGER NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX IF NOT EXISTS runs_created ON runs(created);
CREATE INDEX IF NOT EXISTS runs_status_created ON runs(status, created);
"""  # the schema before sessions and the run tree, as released


def test_an_old_postgres_journal_is_migrated_when_opened(fresh_postgres_dsn: str) -> None:
    with psycopg.connect(fresh_postgres_dsn, autocommit=True) as db:
        db.execute(OLD_SCHEMA)
        db.execute(
            "INSERT INTO runs (run_id, agent, model, input, status, created, updated, output) "
            "VALUES ('old', 'a', 'm', '\"question\"', 'final', 5, 6, '\"answer\"')"
        )
    store = PostgresStore(fresh_postgres_dsn)
    got = store.get_run("old")
    assert (got.input, got.output, got.session_id, got.parent_run_id) == (
        "question",
        "answer",
        None,
        None,
    )
    store.create_session("s")
    begin(store, "s", "new")
    store.write(
        [event("kid", 0)], RunInfo("kid", "a", "m", "in", parent_run_id="new", root_run_id="new")
    )
    assert [r.run_id for r in store.list_runs(session_id="s")] == ["new"]
    assert [r.run_id for r in store.children("new")] == ["kid"]
    PostgresStore(fresh_postgres_dsn).close()  # opening again: nothing left to add
    with psycopg.connect(fresh_postgres_dsn, autocommit=True) as db:
        indexes = {r[0] for r in db.execute("SELECT indexname FROM pg_indexes")}
        assert {"runs_parent", "runs_session", "session_messages_turn"} <= indexes
        db.execute("SET enable_seqscan = off")
        plan = " ".join(
            r[0]
            for r in db.execute(
                "EXPLAIN SELECT seq FROM session_messages WHERE session_id='s' AND seq >= 100 "
                "ORDER BY seq LIMIT 50"
            )
        )
        assert "session_messages_pkey" in plan and "Sort" not in plan, plan
    store.close()
