"""The journal as an aggregate source: other runs' calls, for `aggregate` conditions.

`JournalCalls(store)` answers an `AggregateQuery` from any journal store (SQLite,
PostgreSQL, memory) through its public reading API: the runs of the scope
(`list_runs`, by session when the scope is one), each read back into the calls the
policy saw with `RunContext.from_events` (allowed calls with their results; denied
calls did not happen). The loop gives every run one, under the name ``journal``, so a
policy can say ``aggregate: {source: journal, over: all, ...}`` with nothing to wire.

Cost: one read of each run in the scope per check (a run that can no longer change is
read once per source); a `within` window skips runs last updated before it. Calls of
another run still in flight (allowed, no result yet) are not seen: two concurrent runs
may each pass a limit the other's in-flight call would have reached.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pilothouse.policy.context import CallRecord, Principal, RunContext

if TYPE_CHECKING:  # the conditions load with the first rule, not with the loop
    from pilothouse.policy.aggregate import AggregateQuery

__all__ = ["JournalCalls"]

_SETTLED = frozenset(
    {"final", "error", "budget_stop", "loop_stop", "output_invalid", "policy_stop"}
)


class JournalCalls:
    """An `AggregateSource` over a journal store (see the module docs)."""

    __slots__ = ("_settled", "store")

    def __init__(self, store: Any) -> None:
        self.store = store
        self._settled: dict[str, tuple[str | None, tuple[CallRecord, ...]]] = {}

    def _read(self, run_id: str) -> tuple[str | None, tuple[CallRecord, ...]]:
        events = self.store.events(run_id)
        principal: str | None = None
        for e in events[:1]:
            raw = getattr(e, "principal", None)
            if isinstance(raw, dict):
                principal = Principal.from_dict(raw).user
        return principal, tuple(RunContext.from_events(events).history)

    def calls(self, query: AggregateQuery) -> Iterator[CallRecord]:
        if query.over == "session":
            if query.session is None:
                return
            runs = self.store.list_runs(None, session_id=query.session)
        else:
            runs = self.store.list_runs(None)
        for info in runs:
            if info.run_id == query.exclude_run:
                continue
            if query.since is not None and info.updated < query.since:
                continue
            got = self._settled.get(info.run_id)
            if got is None:
                got = self._read(info.run_id)
                if info.status in _SETTLED:
                    self._settled[info.run_id] = got
            principal, records = got
            if query.over == "principal" and principal != query.principal:
                continue
            for rec in records:
                if rec.name in query.tools:
                    yield rec
