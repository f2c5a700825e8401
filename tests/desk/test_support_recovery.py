"""`Desk.recover`: replies a crash or a stop cut off are finished on restart, or handed
to a human with a note; never lost, never delivered twice, no side effect done twice.

Each test leaves a desk in the state a crash leaves it in (a run cancelled mid-answer,
which the loop journals as ``interrupted``; a journal cut just after a refund; a run
whose end was written but not delivered; a message whose run never started), then
opens a new `Desk` on the same files, as a restarted server does. The processes
killed for real are in tests/desk/server/test_desk_recovery.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path
from typing import Any

from pilothouse.events import Event, ModelRequested, ToolCalled, ToolReturned
from pilothouse.exceptions import ModelError
from pilothouse.models.base import ModelRequest, ModelResponse
from pilothouse.models.scripted import ScriptedModel, call
from pilothouse_desk.agent import build_support_agent
from pilothouse_desk.desk import Desk

KIRA = {"email": "kira.dubois@example.com", "zip": "53703"}
DEV = {"email": "dev.kowalski@example.com", "zip": "37062"}  # C007: A1007 pending


class HeldModel(ScriptedModel):
    """A scripted model whose calls wait for `release` (never set: the run hangs there)."""

    def __init__(self, replies: Any) -> None:
        super().__init__(replies)
        self.release = asyncio.Event()

    async def generate(self, request: ModelRequest) -> ModelResponse:
        await self.release.wait()
        return await super().generate(request)


def open_desk(tmp_path: Path, model: Any) -> Desk:
    return Desk(
        tmp_path / "shop.db",
        str(tmp_path / "journal.db"),
        agent_factory=lambda shop, store: build_support_agent(model=model, store=store),
    )


async def cut_off(desk: Desk, text: str) -> str:
    """Send `text` with a model that never answers, and cancel the send once the model
    was asked (what a drain does to a reply beyond its grace): returns the conversation
    id; the run is journaled 'interrupted' and its reply is owed."""
    conv = await desk.open()
    asked = asyncio.Event()

    def on_event(event: Event) -> None:
        if isinstance(event, ModelRequested):
            asked.set()

    task = asyncio.ensure_future(desk.send(conv.id, text, subscribers=[on_event]))
    await asked.wait()
    await asyncio.sleep(0)  # the model's generate is now awaiting its release
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return conv.id


def authors(desk: Desk, conv_id: str) -> list[str]:
    return [e.author for e in desk.transcript(conv_id)]


async def test_an_interrupted_reply_is_delivered_by_the_next_desk(tmp_path: Path) -> None:
    first = open_desk(tmp_path, HeldModel(["never"]))
    conv_id = await cut_off(first, "hello?")
    (run_id,) = first.runs(conv_id)
    assert first.store.get_run(run_id).status == "interrupted"
    assert authors(first, conv_id) == ["customer"]  # the message is kept
    assert first.owed() == [(run_id, conv_id)]

    second = open_desk(tmp_path, ScriptedModel(["Hello! How can I help?"]))
    report = await second.recover()
    assert [(r.run_id, r.found, r.outcome) for r in report.runs] == [
        (run_id, "interrupted", "delivered")
    ]
    assert [(e.author, e.text, e.run_id) for e in second.transcript(conv_id)] == [
        ("customer", "hello?", None),
        ("agent", "Hello! How can I help?", run_id),
    ]
    assert second.store.get_run(run_id).status == "final"
    assert second.owed() == [] and second.get(conv_id).status == "open"
    assert (await second.recover()).runs == ()  # delivered once, not again


async def test_a_refund_in_doubt_is_reconciled_not_repeated(tmp_path: Path) -> None:
    """The journal ends at the refund's tool_call (killed between the shop's commit and
    the journal's): the resumed run finds the refund by its idempotency key."""
    desk = open_desk(
        tmp_path,
        ScriptedModel(
            [call("verify_identity", **KIRA), call("refund", order_id="A1010", amount=50.0)]
        ),
    )
    conv = await desk.open()
    # The model is out of replies after the refund (the run fails there: it is rewound).
    await desk.send(conv.id, "kira.dubois@example.com 53703 refund $50")
    (run_id,) = desk.runs(conv.id)
    # Rewind to the crash: no tool_result of the refund, nothing after; the run 'running',
    # the conversation as it was before the reply.
    db = sqlite3.connect(tmp_path / "journal.db")
    call_seq = db.execute(
        "SELECT seq FROM events WHERE run_id=? AND type='tool_call' AND data LIKE '%\"refund\"%'",
        (run_id,),
    ).fetchone()[0]
    db.execute("DELETE FROM events WHERE run_id=? AND seq > ?", (run_id, call_seq))
    db.execute("UPDATE runs SET status='running', lease_owner=NULL WHERE run_id=?", (run_id,))
    db.commit()
    db.close()
    shop = sqlite3.connect(tmp_path / "shop.db")
    shop.execute(
        "DELETE FROM desk_entries WHERE conversation_id=? AND author!='customer'", (conv.id,)
    )
    shop.execute("UPDATE desk_runs SET delivered=NULL")
    shop.execute("UPDATE desk_conversations SET status='open', summary=NULL, escalated_at=NULL")
    shop.commit()
    shop.close()
    assert _refunds(tmp_path) == [("A1010", 50.0)]

    restarted = open_desk(tmp_path, ScriptedModel(["Refunded $50 to your card."]))
    report = await restarted.recover()
    assert [(r.found, r.outcome) for r in report.runs] == [("running", "delivered")]
    assert _refunds(tmp_path) == [("A1010", 50.0)]  # once
    assert [(e.author, e.text) for e in restarted.transcript(conv.id)][-1] == (
        "agent",
        "Refunded $50 to your card.",
    )
    results = [e for e in restarted.store.events(run_id) if e.type == "tool_result"]
    assert "Refunded $50.00 for order A1010" in results[-1].result.content  # type: ignore[attr-defined]


