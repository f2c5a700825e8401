"""Sessions and the run tree in the store layer, on every store.

A session is a conversation kept once: each turn is a run that appends its new
messages in the same transaction as its events (`Store.write(..., session=...)`).
These tests hold the three stores (in memory, a real SQLite file, the real PostgreSQL
of tests/pgserver.py) to the same contract: contiguous seqs, a turn refused while
another run of the session holds a live lease, a batch written again not appended
twice, a different message at a taken key refused with nothing written, unknown
sessions refused with the batch's events unwritten, and the tree and session columns
of a run fixed when its row is first written. Abuse cases: ids that are huge or hold
control characters, metadata that is not JSON, negative pages, one run's write
touching another run's messages.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from payments import FlakyStore

import pilothouse
from pilothouse.events import Event, ModelResponded
from pilothouse.exceptions import (
    RunNotFoundError,
    SessionBusyError,
    SessionExistsError,
    SessionNotFoundError,
    StoreError,
    WriteConflictError,
)
from pilothouse.messages import Message, ToolCall
from pilothouse.models.base import ModelResponse
from pilothouse.runtime import journal as journal_module
from pilothouse.runtime import postgres as postgres_module
from pilothouse.runtime.journal import Journal, MemoryStore, RunInfo, SQLiteStore, Store
from pilothouse.runtime.postgres import PostgresStore
from pilothouse.runtime.rows import event_row
from pilothouse.runtime.session import Session, SessionInfo, SessionMessage, SessionWrite

HOUR = 3600.0


class Clock:
    """Stands in for the `time` module in the stores: every reading is one second after
    the last, so "most recently updated" never ties (real clocks may read the same
    value twice). Starts at the real time, so leases set from the real clock compare
    as they would."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        self.now += 1.0
        return self.now

    def monotonic(self) -> float:
        return time.monotonic()


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(journal_module, "time", fake)
    monkeypatch.setattr(postgres_module, "time", fake)
    return fake


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        made: Store = MemoryStore()
    elif request.param == "sqlite":
        made = SQLiteStore(tmp_path / "j.db")
    else:
        made = PostgresStore(request.getfixturevalue("fresh_postgres_dsn"))
    yield made
    made.close()


def event(run_id: str, seq: int, text: str = "x") -> Event:
    """A stamped event, as a journal hands it to the store."""
    e = ModelResponded(run_id=run_id, step=seq, response=ModelResponse(text=text))
    e.seq, e.ts = seq, 1000.0 + seq
    return e


def run_row(
    run_id: str,
    session_id: str | None = None,
    *,
    parent: str | None = None,
    root: str | None = None,
    created: float = 1.0,
    status: str = "running",
) -> RunInfo:
    return RunInfo(
        run_id,
        "agent",
        "model",
        "input",
        status,
        created=created,
        updated=created,
        parent_run_id=parent,
        root_run_id=root,
        session_id=session_id,
    )


def live() -> tuple[str, float]:
    return ("host:1:1", time.time() + HOUR)


def turn(
    session_id: str, run_id: str, *messages: tuple[int, Message], begin: bool = False
) -> SessionWrite:
    return SessionWrite(session_id, run_id, tuple(messages), begin)


def contents(store: Store, session_id: str) -> list[tuple[int, str, str | None]]:
    return [(m.seq, m.message.content, m.run_id) for m in store.session_messages(session_id)]


def events_of(store: Store, run_id: str) -> list[int]:
    return [e.seq for e in store.events(run_id)]


U0, A0 = Message.user("hello"), Message.assistant("hi, how can I help?")
U1 = Message.user("where is my order?")
A1 = Message.assistant("", (ToolCall("c1", "lookup", {"order": "42"}),))


# --- create, get, list, page -------------------------------------------------------------


