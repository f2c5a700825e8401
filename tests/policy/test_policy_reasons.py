"""Denials a model and a person can act on: every failing condition, a stable order, a source."""

from __future__ import annotations

from typing import Any

from pilothouse.messages import ToolCall
from pilothouse.policy import Policy, Principal, Rule, RunContext


def c(name: str, **arguments: Any) -> ToolCall:
    return ToolCall("c1", name, arguments)


WHEN: dict[str, Any] = {
    "args": {"amount": {"maximum": 100}, "currency": {"enum": ["EUR"]}},
    "after": [{"tool": "get_order", "args": {"order_id": "$args.order_id"}}],
    "confirmed": True,
    "principal": {"role": {"const": "agent"}},
}


def test_every_failing_condition_is_named_in_a_fixed_order() -> None:
    p = Policy([Rule("refund", "allow", id="refunds", when=WHEN)])
    ctx = RunContext(Principal("u", "customer"), ["refund please"])
    d = p.check(c("refund", amount=500, currency="USD", order_id="A1"), ctx, effect="irreversible")
    assert not d.allowed and d.rule == "refunds"
    reason = d.reason
    parts = [  # conditions.ORDER: the call's own values, then the run
        "argument amount: 500 is not <= 100",
        "argument currency:",
        "principal role:",
        "requires an explicit confirmation",
        "requires an earlier successful call get_order(order_id='A1')",
    ]
    positions = [reason.index(p) for p in parts]
    assert positions == sorted(positions), reason


def test_the_reason_does_not_depend_on_the_document_s_key_order() -> None:
    reversed_when = dict(reversed(list(WHEN.items())))
    reversed_when["args"] = dict(reversed(list(WHEN["args"].items())))
    ctx = RunContext(Principal("u", "customer"), ["refund please"])
    call = c("refund", amount=500, currency="USD", order_id="A1")
    a = Policy([Rule("refund", "allow", id="r", when=WHEN)]).check(call, ctx, effect="irreversible")
    b = Policy([Rule("refund", "allow", id="r", when=reversed_when)]).check(
        call, ctx, effect="irreversible"
    )
    assert a.reason == b.reason


def test_a_denial_says_why_each_allow_rule_did_not_apply() -> None:
    p = Policy(
        [
            Rule("refund", "allow", id="small", when={"args": {"amount": {"maximum": 100}}}),
            Rule("refund", "allow", id="staff", when={"principal": {"role": {"const": "agent"}}}),
            Rule("refund", "deny", id="frozen", when={"args": {"amount": {"const": -1}}}),
        ]
    )
    d = p.check(
        c("refund", amount=500), RunContext(Principal("u", "customer")), effect="irreversible"
    )
    assert not d.allowed and d.source == "rule" and d.rule == "small"
    assert "irreversible tools are denied unless a rule allows them" in d.reason
    assert "rule 'small' does not apply (argument amount: 500 is not <= 100)" in d.reason
    assert "rule 'staff' does not apply (principal role:" in d.reason
    assert "frozen" not in d.reason  # a deny rule that does not apply is no reason


def test_a_predicate_may_say_why() -> None:
    def not_flown(call: ToolCall, ctx: RunContext) -> bool | str:
        return True if call.arguments["flight"] == "later" else "the flight has already departed"

    p = Policy(
        [Rule("cancel", "allow", when={"predicates": ["not_flown"]})],
        predicates={"not_flown": not_flown},
    )
    assert p.check(c("cancel", flight="later"), RunContext(), effect="irreversible").allowed
    d = p.check(c("cancel", flight="gone"), RunContext(), effect="irreversible")
    assert "not_flown: the flight has already departed" in d.reason


def test_decisions_name_their_source() -> None:
    p = Policy([Rule("refund", "allow", id="r", when={"args": {"order_id": {"const": "A"}}})])
    assert p.check(c("refund", order_id="A"), RunContext(), effect="irreversible").source == "rule"
    assert p.check(c("other"), RunContext(), effect="irreversible").source == "default"
    broken = p.check(c("refund"), RunContext(), effect="irreversible")  # lacks order_id
    assert broken.source == "engine" and broken.rule == "r" and "fail-closed" in broken.reason