async def test_a_verification_before_the_crash_counts_when_the_run_resumes(
    tmp_path: Path,
) -> None:
    """Killed after verify_identity's result was journaled, before the desk wrote the
    verified customer on the conversation: the resumed run reuses the recorded result
    (the tool does not run again), and the deps the desk gives it name the customer
    the journal shows verified, so the cancellation that follows is allowed."""
    desk = open_desk(tmp_path, ScriptedModel([call("verify_identity", **DEV)]))
    conv = await desk.open()
    # The model is out of replies after the verification (the run fails there: rewound).
    await desk.send(conv.id, "dev.kowalski@example.com 37062, cancel A1007")
    (run_id,) = desk.runs(conv.id)
    db = sqlite3.connect(tmp_path / "journal.db")
    result_seq = db.execute(
        "SELECT seq FROM events WHERE run_id=? AND type='tool_result'", (run_id,)
    ).fetchone()[0]
    db.execute("DELETE FROM events WHERE run_id=? AND seq > ?", (run_id, result_seq))
    db.execute("UPDATE runs SET status='running', lease_owner=NULL WHERE run_id=?", (run_id,))
    db.commit()
    db.close()
    shop = sqlite3.connect(tmp_path / "shop.db")
    shop.execute("DELETE FROM desk_entries WHERE author!='customer'")
    shop.execute("UPDATE desk_runs SET delivered=NULL")
    shop.execute("UPDATE desk_conversations SET status='open', summary=NULL, escalated_at=NULL")
    shop.commit()
    shop.close()
    assert desk.get(conv.id).customer_id is None  # the desk never learnt of it

    restarted = open_desk(
        tmp_path, ScriptedModel([call("cancel_order", order_id="A1007"), "Cancelled."])
    )
    report = await restarted.recover()
    assert [(r.found, r.outcome) for r in report.runs] == [("running", "delivered")]
    calls = [e for e in restarted.store.events(run_id) if isinstance(e, ToolCalled)]
    assert [(c.call.name, c.decision and c.decision.effect) for c in calls] == [
        ("verify_identity", "allow"),
        ("cancel_order", "allow"),
    ]
    results = [e for e in restarted.store.events(run_id) if isinstance(e, ToolReturned)]
    # the verification was not run again: its one result is the one recorded before
    assert [r.result.name for r in results] == ["verify_identity", "cancel_order"]
    assert results[0].seq == result_seq
    order = restarted.shop.order("A1007")
    assert order is not None and order["status"] == "cancelled"
    assert restarted.get(conv.id).customer_id == "C007"  # written back after the run


