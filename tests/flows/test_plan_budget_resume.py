"""Adversarial: a planned run's agent tasks, killed or interrupted and resumed, must
give their children the same caps and count the same usage as an uninterrupted run.

A crash is simulated in process as in tests/runtime/test_run_tree.py: a tool raises
`SystemExit` ("interrupt": the loops record what happened so far) or first makes the
store stop taking writes ("kill": what a SIGKILL leaves), and a new process's store
(`KillableStore.after_restart`) resumes the run.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from killable_store import KillableStore, logged_caps
from pilothouse import Agent, Budget, call, tool
from pilothouse.events import ChildStarted, ModelResponded
from pilothouse.flows.plan import PlannedAgent
from pilothouse.models.scripted import ScriptedModel
from pilothouse.policy import Policy
from pilothouse.runtime.journal import MemoryStore
from pilothouse.tools import ToolContext


def task(tid: int, name: str, **args: Any) -> dict[str, Any]:
    return {"id": tid, "tool": name, "args": args}


def planner(plan: list[dict[str, Any]]) -> ScriptedModel:
    """The plan first, then the joiner's answer "$3" (by the conversation, so a resumed
    run whose planner reply is served from the journal still gets the answer)."""
    text = json.dumps({"tasks": plan})

    def reply(request: Any) -> str:
        asked = any(m.role == "assistant" for m in request.messages)
        return '{"answer": "$3"}' if asked else text

    return ScriptedModel(reply)


def city_tasks(store: Any, crash: str | None, budget: Budget) -> PlannedAgent[str]:
    """Two agent tasks side by side (north, south), then `both` of their answers, which
    `crash`es once: both agent tasks have finished and are on the record by then."""
    north = Agent(ScriptedModel(["Oslo, far in the north"]), name="north", store=store)
    south = Agent(ScriptedModel(["Cape Town, far in the south"]), name="south", store=store)
    crashed: list[bool] = []

    @tool
    def both(a: str, b: str) -> str:
        """Both answers."""
        if crash is not None and not crashed:
            crashed.append(True)
            store.crash(crash, "after both agent tasks finished")
        return f"{a} & {b}"

    plan = [
        task(1, "ask_north", input="a northern city"),
        task(2, "ask_south", input="a southern city"),
        task(3, "both", a="$1", b="$2"),
    ]
    policy = Policy.from_dict(
        {"rules": [{"id": "ask", "tools": ["ask_north", "ask_south"], "effect": "allow"}]}
    )
    lead = Agent(planner(plan), tools=[both], store=store, policy=policy, budget=budget)
    return PlannedAgent(lead, agents={"ask_north": north, "ask_south": south})


def crashed_then_resumed(build: Any, crash: str) -> tuple[Any, MemoryStore]:
    disk = KillableStore()
    with pytest.raises(SystemExit):
        build(disk, crash).run_sync("two cities", run_id="planned")
    store = disk.after_restart()
    return asyncio.run(build(store, None).resume("planned")), store


def caps(store: Any, run_id: str) -> dict[str, Any]:
    return {
        e.child_run_id.split(".", 1)[1]: e.capped
        for e in store.events(run_id)
        if isinstance(e, ChildStarted)
    }


@pytest.mark.parametrize("crash", ["kill", "interrupt"])
def test_a_resumed_planned_run_counts_the_usage_of_its_finished_agent_tasks(crash: str) -> None:
    """Regression: a resumed planned run served a finished agent task's result from the
    journal and never added its child's usage (nor did a re-attached finished child
    roll up again), so it reported, and checked its budget against, less than it had
    used (2 requests where there were 4)."""

    def build(store: Any, crash: str | None) -> PlannedAgent[str]:
        return city_tasks(store, crash, Budget(max_tokens=1_000))

    plain = MemoryStore()
    uninterrupted = asyncio.run(build(plain, None).run("two cities", run_id="planned"))
    resumed, store = crashed_then_resumed(build, crash)
    assert resumed.output == uninterrupted.output
    assert resumed.usage == uninterrupted.usage
    assert resumed.child_steps == uninterrupted.child_steps == 2  # north's and south's
    assert uninterrupted.usage.requests == 4  # planner, north, south, joiner
    assert caps(store, "planned") == caps(plain, "planned")
    row = store.get_run("planned")
    assert (row.input_tokens, row.output_tokens) == (
        uninterrupted.usage.input_tokens,
        uninterrupted.usage.output_tokens,
    )


@pytest.mark.parametrize("crash", ["kill", "interrupt"])
def test_a_resumed_planned_run_stops_where_its_children_spent_the_budget(crash: str) -> None:
    """Abuse: the agent tasks' children spend the run's whole token budget. Uninterrupted,
    the joiner is never asked (a budget stop); resumed, it must not be either (before,
    the children's usage was forgotten and the resumed run went on to answer)."""
    plain = MemoryStore()
    free = asyncio.run(city_tasks(plain, None, Budget(max_tokens=None)).run("two cities"))
    replies = [e for e in plain.events(free.run_id) if isinstance(e, ModelResponded)]
    joiner = replies[-1].response.usage  # (the planner's is the first)
    spent = free.usage.total_tokens - joiner.total_tokens  # the planner and both children

    def build(store: Any, crash: str | None) -> PlannedAgent[str]:
        return city_tasks(store, crash, Budget(max_tokens=spent))

    uninterrupted = asyncio.run(build(MemoryStore(), None).run("two cities"))
    assert (uninterrupted.outcome, uninterrupted.stop and uninterrupted.stop.reason) == (
        "budget_stop",
        "tokens",
    )
    resumed, _ = crashed_then_resumed(build, crash)
    assert (resumed.outcome, resumed.usage) == (uninterrupted.outcome, uninterrupted.usage)


def pair_tasks(store: Any, crash: str | None) -> PlannedAgent[str]:
    """An agent task (`ask_pair`) that starts two children one after the other, beside
    another agent task (north): `crash` lands inside the second child, after the first
    finished, so the resumed task re-runs in doubt and re-attaches to the first."""
    north = Agent(ScriptedModel(["Oslo, far in the north"]), name="north", store=store)
    first = Agent(ScriptedModel(["figs grow in the south of Europe"]), name="first", store=store)
    crashed: list[bool] = []

    @tool
    def look(name: str) -> str:
        """Look something up."""
        if crash is not None and not crashed:
            crashed.append(True)
            store.crash(crash, "inside the second child")
        return f"{name}: ripe in August"

    script = [call("look", name="figs"), "figs ripen in August"]

    def ripen(request: Any) -> Any:  # by the conversation: the same when resumed
        return script[sum(1 for m in request.messages if m.role == "assistant")]

    second = Agent(
        ScriptedModel(ripen),
        tools=[look],
        name="second",
        store=store,
    )

    @tool(effect="side_effect", on_doubt="retry")
    async def ask_pair(topic: str, ctx: ToolContext) -> str:
        """Ask two researchers, one after the other."""
        one = await ctx.run_child(first, f"where do {topic} grow", key="first")
        two = await ctx.run_child(second, f"when do {topic} ripen", key="second")
        return f"{one.output}; {two.output}"

    @tool
    def both(a: str, b: str) -> str:
        """Both answers."""
        return f"{a} & {b}"

    plan = [
        task(1, "ask_north", input="a northern city"),
        task(2, "ask_pair", topic="figs"),
        task(3, "both", a="$1", b="$2"),
    ]
    policy = Policy.from_dict(
        {"rules": [{"id": "ask", "tools": ["ask_north", "ask_pair"], "effect": "allow"}]}
    )
    lead = Agent(
        planner(plan),
        tools=[ask_pair, both],
        store=store,
        policy=policy,
        budget=Budget(max_tokens=1_000, max_cost=1.0),
    )
    return PlannedAgent(lead, agents={"ask_north": north})


def given(caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    """The caps each child was given, as `ChildRuns` logs them whenever it starts or
    resumes one (the journal's `child_started` keeps only the first start's)."""
    found = {child.split(".", 1)[1]: capped for child, capped in logged_caps(caplog)}
    caplog.clear()
    return found


@pytest.mark.parametrize("crash", ["kill", "interrupt"])
def test_an_in_doubt_agent_task_resumed_gives_its_next_child_the_same_cap(
    crash: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: a planned task's standing is what the run had used when the plan's
    tasks began, which never holds the tasks' own children; on resume it was still
    lowered by what the task's children had recorded, as an agent loop's resumed step
    (whose usage does hold them) needs. With two agent tasks sharing, the second child
    of a re-run task got a larger cap resumed than uninterrupted."""
    caplog.set_level(logging.INFO, logger="pilothouse.runtime")
    plain = MemoryStore()
    uninterrupted = asyncio.run(pair_tasks(plain, None).run("figs", run_id="planned"))
    want = given(caplog)
    assert set(want) == {"2.0.task", "3.0.first", "3.0.second"}
    assert want == caps(plain, "planned")
    resumed, store = crashed_then_resumed(pair_tasks, crash)
    assert given(caplog)["3.0.second"] == want["3.0.second"]
    assert (resumed.output, resumed.usage) == (uninterrupted.output, uninterrupted.usage)
    assert store.get_run("planned").output_tokens == uninterrupted.usage.output_tokens


def endless_tasks(store: Any, max_steps: int) -> PlannedAgent[str]:
    """Every plan: two agent tasks whose agents read until a limit stops them; the
    joiner always asks for a new plan (up to 3 re-plans)."""

    @tool
    def read(name: str) -> str:
        """Read a source."""
        return f"{name}: figs"

    def endless(request: Any) -> Any:
        return call("read", name=f"s{sum(1 for m in request.messages if m.role == 'assistant')}")

    reader = Agent(ScriptedModel(endless), tools=[read], name="reader", store=store, max_steps=99)
    text = json.dumps({"tasks": [task(1, "ask_a", input="dig"), task(2, "ask_b", input="dig")]})

    def reply(request: Any) -> str:
        last = [m for m in request.messages if m.role == "assistant"]
        return text if not last or "replan" in last[-1].content else '{"replan": "dig more"}'

    policy = Policy.from_dict(
        {"rules": [{"id": "ask", "tools": ["ask_a", "ask_b"], "effect": "allow"}]}
    )
    lead = Agent(
        ScriptedModel(reply), store=store, policy=policy, budget=Budget(max_steps=max_steps)
    )
    return PlannedAgent(lead, agents={"ask_a": reader, "ask_b": reader}, max_replans=3)


def test_a_planned_runs_tree_spends_no_more_steps_than_its_budget() -> None:
    """Regression: a planned run's `max_steps` counted its own model calls only, and
    each plan's agent tasks were capped from the step number alone, so over re-plans
    the children's steps added up past the budget (19 model calls in the tree on 12).
    Now the children's steps count against the run's `max_steps` as in an agent
    loop's tree, and the tasks split what the run had left, model calls and children's
    steps both."""
    store = MemoryStore()
    result = asyncio.run(endless_tasks(store, 12).run("dig", run_id="deep"))
    calls = sum(
        1
        for run in store.list_runs(limit=100)
        for e in store.events(run.run_id)
        if e.type == "model_response"
    )
    assert calls <= 12
    assert (result.outcome, result.stop and result.stop.reason) == ("budget_stop", "steps")
    assert result.steps + result.child_steps >= 12 - 1
