"""Human in the loop as a parameter: supervised, on_risk, autonomous; a member's pause
pauses the team durably, and an approval resumes exactly the pending call."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from team_helpers import sqlite, tree

from killable_store import logged_caps
from pilothouse import Agent, Budget, ScriptedModel, call, tool
from pilothouse.events import ApprovalRequested, ChildStarted
from pilothouse.exceptions import ApprovalError, ToolCallInDoubtError
from pilothouse.policy import Policy, Rule
from pilothouse.teams import Autonomy, Supervisor

REFUNDS: list[str] = []


@tool(effect="side_effect")
def issue_refund(order_id: str) -> str:
    """Refund an order."""
    REFUNDS.append(order_id)
    return f"refunded {order_id}"


@tool
def read_order(order_id: str) -> str:
    """Read an order."""
    return f"{order_id}: 1 pear, 4 EUR"


def build(
    path: Path, autonomy: Autonomy, rule: str = "allow", done: tuple[int, int] = (0, 0)
) -> tuple[Supervisor, ScriptedModel, ScriptedModel]:
    """A fresh team over the store at `path` (as a new process would build it); `done`:
    how many replies of (boss, refunds) the journal already has (their scripts go on)."""
    store = sqlite(path)
    refunds_script: list[object] = [
        [call("read_order", order_id="A-1")],
        [call("issue_refund", order_id="A-1")],
        "Refunded A-1.",
    ]
    refunds_model = ScriptedModel(refunds_script[done[1] :])  # type: ignore[arg-type]
    refunds = Agent(
        refunds_model,
        "You refund orders.",
        [read_order, issue_refund],
        name="refunds",
        store=store,
        policy=Policy([Rule("issue_refund", rule)]),  # type: ignore[arg-type]
    )
    boss_script: list[object] = [call("ask_refunds", task="Refund A-1."), "Done: refunded A-1."]
    boss_model = ScriptedModel(boss_script[done[0] :])  # type: ignore[arg-type]
    boss = Agent(boss_model, "You run the desk.", name="boss", store=store)
    return Supervisor(boss, [refunds], autonomy=autonomy), boss_model, refunds_model


@pytest.fixture(autouse=True)
def _clear() -> None:
    REFUNDS.clear()


def test_supervised_pauses_the_team_and_resumes_exactly_the_pending_call(tmp_path: Path) -> None:
    team, boss_model, _ = build(tmp_path, "supervised")
    paused = team.run_sync("Refund my pear.", run_id="S")
    assert paused.outcome == "paused" and REFUNDS == []
    (pending,) = paused.pending
    assert pending.tool == "issue_refund"  # the read-only read_order did not ask
    member_run = "S.1.0.1"
    assert pending.key.startswith(member_run + ":")
    assert store_status(team, "S") == "interrupted" and store_status(team, member_run) == "paused"
    assert len(boss_model.requests) == 1

    # a new process: new store handle, new agents, new team
    fresh, boss_again, refunds_again = build(tmp_path, "supervised", done=(1, 2))
    with pytest.raises(ApprovalError):
        fresh.resume_sync("S", approvals={"S.1.0.1:9:0": True})
    assert REFUNDS == []
    result = fresh.resume_sync("S", approvals={pending.key: True}, approved_by="ann")
    assert result.outcome == "final" and result.output == "Done: refunded A-1."
    assert REFUNDS == ["A-1"]  # exactly once
    # the delegation was not triggered again: one child, started once
    starts = [e for e in fresh.store.events("S") if isinstance(e, ChildStarted)]
    assert [s.child_run_id for s in starts] == [member_run]
    assert tree(fresh.store, "S") == ["S", member_run]
    assert len(boss_again.requests) == 1  # only the boss's final step
    assert [len(refunds_again.requests)] == [1]


def store_status(team: Supervisor, run_id: str) -> str:
    return team.store.get_run(run_id).status


def test_on_risk_asks_only_where_the_policy_says_ask(tmp_path: Path) -> None:
    team, _, _ = build(tmp_path / "a", "on_risk")
    assert team.run_sync("Refund my pear.", run_id="R1").outcome == "final"
    assert REFUNDS == ["A-1"]
    REFUNDS.clear()
    asking, _, _ = build(tmp_path / "b", "on_risk", rule="ask")
    paused = asking.run_sync("Refund my pear.", run_id="R2")
    assert paused.outcome == "paused" and REFUNDS == []
    requests = [e for e in asking.store.events("R2.1.0.1") if isinstance(e, ApprovalRequested)]
    assert [r.call.name for r in requests] == ["issue_refund"]
    result = asking.resume_sync("R2", approvals={paused.pending[0].key: True})
    assert result.outcome == "final" and REFUNDS == ["A-1"]


def test_autonomous_never_asks_a_person(tmp_path: Path) -> None:
    team, _, refunds_model = build(tmp_path, "autonomous", rule="ask")
    result = team.run_sync("Refund my pear.", run_id="A")
    assert result.outcome == "final"
    assert REFUNDS == []  # the policy would have asked: with no one to ask, refused
    assert "denied" in refunds_model.requests[2].messages[-1].content.lower() or (
        "declined" in refunds_model.requests[2].messages[-1].content.lower()
    )
    assert not [
        e
        for r in tree(team.store, "A")
        for e in team.store.events(r)
        if isinstance(e, ApprovalRequested)
    ]


def test_declining_the_pending_call_resumes_without_it(tmp_path: Path) -> None:
    team, _, _ = build(tmp_path, "supervised")
    paused = team.run_sync("Refund my pear.", run_id="D")
    result = team.resume_sync("D", approvals={paused.pending[0].key: False})
    assert result.outcome == "final" and REFUNDS == []


def test_the_entry_agents_own_pause_resumes_the_team(tmp_path: Path) -> None:
    store = sqlite(tmp_path)
    boss = Agent(
        ScriptedModel([call("issue_refund", order_id="B-2"), "Refunded B-2."]),
        "You refund.",
        [issue_refund],
        name="boss",
        store=store,
        policy=Policy([Rule("issue_refund", "allow")]),
    )
    helper = Agent(ScriptedModel(["unused"]), "You help.", name="helper", store=store)
    team = Supervisor(boss, [helper], autonomy="supervised")
    paused = team.run_sync("Refund B-2.", run_id="E")
    assert paused.outcome == "paused" and paused.pending[0].key == "E:1:0"
    result = team.resume_sync("E", approvals={"E:1:0": True})
    assert result.outcome == "final" and result.output == "Refunded B-2."
    assert REFUNDS == ["B-2"]


NOTES: list[str] = []


@tool(effect="side_effect")
def log_note(text: str) -> str:
    """Write a note on the case."""
    NOTES.append(text)
    return f"noted {text}"


def build_pair(path: Path, budget: Budget | None = None) -> Supervisor:
    """A boss (with `budget`) that asks refunds and notes in one reply (two delegations
    in one step); every model a function of its request, so a fresh team answers as the
    first did."""

    def results(request: Any) -> int:
        return sum(1 for m in request.messages if m.role == "tool")

    store = sqlite(path)
    refunds = Agent(
        ScriptedModel(
            lambda r: call("issue_refund", order_id="A-1") if not results(r) else "Refunded A-1."
        ),
        "You refund orders.",
        [issue_refund],
        name="refunds",
        store=store,
        policy=Policy([Rule("issue_refund", "ask")]),
    )
    notes = Agent(
        ScriptedModel(lambda r: call("log_note", text="case A-1") if not results(r) else "noted"),
        "You keep notes.",
        [log_note],
        name="notes",
        store=store,
        policy=Policy([Rule("log_note", "allow")]),
    )

    def boss_reply(request: Any) -> Any:
        if results(request) < 2:
            return [call("ask_refunds", task="Refund A-1."), call("ask_notes", task="Note A-1.")]
        return "Done: refunded and noted."

    boss = Agent(
        ScriptedModel(boss_reply), "You run the desk.", name="boss", store=store, budget=budget
    )
    return Supervisor(boss, [refunds, notes], autonomy="on_risk")


def test_a_pause_beside_a_sibling_delegation_runs_each_member_once(tmp_path: Path) -> None:
    """One member pauses for a person while its sibling call of the same step runs: the
    team pauses, and after the approval each member's run is started once, each effect
    happens once, whichever of the two finished first."""
    NOTES.clear()
    team = build_pair(tmp_path)
    paused = team.run_sync("Refund and note A-1.", run_id="P")
    assert paused.outcome == "paused" and REFUNDS == []
    (pending,) = paused.pending
    assert pending.tool == "issue_refund"
    fresh = build_pair(tmp_path)  # as a new process would
    result = fresh.resume_sync("P", approvals={pending.key: True}, approved_by="ann")
    assert result.outcome == "final" and result.output == "Done: refunded and noted."
    assert REFUNDS == ["A-1"] and NOTES == ["case A-1"]
    starts = [e.child_run_id for e in fresh.store.events("P") if isinstance(e, ChildStarted)]
    assert sorted(starts) == ["P.1.0.1", "P.1.1.1"]
    agents = sorted(fresh.store.get_run(r).agent for r in tree(fresh.store, "P"))
    assert agents == ["boss", "notes", "refunds"]
    assert {fresh.store.get_run(r).status for r in tree(fresh.store, "P")} == {"final"}


HOLD = {"on": True}


def _held_note(on_doubt: str) -> Any:
    """log_note that, while HOLD is on, waits for ever: only the team's pause (which
    cancels the sibling call) ends it, so it is cut off inside the tool."""

    @tool(name="log_note", effect="side_effect", on_doubt=on_doubt)  # type: ignore[arg-type]
    async def held(text: str) -> str:
        """Write a note on the case."""
        if HOLD["on"]:
            await asyncio.Event().wait()
        NOTES.append(text)
        return f"noted {text}"

    return held


async def _paused_with_sibling_cut_off(
    tmp_path: Path, on_doubt: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[Supervisor, Any]:
    NOTES.clear()
    HOLD["on"] = True
    monkeypatch.setitem(globals(), "log_note", _held_note(on_doubt))
    team = build_pair(tmp_path)
    # a hang guard, not a timing assertion: the pause must cancel the held sibling
    paused = await asyncio.wait_for(team.run("Refund and note A-1.", run_id="Q"), 120)
    assert paused.outcome == "paused" and REFUNDS == [] and NOTES == []
    assert team.store.get_run("Q.1.1.1").status == "interrupted"  # cut off inside the tool
    HOLD["on"] = False
    return build_pair(tmp_path), paused.pending[0]


async def test_a_sibling_cut_off_by_a_pause_is_retried_once_when_idempotent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh, pending = await _paused_with_sibling_cut_off(tmp_path, "retry", monkeypatch)
    result = await fresh.resume("Q", approvals={pending.key: True}, approved_by="ann")
    assert result.outcome == "final" and result.output == "Done: refunded and noted."
    assert REFUNDS == ["A-1"] and NOTES == ["case A-1"]  # each effect once
    starts = [e.child_run_id for e in fresh.store.events("Q") if isinstance(e, ChildStarted)]
    assert sorted(starts) == ["Q.1.0.1", "Q.1.1.1"]
    assert {fresh.store.get_run(r).status for r in tree(fresh.store, "Q")} == {"final"}


async def test_a_sibling_cut_off_by_a_pause_stops_the_team_in_doubt_until_settled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh, pending = await _paused_with_sibling_cut_off(tmp_path, "ask", monkeypatch)
    with pytest.raises(ToolCallInDoubtError) as err:
        await fresh.resume("Q", approvals={pending.key: True}, approved_by="ann")
    assert (err.value.run_id, err.value.idempotency_key) == ("Q.1.1.1", "Q.1.1.1:1:0")
    assert REFUNDS == ["A-1"] and NOTES == []  # not run again blindly
    # the boss is not told to go on: told, it could delegate the same note again
    assert {fresh.store.get_run(r).status for r in ("Q", "Q.1.1.1")} == {"in_doubt"}
    assert not [e for e in fresh.store.events("Q") if e.type == "final"]
    with pytest.raises(ToolCallInDoubtError):  # a resume without the settlement: no change
        await build_pair(tmp_path).resume("Q")
    with pytest.raises(ApprovalError, match="no call in doubt of run Q"):
        await build_pair(tmp_path).resume("Q", settle={"elsewhere:1:0": True})
    done = await build_pair(tmp_path).resume(
        "Q", settle={"Q.1.1.1:1:0": "noted case A-1"}, approved_by="ann"
    )
    assert done.outcome == "final" and done.output == "Done: refunded and noted."
    assert REFUNDS == ["A-1"] and NOTES == []  # each effect once: the note was not re-sent
    assert {fresh.store.get_run(r).status for r in tree(fresh.store, "Q")} == {"final"}
    settled = [e for e in fresh.store.events("Q.1.1.1") if e.type == "doubt_settled"]
    assert len(settled) == 1 and settled[0].by == "ann"  # type: ignore[attr-defined]


def caps_given(caplog: pytest.LogCaptureFixture) -> dict[str, list[Any]]:
    """Each child's caps, every time it was started or resumed (by run id)."""
    found: dict[str, list[Any]] = {}
    for child, capped in logged_caps(caplog):
        found.setdefault(child, []).append(capped)
    return found


def test_a_paused_member_resumed_keeps_its_share_of_the_teams_budget(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Adversarial: a member that pauses for a person beside a sibling delegation of the
    same step is resumed, after the approval, under the same share of the team's budget
    (300 tokens, 9 steps) it started with, and the two members' shares add up to no
    more than what was left."""
    REFUNDS.clear()
    NOTES.clear()
    caplog.set_level(logging.INFO, logger="pilothouse.runtime")
    budget = Budget(max_steps=9, max_tokens=300)
    paused = build_pair(tmp_path, budget).run_sync("Refund and note A-1.", run_id="P")
    assert paused.outcome == "paused"
    (pending,) = paused.pending
    fresh = build_pair(tmp_path, budget)
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
