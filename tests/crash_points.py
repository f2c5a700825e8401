"""What a crash after each commit of a run leaves: the run's journal up to that event,
and the journals of the children it had started by then (their own runs went on
being written), for resume tests that try every point."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from pilothouse.events import ChildStarted
from pilothouse.runtime.journal import MemoryStore, Store


def after_each_commit(source: Store, run_id: str) -> Iterator[tuple[int, MemoryStore]]:
    """(k, store) for k = 1 .. the run's event count - 1: a fresh store holding the
    run's first k events (the run still running) and its started children."""
    events = source.events(run_id)
    info = dataclasses.replace(source.get_run(run_id), status="running", output=None)
    for k in range(1, len(events)):
        store = MemoryStore()
        store.write(events[:k], info)
        for e in events[:k]:
            if isinstance(e, ChildStarted):
                store.write(source.events(e.child_run_id), source.get_run(e.child_run_id))
        yield k, store