def _refunds(tmp_path: Path) -> list[tuple[str, float]]:
    db = sqlite3.connect(tmp_path / "shop.db")
    try:
        rows = db.execute(
            "SELECT order_id, amount FROM payments WHERE kind = 'refund' AND order_id = 'A1010'"
        ).fetchall()
    finally:
        db.close()
    return [(r[0], r[1]) for r in rows]


async def test_a_run_that_ended_but_was_not_delivered_is_read_from_its_journal(
    tmp_path: Path,
) -> None:
    desk = open_desk(tmp_path, ScriptedModel(["The answer."]))
    conv = await desk.open()
    reply = await desk.send(conv.id, "question")
    # Killed after the journal's last commit, before the desk wrote the reply:
    shop = sqlite3.connect(tmp_path / "shop.db")
    shop.execute("DELETE FROM desk_entries WHERE author='agent'")
    shop.execute("UPDATE desk_runs SET delivered=NULL")
    shop.commit()
    shop.close()

    def never(request: ModelRequest) -> Any:
        raise AssertionError("a finished run does not ask the model again")

    restarted = open_desk(tmp_path, ScriptedModel(never))
    report = await restarted.recover()
    assert [(r.found, r.outcome) for r in report.runs] == [("final", "delivered")]
    assert [(e.author, e.text, e.run_id) for e in restarted.transcript(conv.id)] == [
        ("customer", "question", None),
        ("agent", "The answer.", reply.run_id),
    ]


async def test_a_message_whose_run_never_started_is_escalated(tmp_path: Path) -> None:
    desk = open_desk(tmp_path, ScriptedModel([]))
    conv = await desk.open()
    desk._exec(  # killed after the desk's commit, before the run's first journal write
        "INSERT INTO desk_entries (conversation_id, author, text, ts) VALUES (?,?,?,0)",
        conv.id,
        "customer",
        "are you there?",
    )
    desk._exec("INSERT INTO desk_runs (run_id, conversation_id, ts) VALUES ('r-x', ?, 0)", conv.id)
    report = await open_desk(tmp_path, ScriptedModel([])).recover()
    assert [(r.run_id, r.found, r.outcome) for r in report.runs] == [
        ("r-x", "missing", "escalated")
    ]
    assert desk.get(conv.id).status == "escalated"
    assert [c.id for c in desk.queue()] == [conv.id]
    assert authors(desk, conv.id)[0] == "customer" and "system" in authors(desk, conv.id)


async def test_a_run_another_live_server_holds_is_escalated(tmp_path: Path) -> None:
    first = open_desk(tmp_path, HeldModel(["never"]))
    conv_id = await cut_off(first, "hello?")
    (run_id,) = first.runs(conv_id)
    # Another server (on another host: never taken over) is driving it.
    assert first.store.claim(run_id, "otherhost:4242:abcd", 30.0)
    report = await open_desk(tmp_path, ScriptedModel(["never asked"])).recover()
    (recovered,) = report.runs
    assert recovered.outcome == "escalated" and "RunLeasedError" in recovered.detail
    assert first.get(conv_id).status == "escalated"
    assert [c.id for c in first.queue()] == [conv_id]
    assert authors(first, conv_id)[0] == "customer" and "system" in authors(first, conv_id)
    assert first.owed() == []


async def test_a_model_failure_on_resume_is_escalated(tmp_path: Path) -> None:
    first = open_desk(tmp_path, HeldModel(["never"]))
    conv_id = await cut_off(first, "hello?")

    def down(request: ModelRequest) -> Any:
        raise ModelError("the model endpoint is down")

    report = await open_desk(tmp_path, ScriptedModel(down)).recover()
    (recovered,) = report.runs
    assert (recovered.found, recovered.outcome) == ("interrupted", "escalated")
    assert "the model endpoint is down" in recovered.detail
    assert first.get(conv_id).status == "escalated" and first.owed() == []


