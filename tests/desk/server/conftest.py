"""Fixtures for the server tests (see desk_site.py for the scripted customer model).

`browser`: Debian's /usr/bin/chromium driven by Playwright (tests/chromium.py); a test
using it is skipped when either is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the server tests need the 'server' extra")
pytest.importorskip("uvicorn", reason="the server tests need the 'server' extra")

from desk_site import Site, make_desk, serving

from chromium import launched_chromium


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A real Desk (SQLite shop and journal in tmp_path) served on a loopback port."""
    with serving(*make_desk(tmp_path)) as served:
        yield served


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium (Playwright), closed after the test."""
    with launched_chromium() as launched:
        yield launched
