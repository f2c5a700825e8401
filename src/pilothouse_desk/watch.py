"""Every run of the desk's journal as it is written: a store that tells its listeners.

A run's journal subscribers (``subscribers=`` of `Agent.run`, what the server streams)
hear that run's own events. A team's child runs (a handoff to a specialist, the
supervisor's review) are journals of their own, started by the framework without
them, so a live view of the root alone goes quiet while a specialist works. The desk
wraps its journal store in a `WatchedStore`: each successful `Store.write` (a batch of
a run's events, committed) is handed to the store's listeners, for every run of every
tree. So a listener hears exactly what is on disk (a view that reads the store after a
notification finds what it was told about), batched as the journal commits (each step,
and at least every ``flush_interval``), and nothing that a failed write did not store.

Listeners only listen: one that raises is logged and dropped from nothing, never
raised into the run (as for journal subscribers). Everything else the store does is
the wrapped store's own (`WatchedStore.inner`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from pilothouse.events import Event
from pilothouse.runtime.journal import Store

WriteListener = Callable[[Sequence[Event]], None]
"""Told each committed batch of one run's events."""

_log = logging.getLogger("pilothouse.support.watch")


class WatchedStore:
    """A journal store (`inner`) whose writes are told to listeners (see the module)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self._listeners: list[WriteListener] = []

    def listen(self, listener: WriteListener) -> Callable[[], None]:
        """Tell `listener` every committed batch from now on; returns how to stop."""
        self._listeners.append(listener)

        def stop() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return stop

    def write(
        self,
        events: Sequence[Event],
        run: Any = None,
        *,
        lease: tuple[str, float] | None = None,
        session: Any = None,
    ) -> None:
        """`Store.write`, then each listener is told the batch (only if it was stored)."""
        options: dict[str, Any] = {}
        if lease is not None:
            options["lease"] = lease
        if session is not None:
            options["session"] = session
        self.inner.write(events, run, **options)
        if not events:
            return
        for listener in tuple(self._listeners):
            try:
                listener(events)
            except Exception:  # a listener never steers, nor stops, the run
                _log.exception("store listener %r failed", listener)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def watched(store: Store) -> WatchedStore:
    """`store` with write listeners (itself if it already has them)."""
    return store if isinstance(store, WatchedStore) else WatchedStore(store)
