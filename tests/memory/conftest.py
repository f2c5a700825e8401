"""A real PostgreSQL server for the memory tests (as `tests/runtime/conftest.py` does):
started once per session on loopback, skipped with a clear message when the
PostgreSQL binaries are missing."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for pgserver

from pgserver import PostgresUnavailable, start_postgres


@pytest.fixture(scope="session")
def memory_postgres_dsn() -> Iterator[str]:
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
def fresh_memory_postgres_dsn(memory_postgres_dsn: str) -> str:
    """DSN of a new empty database on the session's server (one per test)."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(memory_postgres_dsn, autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    return memory_postgres_dsn.rsplit("/", 1)[0] + "/" + name
