"""Fixtures for the support desk tests: a fresh shop database per test, the team's desk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Any]:
    """The desk's team on the routed scripted model, over a shop and a journal in
    `tmp_path` (team_world.py); shut down after the test."""
    from team_world import make_team_desk

    team_desk = make_team_desk(tmp_path)
    yield team_desk
    team_desk.shutdown()


@pytest.fixture
def above_limit(desk: Any, tmp_path: Path) -> tuple[str, str, str, float]:
    """A delivered order of `desk`'s shop paid above the supervisor's $500 limit:
    (order id, email, zip, paid)."""
    from team_world import delivered_order

    return delivered_order(tmp_path / "shop.db", 500.0)
