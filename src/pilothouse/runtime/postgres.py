"""The PostgreSQL journal store: one journal shared by many worker processes or hosts.

`open_store("postgresql://user@host:port/db")` (or ``$PILOTHOUSE_STORE``) returns a
`PostgresStore`. It keeps the same rows as `SQLiteStore`, encoded by the same
helpers of `pilothouse.runtime.journal`: an index row per run and one row per event
under a ``(run_id, seq)`` primary key, so an event can be appended but never
rewritten. Each `write` is one transaction (the index row upserted with the events),
sent as one statement: one round trip to the server per commit point.

What PostgreSQL adds over a SQLite file is sharing between machines, and with it the
need for leases: `claim_next` finds and leases a stopped run in one statement
(``SELECT ... FOR UPDATE SKIP LOCKED`` inside an ``UPDATE``), so workers draining
stopped runs (`pilothouse.runtime.workers`) never continue the same run twice.

psycopg 3 is imported when a store is opened, never by ``import pilothouse``; it comes
with the ``postgres`` extra (``pip install 'pilothouse[postgres]'``).

Lease and idle times are compared with this process's clock (`time.time()`), like
the events' own timestamps: hosts sharing one server need synchronised clocks (NTP),
which any fleet already has.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pilothouse.events import Event
from pilothouse.exceptions import RunNotFoundError, StoreError
from pilothouse.runtime.journal import (
    _RUN_COLUMNS,
    RunInfo,
    _decode_event,
    _encode,
    _event_row,
    _row_to_info,
)

if TYPE_CHECKING:
    import psycopg

T = TypeVar("T")

_SCHEMA = """
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
"""

# Any constant: serialises schema creation when several processes open a new database.
_SCHEMA_LOCK = 0x70696C6F

_UPSERT_RUN = (
    f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
    "ON CONFLICT (run_id) DO UPDATE SET status=excluded.status, updated=excluded.updated, "
    "steps=excluded.steps, input_tokens=excluded.input_tokens, "
    "output_tokens=excluded.output_tokens, cost=excluded.cost, output=excluded.output"
)
_INSERT_EVENT = "INSERT INTO events (run_id, seq, ts, step, type, data) VALUES (%s,%s,%s,%s,%s,%s)"
# Above this many events a write is a multi-statement transaction (a statement takes
# at most 65,535 parameters); below, one statement.
_ONE_STATEMENT_EVENTS = 500


@functools.lru_cache(maxsize=64)
def _write_sql(events: int, with_run: bool) -> str:
    """One statement writing `events` events (and the index row): one round trip and,
    in autocommit mode, one transaction. The upsert rides in a WITH clause; the events'
    foreign key is checked at the end of the statement, after the run row is in.

    Numbered ($n) placeholders for a `RawCursor`: psycopg does not parse the query
    (it re-parses %s queries longer than a few KB on every call: milliseconds for a 40-event
    write), and the server prepares each text once it is reused.
    """
    first = 13 if with_run else 1
    rows = ",".join(
        "(" + ",".join(f"${n}" for n in range(start, start + 6)) + ")"
        for start in range(first, first + 6 * events, 6)
    )
    insert = f"INSERT INTO events (run_id, seq, ts, step, type, data) VALUES {rows}"
    if not with_run:
        return insert
    upsert = _UPSERT_RUN.replace("%s", "{}").format(*(f"${n}" for n in range(1, 13)))
    if not events:
        return upsert
    return f"WITH run AS ({upsert} RETURNING run_id) {insert}"


_CLAIM = (
    "UPDATE runs SET lease_owner=%(worker)s, lease_expires=%(expires)s WHERE run_id=%(run_id)s "
    "AND (lease_owner IS NULL OR lease_owner=%(worker)s OR lease_expires <= %(now)s) "
    "RETURNING run_id"
)
# The inner SELECT locks the candidate row (skipping rows another worker is claiming
# right now); if another worker committed a claim on it meanwhile, PostgreSQL re-checks
# the lease condition on the new row version and moves on. One statement, one claim.
_CLAIM_NEXT = (
    "UPDATE runs SET lease_owner=%(worker)s, lease_expires=%(expires)s WHERE run_id = ("
    " SELECT r.run_id FROM runs r WHERE r.status = ANY(%(statuses)s)"
    " AND (r.lease_expires IS NULL OR r.lease_expires <= %(now)s)"
    " AND (%(agent)s::text IS NULL OR r.agent = %(agent)s::text)"
    " AND COALESCE((SELECT e.ts FROM events e WHERE e.run_id = r.run_id"
    "   ORDER BY e.seq DESC LIMIT 1), r.updated) <= %(idle_before)s"
    " ORDER BY r.created LIMIT 1 FOR UPDATE OF r SKIP LOCKED"
    ") RETURNING run_id"
)


def _safe_dsn(dsn: str) -> str:
    """The DSN as it may appear in an error message: no password, no other secrets."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(dsn)
    except Exception:
        return "postgresql://<unparsable URL>"
    user = f"{parts['user']}@" if parts.get("user") else ""
    host = str(parts.get("host") or "localhost")
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{host}{port}/{parts.get('dbname') or ''}"


