"""Journal stores: SQLite round trips, run index, clear errors on bad input."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pilothouse import Agent, ScriptedModel, tool
from pilothouse.exceptions import RunNotFoundError, StoreError
from pilothouse.messages import ToolCall
from pilothouse.runtime.journal import MemoryStore, SQLiteStore, open_store


@tool
def lookup(key: str) -> str:
    """Look up."""
    return key.upper()


def run_once(store: object) -> tuple[Agent[str], str]:
    calls = [ToolCall("c1", "lookup", {"key": "a"}), ToolCall("c2", "lookup", {"key": "b"})]
    a = Agent(ScriptedModel([calls, "AB"]), tools=[lookup], store=store)  # type: ignore[arg-type]
    return a, a.run_sync("both").run_id


def test_sqlite_round_trip_equals_memory(tmp_path: Path) -> None:
    mem_agent, mem_id = run_once(MemoryStore())
    sql_agent, sql_id = run_once(SQLiteStore(tmp_path / "j.db"))
    mem = [e.to_dict() for e in mem_agent.store.events(mem_id)]
    sql = [e.to_dict() for e in sql_agent.store.events(sql_id)]
    strip = {"run_id", "ts", "duration", "idempotency_key"}
    assert [{k: v for k, v in d.items() if k not in strip} for d in mem] == [
        {k: v for k, v in d.items() if k not in strip} for d in sql
    ]
    info = sql_agent.store.get_run(sql_id)
    assert (info.status, info.steps, info.output, info.input) == ("final", 2, "AB", "both")


def test_sqlite_uses_wal_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "j.db"
    a, run_id = run_once(SQLiteStore(path))
    a.store.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    reopened = SQLiteStore(path)
    assert len(reopened.events(run_id)) == 11
    assert [r.run_id for r in reopened.list_runs()] == [run_id]


def test_default_store_is_a_file_under_dot_pilothouse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PILOTHOUSE_STORE", raising=False)
    a, _ = run_once(None)
    assert (tmp_path / ".pilothouse" / "journal.db").exists()
    assert open_store(None) is a.store
    assert isinstance(open_store(":memory:"), MemoryStore)
    monkeypatch.setenv("PILOTHOUSE_STORE", str(tmp_path / "other.db"))
    assert isinstance(open_store(None), SQLiteStore)
    assert (tmp_path / "other.db").exists()


def test_unknown_run_and_bad_store_spec(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    with pytest.raises(RunNotFoundError, match="no run 'nope'"):
        store.events("nope")
    with pytest.raises(RunNotFoundError):
        MemoryStore().get_run("nope")
    with pytest.raises(StoreError, match="unsupported store"):
        open_store("redis://localhost")
    (tmp_path / "is-a-dir").mkdir()
    with pytest.raises(StoreError, match="cannot open journal store"):
        SQLiteStore(tmp_path / "is-a-dir")


def test_corrupted_event_names_run_and_step(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    _, run_id = run_once(SQLiteStore(path))
    db = sqlite3.connect(path)
    db.execute("UPDATE events SET data='{not json' WHERE run_id=? AND seq=3", (run_id,))
    db.commit()
    db.close()
    with pytest.raises(StoreError, match=rf"run '{run_id}': event 3 \(tool_call\).*corrupted"):
        SQLiteStore(path).events(run_id)
    # Nothing else was touched.
    rows = (
        sqlite3.connect(path)
        .execute("SELECT count(*) FROM events WHERE run_id=?", (run_id,))
        .fetchone()
    )
    assert rows[0] == 11


def test_events_are_never_rewritten(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    _, run_id = run_once(store)
    first = store.events(run_id)
    with pytest.raises(StoreError, match="cannot write"):
        store.write([first[0]])  # same (run_id, seq): refused, not overwritten
    assert [e.to_dict() for e in store.events(run_id)] == [e.to_dict() for e in first]
