"""`JournalCalls` serves settled runs from an index by (tool, argument, value): the
answers equal a full scan's, for every scope, as runs settle after the index is built."""

from __future__ import annotations

from typing import Any

from pilothouse import Agent, Principal, ScriptedModel, call, tool
from pilothouse.policy import Policy
from pilothouse.policy.aggregate import AggregateQuery
from pilothouse.policy.context import RunContext
from pilothouse.runtime.journal import MemoryStore
from pilothouse.runtime.policy_source import JournalCalls


@tool(effect="irreversible")
def refund(order_id: Any, amount: float) -> str:
    """Refund part of an order."""
    return "refunded"


async def fill(
    store: MemoryStore, user: str, orders: list[Any], session: str | None = None
) -> None:
    agent = Agent(
        ScriptedModel([[call("refund", order_id=o, amount=1.0) for o in orders], "done"]),
        tools=[refund],
        policy=Policy.allow_all(),
        store=store,
    )
    await agent.run("go", principal=Principal(user), session=session)


def scan(store: MemoryStore, q: AggregateQuery) -> list[tuple[str, Any]]:
    """What a full read of every run in scope gives (the reference)."""
    runs = store.list_runs(None, session_id=q.session if q.over == "session" else None)
    out = []
    for info in runs:
        events = store.events(info.run_id)
        user = (events[0].principal or {}).get("user")  # type: ignore[attr-defined]
        if q.over == "principal" and user != q.principal:
            continue
        out += [
            (r.name, r.arguments["order_id"])
            for r in RunContext.from_events(events).history
            if r.name in q.tools and r.arguments.get(q.key[0][0]) == q.key[0][1]
        ]
    return sorted(out, key=repr)


def served(source: JournalCalls, q: AggregateQuery) -> list[tuple[str, Any]]:
    got = [(r.name, r.arguments["order_id"]) for r in source.calls(q)]
    return sorted((g for g in got if g[1] == q.key[0][1]), key=repr)


async def test_the_index_answers_as_a_full_scan_as_runs_settle() -> None:
    store = MemoryStore()
    store.create_session("s1")
    source = JournalCalls(store)
    await fill(store, "ann", ["A1", "A2", "A1"])
    await fill(store, "bob", ["A1", 7, ["not", "hashable"]], session="s1")

    def q(over: str, value: Any, user: str = "ann") -> AggregateQuery:
        session = "s1" if over == "session" else None
        return AggregateQuery(("refund",), over, session, user, None, None, (("order_id", value),))  # type: ignore[arg-type]

    queries = [q("all", "A1"), q("principal", "A1"), q("session", "A1"), q("all", 7)]
    for query in queries:  # builds the index
        assert served(source, query) == scan(store, query), query
    await fill(store, "ann", ["A1", 7.0])  # settles after the index was built: added to it
    for query in [*queries, q("principal", "A1", "bob"), q("all", 7.0)]:
        assert served(source, query) == scan(store, query), query
    assert len(served(source, q("all", "A1"))) == 4  # ann 2 + bob 1 + ann 1
    # a key no index can hold (a list) is served by reading the runs in scope
    odd = q("all", ["not", "hashable"])
    assert [r.arguments["order_id"] for r in source.calls(odd)].count(["not", "hashable"]) == 1
