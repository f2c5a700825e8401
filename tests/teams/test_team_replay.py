"""Team runs replay from their journals: the root (its transfers and delegations served
from the recording, the hook ending it with the target's output) and each member's run,
exported to a cassette and replayed without the store they were recorded in."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from team_helpers import sqlite

from pilothouse import Agent, ScriptedModel, call
from pilothouse.events import FinalOutput
from pilothouse.runtime.replay import export_journal, replay_run
from pilothouse.teams import Handoff, Supervisor, Team
from pilothouse.testing import replay_async


async def _replays(team: Team, root: str, members: dict[str, Any], tmp: Path) -> None:
    store = team.store
    spec = team.run_spec()
    export_journal(store, root, tmp / "root.jsonl")
    report = await replay_run(
        lambda model: dataclasses.replace(spec, model=model), tmp / "root.jsonl"
    )
    assert report.ok, report.summary()
    assert report.outcome == "final"
    replayed = [e for e in report.events if isinstance(e, FinalOutput)]
    recorded = [e for e in store.events(root) if isinstance(e, FinalOutput)]
    assert [e.output for e in replayed] == [e.output for e in recorded]
    for child in store.children(root):
        path = tmp / f"{child.run_id}.jsonl"
        export_journal(store, child.run_id, path)
        child_report = await replay_async(members[child.agent], path)
        assert child_report.ok, (child.run_id, child_report.summary())


async def test_a_handoff_team_replays(tmp_path: Path) -> None:
    store = sqlite(tmp_path)
    b = Agent(ScriptedModel(["b answers"]), "You are b.", name="b", store=store)
    a = Agent(
        ScriptedModel([call("transfer_to_b", reason="yours", payload={"request": "x"})]),
        "You are a.",
        name="a",
        store=store,
    )
    team = Team(a, handoffs={"a": [Handoff(b, context="summary")]}, autonomy="autonomous")
    result = await team.run("help", run_id="h")
    assert result.output == "b answers"
    fresh_b = Agent(ScriptedModel(["unused"]), "You are b.", name="b", store=store)
    await _replays(team, "h", {"b": fresh_b}, tmp_path)


async def test_a_supervisor_team_replays(tmp_path: Path) -> None:
    store = sqlite(tmp_path)
    members = {
        name: Agent(ScriptedModel([f"{name} did it"]), f"You {name}.", name=name, store=store)
        for name in ("researcher", "writer")
    }
    boss = Agent(
        ScriptedModel(
            [
                call("ask_researcher", task="find"),
                call("ask_writer", task="write"),
                "report done",
            ]
        ),
        "You run the team.",
        name="boss",
        store=store,
    )
    team = Supervisor(boss, list(members.values()), autonomy="autonomous")
    result = await team.run("Write the report.", run_id="s")
    assert result.output == "report done"
    await _replays(team, "s", members, tmp_path)