def test_create_get_and_list_most_recently_updated_first(store: Store) -> None:
    made = store.create_session("s1", {"customer": "c-7", "tags": ["vip"]})
    assert isinstance(made, SessionInfo)
    assert (made.session_id, made.messages, made.metadata) == (
        "s1",
        0,
        {"customer": "c-7", "tags": ["vip"]},
    )
    assert made.created == made.updated
    assert store.get_session("s1") == made
    store.create_session("s2")
    store.create_session("s3")
    assert [s.session_id for s in store.list_sessions()] == ["s3", "s2", "s1"]
    assert store.append_session("s1", [U0]) == 1  # s1 is now the most recently updated
    listed = store.list_sessions()
    assert [s.session_id for s in listed] == ["s1", "s3", "s2"]
    assert listed[0].messages == 1 and listed[0].updated > made.updated
    assert listed[0].created == made.created  # created never moves
    assert [s.session_id for s in store.list_sessions(limit=2)] == ["s1", "s3"]
    assert [s.session_id for s in store.list_sessions(limit=2, offset=2)] == ["s2"]
    assert store.list_sessions(limit=0) == [] and store.list_sessions(offset=3) == []
    assert len(store.list_sessions(limit=None)) == 3


def test_a_taken_id_and_an_unknown_id_are_clear_errors(store: Store) -> None:
    store.create_session("s1", {"a": 1})
    with pytest.raises(SessionExistsError, match="session 's1' already exists") as taken:
        store.create_session("s1", {"a": 2})
    assert isinstance(taken.value, StoreError) and taken.value.session_id == "s1"
    assert store.get_session("s1").metadata == {"a": 1}  # the first one is untouched
    for read in (store.get_session, store.session_messages):
        with pytest.raises(SessionNotFoundError, match="no session 'nope'") as unknown:
            read("nope")
        assert unknown.value.session_id == "nope"
    with pytest.raises(SessionNotFoundError):
        store.append_session("nope", [U0])


def test_messages_are_paged_by_seq(store: Store) -> None:
    store.create_session("s")
    texts = [f"message {i}" for i in range(25)]
    assert store.append_session("s", [Message.user(t) for t in texts[:10]]) == 10
    assert store.append_session("s", [Message.user(t) for t in texts[10:]], author="import") == 25
    page = store.session_messages("s", start=10, limit=5)
    assert all(isinstance(m, SessionMessage) for m in page)
    assert [(m.seq, m.message.content, m.author) for m in page] == [
        (i, texts[i], "import") for i in range(10, 15)
    ]
    assert [m.seq for m in store.session_messages("s")] == list(range(25))
    assert [m.seq for m in store.session_messages("s", start=20)] == list(range(20, 25))
    assert store.session_messages("s", start=25) == []  # past the end: an empty page
    assert store.session_messages("s", start=3, limit=0) == []  # zero asked, zero given
    assert store.get_session("s").messages == 25


def test_appended_messages_round_trip_with_author_and_run(store: Store) -> None:
    store.create_session("s")
    tool_reply = Message.tool(pilothouse.ToolResult("c1", "lookup", "shipped\x00", is_error=True))
    store.append_session("s", [U1, A1, tool_reply], author="human:ana", run_id="r-human")
    got = store.session_messages("s")
    assert [m.message for m in got] == [U1, A1, tool_reply]
    assert {(m.author, m.run_id) for m in got} == {("human:ana", "r-human")}
    assert got[0].ts == got[1].ts  # one append, one time


# --- a turn's write: begin, append, dedup, conflicts ------------------------------------


def test_a_turn_appends_its_messages_with_its_events(store: Store) -> None:
    store.create_session("s")
    before = store.get_session("s")
    store.write(
        [event("r1", 0)],
        run_row("r1", "s"),
        lease=live(),
        session=turn("s", "r1", (0, U0), begin=True),
    )
    store.write([event("r1", 1)], session=turn("s", "r1", (1, A0)))
    assert contents(store, "s") == [(0, "hello", "r1"), (1, "hi, how can I help?", "r1")]
    after = store.get_session("s")
    assert after.messages == 2 and after.updated > before.updated
    assert events_of(store, "r1") == [0, 1]
    # The next turn: the first run gave its lease up with its last write.
    store.write([event("r1", 2)], run_row("r1", "s", status="final"), lease=("host:1:1", 0.0))
    store.write(
        [event("r2", 0)],
        run_row("r2", "s", created=2.0),
        lease=live(),
        session=turn("s", "r2", (0, U1), (1, A1), begin=True),
    )
    assert [m.seq for m in store.session_messages("s")] == [0, 1, 2, 3]
    assert [m.run_id for m in store.session_messages("s")] == ["r1", "r1", "r2", "r2"]
    assert [m.message for m in store.session_messages("s", start=2)] == [U1, A1]


