"""Adversarial: a member that pauses for a person beside a sibling delegation of the
same step is resumed, after the approval, under the same share of the team's budget
it started with, and the two members' shares add up to no more than what was left."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from team_helpers import sqlite

from pilothouse import Agent, Budget, ScriptedModel, call, tool
from pilothouse.policy import Policy, Rule
from pilothouse.teams import Supervisor


@tool(effect="side_effect")
def pay_back(order_id: str) -> str:
    """Refund an order."""
    return f"refunded {order_id}"


@tool(effect="side_effect")
def write_note(text: str) -> str:
    """Write a note on the case."""
    return f"noted {text}"


def pair(path: Path) -> Supervisor:
    """A boss (300 tokens, 9 steps) that asks refunds (whose refund waits for a person)
    and notes in one reply; every model a function of its request, so a fresh team (a
    new process) answers as the first did."""

    def results(request: Any) -> int:
        return sum(1 for m in request.messages if m.role == "tool")

    store = sqlite(path)
    refunds = Agent(
        ScriptedModel(
            lambda r: call("pay_back", order_id="A-1") if not results(r) else "Refunded A-1."
        ),
        "You refund orders.",
        [pay_back],
        name="refunds",
        store=store,
        policy=Policy([Rule("pay_back", "ask")]),
    )
    notes = Agent(
        ScriptedModel(lambda r: call("write_note", text="A-1") if not results(r) else "noted"),
        "You keep notes.",
        [write_note],
        name="notes",
        store=store,
        policy=Policy([Rule("write_note", "allow")]),
    )

    def boss_reply(request: Any) -> Any:
        if results(request) < 2:
            return [call("ask_refunds", task="Refund A-1."), call("ask_notes", task="Note A-1.")]
        return "Done: refunded and noted."

    boss = Agent(
        ScriptedModel(boss_reply),
        "You run the desk.",
        name="boss",
        store=store,
        budget=Budget(max_steps=9, max_tokens=300),
    )
    return Supervisor(boss, [refunds, notes], autonomy="on_risk")


def caps_given(caplog: pytest.LogCaptureFixture) -> dict[str, list[Any]]:
    """Each child's caps, every time it was started or resumed (by run id)."""
    found: dict[str, list[Any]] = {}
    for record in caplog.records:
        if record.name == "pilothouse.runtime" and "capped to the parent" in record.msg:
            _, child, capped = record.args  # type: ignore[misc]
            found.setdefault(str(child), []).append(capped)
    return found


def test_a_paused_member_resumed_keeps_its_share_of_the_teams_budget(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pilothouse.runtime")
    paused = pair(tmp_path).run_sync("Refund and note A-1.", run_id="P")
    assert paused.outcome == "paused"
    (pending,) = paused.pending
    fresh = pair(tmp_path)
    result = fresh.resume_sync("P", approvals={pending.key: True}, approved_by="ann")
    assert result.outcome == "final"
    given = caps_given(caplog)
    refunds, notes = given["P.1.0.1"], given["P.1.1.1"]
    assert len(refunds) >= 2  # started, then resumed after the approval
    assert all(c == refunds[0] for c in refunds)  # the same share before and after
    first = next(e for e in fresh.store.events("P") if e.type == "model_response")
    left = 300 - first.response.usage.total_tokens
    shares = sorted([refunds[0]["tokens"][1], notes[0]["tokens"][1]])
    assert shares == [left // 2, left - left // 2]  # split, not the whole twice
    assert refunds[0]["steps"][1] + notes[0]["steps"][1] == 9 - 1
