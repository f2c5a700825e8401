"""The run journal and the stores that keep it.

A `Journal` belongs to one run: it stamps each event with a sequence number and a
time, hands it to live subscribers (printers, streams), and writes it to a
`Store` at the loop's commit points (see `Journal`): a crash never loses the
record of a side-effecting call that started or finished.

Stores: `MemoryStore` (a list per run, for tests and benchmarks), `SQLiteStore`
(the default: one file under ``./.pilothouse/``, WAL mode) and `PostgresStore`
(``postgresql://...``, in `pilothouse.runtime.postgres`, for several worker processes
or hosts sharing one journal). All serve the same interface, `Store`, including the
leases (`claim`, `claim_next`, `release`) that let several workers resume stopped
runs without two of them ever continuing the same run, the run tree (`children`: a
child run records its parent and its tree's root) and sessions: a conversation kept
once, each turn a run that appends only its new messages (`create_session`,
`session_messages`, `write(..., session=SessionWrite(...))`; see
`pilothouse.runtime.session`).
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import errno
import logging
import os
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pilothouse.events import Event, RunStatus
from pilothouse.exceptions import RunNotFoundError, StoreError
from pilothouse.messages import Message
from pilothouse.runtime.rows import (
    RUN_COLUMNS,
    SESSION_COLUMNS,
    EventRow,
    RunInfo,
    SessionInfo,
    SessionMessage,
    SessionWrite,
    check_author,
    check_messages,
    check_page,
    check_session_id,
    check_window,
    conflict_error,
    decode_event,
    decode_metadata,
    encode_json,
    encode_message,
    encode_metadata,
    event_row,
    index_damaged,
    message_of,
    new_session_messages,
    run_filter,
    run_info_of,
    session_busy,
    session_conflict,
    session_exists,
    session_info_of,
    session_not_found,
    unstored_rows,
)

DEFAULT_STORE_PATH = Path(".pilothouse") / "journal.db"
_log = logging.getLogger("pilothouse.journal")
T = TypeVar("T")


class HeldLease(Protocol):
    """What a journal needs of its run's lease (`pilothouse.runtime.lease.RunLease` is
    one): the lease module drives stores, so the journal names only this much of it."""

    holder: str
    release: bool  # the drive's last write gives the lease up
    held: bool
    lost: bool

    def terms(self) -> tuple[str, float]: ...

    def written(self, *, last: bool) -> None: ...

    def lost_error(self) -> Exception: ...


class Store(Protocol):
    """Where journals live. Appends are the only writes to events; nothing is rewritten.

    Leases: a run being resumed by a worker is claimed first, so that another worker
    (another process, another host on the same PostgreSQL) does not continue it too:
    two processes appending to one run would both act on the same model reply. A
    lease expires by itself (`lease_seconds`) so a worker that dies does not hold
    its runs forever; a live worker renews it by claiming again. Leases live beside
    the index row and are never touched by `write`.
    """

    def write(
        self,
        events: Sequence[Event],
        run: RunInfo | None = None,
        *,
        lease: tuple[str, float] | None = None,
        session: SessionWrite | None = None,
    ) -> None:
        """In one transaction: save the run's index row (if given) and append events.

        `lease` = (holder, expires): also set the run's lease in that transaction (a
        new run's first write: no worker can claim the run between its creation and
        its lease; a drive's last write gives it up with an expiry in the past). An
        event whose (run_id, seq) already exists raises `WriteConflictError` and
        writes nothing: another process drives the run. Any
        other failure raises `StoreError` and writes nothing, so the same batch can be
        written again; and since a failure can hide a commit (a connection lost after
        the server committed), events already stored exactly as in the batch (same
        time stamp and content: the batch's own earlier attempt) are skipped, not a
        conflict.

        `session`: also append the run's new messages to its session, in the same
        transaction (see `SessionWrite`). Unknown session: `SessionNotFoundError`.
        With `session.begin`, `SessionBusyError` if another run of the session holds
        a live lease. A message already stored under its (session, run, n) key as it
        is in the write is skipped; a different one is a `WriteConflictError`. Any of
        these errors writes nothing, events included. The parent, root and session of
        `run` are written when its row is created and never changed afterwards."""
        ...

    def events(self, run_id: str) -> list[Event]: ...

    def get_run(self, run_id: str) -> RunInfo: ...

    def list_runs(
        self,
        limit: int | None = 20,
        *,
        session_id: str | None = None,
        status: RunStatus | None = None,
    ) -> list[RunInfo]:
        """The newest `limit` runs, newest first; with `session_id`, the first `limit`
        runs (turns) of that session, oldest first; with `status`, only runs in that
        status (``paused``: the runs waiting for a person). `limit=None`: all of them."""
        ...

    def children(self, run_id: str) -> list[RunInfo]:
        """The runs whose parent is `run_id`, oldest first (created, then run id);
        empty for a run without children or an unknown run."""
        ...

    def create_session(
        self, session_id: str, metadata: dict[str, Any] | None = None
    ) -> SessionInfo:
        """Record a new, empty session; `SessionExistsError` if the id is taken,
        `ValueError` for an invalid id or metadata that is not JSON."""
        ...

    def get_session(self, session_id: str) -> SessionInfo:
        """The session's record; `SessionNotFoundError` if there is none."""
        ...

    def list_sessions(self, limit: int | None = 20, offset: int = 0) -> list[SessionInfo]:
        """Sessions, most recently updated first (ties: the greater id first)."""
        ...

    def session_messages(
        self, session_id: str, *, start: int = 0, limit: int | None = None
    ) -> list[SessionMessage]:
        """The session's messages with seq >= `start`, in seq order, at most `limit`
        (None: all; 0: none). `ValueError` for a negative start or limit."""
        ...

    def append_session(
        self,
        session_id: str,
        messages: Sequence[Message],
        *,
        author: str = "",
        run_id: str | None = None,
    ) -> int:
        """Append messages outside any run's write (a human agent's reply), in one
        transaction; returns the session's new message count."""
        ...

    def claim(
        self, run_id: str, worker: str, lease_seconds: float, *, take_from: str | None = None
    ) -> bool:
        """Take or renew `worker`'s lease on the run, atomically. False if another
        worker holds an unexpired lease (unless that holder is `take_from`: a holder
        known to be dead, see `pilothouse.runtime.lease`); `RunNotFoundError` for an
        unknown run."""
        ...

    def lease(self, run_id: str) -> tuple[str, float] | None:
        """Who holds the run's lease and until when (epoch seconds), or None if nobody
        does or it expired; `RunNotFoundError` for an unknown run."""
        ...

    def release(self, run_id: str, worker: str) -> None:
        """Give up `worker`'s lease on the run (nothing happens if it does not hold it)."""
        ...

    def claim_next(
        self,
        worker: str,
        lease_seconds: float,
        *,
        statuses: Sequence[str] = ("running",),
        idle_for: float = 0.0,
        agent: str | None = None,
    ) -> str | None:
        """Claim the oldest run with one of `statuses` that nobody holds a live lease
        on, whose last event is at least `idle_for` seconds old (a run still driven
        by a live process keeps writing) and, if given, recorded by agent `agent`.
        Returns its id, or None when there is no such run. Finding and claiming are
        one transaction: two workers never get the same run. Paused (waiting for a
        human) and in-doubt runs are left alone unless their status is listed."""
        ...

    def close(self) -> None: ...


@dataclass(slots=True)
class _MemorySession:
    """A session as `MemoryStore` keeps it: its record and its messages in seq order."""

    created: float
    updated: float
    metadata: str
    messages: list[SessionMessage]
    by_turn: dict[tuple[str, int], int]  # (run_id, n) -> seq of that run's n-th message


class MemoryStore:
    """Keeps journals as Python objects in this process: fastest, gone at exit."""

    where = "this in-memory store"

    def __init__(self) -> None:
        self._runs: dict[str, RunInfo] = {}
        self._events: dict[str, list[Event]] = {}  # each run's events in seq order
        self._leases: dict[str, tuple[str, float]] = {}  # run_id -> (worker, expires)
        self._children: dict[str, list[str]] = {}  # parent run_id -> child run_ids
        self._session_runs: dict[str, list[str]] = {}  # session_id -> its run_ids
        self._sessions: dict[str, _MemorySession] = {}
        self._lock = threading.Lock()

    def write(
        self,
        events: Sequence[Event],
        run: RunInfo | None = None,
        *,
        lease: tuple[str, float] | None = None,
        session: SessionWrite | None = None,
    ) -> None:
        if lease is not None and run is None:
            raise ValueError("write(lease=...) takes the lease of the run it is given: pass run")
        with self._lock:
            # The common case, checked in one pass: one run's events, in order, after
            # its last stored one. Anything else takes the careful path.
            run_id = events[0].run_id if events else ""
            stored = self._events.get(run_id)
            last = stored[-1].seq if stored else -1
            for event in events:
                if event.run_id != run_id or event.seq <= last:
                    new = self._unstored(events)
                    break
                last = event.seq
            else:
                new = events
            # Every check is made before anything changes: a refused write writes nothing.
            appended = self._session_plan(session) if session is not None else None
            if run is not None:
                self._put_run(run)
                if lease is not None:
                    self._leases[run.run_id] = lease
            if appended is not None and session is not None:
                self._append(session.session_id, appended, session.run_id, "")
            if new is events and stored is not None:
                stored.extend(events)
                return
            for event in new:
                stored = self._events.setdefault(event.run_id, [])
                if not stored or stored[-1].seq < event.seq:
                    stored.append(event)
                else:
                    bisect.insort(stored, event, key=_seq)

    def _put_run(self, run: RunInfo) -> None:
        """Save an index row; a row already stored keeps its parent, root and session."""
        old = self._runs.get(run.run_id)
        if old is None:
            if run.parent_run_id is not None:
                self._children.setdefault(run.parent_run_id, []).append(run.run_id)
            if run.session_id is not None:
                self._session_runs.setdefault(run.session_id, []).append(run.run_id)
        elif (old.parent_run_id, old.root_run_id, old.session_id) != (
            run.parent_run_id,
            run.root_run_id,
            run.session_id,
        ):
            run = dataclasses.replace(
                run,
                parent_run_id=old.parent_run_id,
                root_run_id=old.root_run_id,
                session_id=old.session_id,
            )
        self._runs[run.run_id] = run

    def _session_plan(self, write: SessionWrite) -> list[tuple[int, Message]]:
        """The messages of `write` to append (those not stored yet), after checking the
        session exists and, for a turn that begins, that no other run of it holds a
        live lease. Changes nothing."""
        found = self._sessions.get(write.session_id)
        if found is None:
            raise session_not_found(write.session_id, self.where)
        if write.begin:
            now = time.time()
            for other in self._session_runs.get(write.session_id, ()):
                holder = self._leases.get(other)
                if other != write.run_id and holder is not None and holder[1] > now:
                    raise session_busy(write.session_id, other, self.where)
        seen: dict[int, Message] = {}
        new: list[tuple[int, Message]] = []
        for n, message in write.messages:
            old = seen.get(n)
            if old is None:
                seq = found.by_turn.get((write.run_id, n))
                old = found.messages[seq].message if seq is not None else None
            if old is None:
                seen[n] = message
                new.append((n, message))
            elif old is not message and old.to_dict() != message.to_dict():
                raise session_conflict(write, n, self.where)
        return new

    def _append(
        self,
        session_id: str,
        messages: Sequence[tuple[int | None, Message]],
        run_id: str | None,
        author: str,
    ) -> int:
        """Append checked messages (n None: outside a run's turn keys) with the next seqs."""
        found = self._sessions[session_id]
        if not messages:
            return len(found.messages)
        now = time.time()
        for n, message in messages:
            seq = len(found.messages)
            found.messages.append(SessionMessage(seq, message, run_id, now, author))
            if n is not None and run_id is not None:
                found.by_turn[run_id, n] = seq
        found.updated = now
        return len(found.messages)

    def _unstored(self, events: Sequence[Event]) -> Sequence[Event]:
        """`events` less those already stored as they are (a batch written again after
        its first attempt went through); `WriteConflictError` if a (run_id, seq) is
        taken by a different event."""
        new: list[Event] = []
        taken: dict[tuple[str, int], Event] = {}
        for run_id in {e.run_id for e in events}:
            for stored_event in self._events.get(run_id, ()):
                taken[run_id, stored_event.seq] = stored_event
        for event in events:
            found = taken.get((event.run_id, event.seq))
            if found is None:
                taken[event.run_id, event.seq] = event
                new.append(event)
            elif found is not event and found.to_dict() != event.to_dict():
                seqs = [e.seq for e in events if e.run_id == event.run_id]
                raise conflict_error(event.run_id, seqs, self.where)
        return new

    def events(self, run_id: str) -> list[Event]:
        self.get_run(run_id)
        with self._lock:
            return list(self._events.get(run_id, ()))

    def get_run(self, run_id: str) -> RunInfo:
        try:
            return self._runs[run_id]
        except KeyError:
            if run_id in self._events:
                with self._lock:  # its first write (row, then events) may just have landed
                    if run_id in self._runs:
                        return self._runs[run_id]
                raise StoreError(index_damaged(run_id, self.where)) from None
            raise RunNotFoundError(f"no run {run_id!r} in {self.where}") from None

    def list_runs(
        self,
        limit: int | None = 20,
        *,
        session_id: str | None = None,
        status: RunStatus | None = None,
    ) -> list[RunInfo]:
        check_window(limit)
        with self._lock:
            if session_id is None:
                runs = sorted(self._runs.values(), key=lambda r: r.created, reverse=True)
            else:
                ids = self._session_runs.get(session_id, ())
                runs = sorted((self._runs[i] for i in ids), key=_created_then_id)
        if status is not None:
            runs = [r for r in runs if r.status == status]
        return runs[:limit]

    def children(self, run_id: str) -> list[RunInfo]:
        with self._lock:
            ids = self._children.get(run_id, ())
            return sorted((self._runs[i] for i in ids), key=_created_then_id)

    def create_session(
        self, session_id: str, metadata: dict[str, Any] | None = None
    ) -> SessionInfo:
        check_session_id(session_id)
        text = encode_metadata(metadata)
        with self._lock:
            if session_id in self._sessions:
                raise session_exists(session_id, self.where)
            now = time.time()
            self._sessions[session_id] = _MemorySession(now, now, text, [], {})
        return SessionInfo(session_id, now, now, 0, decode_metadata(text))

    def _session(self, session_id: str) -> _MemorySession:
        check_session_id(session_id)
        found = self._sessions.get(session_id)
        if found is None:
            raise session_not_found(session_id, self.where)
        return found

    def get_session(self, session_id: str) -> SessionInfo:
        with self._lock:
            s = self._session(session_id)
            return SessionInfo(
                session_id, s.created, s.updated, len(s.messages), decode_metadata(s.metadata)
            )

    def list_sessions(self, limit: int | None = 20, offset: int = 0) -> list[SessionInfo]:
        check_window(limit, offset)
        with self._lock:
            order = sorted(self._sessions.items(), key=lambda i: (i[1].updated, i[0]), reverse=True)
            end = None if limit is None else offset + limit
            return [
                SessionInfo(i, s.created, s.updated, len(s.messages), decode_metadata(s.metadata))
                for i, s in order[offset:end]
            ]

    def session_messages(
        self, session_id: str, *, start: int = 0, limit: int | None = None
    ) -> list[SessionMessage]:
        check_page(start, limit)
        with self._lock:
            found = self._session(session_id).messages
            return found[start : None if limit is None else start + limit]

    def append_session(
        self,
        session_id: str,
        messages: Sequence[Message],
        *,
        author: str = "",
        run_id: str | None = None,
    ) -> int:
        checked = check_messages(messages)
        check_author(author)
        with self._lock:
            self._session(session_id)
            return self._append(session_id, [(None, m) for m in checked], run_id, author)

    def _free(self, run_id: str, worker: str, now: float, take_from: str | None = None) -> bool:
        holder = self._leases.get(run_id)
        return holder is None or holder[0] in (worker, take_from) or holder[1] <= now

    def claim(
        self, run_id: str, worker: str, lease_seconds: float, *, take_from: str | None = None
    ) -> bool:
        self.get_run(run_id)
        with self._lock:
            now = time.time()
            if not self._free(run_id, worker, now, take_from):
                return False
            self._leases[run_id] = (worker, now + lease_seconds)
            return True

    def lease(self, run_id: str) -> tuple[str, float] | None:
        self.get_run(run_id)
        with self._lock:
            holder = self._leases.get(run_id)
        return holder if holder is not None and holder[1] > time.time() else None

    def release(self, run_id: str, worker: str) -> None:
        with self._lock:
            if self._leases.get(run_id, ("",))[0] == worker:
                del self._leases[run_id]

    def claim_next(
        self,
        worker: str,
        lease_seconds: float,
        *,
        statuses: Sequence[str] = ("running",),
        idle_for: float = 0.0,
        agent: str | None = None,
    ) -> str | None:
        with self._lock:
            now = time.time()
            for run in sorted(self._runs.values(), key=lambda r: r.created):
                events = self._events.get(run.run_id)
                last = events[-1].ts if events else run.updated
                if (
                    run.status in statuses
                    and (agent is None or run.agent == agent)
                    and last <= now - idle_for
                    and self._free(run.run_id, "", now)
                ):
                    self._leases[run.run_id] = (worker, now + lease_seconds)
                    return run.run_id
        return None

    def close(self) -> None:
        pass


def _seq(event: Event) -> int:
    return event.seq


def _created_then_id(run: RunInfo) -> tuple[float, str]:
    return run.created, run.run_id


_SCHEMA = """
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
    lease_expires REAL,
    parent_run_id TEXT,
    root_run_id TEXT,
    session_id TEXT
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
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    messages INTEGER NOT NULL DEFAULT 0,
    metadata TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS session_messages (
    session_id TEXT NOT NULL REFERENCES sessions(session_id),
    seq INTEGER NOT NULL,
    ts REAL NOT NULL,
    run_id TEXT,
    n INTEGER,
    author TEXT NOT NULL DEFAULT '',
    data TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS session_messages_turn ON session_messages(session_id, run_id, n);
CREATE INDEX IF NOT EXISTS sessions_updated ON sessions(updated);
"""
# Columns added to `runs` after its first version, with their SQLite types: a journal
# written by an older version gains them when it is opened (`_migrate`).
_ADDEDRUN_COLUMNS = (
    ("lease_owner", "TEXT"),
    ("lease_expires", "REAL"),
    ("parent_run_id", "TEXT"),
    ("root_run_id", "TEXT"),
    ("session_id", "TEXT"),
)
# Indexes on added columns: created after the migration has added them.
_RUN_INDEXES = """
CREATE INDEX IF NOT EXISTS runs_parent ON runs(parent_run_id);
CREATE INDEX IF NOT EXISTS runs_session ON runs(session_id, created);
CREATE INDEX IF NOT EXISTS runs_status_created ON runs(status, created);
"""


# The upserts set the tree and session columns only when they insert the row: the
# DO UPDATE lists leave them out, so they never change once written.
_UPSERT_RUN = (
    f"INSERT INTO runs ({RUN_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT(run_id) DO UPDATE SET status=excluded.status, updated=excluded.updated, "
    "steps=excluded.steps, input_tokens=excluded.input_tokens, "
    "output_tokens=excluded.output_tokens, cost=excluded.cost, output=excluded.output"
)


_UPSERT_RUN_LEASED = (
    f"INSERT INTO runs ({RUN_COLUMNS}, lease_owner, lease_expires) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT(run_id) DO UPDATE SET status=excluded.status, updated=excluded.updated, "
    "steps=excluded.steps, input_tokens=excluded.input_tokens, "
    "output_tokens=excluded.output_tokens, cost=excluded.cost, output=excluded.output, "
    "lease_owner=excluded.lease_owner, lease_expires=excluded.lease_expires"
)
_INSERT_EVENT = "INSERT INTO events (run_id, seq, ts, step, type, data) VALUES (?,?,?,?,?,?)"


# The write-ahead log's header (https://www.sqlite.org/fileformat2.html#walformat):
# eight big-endian 32-bit words: magic, format version, page size, checkpoint sequence,
# salt-1, salt-2, and a checksum of the first six words.
_WAL_MAGIC_LE, _WAL_MAGIC_BE = 0x377F0682, 0x377F0683  # byte order of the checksums
_WAL_VERSION = 3007000


def wal_header_problem(header: bytes) -> str | None:
    """What is wrong with a SQLite write-ahead log's 32-byte header, or None if it is
    valid. SQLite itself ignores a WAL whose header is invalid, silently: every commit
    in it is then missing from the database."""
    if len(header) < 32:
        return f"its header is cut short ({len(header)} of 32 bytes)"
    magic, version, page_size, _, _, _, sum1, sum2 = struct.unpack(">8I", header[:32])
    if magic not in (_WAL_MAGIC_LE, _WAL_MAGIC_BE):
        return f"its header does not start with a WAL magic number (found {magic:#010x})"
    if version != _WAL_VERSION:
        return f"its header names an unknown format version ({version})"
    if page_size < 512 or page_size > 65536 or page_size & (page_size - 1):
        return f"its header names an impossible page size ({page_size})"
    words = struct.unpack(">6I" if magic == _WAL_MAGIC_BE else "<6I", header[:24])
    s0 = s1 = 0
    for i in range(0, 6, 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    if (s0, s1) != (sum1, sum2):
        return "its header checksum does not match"
    return None


def _wal_damage(wal: str) -> str | None:
    """What is wrong with the header of the WAL file `wal`, or None if it is valid,
    empty or absent. A header read while another process rewrites it can be torn: it
    counts as damaged only if reading it again gives the same bytes."""
    seen: bytes | None = None
    for _ in range(3):
        try:
            with open(wal, "rb") as f:
                header = f.read(32)
        except FileNotFoundError:
            return None
        except OSError:
            return None  # unreadable: SQLite's own open fails and says why
        if not header:
            return None
        problem = wal_header_problem(header)
        if problem is None or header == seen:
            return problem
        seen = header
    return wal_header_problem(seen or b"")


def _sqlite_fix(exc: BaseException) -> str:
    """What a sqlite3 or OS error means for a journal file, and what to do about it."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary == sqlite3.SQLITE_FULL or getattr(exc, "errno", None) == errno.ENOSPC:
        return (
            "the disk is full (or the journal reached its size limit, PRAGMA "
            "max_page_count): free space, then the same write can be made again"
        )
    if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return (
            "the file is not a SQLite database or is damaged: restore it from a backup or "
            "move it away (with its -wal and -shm files) to start a new journal"
        )
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return (
            "another process held the journal's lock for longer than 5 seconds: try again, "
            "and look for a process stuck with the file open"
        )
    if primary in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH):
        return (
            "the file or its directory is not writable (the -wal and -shm files are created "
            "beside it): check permissions, or set PILOTHOUSE_STORE to a writable path"
        )
    if primary == sqlite3.SQLITE_CANTOPEN:
        return (
            "the file cannot be opened or created: check the path and its directory's "
            "permissions, or set PILOTHOUSE_STORE"
        )
    if primary == sqlite3.SQLITE_IOERR or isinstance(exc, OSError):
        return "the disk reported an I/O error: check the disk and its free space"
    return ""


def _missing_run_columns(db: sqlite3.Connection) -> list[tuple[str, str]]:
    columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    return [(name, kind) for name, kind in _ADDEDRUN_COLUMNS if name not in columns]


def _migrate(db: sqlite3.Connection) -> None:
    """Add the `runs` columns a journal written by an older version lacks (leases, the
    run tree, sessions). Under the write lock, looking again once it is held: two
    processes opening one old file at once must not both add a column."""
    if not _missing_run_columns(db):
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        for name, kind in _missing_run_columns(db):
            db.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise


class SQLiteStore:
    """Journals in one SQLite file (WAL mode), safe to share between runs of one process.

    Each `write` is one transaction. With WAL and ``synchronous=NORMAL`` a commit
    does not wait for the disk, yet the database cannot be corrupted by a crash;
    a power cut may lose the last commits, a killed process loses nothing.

    Every failure is a `StoreError` naming the file and the fix. A damaged
    write-ahead log is refused when the store opens: SQLite would ignore it silently,
    and the runs committed in it would look as if they never existed. A connection
    that cannot even roll back after a failure is replaced at the next call.
    """

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_STORE_PATH) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._closed = False
        self._db: sqlite3.Connection | None = self._open()

    def _open(self) -> sqlite3.Connection:
        """A new connection to the file, in WAL mode, with the journal's tables."""
        if self.path != ":memory:":
            directory = Path(self.path).parent
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the journal directory {str(directory)!r} for "
                    f"{self.path!r}: {exc.strerror or exc}: check permissions (or that no "
                    "file has that name), or set PILOTHOUSE_STORE to a writable path"
                ) from exc
            # Before SQLite opens the file: opening may reset a WAL it found invalid.
            wal = self.path + "-wal"
            problem = _wal_damage(wal)
            if problem is not None:
                raise StoreError(
                    f"the write-ahead log {wal!r} of journal store {self.path!r} is damaged "
                    f"({problem}); committed runs in it may be missing (SQLite would ignore "
                    "the log without a word). Keep a copy of both files, then restore them "
                    f"from a backup, or move {wal!r} away to open the journal without the "
                    "runs it holds"
                )
        try:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            raise self._error("open", exc) from exc
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=5000")
            db.executescript(_SCHEMA)
            _migrate(db)
            db.executescript(_RUN_INDEXES)
        except BaseException as exc:
            db.close()
            if isinstance(exc, (sqlite3.Error, OSError)):
                raise self._error("open", exc) from exc
            raise
        return db

    def _error(self, action: str, exc: BaseException) -> StoreError:
        """`exc` as the StoreError of `action`, naming the file and the fix."""
        fix = _sqlite_fix(exc)
        return StoreError(
            f"cannot {action} journal store {self.path!r}: {exc}" + (f"; {fix}" if fix else "")
        )

    def _connection(self) -> sqlite3.Connection:
        """The open connection; a new one if a failure made the last one unusable."""
        db = self._db
        if db is None:
            if self._closed:
                raise StoreError(
                    f"journal store {self.path!r} is closed: open it again (open_store "
                    "or SQLiteStore)"
                )
            db = self._db = self._open()
        return db

    def _abort(self, db: sqlite3.Connection) -> None:
        """Roll back whatever a failed call left open, so the next call starts clean;
        a connection that cannot even do that is dropped (the next call reopens)."""
        try:
            if db.in_transaction:
                db.execute("ROLLBACK")
        except sqlite3.Error:
            with contextlib.suppress(sqlite3.Error):
                db.close()
            if self._db is db:
                self._db = None

    @contextlib.contextmanager
    def _use(self, action: str) -> Iterator[sqlite3.Connection]:
        """The connection for one call, under the lock. Any sqlite3 or OS error becomes
        a `StoreError` naming the file and the fix (`action` says what failed: "read
        run 'x' from"), and a transaction the call left open is rolled back."""
        with self._lock:
            db = self._connection()
            try:
                yield db
            except BaseException as exc:
                self._abort(db)
                if isinstance(exc, (sqlite3.Error, OSError)):
                    raise self._error(action, exc) from exc
                raise

    @property
    def closed(self) -> bool:
        """Whether `close` was called: a closed store refuses every call."""
        return self._closed

    def pragma(self, name: str, value: int | str | None = None) -> list[tuple[Any, ...]]:
        """Read or set a PRAGMA on this store's own connection (several, such as
        ``max_page_count`` or ``wal_autocheckpoint``, are per connection): to cap the
        journal's size, tune checkpoints, or check the file (``integrity_check``)."""
        if not name.isidentifier() or not (
            value is None or isinstance(value, int) or value.isidentifier()
        ):
            raise ValueError(f"not a PRAGMA name and value: {name!r}, {value!r}")
        query = f"PRAGMA {name}" if value is None else f"PRAGMA {name}={value}"
        with self._use(f"run PRAGMA {name} on") as db:
            return db.execute(query).fetchall()

    def write(
        self,
        events: Sequence[Event],
        run: RunInfo | None = None,
        *,
        lease: tuple[str, float] | None = None,
        session: SessionWrite | None = None,
    ) -> None:
        if lease is not None and run is None:
            raise ValueError("write(lease=...) takes the lease of the run it is given: pass run")
        rows = [event_row(e) for e in events]
        with self._lock:
            db = self._connection()
            try:
                self._insert(db, rows, run, lease, session)
            except BaseException as exc:
                self._abort(db)
                if not isinstance(exc, (sqlite3.Error, OSError)):
                    raise
                if not _duplicate_event(exc):
                    raise self._error(f"write run {_run_of(rows, run, session)!r} to", exc) from exc
                self._write_unstored(db, rows, run, lease, session)

    def _insert(
        self,
        db: sqlite3.Connection,
        rows: list[EventRow],
        run: RunInfo | None,
        lease: tuple[str, float] | None,
        session: SessionWrite | None = None,
    ) -> None:
        """The write's one transaction: the session checks, the index row (and
        lease), the events, then the session's new messages. A write with a session
        takes the write lock first (BEGIN IMMEDIATE): its checks read what they
        decide on, and no other writer may slip in between."""
        if session is None:
            db.execute("BEGIN")
            appended: list[tuple[int, str]] = []
        else:
            db.execute("BEGIN IMMEDIATE")
            appended = self._session_plan(db, session)
        if run is not None:
            values = (
                run.run_id,
                run.agent,
                run.model,
                run.input,
                run.status,
                run.created,
                run.updated,
                run.steps,
                run.input_tokens,
                run.output_tokens,
                run.cost,
                encode_json(run.output),
                run.parent_run_id,
                run.root_run_id,
                run.session_id,
            )
            if lease is None:
                db.execute(_UPSERT_RUN, values)
            else:
                db.execute(_UPSERT_RUN_LEASED, (*values, *lease))
        db.executemany(_INSERT_EVENT, rows)
        if session is not None and appended:
            _append_rows(db, session.session_id, appended, session.run_id, "")
        db.execute("COMMIT")

    def _session_plan(self, db: sqlite3.Connection, write: SessionWrite) -> list[tuple[int, str]]:
        """Inside the write's transaction: check the session exists and, for a turn
        that begins, that no other run of it holds a live lease; return the (n, text)
        of the messages not stored yet (see `new_session_messages`)."""
        where = f"journal store {self.path!r}"
        known = db.execute("SELECT 1 FROM sessions WHERE session_id=?", (write.session_id,))
        if known.fetchone() is None:
            raise session_not_found(write.session_id, where)
        if write.begin:
            now = time.time()
            holder = db.execute(_BUSY_SQLITE, (write.session_id, write.run_id, now)).fetchone()
            if holder is not None:
                raise session_busy(write.session_id, str(holder[0]), where)
        if not write.messages:
            return []
        ns = [n for n, _ in write.messages]
        stored = dict(
            db.execute(
                "SELECT n, data FROM session_messages WHERE session_id=? AND run_id=? "
                "AND n BETWEEN ? AND ?",
                (write.session_id, write.run_id, min(ns), max(ns)),
            ).fetchall()
        )
        return new_session_messages(write, stored, encode_message, where)

    def _write_unstored(
        self,
        db: sqlite3.Connection,
        rows: list[EventRow],
        run: RunInfo | None,
        lease: tuple[str, float] | None,
        session: SessionWrite | None,
    ) -> None:
        """After a write met stored events: write the rest of the batch if those are
        the batch's own events (an earlier attempt that went through), else
        `WriteConflictError` (see `unstored_rows`)."""
        where = f"journal store {self.path!r}"
        action = f"write run {_run_of(rows, run, session)!r} to"

        def stored(run_id: str, seqs: list[int]) -> list[tuple[Any, ...]]:
            marks = ",".join("?" * len(seqs))
            return db.execute(
                f"SELECT seq, ts, step, type, data FROM events WHERE run_id=? AND seq IN ({marks})",
                (run_id, *seqs),
            ).fetchall()

        try:
            self._insert(db, unstored_rows(rows, stored, where), run, lease, session)
        except BaseException as exc:
            self._abort(db)
            if isinstance(exc, sqlite3.Error) and _duplicate_event(exc):
                # Another writer stored events at these numbers since the first try.
                raise conflict_error(
                    _run_of(rows, run, session), (r[1] for r in rows), where
                ) from exc
            if isinstance(exc, (sqlite3.Error, OSError)):
                raise self._error(action, exc) from exc
            raise

    def _find(self, db: sqlite3.Connection, run_id: str, columns: str) -> tuple[Any, ...]:
        """The run's index row (`columns` of it); `RunNotFoundError` if there is no such
        run, a `StoreError` if its events exist without the row (a damaged index)."""
        query = f"SELECT {columns} FROM runs WHERE run_id=?"
        row = db.execute(query, (run_id,)).fetchone()
        if row is not None:
            return tuple(row)
        if db.execute("SELECT 1 FROM events WHERE run_id=? LIMIT 1", (run_id,)).fetchone():
            # Each statement reads its own snapshot: the run's first write (row and
            # events, one transaction) may have landed between the two. Look again.
            row = db.execute(query, (run_id,)).fetchone()
            if row is not None:
                return tuple(row)
            raise StoreError(index_damaged(run_id, f"journal store {self.path!r}"))
        raise RunNotFoundError(
            f"no run {run_id!r} in {self.path!r}; `pilothouse trace list` shows the runs"
        )

    def _info(self, row: tuple[Any, ...]) -> RunInfo:
        try:
            return run_info_of(row)
        except (ValueError, TypeError) as exc:
            raise StoreError(
                f"run {row[0]!r}: its index row in {self.path!r} is corrupted: {exc}"
            ) from exc

    def events(self, run_id: str) -> list[Event]:
        with self._use(f"read run {run_id!r} from") as db:
            self._find(db, run_id, "run_id")
            rows = db.execute(
                "SELECT seq, ts, step, type, data FROM events WHERE run_id=? ORDER BY seq",
                (run_id,),
            ).fetchall()
        where = repr(self.path)
        return [decode_event(run_id, row, where) for row in rows]

    def get_run(self, run_id: str) -> RunInfo:
        with self._use(f"read run {run_id!r} from") as db:
            row = self._find(db, run_id, RUN_COLUMNS)
        return self._info(row)

    def list_runs(
        self,
        limit: int | None = 20,
        *,
        session_id: str | None = None,
        status: RunStatus | None = None,
    ) -> list[RunInfo]:
        check_window(limit)
        count = -1 if limit is None else limit  # SQLite: a negative LIMIT is no limit
        where, params = run_filter(session_id, status, "?")
        order = "created DESC" if session_id is None else "created, run_id"
        with self._use("list the runs of") as db:
            rows = db.execute(
                f"SELECT {RUN_COLUMNS} FROM runs{where} ORDER BY {order} LIMIT ?",
                (*params, count),
            ).fetchall()
        return [self._info(r) for r in rows]

    def children(self, run_id: str) -> list[RunInfo]:
        with self._use(f"list the children of run {run_id!r} in") as db:
            rows = db.execute(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE parent_run_id=? ORDER BY created, run_id",
                (run_id,),
            ).fetchall()
        return [self._info(r) for r in rows]

    def create_session(
        self, session_id: str, metadata: dict[str, Any] | None = None
    ) -> SessionInfo:
        check_session_id(session_id)
        text = encode_metadata(metadata)
        now = time.time()
        with self._use(f"create session {session_id!r} in") as db:
            inserted = db.execute(
                "INSERT INTO sessions (session_id, created, updated, messages, metadata) "
                "VALUES (?,?,?,0,?) ON CONFLICT(session_id) DO NOTHING",
                (session_id, now, now, text),
            ).rowcount
        if inserted != 1:
            raise session_exists(session_id, f"journal store {self.path!r}")
        return SessionInfo(session_id, now, now, 0, decode_metadata(text))

    def _session_row(self, db: sqlite3.Connection, session_id: str) -> SessionInfo:
        row = db.execute(
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id=?", (session_id,)
        ).fetchone()
        if row is None:
            raise session_not_found(session_id, f"journal store {self.path!r}")
        return self._session_info(row)

    def _session_info(self, row: Sequence[Any]) -> SessionInfo:
        try:
            return session_info_of(row)
        except (ValueError, TypeError) as exc:
            raise StoreError(
                f"session {row[0]!r}: its row in {self.path!r} is corrupted: {exc}"
            ) from exc

    def get_session(self, session_id: str) -> SessionInfo:
        check_session_id(session_id)
        with self._use(f"read session {session_id!r} from") as db:
            return self._session_row(db, session_id)

    def list_sessions(self, limit: int | None = 20, offset: int = 0) -> list[SessionInfo]:
        check_window(limit, offset)
        with self._use("list the sessions of") as db:
            rows = db.execute(
                f"SELECT {SESSION_COLUMNS} FROM sessions "
                "ORDER BY updated DESC, session_id DESC LIMIT ? OFFSET ?",
                (-1 if limit is None else limit, offset),
            ).fetchall()
        return [self._session_info(r) for r in rows]

    def session_messages(
        self, session_id: str, *, start: int = 0, limit: int | None = None
    ) -> list[SessionMessage]:
        check_session_id(session_id)
        check_page(start, limit)
        with self._use(f"read session {session_id!r} from") as db:
            self._session_row(db, session_id)
            rows = db.execute(
                "SELECT seq, ts, run_id, author, data FROM session_messages "
                "WHERE session_id=? AND seq >= ? ORDER BY seq LIMIT ?",
                (session_id, start, -1 if limit is None else limit),
            ).fetchall()
        where = repr(self.path)
        return [
            SessionMessage(seq, message_of(data, session_id, seq, where), run_id, ts, author)
            for seq, ts, run_id, author, data in rows
        ]

    def append_session(
        self,
        session_id: str,
        messages: Sequence[Message],
        *,
        author: str = "",
        run_id: str | None = None,
    ) -> int:
        check_session_id(session_id)
        check_author(author)
        encoded: list[tuple[int | None, str]] = [
            (None, encode_message(m)) for m in check_messages(messages)
        ]

        def append(db: sqlite3.Connection) -> int:
            self._session_row(db, session_id)
            return _append_rows(db, session_id, encoded, run_id, author)

        return self._immediate(f"append to session {session_id!r} in", append)

    def _immediate(self, action: str, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work(connection)` inside BEGIN IMMEDIATE: the database's write lock is taken
        before anything is read, so a check and the update it decides are one atomic
        step across every process sharing the file."""
        with self._use(action) as db:
            db.execute("BEGIN IMMEDIATE")
            result = work(db)
            db.execute("COMMIT")
            return result

    def claim(
        self, run_id: str, worker: str, lease_seconds: float, *, take_from: str | None = None
    ) -> bool:
        now = time.time()

        def take(db: sqlite3.Connection) -> bool:
            owner, expires = self._find(db, run_id, "lease_owner, lease_expires")
            if owner is not None and owner not in (worker, take_from) and expires > now:
                return False
            db.execute(
                "UPDATE runs SET lease_owner=?, lease_expires=? WHERE run_id=?",
                (worker, now + lease_seconds, run_id),
            )
            return True

        return self._immediate(f"claim run {run_id!r} in", take)

    def lease(self, run_id: str) -> tuple[str, float] | None:
        with self._use(f"read the lease of run {run_id!r} in") as db:
            owner, expires = self._find(db, run_id, "lease_owner, lease_expires")
        if owner is None or expires is None or expires <= time.time():
            return None
        return str(owner), float(expires)

    def release(self, run_id: str, worker: str) -> None:
        with self._use(f"release run {run_id!r} in") as db:
            db.execute(
                "UPDATE runs SET lease_owner=NULL, lease_expires=NULL "
                "WHERE run_id=? AND lease_owner=?",
                (run_id, worker),
            )

    def claim_next(
        self,
        worker: str,
        lease_seconds: float,
        *,
        statuses: Sequence[str] = ("running",),
        idle_for: float = 0.0,
        agent: str | None = None,
    ) -> str | None:
        if not statuses:
            return None
        now = time.time()
        marks = ",".join("?" * len(statuses))
        query = (
            f"SELECT r.run_id FROM runs r WHERE r.status IN ({marks}) "
            "AND (r.lease_expires IS NULL OR r.lease_expires <= ?) AND (? IS NULL OR r.agent = ?) "
            "AND COALESCE((SELECT e.ts FROM events e WHERE e.run_id = r.run_id "
            "ORDER BY e.seq DESC LIMIT 1), r.updated) <= ? ORDER BY r.created LIMIT 1"
        )

        def take(db: sqlite3.Connection) -> str | None:
            row = db.execute(query, (*statuses, now, agent, agent, now - idle_for)).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE runs SET lease_owner=?, lease_expires=? WHERE run_id=?",
                (worker, now + lease_seconds, row[0]),
            )
            return str(row[0])

        return self._immediate("claim a run in", take)

    def close(self) -> None:
        with self._lock:
            db, self._db, self._closed = self._db, None, True
            if db is not None:
                try:
                    db.close()
                except sqlite3.Error as exc:
                    raise self._error("close", exc) from exc


def _duplicate_event(exc: BaseException) -> bool:
    """Whether a failed write met an event already stored at one of its (run_id, seq)."""
    return (
        isinstance(exc, sqlite3.IntegrityError)
        and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
        and "events." in str(exc)
    )


def _run_of(
    rows: Sequence[EventRow], run: RunInfo | None, session: SessionWrite | None = None
) -> str:
    """The run a write is for, to name it in errors."""
    if run is not None:
        return run.run_id
    if rows:
        return rows[0][0]
    return session.run_id if session is not None else "?"


# Another run of the session holding a live lease (a turn in progress).
_BUSY_SQLITE = (
    "SELECT run_id FROM runs WHERE session_id=? AND run_id<>? AND lease_owner IS NOT NULL "
    "AND lease_expires > ? ORDER BY created LIMIT 1"
)


def _append_rows(
    db: sqlite3.Connection,
    session_id: str,
    messages: Sequence[tuple[int | None, str]],
    run_id: str | None,
    author: str,
) -> int:
    """Append encoded messages (n None: outside a turn) with the session's next seqs and
    move its count and `updated`, inside the caller's transaction; the new count."""
    row = db.execute("SELECT messages FROM sessions WHERE session_id=?", (session_id,)).fetchone()
    first = int(row[0])
    if not messages:
        return first
    now = time.time()
    db.executemany(
        "INSERT INTO session_messages (session_id, seq, ts, run_id, n, author, data) "
        "VALUES (?,?,?,?,?,?,?)",
        [
            (session_id, first + i, now, run_id, n, author, text)
            for i, (n, text) in enumerate(messages)
        ],
    )
    count = first + len(messages)
    db.execute(
        "UPDATE sessions SET messages=?, updated=? WHERE session_id=?", (count, now, session_id)
    )
    return count


_open_stores: dict[str, Store] = {}


def open_store(spec: Store | str | os.PathLike[str] | None = None) -> Store:
    """Resolve a store: an object, ``":memory:"``, a SQLite path, a PostgreSQL URL
    (``postgresql://user@host:port/db``, needs ``pilothouse[postgres]``), or the default.

    The default is ``$PILOTHOUSE_STORE`` if set, else ``./.pilothouse/journal.db``.
    Paths and URLs are opened once per process and shared.
    """
    if spec is not None and not isinstance(spec, (str, os.PathLike)):
        return spec
    if spec is None:
        spec = os.environ.get("PILOTHOUSE_STORE") or DEFAULT_STORE_PATH
    text = os.fspath(spec)
    if text == ":memory:":
        return MemoryStore()
    if text.startswith(("postgresql://", "postgres://")):
        store = _open_stores.get(text)
        if store is None:
            from pilothouse.runtime.postgres import PostgresStore

            store = _open_stores[text] = PostgresStore(text)
        return store
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    elif "://" in text:
        raise StoreError(
            f"unsupported store {text!r}: use ':memory:', a SQLite file path, sqlite:///path "
            "or postgresql://user@host:port/database"
        )
    key = os.path.abspath(text)
    store = _open_stores.get(key)
    if store is None or getattr(store, "closed", False):
        store = _open_stores[key] = SQLiteStore(text)
    return store


Subscriber = Callable[[Event], None]


class Journal:
    """One run's journal: stamps, publishes and stores events.

    `commit()` writes queued events now; the loop calls it before and after any
    call that can change the world, and when the run ends. Between those, the loop
    writes when `due()`: when `flush_interval` seconds have passed since the last
    write: read-only steps against a fast model are grouped into one transaction,
    while against a real model (whose calls take longer than the interval) every
    step is written as it completes. A crash therefore loses at most
    `flush_interval` seconds of read-only work, never the record of a side effect.

    A failed write keeps its batch, with its sequence numbers, queued: the next
    `commit()` writes the same events again, so a store that fails for a moment
    leaves no gap (the loop retries with backoff, see `runtime.loop`). With a
    `lease` (see `pilothouse.runtime.lease`), a new run's first write takes the
    run's lease in the same transaction, and nothing is written once the lease is
    lost to another process.

    A run that is a turn of a session queues the messages it appends with
    `add_session`; they are written with the next commit's events, in the same
    transaction, and kept queued like the events when the write fails.
    """

    __slots__ = (
        "_info_dirty",
        "_last_write",
        "_pending",
        "_seq",
        "_session",
        "flush_interval",
        "info",
        "lease",
        "run_id",
        "store",
        "subscribers",
    )

    def __init__(
        self,
        run_id: str,
        store: Store,
        subscribers: Sequence[Subscriber] = (),
        *,
        flush_interval: float = 0.05,
        seq: int = 0,
        lease: HeldLease | None = None,
    ) -> None:
        """`seq` is the next sequence number: 0 for a new run, the count of its
        recorded events for a resumed one (resumed events continue, never overwrite)."""
        self.run_id = run_id
        self.info: RunInfo | None = None
        self._info_dirty = False
        self.store = store
        self.subscribers = list(subscribers)
        self.flush_interval = flush_interval
        self.lease = lease
        self._seq = seq
        self._pending: list[Event] = []
        self._session: SessionWrite | None = None
        self._last_write = time.monotonic()

    def emit(self, event: Event) -> Event:
        """Stamp the event, tell subscribers, and queue it for the next write."""
        event.seq = self._seq
        event.ts = time.time()
        self._seq += 1
        self._pending.append(event)
        for subscriber in self.subscribers:
            try:
                subscriber(event)
            except Exception:  # a listener never steers, nor stops, the run
                _log.exception("journal subscriber %r failed on %s", subscriber, event.type)
        return event

    def set_info(self, info: RunInfo) -> None:
        """Replace the run's index row; it is written with the next commit."""
        self.info = info
        self._info_dirty = True

    def add_session(self, write: SessionWrite) -> None:
        """Queue messages for the run's session, written with the next commit's events
        in one transaction. Several queued writes merge into one (same session and run;
        messages in order; it begins the turn if any of them does)."""
        pending = self._session
        self._session = write if pending is None else pending.merged(write)

    @property
    def pending_session(self) -> SessionWrite | None:
        """The session write queued for the next commit, if any."""
        return self._session

    def commit(self, *, last: bool = False) -> None:
        """Write queued events (and a changed index row) in one transaction, now.

        On failure (`StoreError`) nothing is dropped: the batch stays queued for the
        next commit. `LeaseLostError` if another process took the run over. `last`:
        the drive ends with this write, which gives up the lease in the same
        transaction (an expiry in the past) instead of a write of its own.
        """
        if self._pending or self._info_dirty or self._session is not None:
            lease = self.lease
            info = self.info if self._info_dirty else None
            if lease is None:
                self._write(info, None)
            elif not lease.held:  # a new run's first write takes its lease with it
                self._write(info, lease.terms())
                lease.written(last=False)
            elif lease.lost:
                raise lease.lost_error()
            elif last and lease.release and info is not None:
                self._write(info, (lease.holder, 0.0))
                lease.written(last=True)
            else:
                self._write(info, None)
            self._pending = []
            self._info_dirty = False
            self._session = None
        self._last_write = time.monotonic()

    def _write(self, info: RunInfo | None, lease: tuple[str, float] | None) -> None:
        """One `Store.write` of the queued batch. The session write is passed only
        when there is one, so a store written before sessions (a wrapper, a test
        double) keeps working for runs outside any session."""
        if self._session is not None:
            self.store.write(self._pending, info, lease=lease, session=self._session)
        elif lease is None:
            self.store.write(self._pending, info)
        else:
            self.store.write(self._pending, info, lease=lease)

    def due(self) -> bool:
        """Whether `flush_interval` has passed since the last write (time to commit)."""
        return time.monotonic() - self._last_write >= self.flush_interval
