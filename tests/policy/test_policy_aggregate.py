"""Aggregates across runs: counts and sums over a session, a principal or everyone,
served by the journal (`JournalCalls`) on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pilothouse import Agent, Principal, ScriptedModel, ToolError, call, tool
from pilothouse.exceptions import PolicyError
from pilothouse.messages import ToolCall
from pilothouse.policy import Policy, RunContext
from pilothouse.policy.aggregate import AggregateQuery
from pilothouse.policy.context import CallRecord
from pilothouse.runtime.journal import SQLiteStore, Store, open_store
from pilothouse.runtime.policy_source import JournalCalls

POLICY = """
version: 1
tools:
  verify: {effect: read_only, args: [email, zip]}
  refund: {effect: irreversible, args: [order_id, amount]}
rules:
  - id: verification-lockout
    tools: verify
    effect: deny
    when:
      not:
        aggregate: {source: journal, over: all, per: email, ok: false, within: 1h, max: 3}
  - id: refunds-per-order
    tools: refund
    when:
      aggregate: {source: journal, over: all, field: amount, per: order_id, max: 300}
  - id: notes-per-principal
    tools: note
    when:
      aggregate: {source: journal, over: principal, max: 2}
  - id: refunds-per-customer-session
    tools: refund_small
    when:
      aggregate: {source: journal, over: session, tool: refund_small, max: 2}
"""

done: list[tuple[str, Any]] = []


@tool
def verify(email: str, zip: str) -> str:
    """Check an e-mail and ZIP code."""
    done.append(("verify", zip))
    if zip != "12345":
        raise ToolError("no match")
    return "verified"


@tool(effect="irreversible")
def refund(order_id: str, amount: float) -> str:
    """Refund."""
    done.append(("refund", amount))
    return "refunded"


@tool(effect="irreversible")
def refund_small(order_id: str) -> str:
    """Refund a small amount."""
    done.append(("refund_small", order_id))
    return "refunded"


@tool(effect="side_effect")
def note(text: str) -> str:
    """Leave a note."""
    done.append(("note", text))
    return "noted"


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s: Store = SQLiteStore(tmp_path / "journal.db")
    else:
        s = open_store(request.getfixturevalue("fresh_postgres_dsn"))
    done.clear()
    yield s


async def run(
    store: Store, steps: list[Any], *, session: str | None = None, user: str = "u"
) -> None:
    a = Agent(
        ScriptedModel([*steps, "done"]),
        tools=[verify, refund, refund_small, note],
        policy=Policy.from_yaml(POLICY),
        store=store,
    )
    await a.run("help", principal=Principal(user), session=session)


async def test_zip_guessing_across_runs_is_locked_out_before_the_right_zip(store: Store) -> None:
    for guess in ("11111", "22222", "33333"):  # three conversations, one guess each
        await run(store, [[call("verify", email="ann@x.test", zip=guess)]])
    await run(store, [[call("verify", email="ann@x.test", zip="12345")]])  # the 4th: refused
    await run(store, [[call("verify", email="bob@x.test", zip="12345")]])  # another e-mail
    assert done == [
        ("verify", "11111"),
        ("verify", "22222"),
        ("verify", "33333"),
        ("verify", "12345"),
    ]
    # an hour later (the context's clock), the lockout has ended
    source = JournalCalls(store)
    p = Policy.from_yaml(POLICY)
    later = RunContext(clock=lambda: time.time() + 3700, aggregates={"journal": source})
    check = ToolCall("v", "verify", {"email": "ann@x.test", "zip": "12345"})
    assert p.check(check, later).allowed
    now = RunContext(aggregates={"journal": source})
    assert not p.check(check, now).allowed


async def test_refunds_of_one_order_are_summed_across_runs(store: Store) -> None:
    await run(store, [[call("refund", order_id="A1", amount=200.0)]])
    await run(store, [[call("refund", order_id="A1", amount=100.01)]])  # 300.01: refused
    await run(
        store,
        [[call("refund", order_id="A1", amount=60.0), call("refund", order_id="A1", amount=50.0)]],
    )  # one reply: 260 allowed, then 310 refused (the first counts at once)
    await run(store, [[call("refund", order_id="B2", amount=300.0)]])  # another order
    assert [x for x in done if x[0] == "refund"] == [
        ("refund", 200.0),
        ("refund", 60.0),
        ("refund", 300.0),
    ]


async def test_a_session_scope_counts_only_that_session(store: Store) -> None:
    store.create_session("s1")
    store.create_session("s2")
    for _ in range(2):
        await run(store, [[call("refund_small", order_id="A1")]], session="s1")
    await run(store, [[call("refund_small", order_id="A2")]], session="s1")  # the 3rd: refused
    await run(store, [[call("refund_small", order_id="A3")]], session="s2")
    assert [x[1] for x in done] == ["A1", "A1", "A3"]


async def test_a_principal_scope_counts_only_that_principal_s_runs(store: Store) -> None:
    for text in ("a1", "a2", "a3"):  # the third of ann's notes is refused
        await run(store, [[call("note", text=text)]], user="ann")
    await run(store, [[call("note", text="b1")]], user="bob")
    assert [x[1] for x in done] == ["a1", "a2", "b1"]


class Ledger:
    """An application's own source: fixed records, deterministic times."""

    def __init__(self, records: list[CallRecord]) -> None:
        self.records = records
        self.queries: list[AggregateQuery] = []

    def calls(self, query: AggregateQuery) -> list[CallRecord]:
        self.queries.append(query)
        return [r for r in self.records if r.name in query.tools]