def test_a_batch_written_again_is_appended_once(store: Store) -> None:
    """The journal retries a failed batch unchanged; if the failure hid a commit, the
    messages already stored as they are in the batch are skipped."""
    store.create_session("s")
    batch = [event("r", 0), event("r", 1)]
    write = turn("s", "r", (0, U0), (1, A0), begin=True)
    store.write(batch, run_row("r", "s"), lease=live(), session=write)
    store.write(batch, run_row("r", "s"), lease=live(), session=write)
    assert contents(store, "s") == [(0, "hello", "r"), (1, "hi, how can I help?", "r")]
    # A batch overlapping the stored part: only what is new is appended.
    store.write([event("r", 2)], session=turn("s", "r", (1, A0), (2, U1)))
    assert [(m.seq, m.message) for m in store.session_messages("s")] == [(0, U0), (1, A0), (2, U1)]
    assert store.get_session("s").messages == 3
    # An equal message (another object) is the same message.
    store.write([], session=turn("s", "r", (2, Message.user("where is my order?"))))
    assert store.get_session("s").messages == 3


def test_a_different_message_at_a_taken_key_is_a_conflict_and_writes_nothing(
    store: Store,
) -> None:
    store.create_session("s")
    store.write([event("r", 0)], run_row("r", "s"), session=turn("s", "r", (0, U0), (1, A0)))
    before = store.get_session("s")
    forged = turn("s", "r", (1, Message.assistant("a different answer")), (2, U1))
    with pytest.raises(WriteConflictError, match=r"session 's' for run 'r'.*message 1") as caught:
        store.write([event("r", 1)], run_row("r", "s", status="final"), session=forged)
    assert isinstance(caught.value, StoreError)
    assert contents(store, "s") == [(0, "hello", "r"), (1, "hi, how can I help?", "r")]
    assert store.get_session("s") == before
    assert events_of(store, "r") == [0]  # the batch's events were not written either
    assert store.get_run("r").status == "running"
    # Two different messages at one key inside one write: refused too.
    twice = turn("s", "r", (5, U1), (5, A1))
    with pytest.raises(WriteConflictError, match="message 5"):
        store.write([event("r", 1)], session=twice)
    assert store.get_session("s").messages == 2 and events_of(store, "r") == [0]


def test_keys_are_per_run_so_one_run_cannot_touch_another_runs_messages(store: Store) -> None:
    store.create_session("s")
    store.write([event("a", 0)], run_row("a", "s"), session=turn("s", "a", (0, U0)))
    # Run b's message 0 is b's own, appended after a's, never a rewrite of a's.
    store.write([event("b", 0)], run_row("b", "s"), session=turn("s", "b", (0, U1)))
    assert contents(store, "s") == [(0, "hello", "a"), (1, "where is my order?", "b")]


def test_an_unknown_session_writes_nothing_not_even_the_events(store: Store) -> None:
    with pytest.raises(SessionNotFoundError, match="no session 'ghost'") as caught:
        store.write(
            [event("r", 0)],
            run_row("r", "ghost"),
            lease=live(),
            session=turn("ghost", "r", (0, U0), begin=True),
        )
    assert caught.value.session_id == "ghost"
    with pytest.raises(RunNotFoundError):
        store.get_run("r")
    store.write([event("r", 0)], run_row("r"))  # the store is still usable
    assert events_of(store, "r") == [0]


# --- begin: one turn at a time -----------------------------------------------------------


