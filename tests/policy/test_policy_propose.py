"""Task policies proposed by a model: applied only when they narrow, rejected otherwise."""

from __future__ import annotations

import json
from typing import Any

from pilothouse import ScriptedModel, tool
from pilothouse.exceptions import ModelError
from pilothouse.messages import ToolCall
from pilothouse.models.base import ModelRequest
from pilothouse.policy import Policy, Proposal, Rule, RunContext, propose_task_policy
from pilothouse.policy.propose import PROMPT_TEMPLATE


@tool
def get_order(order_id: str) -> str:
    """Look an order up."""
    return order_id


@tool(effect="irreversible")
def refund(order_id: str, amount: float) -> str:
    """Refund an order."""
    return "refunded"


@tool(effect="side_effect")
def send_email(to: str, body: str) -> str:
    """Send an e-mail."""
    return "sent"


TOOLS = [get_order, refund, send_email]
REQUEST = "Please refund order A17, it arrived broken."


def base_policy() -> Policy:
    """The application's policy: refunds up to 500 and e-mails are allowed."""
    return Policy(
        [
            Rule("refund", "allow", id="app-refunds", when={"args": {"amount": {"maximum": 500}}}),
            Rule("send_email", "allow", id="app-email"),
        ],
        name="app",
    )


NARROWING = """\
Here is the policy:
```yaml
version: 1
name: refund-a17
defaults: {read_only: deny, side_effect: deny, irreversible: deny, unknown: deny}
rules:
  - id: read-order
    tools: get_order
    effect: allow
    when: {args: {order_id: {const: A17}}}
  - id: refund-a17
    tools: refund
    effect: allow
    when: {args: {order_id: {const: A17}, amount: {maximum: 100}}}
    fallback: {message: "only order A17, at most 100"}
```
"""


def c(name: str, **args: Any) -> ToolCall:
    return ToolCall("id", name, args)


def effect(name: str) -> str:
    return {t.name: t.effect for t in TOOLS}[name]


async def propose(reply: str, base: Policy | None = None) -> tuple[Proposal, ScriptedModel]:
    model = ScriptedModel([reply])
    proposal = await propose_task_policy(model, REQUEST, base or base_policy(), TOOLS)
    return proposal, model


async def test_narrowing_proposal_is_applied_and_denies_what_base_allows() -> None:
    base = base_policy()
    proposal, _ = await propose(NARROWING, base)
    assert proposal.accepted, proposal.reason
    assert proposal.reason.startswith("accepted")
    assert proposal.proposed is not None and proposal.proposed.name == "refund-a17"
    ctx = RunContext(user_messages=[REQUEST])
    cases = [
        (c("refund", order_id="A17", amount=50.0), "allow", "allow"),
        # the base allows these; the task policy does not
        (c("refund", order_id="B99", amount=50.0), "allow", "deny"),
        (c("refund", order_id="A17", amount=300.0), "allow", "deny"),
        (c("send_email", to="x@evil.example", body="hi"), "allow", "deny"),
        (c("get_order", order_id="B99"), "allow", "deny"),
        (c("get_order", order_id="A17"), "allow", "allow"),
        # what the base denies stays denied
        (c("refund", order_id="A17", amount=600.0), "deny", "deny"),
    ]
    for call, before, after in cases:
        e = effect(call.name)
        assert base.check(call, ctx, effect=e).effect == before, call
        assert proposal.policy.check(call, ctx, effect=e).effect == after, call
    d = proposal.policy.check(c("refund", order_id="B99", amount=50.0), ctx, effect="irreversible")
    assert d.rule == "refund-a17" and "only order A17" in d.message


async def test_json_proposal_is_accepted() -> None:
    doc = {
        "version": 1,
        "name": "no-email",
        "rules": [{"id": "no-mail", "tools": "send_email", "effect": "deny"}],
    }
    proposal, _ = await propose(json.dumps(doc))
    assert proposal.accepted, proposal.reason
    call = c("send_email", to="a@b.example", body="x")
    assert base_policy().check(call, RunContext(), effect="side_effect").allowed
    d = proposal.policy.check(call, RunContext(), effect="side_effect")
    assert d.effect == "deny" and d.rule == "no-mail"


