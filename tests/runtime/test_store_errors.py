"""Store failures with real engines: damaged SQLite files and logs, a full disk, an
uncreatable directory, duplicate events, leases taken with a run's first write.

Every failure must be a `StoreError` naming the file (or the server) and the fix,
never a raw sqlite3/psycopg/OS error, and never a quiet "no such run" for a run that
exists. SQLite cases use real files in tmp_path; the cross-store cases also run on the
real PostgreSQL of tests/pgserver.py.
"""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pilothouse.events import Event, ModelResponded
from pilothouse.exceptions import RunNotFoundError, StoreError, WriteConflictError
from pilothouse.models.base import ModelResponse
from pilothouse.runtime.journal import (
    MemoryStore,
    RunInfo,
    SQLiteStore,
    Store,
    open_store,
    wal_header_problem,
)
from pilothouse.runtime.postgres import PostgresStore


def event(run_id: str, seq: int, text: str = "x") -> Event:
    """A stamped event, as a journal would hand it to the store."""
    e = ModelResponded(run_id=run_id, step=seq, response=ModelResponse(text=text))
    e.seq, e.ts = seq, 1000.0 + seq
    return e


def info(run_id: str, status: str = "running") -> RunInfo:
    return RunInfo(run_id, "agent", "model", "input", status, created=1.0, updated=1.0)


def seqs(store: Store, run_id: str) -> list[int]:
    return [e.seq for e in store.events(run_id)]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "memory":
        return MemoryStore()
    if request.param == "sqlite":
        return SQLiteStore(tmp_path / "j.db")
    return PostgresStore(request.getfixturevalue("fresh_postgres_dsn"))


# --- every store: duplicates, retried batches, leases -------------------------------


def test_a_taken_sequence_number_is_a_conflict_and_writes_nothing(store: Store) -> None:
    store.write([event("r", 0), event("r", 1)], info("r"))
    other = dataclasses.replace(event("r", 1), ts=5.0)  # another writer's event 1
    with pytest.raises(WriteConflictError, match=r"run 'r'.*events 1\.\.3 clash") as caught:
        store.write([other, event("r", 2), event("r", 3)], info("r", "final"))
    assert isinstance(caught.value, StoreError)
    assert seqs(store, "r") == [0, 1] and store.get_run("r").status == "running"
    assert store.events("r")[1].ts == 1001.0  # the stored event 1 is the first writer's
    store.write([event("r", 2)])  # the store is still usable
    assert seqs(store, "r") == [0, 1, 2]


def test_a_batch_written_again_is_not_a_conflict(store: Store) -> None:
    """A write whose answer was lost may have committed: the journal writes the same
    batch again, and events stored exactly as in it are skipped, the rest written."""
    batch = [event("r", 0), event("r", 1)]
    store.write(batch, info("r"))
    store.write(batch, info("r"))
    store.write([*batch, event("r", 2), event("r", 3)], info("r", "final"))
    assert seqs(store, "r") == [0, 1, 2, 3]
    assert store.get_run("r").status == "final"


def test_first_write_takes_the_lease_in_the_same_transaction(store: Store) -> None:
    expires = time.time() + 60
    store.write([event("r", 0)], info("r"), lease=("host-a:1", expires))
    held = store.lease("r")
    assert held is not None and held[0] == "host-a:1" and held[1] == pytest.approx(expires)
    assert store.claim("r", "host-b:2", 30) is False
    assert store.claim_next("host-b:2", 30) is None  # leased: not claimable either
    assert store.claim("r", "host-b:2", 30, take_from="host-c:3") is False
    assert store.claim("r", "host-b:2", 30, take_from="host-a:1") is True  # a dead holder
    held = store.lease("r")
    assert held is not None and held[0] == "host-b:2"
    store.release("r", "host-b:2")
    assert store.lease("r") is None


def test_lease_is_none_when_expired_or_never_taken(store: Store) -> None:
    store.write([event("old", 0)], info("old"), lease=("host-a:1", time.time() - 1))
    store.write([event("free", 0)], info("free"))
    assert store.lease("old") is None and store.lease("free") is None
    assert store.claim("old", "host-b:2", 30) is True  # expired: anyone may claim
    with pytest.raises(RunNotFoundError, match="nope"):
        store.lease("nope")
    with pytest.raises(ValueError, match="pass run"):
        store.write([event("x", 0)], lease=("host-a:1", time.time() + 60))


# --- SQLite: a damaged write-ahead log -----------------------------------------------


