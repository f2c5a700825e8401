"""The whole team's safety: the loop guard, max_handoffs, one handoff per reply."""

from __future__ import annotations

from pathlib import Path

import pytest
from team_helpers import own_usage, sqlite, tree

from pilothouse import Agent, Budget, ScriptedModel, call, tool
from pilothouse.events import Stopped, ToolReturned
from pilothouse.messages import Usage
from pilothouse.policy import Policy, Rule
from pilothouse.runtime.journal import Store
from pilothouse.teams import Handoff, Team

EFFECTS: list[str] = []


@tool
def check_stock(item: str) -> str:
    """Look up stock."""
    return f"{item}: 3 left"


@tool(effect="side_effect")
def write_note(text: str) -> str:
    """Write a note on the case."""
    EFFECTS.append(text)
    return "noted"


def ping_pong(store: Store, a_replies: list[object], b_replies: list[object], **kw: object) -> Team:
    a = Agent(ScriptedModel(a_replies), "A.", [check_stock], name="a", store=store)
    b = Agent(ScriptedModel(b_replies), "B.", [check_stock], name="b", store=store)
    return Team(
        a,
        handoffs={"a": [Handoff(b)], "b": [Handoff(a)]},
        **kw,  # type: ignore[arg-type]
    )


def to(name: str) -> object:
    return call(f"transfer_to_{name}", reason="yours", payload={"request": "help"})


def test_loop_guard_stops_ping_pong_after_three_transfers(tmp_path: Path) -> None:
    store = sqlite(tmp_path)
    team = ping_pong(store, [to("b")] * 5, [to("a")] * 5)
    result = team.run_sync("help", run_id="L")
    assert result.outcome == "loop_stop"
    assert result.stop is not None and result.stop.reason == "handoff_loop"
    assert "a -> b -> a -> b -> a" in result.stop.message
    # a→b, b→a (1), a→b (2), b→a (3: refused): four runs, the last one stops first
    runs = tree(store, "L")
    assert [store.get_run(r).agent for r in runs] == ["a", "b", "a", "b"]
    assert all(store.get_run(r).status == "loop_stop" for r in runs)
    stops = [e for r in runs for e in store.events(r) if isinstance(e, Stopped)]
    assert {s.reason for s in stops} == {"handoff_loop"}


def test_progress_resets_the_loop_guard(tmp_path: Path) -> None:
    store = sqlite(tmp_path)
    working = [[call("check_stock", item="x")], to("a")]
    team = ping_pong(store, [to("b"), to("b"), to("b")], [*working, *working, "done"])
    result = team.run_sync("help", run_id="P")
    assert result.outcome == "final" and result.output == "done"
    assert len(tree(store, "P")) == 6


def test_a_loop_limit_of_one(tmp_path: Path) -> None:
    store = sqlite(tmp_path)
    team = ping_pong(store, [to("b")] * 3, [to("a")] * 3, loop_limit=1)
    result = team.run_sync("help", run_id="L1")
    assert result.stop is not None and result.stop.reason == "handoff_loop"
    assert len(tree(store, "L1")) == 2


def test_max_handoffs_in_the_budget(tmp_path: Path) -> None:
    store = sqlite(tmp_path)
    working = [[call("check_stock", item="x")], to("a")]
    team = ping_pong(
        store,
        [to("b")] * 4,
        working * 4,
        budget=Budget(max_handoffs=2),
    )
    result = team.run_sync("help", run_id="M")
    assert result.outcome == "budget_stop"
    assert result.stop is not None and result.stop.reason == "handoffs"
    assert len(tree(store, "M")) == 3  # two handoffs made, the third refused
    total = Usage()
    for run_id in tree(store, "M"):
        total += own_usage(store, run_id)
    assert result.usage == total


def test_members_draw_from_the_teams_budget(tmp_path: Path) -> None:
    store = sqlite(tmp_path)
    team = ping_pong(
        store,
        [to("b")],
        [[call("check_stock", item=str(i))] for i in range(10)],
        budget=Budget(max_steps=4),
    )
    result = team.run_sync("help", run_id="B")
    runs = tree(store, "B")
    assert store.get_run(runs[1]).status == "budget_stop"  # capped to what a had left
    assert result.outcome == "budget_stop"
    assert result.stop is not None and result.stop.reason == "steps"


