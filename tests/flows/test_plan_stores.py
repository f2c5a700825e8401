"""Planned runs on the real journal stores: SQLite and PostgreSQL (a throwaway server
on loopback, `tests/pgserver.py`; skipped, saying why, without its binaries).

A run is driven to its end on the store, then cut as a crash would leave it (after a
side effect's `tool_call`, before its result), written to a fresh run on the same
store and resumed: the completed task is not run again, the in-doubt side effect is
reconciled, not repeated, and the resumed journal replays.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from pilothouse import Agent, tool
from pilothouse.events import ToolCalled, ToolReturned
from pilothouse.flows.plan import PlannedAgent
from pilothouse.flows.plan_replay import replay_plan
from pilothouse.models.scripted import ScriptedModel
from pilothouse.policy import Policy
from pilothouse.runtime.journal import Store, open_store
from pilothouse.tools.tool import ToolContext


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "sqlite":
        return open_store(str(tmp_path / "journal.db"))
    return open_store(request.getfixturevalue("fresh_postgres_dsn"))


PLAN = json.dumps(
    {
        "tasks": [
            {"id": 1, "tool": "read", "args": {"name": "a"}},
            {"id": 2, "tool": "read", "args": {"name": "b"}},
            {"id": 3, "tool": "charge", "args": {"amount": "$1"}},
        ]
    }
)


def build(store: Store, ledger: dict[str, float], reads: list[str]) -> PlannedAgent[str]:
    @tool
    def read(name: str) -> int:
        """A reading."""
        reads.append(name)
        return {"a": 3, "b": 4}[name]

    def found(ctx: ToolContext[Any], arguments: dict[str, Any]) -> str | None:
        key = ctx.idempotency_key
        return f"charged {ledger[key]}" if key in ledger else None

    @tool(effect="side_effect", reconcile=found)
    def charge(amount: float, ctx: ToolContext[Any]) -> str:
        """Charge."""
        ledger[ctx.idempotency_key] = amount
        return f"charged {amount}"

    policy = Policy.from_dict({"rules": [{"id": "c", "tools": ["charge"], "effect": "allow"}]})
    model = ScriptedModel([PLAN, '{"answer": "$3"}'])
    return PlannedAgent(Agent(model, tools=[read, charge], store=store, policy=policy))


async def test_a_planned_run_resumes_on_a_real_store(store: Store) -> None:
    ledger: dict[str, float] = {}
    reads: list[str] = []
    run_id = f"plan-{uuid.uuid4().hex[:8]}"
    result = await build(store, ledger, reads).run("charge", run_id=run_id)
    assert result.output == "charged 3.0" and store.get_run(run_id).status == "final"
    events = store.events(run_id)
    # the journal as a kill after the charge's effect and before its result leaves it
    charge_step = next(
        e.step for e in events if isinstance(e, ToolCalled) and e.call.name == "charge"
    )
    cut = next(
        i for i, e in enumerate(events) if isinstance(e, ToolReturned) and e.step == charge_step
    )
    crashed = f"{run_id}-crashed"
    renamed = [_renamed(e, crashed) for e in events[:cut]]
    info = store.get_run(run_id)
    info.run_id, info.status = crashed, "interrupted"
    store.write(renamed, info)
    ledger[f"{crashed}:{charge_step}:0"] = 3.0  # the effect happened before the "kill"
    reads.clear()
    resumed = await build(store, ledger, reads).resume(crashed)
    assert resumed.output == "charged 3.0"
    assert reads == []  # both reads had results on record: not run again
    assert len([k for k in ledger if k.startswith(crashed)]) == 1  # reconciled, not repeated
    after = store.events(crashed)
    assert [e.type for e in after].count("tool_call") == 3  # nothing journaled twice
    report = await replay_plan(build(store, {}, []), after)
    assert report.ok, report.difference


def _renamed(event: Any, run_id: str) -> Any:
    from pilothouse.events import event_from_dict

    data = event.to_dict()
    data["run_id"] = run_id
    if "idempotency_key" in data:
        data["idempotency_key"] = data["idempotency_key"].replace(event.run_id, run_id, 1)
    return event_from_dict(data)
