"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from pgserver import PostgresUnavailable, start_postgres  # tests/ is on sys.path (rootdir)

TESTS = Path(__file__).resolve().parent

# Property tests judge results, not speed: hypothesis's default 200 ms deadline per
# example and its too-slow health check fail on a loaded machine, not on a bug. The
# suite's examples are derandomized (the same ones every run: a test's outcome depends
# on the code only: a random seed once failed an unrelated merge on an old bug, a rule
# with `tools: null`). `HYPOTHESIS_PROFILE=explore` searches afresh, for finding bugs.
_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("pilothouse", derandomize=True, **_COMMON)
settings.register_profile("explore", max_examples=2000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "pilothouse"))

CLI = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def cli() -> CLI:
    """Run `pilothouse ARGS` as a user would: a fresh process, no inherited defaults.

    The tests folder is on PYTHONPATH so `--tools cli_tools:tools` style specs resolve;
    `input` is the process's standard input (none by default, as in CI).
    """

    def run(
        *args: str, cwd: Path | None = None, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        # A PYTHONPATH already set (a worktree's src/ ahead of the installed package) is kept.
        path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, "PYTHONPATH": path, "COLUMNS": "250"}
        env.pop("PILOTHOUSE_STORE", None)
        env.pop("PILOTHOUSE_MODEL", None)
        return subprocess.run(
            [sys.executable, "-m", "pilothouse.cli", *args],
            capture_output=True,
            text=True,
            cwd=cwd,
            env=env,
            timeout=300,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )

    return run


# A real PostgreSQL server for the store tests, started once per session on loopback by
# `tests/pgserver.py` (one server for the whole suite: a fixture defined in two conftests
# would start two). Both fixtures skip with a clear message when the PostgreSQL binaries
# are missing (`make test` installs them through scripts/system-deps.sh).


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