async def test_widening_proposal_is_rejected_with_layer_error() -> None:
    widening = """\
version: 1
name: greedy
rules:
  - {id: big-refunds, tools: refund, effect: allow}
  - {id: delete-all, tools: "delete_*", effect: allow}
"""
    base = Policy(
        [
            Rule("delete_*", "deny", id="never-delete"),
            Rule("refund", "allow", id="app-refunds", when={"args": {"amount": {"maximum": 500}}}),
        ],
        name="app",
    )
    proposal, _ = await propose(widening, base)
    assert not proposal.accepted
    assert proposal.policy is base
    assert proposal.reason.startswith("rejected: layer 'greedy' may only narrow 'app'")
    assert "never-delete" in proposal.reason


async def test_default_widening_and_allowing_a_default_denied_tool_are_rejected() -> None:
    # Policy() denies side-effecting tools by default; it learns the effect from the tools.
    allow_email = "rules: [{id: mail, tools: send_email, effect: allow}]"
    proposal, _ = await propose(allow_email, Policy(name="app"))
    assert not proposal.accepted
    assert "denies side_effect tool 'send_email' and has no rule allowing it" in proposal.reason
    wider = "defaults: {irreversible: allow}"
    proposal, _ = await propose(wider, Policy(name="app"))
    assert not proposal.accepted
    assert "default for irreversible tools is allow, above deny" in proposal.reason


async def test_malformed_output_is_rejected_never_applied() -> None:
    base = base_policy()
    replies = {
        "I cannot help with that.": "a policy must be a mapping",
        "```yaml\nrules: [{tools: refund, effect: allow\n```": "invalid YAML",
        "rules: [{tools: refund, effect: allow, when: {args: {amount: {maxi: 5}}}}]": "maxi",
        "rules: [{tools: refund, effect: permit}]": "effect must be allow, deny or ask",
        "": "holds no policy",
        "tools: {refund: {effect: read_only}}\nrules: []": "may not set 'tools'",
        "confirmation: '.*'\nrules: []": "may not set 'confirmation'",
    }
    for reply, why in replies.items():
        proposal, _ = await propose(reply, base)
        assert not proposal.accepted, reply
        assert proposal.policy is base
        assert proposal.proposed is None
        assert proposal.reason.startswith("rejected: malformed task policy"), proposal.reason
        assert why in proposal.reason, (reply, proposal.reason)


async def test_model_error_is_rejected() -> None:
    def fail(request: ModelRequest) -> str:
        raise ModelError("provider down")

    base = base_policy()
    proposal = await propose_task_policy(ScriptedModel(fail), REQUEST, base, TOOLS)
    assert not proposal.accepted and proposal.policy is base
    assert "provider down" in proposal.reason


async def test_model_receives_request_tools_and_rule_format() -> None:
    _, model = await propose(NARROWING)
    assert len(model.requests) == 1
    sent = model.requests[0]
    assert sent.tools == [] and sent.tool_choice == "none"
    text = "\n".join(m.content for m in sent.messages)
    assert REQUEST in text
    for t in TOOLS:
        assert f"- {t.name} [{t.effect}]" in text
    assert "order_id, amount" in text  # the arguments of refund
    assert "max_calls" in text and "defaults:" in text  # the rule format


async def test_prompt_template_is_overridable() -> None:
    model = ScriptedModel([NARROWING])
    template = "TASK={request}\nTOOLS={tools}\nFORMAT={rule_format}"
    proposal = await propose_task_policy(
        model, REQUEST, base_policy(), TOOLS, template=template, rule_format="YAML please"
    )
    assert proposal.accepted
    text = model.requests[0].messages[0].content
    assert text.startswith(f"TASK={REQUEST}\nTOOLS=- get_order")
    assert text.endswith("FORMAT=YAML please")
    assert "{request}" in PROMPT_TEMPLATE
