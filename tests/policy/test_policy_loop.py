"""The policy inside the loop: one choke point, decisions journaled, deny/abort/ask."""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse import Agent, MemoryStore, ScriptedModel, call, tool
from pilothouse.events import ToolCalled, ToolReturned, event_from_dict
from pilothouse.exceptions import PolicyDenied
from pilothouse.messages import ToolCall
from pilothouse.policy import Decision, Policy, Principal, Rule, RunContext

ran: list[tuple[str, dict[str, Any]]] = []


@tool
def get_order(order_id: str) -> str:
    """Look an order up."""
    ran.append(("get_order", {"order_id": order_id}))
    return f'{{"order_id": "{order_id}", "status": "pending"}}'


@tool(effect="irreversible")
def refund(order_id: str, amount: float = 10.0) -> str:
    """Refund an order."""
    ran.append(("refund", {"order_id": order_id, "amount": amount}))
    return "refunded"


@pytest.fixture(autouse=True)
def _clear() -> None:
    ran.clear()


def agent(script: list[Any], policy: Policy | None = None, **kw: Any) -> Agent[None, str]:
    return Agent(
        ScriptedModel(script),
        tools=[get_order, refund],
        store=MemoryStore(),
        policy=policy,
        **kw,
    )


def calls_of(a: Agent[None, str], run_id: str) -> list[ToolCalled]:
    return [e for e in a.store.events(run_id) if isinstance(e, ToolCalled)]


def results_of(a: Agent[None, str], run_id: str) -> list[ToolReturned]:
    return [e for e in a.store.events(run_id) if isinstance(e, ToolReturned)]


async def test_default_agent_denies_irreversible_tools_and_allows_read_only() -> None:
    a = agent([[call("get_order", order_id="A")], [call("refund", order_id="A")], "done"])
    result = await a.run("refund A")
    assert result.ok
    assert ran == [("get_order", {"order_id": "A"})]  # the refund never ran
    tc = calls_of(a, result.run_id)
    assert tc[0].decision is not None and tc[0].decision.rule == "default:read_only"
    assert tc[1].decision is not None and tc[1].decision.effect == "deny"
    tr = results_of(a, result.run_id)
    assert tr[1].result.is_error
    assert tr[1].result.content.startswith("Policy denied the call to 'refund'")
    # the model read the denial
    assert "Policy denied" in result.messages[-2].content


async def test_policy_sees_validated_arguments_with_defaults_bound() -> None:
    seen: list[dict[str, Any]] = []

    def spy(c: ToolCall, ctx: RunContext) -> bool:
        seen.append(dict(c.arguments))
        return True

    p = Policy([Rule("refund", "allow", when={"predicates": [spy]})])
    a = agent([[call("refund", order_id="A")], "done"], p)
    await a.run("x")
    assert seen == [{"order_id": "A", "amount": 10.0}]
    assert ran == [("refund", {"order_id": "A", "amount": 10.0})]


async def test_invalid_arguments_never_reach_a_condition() -> None:
    seen: list[Any] = []

    def spy(c: ToolCall, ctx: RunContext) -> bool:
        seen.append(c)
        return True

    p = Policy([Rule("refund", "allow", when={"predicates": [spy]})])
    a = agent(
        [[call("refund", order_id="A", bogus=1)], [call("refund")], "done"],
        p,
    )
    result = await a.run("x")
    assert seen == [] and ran == []
    tc = calls_of(a, result.run_id)
    assert all(e.decision is None for e in tc)  # rejected before the policy
    assert all(r.result.is_error for r in results_of(a, result.run_id))


async def test_state_and_confirmation_through_the_loop() -> None:
    p = Policy(
        [
            Rule(
                "refund",
                "allow",
                when={
                    "after": [{"tool": "get_order", "args": {"order_id": "$args.order_id"}}],
                    "confirmed": True,
                },
            )
        ]
    )
    script = [
        [call("refund", order_id="A")],
        [call("get_order", order_id="A")],
        [call("refund", order_id="A")],
        "done",
    ]
    result = await agent(script, p).run("yes, refund order A")
    assert ran == [("get_order", {"order_id": "A"}), ("refund", {"order_id": "A", "amount": 10.0})]
    assert result.ok
    # without the "yes" in the user's message the refund is denied even after the lookup
    ran.clear()
    script = [[call("get_order", order_id="A")], [call("refund", order_id="A")], "done"]
    await agent(script, p).run("refund order A")
    assert ran == [("get_order", {"order_id": "A"})]


