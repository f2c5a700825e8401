"""A real PostgreSQL server for the store tests: started once per session on loopback.

`postgres_dsn` (session) is the DSN of a database on a throwaway server started by
`tests/pgserver.py`; `fresh_postgres_dsn` (per test) is a new, empty database on that
server, for tests that count runs. Both skip with a clear message when the PostgreSQL
binaries are missing (`make test` installs them through scripts/system-deps.sh).
The fixtures are self-contained: to use them outside tests/runtime/, move them into
tests/conftest.py (a fixture imported into two places would start two servers).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for pgserver

from pgserver import PostgresUnavailable, start_postgres


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """DSN of a database on a PostgreSQL server running on 127.0.0.1 for this session."""
    try:
        server = start_postgres("pilothouse")
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL tests skipped: {exc}")
    try:
        yield server.dsn
    finally:
        server.stop()


@pytest.fixture
def fresh_postgres_dsn(postgres_dsn: str) -> str:
    """DSN of a new empty database on the session's server (one per test)."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    return postgres_dsn.rsplit("/", 1)[0] + "/" + name
