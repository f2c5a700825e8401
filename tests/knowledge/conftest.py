"""A real PostgreSQL server for the knowledge tests (tests/pgserver.py), started once per
session and only by a test that asks for it; skips, saying why, without the binaries.
(The runtime tests keep their own: moving both into tests/conftest.py would share one.)"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for pgserver

from pgserver import PostgresUnavailable, start_postgres


@pytest.fixture(scope="session")
def knowledge_postgres() -> Iterator[str]:
    try:
        server = start_postgres("knowledge")
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL tests skipped: {exc}")
    try:
        yield server.dsn
    finally:
        server.stop()


@pytest.fixture
def knowledge_pg_dsn(knowledge_postgres: str) -> str:
    """A new empty database on the session's server (one per test)."""
    psycopg = pytest.importorskip("psycopg", reason="needs the postgres extra")
    name = f"kb_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(knowledge_postgres, autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    return knowledge_postgres.rsplit("/", 1)[0] + "/" + name
