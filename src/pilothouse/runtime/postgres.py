"""The PostgreSQL journal store: one journal shared by many worker processes or hosts.

`open_store("postgresql://user@host:port/db")` (or ``$PILOTHOUSE_STORE``) returns a
`PostgresStore`. It keeps the same rows as `SQLiteStore`, encoded by the same
helpers of `pilothouse.runtime.rows`: an index row per run and one row per event
under a ``(run_id, seq)`` primary key, so an event can be appended but never
rewritten. Each `write` is one transaction (the index row upserted with the events),
sent as one statement: one round trip to the server per commit point.

What PostgreSQL adds over a SQLite file is sharing between machines, and with it the
need for leases: `claim_next` finds and leases a stopped run in one statement
(``SELECT ... FOR UPDATE SKIP LOCKED`` inside an ``UPDATE``), so workers draining
stopped runs (`pilothouse.runtime.workers`) never continue the same run twice.
Sessions likewise: every write that appends to a session first locks the session's
row (``SELECT ... FOR UPDATE``), so two turns that begin at once are checked one
after the other and the second sees the first's lease; seqs never clash either.

psycopg 3 is imported when a store is opened, never by ``import pilothouse``; it comes
with the ``postgres`` extra (``pip install 'pilothouse[postgres]'``).

Lease and idle times are compared with this process's clock (`time.time()`), like
the events' own timestamps: hosts sharing one server need synchronised clocks (NTP),
which any fleet already has.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

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
    session_exists,
    session_info_of,
    session_not_found,
    unstored_rows,
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
    lease_expires DOUBLE PRECISION,
    parent_run_id TEXT,
    root_run_id TEXT,
    session_id TEXT
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
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    created DOUBLE PRECISION NOT NULL,
    updated DOUBLE PRECISION NOT NULL,
    messages INTEGER NOT NULL DEFAULT 0,
    metadata TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS session_messages (
    session_id TEXT NOT NULL REFERENCES sessions(session_id),
    seq INTEGER NOT NULL,
    ts DOUBLE PRECISION NOT NULL,
    run_id TEXT,
    n INTEGER,
    author TEXT NOT NULL DEFAULT '',
    data TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE UNIQUE INDEX IF NOT EXISTS session_messages_turn ON session_messages(session_id, run_id, n);
CREATE INDEX IF NOT EXISTS sessions_updated ON sessions(updated);
"""
# Columns added to `runs` after its first version: a database created by an older
# version gains them when a store opens it (looked up first: ALTER TABLE takes a lock
# that would wait for every open transaction on the table, even to add nothing).
_ADDEDRUN_COLUMNS = (
    ("lease_owner", "TEXT"),
    ("lease_expires", "DOUBLE PRECISION"),
    ("parent_run_id", "TEXT"),
    ("root_run_id", "TEXT"),
    ("session_id", "TEXT"),
)
_RUN_INDEXES = """
CREATE INDEX IF NOT EXISTS runs_parent ON runs(parent_run_id);
CREATE INDEX IF NOT EXISTS runs_session ON runs(session_id, created);
"""
# Another run of the session holding a live lease (a turn in progress).
_BUSY = (
    "SELECT run_id FROM runs WHERE session_id=%s AND run_id<>%s AND lease_owner IS NOT NULL "
    "AND lease_expires > %s ORDER BY created LIMIT 1"
)

# Any constant: serialises schema creation when several processes open a new database.
_SCHEMA_LOCK = 0x70696C6F