async def test_rate_limit_counts_calls_of_the_same_response() -> None:
    p = Policy([Rule("refund", "allow", when={"max_calls": 1})])
    both = [call("refund", order_id="A"), call("refund", order_id="B")]
    a = agent([both, "done"], p)
    result = await a.run("x")
    assert [r[1]["order_id"] for r in ran] == ["A"]
    decisions = [e.decision.effect for e in calls_of(a, result.run_id) if e.decision]
    assert decisions == ["allow", "deny"]


async def test_abort_fallback_stops_the_run() -> None:
    p = Policy([Rule("refund", "deny", fallback="abort", id="no-refunds")])
    a = agent([[call("get_order", order_id="A"), call("refund", order_id="A")], "done"], p)
    result = await a.run("x")
    assert result.outcome == "policy_stop" and not result.ok
    assert ran == []  # nothing of the aborted response ran
    with pytest.raises(PolicyDenied):
        _ = result.output
    events = a.store.events(result.run_id)
    assert [e.type for e in events].count("tool_result") == 2
    stop = events[-1]
    assert stop.to_dict() | {"ts": 0} == {
        "type": "run_stopped",
        "run_id": result.run_id,
        "seq": stop.seq,
        "ts": 0,
        "step": 1,
        "reason": "policy",  # not a budget: no value, no maximum, the rule that aborted
        "message": stop.to_dict()["message"],
        "rule": "no-refunds",
    }


async def test_ask_without_approver_pauses_with_approver_decides() -> None:
    p = Policy([Rule("refund", "ask", id="human")])
    a = agent([[call("refund", order_id="A")], "done"], p)
    r = await a.run("x")
    d = calls_of(a, r.run_id)[0].decision
    assert d is not None and d.effect == "ask" and r.outcome == "paused"
    assert [q.tool for q in r.pending] == ["refund"] and "human" in r.pending[0].reason
    assert ran == []

    asked: list[Decision] = []

    async def approve(c: ToolCall, decision: Decision, ctx: RunContext) -> bool:
        asked.append(decision)
        return c.arguments["order_id"] == "A"

    a = agent(
        [[call("refund", order_id="A")], [call("refund", order_id="B")], "done"],
        p,
        approver=approve,
    )
    r = await a.run("x")
    assert [x[1]["order_id"] for x in ran] == ["A"]
    effects = [e.decision.effect for e in calls_of(a, r.run_id) if e.decision]
    assert effects == ["allow", "deny"] and len(asked) == 2

    def boom(c: ToolCall, decision: Decision, ctx: RunContext) -> bool:
        raise RuntimeError("pager down")

    ran.clear()
    a = agent([[call("refund", order_id="A")], "done"], p, approver=boom)
    r = await a.run("x")
    d = calls_of(a, r.run_id)[0].decision
    assert ran == [] and d is not None and "pager down" in d.reason


async def test_principal_reaches_conditions() -> None:
    p = Policy([Rule("refund", "allow", when={"principal": {"role": {"const": "admin"}}})])
    await agent([[call("refund", order_id="A")], "done"], p).run(
        "x", principal=Principal("u", "customer")
    )
    assert ran == []
    await agent([[call("refund", order_id="A")], "done"], p).run(
        "x", principal=Principal("u", "admin")
    )
    assert len(ran) == 1


async def test_decisions_survive_the_journal_round_trip() -> None:
    p = Policy([Rule("refund", "deny", id="never")])
    a = agent([[call("refund", order_id="A")], "done"], p)
    r = await a.run("x")
    event = calls_of(a, r.run_id)[0]
    again = event_from_dict(event.to_dict())
    assert isinstance(again, ToolCalled) and again.decision == event.decision
    assert event.to_dict()["decision"]["rule"] == "never"
    ctx = RunContext.from_events(a.store.events(r.run_id))
    assert ctx.user_messages == ["x"] and ctx.history == []  # the denied call did not happen


def test_agent_accepts_a_policy_file(tmp_path: Any) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("rules:\n  - {tools: refund, effect: allow}\n")
    a = Agent(
        ScriptedModel([[call("refund", order_id="A")], "done"]),
        tools=[refund],
        policy=str(f),
        store=MemoryStore(),
    )
    assert a.run_sync("x").ok and len(ran) == 1
