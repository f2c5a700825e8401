"""State: named lookups served by the application, and totals over the run (split refunds)."""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse import Agent, MemoryStore, ScriptedModel, call, tool
from pilothouse.events import ToolCalled
from pilothouse.exceptions import PolicyError
from pilothouse.messages import ToolCall
from pilothouse.policy import Policy, Rule, RunContext
from pilothouse.policy.lint import lint

ORDERS = {"A1": {"status": "delivered", "total": 349.0}, "B2": {"status": "pending", "total": 20}}


def order(ctx: RunContext, order_id: str) -> dict[str, Any] | None:
    """The application's lookup: the order, from the run's deps (the shop)."""
    shop: dict[str, dict[str, Any]] = ctx.deps
    return shop.get(order_id)


REFUNDS = {
    "version": 1,
    "lookups": ["order"],
    "rules": [
        {
            "id": "refund-up-to-what-was-paid",
            "tools": "refund",
            "when": {
                "lookup": {
                    "order": {
                        "args": {"order_id": "$args.order_id"},
                        "value": {"properties": {"status": {"const": "delivered"}}},
                    }
                },
                "total": {"field": "amount", "per": "order_id", "max": "$lookup.order.total"},
            },
        }
    ],
}


def c(**arguments: Any) -> ToolCall:
    return ToolCall("c", "refund", arguments)


def context() -> RunContext:
    return RunContext(deps=ORDERS)


def test_split_refunds_never_exceed_the_order_s_total() -> None:
    p = Policy.from_dict(REFUNDS, lookups={"order": order})
    ctx = context()
    assert p.check(c(order_id="A1", amount=200), ctx, effect="irreversible").allowed
    ctx.record("refund", {"order_id": "A1", "amount": 200}, "ok", effect="irreversible")
    assert p.check(c(order_id="A1", amount=149), ctx, effect="irreversible").allowed
    ctx.record("refund", {"order_id": "A1", "amount": 149}, "ok", effect="irreversible")
    d = p.check(c(order_id="A1", amount=0.01), ctx, effect="irreversible")
    assert not d.allowed
    assert "total amount for order_id='A1' would be 349.01 (349 so far in this run + 0.01)" in (
        d.reason
    )
    assert "above 349" in d.reason


def test_the_lookup_s_value_condition_and_a_missing_order() -> None:
    p = Policy.from_dict(REFUNDS, lookups={"order": order})
    d = p.check(c(order_id="B2", amount=1), context(), effect="irreversible")
    assert not d.allowed and "lookup order: property 'status': 'pending' is not 'delivered'" in (
        d.reason
    )
    d = p.check(c(order_id="Z9", amount=1), context(), effect="irreversible")
    assert not d.allowed and "lookup order: None is not an object" in d.reason


def test_a_lookup_that_raises_fails_closed() -> None:
    def broken(ctx: RunContext, order_id: str) -> Any:
        raise ConnectionError("shop down")

    p = Policy.from_dict(REFUNDS, lookups={"order": broken})
    d = p.check(c(order_id="A1", amount=1), context(), effect="irreversible")
    assert not d.allowed and d.source == "engine"
    assert "lookup 'order' raised ConnectionError: shop down" in d.reason


def test_totals_are_exact_decimals() -> None:
    p = Policy([Rule("tip", "allow", when={"total": {"field": "amount", "max": 0.3}})])
    ctx = RunContext()
    ctx.record("tip", {"amount": 0.1}, "ok")
    ctx.record("tip", {"amount": 0.1}, "ok")
    assert p.check(ToolCall("c", "tip", {"amount": 0.1}), ctx, effect="side_effect").allowed


def test_malformed_state_conditions_name_the_place() -> None:
    with pytest.raises(PolicyError, match="unknown lookup 'ordr'"):
        Policy([Rule("refund", when={"lookup": {"ordr": {}}})], lookups={"order": order})
    with pytest.raises(PolicyError, match=r"needs `lookup: \{order: ...\}` in the same block"):
        Policy(
            [Rule("refund", when={"total": {"field": "amount", "max": "$lookup.order.total"}})],
            lookups={"order": order},
        )
    with pytest.raises(PolicyError, match="a bound is a number or a \\$reference"):
        Policy([Rule("refund", when={"total": {"field": "amount", "max": "lots"}})])
    with pytest.raises(PolicyError, match="unknown key"):
        Policy([Rule("refund", when={"total": {"field": "amount", "max": 3, "min": 1}})])


def test_lint_checks_lookups_against_the_declaration() -> None:
    doc = dict(REFUNDS, lookups=["orders"])
    p = Policy.from_dict(doc, lookups={"order": order})
    found = [str(f) for f in lint(p)]
    assert "error: unknown lookup 'order': not declared; did you mean 'orders'?" in found


@tool(effect="irreversible")
def refund(order_id: str, amount: float) -> str:
    """Refund part of an order."""
    return "refunded"


async def test_three_refunds_in_one_step_are_counted_as_they_are_allowed() -> None:
    """The loop records an allowed call before the next one of the step is checked."""
    p = Policy.from_dict(REFUNDS, lookups={"order": order})
    script = [
        [
            call("refund", order_id="A1", amount=120.17),
            call("refund", order_id="A1", amount=120.18),
            call("refund", order_id="A1", amount=120.19),
        ],
        "done",
    ]
    a = Agent(ScriptedModel(script), tools=[refund], store=MemoryStore(), policy=p)
    result = await a.run("refund my order A1", deps=ORDERS)
    decisions = [e.decision for e in a.store.events(result.run_id) if isinstance(e, ToolCalled)]
    assert [d.effect for d in decisions if d] == ["allow", "allow", "deny"]
