"""The Desk with ScriptedModel: resolved, escalated, failing and paused conversations,
figures, and persistence across Desk instances (real SQLite files)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pilothouse.agent import Agent
from pilothouse.exceptions import ModelError
from pilothouse.models.base import ModelRequest
from pilothouse.models.scripted import ScriptedModel, call
from pilothouse.runtime.journal import Store
from pilothouse.tools.tool import tool
from pilothouse_desk.agent import build_support_agent
from pilothouse_desk.deps import SupportDeps
from pilothouse_desk.desk import ConversationNotFound, Desk, DeskError
from pilothouse_desk.shop import Shop
from pilothouse_desk.tools import TOOLS, support_policy

BEN = {"email": "ben.adler@example.com", "zip": "97301"}
DEV = {"email": "dev.kowalski@example.com", "zip": "37062"}
KIRA = {"email": "kira.dubois@example.com", "zip": "53703"}
HANDOVER_RE = re.compile(
    r"Sorry, something went wrong on our side; a person from our team will take over this "
    r"conversation\. Reference: ([0-9A-F]{8})"
)


def factory(*replies: Any) -> Callable[[Shop, Store], Agent[SupportDeps, str]]:
    model = ScriptedModel(list(replies))
    return lambda shop, store: build_support_agent(model=model, store=store)


def desk(tmp_path: Path, *replies: Any) -> Desk:
    return Desk(tmp_path / "shop.db", str(tmp_path / "journal.db"), agent_factory=factory(*replies))


async def test_a_resolved_conversation(tmp_path: Path) -> None:
    d = desk(
        tmp_path,
        call("verify_identity", **BEN),
        call("order_status", order_id="A1091"),
        "Your order A1091 is on its way.",
        "You're welcome!",
    )
    conv = await d.open("Ben.Adler@example.com")
    assert conv.status == "open" and conv.customer_email == "ben.adler@example.com"
    reply = await d.send(conv.id, "I'm ben.adler@example.com, 97301. Where is A1091?")
    assert reply.text == "Your order A1091 is on its way." and reply.status == "open"
    assert d.get(conv.id).customer_id == "C002"  # verified: the run's deps, written back
    second = await d.send(conv.id, "thanks")
    assert second.text == "You're welcome!"
    assert [(e.author, e.text) for e in d.transcript(conv.id)] == [
        ("customer", "I'm ben.adler@example.com, 97301. Where is A1091?"),
        ("agent", "Your order A1091 is on its way."),
        ("customer", "thanks"),
        ("agent", "You're welcome!"),
    ]
    assert d.runs(conv.id) == [reply.run_id, second.run_id]
    # the second run is a turn of the conversation's session (it read the earlier
    # turns there, not from a copy), and acts for the verified customer
    events = d.store.events(second.run_id)
    started = events[0]
    assert started.principal["user"] == "C002"  # type: ignore[attr-defined]
    assert started.history == []  # type: ignore[attr-defined]
    assert (started.session_id, started.session_upto) == (conv.id, 2)  # type: ignore[attr-defined]
    assert [m.message.content for m in d.store.session_messages(conv.id)] == [
        "I'm ben.adler@example.com, 97301. Where is A1091?",
        "Your order A1091 is on its way.",
        "thanks",
        "You're welcome!",
    ]
    # the model chooses its own steps here: a step hook tells it who is verified
    asked = next(e for e in events if e.type == "model_request")
    assert "The customer is verified: customer C002" in asked.instructions  # type: ignore[attr-defined]
    resolved = d.resolve(conv.id)
    assert resolved.status == "resolved" and resolved.resolved_at is not None
    f = d.figures()
    assert (f.conversations, f.resolved_without_human, f.escalations, f.policy_blocks) == (
        1,
        1,
        0,
        0,
    )
    assert f.resolved_share == 1.0 and f.median_resolution_seconds is not None


async def test_verification_carries_over_to_later_turns(tmp_path: Path) -> None:
    d = desk(
        tmp_path,
        call("verify_identity", **DEV),
        "You are verified.",
        call("cancel_order", order_id="A1007"),
        "Cancelled.",
    )
    conv = await d.open()
    await d.send(conv.id, "dev.kowalski@example.com 37062")
    reply = await d.send(conv.id, "cancel A1007")
    assert reply.text == "Cancelled."
    order = d.shop.order("A1007")
    assert order is not None and order["status"] == "cancelled"


async def test_an_escalated_conversation_goes_through_the_queue(tmp_path: Path) -> None:
    d = desk(tmp_path, call("transfer_to_human", summary="Angry about a late parcel"), "A human")
    conv = await d.open()
    reply = await d.send(conv.id, "I want a real person!")
    assert reply.status == "escalated"
    got = d.get(conv.id)
    assert got.summary == "Angry about a late parcel" and got.escalated_at is not None
    assert [c.id for c in d.queue()] == [conv.id]
    waiting = await d.send(conv.id, "hello??")  # goes to the human, no agent run
    assert waiting.run_id is None and waiting.outcome == "human"
    claimed = d.claim(conv.id, "sam")
    assert claimed.status == "claimed" and claimed.claimed_by == "sam"
    with pytest.raises(DeskError):
        d.claim(conv.id, "alex")
    d.reply(conv.id, "sam", "Hi, Sam here. Sorry about the parcel.")
    closed = await d.close(conv.id, "sam")
    assert closed.status == "closed" and closed.resolved_at is not None
    assert d.queue() == []
    assert [e.author for e in d.transcript(conv.id)] == [
        "customer",
        "agent",
        "system",  # transferred, with the summary
        "customer",
        "system",  # sam joined
        "human",
        "system",  # closed
    ]
    with pytest.raises(DeskError):
        await d.send(conv.id, "one more thing")
    f = d.figures()
    assert (f.conversations, f.resolved_without_human, f.escalations) == (1, 0, 1)


async def test_a_model_failure_escalates_and_keeps_the_conversation(tmp_path: Path) -> None:
    def broken(request: ModelRequest) -> Any:
        raise ModelError("the model server went away")

    d = Desk(
        tmp_path / "shop.db",
        str(tmp_path / "journal.db"),
        agent_factory=lambda shop, store: build_support_agent(
            model=ScriptedModel(broken), store=store
        ),
    )
    conv = await d.open()
    reply = await d.send(conv.id, "where is my order?")
    assert reply.status == "escalated" and reply.outcome == "error"
    # The customer reads a neutral sentence with a reference; staff read the detail.
    reference = HANDOVER_RE.fullmatch(reply.text)
    assert reference, reply.text
    assert "went away" not in reply.text and "ModelError" not in reply.text
    assert [e.author for e in d.transcript(conv.id)] == ["customer", "system"]
    note = d.transcript(conv.id, staff=True)[-1]
    assert note.author == "staff" and note.run_id == reply.run_id
    assert f"reference {reference.group(1)}" in note.text
    assert "ModelError: the model server went away" in note.text and reply.run_id in note.text
    summary = d.get(conv.id).summary
    assert summary is not None and reference.group(1) in summary
    assert [c.id for c in d.queue()] == [conv.id]
    assert len(d.runs(conv.id)) == 1  # the failed run is linked: its journal has the error


async def test_a_tool_exception_escalates(tmp_path: Path) -> None:
    @tool
    def order_history(customer_id: str) -> str:
        """A lookup whose backend is down."""
        raise ConnectionError("orders service unreachable")

    def make(shop: Shop, store: Store) -> Agent[SupportDeps, str]:
        model = ScriptedModel([call("order_history", customer_id="C002"), "Sorry."])
        return Agent(
            model,
            tools=[*TOOLS, order_history],
            store=store,
            policy=support_policy(),
            deps_type=SupportDeps,
        )

    d = Desk(tmp_path / "shop.db", str(tmp_path / "journal.db"), agent_factory=make)
    conv = await d.open()
    reply = await d.send(conv.id, "list my orders")
    assert reply.status == "escalated"
    entries = d.transcript(conv.id)
    assert [e.author for e in entries] == ["customer", "agent", "system"]
    assert HANDOVER_RE.fullmatch(entries[-1].text), entries[-1].text
    assert "unreachable" not in entries[-1].text
    staff = d.transcript(conv.id, staff=True)
    assert [e.author for e in staff] == ["customer", "agent", "system", "staff"]
    assert "ConnectionError: orders service unreachable" in staff[-1].text


async def test_policy_blocks_are_counted_from_the_journal(tmp_path: Path) -> None:
    d = desk(
        tmp_path,
        call("cancel_order", order_id="A1007"),  # before verification
        "Please verify first.",
        call("verify_identity", **BEN),
        call("cancel_order", order_id="A1007"),  # Dev's order
        "That is not your order.",
    )
    conv = await d.open()
    await d.send(conv.id, "cancel A1007")
    await d.send(conv.id, "ben.adler@example.com 97301, cancel A1007")
    assert d.figures().policy_blocks == 2
    order = d.shop.order("A1007")
    assert order is not None and order["status"] == "pending"


async def test_a_big_refund_waits_for_approval(tmp_path: Path) -> None:
    d = desk(
        tmp_path,
        call("verify_identity", **KIRA),
        call("refund", order_id="A1010", amount=349.0),
        "Your refund of $349 is on its way.",
    )
    conv = await d.open()
    reply = await d.send(conv.id, "kira.dubois@example.com 53703 refund $349 for A1010")
    assert reply.status == "paused" and reply.outcome == "paused"
    pending = d.pending_approvals()
    assert [(p.conversation_id, p.tool, p.arguments["amount"]) for p in pending] == [
        (conv.id, "refund", 349.0)
    ]
    with pytest.raises(DeskError):
        await d.decide(conv.id, "not-a-key", True)
    done = await d.decide(conv.id, pending[0].key, True, human="supervisor")
    assert done.text == "Your refund of $349 is on its way." and done.status == "open"
    assert d.pending_approvals() == []
    order = d.shop.order("A1010")
    assert order is not None and order["refunded"] == 349.0
    d.resolve(conv.id)
    f = d.figures()
    assert f.approvals == 1 and f.resolved_without_human == 0  # a human approved


async def test_conversations_persist_across_desks(tmp_path: Path) -> None:
    first = desk(tmp_path, "Hello! How can I help?")
    conv = await first.open()
    await first.send(conv.id, "hi")
    first.shutdown()
    second = desk(tmp_path, "still here")
    assert second.get(conv.id).status == "open"
    assert [e.text for e in second.transcript(conv.id)] == ["hi", "Hello! How can I help?"]
    assert second.authorize(conv.id, conv.token)
    assert not second.authorize(conv.id, conv.token + "x")
    assert not second.authorize("nope", conv.token)
    with pytest.raises(ConversationNotFound):
        second.get("nope")
    reply = await second.send(conv.id, "are you there?")
    assert reply.text == "still here"
    assert len(second.runs(conv.id)) == 2


async def test_empty_messages_are_refused(tmp_path: Path) -> None:
    d = desk(tmp_path)
    conv = await d.open()
    with pytest.raises(DeskError):
        await d.send(conv.id, "   ")


async def test_the_conversation_is_a_session_with_the_humans_messages_in_it(tmp_path: Path) -> None:
    d = desk(
        tmp_path,
        call("transfer_to_human", summary="Customer asks for a person."),
        "A person will take over.",
        "Glad it is sorted.",
    )
    conv = await d.open("ben.adler@example.com")
    await d.send(conv.id, "I want a person, please.")
    assert d.get(conv.id).status == "escalated"
    await d.send(conv.id, "Hello? Anyone?")  # no run: a human answers escalated ones
    d.reply(conv.id, "ann", "Hi, Ann here. I have your order.")
    said = [
        (m.author, m.message.role, m.message.content) for m in d.store.session_messages(conv.id)
    ]
    assert said == [
        ("", "user", "I want a person, please."),
        ("", "assistant", "A person will take over."),
        ("customer", "user", "Hello? Anyone?"),
        ("human:ann", "assistant", "Hi, Ann here. I have your order."),
    ]


async def test_a_conversation_from_before_sessions_gets_its_session_from_the_transcript(
    tmp_path: Path,
) -> None:
    old = Desk(
        tmp_path / "shop.db",
        str(tmp_path / "old-journal.db"),
        agent_factory=factory("Hello, how can I help?"),
    )
    conv = await old.open()
    await old.send(conv.id, "hi")
    old.shutdown()
    # The same desk tables with a journal that has no session for the conversation.
    new = Desk(
        tmp_path / "shop.db",
        str(tmp_path / "journal.db"),
        agent_factory=lambda shop, store: build_support_agent(
            model=ScriptedModel(lambda request: f"I see {len(request.messages)} messages"),
            store=store,
        ),
    )
    reply = await new.send(conv.id, "still there?")
    # system, the two earlier messages (from the transcript), the new one
    assert reply.text == "I see 4 messages"
    assert [m.author for m in new.store.session_messages(conv.id)] == ["customer", "agent", "", ""]