def begin(store: Store, run_id: str, created: float = 2.0, *messages: Message) -> None:
    """Start run `run_id`'s turn of session "s": its first write, with its lease."""
    store.write(
        [event(run_id, 0)],
        run_row(run_id, "s", created=created),
        lease=live(),
        session=turn("s", run_id, *enumerate(messages), begin=True),
    )


def test_a_turn_cannot_begin_while_another_run_holds_a_live_lease(store: Store) -> None:
    store.create_session("s")
    begin(store, "first", 1.0, U0)
    with pytest.raises(SessionBusyError) as caught:
        begin(store, "second", 2.0, U1)
    busy = caught.value
    assert isinstance(busy, StoreError)
    assert (busy.session_id, busy.run_id) == ("s", "first")
    assert "session 's'" in str(busy) and "run 'first'" in str(busy)
    assert (
        "Wait for that run" in str(busy)
        and "resume" in str(busy)
        and "nothing was written" in str(busy)
    )
    with pytest.raises(RunNotFoundError):  # nothing of the refused turn was written
        store.get_run("second")
    assert contents(store, "s") == [(0, "hello", "first")]
    # The holder itself continues its turn, begin or not.
    store.write([event("first", 1)], session=turn("s", "first", (1, A0), begin=True))
    # A write that does not begin a turn is not checked (a run finishing its own turn).
    store.write([event("other", 0)], run_row("other", "s"), session=turn("s", "other", (0, U1)))
    assert store.get_session("s").messages == 3


@pytest.mark.parametrize("how", ["given up", "expired", "released"])
def test_a_lease_given_up_expired_or_released_does_not_hold_the_session(
    store: Store, how: str
) -> None:
    store.create_session("s")
    begin(store, "first", 1.0, U0)
    if how == "given up":  # the drive's last write: an expiry in the past
        store.write(
            [event("first", 1)], run_row("first", "s", status="final"), lease=("host:1:1", 0.0)
        )
    elif how == "expired":  # its worker died and the lease ran out
        assert store.claim("first", "host:1:1", -60.0)
    else:
        store.release("first", "host:1:1")
    begin(store, "second", 2.0, U1)
    assert contents(store, "s") == [(0, "hello", "first"), (1, "where is my order?", "second")]


# --- the run tree, runs of a session, columns fixed at insert ---------------------------


def test_children_and_runs_of_a_session_oldest_first(store: Store) -> None:
    store.write([event("root", 0)], run_row("root", "s-x", root="root", created=1.0))
    store.write([event("c2", 0)], run_row("c2", parent="root", root="root", created=3.0))
    store.write([event("c1b", 0)], run_row("c1b", parent="root", root="root", created=2.0))
    store.write([event("c1a", 0)], run_row("c1a", parent="root", root="root", created=2.0))
    store.write([event("g", 0)], run_row("g", parent="c1a", root="root", created=4.0))
    assert [r.run_id for r in store.children("root")] == ["c1a", "c1b", "c2"]
    assert [r.run_id for r in store.children("c1a")] == ["g"]
    assert store.children("g") == [] and store.children("unknown") == []
    got = store.get_run("g")
    assert (got.parent_run_id, got.root_run_id, got.session_id) == ("c1a", "root", None)
    store.create_session("s")
    for run_id, created in (("t3", 3.5), ("t1", 1.5), ("t2", 2.5)):
        store.write([event(run_id, 0)], run_row(run_id, "s", created=created))
    assert [r.run_id for r in store.list_runs(session_id="s")] == ["t1", "t2", "t3"]
    assert [r.run_id for r in store.list_runs(2, session_id="s")] == ["t1", "t2"]
    assert store.list_runs(session_id="other") == []
    newest = [r.run_id for r in store.list_runs(3)]  # without a session: unchanged
    assert newest == ["g", "t3", "c2"]
    assert len(store.list_runs(None)) == 8


