"""Fixtures for the server tests (see desk_site.py for the scripted customer model)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the server tests need the 'server' extra")
pytest.importorskip("uvicorn", reason="the server tests need the 'server' extra")

import httpx
from desk_site import CONSOLE_TOKEN, Site, make_desk

from pilothouse_desk.server.app import create_app
from pilothouse_desk.server.live import LiveServer


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A real Desk (SQLite shop and journal in tmp_path) served on a loopback port."""
    desk, store, shop_path = make_desk(tmp_path)
    app = create_app(desk, console_token=CONSOLE_TOKEN, store=store)
    try:
        with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
            yield Site(server.url, desk, store, shop_path, client)
    finally:
        desk.shutdown()
        store.close()