def wal_copy(tmp_path: Path, runs: int = 3) -> tuple[Path, SQLiteStore]:
    """A journal whose runs are committed in its write-ahead log only: written with
    checkpoints off, then the file and its log copied while the store holds them (a
    crash leaves the same two files). Returns the copy's path and the live store."""
    live = SQLiteStore(tmp_path / "live" / "j.db")
    live.pragma("wal_autocheckpoint", 0)
    for i in range(runs):
        live.write([event(f"r{i}", 0), event(f"r{i}", 1)], info(f"r{i}"))
    copy = tmp_path / "copy" / "j.db"
    copy.parent.mkdir()
    shutil.copy(live.path, copy)
    shutil.copy(live.path + "-wal", f"{copy}-wal")
    return copy, live


def damage(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


def sqlite_sees(path: Path) -> list[str]:
    """The tables plain SQLite finds in the file (with its log, if it accepts it)."""
    db = sqlite3.connect(path)
    try:
        return [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    finally:
        db.close()


def test_runs_committed_in_the_log_only_are_read_back(tmp_path: Path) -> None:
    copy, _live = wal_copy(tmp_path)
    assert wal_header_problem(Path(f"{copy}-wal").read_bytes()[:32]) is None
    store = SQLiteStore(copy)
    assert sorted(r.run_id for r in store.list_runs()) == ["r0", "r1", "r2"]
    assert seqs(store, "r1") == [0, 1]


@pytest.mark.parametrize(
    ("offset", "problem"),
    [
        (0, "magic number"),
        (5, "format version"),
        (10, "page size"),
        (17, "checksum"),  # salt-1: only the checksum tells
        (29, "checksum"),
    ],
)
def test_a_damaged_log_header_is_refused_not_read_as_no_runs(
    tmp_path: Path, offset: int, problem: str
) -> None:
    copy, _live = wal_copy(tmp_path)
    wal = Path(f"{copy}-wal")
    damage(wal, offset)
    log = wal.read_bytes()
    # What SQLite alone does: the log is ignored without a word, every run vanishes.
    scratch = tmp_path / "scratch.db"
    shutil.copy(copy, scratch)
    Path(f"{scratch}-wal").write_bytes(log)
    assert sqlite_sees(scratch) == []
    # The store refuses to open, names the log and says what to do; both files intact.
    with pytest.raises(StoreError, match=problem) as caught:
        SQLiteStore(copy)
    message = str(caught.value)
    assert f"write-ahead log {str(wal)!r}" in message and "is damaged" in message
    assert "may be missing" in message and "keep a copy of both files" in message.lower()
    assert wal.read_bytes() == log
    with pytest.raises(StoreError, match="write-ahead log"):
        open_store(copy)  # and so does the default way of opening one


def test_a_log_cut_short_is_refused_and_moving_it_away_opens_the_journal(
    tmp_path: Path,
) -> None:
    copy, _live = wal_copy(tmp_path)
    wal = Path(f"{copy}-wal")
    wal.write_bytes(wal.read_bytes()[:20])
    with pytest.raises(StoreError, match=r"cut short \(20 of 32 bytes\)"):
        SQLiteStore(copy)
    wal.rename(tmp_path / "kept.wal")  # the fix the message gives
    store = SQLiteStore(copy)
    with pytest.raises(RunNotFoundError):  # the runs the log held are gone, as it said
        store.get_run("r0")
    assert store.list_runs() == []


def test_an_empty_log_is_not_damage(tmp_path: Path) -> None:
    SQLiteStore(tmp_path / "j.db").close()
    Path(tmp_path / "j.db-wal").write_bytes(b"")
    assert SQLiteStore(tmp_path / "j.db").list_runs() == []


# --- SQLite: damaged pages, not a database, no directory ------------------------------


def test_damaged_pages_are_store_errors_from_every_method(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    store = SQLiteStore(path)
    for i in range(3):
        store.write([event(f"r{i}", 0)], info(f"r{i}"))
    store.close()  # checkpointed: everything is in the file itself
    db = sqlite3.connect(path)
    (page_size,) = db.execute("PRAGMA page_size").fetchone()
    roots = [r[0] for r in db.execute("SELECT rootpage FROM sqlite_master WHERE rootpage > 1")]
    db.close()
    with open(path, "r+b") as f:  # every table's and index's first page: garbage
        for root in roots:
            f.seek((root - 1) * page_size)
            f.write(b"\xa5" * page_size)
    store = SQLiteStore(path)  # the schema (page 1) is intact: opening works
    calls: list[Callable[[], Any]] = [
        lambda: store.get_run("r1"),
        lambda: store.events("r1"),
        lambda: store.list_runs(),
        lambda: store.claim("r1", "w", 30),
        lambda: store.claim_next("w", 30),
        lambda: store.lease("r1"),
        lambda: store.write([event("r9", 0)], info("r9")),
    ]
    for call in calls:
        with pytest.raises(StoreError, match="damaged: restore it from a backup") as caught:
            call()
        assert repr(str(path)) in str(caught.value)
        assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)
        assert not isinstance(caught.value, RunNotFoundError)


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    path.write_bytes(b"these are not the pages you are looking for " * 200)
    with pytest.raises(StoreError, match="not a SQLite database or is damaged") as caught:
        SQLiteStore(path)
    assert "cannot open journal store" in str(caught.value)


def test_a_journal_directory_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(StoreError, match="cannot create the journal directory") as caught:
        SQLiteStore(blocker / "journal" / "j.db")
    assert "PILOTHOUSE_STORE" in str(caught.value) and str(blocker) in str(caught.value)
    assert isinstance(caught.value.__cause__, OSError)


def test_a_closed_store_says_so(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    store.write([event("r", 0)], info("r"))
    store.close()
    for call in (lambda: store.get_run("r"), lambda: store.write([event("r", 1)])):
        with pytest.raises(StoreError, match="is closed"):
            call()
    shared = open_store(tmp_path / "j.db")
    shared.close()
    again = open_store(tmp_path / "j.db")  # reopened, not the closed one
    assert again is not shared and again.get_run("r").run_id == "r"


# --- SQLite: a full disk, then the same batch --------------------------------------


def test_a_full_disk_fails_the_write_and_the_same_batch_goes_in_later(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    store.write([event("r", 0)], info("r"))
    ((pages,),) = store.pragma("page_count")
    store.pragma("max_page_count", pages)  # the file may not grow: a full disk for SQLite
    batch = [event("r", seq, "y" * 6000) for seq in (1, 2, 3)]  # needs new pages
    done = info("r", "final")
    with pytest.raises(StoreError, match="disk is full") as caught:
        store.write(batch, done)
    assert "database or disk is full" in str(caught.value)
    assert repr(store.path) in str(caught.value)
    assert seqs(store, "r") == [0] and store.get_run("r").status == "running"  # nothing
    store.pragma("max_page_count", 1_000_000)  # space freed
    store.write(batch, done)
    assert seqs(store, "r") == [0, 1, 2, 3] and store.get_run("r").status == "final"


def test_pragma_takes_only_names_and_plain_values(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    assert store.pragma("journal_mode") == [("wal",)]
    for name, value in (("page_count; DROP TABLE runs", None), ("user_version", "1; x")):
        with pytest.raises(ValueError, match="not a PRAGMA"):
            store.pragma(name, value)


# --- every store: events without an index row ---------------------------------------


def test_events_without_their_index_row_are_damage_not_a_missing_run(tmp_path: Path) -> None:
    for store in (MemoryStore(), SQLiteStore(tmp_path / "j.db")):
        store.write([event("orphan", 0)])  # no index row: a row lost to damage
        for read in (store.get_run, store.events, store.lease):
            with pytest.raises(StoreError, match=r"'orphan' has events .* damaged") as caught:
                read("orphan")
            assert not isinstance(caught.value, RunNotFoundError)  # the bug guarded against


class _Rows:
    """A statement's rows, read at once (so its snapshot is over when it returns)."""

    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[Any]:
        return self.rows


class _CreatedMeanwhile:
    """A store connection on which another writer creates the run right after the
    first lookup of its index row: the moment a reader races a new run's first write."""

    def __init__(self, db: Any, create: Callable[[], None]) -> None:
        self.db, self.create = db, create

    def execute(self, query: str, params: Any = ()) -> _Rows:
        rows = _Rows(self.db.execute(query, params).fetchall())
        if "FROM runs" in query and self.create is not None:
            create, self.create = self.create, None  # type: ignore[assignment]
            create()
        return rows

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_run_created_while_it_is_looked_up_is_found_not_damage(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lookup reads the index row, then (row missing) whether the run has events:
    two statements, two snapshots. A run whose first write (row and events, one
    transaction) lands in between was reported as a damaged index, a `StoreError`
    that failed a resume racing another process's fresh start of the same run in the
    crash test (PostgreSQL, two resumes at once, seed 19). It is found instead."""
    spec: Any = tmp_path / "j.db"
    if kind == "postgres":
        spec = request.getfixturevalue("fresh_postgres_dsn")
    reader: Any = SQLiteStore(spec) if kind == "sqlite" else PostgresStore(spec)
    writer: Any = SQLiteStore(spec) if kind == "sqlite" else PostgresStore(spec)
    for read in ("get_run", "events", "lease"):
        run_id = f"new-{read}"
        real = reader._connection()
        racing = _CreatedMeanwhile(real, lambda r=run_id: writer.write([event(r, 0)], info(r)))
        monkeypatch.setattr(reader, "_connection", lambda racing=racing: racing)
        found = getattr(reader, read)(run_id)  # no StoreError: the run exists now
        monkeypatch.undo()
        if read == "get_run":
            assert found.run_id == run_id
        elif read == "events":
            assert [e.seq for e in found] == [0]
    assert reader.get_run("new-get_run").status == "running"
    with pytest.raises(RunNotFoundError):  # and an unknown run is still unknown
        reader.get_run("nope")
    reader.close()
    writer.close()
