"""Role-play (CAMEL): alternation, the prompts each role reads, the end marker, the bound."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilothouse import Agent, ScriptedModel
from pilothouse.events import RunStarted, SpeakerSelected
from pilothouse.exceptions import ConfigurationError
from pilothouse.runtime.journal import SQLiteStore
from pilothouse.teams.roleplay import MARKER, RolePlay


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "journal.db")


async def test_roles_alternate_until_the_marker(store: SQLiteStore) -> None:
    trader = ScriptedModel(["Instruction: fetch prices.", "Instruction: plot them.", MARKER])
    coder = ScriptedModel(["Solution: prices = fetch()", "Solution: plot(prices)"])
    play = RolePlay(
        Agent(trader, name="trader", store=store),
        Agent(coder, name="coder", store=store),
        user_role="stock_trader",
        assistant_role="python_programmer",
        store=store,
    )
    result = await play.run("Write a bot that plots stock prices.", run_id="rp")
    assert [s.speaker for s in result.messages] == [
        "stock_trader",
        "python_programmer",
        "stock_trader",
        "python_programmer",
        "stock_trader",
    ]
    assert result.reason == f"text_mention({MARKER!r})"
    first_user = trader.requests[0].messages[-1].content
    assert "You are the stock_trader" in first_user and "plots stock prices" in first_user
    assert MARKER in first_user
    coder_turn = coder.requests[0]
    assert coder_turn.messages[-2].content == "[stock_trader] Instruction: fetch prices."
    assert "You are the python_programmer" in coder_turn.messages[-1].content
    started = store.events("rp")[0]
    assert isinstance(started, RunStarted) and started.model == "roleplay"
    hows = {e.how for e in store.events("rp") if isinstance(e, SpeakerSelected)}
    assert hows == {"round_robin"}


async def test_a_role_play_that_never_ends_is_bounded(store: SQLiteStore) -> None:
    play = RolePlay(
        Agent(ScriptedModel(lambda r: "Instruction: again."), name="u", store=store),
        Agent(ScriptedModel(lambda r: "Solution: again."), name="a", store=store),
        max_turns=3,
        store=store,
    )
    result = await play.run("loop", run_id="bounded")
    assert len(result.messages) == 6 and result.reason == "max_messages(6)"


async def test_resume_of_a_role_play_finds_its_task(store: SQLiteStore) -> None:
    play = RolePlay(
        Agent(ScriptedModel([MARKER]), name="u", store=store),
        Agent(ScriptedModel([]), name="a", store=store),
        store=store,
    )
    await play.run("t", run_id="done")
    from pilothouse.exceptions import RunFinishedError

    with pytest.raises(RunFinishedError):
        await play.resume("done")


def test_role_play_settings_are_checked(store: SQLiteStore) -> None:
    agent = Agent(ScriptedModel([]), name="x", store=store)
    with pytest.raises(ConfigurationError):
        RolePlay(agent, agent, user_role="same", assistant_role="same")
    with pytest.raises(ConfigurationError):
        RolePlay(agent, agent, marker=" ")
    with pytest.raises(ConfigurationError):
        RolePlay(agent, agent, max_turns=0)


async def test_role_play_usage_is_the_sum_of_both_roles_to_the_token(store: SQLiteStore) -> None:
    from pilothouse.messages import Usage

    play = RolePlay(
        Agent(ScriptedModel(["Instruction: add.", MARKER]), name="boss", store=store),
        Agent(
            ScriptedModel(["Solution: 1 + 1 = 2, explained at length."]), name="aide", store=store
        ),
        store=store,
    )
    result = await play.run("Add numbers.", run_id="rp-usage")
    total = Usage()
    for child in store.children("rp-usage"):
        for event in store.events(child.run_id):
            if event.type == "model_response":
                total = total + event.response.usage  # type: ignore[attr-defined]
    assert result.usage == total and total.requests == 3
    assert result.usage.total_tokens == total.total_tokens > 0
    assert store.events("rp-usage")[-1].usage == total  # type: ignore[attr-defined]