def test_runs_listed_by_status_newest_first_and_within_a_session(store: Store) -> None:
    store.create_session("s")
    rows = [("p1", "s", "paused", 1.0), ("f1", "s", "final", 2.0), ("p2", None, "paused", 3.0)]
    for run_id, session, status, created in rows:
        store.write([event(run_id, 0)], run_row(run_id, session, created=created, status=status))
    assert [r.run_id for r in store.list_runs(status="paused")] == ["p2", "p1"]
    assert [r.run_id for r in store.list_runs(1, status="paused")] == ["p2"]
    assert [r.run_id for r in store.list_runs(session_id="s", status="paused")] == ["p1"]
    assert [r.run_id for r in store.list_runs(None, status="final")] == ["f1"]
    assert store.list_runs(status="interrupted") == []


def test_parent_root_and_session_are_fixed_when_the_row_is_first_written(store: Store) -> None:
    store.write([event("r", 0)], run_row("r", "s1", parent="p", root="p"), lease=live())
    # Later writes of the row (the loop's status updates) carry no tree, or another one.
    store.write([event("r", 1)], run_row("r", status="final"))
    store.write([], run_row("r", "s2", parent="q", root="q", status="error"))
    got = store.get_run("r")
    assert got.status == "error"
    assert (got.parent_run_id, got.root_run_id, got.session_id) == ("p", "p", "s1")
    assert [c.run_id for c in store.children("p")] == ["r"] and store.children("q") == []
    assert [x.run_id for x in store.list_runs(session_id="s1")] == ["r"]
    assert store.list_runs(session_id="s2") == []


# --- abuse ------------------------------------------------------------------------------


BAD_IDS = ["x" * 10_000, "line\nbreak", "nul\x00", "esc\x1b[31m", "", " padded", "tab\t"]


