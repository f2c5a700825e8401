"""Crash tests in one process: a store a simulated SIGKILL stops, and the caps
`ChildRuns` logs each time it starts or resumes a child."""

from __future__ import annotations

from typing import Any, NoReturn

import pytest

from pilothouse.runtime.journal import MemoryStore


class KillableStore:
    """A store whose writes stop landing once `lost` is set: what a SIGKILL leaves."""

    def __init__(self, inner: Any = None) -> None:
        self.inner = inner if inner is not None else MemoryStore()  # or a real store
        self.lost = False

    def write(self, events: Any, run: Any = None, **lease: Any) -> None:
        if not self.lost:
            self.inner.write(events, run, **lease)

    def crash(self, how: str, where: str) -> NoReturn:
        """End the process here: "kill" (the store takes no more writes first: what a
        SIGKILL leaves) or "interrupt" (`SystemExit`, a `BaseException` like the
        cancellation a signal brings: the loops record what happened so far)."""
        if how == "kill":
            self.lost = True
        raise SystemExit(f"{how} {where}")

    def after_restart(self) -> MemoryStore:
        """What a new process finds: the journals and index rows, no live leases."""
        store = MemoryStore()
        for info in self.inner.list_runs(limit=100):
            store.write(self.inner.events(info.run_id), info)
        return store

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def logged_caps(caplog: pytest.LogCaptureFixture) -> list[tuple[str, Any]]:
    """(child run id, caps) each time `ChildRuns` started or resumed a child, from its
    log (the journal's `child_started` keeps only the first start's caps)."""
    found = []
    for record in caplog.records:
        if record.name == "pilothouse.runtime" and "capped to the parent" in record.msg:
            _, child, capped = record.args  # type: ignore[misc]
            found.append((str(child), capped))
    return found
