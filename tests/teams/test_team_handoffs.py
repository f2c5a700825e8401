"""Handoffs and delegation: typed payloads, context policies, the policy, the run tree."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel
from team_helpers import own_usage, sqlite, tree

from pilothouse import Agent, ScriptedModel, call, tool
from pilothouse.events import ChildStarted, ToolCalled, ToolReturned
from pilothouse.exceptions import ConfigurationError
from pilothouse.messages import Usage
from pilothouse.policy import Policy, Rule
from pilothouse.runtime.journal import Store
from pilothouse.teams import Handoff, Team, agent_tool


class Case(BaseModel):
    order_id: str


class Verdict(BaseModel):
    approved: bool
    note: str


@tool
def lookup_customer(name: str) -> str:
    """Find a customer."""
    return f"{name}: gold member"


def desk(
    store: Store,
    triage_replies: list[object],
    *,
    context: str = "payload",
    orders_replies: list[object] | None = None,
    policy: Policy | None = None,
) -> tuple[Team, ScriptedModel, ScriptedModel]:
    orders_model = ScriptedModel(orders_replies or ["Order A-1 ships tomorrow."])
    orders = Agent(orders_model, "You handle orders.", [], name="orders", store=store)
    triage_model = ScriptedModel(triage_replies)
    triage = Agent(
        triage_model,
        "You triage. SECRET-TRIAGE-PROMPT",
        [lookup_customer],
        name="triage",
        store=store,
        policy=policy,
    )
    handoff = Handoff(orders, "Order questions.", context=context, payload=Case)  # type: ignore[arg-type]
    return Team(triage, handoffs={"triage": [handoff]}), triage_model, orders_model


def transfer(**payload: object) -> object:
    return call("transfer_to_orders", reason="an order question", payload=payload)


def test_handoff_payload_only_target_sees_exactly_the_payload(tmp_path: Path) -> None:
    store = sqlite(tmp_path)
    replies: list[object] = [[call("lookup_customer", name="Ann")], transfer(order_id="A-1")]
    team, _, orders_model = desk(store, replies)
    result = team.run_sync("Where is my order A-1? I am Ann.", run_id="t1")
    assert result.outcome == "final" and result.output == "Order A-1 ships tomorrow."
    (request,) = orders_model.requests
    assert [m.role for m in request.messages] == ["system", "user"]
    assert request.messages[1].content == (
        "triage handed this conversation to you. Reason: an order question\n\n"
        'Payload: {"order_id":"A-1"}'
    )
    assert request.tools == []  # no other agent's tools
    sent = repr(request)
    for leak in ("lookup_customer", "gold member", "SECRET-TRIAGE-PROMPT", "I am Ann"):
        assert leak not in sent
    # the run tree: the handoff is a child run, its call journaled with reason and payload
    assert tree(store, "t1") == ["t1", "t1.2.0.handoff"]
    called = [e for e in store.events("t1") if isinstance(e, ToolCalled)]
    assert called[-1].call.name == "transfer_to_orders"
    assert called[-1].call.arguments == {
        "reason": "an order question",
        "payload": {"order_id": "A-1"},
    }
    started = [e for e in store.events("t1") if isinstance(e, ChildStarted)]
    assert [(s.agent, s.child_run_id) for s in started] == [("orders", "t1.2.0.handoff")]
    assert store.get_run("t1.2.0.handoff").agent == "orders"


def test_handoff_summary_carries_the_summary_not_the_history(tmp_path: Path) -> None:
    store = sqlite(tmp_path)
    summarised = call(
        "transfer_to_orders",
        reason="order",
        payload={"order_id": "A-1"},
        summary="Ann asks about A-1.",
    )
    team, _, orders_model = desk(
        store, [[call("lookup_customer", name="Ann")], summarised], context="summary"
    )
    team.run_sync("Where is my order A-1? I am Ann.", run_id="t2")
    text = orders_model.requests[0].messages[1].content
    assert "Summary: Ann asks about A-1." in text
    assert "I am Ann" not in text and "gold member" not in text


def test_handoff_full_passes_the_words_but_no_tools(tmp_path: Path) -> None:
    store = sqlite(tmp_path)
    triage_replies: list[object] = [
        [call("lookup_customer", name="Ann")],
        transfer(order_id="A-1"),
    ]
    team, _, orders_model = desk(store, triage_replies, context="full")
    team.run_sync("Where is my order A-1? I am Ann.", run_id="t3")
    (request,) = orders_model.requests
    text = request.messages[1].content
    assert "user: Where is my order A-1? I am Ann." in text
    sent = repr(request)
    for leak in ("lookup_customer", "gold member", "SECRET-TRIAGE-PROMPT"):
        assert leak not in sent
    assert request.tools == []


def test_a_policy_rule_forbids_the_transfer(tmp_path: Path) -> None:
    store = sqlite(tmp_path)
    policy = Policy([Rule("transfer_to_orders", "deny", id="no-orders")])
    team, triage_model, orders_model = desk(
        store, [transfer(order_id="A-1"), "I cannot pass this on."], policy=policy
    )
    result = team.run_sync("Where is A-1?", run_id="t4")
    assert result.output == "I cannot pass this on."
    assert orders_model.requests == []  # the target never ran
    assert tree(store, "t4") == ["t4"]
    (called,) = [e for e in store.events("t4") if isinstance(e, ToolCalled)]
    assert called.decision is not None and called.decision.rule == "no-orders"
    assert "Policy denied" in triage_model.requests[1].messages[-1].content


def test_abuse_unknown_target_and_bad_payload_start_nothing(tmp_path: Path) -> None:
    store = sqlite(tmp_path)
    replies: list[object] = [
        call("transfer_to_ghost", reason="x", payload={"order_id": "A-1"}),
        call("transfer_to_triage", reason="me", payload={"order_id": "A-1"}),
        call("transfer_to_orders", reason="x", payload={"order": 7}),
        "Nothing to hand off.",
    ]
    team, _triage_model, orders_model = desk(store, replies)
    result = team.run_sync("hi", run_id="t5")
    assert result.output == "Nothing to hand off."
    assert orders_model.requests == [] and tree(store, "t5") == ["t5"]
    results = [e.result for e in store.events("t5") if isinstance(e, ToolReturned)]
    assert [r.is_error for r in results] == [True, True, True]
    assert "Unknown tool 'transfer_to_ghost'" in results[0].content
    assert "Unknown tool 'transfer_to_triage'" in results[1].content
    assert "order_id" in results[2].content  # the payload's type error, for the model


def test_abuse_a_handoff_to_itself_is_refused_when_the_team_is_built(tmp_path: Path) -> None:
    store = sqlite(tmp_path)
    a = Agent(ScriptedModel(["x"]), "A.", name="a", store=store)
    with pytest.raises(ConfigurationError, match="cannot hand off to itself"):
        Team(a, handoffs={"a": [Handoff(a)]})
    with pytest.raises(ConfigurationError, match="not an agent of the team"):
        Team(a, handoffs={"ghost": [Handoff(a)]})


def test_delegation_returns_the_members_typed_output(tmp_path: Path) -> None:
    store = sqlite(tmp_path)
    reviewer = Agent(
        ScriptedModel(['{"approved": true, "note": "fine"}']),
        "You review.",
        name="reviewer",
        output_type=Verdict,
        store=store,
    )
    lead_model = ScriptedModel([call("ask_reviewer", task="Review the draft."), "Approved: fine"])
    lead = Agent(lead_model, "You lead.", [agent_tool(reviewer)], name="lead", store=store)
    result = lead.run_sync("Ship the draft?", run_id="d1")
    assert result.output == "Approved: fine"
    tool_result = lead_model.requests[1].messages[-1]
    assert Verdict.model_validate_json(tool_result.content) == Verdict(approved=True, note="fine")
    assert tree(store, "d1") == ["d1", "d1.1.0.1"]
    # usage rolls up to the token
    assert result.usage == own_usage(store, "d1") + own_usage(store, "d1.1.0.1")


def test_team_usage_is_the_sum_of_its_runs_to_the_token(tmp_path: Path) -> None:
    store = sqlite(tmp_path)
    team, _, _ = desk(
        store,
        [[call("lookup_customer", name="Ann")], transfer(order_id="A-1")],
        orders_replies=[[call("transfer_to_nowhere")], "Order A-1 ships tomorrow, Ann."],
    )
    result = team.run_sync("Where is my order A-1?", run_id="u1")
    runs = tree(store, "u1")
    assert len(runs) == 2
    total = Usage()
    for run_id in runs:
        total += own_usage(store, run_id)
    assert result.usage == total
    assert result.usage.total_tokens == total.total_tokens > 0


def test_a_handoff_target_that_pauses_pauses_the_chain_and_resumes_once(tmp_path: Path) -> None:
    store = sqlite(tmp_path)
    shipped: list[str] = []

    @tool(effect="side_effect")
    def ship(order_id: str) -> str:
        """Ship an order."""
        shipped.append(order_id)
        return "shipped"

    orders_model = ScriptedModel([call("ship", order_id="A-1"), "Shipped A-1."])
    orders = Agent(
        orders_model,
        "You ship.",
        [ship],
        name="orders",
        store=store,
        policy=Policy([Rule("ship", "ask")]),
    )
    triage_model = ScriptedModel([transfer(order_id="A-1")])
    triage = Agent(triage_model, "You triage.", name="triage", store=store)
    team = Team(triage, handoffs={"triage": [Handoff(orders, payload=Case)]})
    paused = team.run_sync("Ship A-1", run_id="P")
    assert paused.outcome == "paused" and shipped == []
    assert team.waiting("P") == "P.1.0.handoff"
    result = team.resume_sync("P", approvals={paused.pending[0].key: True})
    assert result.outcome == "final" and result.output == "Shipped A-1."
    assert shipped == ["A-1"]
    assert tree(store, "P") == ["P", "P.1.0.handoff"]
    assert len(triage_model.requests) == 1 and len(orders_model.requests) == 2