# The tree and session columns are set on insert only (see journal.py's upserts).
_UPSERT_RUN = (
    f"INSERT INTO runs ({RUN_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
    "ON CONFLICT (run_id) DO UPDATE SET status=excluded.status, updated=excluded.updated, "
    "steps=excluded.steps, input_tokens=excluded.input_tokens, "
    "output_tokens=excluded.output_tokens, cost=excluded.cost, output=excluded.output"
)
# A new run's first write also takes its lease (`write(..., lease=...)`).
_UPSERT_RUN_LEASED = (
    f"INSERT INTO runs ({RUN_COLUMNS}, lease_owner, lease_expires) "
    "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
    "ON CONFLICT (run_id) DO UPDATE SET status=excluded.status, updated=excluded.updated, "
    "steps=excluded.steps, input_tokens=excluded.input_tokens, "
    "output_tokens=excluded.output_tokens, cost=excluded.cost, output=excluded.output, "
    "lease_owner=excluded.lease_owner, lease_expires=excluded.lease_expires"
)
_INSERT_EVENT = "INSERT INTO events (run_id, seq, ts, step, type, data) VALUES (%s,%s,%s,%s,%s,%s)"
# Above this many events a write is a multi-statement transaction (a statement takes
# at most 65,535 parameters); below, one statement.
_ONE_STATEMENT_EVENTS = 500


@functools.lru_cache(maxsize=64)
def _write_sql(events: int, with_run: bool, leased: bool = False) -> str:
    """One statement writing `events` events (and the index row): one round trip and,
    in autocommit mode, one transaction. The upsert rides in a WITH clause; the events'
    foreign key is checked at the end of the statement, after the run row is in.

    Numbered ($n) placeholders for a `RawCursor`: psycopg does not parse the query
    (it re-parses %s queries longer than a few KB on every call: milliseconds for a 40-event
    write), and the server prepares each text once it is reused.
    """
    head = (17 if leased else 15) if with_run else 0
    first = head + 1
    rows = ",".join(
        "(" + ",".join(f"${n}" for n in range(start, start + 6)) + ")"
        for start in range(first, first + 6 * events, 6)
    )
    insert = f"INSERT INTO events (run_id, seq, ts, step, type, data) VALUES {rows}"
    if not with_run:
        return insert
    template = _UPSERT_RUN_LEASED if leased else _UPSERT_RUN
    upsert = template.replace("%s", "{}").format(*(f"${n}" for n in range(1, head + 1)))
    if not events:
        return upsert
    return f"WITH run AS ({upsert} RETURNING run_id) {insert}"