class Untouchable:
    """A store that fails the test if anything reaches it."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the store was touched: {name}")


@pytest.mark.parametrize("bad", BAD_IDS, ids=lambda b: repr(b[:12]))
def test_a_bad_session_id_is_refused_before_the_store_is_touched(bad: str) -> None:
    untouchable: Any = Untouchable()
    with pytest.raises(ValueError, match="invalid session id"):
        Session.create(untouchable, bad)
    with pytest.raises(ValueError, match="invalid session id"):
        Session.open(untouchable, bad)
    with pytest.raises(ValueError, match="invalid session id"):
        SessionWrite(bad, "r", ((0, U0),))
    with pytest.raises(ValueError, match="a session id is a string"):
        Session.create(untouchable, 42)  # type: ignore[arg-type]


def test_every_store_refuses_bad_ids_and_survives(store: Store) -> None:
    for bad in BAD_IDS:
        with pytest.raises(ValueError, match="invalid session id"):
            store.create_session(bad)
        with pytest.raises(ValueError, match="invalid session id"):
            store.get_session(bad)
        with pytest.raises(ValueError, match="invalid session id"):
            store.session_messages(bad)
        with pytest.raises(ValueError, match="invalid session id"):
            store.append_session(bad, [U0])
    assert store.list_sessions() == []
    quoted = "x'); DROP TABLE sessions; --"  # just an id: every query is parameterised
    store.create_session(quoted)
    assert store.append_session(quoted, [U0]) == 1
    assert [s.session_id for s in store.list_sessions()] == [quoted]


@pytest.mark.parametrize(
    "metadata",
    [
        {"when": dataclasses},  # a module
        {"at": time.struct_time((2024, 1, 1, 0, 0, 0, 0, 1, 0))},
        {1: "integer key"},
        {"pair": (1, 2)},
        {"nan": float("nan")},
        {"tags": {"a", "b"}},
        ["not", "a", "dict"],
    ],
    ids=["module", "struct_time", "int key", "tuple", "nan", "set", "list"],
)
def test_metadata_that_is_not_json_is_refused(store: Store, metadata: Any) -> None:
    with pytest.raises(ValueError, match="session metadata"):
        store.create_session("s", metadata)
    with pytest.raises(ValueError, match="session metadata"):
        Session.create(Untouchable(), "s", metadata)  # type: ignore[arg-type]
    assert store.list_sessions() == []  # nothing was created
    circular: dict[str, Any] = {}
    circular["self"] = circular
    with pytest.raises(ValueError, match="session metadata"):
        store.create_session("s", circular)


def test_bad_pages_and_bad_writes_are_clear_errors(store: Store) -> None:
    store.create_session("s")
    store.append_session("s", [U0, A0])
    with pytest.raises(ValueError, match="start is a message's seq"):
        store.session_messages("s", start=-1)
    with pytest.raises(ValueError, match="limit is a count"):
        store.session_messages("s", limit=-1)
    with pytest.raises(ValueError, match="offset"):
        store.list_sessions(offset=-1)
    with pytest.raises(ValueError, match="Message objects"):
        store.append_session("s", [{"role": "user", "content": "hi"}])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="sequence of Message"):
        store.append_session("s", U0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid author"):
        store.append_session("s", [U1], author="evil\nauthor")
    for bad in ((-1, U0), ("0", U0), (True, U0), (0, "text"), (0,)):
        with pytest.raises(ValueError, match=r"\(n, Message\) pairs"):
            SessionWrite("s", "r", (bad,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="id of the run"):
        SessionWrite("s", "")
    assert store.get_session("s").messages == 2


# --- the Journal queues a session write with its batch ----------------------------------


def test_journal_merges_session_writes_and_refuses_to_mix_sessions() -> None:
    journal = Journal("r", MemoryStore())
    journal.add_session(turn("s", "r", (0, U0), begin=True))
    journal.add_session(turn("s", "r", (1, A0)))
    assert journal.pending_session == turn("s", "r", (0, U0), (1, A0), begin=True)
    for other in (turn("t", "r", (2, U1)), turn("s", "q", (2, U1))):
        with pytest.raises(ValueError, match="cannot merge"):
            journal.add_session(other)
    assert journal.pending_session == turn("s", "r", (0, U0), (1, A0), begin=True)


def test_journal_keeps_a_session_write_queued_after_a_failed_write(tmp_path: Path) -> None:
    inner = SQLiteStore(tmp_path / "j.db")
    inner.create_session("s")
    failures = {"left": 1}

    def failing(number: int, events: Sequence[Event]) -> bool:
        if failures["left"]:
            failures["left"] -= 1
            return True
        return False

    store = FlakyStore(inner, failing)
    journal = Journal("r", store)  # type: ignore[arg-type]
    journal.set_info(run_row("r", "s"))
    journal.emit(event("r", 0))
    journal.add_session(turn("s", "r", (0, U0), begin=True))
    with pytest.raises(StoreError, match="injected"):
        journal.commit()
    assert journal.pending_session == turn("s", "r", (0, U0), begin=True)  # kept, unchanged
    assert inner.get_session("s").messages == 0
    journal.add_session(turn("s", "r", (1, A0)))  # more of the turn, queued meanwhile
    journal.commit()
    assert journal.pending_session is None
    assert contents(inner, "s") == [(0, "hello", "r"), (1, "hi, how can I help?", "r")]
    assert events_of(inner, "r") == [0]
    journal.commit()  # nothing queued: nothing written again
    assert inner.get_session("s").messages == 2 and store.writes == 2


class LostAnswer:
    """A store whose next write commits, then fails as a connection lost after the
    server committed would: the journal cannot know the write went through."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.lose = 1

    def write(self, events: Sequence[Event], run: RunInfo | None = None, **kw: Any) -> None:
        self.inner.write(events, run, **kw)
        if self.lose:
            self.lose -= 1
            raise StoreError("cannot write: the connection was lost (injected)")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_journal_retrying_a_write_whose_answer_was_lost_appends_once(store: Store) -> None:
    store.create_session("s")
    journal = Journal("r", LostAnswer(store))  # type: ignore[arg-type]
    journal.set_info(run_row("r", "s"))
    journal.emit(event("r", 0))
    journal.add_session(turn("s", "r", (0, U0), (1, A0), begin=True))
    with pytest.raises(StoreError, match="injected"):
        journal.commit()
    journal.commit()  # the same batch again
    assert contents(store, "s") == [(0, "hello", "r"), (1, "hi, how can I help?", "r")]
    assert events_of(store, "r") == [0]


