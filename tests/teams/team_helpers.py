"""Shared pieces of the team tests: a real SQLite store and usage read from journals."""

from __future__ import annotations

from pathlib import Path

from pilothouse.events import ModelResponded
from pilothouse.messages import Usage
from pilothouse.runtime.journal import SQLiteStore, Store


def sqlite(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(str(tmp_path / "team.db"))


def tree(store: Store, root: str) -> list[str]:
    """Every run of the tree under `root` (root included), depth first, oldest first."""
    found: list[str] = []
    stack = [root]
    while stack:
        run_id = stack.pop()
        found.append(run_id)
        stack.extend(r.run_id for r in reversed(store.children(run_id)))
    return found


def own_usage(store: Store, run_id: str) -> Usage:
    """What a run's own model calls used (not its children's)."""
    used = Usage()
    for event in store.events(run_id):
        if isinstance(event, ModelResponded):
            used += event.response.usage
    return used
