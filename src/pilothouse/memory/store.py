"""Long-term memory: facts a principal's runs keep across sessions, in the run's store.

A fact is a key and a value that a run wrote (or a person, through the application),
with the run and the call (`run:step:index`, the journal's idempotency key) that wrote
it, when, and the fact it `supersedes`. Nothing is overwritten: writing a key again
adds a fact that supersedes the current one, so history is kept and a stale value
never outranks a new one (a superseded fact leaves the search index). Recall is by key
(the current fact, or its history) or by search (FTS5's BM25 on SQLite).

Facts live beside the journal: the same SQLite file (its own connection and tables,
`memory_facts` and `memory_fts`), an in-process SQLite database for a `MemoryStore`, or
the same PostgreSQL server (`memory/postgres.py`). Every read and write names a
principal, and the SQL filters on it: no call can reach another principal's facts.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pilothouse.exceptions import ConfigurationError, StoreError
from pilothouse.memory.facts import MAX_FACTS, Author, Fact, FactStore, check_fact, fts_query

__all__ = ["SQLiteFacts", "open_facts"]

T = TypeVar("T")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS memory_facts (
    fact_id INTEGER PRIMARY KEY AUTOINCREMENT,
    principal TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    author TEXT NOT NULL CHECK (author IN ('agent', 'person')),
    by_name TEXT,
    run_id TEXT,
    event TEXT,
    ts REAL NOT NULL,
    supersedes INTEGER REFERENCES memory_facts(fact_id),
    current INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS memory_facts_key ON memory_facts(principal, key, fact_id);
CREATE UNIQUE INDEX IF NOT EXISTS memory_facts_current ON memory_facts(principal, key)
    WHERE current = 1;
CREATE UNIQUE INDEX IF NOT EXISTS memory_facts_event ON memory_facts(run_id, event)
    WHERE event IS NOT NULL;
CREATE VIRTUAL TABLE IF NOT EXISTS memory_fts USING fts5(principal UNINDEXED, key, value);
"""

_COLUMNS = "fact_id, principal, key, value, author, by_name, run_id, event, ts, supersedes, current"


def _fact(row: tuple[Any, ...]) -> Fact:
    return Fact(
        int(row[0]),
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        float(row[8]),
        None if row[9] is None else int(row[9]),
        bool(row[10]),
    )