async def test_the_next_message_first_settles_the_interrupted_reply(tmp_path: Path) -> None:
    first = open_desk(tmp_path, HeldModel(["never"]))
    conv_id = await cut_off(first, "first question")
    second = open_desk(tmp_path, ScriptedModel(["first answer", "second answer"]))
    reply = await second.send(conv_id, "second question")  # no recover() called
    assert reply.text == "second answer"
    assert [(e.author, e.text) for e in second.transcript(conv_id)] == [
        ("customer", "first question"),
        ("agent", "first answer"),
        ("customer", "second question"),
        ("agent", "second answer"),
    ]


async def test_a_desk_from_before_the_delivered_column_owes_only_its_stuck_runs(
    tmp_path: Path,
) -> None:
    first = open_desk(tmp_path, HeldModel(["never"]))
    stuck = await cut_off(first, "stuck")
    done = open_desk(tmp_path, ScriptedModel(["fine"]))
    await done.recover()  # delivers 'stuck'
    conv = await done.open()
    await done.send(conv.id, "ok")
    held = open_desk(tmp_path, HeldModel(["never"]))
    again = await cut_off(held, "stuck again")
    # The old schema: no delivered column.
    shop = sqlite3.connect(tmp_path / "shop.db")
    shop.execute("ALTER TABLE desk_runs DROP COLUMN delivered")
    shop.commit()
    shop.close()
    migrated = open_desk(tmp_path, ScriptedModel(["late answer"]))
    assert [conv for _, conv in migrated.owed()] == [again]
    assert stuck != again


async def test_a_decision_cut_off_before_the_run_resumed_is_applied_on_restart(
    tmp_path: Path,
) -> None:
    """Killed inside `decide`: the desk recorded the approval, the journal has not."""
    desk = open_desk(
        tmp_path,
        ScriptedModel(
            [call("verify_identity", **KIRA), call("refund", order_id="A1010", amount=349.0)]
        ),
    )
    conv = await desk.open()
    reply = await desk.send(conv.id, "kira.dubois@example.com 53703 refund $349 for A1010")
    assert reply.status == "paused" and desk.owed() == []
    (pending,) = desk.pending_approvals()
    with desk._tx():  # what decide writes before it resumes the run
        desk._exec(
            "UPDATE desk_approvals SET approved=1, decided_by='sam' WHERE key=?", pending.key
        )
        desk._exec("UPDATE desk_runs SET delivered=NULL")
        desk._set(conv.id, status="open", human_involved=1)

    restarted = open_desk(tmp_path, ScriptedModel(["Your refund of $349 is on its way."]))
    report = await restarted.recover()
    assert [(r.found, r.outcome) for r in report.runs] == [("paused", "delivered")]
    assert _refunds(tmp_path) == [("A1010", 349.0)]
    assert restarted.transcript(conv.id)[-1].text == "Your refund of $349 is on its way."
    given = [e for e in restarted.store.events(reply.run_id or "") if e.type == "approval_given"]
    assert len(given) == 1 and given[0].approved  # type: ignore[attr-defined]


async def test_a_pause_not_yet_shown_is_shown_on_restart(tmp_path: Path) -> None:
    desk = open_desk(
        tmp_path,
        ScriptedModel(
            [call("verify_identity", **KIRA), call("refund", order_id="A1010", amount=349.0)]
        ),
    )
    conv = await desk.open()
    await desk.send(conv.id, "kira.dubois@example.com 53703 refund $349 for A1010")
    # Killed after the journal's pause, before the desk recorded it:
    desk._exec("DELETE FROM desk_approvals")
    desk._exec("DELETE FROM desk_entries WHERE author='system'")
    desk._exec("UPDATE desk_runs SET delivered=NULL")
    desk._set(conv.id, status="open")

    restarted = open_desk(tmp_path, ScriptedModel([]))
    report = await restarted.recover()
    assert [(r.found, r.outcome) for r in report.runs] == [("paused", "delivered")]
    assert restarted.get(conv.id).status == "paused"
    assert [p.tool for p in restarted.pending_approvals()] == ["refund"]
    assert _refunds(tmp_path) == []


