"""`now` and durations: the `age` condition reads the context's clock, never the wall's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from pilothouse.exceptions import PolicyError
from pilothouse.messages import ToolCall
from pilothouse.policy import Policy, RunContext
from pilothouse.policy.timing import duration, seconds_since_epoch

POLICY = """
version: 1
lookups: [order, reservation]
rules:
  - id: return-within-30-days
    tools: return_items
    when:
      lookup: {order: {args: {order_id: $args.order_id}}}
      age: {of: $lookup.order.delivered, max: 30d}
  - id: free-cancellation
    tools: cancel_reservation
    when:
      lookup: {reservation: {args: {id: $args.id}}}
      age: [{of: $lookup.reservation.created_at, max: 24h}]
  - id: cooling-off
    tools: close_account
    when: {age: {of: $principal.since, min: 7d}}
"""

ORDERS = {"A1": {"delivered": "2024-05-01"}, "A2": {"delivered": None}, "A3": {"delivered": "soon"}}
RES = {"R1": {"created_at": "2024-05-10T09:30:00Z"}, "R2": {"created_at": 1715333400}}


def t(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def policy() -> Policy:
    return Policy.from_yaml(
        POLICY,
        lookups={
            "order": lambda ctx, order_id: ORDERS.get(order_id),
            "reservation": lambda ctx, id: RES.get(id),
        },
    )


def at(when: str, **kw: Any) -> RunContext:
    return RunContext(clock=lambda: t(when), **kw)


def ret(order_id: str) -> ToolCall:
    return ToolCall("r", "return_items", {"order_id": order_id})


def test_a_return_within_30_days_of_delivery_by_the_context_s_clock() -> None:
    p = policy()
    assert p.check(ret("A1"), at("2024-05-31T00:00:00"), effect="side_effect").allowed
    d = p.check(ret("A1"), at("2024-05-31T00:00:01"), effect="side_effect")
    assert not d.allowed
    assert "$lookup.order.delivered (2024-05-01) was 30d ago, more than 30d" in d.reason


def test_a_reservation_cancelled_free_within_24_hours() -> None:
    p = policy()
    c = ToolCall("c", "cancel_reservation", {"id": "R1"})
    assert p.check(c, at("2024-05-11T09:29:59"), effect="irreversible").allowed
    assert not p.check(c, at("2024-05-11T09:30:01"), effect="irreversible").allowed
    c2 = ToolCall("c", "cancel_reservation", {"id": "R2"})  # epoch seconds, the same instant
    assert p.check(c2, at("2024-05-11T09:29:59"), effect="irreversible").allowed
    assert not p.check(c2, at("2024-05-11T09:30:01"), effect="irreversible").allowed


def test_a_minimum_age_from_the_principal() -> None:
    from pilothouse.policy import Principal

    p = policy()
    c = ToolCall("c", "close_account", {})
    who = Principal("u", attributes={"since": "2024-05-01"})
    assert not p.check(c, at("2024-05-07T23:59:59", principal=who), effect="irreversible").allowed
    assert p.check(c, at("2024-05-08T00:00:00", principal=who), effect="irreversible").allowed


def test_missing_and_malformed_times_deny() -> None:
    p = policy()
    d = p.check(ret("A2"), at("2024-05-02T00:00:00"), effect="side_effect")
    assert not d.allowed and "has no time to measure from" in d.reason
    d = p.check(ret("A3"), at("2024-05-02T00:00:00"), effect="side_effect")
    assert not d.allowed and d.source == "engine" and "'soon' is not a time" in d.reason
    d = p.check(ret("ZZ"), at("2024-05-02T00:00:00"), effect="side_effect")
    assert not d.allowed  # no order: the lookup fails first


def test_durations_and_timestamps() -> None:
    assert duration("30d") == 30 * 86400 and duration("24h") == 86400 and duration(90) == 90
    assert duration("1.5h") == 5400 and duration("2w") == 14 * 86400
    assert duration("-1d") is None and duration("ten days") is None and duration(True) is None
    assert seconds_since_epoch("2024-05-01") == seconds_since_epoch("2024-05-01T00:00:00Z")
    assert seconds_since_epoch("1714521600") == seconds_since_epoch("2024-05-01") == 1714521600
    # no offset is UTC, never the machine's local time
    assert seconds_since_epoch("2024-05-01T02:00:00") == seconds_since_epoch(
        "2024-05-01T04:00:00+02:00"
    )


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ("{age: {of: $args.placed, max: 30 days}}", "max must be a duration"),
        ("{age: {of: '2024-01-01', max: 30d}}", "of must be a \\$reference"),
        ("{age: {of: $args.x}}", "age needs `max` and/or `min`"),
        ("{age: {of: $args.x, max: 1d, since: 2d}}", "age has `of`"),
        ("{age: {of: $lookup.order.placed, max: 1d}}", "needs `lookup: {order: ...}`"),
    ],
)
def test_malformed_age_conditions_name_the_line(when: str, message: str) -> None:
    text = f"version: 1\nrules:\n  - tools: t\n    when: {when}\n"
    with pytest.raises(PolicyError, match=message) as info:
        Policy.from_yaml(text, lookups={"order": lambda ctx: None})
    assert "line 4" in str(info.value)
