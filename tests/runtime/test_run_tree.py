"""The run tree: child runs started from tools, exactly once, with budgets down and usage up.

A crash is simulated in process by a tool that raises `SystemExit` (a `BaseException`,
like the cancellation a signal brings): the loop records the run as interrupted and
the exception leaves the process's event loop, as a kill would leave the journal.
The multi-process kill test for trees is in `test_crash.py`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from killable_store import KillableStore, logged_caps
from pilothouse import Agent, Budget, ScriptedModel, call, tool
from pilothouse.events import ChildFinished, ChildStarted, RunStarted
from pilothouse.exceptions import ConfigurationError
from pilothouse.messages import Usage
from pilothouse.policy import Policy, Principal
from pilothouse.runtime.journal import MemoryStore, SQLiteStore, Store
from pilothouse.tools import ToolContext


def child_agent(replies: list[Any], store: Store, **kwargs: Any) -> Agent[None, str]:
    return Agent(ScriptedModel(replies), "You research.", name="researcher", store=store, **kwargs)


def parent_agent(
    replies: list[Any],
    store: Store,
    child: Agent[None, str],
    *,
    crash_after: bool = False,
    also: Sequence[Any] = (),
    **kw: Any,
) -> Agent[None, str]:
    @tool(on_doubt="retry")
    async def research(ctx: ToolContext, topic: str) -> str:
        """Delegate research on a topic to the researcher."""
        result = await ctx.run_child(child, f"research {topic}")
        if crash_after:
            raise SystemExit("killed after the child finished")
        return str(result.output)

    kw.setdefault("policy", Policy.allow_all())
    return Agent(
        ScriptedModel(replies), "You lead.", [research, *also], name="lead", store=store, **kw
    )


def events_of(store: Store, run_id: str, kind: type) -> list[Any]:
    return [e for e in store.events(run_id) if isinstance(e, kind)]


def test_a_child_run_records_its_parent_and_its_usage_rolls_up() -> None:
    store = MemoryStore()
    child = child_agent(["figs grow on trees"], store)
    lead = parent_agent([call("research", topic="figs"), "Figs grow on trees."], store, child)
    result = lead.run_sync("tell me about figs", principal=Principal("u1", "customer"))
    assert result.output == "Figs grow on trees."
    started = events_of(store, result.run_id, ChildStarted)
    finished = events_of(store, result.run_id, ChildFinished)
    assert len(started) == len(finished) == 1
    child_id = started[0].child_run_id
    assert child_id == f"{result.run_id}.1.0.1" and finished[0].outcome == "final"
    assert started[0].key == f"{result.run_id}:1:0" and started[0].agent == "researcher"
    child_start = store.events(child_id)[0]
    assert isinstance(child_start, RunStarted)
    assert (child_start.parent_run_id, child_start.root_run_id, child_start.parent_key) == (
        result.run_id,
        result.run_id,
        f"{result.run_id}:1:0",
    )
    assert child_start.principal == store.events(result.run_id)[0].principal  # acts for u1
    assert child_start.principal is not None and child_start.principal["user"] == "u1"
    # Usage rolls up exactly: the parent's own model calls plus the child's.
    own = sum(
        (e.response.usage for e in store.events(result.run_id) if e.type == "model_response"),
        Usage(),
    )
    child_usage = store.get_run(child_id)
    assert finished[0].usage.total_tokens == child_usage.input_tokens + child_usage.output_tokens
    assert result.usage.total_tokens == own.total_tokens + finished[0].usage.total_tokens
    assert store.get_run(result.run_id).input_tokens == result.usage.input_tokens


def test_a_parent_resumed_after_a_crash_reattaches_to_its_finished_child() -> None:
    store = MemoryStore()
    child_model = ScriptedModel(["answer from the child"])
    child = Agent(child_model, "You research.", name="researcher", store=store)
    crashing = parent_agent(
        [call("research", topic="figs"), "never"], store, child, crash_after=True
    )
    with pytest.raises(SystemExit):
        crashing.run_sync("figs?")
    parent_id = next(r.run_id for r in store.list_runs(limit=100) if r.agent == "lead")
    assert store.get_run(parent_id).status == "interrupted"
    assert len(child_model.requests) == 1
    # A new process: the same definitions, the tool no longer crashes.
    lead = parent_agent([call("research", topic="figs"), "The child said so."], store, child)
    lead._model = ScriptedModel(["The child said so."])  # the recorded step 1 is not asked again
    result = lead.resume_sync(parent_id)
    assert result.output == "The child said so."
    assert len(child_model.requests) == 1  # the child was not run again
    runs = [r for r in store.list_runs(limit=100) if r.agent == "researcher"]
    assert len(runs) == 1
    assert len(events_of(store, parent_id, ChildStarted)) == 1
    assert len(events_of(store, parent_id, ChildFinished)) == 1
    tool_results = [e for e in store.events(parent_id) if e.type == "tool_result"]
    assert tool_results[-1].result.content == "answer from the child"


def test_a_child_interrupted_with_its_parent_is_resumed_not_restarted() -> None:
    store = MemoryStore()
    crashes = [True]

    @tool
    def read_source(name: str) -> str:
        """Read a source."""
        if crashes.pop() if crashes else False:
            raise SystemExit("killed inside the child")
        return f"{name} says figs are sweet"

    child_model = ScriptedModel([call("read_source", name="atlas"), "figs are sweet"])
    child = Agent(child_model, "You research.", [read_source], name="researcher", store=store)
    lead = parent_agent([call("research", topic="figs"), "Sweet."], store, child)
    with pytest.raises(SystemExit):
        lead.run_sync("figs?")
    parent_id = next(r.run_id for r in store.list_runs(limit=100) if r.agent == "lead")
    child_id = f"{parent_id}.1.0.1"
    assert store.get_run(child_id).status == "interrupted"
    lead._model = ScriptedModel(["Sweet."])
    result = lead.resume_sync(parent_id)
    assert result.output == "Sweet."
    assert len(child_model.requests) == 2  # the child's recorded first step was not asked again
    assert store.get_run(child_id).status == "final"
    assert [r.run_id for r in store.list_runs(limit=100) if r.agent == "researcher"] == [child_id]


def test_a_child_draws_from_the_parents_remaining_budget_and_says_so() -> None:
    store = MemoryStore()
    looping = [call("note", text=f"n{i}") for i in range(10)]

    @tool
    def note(text: str) -> str:
        """Take a note."""
        return "noted"

    child = Agent(
        ScriptedModel(looping), tools=[note], name="researcher", store=store, max_steps=10
    )
    lead = parent_agent(
        [call("research", topic="figs"), "unreachable"], store, child, budget=Budget(max_steps=3)
    )
    result = lead.run_sync("figs?")
    started = events_of(store, result.run_id, ChildStarted)[0]
    assert started.capped == {"steps": [10, 2]}  # 3 allowed, the parent's own step used 1
    child_run = store.get_run(started.child_run_id)
    assert (child_run.status, child_run.steps) == ("budget_stop", 2)
    # The child's two steps count against the parent: it stops before a third model call.
    assert result.outcome == "budget_stop" and result.stop is not None
    assert result.stop.reason == "steps" and result.steps == 1


def test_parallel_children_in_one_step_each_run_once_and_all_roll_up() -> None:
    store = MemoryStore()
    child = child_agent(["one", "two"], store)
    lead = parent_agent(
        [[call("research", topic="a"), call("research", topic="b")], "both done"], store, child
    )
    result = lead.run_sync("a and b?")
    finished = events_of(store, result.run_id, ChildFinished)
    assert sorted(f.child_run_id for f in finished) == [
        f"{result.run_id}.1.0.1",
        f"{result.run_id}.1.1.1",
    ]
    rolled = sum((f.usage.total_tokens for f in finished), 0)
    own = sum(
        e.response.usage.total_tokens
        for e in store.events(result.run_id)
        if e.type == "model_response"
    )
    assert result.usage.total_tokens == own + rolled


def test_child_keys_are_checked_and_a_context_outside_a_run_cannot_start_children() -> None:
    store = MemoryStore()
    child = child_agent(["x"], store)

    @tool(on_doubt="retry")
    async def bad(ctx: ToolContext, key: str) -> str:
        """Start a child with a given key."""
        await ctx.run_child(child, "x", key=key)
        return "started"

    lead = Agent(ScriptedModel([call("bad", key="../etc"), "ok"]), tools=[bad], store=store)
    result = lead.run_sync("go")
    message = next(m for m in result.messages if m.role == "tool").content
    assert "use 1-64 letters, digits" in message
    with pytest.raises(ConfigurationError, match="needs a running agent"):
        import asyncio

        asyncio.run(ToolContext("r", 1, 0).run_child(child, "x"))


def test_listing_the_children_of_a_run_from_its_journal() -> None:
    store = MemoryStore()
    child = child_agent(["a", "b"], store)
    lead = parent_agent(
        [call("research", topic="a"), call("research", topic="b"), "done"], store, child
    )
    result = lead.run_sync("two topics")
    kids = [e.child_run_id for e in events_of(store, result.run_id, ChildStarted)]
    assert kids == [f"{result.run_id}.1.0.1", f"{result.run_id}.2.0.1"]
    for kid in kids:
        start = store.events(kid)[0]
        assert isinstance(start, RunStarted) and start.root_run_id == result.run_id


def test_trace_show_prints_the_run_tree(tmp_path: Path) -> None:
    db = tmp_path / "tree.db"
    store = SQLiteStore(db)
    grandchild = Agent(ScriptedModel(["leaf"]), name="leaf", store=store)

    @tool(on_doubt="retry")
    async def dig(ctx: ToolContext, topic: str) -> str:
        """Ask the leaf agent."""
        return str((await ctx.run_child(grandchild, topic)).output)

    middle = Agent(
        ScriptedModel([call("dig", topic="roots"), "mid"]), tools=[dig], name="middle", store=store
    )
    lead = parent_agent([call("research", topic="figs"), "top"], store, middle)
    run_id = lead.run_sync("figs?").run_id
    store.close()
    shown = subprocess.run(
        [sys.executable, "-m", "pilothouse.cli", "trace", "show", run_id, "--store", str(db)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "250"},
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    tree = lines[lines.index("run tree") + 1 : lines.index("run tree") + 4]
    child = f"{run_id}.1.0.1"
    assert tree[0].split()[0] == run_id and "lead · final" in tree[0]
    assert tree[1].startswith(f"    {child}") and "middle · final" in tree[1]
    assert tree[2].startswith(f"      {child}.1.0.1") and "leaf · final" in tree[2]
    assert f"↳ child  {child} (middle) started by {run_id}:1:0" in shown.stdout
    assert f"↲ child  {child} ended final" in shown.stdout


def sibling_tree(
    store: Any, crash: str | None = None, max_steps: int = 9, max_tokens: int | None = None
) -> Agent[None, str]:
    """A lead (max 9 steps) whose one step starts researchers a (2 steps) and b (3
    steps) in parallel. `crash`: inside b's second tool call, once a has finished,
    "kill" (the store stops taking writes) or "interrupt" (SystemExit: the loops
    record what happened so far, as on a cancellation)."""
    a_done = asyncio.Event()

    @tool
    async def read_source(name: str) -> str:
        """Read a source."""
        await asyncio.sleep(0)  # a real source takes a moment: a and b run side by side
        if crash is not None and name == "b2":
            await a_done.wait()
            store.crash(crash, "inside child b, after a finished")
        return f"{name} says figs"

    scripts: dict[str, list[Any]] = {
        "a": [call("read_source", name="a1"), "a: figs"],
        "b": [call("read_source", name="b1"), call("read_source", name="b2"), "b: figs"],
    }

    def researcher(request: Any) -> Any:
        topic = next(m.content for m in request.messages if m.role == "user").split()[-1]
        return scripts[topic][sum(1 for m in request.messages if m.role == "assistant")]

    child = Agent(
        ScriptedModel(researcher), tools=[read_source], name="researcher", store=store, max_steps=10
    )

    @tool(on_doubt="retry")
    async def research(ctx: ToolContext, topic: str) -> str:
        """Delegate research on a topic."""
        result = await ctx.run_child(child, f"research {topic}", key=topic)
        if topic == "a":
            a_done.set()
        stopped = result.stop.message if result.stop is not None else ""
        return f"{result.outcome}: {result.output if result.ok else stopped}"

    lead_script = [[call("research", topic="a"), call("research", topic="b")], "never reached"]

    def lead(request: Any) -> Any:
        return lead_script[sum(1 for m in request.messages if m.role == "assistant")]

    return Agent(
        ScriptedModel(lead),
        "You lead.",
        [research],
        name="lead",
        store=store,
        policy=Policy.allow_all(),
        budget=Budget(max_steps=max_steps, max_tokens=max_tokens),
    )


def tree_record(store: Store, parent_id: str) -> dict[str, Any]:
    """What a tree did, without its timestamps: the parent's tool results, its
    children's budgets and outcomes, each child's status and steps."""
    events = store.events(parent_id)
    kids = {e.child_run_id.rsplit(".", 1)[1]: e for e in events if isinstance(e, ChildStarted)}
    return {
        "results": sorted(e.result.content for e in events if e.type == "tool_result"),
        "capped": {k: e.capped for k, e in kids.items()},
        "finished": sorted(
            (f.child_run_id.rsplit(".", 1)[1], f.outcome, f.steps)
            for f in events_of(store, parent_id, ChildFinished)
        ),
        "children": {
            k: (store.get_run(e.child_run_id).status, store.get_run(e.child_run_id).steps)
            for k, e in kids.items()
        },
        "end": [(e.type, e.step) for e in events if e.type in ("run_stopped", "final")],
    }


@pytest.mark.parametrize("crash", ["kill", "interrupt"])
def test_a_child_resumed_with_its_parent_gets_the_budget_it_started_with(crash: str) -> None:
    """Regression: a child's budget was capped by what its parallel siblings had used
    when it started. Uninterrupted, a and b start side by side and share the 8 steps
    the lead has left, 4 each; resumed, a finished sibling was counted first (re-attached at
    once, or its child_finished already on record), so b got 4 - 2 and stopped on the
    budget where it had answered. Now a child is capped by the parent's standing
    before the step's calls ran (and by earlier children of its own call), the same
    uninterrupted or resumed, whatever order the siblings finish in."""
    plain = MemoryStore()
    uninterrupted = sibling_tree(plain).run_sync("figs?")
    want = tree_record(plain, uninterrupted.run_id)
    assert want["capped"] == {"a": {"steps": [10, 4]}, "b": {"steps": [10, 4]}}
    assert want["children"] == {"a": ("final", 2), "b": ("final", 3)}

    disk = KillableStore()
    with pytest.raises(SystemExit):
        sibling_tree(disk, crash).run_sync("figs?")
    store = disk.after_restart()
    parent_id = next(r.run_id for r in store.list_runs() if r.agent == "lead")
    recorded = [e.type for e in store.events(parent_id)]
    # kill: nothing after the step's tool calls reached the lead's journal;
    # interrupt: a's result and child_finished did.
    assert ("child_finished" in recorded) == (crash == "interrupt")
    assert store.get_run(f"{parent_id}.1.1.b").status == (
        "running" if crash == "kill" else "interrupted"
    )
    resumed = sibling_tree(store).resume_sync(parent_id)
    assert tree_record(store, parent_id) == want
    assert (resumed.outcome, resumed.steps, resumed.usage) == (
        uninterrupted.outcome,
        uninterrupted.steps,
        uninterrupted.usage,
    )


def caps_given(caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    """The caps each child was given whenever it was started or resumed, by its key (as
    `ChildRuns` logs them; the journal's `child_started` keeps the first start's)."""
    found = {child.rsplit(".", 1)[1]: capped for child, capped in logged_caps(caplog)}
    caplog.clear()
    return found


@pytest.mark.parametrize("crash", ["kill", "interrupt"])
def test_a_resumed_child_gets_the_same_token_share_as_uninterrupted(
    crash: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Adversarial: with a token budget, the two siblings' token shares (and steps) are
    the same when the lead is resumed after b was cut off, a having finished: the
    resumed lead's usage holds a's tokens, and its standing for the step takes them off
    again, so b is not capped by what a happened to spend first."""
    caplog.set_level(logging.INFO, logger="pilothouse.runtime")
    plain = MemoryStore()
    uninterrupted = sibling_tree(plain, max_tokens=300).run_sync("figs?")
    want = caps_given(caplog)
    assert want["a"] == want["b"] == {"steps": [10, 4], "tokens": [-1, 149]}
    disk = KillableStore()
    with pytest.raises(SystemExit):
        sibling_tree(disk, crash, max_tokens=300).run_sync("figs?")
    caplog.clear()
    store = disk.after_restart()
    parent_id = next(r.run_id for r in store.list_runs() if r.agent == "lead")
    resumed = sibling_tree(store, max_tokens=300).resume_sync(parent_id)
    assert caps_given(caplog)["b"] == want["b"]
    assert (resumed.outcome, resumed.usage) == (uninterrupted.outcome, uninterrupted.usage)


