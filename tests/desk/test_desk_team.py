"""The support desk as a team: triage hands off to specialists, the supervisor reviews
approvals before a person, help answers cite the articles; on the real team and shop
with a scripted model (team_world.py), so every outcome is the hooks' and the policy's."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from team_world import make_team_desk, refunds_of

from pilothouse.events import (
    ApprovalGiven,
    ApprovalRequested,
    Retrieved,
    ToolCalled,
    ToolReturned,
)
from pilothouse.knowledge import Answer, check_answer
from pilothouse.runtime.loop import PendingRequest
from pilothouse_desk.batch import _calls
from pilothouse_desk.deps import SupportDeps

CHUNK_ID = re.compile(r"\bc[0-9a-f]{15}\b")


def big_refund(email: str, zip_code: str, paid: float, order: str) -> str:
    return f"I am {email}, zip {zip_code}. Refund ${paid:.2f} for {order}."


def agents(desk: Any, run_id: str) -> list[str]:
    return [desk.store.get_run(r).agent for r in desk.tree(run_id)]


@pytest.mark.parametrize(
    ("lines", "specialist", "tools", "case"),
    [
        (
            ["Hi, I'm ben.adler@example.com, zip 97301. Where is my order A1091?"],
            "orders",
            ["verify_identity", "order_status"],
            "order status A1091",
        ),
        (
            ["Hello, dev.kowalski@example.com here, zip 37062. Please cancel order A1007."],
            "orders",
            ["verify_identity", "cancel_order"],
            "cancel A1007",
        ),
        (
            [
                "Hi! hugo.costa@example.com, zip 37062. I want to return item A1052-1 from "
                "order A1052, the shoes are too small."
            ],
            "returns",
            ["verify_identity", "return_items"],
            "return A1052",
        ),
        (
            ["Do you have express shipping, and what does it cost?"],
            "help",
            ["search_help"],
            "help question",
        ),
        (
            ["Has my order A1051 arrived yet?", "Sure: ben.adler@example.com and my zip is 97301."],
            "orders",
            ["verify_identity", "order_status"],
            "order status A1051",
        ),
    ],
)
async def test_triage_hands_each_request_to_its_specialist(
    desk: Any, lines: list[str], specialist: str, tools: list[str], case: str
) -> None:
    conv = await desk.open()
    for line in lines:
        reply = await desk.send(conv.id, line)
    assert reply.status == "open" and reply.outcome == "final"
    last = desk.runs(conv.id)[-1]
    assert agents(desk, last) == ["triage", specialist]
    child = desk.tree(last)[1]
    assert child == f"{last}.1.0.handoff"
    # The handoff's record: the transfer call (from triage, to the specialist, reason and
    # payload = the customer's words), allowed by the policy.
    transfer = next(e for e in desk.store.events(last) if isinstance(e, ToolCalled) and e.call.name)
    assert transfer.call.name == f"transfer_to_{specialist}"
    assert transfer.call.arguments["payload"] == {"request": case}
    assert transfer.decision is not None and transfer.decision.effect == "allow"
    assert _calls(desk, conv.id) == (tools, [])


async def test_triage_asks_for_what_is_missing_and_answers_thanks_itself(desk: Any) -> None:
    conv = await desk.open()
    asked = await desk.send(conv.id, "Please cancel my order A1007.")
    assert "email address and the ZIP code" in asked.text
    thanks = await desk.send(conv.id, "ok thanks, bye")
    assert thanks.text.startswith("You're welcome")
    for run_id in desk.runs(conv.id):
        assert agents(desk, run_id) == ["triage"]  # no specialist, no model call


async def test_a_request_for_a_person_is_triages_own_transfer_to_the_queue(desk: Any) -> None:
    conv = await desk.open()
    reply = await desk.send(conv.id, "This is ridiculous, I want to talk to a real person now.")
    assert reply.status == "escalated"
    assert agents(desk, reply.run_id) == ["triage"]
    assert [c.id for c in desk.queue()] == [conv.id]


async def test_help_answers_cite_the_articles_verified_and_show_the_customer_titles_only(
    desk: Any,
) -> None:
    conv = await desk.open()
    reply = await desk.send(conv.id, "How long does a refund take to show up on my card?")
    assert reply.text == (
        "Card refunds appear within 5 to 10 business days, PayPal refunds within 3 business "
        "days, gift card refunds at once. [1]\n\nSources: [1] help article 'Refund timing'"
    )
    assert not CHUNK_ID.search(reply.text)  # no internals for the customer
    help_run = desk.tree(reply.run_id)[1]
    info = desk.store.get_run(help_run)
    assert info.agent == "help"
    answer = Answer.model_validate(info.output)
    # The citation resolves to the article's text, verbatim (checked again, no model).
    report = check_answer(answer, desk.agent.base.kb)
    assert report.ok and [(r.n, r.doc_id) for r in report.resolved] == [(1, "refunds.md")]
    # The search is a journaled retrieval (replay needs no index), and staff see the span.
    retrievals = [e for e in desk.store.events(help_run) if isinstance(e, Retrieved)]
    assert len(retrievals) == 1 and retrievals[0].knowledge_base == "help-articles"
    assert answer.citations[0].chunk in [h["id"] for h in retrievals[0].hits]
    staff = [e.text for e in desk.transcript(conv.id, staff=True) if e.author == "staff"]
    assert len(staff) == 1 and staff[0].startswith("Citations verified (without a model): [1]")
    assert "refunds.md chunk c" in staff[0]
    customer = desk.transcript(conv.id)
    assert all(not CHUNK_ID.search(e.text) for e in customer)
    # The conversation's session, which later turns show the model, holds what the
    # customer read, not the answer's JSON (the help run's output keeps the `Answer`).
    said = desk.store.session_messages(conv.id)
    assert [m.message.content for m in said if m.message.role == "assistant"] == [reply.text]


async def test_supervisor_approves_a_first_refund_within_its_limit_without_a_person(
    tmp_path: Path,
    desk: Any,
) -> None:
    conv = await desk.open()
    line = (
        "kira.dubois@example.com, zip 53703. The espresso machine from order A1010 arrived "
        "broken, please refund the $349."
    )
    reply = await desk.send(conv.id, line)
    assert reply.status == "open" and reply.text.startswith("Refunded $349.00 for order A1010")
    assert refunds_of(tmp_path / "shop.db", "A1010") == [349.0]
    tree = desk.tree(reply.run_id)
    assert agents(desk, reply.run_id) == ["triage", "returns", "supervisor"]
    review = tree[2]
    assert review.startswith(f"{tree[1]}.") and review.endswith(".review")
    # The supervisor's verdict is journaled like a person's, in the member's run.
    given = [e for e in desk.store.events(tree[1]) if isinstance(e, ApprovalGiven)]
    assert [(e.approved, e.by) for e in given] == [(True, "agent:supervisor")]
    assert desk.approvals_of(conv.id) == [(given[0].key, 1, "agent:supervisor")]
    assert desk.pending_approvals() == []
    assert not desk.get(conv.id).human_involved
    figures = desk.figures()
    assert figures.approvals == 1 and figures.supervisor_decisions == 1


async def test_supervisor_escalates_above_its_limit_and_the_person_decides_once(
    tmp_path: Path,
    desk: Any,
    above_limit: tuple[str, str, str, float],
) -> None:
    order, email, zip_code, paid = above_limit
    conv = await desk.open()
    reply = await desk.send(
        conv.id, f"I am {email}, zip {zip_code}. Please refund ${paid:.2f} for order {order}."
    )
    assert reply.status == "paused"
    pending = desk.pending_approvals()
    assert [(p.tool, p.arguments["amount"]) for p in pending] == [("refund", paid)]
    staff = [e.text for e in desk.transcript(conv.id, staff=True) if e.author == "staff"]
    assert any(
        "Supervisor escalates refund" in t and "above the supervisor's limit" in t for t in staff
    )
    assert refunds_of(tmp_path / "shop.db", order) == []
    done = await desk.decide(conv.id, pending[0].key, True, human="ann")
    assert done.status == "open" and refunds_of(tmp_path / "shop.db", order) == [paid]
    reviews = [r for r in desk.tree(reply.run_id) if r.endswith(".review")]
    assert len(reviews) == 1  # reviewed once, not again on the person's resume
    assert desk.get(conv.id).human_involved


async def test_supervisor_refuses_more_than_was_paid_and_nothing_is_paid(
    tmp_path: Path, desk: Any
) -> None:
    conv = await desk.open()
    reply = await desk.send(
        conv.id,
        "kira.dubois@example.com, zip 53703. Order A1010 arrived broken, please refund $450.",
    )
    assert reply.status == "open"
    assert reply.text == "A person declined the call to 'refund'."  # the refusal, no internals
    assert refunds_of(tmp_path / "shop.db", "A1010") == []
    assert desk.approvals_of(conv.id)[0][1:] == (0, "agent:supervisor")


async def test_a_review_is_one_run_read_back_when_asked_again(
    desk: Any,
    above_limit: tuple[str, str, str, float],
) -> None:
    order, email, zip_code, paid = above_limit
    conv = await desk.open()
    reply = await desk.send(conv.id, big_refund(email, zip_code, paid, order))
    assert reply.status == "paused"
    pending = _pending(desk, reply.run_id)
    deps = SupportDeps(desk.shop, desk.get(conv.id).customer_id)
    first = await desk.agent.review(reply.run_id, pending[0], deps)
    again = await desk.agent.review(reply.run_id, pending[0], deps)
    assert first == again and first[1].verdict == "escalate"
    assert [r for r in desk.tree(reply.run_id) if r.endswith(".review")] == [first[0]]


def _pending(desk: Any, run_id: str) -> list[PendingRequest]:
    return [
        PendingRequest.from_event(e)
        for e in desk.tree_events(run_id)
        if isinstance(e, ApprovalRequested)
    ]


async def test_closing_cancels_a_team_approval_and_a_late_approval_pays_nothing(
    tmp_path: Path,
    desk: Any,
    above_limit: tuple[str, str, str, float],
) -> None:
    from pilothouse_desk.desk import DeskError

    order, email, zip_code, paid = above_limit
    conv = await desk.open()
    reply = await desk.send(conv.id, big_refund(email, zip_code, paid, order))
    assert reply.status == "paused"
    key = desk.pending_approvals()[0].key
    member = desk.tree(reply.run_id)[1]
    await desk.close(conv.id, "alex")
    assert desk.pending_approvals() == []
    given = [e for e in desk.store.events(member) if isinstance(e, ApprovalGiven)]
    assert [(e.key, e.approved, e.by) for e in given] == [(key, False, "alex")]
    with pytest.raises(DeskError, match="closed"):
        await desk.decide(conv.id, key, True, human="sam")
    assert refunds_of(tmp_path / "shop.db", order) == []
    results = [e for e in desk.tree_events(reply.run_id) if isinstance(e, ToolReturned)]
    assert not any(r.result.name == "refund" and not r.result.is_error for r in results)
    assert desk.get(conv.id).status == "closed"


async def test_the_supervisors_limit_is_configuration_and_a_refund_above_it_goes_to_a_person(
    tmp_path: Path,
) -> None:
    # The $349 refund the default limit ($500) lets the supervisor approve goes to a
    # person under a limit of $300: escalated, nothing paid until the person decides.
    desk = make_team_desk(tmp_path, supervisor_limit=300)
    conv = await desk.open()
    line = (
        "kira.dubois@example.com, zip 53703. The espresso machine from order A1010 arrived "
        "broken, please refund the $349."
    )
    reply = await desk.send(conv.id, line)
    assert reply.status == "paused"
    assert [(p.tool, p.arguments["amount"]) for p in desk.pending_approvals()] == [
        ("refund", 349.0)
    ]
    assert refunds_of(tmp_path / "shop.db", "A1010") == []
    staff = [e.text for e in desk.transcript(conv.id, staff=True) if e.author == "staff"]
    assert any("above the supervisor's limit of $300.00" in t for t in staff)
    # The limit is on the record: the review run's input names it.
    review = next(r for r in desk.tree(reply.run_id) if r.endswith(".review"))
    assert "Your limit: $300.00." in str(desk.store.get_run(review).input)
    assert not desk.get(conv.id).human_involved and desk.figures().supervisor_decisions == 0
    desk.shutdown()


@pytest.mark.parametrize("limit", [-1.0, float("nan"), float("inf"), True, "500"])
def test_a_supervisor_limit_that_is_not_an_amount_is_refused(tmp_path: Path, limit: Any) -> None:
    from pilothouse import ConfigurationError
    from pilothouse_desk.desk import Desk

    with pytest.raises(ConfigurationError, match="supervisor_limit"):
        Desk(tmp_path / "shop.db", ":memory:", team=True, supervisor_limit=limit)


def test_serve_refuses_a_negative_supervisor_limit_before_starting(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pilothouse_desk.cli import app

    shop = str(tmp_path / "shop.db")
    result = CliRunner().invoke(app, ["--shop", shop, "--supervisor-limit", "-1"])
    assert result.exit_code == 2 and "supervisor-limit" in result.output
    assert not (tmp_path / "shop.db").exists()  # refused before anything was opened
