"""A decision records what its lookups read, and a replay decides from that record.

A lookup reads the application's state (an order's status and total) through the
run's deps. That state moves on after the run (the order is refunded, deleted), and a
replay runs without the application at all. Each check journals what its lookups
returned with its decision (`Decision.looked_up`: the query and the value as JSON, or
the error it raised), so an audit reads the state a decision rested on and a replay
(runtime replay and `policy check --trace`) decides exactly as the live run did.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pilothouse import Agent, ScriptedModel, call, tool
from pilothouse.decision import Decision
from pilothouse.events import ToolCalled
from pilothouse.messages import ToolCall
from pilothouse.policy import Policy, RunContext
from pilothouse.policy.replay import replay as policy_replay
from pilothouse.runtime.journal import SQLiteStore
from pilothouse.testing import replay_async

POLICY = """
version: 1
lookups: [order]
tools:
  refund: {effect: irreversible, args: [order_id, amount]}
rules:
  - id: refund-what-was-paid
    tools: refund
    when:
      lookup:
        order:
          args: {order_id: $args.order_id}
          value: {properties: {status: {const: delivered}}}
      total: {field: amount, per: order_id, max: $lookup.order.total}
"""


@dataclass
class Shop:
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)


def order(context: RunContext, order_id: str) -> Any:
    """The application's lookup: reads the shop in the run's deps."""
    shop: Shop = context.deps
    if order_id == "BROKEN":
        raise RuntimeError("the orders table is locked")
    return shop.orders.get(order_id)


def policy() -> Policy:
    return Policy.from_yaml(POLICY, lookups={"order": order})


@tool(effect="irreversible")
def refund(order_id: str, amount: float) -> str:
    """Refund part of an order."""
    return "refunded"


STEPS = [
    [call("refund", order_id="A1", amount=60.0)],
    [call("refund", order_id="A1", amount=50.0)],  # 110 > 100 paid: denied
    [call("refund", order_id="B2", amount=5.0)],  # not delivered: denied
    [call("refund", order_id="BROKEN", amount=1.0)],  # the lookup raises: denied
]


def agent(store: Any = None) -> Agent[Shop, str]:
    return Agent(
        ScriptedModel([*STEPS, "done"]),
        tools=[refund],
        policy=policy(),
        store=store,
        deps_type=Shop,
    )


def decisions(events: list[Any]) -> list[tuple[str, str, tuple[Any, ...]]]:
    return [
        (e.decision.effect, e.decision.reason, e.decision.looked_up)
        for e in events
        if isinstance(e, ToolCalled) and e.decision is not None
    ]


def shop() -> Shop:
    return Shop(
        {
            "A1": {"status": "delivered", "total": 100, "customer": "ann"},
            "B2": {"status": "pending", "total": 20, "customer": "bo"},
        }
    )


async def test_each_decision_records_what_its_lookups_read(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "journal.db")
    live = await agent(store).run("refund", deps=shop())
    got = decisions(store.events(live.run_id))
    assert [g[0] for g in got] == ["allow", "deny", "deny", "deny"]
    a1 = '{"customer":"ann","status":"delivered","total":100}'
    assert got[0][2] == (('lookup:order:{"order_id":"A1"}', a1),)
    assert got[1][2] == got[0][2]
    assert got[2][2] == (
        ('lookup:order:{"order_id":"B2"}', '{"customer":"bo","status":"pending","total":20}'),
    )
    assert got[3][2] == (
        (
            'lookup:order:{"order_id":"BROKEN"}',
            "!lookup 'order' raised RuntimeError: the orders table is locked",
        ),
    )
    assert "the orders table is locked" in got[3][1]


async def test_a_replay_decides_from_the_recorded_state_not_todays(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "journal.db")
    live = await agent(store).run("refund", deps=shop())
    recorded = store.events(live.run_id)
    got = decisions(recorded)
    # Since the run: A1 was refunded in full and B2 delivered; BROKEN's table is fine.
    moved = Shop({"A1": {"status": "refunded", "total": 0}, "B2": {"status": "delivered"}})
    report = await replay_async(agent(), recorded, deps=moved)
    assert report.ok, report.summary()
    assert decisions(report.events) == got
    # an empty shop (the application's data gone): still the recorded state
    report = await replay_async(agent(), recorded, deps=Shop())
    assert report.ok, report.summary()
    assert decisions(report.events) == got
    # `pilothouse policy check --trace` reads the same record
    lines = [(n, json.loads(json.dumps(e.to_dict()))) for n, e in enumerate(recorded, 1)]
    replayed = list(policy_replay(policy(), lines))
    assert [(r.decision.effect, r.decision.reason, r.decision.looked_up) for r in replayed] == got


async def test_a_recording_without_lookups_asks_the_application_again(tmp_path: Path) -> None:
    # A journal from before decisions carried their lookups: the replay has no record
    # to serve, so the lookups read the state it is given (today's).
    store = SQLiteStore(tmp_path / "journal.db")
    live = await agent(store).run("refund", deps=shop())
    recorded = store.events(live.run_id)
    for e in recorded:
        if isinstance(e, ToolCalled) and e.decision is not None:
            d = e.decision
            e.decision = Decision(d.effect, d.rule, d.reason, d.fallback, d.message, d.approver)
    moved = shop()
    moved.orders["A1"]["status"] = "refunded"
    report = await replay_async(agent(), recorded, deps=moved)
    assert not report.ok  # the first refund is now denied: the state moved
    assert "decision" in str(report.divergence)


def test_the_lookup_record_round_trips_and_a_check_reads_each_lookup_once() -> None:
    d = Decision("deny", "r", "why", looked_up=(('lookup:order:{"order_id":"A1"}', "null"),))
    assert Decision.from_dict(json.loads(json.dumps(d.to_dict()))) == d
    assert "looked_up" not in Decision("allow").to_dict()
    reads: list[str] = []

    def counted(context: RunContext, order_id: str) -> Any:
        reads.append(order_id)
        return {"status": "delivered", "total": 10}

    checked = Policy.from_yaml(POLICY, lookups={"order": counted}).check(
        ToolCall("c1", "refund", {"order_id": "A1", "amount": 5}), RunContext(deps=None)
    )
    assert checked.allowed and reads == ["A1"]  # `value` and `$lookup` share one read
    assert checked.looked_up == (
        ('lookup:order:{"order_id":"A1"}', '{"status":"delivered","total":10}'),
    )


async def test_a_replay_without_the_deps_the_agent_declares_reports_the_error(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "journal.db")
    live = await agent(store).run("refund", deps=shop())
    report = await replay_async(agent(), store.events(live.run_id))  # no deps given
    assert not report.ok and report.outcome == "error" and report.events == []
    assert "declares deps_type=Shop: pass deps=" in str(report.divergence)
