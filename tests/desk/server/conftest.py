"""Fixtures for the server tests (see desk_site.py for the scripted customer model).

`browser`: Debian's /usr/bin/chromium driven by Playwright's Python package (no browser
download; `scripts/system-deps.sh` installs chromium); a test using it is skipped when
either is missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the server tests need the 'server' extra")
pytest.importorskip("uvicorn", reason="the server tests need the 'server' extra")

from desk_site import Site, make_desk, serving


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A real Desk (SQLite shop and journal in tmp_path) served on a loopback port."""
    with serving(*make_desk(tmp_path)) as served:
        yield served


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium (Playwright), closed after the test."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is absent: run `bash scripts/system-deps.sh` (Debian's chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the browser tests need the 'playwright' package (dev extra)"
    )
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()
