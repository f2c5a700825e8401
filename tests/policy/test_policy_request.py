"""Task policies from the request, deterministic (issue 14 item 4): consequential tools the
request does not ask for are denied, values the user gave are bound to their roles, and the
task layer is applied only when it narrows."""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse.exceptions import PolicyError
from pilothouse.messages import ToolCall
from pilothouse.policy import Policy, Principal, Rule, RunContext, ToolInfo, propose_from_request

BANK = Policy(
    [
        Rule("send_money", "allow", id="pay", when={"trusted": ["recipient"]}),
        Rule(
            "update_standing_order",
            "allow",
            id="rent",
            when={"trusted": {"args": {"recipient": "landlord"}}},
        ),
        Rule("update_password", "allow", id="pw", when={"trusted": ["password"]}),
    ],
    tools={
        "send_money": ToolInfo("irreversible"),
        "update_standing_order": ToolInfo("side_effect"),
        "update_password": ToolInfo("irreversible"),
        "get_balance": ToolInfo("read_only"),
    },
    name="bank",
)
INTENTS = {
    "send_money": r"\b(pay|send|transfer|refund)\b",
    "update_standing_order": r"\b(standing order|rent)\b",
    "update_password": r"\bpassword\b",
    "get_balance": r"\bbalance\b",
}
ROLES = {"landlord": r"landlord'?s? (?:account|iban)(?: is)? (\S+)"}
IBAN = "DE89370400440532013000"
EVIL = "US133000000121212121212"


def check(p: Policy, ctx: RunContext, tool: str, **arguments: Any) -> Any:
    return p.check(ToolCall("c1", tool, arguments), ctx, effect=p.tools[tool].effect)


def test_tools_the_request_does_not_ask_for_are_denied_and_the_rest_decided_by_base() -> None:
    request = f"Send 50 to {IBAN} for the concert tickets, reference 'hunter2'"
    proposal = propose_from_request(request, BANK, intents=INTENTS)
    assert proposal.accepted and "update_password" in proposal.reason
    ctx = RunContext(Principal("u"), [request])
    # the base alone would let an injection set the password to a value the user wrote
    assert check(BANK, ctx, "update_password", password="hunter2").allowed
    d = check(proposal.policy, ctx, "update_password", password="hunter2")
    assert not d.allowed and d.rule == "task-does-not-ask-for-update_password"
    assert "does not ask for update_password" in d.message
    assert check(proposal.policy, ctx, "send_money", recipient=IBAN).allowed
    # the base still decides what the task allows: an untrusted recipient stays refused
    assert not check(proposal.policy, ctx, "send_money", recipient=EVIL).allowed
    # reading is never narrowed (get_balance is read-only: "balance" need not be said)
    assert check(proposal.policy, ctx, "get_balance").allowed


def test_a_value_given_for_a_role_is_bound_to_it_and_trusted_only_for_it() -> None:
    request = f"I moved: my new landlord's account is {EVIL}. Update the rent standing order."
    proposal = propose_from_request(request, BANK, intents=INTENTS, roles=ROLES)
    assert proposal.bindings == {"landlord": [EVIL]}
    principal = Principal("u", attributes={"roles": dict(proposal.bindings)})
    ctx = RunContext(principal, [request])
    assert check(proposal.policy, ctx, "update_standing_order", recipient=EVIL).allowed
    # an injection asking to pay the same account: the task does not ask for a payment,
    # and the value is the landlord's, trusted only for the standing order
    assert not check(proposal.policy, ctx, "send_money", recipient=EVIL).allowed
    assert not check(BANK, ctx, "send_money", recipient=EVIL).allowed
    assert check(BANK, RunContext(Principal("u"), [request]), "send_money", recipient=EVIL).allowed


def test_applied_only_when_it_narrows() -> None:
    request = "Pay the rent and change my password, then tell me my balance"
    proposal = propose_from_request(request, BANK, intents=INTENTS)
    assert not proposal.accepted and proposal.policy is BANK
    assert "asks for every tool" in proposal.reason
    # the same request gives the same proposal
    again = propose_from_request(request, BANK, intents=INTENTS)
    assert (again.accepted, again.reason) == (proposal.accepted, proposal.reason)


def test_a_tool_without_intent_words_is_left_to_the_base() -> None:
    proposal = propose_from_request("hello", BANK, intents={"update_password": r"password"})
    assert proposal.accepted and proposal.proposed is not None
    assert [r.id for r in proposal.proposed.rules] == ["task-does-not-ask-for-update_password"]


def test_malformed_patterns_are_the_application_s_error() -> None:
    with pytest.raises(PolicyError, match=r"intents\.send_money"):
        propose_from_request("x", BANK, intents={"send_money": "(unclosed"})
    with pytest.raises(PolicyError, match="needs a group"):
        propose_from_request("x", BANK, intents=INTENTS, roles={"landlord": "landlord"})


def test_a_hostile_request_is_read_bounded_and_binds_nothing_odd() -> None:
    request = "landlord's account is " + "A" * 100_000
    proposal = propose_from_request(request, BANK, intents=INTENTS, roles=ROLES)
    assert [len(v) for v in proposal.bindings["landlord"]] == [
        20_000 - len("landlord's account is ")
    ]
