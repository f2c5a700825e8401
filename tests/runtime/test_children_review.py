"""Review of a tool's children (session 15): ways around the per-call order of
`run_child` and the split of `run_children` that a tool could take by accident or on
purpose, each checked to fail on the code before its fix.

Abuse case: "splitting a limit into pieces", and work lost or a run hung by the lock
that makes a tool's gathered children run one at a time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pilothouse import Agent, Budget, ScriptedModel, call, tool
from pilothouse.events import ChildFinished, ChildStarted
from pilothouse.policy import Policy, Rule
from pilothouse.runtime.journal import MemoryStore
from pilothouse.tools import ToolContext


def replies_so_far(request: Any) -> int:
    return sum(1 for m in request.messages if m.role == "assistant")


def lead_of(store: Any, tool_: Any, budget: Budget | None = None) -> Agent[None, str]:
    """A lead that calls `tool_` once, then answers "done"."""
    script = [call(tool_.name), "done"]
    return Agent(
        ScriptedModel(lambda request: script[min(replies_so_far(request), 1)]),
        tools=[tool_],
        name="lead",
        store=store,
        policy=Policy.allow_all(),
        budget=budget or Budget(),
    )


@tool
async def look(what: str) -> str:
    """Look something up (it takes a moment: children that run at once interleave)."""
    await asyncio.sleep(0)
    return what


def echo(store: Any, name: str = "echo") -> Agent[None, str]:
    """A child that looks its input up, then answers with it."""

    def reply(request: Any) -> Any:
        if not replies_so_far(request):
            return call("look", what=request.messages[-1].content)
        return f"did {request.messages[-1].content}"

    return Agent(ScriptedModel(reply), tools=[look], name=name, store=store)


def test_gathered_children_without_keys_each_run_once() -> None:
    """Three children gathered over `run_child` with no keys are three runs, each
    answering its own input. Before, the key of a child waiting for its turn was read
    when its turn came (`ctx.children` had grown meanwhile), so the second and third
    both became child "3": the third was never run and got the second's answer."""
    store = MemoryStore()
    child = echo(store)

    @tool(on_doubt="retry")
    async def fan(ctx: ToolContext) -> str:
        """Fan out."""
        results = await asyncio.gather(*(ctx.run_child(child, t) for t in ("x", "y", "z")))
        return ",".join(str(r.output) for r in results)

    result = lead_of(store, fan).run_sync("go")
    events = store.events(result.run_id)
    started = [e.child_run_id.rsplit(".", 1)[1] for e in events if isinstance(e, ChildStarted)]
    assert started == ["1", "2", "3"]
    assert len([e for e in events if isinstance(e, ChildFinished)]) == 3
    (tool_result,) = [e.result.content for e in events if e.type == "tool_result"]
    assert tool_result == "did x,did y,did z"


@pytest.mark.parametrize("how", ["run_child", "run_children"])
def test_a_child_asking_its_parents_call_for_a_child_is_refused_not_hung(how: str) -> None:
    """A child whose tool asks the call that started it for another child (a closure
    over the parent's `ToolContext`) would wait for its own turn forever: the parent's
    call holds its children's lock until this child ends. Refused with a clear error
    (the child's tool fails and its model is told; it should use its own context)
    instead. Before, the run hung (bounded here so a regression fails, not hangs)."""
    store = MemoryStore()
    helper = echo(store, "helper")

    @tool(on_doubt="retry")
    async def outer(ctx: ToolContext) -> str:
        """Delegate to a worker that may ask this call for help."""

        @tool
        async def help_me(question: str) -> str:
            """Ask for help."""
            result = await ctx.run_child(helper, question, key="help")
            return str(result.output)

        def worker_reply(request: Any) -> Any:
            if not replies_so_far(request):
                return call("help_me", question="figs?")
            return f"worker saw: {request.messages[-1].content}"

        worker = Agent(ScriptedModel(worker_reply), tools=[help_me], name="worker", store=store)
        if how == "run_child":
            result = await ctx.run_child(worker, "work", key="worker")
        else:
            (result,) = await ctx.run_children([(worker, "work")], keys=["worker"])
        return str(result.output)

    async def bounded() -> Any:
        return await asyncio.wait_for(lead_of(store, outer).run("go"), timeout=20)

    result = asyncio.run(bounded())
    assert result.output == "done"
    events = store.events(result.run_id)
    started = [e.child_run_id.rsplit(".", 1)[1] for e in events if isinstance(e, ChildStarted)]
    assert started == ["worker"]
    (tool_result,) = [e.result.content for e in events if e.type == "tool_result"]
    assert tool_result.startswith("worker saw: ")
    assert "its own ToolContext" in tool_result


@tool
async def pay(amount: int) -> str:
    """Pay (a person approves it first)."""
    return f"paid {amount}"


