"""Adversarial: a run tree whose children delegate again, in parallel, at every level
must stay within the root's budget as a whole (steps and tokens), and a child's
steps reported up must include its own children's."""

from __future__ import annotations

import asyncio
from typing import Any

from pilothouse import Agent, Budget, ScriptedModel, call, tool
from pilothouse.events import ChildFinished, ChildStarted
from pilothouse.policy import Policy
from pilothouse.runtime.journal import MemoryStore, Store
from pilothouse.tools import ToolContext


def replies_so_far(request: Any) -> int:
    return sum(1 for m in request.messages if m.role == "assistant")


def three_levels(store: Store, budget: Budget) -> Agent[None, str]:
    """A lead whose steps each start two middles in parallel, whose steps each start
    two leaves in parallel; a leaf never answers (it reads until a limit stops it),
    and every agent's own limit is far above the lead's: only the caps passed down
    can hold the tree."""

    @tool
    async def read_source(name: str) -> str:
        """Read a source."""
        await asyncio.sleep(0)  # the two leaves of a step run side by side
        return f"{name} says figs"

    def endless(request: Any) -> Any:
        return call("read_source", name=f"s{replies_so_far(request)}")

    leaf = Agent(
        ScriptedModel(endless), tools=[read_source], name="leaf", store=store, max_steps=99
    )

    def fan_out(tool_name: str) -> Any:
        def reply(request: Any) -> Any:
            if replies_so_far(request) >= 3:
                return "done"
            return [call(tool_name, topic="x"), call(tool_name, topic="y")]

        return reply

    @tool(on_doubt="retry")
    async def dig(ctx: ToolContext, topic: str) -> str:
        """Delegate digging."""
        return (await ctx.run_child(leaf, f"dig {topic}", key=topic)).outcome

    middle = Agent(
        ScriptedModel(fan_out("dig")),
        tools=[dig],
        name="middle",
        store=store,
        policy=Policy.allow_all(),
        max_steps=99,
    )

    @tool(on_doubt="retry")
    async def research(ctx: ToolContext, topic: str) -> str:
        """Delegate research."""
        return (await ctx.run_child(middle, f"research {topic}", key=topic)).outcome

    return Agent(
        ScriptedModel(fan_out("research")),
        "You lead.",
        [research],
        name="lead",
        store=store,
        policy=Policy.allow_all(),
        budget=budget,
    )


def tree_spent(store: Store, run_id: str) -> tuple[int, int]:
    """(model calls, tokens) of a run and every run below it, from their journals."""
    calls = tokens = 0
    for e in store.events(run_id):
        if e.type == "model_response":
            calls, tokens = calls + 1, tokens + e.response.usage.total_tokens
        elif isinstance(e, ChildStarted):
            below = tree_spent(store, e.child_run_id)
            calls, tokens = calls + below[0], tokens + below[1]
    return calls, tokens


def test_a_nested_tree_spends_no_more_steps_than_the_root_was_given() -> None:
    """Regression: a child reported only its own steps up (a middle that ran 1 step
    and whose two leaves ran 9 finished with steps=1), so the lead counted 2 of its 20
    steps spent where 20 were, capped its next step's children from 16 more, and the
    tree made 38 model calls on a 20-step budget."""
    store = MemoryStore()
    result = three_levels(store, Budget(max_steps=20)).run_sync("figs?")
    calls, _ = tree_spent(store, result.run_id)
    assert calls <= 20
    middles = [
        e
        for e in store.events(result.run_id)
        if isinstance(e, ChildFinished) and e.child_run_id.endswith(".a")
    ]
    for finished in middles:  # its own steps and its leaves'
        assert finished.steps == tree_spent(store, finished.child_run_id)[0]
    assert result.outcome == "budget_stop"


def test_a_nested_tree_spends_no_more_tokens_than_the_root_was_given() -> None:
    """Tokens (each leaf call 2) roll up whole, and the caps passed down hold the tree
    to the lead's 400: every token of every run below is on the lead's usage."""
    store = MemoryStore()
    result = three_levels(store, Budget(max_steps=None, max_tokens=400)).run_sync("figs?")
    calls, tokens = tree_spent(store, result.run_id)
    assert tokens == result.usage.total_tokens <= 400
    assert calls == result.usage.requests
    assert result.outcome == "budget_stop"
