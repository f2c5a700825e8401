"""A team's turn cut off around the supervisor's review is finished by the next desk
(`Desk.recover`): reviewed once, paid once, the reply delivered once.

The stop is a `CancelledError` (what a drain beyond its grace, or the process dying,
leaves: the turn's reply owed), raised once at the chosen point; a new `Desk` on the
same files then recovers, as a restarted server does."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from team_world import make_team_desk, refunds_of

KIRA_REFUND = "kira.dubois@example.com, zip 53703. Order A1010 arrived broken, please refund $349."


def stop_once(target: Any, name: str) -> None:
    """Make `target.name` raise CancelledError the first time it is called."""
    real = getattr(target, name)
    calls = {"n": 0}

    async def once(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise asyncio.CancelledError
        return await real(*args, **kwargs)

    setattr(target, name, once)


@pytest.mark.parametrize("where", ["review", "resume"])
async def test_a_turn_stopped_around_the_review_is_finished_once_on_restart(
    tmp_path: Path, where: str
) -> None:
    first = make_team_desk(tmp_path)
    conv = await first.open()
    stop_once(first.agent, where)
    with pytest.raises(asyncio.CancelledError):
        await first.send(conv.id, KIRA_REFUND)
    owed = first.owed()
    assert [c for _, c in owed] == [conv.id]
    assert refunds_of(tmp_path / "shop.db", "A1010") == []
    decided = first.approvals_of(conv.id)
    # Stopped before the verdict: nothing decided; after it: the verdict is on record.
    assert [d[1:] for d in decided] == ([] if where == "review" else [(1, "agent:supervisor")])
    first.shutdown()

    again = make_team_desk(tmp_path)
    report = await again.recover()
    assert [(r.conversation_id, r.outcome) for r in report.runs] == [(conv.id, "delivered")]
    assert refunds_of(tmp_path / "shop.db", "A1010") == [349.0]
    agent_said = [e.text for e in again.transcript(conv.id) if e.author == "agent"]
    assert agent_said == ["Refunded $349.00 for order A1010 to Visa ending 3608."]
    run_id = owed[0][0]
    assert [r for r in again.tree(run_id) if r.endswith(".review")] == [
        f"{again.tree(run_id)[1]}.2.0.review"
    ]
    assert [d[1:] for d in again.approvals_of(conv.id)] == [(1, "agent:supervisor")]
    assert again.owed() == [] and again.get(conv.id).status == "open"
    again.shutdown()
