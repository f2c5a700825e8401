"""A tool that starts several children side by side: `ToolContext.run_children` splits the
call's budget between them, and a tool that gathers `run_child` itself cannot multiply it.

Abuse case: "splitting a limit into pieces". Before, every child a tool started side by
side was capped to the call's whole remaining budget, so a tool that fanned out over
three children (`asyncio.gather` over `run_child`) let a tree given 12 steps make 34
model calls.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from killable_store import KillableStore, logged_caps
from pilothouse import Agent, Budget, ScriptedModel, call, tool
from pilothouse.events import ChildFinished, ChildStarted
from pilothouse.exceptions import ConfigurationError
from pilothouse.policy import Policy
from pilothouse.runtime.journal import MemoryStore, Store
from pilothouse.tools import ToolContext


def replies_so_far(request: Any) -> int:
    return sum(1 for m in request.messages if m.role == "assistant")


def topic_of(request: Any) -> str:
    return next(m.content for m in request.messages if m.role == "user").split()[-1]


def survey_tree(
    store: Any,
    how: str,
    *,
    steps_needed: dict[str, int],
    budget: Budget,
    crash: str | None = None,
) -> Agent[None, str]:
    """A lead whose first step calls `survey` once over `steps_needed`'s topics; the tool
    starts one researcher per topic (`how`: "children" through `run_children`,
    "gather" through `asyncio.gather` over `run_child`). A researcher reads a source
    per step and answers after `steps_needed[topic]` steps (-1: never). `crash`: inside
    b's second read, once a has finished ("kill" or "interrupt", see KillableStore)."""
    a_done = asyncio.Event()

    @tool
    async def read_source(name: str) -> str:
        """Read a source."""
        await asyncio.sleep(0)  # a real source takes a moment: the children interleave
        if crash is not None and name == "b2":
            await a_done.wait()
            store.crash(crash, "inside child b, after a finished")
        return f"{name} says figs"

    def researcher(request: Any) -> Any:
        topic, done = topic_of(request), replies_so_far(request)
        if done + 1 == steps_needed[topic]:
            return f"{topic}: figs"
        return call("read_source", name=f"{topic}{done + 1}")

    child = Agent(
        ScriptedModel(researcher), tools=[read_source], name="researcher", store=store, max_steps=50
    )

    @tool(on_doubt="retry")
    async def survey(ctx: ToolContext, topics: str) -> str:
        """Research every topic at once."""
        names = topics.split(",")

        async def one(topic: str) -> Any:
            result = await ctx.run_child(child, f"research {topic}", key=topic)
            if topic == "a":
                a_done.set()
            return result

        if how == "gather":
            results = await asyncio.gather(*(one(t) for t in names))
        else:
            waiting = asyncio.create_task(wait_for_a(ctx, store, a_done))
            results = await ctx.run_children([(child, f"research {t}") for t in names], keys=names)
            waiting.cancel()
        return ",".join(f"{r.outcome}:{r.steps}" for r in results)

    lead_script = [call("survey", topics=",".join(steps_needed)), "done"]
    return Agent(
        ScriptedModel(lambda request: lead_script[replies_so_far(request)]),
        "You lead.",
        [survey],
        name="lead",
        store=store,
        policy=Policy.allow_all(),
        budget=budget,
    )


async def wait_for_a(ctx: ToolContext, store: Any, a_done: asyncio.Event) -> None:
    """Set `a_done` once child a's run has ended (run_children returns only at the end)."""
    child_id = f"{ctx.run_id}.{ctx.step}.{ctx.index}.a"
    for _ in range(100_000):  # a bound, so a broken tree fails instead of hanging
        await asyncio.sleep(0)
        try:
            if store.get_run(child_id).status != "running":
                a_done.set()
                return
        except Exception:  # not started yet
            continue


