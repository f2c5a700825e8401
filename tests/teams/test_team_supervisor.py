"""The supervisor: routes work to members as tools and reviews it, bounded."""

from __future__ import annotations

from pathlib import Path

import pytest
from team_helpers import own_usage, sqlite, tree

from pilothouse import Agent, ScriptedModel, call
from pilothouse.events import ToolReturned
from pilothouse.exceptions import ConfigurationError
from pilothouse.messages import Usage
from pilothouse.runtime.journal import Store
from pilothouse.teams import Supervisor


def writers(store: Store, drafts: list[object]) -> tuple[Agent[None, str], ScriptedModel]:
    model = ScriptedModel(drafts)
    return Agent(model, "You write.", name="writer", store=store), model


def test_the_supervisor_sends_work_back_with_a_reason_and_accepts_it(tmp_path: Path) -> None:
    store = sqlite(tmp_path)
    writer, writer_model = writers(store, ["Figs are fruit.", "Figs are fruit; B-17 covers them."])
    researcher = Agent(
        ScriptedModel(["B-17: The Fig Tree"]), "You research.", name="researcher", store=store
    )
    boss_model = ScriptedModel(
        [
            call("ask_researcher", task="Find a book about figs."),
            call("ask_writer", task="Write two lines about figs."),
            call("ask_writer", task="Write two lines about figs.", feedback="Cite B-17."),
            "Figs are fruit; B-17 covers them.",
        ]
    )
    boss = Agent(boss_model, "You lead.", name="boss", store=store)
    team = Supervisor(boss, [researcher, writer])
    result = team.run_sync("Write about figs.", run_id="S")
    assert result.output == "Figs are fruit; B-17 covers them."
    revision = writer_model.requests[1].messages[-1].content
    assert revision == (
        "Write two lines about figs.\n\nYour previous answer was:\nFigs are fruit.\n\n"
        "It was sent back: Cite B-17."
    )
    assert [store.get_run(r).agent for r in tree(store, "S")] == [
        "boss",
        "researcher",
        "writer",
        "writer",
    ]
    total = Usage()
    for run_id in tree(store, "S"):
        total += own_usage(store, run_id)
    assert result.usage == total


def test_reviews_are_bounded(tmp_path: Path) -> None:
    store = sqlite(tmp_path)
    writer, writer_model = writers(store, ["v1", "v2", "v3"])
    again = call("ask_writer", task="Write.", feedback="Better.")
    boss = Agent(
        ScriptedModel([call("ask_writer", task="Write."), again, again, "v2 it is"]),
        "You lead.",
        name="boss",
        store=store,
    )
    result = Supervisor(boss, [writer], max_revisions=1).run_sync("go", run_id="B")
    assert result.output == "v2 it is"
    assert len(writer_model.requests) == 2  # the second send-back never reached it
    results = [e.result for e in store.events("B") if isinstance(e, ToolReturned)]
    assert results[-1].is_error and "sent back 1 times already" in results[-1].content


def test_feedback_before_any_answer_is_refused(tmp_path: Path) -> None:
    store = sqlite(tmp_path)
    writer, writer_model = writers(store, ["v1"])
    boss = Agent(
        ScriptedModel([call("ask_writer", task="Write.", feedback="Better."), "nothing"]),
        "You lead.",
        name="boss",
        store=store,
    )
    Supervisor(boss, [writer]).run_sync("go", run_id="F")
    assert writer_model.requests == []
    (returned,) = [e.result for e in store.events("F") if isinstance(e, ToolReturned)]
    assert "no answer to send back yet" in returned.content


def test_a_supervisor_needs_members_in_its_store(tmp_path: Path) -> None:
    store = sqlite(tmp_path)
    boss = Agent(ScriptedModel(["x"]), "You lead.", name="boss", store=store)
    with pytest.raises(ConfigurationError):
        Supervisor(boss, [])
    other = Agent(ScriptedModel(["x"]), "W.", name="writer", store=sqlite(tmp_path / "o"))
    with pytest.raises(ConfigurationError, match="another store"):
        Supervisor(boss, [other])