def test_a_paused_gathered_child_holds_its_cap_until_it_ends() -> None:
    """Abuse: child a, gathered first, is capped to the 11 steps the call has; it pauses
    for a person after two steps. b, run next, was capped to all 11 again (a paused
    child's usage is not rolled up until it ends), and a resumed later may spend the
    rest of its 11: 22 steps on an 11-step share. A paused child now holds its whole
    cap until it ends, so the caps of the call's children never add up to more than
    its share."""
    store = MemoryStore()

    def a_reply(request: Any) -> Any:
        return [call("look", what="price"), call("pay", amount=3), "paid"][replies_so_far(request)]

    a = Agent(
        ScriptedModel(a_reply),
        tools=[look, pay],
        name="a",
        store=store,
        max_steps=50,
        policy=Policy([Rule("pay", "ask"), Rule("look", "allow")]),
    )
    b = Agent(
        ScriptedModel(lambda request: call("look", what="more")),
        tools=[look],
        name="b",
        store=store,
        max_steps=50,
    )

    @tool(on_doubt="retry")
    async def fan(ctx: ToolContext) -> str:
        """Fan out."""
        results = await asyncio.gather(
            ctx.run_child(a, "buy", key="a"), ctx.run_child(b, "browse", key="b")
        )
        return ",".join(r.outcome for r in results)

    result = lead_of(store, fan, Budget(max_steps=12)).run_sync("go")
    events = store.events(result.run_id)
    caps = {
        e.child_run_id.rsplit(".", 1)[1]: e.capped["steps"][1]
        for e in events
        if isinstance(e, ChildStarted)
    }
    assert caps == {"a": 11, "b": 0}
    assert store.get_run(f"{result.run_id}.1.0.a").status == "paused"


def test_children_gathered_behind_a_failing_one_do_not_outlive_the_call() -> None:
    """A tool gathers three children over `run_child` (no `return_exceptions`): the
    first fails, the gather raises at once and the tool returns its error while the
    other two still wait for their turn. Before, they then ran after the call had
    ended: c's run was made and finished after the lead's next step had begun, and
    the lead's record has neither its start nor its end (its usage never rolled up).
    Now a child whose turn comes after its call
    ended is not started, and the one already running is waited for: every child
    started is finished and recorded within the call."""
    store = MemoryStore()
    broken = Agent(ScriptedModel([]), name="broken", store=store)
    b = echo(store, "b")
    c = echo(store, "c")

    @tool(on_doubt="retry")
    async def fan(ctx: ToolContext) -> str:
        """Fan out."""
        results = await asyncio.gather(
            ctx.run_child(broken, "a", key="a"),
            ctx.run_child(b, "b", key="b"),
            ctx.run_child(c, "c", key="c"),
        )
        return str(results)

    result = lead_of(store, fan, Budget(max_steps=12)).run_sync("go")
    assert result.output == "done"
    events = store.events(result.run_id)
    started = {e.child_run_id for e in events if isinstance(e, ChildStarted)}
    finished = [e for e in events if isinstance(e, ChildFinished)]
    runs = {r.run_id for r in store.list_runs() if r.run_id.startswith(f"{result.run_id}.")}
    assert runs == started == {e.child_run_id for e in finished}
    assert all(e.step == 1 for e in finished)
    assert {store.get_run(r).status for r in started} <= {"final", "error"}
    tool_results = [e for e in events if e.type == "tool_result"]
    assert len(tool_results) == 1 and "ran out of replies" in tool_results[0].result.content
    # everything the call's children finished is on record before the lead's next step
    after = [i for i, e in enumerate(events) if e.type == "model_request"][1]
    assert all(events.index(e) < after for e in finished)


def fanner(store: Any, name: str, depth: int, budget: Budget | None = None) -> Agent[None, str]:
    """An agent whose first step starts three children with `run_children` through its
    own context (fanners again while `depth` > 1, else readers that never answer)."""

    def reader(request: Any) -> Any:
        return call("look", what=f"page {replies_so_far(request)}")

    @tool(on_doubt="retry")
    async def fan(ctx: ToolContext) -> str:
        """Fan out."""
        kids = [
            fanner(store, f"{name}{k}", depth - 1)
            if depth > 1
            else Agent(ScriptedModel(reader), tools=[look], name=f"{name}{k}", store=store)
            for k in range(3)
        ]
        results = await ctx.run_children([(kid, "go") for kid in kids], keys=["a", "b", "c"])
        return ",".join(r.outcome for r in results)

    script = [call("fan"), "done"]
    return Agent(
        ScriptedModel(lambda request: script[min(replies_so_far(request), 1)]),
        tools=[fan],
        name=name,
        store=store,
        policy=Policy.allow_all(),
        budget=budget or Budget(max_steps=100),
    )


def test_nested_run_children_delegate_through_their_own_context() -> None:
    """A guard for the refusal above (it passed before too): children that fan out
    again through their own `ToolContext` are not refused, and the tree of 13 runs
    stays within the root's 30 steps (29 split 10/10/9, each child's 9 left split
    3/3/3 or 3/3/2)."""
    store = MemoryStore()
    result = fanner(store, "L", 2, Budget(max_steps=30)).run_sync("go")
    assert len(store.list_runs()) == 13
    calls = sum(
        1 for r in store.list_runs() for e in store.events(r.run_id) if e.type == "model_request"
    )
    assert calls == 30
    assert result.outcome == "budget_stop"
