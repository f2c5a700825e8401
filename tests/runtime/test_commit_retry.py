"""A journal write that fails is retried with the same events, never dropped.

The store is a real SQLite file (or the real PostgreSQL server) wrapped so that chosen
writes fail before reaching it, as a full disk or a dropped connection would. A store
that recovers within the retries leaves a whole journal and the run finishes; one
that stays down interrupts the run (resumable, not an error), and `resume` after the
store is back finishes it with every payment made exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest
from payments import PAYMENTS, FlakyStore, Ledger, assert_whole_journal, make_payer

from pilothouse.events import ErrorOccurred, Event, FinalOutput, ToolCalled, ToolReturned
from pilothouse.exceptions import RunInterrupted
from pilothouse.runtime import loop
from pilothouse.runtime.journal import SQLiteStore, Store


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop's backoff without the waiting (the number of attempts is unchanged)."""
    monkeypatch.setattr(loop, "COMMIT_RETRY_DELAYS", (0.0,) * len(loop.COMMIT_RETRY_DELAYS))


MOMENTS = {  # which write fails: the one carrying this event of this step
    "before the payment": (ToolCalled, 2),
    "after the payment": (ToolReturned, 2),
    "with the final answer": (FinalOutput, PAYMENTS + 1),
}


def _carries(moment: str, events: Sequence[Event]) -> bool:
    kind, step = MOMENTS[moment]
    return any(isinstance(e, kind) and e.step == step for e in events)


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_a_failed_write_is_retried_with_the_same_events(tmp_path: Path, moment: str) -> None:
    remaining = {"failures": 2}

    def failing(number: int, events: Sequence[Event]) -> bool:
        if _carries(moment, events) and remaining["failures"] > 0:
            remaining["failures"] -= 1
            return True
        return False

    store = FlakyStore(SQLiteStore(tmp_path / "j.db"), failing)
    ledger = Ledger(str(tmp_path / "ledger.db"))
    result = make_payer(store, ledger).run_sync("pay the three bills", run_id="r")
    assert result.output == "paid" and store.failed == 2
    events = assert_whole_journal(store, "r")
    assert not any(isinstance(e, ErrorOccurred) for e in events)
    assert store.get_run("r").status == "final"
    counts = ledger.counts()
    assert len(counts) == PAYMENTS and set(counts.values()) == {1}


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_a_store_down_through_every_retry_interrupts_and_resume_finishes(
    tmp_path: Path, moment: str
) -> None:
    down = {"yes": False}

    def failing(number: int, events: Sequence[Event]) -> bool:
        if _carries(moment, events):
            down["yes"] = True
        return down["yes"]

    real = SQLiteStore(tmp_path / "j.db")
    store = FlakyStore(real, failing)
    ledger = Ledger(str(tmp_path / "ledger.db"))
    with pytest.raises(RunInterrupted) as stopped:
        make_payer(store, ledger).run_sync("pay the three bills", run_id="r")
    assert stopped.value.run_id == "r" and "resumed" in str(stopped.value)
    assert store.failed == len(loop.COMMIT_RETRY_DELAYS) + 1
    written = assert_whole_journal(real, "r")
    assert not any(isinstance(e, ErrorOccurred) for e in written)
    assert real.get_run("r").status == "running"  # not "error": resumable

    # The store is back (a new process opens the same file): resume finishes the run.
    result = make_payer(SQLiteStore(tmp_path / "j.db"), ledger).resume_sync("r")
    assert result.output == "paid"
    events = assert_whole_journal(real, "r")
    assert sum(isinstance(e, FinalOutput) for e in events) == 1
    counts = ledger.counts()
    assert len(counts) == PAYMENTS and set(counts.values()) == {1}


def test_postgres_backend_terminated_mid_run_is_survived(
    fresh_postgres_dsn: str, tmp_path: Path
) -> None:
    """The server ends the store's connection right after a payment (an admin, a
    failover): the write of its result fails, the store reconnects, the retry lands."""
    import psycopg

    from pilothouse.runtime.postgres import PostgresStore

    store: Store = PostgresStore(fresh_postgres_dsn)
    ledger = Ledger(str(tmp_path / "ledger.db"))
    terminated = {"times": 0}

    def terminate_backends(ctx: object) -> None:
        if terminated["times"]:
            return
        with psycopg.connect(fresh_postgres_dsn, autocommit=True) as admin:
            found = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        terminated["times"] = len(found)

    agent = make_payer(store, ledger, on_pay=terminate_backends)
    result = asyncio.run(agent.run("pay the three bills", run_id="pg"))
    assert terminated["times"] >= 1  # the store's connection was really cut
    assert result.output == "paid"
    assert_whole_journal(store, "pg")
    assert store.get_run("pg").status == "final"
    counts = ledger.counts()
    assert len(counts) == PAYMENTS and set(counts.values()) == {1}
    store.close()
