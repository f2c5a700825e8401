"""Long-term memory in PostgreSQL, beside a `PostgresStore`'s journal (psycopg 3).

The same facts and rules as `SQLiteFacts` (memory/store.py): a key written again is
superseded, never overwritten; a write naming a run's call is idempotent; every query
filters on the principal. Search is PostgreSQL's full-text search (`simple`
configuration, any word of the query, ranked by `ts_rank`, then newest). Writes of one
principal are serialised by a transaction-scoped advisory lock, so two concurrent
writes of one key leave one current fact (a partial unique index guarantees it).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from pilothouse.exceptions import StoreError
from pilothouse.memory.facts import MAX_FACTS, Author, Fact, check_fact

__all__ = ["PostgresFacts"]

T = TypeVar("T")

_SCHEMA_LOCK = 0x6D656D6F  # "memo": creating the tables once when processes race
_WORD = re.compile(r"\w+", re.UNICODE)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS memory_facts (
    fact_id BIGSERIAL PRIMARY KEY,
    principal TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    author TEXT NOT NULL CHECK (author IN ('agent', 'person')),
    by_name TEXT,
    run_id TEXT,
    event TEXT,
    ts DOUBLE PRECISION NOT NULL,
    supersedes BIGINT REFERENCES memory_facts(fact_id),
    current BOOLEAN NOT NULL DEFAULT TRUE,
    search tsvector GENERATED ALWAYS AS
        (to_tsvector('simple', replace(key, '_', ' ') || ' ' || value)) STORED
);
CREATE INDEX IF NOT EXISTS memory_facts_key ON memory_facts(principal, key, fact_id);
CREATE UNIQUE INDEX IF NOT EXISTS memory_facts_current ON memory_facts(principal, key)
    WHERE current;
CREATE UNIQUE INDEX IF NOT EXISTS memory_facts_event ON memory_facts(run_id, event)
    WHERE event IS NOT NULL;
CREATE INDEX IF NOT EXISTS memory_facts_search ON memory_facts USING GIN (search)
    WHERE current;
"""

_COLUMNS = "fact_id, principal, key, value, author, by_name, run_id, event, ts, supersedes, current"


def _fact(row: Any) -> Fact:
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


def _where(dsn: str) -> str:
    """The server as an error names it: the DSN without its password."""
    return re.sub(r"(//[^:/@]+):[^@]*@", r"\1:***@", re.sub(r"password=\S+", "password=***", dsn))


class PostgresFacts:
    """Facts in a PostgreSQL database; one connection per object, guarded by a lock."""

    def __init__(self, dsn: str, *, max_facts: int = MAX_FACTS) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise StoreError(
                "memory in PostgreSQL needs psycopg 3: pip install 'pilothouse[postgres]'"
            ) from exc
        self._psycopg = psycopg
        self.where = _where(dsn)
        self.max_facts = max_facts
        self._lock = threading.Lock()
        try:
            self._db = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to {self.where} for memory: {exc}") from exc

        def create(db: Any) -> None:
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                db.execute(_SCHEMA)

        self._run("create the memory tables", create)

    def _run(self, action: str, work: Callable[[Any], T]) -> T:
        with self._lock:
            try:
                return work(self._db)
            except self._psycopg.Error as exc:
                raise StoreError(f"memory {action} failed on {self.where}: {exc}") from exc

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

        def work(db: Any) -> Fact:
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (principal,))
                if event is not None:
                    row = db.execute(
                        f"SELECT {_COLUMNS} FROM memory_facts "
                        "WHERE run_id IS NOT DISTINCT FROM %s AND event = %s",
                        (run_id, event),
                    ).fetchone()
                    if row is not None:
                        return _fact(row)
                (count,) = db.execute(
                    "SELECT count(*) FROM memory_facts WHERE principal = %s", (principal,)
                ).fetchone()
                if count >= self.max_facts:
                    raise ValueError(
                        f"memory is full ({count} facts for this principal, at most "
                        f"{self.max_facts}); nothing was written"
                    )
                old = db.execute(
                    "UPDATE memory_facts SET current = FALSE "
                    "WHERE principal = %s AND key = %s AND current RETURNING fact_id",
                    (principal, key),
                ).fetchone()
                row = db.execute(
                    "INSERT INTO memory_facts (principal, key, value, author, by_name, run_id, "
                    "event, ts, supersedes) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) "
                    f"RETURNING {_COLUMNS}",
                    (
                        principal,
                        key,
                        value,
                        author,
                        by,
                        run_id,
                        event,
                        time.time(),
                        None if old is None else old[0],
                    ),
                ).fetchone()
                return _fact(row)

        return self._run("write", work)

    def get(self, principal: str, key: str) -> Fact | None:
        """The current fact under `key`, or None."""
        check_fact(principal, key)
        row = self._run(
            "read",
            lambda db: db.execute(
                f"SELECT {_COLUMNS} FROM memory_facts "
                "WHERE principal = %s AND key = %s AND current",
                (principal, key),
            ).fetchone(),
        )
        return None if row is None else _fact(row)

    def history(self, principal: str, key: str) -> list[Fact]:
        """Every fact ever written under `key`, newest first."""
        check_fact(principal, key)
        rows = self._run(
            "read",
            lambda db: db.execute(
                f"SELECT {_COLUMNS} FROM memory_facts WHERE principal = %s AND key = %s "
                "ORDER BY fact_id DESC",
                (principal, key),
            ).fetchall(),
        )
        return [_fact(r) for r in rows]

    def search(self, principal: str, query: str, limit: int = 5) -> list[Fact]:
        """Current facts matching any word of `query`, best first (`ts_rank`, then newest)."""
        check_fact(principal, "search")
        found = [w.lower() for w in _WORD.findall(query[:2_000])[:32]]
        if not found or limit < 1:
            return []
        # Each word is \\w+ and quoted as a lexeme: nothing the user wrote is tsquery syntax.
        tsquery = " | ".join("'" + w.replace("'", "''") + "'" for w in found)
        rows = self._run(
            "search",
            lambda db: db.execute(
                f"SELECT {_COLUMNS} FROM memory_facts, to_tsquery('simple', %s) q "
                "WHERE principal = %s AND current AND search @@ q "
                "ORDER BY ts_rank(search, q) DESC, fact_id DESC LIMIT %s",
                (tsquery, principal, min(limit, 50)),
            ).fetchall(),
        )
        return [_fact(r) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
