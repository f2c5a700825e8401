"""Interrupts: a call that needs a person pauses the run; resume continues with the decision.

The pause is durable: the journal holds the waiting calls, the process may exit, and
another `Agent` (here: a new instance over the same SQLite file) continues the run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pilothouse import Agent, ScriptedModel, ask_human, tool
from pilothouse.events import ApprovalGiven, ApprovalRequested, ToolCalled
from pilothouse.exceptions import (
    ApprovalError,
    ConfigurationError,
    RunFinishedError,
    RunPaused,
    ToolCallInDoubtError,
)
from pilothouse.messages import Message, ToolCall
from pilothouse.policy import Policy, Principal, Rule
from pilothouse.tools import Tool
from turns import Crash, by_turn

if TYPE_CHECKING:
    from conftest import CLI


def shop(ledger: list[str], *, crash: bool = False) -> list[Tool]:
    @tool(effect="irreversible", requires_approval=True)
    def refund(order_id: str, amount: float) -> str:
        """Refund an order."""
        if crash:
            raise Crash
        ledger.append(f"refund {order_id} {amount}")
        return f"refunded {amount} on {order_id}"

    @tool
    def order_status(order_id: str) -> str:
        """Status of an order."""
        ledger.append(f"status {order_id}")
        return "delivered"

    return [refund, order_status]


def support_agent(
    tmp_path: Path, replies: list[Any], ledger: list[str], **kw: Any
) -> tuple[Agent[None, str], ScriptedModel]:
    model = by_turn(replies)
    tools = kw.pop("tools", None) or shop(ledger, crash=kw.pop("crash", False))
    agent = Agent(
        model,
        tools=tools,
        policy=kw.pop("policy", Policy.allow_all()),
        store=str(tmp_path / "journal.db"),
        **kw,
    )
    return agent, model


REFUND = [
    [
        ToolCall("c1", "order_status", {"order_id": "A1"}),
        ToolCall("c2", "refund", {"order_id": "A1", "amount": 250.0}),
    ],
    "Your refund is on its way.",
]


async def test_requires_approval_pauses_then_approval_runs_the_call_once(tmp_path: Path) -> None:
    ledger: list[str] = []
    agent, _ = support_agent(tmp_path, REFUND, ledger)
    result = await agent.run("refund my order A1")

    assert result.outcome == "paused" and not result.ok
    assert ledger == []  # nothing of the paused step ran, not even the read-only call
    [pending] = result.pending
    assert (pending.kind, pending.tool, pending.key) == (
        "approval",
        "refund",
        f"{result.run_id}:1:1",
    )
    assert pending.arguments == {"order_id": "A1", "amount": 250.0}
    assert "requires a person's approval" in pending.reason
    with pytest.raises(RunPaused, match="waiting for a person"):
        _ = result.output
    assert agent.store.get_run(result.run_id).status == "paused"
    events = agent.store.events(result.run_id)
    assert [e.type for e in events[-3:]] == ["tool_call", "tool_call", "approval_requested"]
    waiting = [e for e in events if isinstance(e, ToolCalled) and e.call.name == "refund"]
    assert waiting[0].decision is not None and waiting[0].decision.effect == "ask"

    # A later process: a new agent over the same journal file decides.
    again, model = support_agent(tmp_path, REFUND, ledger)
    done = await again.resume(result.run_id, approvals={pending.key: True}, approved_by="dana")
    assert done.output == "Your refund is on its way."
    assert ledger == ["status A1", "refund A1 250.0"]
    assert len(model.requests) == 1  # only the final answer was asked for
    events = again.store.events(result.run_id)
    given = [e for e in events if isinstance(e, ApprovalGiven)]
    assert [(g.key, g.approved, g.by) for g in given] == [(pending.key, True, "dana")]
    assert [e.seq for e in events] == list(range(len(events)))
    assert again.store.get_run(result.run_id).status == "final"
    with pytest.raises(RunFinishedError):
        await again.resume(result.run_id, approvals={pending.key: True})


async def test_a_declined_call_is_not_run_and_the_model_reads_why(tmp_path: Path) -> None:
    ledger: list[str] = []
    agent, model = support_agent(tmp_path, REFUND, ledger)
    paused = await agent.run("refund A1")
    key = paused.pending[0].key
    done = await agent.resume(paused.run_id, approvals={key: False})
    assert done.ok and ledger == ["status A1"]
    tool_messages = [m for m in model.requests[-1].messages if m.role == "tool"]
    assert "A person declined the call to 'refund'" in tool_messages[-1].content


async def test_ask_human_question_is_answered_on_resume(tmp_path: Path) -> None:
    replies = [
        ToolCall("q", "ask_human", {"question": "Which size do you want?"}),
        "Exchanging for size M.",
    ]
    agent, model = support_agent(tmp_path, replies, [], tools=[ask_human])
    paused = await agent.run("exchange my shirt")
    [question] = paused.pending
    assert (question.kind, question.reason) == ("question", "Which size do you want?")
    with pytest.raises(ApprovalError, match="give the answer text"):
        await agent.resume(paused.run_id, approvals={question.key: True})
    done = await agent.resume(paused.run_id, approvals={question.key: "M, please"})
    assert done.output == "Exchanging for size M."
    assert model.requests[-1].messages[-1].content == "M, please"


async def test_policy_ask_pauses_and_partial_decisions_keep_it_paused(tmp_path: Path) -> None:
    ledger: list[str] = []

    @tool(effect="side_effect")
    def change_address(order_id: str, address: str) -> str:
        """Change the shipping address."""
        ledger.append(f"address {order_id}")
        return "changed"

    replies = [
        [
            ToolCall("a", "change_address", {"order_id": "A1", "address": "1 Road"}),
            ToolCall("b", "change_address", {"order_id": "B2", "address": "1 Road"}),
        ],
        "Both changed.",
    ]
    policy = Policy([Rule("change_address", "ask", id="address-needs-human")])
    agent, _ = support_agent(tmp_path, replies, ledger, tools=[change_address], policy=policy)
    paused = await agent.run("move both orders")
    keys = [p.key for p in paused.pending]
    assert len(keys) == 2 and all("address-needs-human" in p.reason for p in paused.pending)

    still = await agent.resume(paused.run_id, approvals={keys[0]: True})
    assert still.outcome == "paused" and [p.key for p in still.pending] == [keys[1]]
    assert ledger == []  # nothing runs until every waiting call is decided

    with pytest.raises(ApprovalError, match=r"no call .* is waiting") as err:
        await agent.resume(paused.run_id, approvals={keys[0]: True})
    assert paused.run_id in str(err.value) and err.value.step == 1
    with pytest.raises(ApprovalError, match="True or False"):
        await agent.resume(paused.run_id, approvals={keys[1]: "yes"})

    done = await agent.resume(paused.run_id, approvals={keys[1]: False})
    assert done.output == "Both changed." and ledger == ["address A1"]
    requested = [e for e in agent.store.events(paused.run_id) if isinstance(e, ApprovalRequested)]
    assert len(requested) == 2  # a still-paused resume does not ask again


async def test_a_resumed_run_acts_for_the_principal_it_was_started_for(tmp_path: Path) -> None:
    # The lookup after the refund is allowed for alice only: after the pause, the
    # policy must still know whom the run acts for, though resume is not told.
    replies = [
        [ToolCall("c1", "refund", {"order_id": "A1", "amount": 10.0})],
        [ToolCall("c2", "order_status", {"order_id": "A1"})],
        "Refunded; the order is delivered.",
    ]
    policy = Policy(
        [
            Rule("refund", "allow"),
            Rule("order_status", "allow", when={"principal": {"user": {"const": "alice"}}}),
        ]
    )
    ledger: list[str] = []
    alice = Principal("alice", "customer", {"tier": "gold"})
    agent, _ = support_agent(tmp_path, replies, ledger, policy=policy)
    paused = await agent.run("refund A1", principal=alice)
    started = agent.store.events(paused.run_id)[0]
    assert started.to_dict()["principal"] == {
        "user": "alice",
        "role": "customer",
        "attributes": {"tier": "gold"},
    }
    key = paused.pending[0].key

    later, _ = support_agent(tmp_path, replies, ledger, policy=policy)
    with pytest.raises(ConfigurationError, match=r"acts for .*'alice'.*not .*'mallory'"):
        await later.resume(paused.run_id, approvals={key: True}, principal=Principal("mallory"))
    assert ledger == []  # refused before anything was journaled or run
    assert len(later.store.events(paused.run_id)) == len(agent.store.events(paused.run_id))

    # The same principal is accepted, though the journal gives back JSON (a datetime
    # attribute comes back as text, attributes in another order).
    since = datetime(2024, 1, 1, tzinfo=UTC)
    dated, _ = support_agent(tmp_path, replies, [], policy=policy)
    second = await dated.run("refund A1", principal=Principal("alice", None, {"a": 1, "t": since}))
    again = await dated.resume(
        second.run_id,
        approvals={second.pending[0].key: False},
        principal=Principal("alice", None, {"t": since, "a": 1}),
    )
    assert again.outcome == "final"

    done = await later.resume(paused.run_id, approvals={key: True})
    assert done.output == "Refunded; the order is delivered."
    assert ledger == ["refund A1 10.0", "status A1"]  # the lookup was allowed: alice's run
    # A run started with no principal records none, and the old behaviour stands.
    plain, _ = support_agent(tmp_path, REFUND, [])
    first = await plain.run("refund A1")
    assert "principal" not in plain.store.events(first.run_id)[0].to_dict()


async def test_an_in_process_approver_decides_without_pausing(tmp_path: Path) -> None:
    ledger: list[str] = []
    agent, _ = support_agent(
        tmp_path,
        REFUND,
        ledger,
        approver=lambda call, decision, ctx: call.arguments["amount"] < 500,
    )
    result = await agent.run("refund A1")
    assert result.ok and ledger == ["status A1", "refund A1 250.0"]


async def test_approvals_for_a_run_that_is_not_paused_are_refused(tmp_path: Path) -> None:
    ledger: list[str] = []
    agent, _ = support_agent(tmp_path, REFUND, ledger, crash=True, approver=lambda *a: True)
    with pytest.raises(Crash):
        await agent.run("refund A1", run_id="crashed")
    again, _ = support_agent(tmp_path, REFUND, ledger)
    before = (again.store.get_run("crashed").status, len(again.store.events("crashed")))
    assert before[0] == "interrupted"  # what a stopped (not finished) run says
    with pytest.raises(ApprovalError, match="'crashed' is not waiting for any approval"):
        await again.resume("crashed", approvals={"crashed:1:1": True})
    after = (again.store.get_run("crashed").status, len(again.store.events("crashed")))
    assert after == before  # nothing was written
    assert again.store.lease("crashed") is None  # and the refused resume let go of the run


async def test_a_crash_after_approval_leaves_the_call_in_doubt_not_rerun(tmp_path: Path) -> None:
    ledger: list[str] = []
    agent, _ = support_agent(tmp_path, REFUND, ledger)
    paused = await agent.run("refund A1")
    crashing, _ = support_agent(tmp_path, REFUND, ledger, crash=True)
    with pytest.raises(Crash):
        await crashing.resume(paused.run_id, approvals={paused.pending[0].key: True})
    # The approval is on disk; whether the refund happened is unknown: never run twice.
    again, _ = support_agent(tmp_path, REFUND, ledger)
    with pytest.raises(ToolCallInDoubtError, match="refund"):
        await again.resume(paused.run_id)


async def test_history_is_sent_before_the_input_and_kept_for_resume(tmp_path: Path) -> None:
    history = [Message.user("my order is A1"), Message.assistant("Thanks, noted.")]
    agent, model = support_agent(tmp_path, REFUND, [])
    paused = await agent.run("please refund it", history=history)
    sent = [(m.role, m.content) for m in model.requests[0].messages if m.role != "system"]
    assert sent == [
        ("user", "my order is A1"),
        ("assistant", "Thanks, noted."),
        ("user", "please refund it"),
    ]
    started = agent.store.events(paused.run_id)[0]
    assert [m.content for m in started.history] == ["my order is A1", "Thanks, noted."]  # type: ignore[attr-defined]


async def test_stream_yields_the_approval_request(tmp_path: Path) -> None:
    agent, _ = support_agent(tmp_path, REFUND, [])
    types = [getattr(item, "type", None) async for item in agent.stream("refund A1")]
    assert types[-1] == "approval_requested"


def test_cli_run_pauses_and_resume_approves(cli: CLI, tmp_path: Path) -> None:
    args = ["--model", "refund-script:", "--tools", "cli_tools:refund_tools"]
    args += ["--store", str(tmp_path / "cli.db")]
    first = cli("run", "refund order A1", *args)
    assert first.returncode == 3, first.stderr
    assert "is paused, waiting for a person" in first.stderr
    key = next(w for w in first.stderr.split() if w.count(":") == 2 and w.endswith(":2:0"))
    run_id = key.split(":")[0]
    wrong = cli("resume", run_id, *args, "--approve", f"{run_id}:9:9")
    assert wrong.returncode == 1 and "no call" in wrong.stderr and run_id in wrong.stderr
    done = cli("resume", run_id, *args, "--approve", key, "--by", "dana")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Refunded."
    assert "approved by dana" in done.stderr and "Refund issued for order A1" in done.stderr


async def test_sync_entry_points_refuse_a_running_event_loop(tmp_path: Path) -> None:
    agent, _ = support_agent(tmp_path, REFUND, [])
    with pytest.raises(ConfigurationError, match=r"run_sync\(\) .*await agent\.run"):
        agent.run_sync("refund A1")
    with pytest.raises(ConfigurationError, match=r"resume_sync\(\) .*await agent\.resume"):
        agent.resume_sync("any")