class PostgresStore:
    """Journals in a PostgreSQL database, shared by any number of processes and hosts.

    One connection per store object (autocommit; explicit transactions where a write
    has several statements), guarded by a lock so the runs of one process can share
    it, as `open_store` does. A connection the server dropped is reopened at the next
    call; the call that saw it fail raises `StoreError` (a write is never retried
    blindly: it may have committed).
    """

    def __init__(self, dsn: str, *, connect_timeout: float = 10.0) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise StoreError(
                "the PostgreSQL journal store needs psycopg 3: pip install 'pilothouse[postgres]'"
            ) from exc
        self._psycopg = psycopg
        self.dsn = dsn
        self.where = _safe_dsn(dsn)
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._db: psycopg.Connection[tuple[Any, ...]] | None = None
        with self._lock:
            db = self._connection()
            try:
                with db.transaction():
                    db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                    db.execute(_SCHEMA)
            except psycopg.Error as exc:
                raise StoreError(
                    f"cannot create the journal tables in {self.where}: {exc}"
                ) from exc

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        """The open connection, (re)connecting if there is none or the server dropped it."""
        if self._db is not None and not self._db.closed and not self._db.broken:
            return self._db
        psycopg = self._psycopg
        try:
            from psycopg.conninfo import conninfo_to_dict

            given = conninfo_to_dict(self.dsn)
        except psycopg.Error as exc:
            raise StoreError(f"invalid PostgreSQL URL for the journal store: {exc}") from exc
        extra: dict[str, Any] = {"application_name": "pilothouse"}
        if "connect_timeout" not in given:
            extra["connect_timeout"] = max(1, round(self._connect_timeout))
        try:
            self._db = psycopg.connect(self.dsn, autocommit=True, **extra)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to the PostgreSQL journal store {self.where}: {str(exc).strip()}"
            ) from exc
        return self._db

    def _run(self, action: str, work: Callable[[psycopg.Connection[tuple[Any, ...]]], T]) -> T:
        """`work(connection)` under the lock; database errors become `StoreError`s."""
        with self._lock:
            db = self._connection()
            try:
                return work(db)
            except self._psycopg.Error as exc:
                raise StoreError(f"cannot {action} in {self.where}: {exc}") from exc

    def write(self, events: Sequence[Event], run: RunInfo | None = None) -> None:
        if not events and run is None:
            return
        rows = [_event_row(e) for e in events]
        head: list[Any] = []
        if run is not None:
            head = [
                run.run_id,
                run.agent,
                run.model,
                _encode(run.input),
                run.status,
                run.created,
                run.updated,
                run.steps,
                run.input_tokens,
                run.output_tokens,
                run.cost,
                _encode(run.output),
            ]

        def work(db: psycopg.Connection[tuple[Any, ...]]) -> None:
            if len(rows) <= _ONE_STATEMENT_EVENTS:
                params = head + [value for row in rows for value in row]
                with self._psycopg.RawCursor(db) as raw:
                    raw.execute(_write_sql(len(rows), run is not None), params)
                return
            with db.transaction(), db.cursor() as cur:
                if run is not None:
                    cur.execute(_UPSERT_RUN, head)
                cur.executemany(_INSERT_EVENT, rows)

        run_id = run.run_id if run is not None else rows[0][0]
        self._run(f"write run {run_id!r}", work)

    def events(self, run_id: str) -> list[Event]:
        self.get_run(run_id)
        rows = self._run(
            f"read run {run_id!r}",
            lambda db: db.execute(
                "SELECT seq, ts, step, type, data FROM events WHERE run_id=%s ORDER BY seq",
                (run_id,),
            ).fetchall(),
        )
        return [_decode_event(run_id, row, self.where) for row in rows]

    def get_run(self, run_id: str) -> RunInfo:
        row = self._run(
            f"read run {run_id!r}",
            lambda db: db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id=%s", (run_id,)
            ).fetchone(),
        )
        if row is None:
            raise RunNotFoundError(
                f"no run {run_id!r} in {self.where}; `pilothouse trace list` shows the runs"
            )
        return self._info(row)

    def list_runs(self, limit: int = 20) -> list[RunInfo]:
        rows = self._run(
            "list runs",
            lambda db: db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY created DESC LIMIT %s", (limit,)
            ).fetchall(),
        )
        return [self._info(r) for r in rows]

    def _info(self, row: tuple[Any, ...]) -> RunInfo:
        try:
            info = _row_to_info(row)
            info.input = json.loads(info.input)  # kept as JSON: PostgreSQL text cannot hold NUL
        except (ValueError, TypeError) as exc:
            raise StoreError(
                f"run {row[0]!r}: its index row in {self.where} is corrupted: {exc}"
            ) from exc
        return info

    def claim(self, run_id: str, worker: str, lease_seconds: float) -> bool:
        now = time.time()
        params = {"worker": worker, "expires": now + lease_seconds, "run_id": run_id, "now": now}
        row = self._run(f"claim run {run_id!r}", lambda db: db.execute(_CLAIM, params).fetchone())
        if row is None:
            self.get_run(run_id)  # RunNotFoundError if there is no such run
            return False
        return True

    def release(self, run_id: str, worker: str) -> None:
        self._run(
            f"release run {run_id!r}",
            lambda db: db.execute(
                "UPDATE runs SET lease_owner=NULL, lease_expires=NULL "
                "WHERE run_id=%s AND lease_owner=%s",
                (run_id, worker),
            ),
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
        params = {
            "worker": worker,
            "expires": now + lease_seconds,
            "statuses": list(statuses),
            "now": now,
            "agent": agent,
            "idle_before": now - idle_for,
        }
        row = self._run("claim a run", lambda db: db.execute(_CLAIM_NEXT, params).fetchone())
        return None if row is None else str(row[0])

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self.where!r})"
