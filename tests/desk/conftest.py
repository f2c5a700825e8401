"""Fixtures for the support desk tests: a fresh shop database per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pilothouse_desk.shop import Shop, open_shop


@pytest.fixture
def shop_path(tmp_path: Path) -> Path:
    return tmp_path / "shop.db"


@pytest.fixture
def shop(shop_path: Path) -> Iterator[Shop]:
    s = open_shop(shop_path)
    yield s
    s.close()