def test_an_application_source_with_an_explicit_clock_and_exact_sums() -> None:
    ledger = Ledger(
        [
            CallRecord("pay", {"to": "x", "amount": 0.1}, "ok", ts=1000.0),
            CallRecord("pay", {"to": "x", "amount": 0.1}, "ok", ts=5000.0),
            CallRecord("pay", {"to": "y", "amount": 50}, "ok", ts=5000.0),
        ]
    )
    rule = {
        "aggregate": {
            "source": "ledger",
            "over": "principal",
            "field": "amount",
            "per": "to",
            "within": "1h",
            "max": 0.3,
        }
    }
    from pilothouse.policy import Rule

    p = Policy([Rule("pay", when=rule)], aggregates={"ledger": ledger})
    ctx = RunContext(Principal("ann"), clock=lambda: 5400.0, run_id="r9")
    assert p.check(ToolCall("p", "pay", {"to": "x", "amount": 0.2}), ctx).allowed  # 0.1 + 0.2
    d = p.check(ToolCall("p", "pay", {"to": "x", "amount": 0.21}), ctx)
    assert not d.allowed and "would be 0.31 (this call included), above 0.3" in d.reason
    ctx.clock = lambda: 900.0 + 3600  # the first payment is inside the window again
    assert not p.check(ToolCall("p", "pay", {"to": "x", "amount": 0.2}), ctx).allowed
    q = ledger.queries[0]
    assert (q.over, q.principal, q.exclude_run, q.since) == ("principal", "ann", "r9", 1800.0)


def test_a_missing_source_scope_or_a_raising_source_denies() -> None:
    from pilothouse.policy import Rule

    def boom(query: AggregateQuery) -> list[CallRecord]:
        raise OSError("store down")

    class Broken:
        calls = staticmethod(boom)

    c = ToolCall("p", "pay", {})
    p = Policy([Rule("pay", when={"aggregate": {"source": "journal", "over": "all", "max": 1}})])
    d = p.check(c, RunContext())
    assert not d.allowed and d.source == "engine" and "is not available" in d.reason
    s = Policy(
        [Rule("pay", when={"aggregate": {"source": "journal", "over": "session", "max": 1}})]
    )
    d = s.check(c, RunContext(aggregates={"journal": Broken()}))
    assert not d.allowed and "needs a run in a session" in d.reason
    d = p.check(c, RunContext(aggregates={"journal": Broken()}))
    assert not d.allowed and "raised OSError: store down" in d.reason


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{source: ledger, over: all, max: 1}", "unknown aggregate source 'ledger'"),
        ("{source: journal, over: world, max: 1}", "over must be session, principal or all"),
        ("{source: journal, over: all}", "aggregate needs `max`"),
        ("{source: journal, over: all, max: 1, within: soon}", "within must be a duration"),
        ("{source: journal, over: all, max: 1, tool: 'ref*'}", "no glob patterns"),
        ("{source: journal, over: all, max: 1, sum: amount}", "aggregate has"),
    ],
)
def test_malformed_aggregates_name_the_line(spec: str, message: str) -> None:
    text = f"version: 1\nrules:\n  - tools: t\n    when: {{aggregate: {spec}}}\n"
    with pytest.raises(PolicyError, match=message) as info:
        Policy.from_yaml(text)
    assert "line 4" in str(info.value)
    declared = "version: 1\naggregates: [ledger]\nrules:\n  - tools: t\n"
    Policy.from_yaml(declared + "    when: {aggregate: {source: ledger, over: all, max: 1}}\n")