_CLAIM = (
    "UPDATE runs SET lease_owner=%(worker)s, lease_expires=%(expires)s WHERE run_id=%(run_id)s "
    "AND (lease_owner IS NULL OR lease_owner=%(worker)s OR lease_expires <= %(now)s "
    "OR lease_owner=%(take_from)s) "
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


def _append_rows(
    db: psycopg.Connection[tuple[Any, ...]],
    session_id: str,
    first: int,
    messages: Sequence[tuple[int | None, str]],
    run_id: str | None,
    author: str,
) -> int:
    """Append encoded messages (n None: outside a turn) at seqs `first`, `first`+1, ...
    and move the session's count and `updated`, inside the caller's transaction (which
    holds the session's row lock); the new count."""
    if not messages:
        return first
    now = time.time()
    with db.cursor() as cur:
        cur.executemany(
            "INSERT INTO session_messages (session_id, seq, ts, run_id, n, author, data) "
            "VALUES (%s,%s,%s,%s,%s,%s,%s)",
            [
                (session_id, first + i, now, run_id, n, author, text)
                for i, (n, text) in enumerate(messages)
            ],
        )
    count = first + len(messages)
    db.execute(
        "UPDATE sessions SET messages=%s, updated=%s WHERE session_id=%s",
        (count, now, session_id),
    )
    return count


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


def _mask(text: str) -> str:
    """`text` (an error message) with any password it quotes from a URL or conninfo
    string replaced by ``***``: a message may reach a log or a screen."""
    text = re.sub(r"(://[^:/@\s'\"]*:)[^@\s'\"]*@", r"\1***@", text)
    return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", text, flags=re.IGNORECASE)


def _pg_fix(exc: BaseException) -> str:
    """What a psycopg or OS error means for the journal, and what to do about it."""
    state = str(getattr(exc, "sqlstate", None) or "")
    if state == "53100":
        return (
            "the database server's disk is full: free space on the server, then the same "
            "write can be made again"
        )
    if state.startswith(("08", "57P")) or (not state and not _is_statement_error(exc)):
        return (
            "the connection to the server was lost (the server restarted, or ended this "
            "session): the next call opens a new connection"
        )
    if state == "53300":
        return "the server has no free connection: raise its max_connections or run fewer workers"
    if state in ("40001", "40P01"):
        return "a concurrent transaction got in the way: try again"
    if state == "57014":
        return "the server cancelled the statement (statement_timeout?): try again"
    if state == "25006":
        return "the server is read-only (a standby?): point the store at the primary"
    if state.startswith("42501"):
        return "the database user lacks privileges on the journal tables: grant them"
    return ""


def _is_statement_error(exc: BaseException) -> bool:
    """Whether `exc` is about one statement (its data, a constraint, its SQL), leaving
    the connection usable; other errors (a lost connection, a server shutting down)
    mean the connection must be replaced."""
    import psycopg

    return isinstance(
        exc, (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError)
    ) and not isinstance(exc, psycopg.OperationalError)


def _duplicate_event(exc: BaseException) -> bool:
    """Whether a failed write met an event already stored at one of its (run_id, seq)."""
    import psycopg

    return (
        isinstance(exc, psycopg.errors.UniqueViolation)
        and exc.diag.constraint_name == "events_pkey"
    )


class PostgresStore:
    """Journals in a PostgreSQL database, shared by any number of processes and hosts.

    One connection per store object (autocommit; explicit transactions where a write
    has several statements), guarded by a lock so the runs of one process can share
    it, as `open_store` does. Every failure is a `StoreError` naming the server (its
    URL without the password) and the fix. A call that fails on the connection itself
    (the server restarted or ended the session) drops it, and the next call opens a
    new one. A write whose answer was lost may have committed: writing the same batch
    again is safe (events already stored exactly as in the batch are skipped).
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

        def create(db: psycopg.Connection[tuple[Any, ...]]) -> None:
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                db.execute(_SCHEMA)
                have = {
                    row[0]
                    for row in db.execute(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_schema = current_schema() AND table_name = 'runs'"
                    )
                }
                for name, kind in _ADDEDRUN_COLUMNS:
                    if name not in have:  # a database written by an older version
                        db.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
                db.execute(_RUN_INDEXES)

        self._run("create the journal tables", create)

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        """The open connection, (re)connecting if there is none or the server dropped it."""
        if self._db is not None and not self._db.closed and not self._db.broken:
            return self._db
        psycopg = self._psycopg
        try:
            from psycopg.conninfo import conninfo_to_dict

            given = conninfo_to_dict(self.dsn)
        except psycopg.Error as exc:
            raise StoreError(
                f"invalid PostgreSQL URL for the journal store: {_mask(str(exc))}"
            ) from exc
        extra: dict[str, Any] = {"application_name": "pilothouse"}
        if "connect_timeout" not in given:
            extra["connect_timeout"] = max(1, round(self._connect_timeout))
        try:
            self._db = psycopg.connect(self.dsn, autocommit=True, **extra)
        except (psycopg.Error, OSError) as exc:
            raise StoreError(
                f"cannot connect to the PostgreSQL journal store {self.where}: "
                f"{_mask(str(exc).strip())}"
            ) from exc
        return self._db

    def _drop(self, db: psycopg.Connection[tuple[Any, ...]]) -> None:
        """Close a connection a failure left unusable; the next call opens a new one."""
        with contextlib.suppress(Exception):
            db.close()
        if self._db is db:
            self._db = None

    def _run(self, action: str, work: Callable[[psycopg.Connection[tuple[Any, ...]]], T]) -> T:
        """`work(connection)` under the lock. Database and OS errors become `StoreError`s
        naming the server and the fix; a connection the error left unusable (or in a
        transaction) is dropped, so the next call starts on a new one."""
        with self._lock:
            db = self._connection()
            try:
                return work(db)
            except (self._psycopg.Error, OSError) as exc:
                idle = self._psycopg.pq.TransactionStatus.IDLE
                if not _is_statement_error(exc) or db.broken or db.info.transaction_status != idle:
                    self._drop(db)
                detail, fix = _mask(str(exc).strip()), _pg_fix(exc)
                raise StoreError(
                    f"cannot {action} in {self.where}: {detail}" + (f"; {fix}" if fix else "")
                ) from exc

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
        if not events and run is None and session is None:
            return
        rows = [event_row(e) for e in events]
        head: list[Any] = []
        if run is not None:
            head = [
                run.run_id,
                run.agent,
                run.model,
                encode_json(run.input),
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
            ]
            if lease is not None:
                head += lease
        if run is not None:
            run_id = run.run_id
        else:
            run_id = rows[0][0] if rows else session.run_id if session is not None else "?"

        def work(db: psycopg.Connection[tuple[Any, ...]]) -> None:
            try:
                self._insert(db, rows, head, lease is not None, session)
            except self._psycopg.errors.UniqueViolation as exc:
                if not _duplicate_event(exc):
                    raise
                self._insert_unstored(db, run_id, rows, head, lease is not None, session)

        self._run(f"write run {run_id!r}", work)

    def _insert(
        self,
        db: psycopg.Connection[tuple[Any, ...]],
        rows: Sequence[EventRow],
        head: list[Any],
        leased: bool,
        session: SessionWrite | None = None,
    ) -> None:
        """The write's one transaction: the index row (`head`, with the lease if
        `leased`) and the events; one statement unless the batch is very large. With
        a session write, a transaction around the session checks (its row locked
        first), that statement and the session's new messages."""
        if session is not None:
            with db.transaction():
                first, appended = self._session_plan(db, session)
                self._insert(db, rows, head, leased)
                if appended:
                    _append_rows(db, session.session_id, first, appended, session.run_id, "")
            return
        if not rows and not head:
            return
        if len(rows) <= _ONE_STATEMENT_EVENTS:
            params = head + [value for row in rows for value in row]
            with self._psycopg.RawCursor(db) as raw:
                raw.execute(_write_sql(len(rows), bool(head), leased), params)
            return
        with db.transaction(), db.cursor() as cur:
            if head:
                cur.execute(_UPSERT_RUN_LEASED if leased else _UPSERT_RUN, head)
            cur.executemany(_INSERT_EVENT, rows)

    def _insert_unstored(
        self,
        db: psycopg.Connection[tuple[Any, ...]],
        run_id: str,
        rows: Sequence[EventRow],
        head: list[Any],
        leased: bool,
        session: SessionWrite | None,
    ) -> None:
        """After a write met stored events: write the rest of the batch if those are
        the batch's own events (an earlier attempt that committed, its answer lost),
        else `WriteConflictError` (see `unstored_rows`)."""

        def stored(run: str, seqs: list[int]) -> list[tuple[Any, ...]]:
            return db.execute(
                "SELECT seq, ts, step, type, data FROM events WHERE run_id=%s AND seq = ANY(%s)",
                (run, seqs),
            ).fetchall()

        try:
            self._insert(db, unstored_rows(rows, stored, self.where), head, leased, session)
        except self._psycopg.errors.UniqueViolation as exc:
            if not _duplicate_event(exc):
                raise
            # Another writer stored events at these numbers since the first try.
            raise conflict_error(run_id, (r[1] for r in rows), self.where) from exc

    def _session_plan(
        self, db: psycopg.Connection[tuple[Any, ...]], write: SessionWrite
    ) -> tuple[int, list[tuple[int, str]]]:
        """Inside the write's transaction: lock the session's row (so concurrent writes
        into the session, and the begin checks of concurrent turns, run one after the
        other), check it exists and, for a turn that begins, that no other run of it
        holds a live lease. Returns the session's message count (the next seq) and the
        (n, text) of the messages not stored yet."""
        row = db.execute(
            "SELECT messages FROM sessions WHERE session_id=%s FOR UPDATE", (write.session_id,)
        ).fetchone()
        if row is None:
            raise session_not_found(write.session_id, self.where)
        if write.begin:
            # A new statement, a new snapshot: a turn that began while this one waited
            # for the lock has committed its lease, and is seen here.
            holder = db.execute(_BUSY, (write.session_id, write.run_id, time.time())).fetchone()
            if holder is not None:
                raise session_busy(write.session_id, str(holder[0]), self.where)
        if not write.messages:
            return int(row[0]), []
        ns = [n for n, _ in write.messages]
        stored = dict(
            db.execute(
                "SELECT n, data FROM session_messages WHERE session_id=%s AND run_id=%s "
                "AND n BETWEEN %s AND %s",
                (write.session_id, write.run_id, min(ns), max(ns)),
            ).fetchall()
        )
        return int(row[0]), new_session_messages(write, stored, encode_message, self.where)

    def events(self, run_id: str) -> list[Event]:
        def read(db: psycopg.Connection[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
            self._find(db, run_id, "run_id")
            return db.execute(
                "SELECT seq, ts, step, type, data FROM events WHERE run_id=%s ORDER BY seq",
                (run_id,),
            ).fetchall()

        rows = self._run(f"read run {run_id!r}", read)
        return [decode_event(run_id, row, self.where) for row in rows]

    def _find(
        self, db: psycopg.Connection[tuple[Any, ...]], run_id: str, columns: str
    ) -> tuple[Any, ...]:
        """The run's index row (`columns` of it); `RunNotFoundError` if there is no such
        run, a `StoreError` if its events exist without the row (a damaged index)."""
        query = f"SELECT {columns} FROM runs WHERE run_id=%s"
        row = db.execute(query, (run_id,)).fetchone()
        if row is not None:
            return row
        if db.execute("SELECT 1 FROM events WHERE run_id=%s LIMIT 1", (run_id,)).fetchone():
            # Each statement reads its own snapshot (autocommit, READ COMMITTED): the
            # run's first write (row and events, one transaction) may have committed
            # between the two. Only a row still missing now is damage.
            row = db.execute(query, (run_id,)).fetchone()
            if row is not None:
                return row
            raise StoreError(index_damaged(run_id, self.where))
        raise RunNotFoundError(
            f"no run {run_id!r} in {self.where}; `pilothouse trace list` shows the runs"
        )

    def get_run(self, run_id: str) -> RunInfo:
        row = self._run(f"read run {run_id!r}", lambda db: self._find(db, run_id, RUN_COLUMNS))
        return self._info(row)

    def list_runs(
        self,
        limit: int | None = 20,
        *,
        session_id: str | None = None,
        status: RunStatus | None = None,
    ) -> list[RunInfo]:
        check_window(limit)
        where, params = run_filter(session_id, status, "%s")
        order = "created DESC" if session_id is None else "created, run_id"
        query = f"SELECT {RUN_COLUMNS} FROM runs{where} ORDER BY {order} LIMIT %s"
        rows = self._run("list runs", lambda db: db.execute(query, (*params, limit)).fetchall())
        return [self._info(r) for r in rows]

    def children(self, run_id: str) -> list[RunInfo]:
        rows = self._run(
            f"list the children of run {run_id!r}",
            lambda db: db.execute(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE parent_run_id=%s ORDER BY created, run_id",
                (run_id,),
            ).fetchall(),
        )
        return [self._info(r) for r in rows]

    def create_session(
        self, session_id: str, metadata: dict[str, Any] | None = None
    ) -> SessionInfo:
        check_session_id(session_id)
        text = encode_metadata(metadata)
        now = time.time()
        row = self._run(
            f"create session {session_id!r}",
            lambda db: db.execute(
                "INSERT INTO sessions (session_id, created, updated, messages, metadata) "
                "VALUES (%s,%s,%s,0,%s) ON CONFLICT (session_id) DO NOTHING RETURNING 1",
                (session_id, now, now, text),
            ).fetchone(),
        )
        if row is None:
            raise session_exists(session_id, self.where)
        return SessionInfo(session_id, now, now, 0, decode_metadata(text))

    def _session_row(
        self, db: psycopg.Connection[tuple[Any, ...]], session_id: str, lock: bool = False
    ) -> SessionInfo:
        query = f"SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id=%s"
        row = db.execute(query + (" FOR UPDATE" if lock else ""), (session_id,)).fetchone()
        if row is None:
            raise session_not_found(session_id, self.where)
        return self._session_info(row)

    def _session_info(self, row: Sequence[Any]) -> SessionInfo:
        try:
            return session_info_of(row)
        except (ValueError, TypeError) as exc:
            raise StoreError(
                f"session {row[0]!r}: its row in {self.where} is corrupted: {exc}"
            ) from exc

    def get_session(self, session_id: str) -> SessionInfo:
        check_session_id(session_id)
        return self._run(
            f"read session {session_id!r}", lambda db: self._session_row(db, session_id)
        )

    def list_sessions(self, limit: int | None = 20, offset: int = 0) -> list[SessionInfo]:
        check_window(limit, offset)
        rows = self._run(
            "list sessions",
            lambda db: db.execute(
                f"SELECT {SESSION_COLUMNS} FROM sessions "
                "ORDER BY updated DESC, session_id DESC LIMIT %s OFFSET %s",
                (limit, offset),
            ).fetchall(),
        )
        return [self._session_info(r) for r in rows]

    def session_messages(
        self, session_id: str, *, start: int = 0, limit: int | None = None
    ) -> list[SessionMessage]:
        check_session_id(session_id)
        check_page(start, limit)

        def read(db: psycopg.Connection[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
            self._session_row(db, session_id)
            return db.execute(
                "SELECT seq, ts, run_id, author, data FROM session_messages "
                "WHERE session_id=%s AND seq >= %s ORDER BY seq LIMIT %s",
                (session_id, start, limit),
            ).fetchall()

        rows = self._run(f"read session {session_id!r}", read)
        return [
            SessionMessage(seq, message_of(data, session_id, seq, self.where), run_id, ts, author)
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

        def append(db: psycopg.Connection[tuple[Any, ...]]) -> int:
            with db.transaction():
                first = self._session_row(db, session_id, lock=True).messages
                return _append_rows(db, session_id, first, encoded, run_id, author)

        return self._run(f"append to session {session_id!r}", append)

    def _info(self, row: tuple[Any, ...]) -> RunInfo:
        try:
            info = run_info_of(row)
            info.input = json.loads(info.input)  # kept as JSON: PostgreSQL text cannot hold NUL
        except (ValueError, TypeError) as exc:
            raise StoreError(
                f"run {row[0]!r}: its index row in {self.where} is corrupted: {exc}"
            ) from exc
        return info

    def claim(
        self, run_id: str, worker: str, lease_seconds: float, *, take_from: str | None = None
    ) -> bool:
        now = time.time()
        params = {
            "worker": worker,
            "expires": now + lease_seconds,
            "run_id": run_id,
            "now": now,
            "take_from": take_from,
        }

        def take(db: psycopg.Connection[tuple[Any, ...]]) -> bool:
            if db.execute(_CLAIM, params).fetchone() is not None:
                return True
            self._find(db, run_id, "run_id")  # RunNotFoundError if there is no such run
            return False

        return self._run(f"claim run {run_id!r}", take)

    def lease(self, run_id: str) -> tuple[str, float] | None:
        owner, expires = self._run(
            f"read the lease of run {run_id!r}",
            lambda db: self._find(db, run_id, "lease_owner, lease_expires"),
        )
        if owner is None or expires is None or expires <= time.time():
            return None
        return str(owner), float(expires)

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
            db, self._db = self._db, None
            if db is not None:
                try:
                    db.close()
                except (self._psycopg.Error, OSError) as exc:
                    raise StoreError(f"cannot close the connection to {self.where}: {exc}") from exc

    def __repr__(self) -> str:
        return f"PostgresStore({self.where!r})"
