"""Replaying a run whose decisions read an aggregate: the same decisions as live.

An aggregate reads other runs' calls from a store; a replay runs in a fresh store that
holds none of them. The answer each check got is journaled with its decision
(`Decision.observed`) and served again at replay (runtime replay and `policy check
--trace`), so a replayed run decides exactly as the live run did.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from pilothouse import Agent, Principal, ScriptedModel, call, tool
from pilothouse.decision import Decision
from pilothouse.events import ToolCalled
from pilothouse.policy import Policy
from pilothouse.policy.replay import replay as policy_replay
from pilothouse.runtime.journal import SQLiteStore
from pilothouse.testing import replay_async

POLICY = """
version: 1
tools:
  refund: {effect: irreversible, args: [order_id, amount]}
rules:
  - id: refunds-per-order
    tools: refund
    when:
      aggregate: {source: journal, over: all, field: amount, per: order_id, max: 300}
"""


@tool(effect="irreversible")
def refund(order_id: str, amount: float) -> str:
    """Refund part of an order."""
    return "refunded"


def agent(steps: list[Any], store: Any = None) -> Agent[Any, Any]:
    return Agent(
        ScriptedModel([*steps, "done"]),
        tools=[refund],
        policy=Policy.from_yaml(POLICY),
        store=store,
    )


def decisions(events: list[Any]) -> list[tuple[str, str, tuple[Any, ...]]]:
    return [
        (e.decision.effect, e.decision.reason, e.decision.observed)
        for e in events
        if isinstance(e, ToolCalled) and e.decision is not None
    ]


async def test_a_replayed_run_decides_from_the_recorded_aggregate(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "journal.db")
    first = await agent([[call("refund", order_id="A1", amount=200.0)]], store).run(
        "refund", principal=Principal("u")
    )
    steps = [[call("refund", order_id="A1", amount=60.0), call("refund", order_id="A1", amount=50)]]
    live = await agent(steps, store).run("refund more", principal=Principal("u"))
    assert first.outcome == live.outcome == "final"
    recorded = store.events(live.run_id)
    got = decisions(recorded)
    # 200 (another run) + 60 allowed; + 50 = 310 refused: the other run's 200 is observed
    assert [g[0] for g in got] == ["allow", "deny"]
    assert all(g[2] and g[2][0][1] == 1 and Decimal(g[2][0][2]) == 200 for g in got), got

    report = await replay_async(agent(steps), recorded)  # a fresh store: no other runs
    assert report.ok, report.summary()
    assert decisions(report.events) == got

    # the same in `pilothouse policy check --trace` form (JSON lines of the journal)
    lines = [(n, json.loads(json.dumps(e.to_dict()))) for n, e in enumerate(recorded, 1)]
    replayed = list(policy_replay(Policy.from_yaml(POLICY), lines))
    assert [(r.decision.effect, r.decision.reason) for r in replayed] == [g[:2] for g in got]


async def test_without_the_recorded_answer_a_replay_denies_and_says_why(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "journal.db")
    live = await agent([[call("refund", order_id="A1", amount=10.0)]], store).run(
        "refund", principal=Principal("u")
    )
    recorded = store.events(live.run_id)
    for e in recorded:  # a recording from before decisions carried what they read
        if isinstance(e, ToolCalled) and e.decision is not None:
            d = e.decision
            e.decision = Decision(d.effect, d.rule, d.reason, d.fallback, d.message, d.approver)
    report = await replay_async(agent([[call("refund", order_id="A1", amount=10.0)]]), recorded)
    assert not report.ok
    assert "holds no answer of aggregate source 'journal'" in str(report.divergence)


def test_the_observed_answer_round_trips_through_the_journal_form() -> None:
    d = Decision("allow", "r", "", observed=(("journal:all:refund", 2, "300.5"),))
    assert Decision.from_dict(json.loads(json.dumps(d.to_dict()))) == d
    assert "observed" not in Decision("allow").to_dict()