def test_parallel_delegating_calls_share_the_parents_budget_not_multiply_it() -> None:
    """Abuse: a model that splits its work over two delegating calls in one step must
    not get the parent's remaining budget twice (before, a and b were each capped to
    all 4 steps the lead had left and spent 5 between them). Now they split the 4: a
    needs 2 and answers, b needs 3 and is stopped by the budget, and the tree never
    spends more steps than the lead was given."""
    store = MemoryStore()
    result = sibling_tree(store, max_steps=5).run_sync("figs?")
    record = tree_record(store, result.run_id)
    assert record["capped"] == {"a": {"steps": [10, 2]}, "b": {"steps": [10, 2]}}
    assert record["children"] == {"a": ("final", 2), "b": ("budget_stop", 2)}
    assert result.outcome == "budget_stop"
    assert result.steps + sum(steps for _, _, steps in record["finished"]) <= 5


def test_a_delegating_call_beside_plain_tools_keeps_the_whole_budget() -> None:
    """Only calls whose tools can start children (they take a ToolContext) share:
    a plain tool called in the same step uses no budget of a child's."""
    store = MemoryStore()

    @tool
    def clock() -> str:
        """The time."""
        return "noon"

    child = child_agent(["figs grow on trees"], store)
    lead = parent_agent(
        [[call("clock"), call("research", topic="figs")], "done"],
        store,
        child,
        also=[clock],
        budget=Budget(max_steps=3),
    )
    result = lead.run_sync("figs?")
    started = events_of(store, result.run_id, ChildStarted)[0]
    assert started.capped == {"steps": [20, 2]}  # all 2 steps left, not half of them
    assert result.output == "done"


def test_a_child_driven_by_another_process_is_not_recorded_as_finished() -> None:
    store = MemoryStore()

    @tool(requires_approval=True)
    def publish(text: str) -> str:
        """Publish a text."""
        return "published"

    child = Agent(
        ScriptedModel([call("publish", text="figs"), "done"]),
        tools=[publish],
        name="writer",
        store=store,
    )
    lead = parent_agent([call("research", topic="figs"), "gave up"], store, child)
    # The child the lead's first call would start already exists, paused, and another
    # host holds its lease (a worker elsewhere resuming it).
    run_id = "lead-run"
    child_id = f"{run_id}.1.0.1"
    assert child.run_sync("research figs", run_id=child_id).outcome == "paused"
    assert store.claim(child_id, "elsewhere:4242:1", 60.0)
    result = lead.run_sync("figs?", run_id=run_id)
    message = next(m for m in result.messages if m.role == "tool").content
    assert "RunLeasedError" in message and "elsewhere:4242:1" in message
    assert len(events_of(store, run_id, ChildStarted)) == 1
    assert events_of(store, run_id, ChildFinished) == []  # it is not over: not recorded so