def test_one_handoff_per_reply(tmp_path: Path) -> None:
    store = sqlite(tmp_path)
    b_model = ScriptedModel(["b did it"])
    c_model = ScriptedModel(["c did it"])
    b = Agent(b_model, "B.", name="b", store=store)
    c = Agent(c_model, "C.", name="c", store=store)
    a_model = ScriptedModel([[to("b"), to("c"), to("b")]])
    a = Agent(a_model, "A.", name="a", store=store)
    team = Team(a, handoffs={"a": [Handoff(b), Handoff(c)]})
    result = team.run_sync("help", run_id="O")
    assert result.output == "b did it"
    assert c_model.requests == [] and len(b_model.requests) == 1
    assert tree(store, "O") == ["O", "O.1.0.handoff"]
    results = [e.result for e in store.events("O") if isinstance(e, ToolReturned)]
    assert [r.is_error for r in results] == [False, True, True]
    assert all("not done: one handoff per reply" in r.content for r in results[1:])
    # the refused transfers never reach a later prompt: a made no further model call,
    # and b saw only the payload
    assert len(a_model.requests) == 1
    assert "not done" not in repr(b_model.requests) and "transfer_to_c" not in repr(
        b_model.requests
    )


def test_a_handoff_and_a_tool_call_in_one_reply(tmp_path: Path) -> None:
    """Defined: the reply's other calls are decided by the policy and run as in any
    step (once); the handoff runs too; the target does not see those calls."""
    EFFECTS.clear()
    store = sqlite(tmp_path)
    b_model = ScriptedModel(["b did it"])
    b = Agent(b_model, "B.", name="b", store=store)
    a = Agent(
        ScriptedModel([[call("write_note", text="asked about A-1"), to("b")]]),
        "A.",
        [write_note],
        name="a",
        store=store,
        policy=Policy([Rule("write_note", "allow")]),
    )
    team = Team(a, handoffs={"a": [Handoff(b, context="full")]})
    result = team.run_sync("help", run_id="H")
    assert result.output == "b did it"
    assert EFFECTS == ["asked about A-1"]
    assert "write_note" not in repr(b_model.requests)
    assert "noted" not in repr(b_model.requests)


def test_a_hook_stop_must_name_a_stop_reason(tmp_path: Path) -> None:
    from pilothouse.exceptions import ConfigurationError
    from pilothouse.runtime.step import StepOptions, check_options

    with pytest.raises(ConfigurationError, match="stop must be"):
        check_options(StepOptions(stop=("nonsense", "x")), {})  # type: ignore[arg-type]
    assert check_options(StepOptions(stop=("handoff_loop", "x")), {}) is not None


def test_a_resumed_step_cannot_start_a_second_handoff(tmp_path: Path) -> None:
    """After a crash, only the step's calls without a result run again; a transfer
    among them whose sibling already handed off is refused from the store's record
    (a new process has no memory of which call claimed the step)."""
    import asyncio

    from pilothouse.exceptions import ToolError
    from pilothouse.teams.handoff import Request
    from pilothouse.tools import ToolContext

    store = sqlite(tmp_path)

    def team_of() -> Team:
        b = Agent(ScriptedModel(["b did it"]), "B.", name="b", store=store)
        c = Agent(ScriptedModel(["c did it"]), "C.", name="c", store=store)
        a = Agent(ScriptedModel([[to("b"), to("c")]]), "A.", name="a", store=store)
        return Team(a, handoffs={"a": [Handoff(b), Handoff(c)]})

    assert team_of().run_sync("help", run_id="R").output == "b did it"
    fresh = team_of()  # as a resumed process builds it: no claims in memory
    (to_c,) = [t for t in fresh.members["a"].team_tools if t.name == "transfer_to_c"]
    with pytest.raises(ToolError, match="one handoff per reply"):
        asyncio.run(to_c.function(ToolContext("R", 1, 1), "yours", Request(request="help")))
    assert tree(store, "R") == ["R", "R.1.0.handoff"]
