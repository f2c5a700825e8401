"""Debian's /usr/bin/chromium driven by Playwright's Python package, for the tests that
need a real browser (no browser download; `scripts/system-deps.sh` installs chromium).
A test using `launched_chromium` is skipped when either is missing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

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


@contextmanager
def launched_chromium() -> Iterator[Any]:
    """A headless Chromium (Playwright), closed on exit."""
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