class SQLiteFacts:
    """Facts in a SQLite file (the journal's, by default), searched with FTS5.

    A write is one `BEGIN IMMEDIATE` transaction: find the key's current fact, mark it
    superseded, insert the new one, move the search entry. A write that names a run's
    call (`run_id`, `event`) is idempotent: the same call writing again (a resumed run)
    gets the fact it wrote the first time.
    """

    def __init__(self, path: str | os.PathLike[str], *, max_facts: int = MAX_FACTS) -> None:
        self.path = str(path)
        self.max_facts = max_facts
        self._lock = threading.Lock()
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout=5000")
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the memory tables in {self.path!r}: {exc}") from exc

    def _run(self, action: str, work: Callable[[sqlite3.Connection], T], write: bool) -> T:
        with self._lock:
            db = self._db
            try:
                if write:
                    db.execute("BEGIN IMMEDIATE")
                result = work(db)
                if write:
                    db.execute("COMMIT")
                return result
            except BaseException as exc:
                if write and db.in_transaction:
                    db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"memory {action} failed in {self.path!r}: {exc}") from exc
                raise

    def write(
        self,
        principal: str,
        key: str,
        value: str,
        *,
        author: Author,
        by: str | None = None,
        run_id: str | None = None,
        event: str | None = None,
    ) -> Fact:
        """Keep `value` under `key` for `principal`, superseding the current fact."""
        check_fact(principal, key, value)
        if author not in ("agent", "person"):
            raise ValueError(f"author must be 'agent' or 'person', not {author!r}")

        def work(db: sqlite3.Connection) -> Fact:
            if event is not None:
                row = db.execute(
                    f"SELECT {_COLUMNS} FROM memory_facts WHERE run_id IS ? AND event=?",
                    (run_id, event),
                ).fetchone()
                if row is not None:
                    return _fact(row)
            (count,) = db.execute(
                "SELECT count(*) FROM memory_facts WHERE principal=?", (principal,)
            ).fetchone()
            if count >= self.max_facts:
                raise ValueError(
                    f"memory is full ({count} facts for this principal, at most "
                    f"{self.max_facts}); nothing was written"
                )
            old = db.execute(
                "SELECT fact_id FROM memory_facts WHERE principal=? AND key=? AND current=1",
                (principal, key),
            ).fetchone()
            supersedes = None if old is None else int(old[0])
            if supersedes is not None:
                db.execute("UPDATE memory_facts SET current=0 WHERE fact_id=?", (supersedes,))
                db.execute("DELETE FROM memory_fts WHERE rowid=?", (supersedes,))
            cur = db.execute(
                "INSERT INTO memory_facts (principal, key, value, author, by_name, run_id, event, "
                "ts, supersedes, current) VALUES (?,?,?,?,?,?,?,?,?,1)",
                (principal, key, value, author, by, run_id, event, time.time(), supersedes),
            )
            fact_id = int(cur.lastrowid or 0)
            db.execute(
                "INSERT INTO memory_fts (rowid, principal, key, value) VALUES (?,?,?,?)",
                (fact_id, principal, key.replace("_", " "), value),
            )
            row = db.execute(
                f"SELECT {_COLUMNS} FROM memory_facts WHERE fact_id=?", (fact_id,)
            ).fetchone()
            return _fact(row)

        return self._run("write", work, write=True)

    def get(self, principal: str, key: str) -> Fact | None:
        """The current fact under `key`, or None."""
        check_fact(principal, key)
        row = self._run(
            "read",
            lambda db: db.execute(
                f"SELECT {_COLUMNS} FROM memory_facts WHERE principal=? AND key=? AND current=1",
                (principal, key),
            ).fetchone(),
            write=False,
        )
        return None if row is None else _fact(row)

    def history(self, principal: str, key: str) -> list[Fact]:
        """Every fact ever written under `key`, newest first."""
        check_fact(principal, key)
        rows = self._run(
            "read",
            lambda db: db.execute(
                f"SELECT {_COLUMNS} FROM memory_facts WHERE principal=? AND key=? "
                "ORDER BY fact_id DESC",
                (principal, key),
            ).fetchall(),
            write=False,
        )
        return [_fact(r) for r in rows]

    def search(self, principal: str, query: str, limit: int = 5) -> list[Fact]:
        """Current facts matching any word of `query`, best first (BM25, then newest)."""
        check_fact(principal, "search")
        match = fts_query(query)
        if match is None or limit < 1:
            return []
        rows = self._run(
            "search",
            lambda db: db.execute(
                f"SELECT {', '.join('f.' + c.strip() for c in _COLUMNS.split(','))} "
                "FROM memory_fts JOIN memory_facts f ON f.fact_id = memory_fts.rowid "
                "WHERE memory_fts MATCH ? AND memory_fts.principal = ? AND f.principal = ? "
                "AND f.current = 1 ORDER BY bm25(memory_fts), f.fact_id DESC LIMIT ?",
                (match, principal, principal, min(limit, 50)),
            ).fetchall(),
            write=False,
        )
        return [_fact(r) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_facts(store: Any) -> FactStore:
    """The fact store beside a journal store: the same SQLite file, an in-process SQLite
    database for a `MemoryStore`, the same server for a `PostgresStore`, or a spec
    (``":memory:"``, a path, ``sqlite:///path``, ``postgresql://...``)."""
    if isinstance(store, str | os.PathLike):
        text = os.fspath(store)
        if text.startswith(("postgresql://", "postgres://")):
            return _postgres(text)
        return SQLiteFacts(text.removeprefix("sqlite:///") if text != ":memory:" else text)
    path = getattr(store, "path", None)
    if isinstance(path, str):
        return SQLiteFacts(path)
    dsn = getattr(store, "dsn", None)
    if isinstance(dsn, str):
        return _postgres(dsn)
    if type(store).__name__ == "MemoryStore":
        return SQLiteFacts(":memory:")
    raise ConfigurationError(
        f"no fact store beside a {type(store).__name__}: pass Memory(facts=SQLiteFacts(path))"
    )


def _postgres(dsn: str) -> FactStore:
    from pilothouse.memory.postgres import PostgresFacts

    return PostgresFacts(dsn)
