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
runs without two of them ever continuing the same run.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pilothouse.events import Event, event_from_dict
from pilothouse.exceptions import RunNotFoundError, StoreError

if TYPE_CHECKING:
    from pilothouse.runtime.lease import RunLease

DEFAULT_STORE_PATH = Path(".pilothouse") / "journal.db"
_log = logging.getLogger("pilothouse.journal")


@dataclass(slots=True)
class RunInfo:
    """One row of the run index: what ran, on what, and how it ended."""

    run_id: str
    agent: str
    model: str
    input: str
    status: str = "running"
    created: float = 0.0
    updated: float = 0.0
    steps: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None
    output: Any = None


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
    ) -> None:
        """In one transaction: save the run's index row (if given) and append events.

        `lease` = (holder, expires): also take the run's lease in that transaction (a
        new run's first write: no worker can claim the run between its creation and
        its lease). An event whose (run_id, seq) already exists raises
        `WriteConflictError` and writes nothing: another process drives the run. Any
        other failure raises `StoreError` and writes nothing, so the same batch can be
        written again."""
        ...

    def events(self, run_id: str) -> list[Event]: ...

    def get_run(self, run_id: str) -> RunInfo: ...

    def list_runs(self, limit: int = 20) -> list[RunInfo]: ...

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


class MemoryStore:
    """Keeps journals as Python objects in this process: fastest, gone at exit."""

    def __init__(self) -> None:
        self._runs: dict[str, RunInfo] = {}
        self._events: dict[str, list[Event]] = {}
        self._leases: dict[str, tuple[str, float]] = {}  # run_id -> (worker, expires)
        self._lease_lock = threading.Lock()

    def write(self, events: Sequence[Event], run: RunInfo | None = None) -> None:
        if run is not None:
            self._runs[run.run_id] = run
        for event in events:
            self._events.setdefault(event.run_id, []).append(event)

    def events(self, run_id: str) -> list[Event]:
        try:
            return list(self._events[run_id])
        except KeyError:
            raise RunNotFoundError(f"no run {run_id!r} in this in-memory store") from None

    def get_run(self, run_id: str) -> RunInfo:
        try:
            return self._runs[run_id]
        except KeyError:
            raise RunNotFoundError(f"no run {run_id!r} in this in-memory store") from None

    def list_runs(self, limit: int = 20) -> list[RunInfo]:
        runs = sorted(self._runs.values(), key=lambda r: r.created, reverse=True)
        return runs[:limit]

    def _free(self, run_id: str, worker: str, now: float) -> bool:
        holder = self._leases.get(run_id)
        return holder is None or holder[0] == worker or holder[1] <= now

    def claim(self, run_id: str, worker: str, lease_seconds: float) -> bool:
        self.get_run(run_id)
        with self._lease_lock:
            now = time.time()
            if not self._free(run_id, worker, now):
                return False
            self._leases[run_id] = (worker, now + lease_seconds)
            return True

    def release(self, run_id: str, worker: str) -> None:
        with self._lease_lock:
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
        with self._lease_lock:
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
"""


def _encode(value: Any) -> str:
    """JSON text of an event's data: pydantic-core's encoder, ~4x faster than json.dumps."""
    from pydantic_core import to_json

    return to_json(value, fallback=str).decode()


def _event_row(event: Event) -> tuple[str, int, float, int, str, str]:
    """An event as the row every SQL store keeps: (run_id, seq, ts, step, type, data)."""
    return event.run_id, event.seq, event.ts, event.step, event.type, _encode(event.data())


def _decode_event(run_id: str, row: Sequence[Any], where: str) -> Event:
    """The event a stored (seq, ts, step, type, data) row holds; a row that cannot be
    read is a `StoreError` naming the run, the event and the store (`where`)."""
    seq, ts, step, kind, data = row
    try:
        d = json.loads(data)
        return event_from_dict(
            {**d, "type": kind, "run_id": run_id, "seq": seq, "ts": ts, "step": step}
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(
            f"run {run_id!r}: event {seq} ({kind}) in {where} is corrupted: {exc}"
        ) from exc


_RUN_COLUMNS = (
    "run_id, agent, model, input, status, created, updated, steps, input_tokens, "
    "output_tokens, cost, output"
)


_UPSERT_RUN = (
    f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT(run_id) DO UPDATE SET status=excluded.status, updated=excluded.updated, "
    "steps=excluded.steps, input_tokens=excluded.input_tokens, "
    "output_tokens=excluded.output_tokens, cost=excluded.cost, output=excluded.output"
)


def _row_to_info(row: tuple[Any, ...]) -> RunInfo:
    info = RunInfo(*row[:11])
    info.output = json.loads(row[11]) if row[11] is not None else None
    return info


class SQLiteStore:
    """Journals in one SQLite file (WAL mode), safe to share between runs of one process.

    Each `append` is one transaction. With WAL and ``synchronous=NORMAL`` a commit
    does not wait for the disk, yet the database cannot be corrupted by a crash;
    a power cut may lose the last commits, a killed process loses nothing.
    """

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_STORE_PATH) -> None:
        self.path = str(path)
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(runs)")}
            for column, kind in (("lease_owner", "TEXT"), ("lease_expires", "REAL")):
                if column not in columns:  # a journal written before leases existed
                    self._db.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open journal store {self.path!r}: {exc}") from exc
        self._lock = threading.Lock()

    def write(self, events: Sequence[Event], run: RunInfo | None = None) -> None:
        rows = [_event_row(e) for e in events]
        with self._lock:
            try:
                self._db.execute("BEGIN")
                if run is not None:
                    self._db.execute(
                        _UPSERT_RUN,
                        (
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
                            _encode(run.output),
                        ),
                    )
                self._db.executemany(
                    "INSERT INTO events (run_id, seq, ts, step, type, data) VALUES (?,?,?,?,?,?)",
                    rows,
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StoreError(f"cannot write to journal store {self.path!r}: {exc}") from exc

    def events(self, run_id: str) -> list[Event]:
        self.get_run(run_id)
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, ts, step, type, data FROM events WHERE run_id=? ORDER BY seq",
                (run_id,),
            ).fetchall()
        where = repr(self.path)
        return [_decode_event(run_id, row, where) for row in rows]

    def get_run(self, run_id: str) -> RunInfo:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id=?", (run_id,)
            ).fetchone()
        if row is None:
            raise RunNotFoundError(
                f"no run {run_id!r} in {self.path!r}; `pilothouse trace list` shows the runs"
            )
        return _row_to_info(row)

    def list_runs(self, limit: int = 20) -> list[RunInfo]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY created DESC LIMIT ?", (limit,)
            ).fetchall()
        return [_row_to_info(r) for r in rows]

    def _immediate(self, work: Callable[[], Any]) -> Any:
        """`work()` inside BEGIN IMMEDIATE: the database's write lock is taken before
        anything is read, so a check and the update it decides are one atomic step
        across every process sharing the file."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                result = work()
                self._db.execute("COMMIT")
                return result
            except BaseException as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"cannot update leases in {self.path!r}: {exc}") from exc
                raise

    def claim(self, run_id: str, worker: str, lease_seconds: float) -> bool:
        now = time.time()

        def take() -> bool:
            row = self._db.execute(
                "SELECT lease_owner, lease_expires FROM runs WHERE run_id=?", (run_id,)
            ).fetchone()
            if row is None:
                raise RunNotFoundError(f"no run {run_id!r} in {self.path!r}")
            owner, expires = row
            if owner is not None and owner != worker and expires > now:
                return False
            self._db.execute(
                "UPDATE runs SET lease_owner=?, lease_expires=? WHERE run_id=?",
                (worker, now + lease_seconds, run_id),
            )
            return True

        return bool(self._immediate(take))

    def release(self, run_id: str, worker: str) -> None:
        with self._lock:
            try:
                self._db.execute(
                    "UPDATE runs SET lease_owner=NULL, lease_expires=NULL "
                    "WHERE run_id=? AND lease_owner=?",
                    (run_id, worker),
                )
            except sqlite3.Error as exc:
                raise StoreError(f"cannot release run {run_id!r} in {self.path!r}: {exc}") from exc

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

        def take() -> str | None:
            row = self._db.execute(query, (*statuses, now, agent, agent, now - idle_for)).fetchone()
            if row is None:
                return None
            self._db.execute(
                "UPDATE runs SET lease_owner=?, lease_expires=? WHERE run_id=?",
                (worker, now + lease_seconds, row[0]),
            )
            return str(row[0])

        result: str | None = self._immediate(take)
        return result

    def close(self) -> None:
        with self._lock:
            self._db.close()


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
    if store is None:
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
    """

    __slots__ = (
        "_info_dirty",
        "_last_write",
        "_pending",
        "_seq",
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
        lease: RunLease | None = None,
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

    def commit(self) -> None:
        """Write queued events (and a changed index row) in one transaction, now.

        On failure (`StoreError`) nothing is dropped: the batch stays queued for the
        next commit. `LeaseLostError` if another process took the run over.
        """
        if self._pending or self._info_dirty:
            lease = self.lease
            info = self.info if self._info_dirty else None
            if lease is None or lease.held:
                if lease is not None and lease.lost:
                    raise lease.lost_error()
                self.store.write(self._pending, info)
            else:  # a new run's first write takes its lease in the same transaction
                self.store.write(self._pending, info, lease=lease.terms())
                lease.held = True
            self._pending = []
            self._info_dirty = False
        self._last_write = time.monotonic()

    def due(self) -> bool:
        """Whether `flush_interval` has passed since the last write (time to commit)."""
        return time.monotonic() - self._last_write >= self.flush_interval