def test_every_tool_that_changes_the_shop_reconciles_by_its_idempotency_key(
    tmp_path: Path,
) -> None:
    """What makes a resumed cancel or refund safe: an in-doubt call is looked up in the
    shop's record of changes (written in the change's own transaction), not run blind."""
    from pilothouse.tools.tool import ToolContext
    from pilothouse_desk.deps import SupportDeps
    from pilothouse_desk.shop import open_shop
    from pilothouse_desk.tools import TOOLS

    shop = open_shop(tmp_path / "shop.db")
    deps = SupportDeps(shop)
    try:
        tools = {t.name: t for t in TOOLS}
        changing = {n for n, t in tools.items() if t.effect != "read_only"}
        assert changing == {
            "cancel_order",
            "return_items",
            "exchange_items",
            "refund",
            "change_address",
            "transfer_to_human",
        }
        for name in changing - {"transfer_to_human"}:  # the hand-over changes nothing outside
            assert tools[name].on_doubt == "reconcile" and tools[name].reconcile is not None
        assert tools["transfer_to_human"].on_doubt == "retry"
        shop.cancel("A1007", "run-1:2:0")
        reconcile = tools["cancel_order"].reconcile
        assert reconcile is not None
        found = reconcile(ToolContext("run-1", 2, 0, deps), {"order_id": "A1007"})
        assert found is not None and found.startswith("Order A1007 is cancelled")
        assert reconcile(ToolContext("run-1", 3, 0, deps), {"order_id": "A1007"}) is None
    finally:
        shop.close()


async def test_a_refusal_by_closing_cut_off_is_journaled_on_restart(tmp_path: Path) -> None:
    """Killed inside `close`: the desk refused the waiting refund, the journal has not."""
    desk = open_desk(
        tmp_path,
        ScriptedModel(
            [call("verify_identity", **KIRA), call("refund", order_id="A1010", amount=349.0)]
        ),
    )
    conv = await desk.open()
    reply = await desk.send(conv.id, "kira.dubois@example.com 53703 refund $349 for A1010")
    (pending,) = desk.pending_approvals()
    with desk._tx():  # what close writes before it resumes the run to refuse the call
        desk._set(conv.id, status="closed")
        desk._exec(
            "UPDATE desk_approvals SET approved=0, decided_by='sam' WHERE key=?", pending.key
        )
        desk._exec("UPDATE desk_runs SET delivered=NULL")

    restarted = open_desk(tmp_path, ScriptedModel(["I could not refund that, sorry."]))
    report = await restarted.recover()
    assert [(r.found, r.outcome) for r in report.runs] == [("paused", "delivered")]
    assert _refunds(tmp_path) == []
    assert restarted.get(conv.id).status == "closed"
    staff = [e for e in restarted.transcript(conv.id, staff=True) if e.author == "staff"]
    assert "ended final: I could not refund that" in staff[-1].text
    assert all(e.author != "agent" for e in restarted.transcript(conv.id))  # not to the customer
    given = [e for e in restarted.store.events(reply.run_id or "") if e.type == "approval_given"]
    assert [(g.approved, g.by) for g in given] == [(False, "sam")]  # type: ignore[attr-defined]
    assert restarted.owed() == []


async def test_closing_marks_the_refused_run_owed_until_its_journal_says_so(
    tmp_path: Path,
) -> None:
    desk = open_desk(
        tmp_path,
        ScriptedModel(
            [
                call("verify_identity", **KIRA),
                call("refund", order_id="A1010", amount=349.0),
                "Not refunded.",
            ]
        ),
    )
    conv = await desk.open()
    await desk.send(conv.id, "kira.dubois@example.com 53703 refund $349 for A1010")
    await desk.close(conv.id, "sam")
    assert desk.owed() == [] and desk.pending_approvals() == []
    assert _refunds(tmp_path) == []
