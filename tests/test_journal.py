"""Journal stores: SQLite round trips, run index, clear errors on bad input."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilothouse import Agent, ScriptedModel, call, tool
from pilothouse.events import ModelResponded
from pilothouse.exceptions import RunNotFoundError, StoreError, WriteConflictError
from pilothouse.messages import ToolCall
from pilothouse.models.base import ModelRequest, ModelResponse
from pilothouse.policy import Policy, Rule
from pilothouse.runtime.journal import MemoryStore, RunInfo, SQLiteStore, open_store
from pilothouse.tools import ToolContext


@tool
def lookup(key: str) -> str:
    """Look up."""
    return key.upper()


def run_once(store: object) -> tuple[Agent[None, str], str]:
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
    changed = dataclasses.replace(first[0], ts=first[0].ts + 1)  # another writer's event 0
    with pytest.raises(WriteConflictError, match="cannot write"):
        store.write([changed])  # same (run_id, seq): refused, not overwritten
    assert [e.to_dict() for e in store.events(run_id)] == [e.to_dict() for e in first]


def _on_disk(path: Path, run_id: str) -> list[str]:
    """What another process would read from the journal file right now."""
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT type FROM events WHERE run_id=? ORDER BY seq", (run_id,))
        return [r[0] for r in rows]
    finally:
        db.close()


def test_side_effects_are_on_disk_before_and_after_they_happen(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    seen_by_tool: list[list[str]] = []
    seen_by_model: list[list[str]] = []

    @tool(effect="side_effect")
    def refund(order_id: str, ctx: ToolContext) -> str:
        """Refund an order."""
        seen_by_tool.append(_on_disk(path, ctx.run_id))
        return "refunded"

    def reply(request: ModelRequest) -> object:
        if len(request.messages) == 1:
            return call("refund", order_id="A1")
        seen_by_model.append(_on_disk(path, run_ids[0]))
        return "done"

    run_ids = ["fixed-run-id"]
    # Side-effecting tools are denied unless a policy rule allows them.
    agent = Agent(
        ScriptedModel(reply),
        tools=[refund],
        store=SQLiteStore(path),
        policy=Policy([Rule("refund", "allow")]),
    )
    agent.run_sync("refund A1", run_id=run_ids[0])
    # The call was recorded before the tool touched the world ...
    assert seen_by_tool == [["run_started", "model_request", "model_response", "tool_call"]]
    # ... and its result before anything else happened.
    assert seen_by_model[0][-1] == "tool_result"


def test_read_only_steps_are_grouped_but_written_by_the_end(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    agent = Agent(
        ScriptedModel([call("lookup", key="a"), call("lookup", key="b"), "ok"]),
        tools=[lookup],
        store=SQLiteStore(path),
    )
    run_id = agent.run_sync("x").run_id
    assert _on_disk(path, run_id)[-1] == "final"
    assert len(_on_disk(path, run_id)) == len(agent.store.events(run_id))


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(),
    arguments=st.dictionaries(
        st.text(min_size=1, max_size=10),
        st.recursive(
            st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=5), inner, max_size=3)
            ),
            max_leaves=8,
        ),
        max_size=4,
    ),
)
def test_any_message_and_arguments_survive_the_store(
    tmp_path_factory: pytest.TempPathFactory, text: str, arguments: dict[str, object]
) -> None:
    store = SQLiteStore(tmp_path_factory.mktemp("h") / "j.db")
    calls = ModelResponse(text=text, tool_calls=(ToolCall("c", "lookup", arguments),))
    event = ModelResponded(run_id="r", step=1, response=calls)
    store.write([event], RunInfo("r", "a", "m", text))
    (loaded,) = store.events("r")
    assert isinstance(loaded, ModelResponded)
    assert loaded.response == calls
    assert store.get_run("r").input == text