def test_a_journal_without_a_session_write_calls_an_older_store_as_before() -> None:
    """Stores written before sessions (wrappers, test doubles) take no `session`."""

    class OldStore:
        def __init__(self) -> None:
            self.calls: list[tuple[int, bool, tuple[str, ...]]] = []

        def write(self, events: Sequence[Event], run: RunInfo | None = None) -> None:
            self.calls.append((len(events), run is not None, ()))

    old = OldStore()
    journal = Journal("r", old)  # type: ignore[arg-type]
    journal.set_info(run_row("r"))
    journal.emit(event("r", 0))
    journal.commit()
    assert old.calls == [(1, True, ())]


# --- Session, the handle -----------------------------------------------------------------


def test_session_handle_over_a_store_spec(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    session = Session.create(str(path), metadata={"channel": "web"})
    assert len(session.id) > 10 and session.id.split("-")[0].isalnum()
    assert Session.create(str(path)).id != session.id  # a new id each time
    with pytest.raises(SessionExistsError):
        Session.create(str(path), session.id)
    with pytest.raises(SessionNotFoundError):
        Session.open(str(path), "missing")
    same = Session.open(str(path), session.id)
    assert same.store is session.store  # a path is opened once per process
    session.store.write(
        [event("t1", 0)],
        run_row("t1", session.id),
        lease=live(),
        session=turn(session.id, "t1", (0, U0), (1, A0), begin=True),
    )
    assert same.append([U1], author="human:ana") == 3
    assert same.history() == [U0, A0, U1]
    assert [m.seq for m in same.messages(1, 1)] == [1]
    assert [r.run_id for r in same.runs()] == ["t1"]
    info = same.info()
    assert (info.messages, info.metadata) == (3, {"channel": "web"})
    exported = json.loads(json.dumps(same.export()))  # JSON-able as it is
    assert exported["session"]["session_id"] == session.id
    assert exported["session"]["metadata"] == {"channel": "web"}
    assert exported["runs"] == ["t1"]
    assert [(m["seq"], m["run_id"], m["author"]) for m in exported["messages"]] == [
        (0, "t1", ""),
        (1, "t1", ""),
        (2, None, "human:ana"),
    ]
    assert exported["messages"][2]["message"] == U1.to_dict()
    assert repr(same).startswith(f"Session({session.id!r}")


def test_session_names_are_exported_from_the_package() -> None:
    from pilothouse.runtime import session

    assert pilothouse.Session is Session
    assert pilothouse.SessionInfo is SessionInfo and pilothouse.SessionMessage is SessionMessage
    assert pilothouse.SessionBusyError is SessionBusyError
    assert pilothouse.SessionExistsError is SessionExistsError
    assert pilothouse.SessionNotFoundError is SessionNotFoundError
    assert set(session.__all__) <= set(dir(session))


# --- SQLite: old journals, the query plan of a page -------------------------------------

OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    model TEXT NOT NULL,
    input TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    steps INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cost REAL,
    output TEXT,
    lease_owner TEXT,
    lease_expires REAL
);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    seq INTEGER NOT NULL,
    ts REAL NOT NULL,
    step INTEGER NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS runs_created ON runs(created);
