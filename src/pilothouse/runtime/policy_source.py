"""The journal as an aggregate source: other runs' calls, for `aggregate` conditions.

`JournalCalls(store)` answers an `AggregateQuery` from any journal store (SQLite,
PostgreSQL, memory) through its public reading API: the runs of the scope
(`list_runs`, by session when the scope is one), each read back into the calls the
policy saw with `RunContext.from_events` (allowed calls with their results; denied
calls did not happen). The loop gives every run one, under the name ``journal``, so a
policy can say ``aggregate: {source: journal, over: all, ...}`` with nothing to wire.

Cost: one listing of the scope's runs per check; a run that can no longer change
(settled) is read once per source and its calls indexed by (tool, argument, value), so
a check with a `per` key reads only the calls with that key, not every call of the
deployment (10,000 prior calls: `benchmarks/policy_latency.py`); a run still going is
read again at each check; a `within` window skips runs last updated before it. Calls of
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

    __slots__ = ("_index", "_settled", "store")

    def __init__(self, store: Any) -> None:
        self.store = store
        self._settled: dict[str, tuple[str | None, tuple[CallRecord, ...]]] = {}
        # (tool, argument) -> argument value -> the settled runs' calls with it, as
        # (run id, principal, call): built on first use, grown as runs settle
        self._index: dict[tuple[str, str], dict[Any, list[_Entry]]] = {}

    def _read(self, run_id: str) -> tuple[str | None, tuple[CallRecord, ...]]:
        events = self.store.events(run_id)
        principal: str | None = None
        for e in events[:1]:
            raw = getattr(e, "principal", None)
            if isinstance(raw, dict):
                principal = Principal.from_dict(raw).user
        return principal, tuple(RunContext.from_events(events).history)

    def _settle(self, run_id: str, got: tuple[str | None, tuple[CallRecord, ...]]) -> None:
        self._settled[run_id] = got
        for (tool, arg), bucket in self._index.items():
            _add(bucket, tool, arg, run_id, got)

    def _bucket(self, tool: str, arg: str) -> dict[Any, list[_Entry]]:
        bucket = self._index.get((tool, arg))
        if bucket is None:
            bucket = self._index[(tool, arg)] = {}
            for run_id, got in self._settled.items():
                _add(bucket, tool, arg, run_id, got)
        return bucket

    def calls(self, query: AggregateQuery) -> Iterator[CallRecord]:
        if query.over == "session":
            if query.session is None:
                return
            runs = self.store.list_runs(None, session_id=query.session)
        else:
            runs = self.store.list_runs(None)
        in_scope: set[str] = set()  # settled runs of the scope (served from the index)
        live: list[tuple[str | None, tuple[CallRecord, ...]]] = []  # runs still going
        for info in runs:
            if info.run_id == query.exclude_run:
                continue
            if query.since is not None and info.updated < query.since:
                continue
            if info.run_id in self._settled:
                in_scope.add(info.run_id)
                continue
            got = self._read(info.run_id)
            if info.status in _SETTLED:  # it can no longer change: read once, indexed
                self._settle(info.run_id, got)
                in_scope.add(info.run_id)
            else:
                live.append(got)
        mine = query.principal if query.over == "principal" else None
        key = query.key[0] if query.key else None
        if key is not None and _hashable(key[1]):
            # the calls with this call's key, not every call of the deployment
            for tool in query.tools:
                for run_id, principal, rec in self._bucket(tool, key[0]).get(key[1], ()):
                    if run_id in in_scope and (mine is None or principal == mine):
                        yield rec
        else:
            for run_id in in_scope:
                principal, records = self._settled[run_id]
                if mine is None or principal == mine:
                    yield from (r for r in records if r.name in query.tools)
        for principal, records in live:
            if query.over == "principal" and principal != query.principal:
                continue
            yield from (r for r in records if r.name in query.tools)


_Entry = tuple[str, "str | None", CallRecord]


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _add(
    bucket: dict[Any, list[_Entry]],
    tool: str,
    arg: str,
    run_id: str,
    got: tuple[str | None, tuple[CallRecord, ...]],
) -> None:
    """Index one settled run's calls of `tool` by their `arg` (a value no hashable key can
    equal, a list or a mapping, is left out: no query could ask for it by that key)."""
    principal, records = got
    for rec in records:
        if rec.name != tool or arg not in rec.arguments:
            continue
        value = rec.arguments[arg]
        if _hashable(value):
            bucket.setdefault(value, []).append((run_id, principal, rec))