def tree(store: Store, run_id: str) -> dict[str, Any]:
    """The children's caps, outcomes and steps, and the lead's tool result."""
    events = store.events(run_id)
    started = {e.child_run_id.rsplit(".", 1)[1]: e for e in events if isinstance(e, ChildStarted)}
    return {
        "capped": {k: e.capped for k, e in started.items()},
        "finished": {
            e.child_run_id.rsplit(".", 1)[1]: (e.outcome, e.steps)
            for e in events
            if isinstance(e, ChildFinished)
        },
        "result": [e.result.content for e in events if e.type == "tool_result"],
    }


def model_calls(store: Store) -> int:
    """Model calls made by every run in the store."""
    return sum(
        1
        for info in store.list_runs()
        for e in store.events(info.run_id)
        if e.type == "model_request"
    )


ENDLESS = {"a": -1, "b": -1, "c": -1}


def test_run_children_split_the_calls_share_evenly() -> None:
    """Three children that never answer, on a lead with 12 steps: the 11 left after the
    lead's first step are split 4, 4, 3, and the whole tree makes 12 model calls."""
    store = MemoryStore()
    result = survey_tree(
        store, "children", steps_needed=ENDLESS, budget=Budget(max_steps=12)
    ).run_sync("figs?")
    record = tree(store, result.run_id)
    assert record["capped"] == {
        "a": {"steps": [50, 4]},
        "b": {"steps": [50, 4]},
        "c": {"steps": [50, 3]},
    }
    assert record["finished"] == {
        "a": ("budget_stop", 4),
        "b": ("budget_stop", 4),
        "c": ("budget_stop", 3),
    }
    assert result.outcome == "budget_stop"
    assert model_calls(store) == 12


def test_a_tool_that_gathers_run_child_cannot_multiply_the_budget() -> None:
    """Abuse: the same fan-out written as `asyncio.gather` over `run_child` made 34 model
    calls on a 12-step budget (each child capped to all 11 steps left). Now the
    children run one after another in the order they were started, each capped to what
    the ones before it left: a spends all 11 and b and c get none."""
    store = MemoryStore()
    result = survey_tree(
        store, "gather", steps_needed=ENDLESS, budget=Budget(max_steps=12)
    ).run_sync("figs?")
    record = tree(store, result.run_id)
    assert record["capped"] == {
        "a": {"steps": [50, 11]},
        "b": {"steps": [50, 0]},
        "c": {"steps": [50, 0]},
    }
    assert model_calls(store) == 12


def test_a_gathered_child_gets_what_its_earlier_siblings_left() -> None:
    """Run one at a time, a gathered child that answers early leaves the rest to the
    next: a needs 2 steps of the 8 left, b gets the other 6."""
    store = MemoryStore()
    result = survey_tree(
        store, "gather", steps_needed={"a": 2, "b": 3}, budget=Budget(max_steps=9)
    ).run_sync("figs?")
    record = tree(store, result.run_id)
    assert record["capped"] == {"a": {"steps": [50, 8]}, "b": {"steps": [50, 6]}}
    assert record["finished"] == {"a": ("final", 2), "b": ("final", 3)}
    assert result.output == "done"


def test_run_children_caps_are_fixed_before_any_child_runs() -> None:
    """A child that answers at once does not hand its unused share to its sibling,
    nor take from it: both caps are split before either starts (b's cap would be 7 if
    it were counted after a)."""
    store = MemoryStore()
    result = survey_tree(
        store, "children", steps_needed={"a": 1, "b": -1}, budget=Budget(max_steps=9)
    ).run_sync("figs?")
    record = tree(store, result.run_id)
    assert record["capped"] == {"a": {"steps": [50, 4]}, "b": {"steps": [50, 4]}}
    assert record["finished"] == {"a": ("final", 1), "b": ("budget_stop", 4)}


