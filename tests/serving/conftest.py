"""Fixtures of the endpoint tests (the world they run in: serving_world.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the endpoint tests need the 'server' extra")
pytest.importorskip("uvicorn", reason="the endpoint tests need the 'server' extra")
pytest.importorskip("openai", reason="the endpoint tests use the official client")

from serving_world import Gate, World, make_agents

from pilothouse.runtime.journal import SQLiteStore
from pilothouse.serving import BackgroundServer, create_app


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    store = SQLiteStore(tmp_path / "journal.db")
    gate = Gate()
    agents = make_agents(store, gate)

    @contextmanager
    def serve(**options: Any) -> Iterator[BackgroundServer]:
        server = BackgroundServer(create_app(agents, **options)).start()
        try:
            yield server
        finally:
            gate.release.set()  # no tool thread outlives the test
            server.stop()

    try:
        yield World(store, gate, agents, serve)
    finally:
        gate.release.set()
        store.close()