"""  # the schema before sessions and the run tree, as released
BEFORE_LEASES = OLD_SCHEMA.replace(",\n    lease_owner TEXT,\n    lease_expires REAL", "")


@pytest.mark.parametrize(
    "schema", [OLD_SCHEMA, BEFORE_LEASES], ids=["before sessions", "before leases"]
)
def test_an_old_sqlite_journal_is_migrated_when_opened(tmp_path: Path, schema: str) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(schema)
    db.execute(
        "INSERT INTO runs (run_id, agent, model, input, status, created, updated, steps, "
        "input_tokens, output_tokens, cost, output) VALUES "
        "('old', 'a', 'm', 'question', 'final', 5.0, 6.0, 2, 10, 20, NULL, '\"answer\"')"
    )
    old_event = event("old", 0, "recorded")
    db.execute(
        "INSERT INTO events VALUES (?,?,?,?,?,?)",
        event_row(old_event),
    )
    db.commit()
    db.close()

    store = SQLiteStore(path)
    got = store.get_run("old")
    assert (got.status, got.output, got.steps) == ("final", "answer", 2)
    assert (got.parent_run_id, got.root_run_id, got.session_id) == (None, None, None)
    assert [e.to_dict() for e in store.events("old")] == [old_event.to_dict()]
    assert [r.run_id for r in store.list_runs()] == ["old"]
    # Everything new works on the migrated file.
    store.create_session("s")
    begin(store, "new", 7.0, U0)
    store.write([event("kid", 0)], run_row("kid", parent="new", root="new", created=8.0))
    assert [r.run_id for r in store.list_runs(session_id="s")] == ["new"]
    assert [r.run_id for r in store.children("new")] == ["kid"]
    assert store.claim("old", "w", 30) and store.lease("old") is not None
    store.close()
    # Indexes exist, and a second open (nothing left to migrate) is a no-op.
    again = SQLiteStore(path)
    names = {row[1] for row in again.pragma("index_list", "runs")}
    assert {"runs_parent", "runs_session", "runs_created"} <= names
    assert contents(again, "s") == [(0, "hello", "new")]
    again.close()


def test_a_page_of_a_long_session_is_read_through_its_primary_key(tmp_path: Path) -> None:
    """The web console pages with `session_messages`: a page must be an index range
    read, never a scan of the session (checked on the query plan, not on a timer)."""
    store = SQLiteStore(tmp_path / "j.db")
    store.create_session("s")
    store.append_session("s", [Message.user(str(i)) for i in range(2000)])
    assert [m.message.content for m in store.session_messages("s", start=1500, limit=3)] == [
        "1500",
        "1501",
        "1502",
    ]
    with sqlite3.connect(tmp_path / "j.db") as db:
        rows = db.execute(
            "EXPLAIN QUERY PLAN SELECT seq, ts, run_id, author, data FROM session_messages "
            "WHERE session_id=? AND seq >= ? ORDER BY seq LIMIT ?",
            ("s", 1500, 3),
        ).fetchall()
    detail = " ".join(str(r[-1]) for r in rows)
    assert "USING PRIMARY KEY (session_id=? AND seq>?)" in detail, detail
    assert "TEMP B-TREE" not in detail  # no sort: the key is already in seq order
    store.close()


def test_of_two_sqlite_turns_beginning_at_once_exactly_one_begins(tmp_path: Path) -> None:
    """Two connections to one file (two processes, in effect): a session write takes
    the write lock before its checks, so the second begin sees the first's lease."""
    import threading

    stores = [SQLiteStore(tmp_path / "j.db") for _ in range(2)]
    for r in range(10):
        sid = f"s{r}"
        stores[0].create_session(sid)
        gate = threading.Barrier(2)
        outcomes: dict[str, Any] = {}

        def go(
            i: int,
            sid: str = sid,
            gate: threading.Barrier = gate,
            outcomes: dict[str, Any] = outcomes,
        ) -> None:
            run_id = f"{sid}-{i}"
            gate.wait()
            try:
                stores[i].write(
                    [event(run_id, 0)],
                    run_row(run_id, sid),
                    lease=live(),
                    session=turn(sid, run_id, (0, U0), begin=True),
                )
                outcomes[run_id] = "began"
            except Exception as exc:
                outcomes[run_id] = exc

        threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        began = [k for k, v in outcomes.items() if v == "began"]
        refused = [v for v in outcomes.values() if isinstance(v, SessionBusyError)]
        assert len(began) == 1 and len(refused) == 1, outcomes
        assert refused[0].run_id == began[0]
        assert [m.run_id for m in stores[1].session_messages(sid)] == began
    for s in stores:
        s.close()