@pytest.mark.parametrize("crash", ["kill", "interrupt"])
def test_run_children_resumed_give_every_child_the_same_cap(
    crash: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Cut off inside child b after a finished, the lead resumed re-attaches to a and
    resumes b with the caps they had, and the tree ends as it did uninterrupted."""
    caplog.set_level(logging.INFO, logger="pilothouse.runtime")
    needs = {"a": 2, "b": 3}
    budget = Budget(max_steps=9, max_tokens=400)
    plain = MemoryStore()
    uninterrupted = survey_tree(plain, "children", steps_needed=needs, budget=budget).run_sync(
        "figs?"
    )
    want = tree(plain, uninterrupted.run_id)
    caps = {child.rsplit(".", 1)[1]: capped for child, capped in logged_caps(caplog)}
    assert caps["a"] == caps["b"] == {"steps": [50, 4], "tokens": [-1, 199]}
    caplog.clear()

    disk = KillableStore()
    with pytest.raises(SystemExit):
        survey_tree(disk, "children", steps_needed=needs, budget=budget, crash=crash).run_sync(
            "figs?"
        )
    store = disk.after_restart()
    parent_id = next(r.run_id for r in store.list_runs() if r.agent == "lead")
    caplog.clear()
    resumed = survey_tree(store, "children", steps_needed=needs, budget=budget).resume_sync(
        parent_id
    )
    for child, capped in logged_caps(caplog):
        assert capped == caps[child.rsplit(".", 1)[1]]
    assert tree(store, parent_id) == want
    assert (resumed.outcome, resumed.steps, resumed.usage) == (
        uninterrupted.outcome,
        uninterrupted.steps,
        uninterrupted.usage,
    )


def test_a_failing_child_is_raised_only_once_its_siblings_have_ended() -> None:
    """One child's error does not leave the others running unrecorded: b answers and
    is recorded as finished, then the call fails with a's error."""
    store = MemoryStore()
    broken = Agent(ScriptedModel([]), name="broken", store=store)
    fine = Agent(ScriptedModel(["b: figs"]), name="fine", store=store)

    @tool(on_doubt="retry")
    async def survey(ctx: ToolContext) -> str:
        """Research."""
        results = await ctx.run_children([(broken, "a"), (fine, "b")], keys=["a", "b"])
        return str(results)

    lead = Agent(
        ScriptedModel([call("survey"), "done"]),
        tools=[survey],
        name="lead",
        store=store,
        policy=Policy.allow_all(),
    )
    result = lead.run_sync("figs?")
    record = tree(store, result.run_id)
    assert record["finished"] == {"a": ("error", 1), "b": ("final", 1)}
    assert "ran out of replies" in record["result"][0]


def test_run_children_arguments_are_checked() -> None:
    """Keys that collide or do not match the children, and a context outside a run,
    are refused before any child starts."""
    store = MemoryStore()
    child = Agent(ScriptedModel(["figs"]), name="r", store=store)
    seen: list[str] = []

    @tool(on_doubt="retry")
    async def survey(ctx: ToolContext, case: str) -> str:
        """Research."""
        try:
            if case == "same":
                await ctx.run_children([(child, "x"), (child, "y")], keys=["k", "k"])
            else:
                await ctx.run_children([(child, "x"), (child, "y")], keys=["k"])
        except ConfigurationError as error:
            seen.append(str(error))
        return "checked"

    lead = Agent(
        ScriptedModel([[call("survey", case="same"), call("survey", case="count")], "done"]),
        tools=[survey],
        name="lead",
        store=store,
        policy=Policy.allow_all(),
    )
    result = lead.run_sync("figs?")
    assert sorted(seen) == [
        "run_children got 2 children and 1 keys",
        "run_children keys must differ, got ['k', 'k']",
    ]
    assert not [e for e in store.events(result.run_id) if isinstance(e, ChildStarted)]
    with pytest.raises(ConfigurationError, match="needs a running agent"):
        asyncio.run(ToolContext(run_id="r", step=1, index=0).run_children([(child, "x")]))
