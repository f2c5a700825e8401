"""`@tool(timeout=...)`: a call that does not answer in time is stopped, and what the run
does next depends on whether the call changes the world.

The slow tools here never answer on their own (they wait on an event nobody sets until
the test ends), so a timeout always fires and nothing depends on how fast the machine
is; the quick tools answer at once under a generous timeout."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from example_runs import run_example
from pilothouse import Agent, ScriptedModel, call, tool
from pilothouse.events import ToolCalled, ToolReturned
from pilothouse.exceptions import ToolCallInDoubtError, ToolDefinitionError
from pilothouse.policy import Policy, Rule
from pilothouse.runtime.journal import MemoryStore
from pilothouse.tools import ToolContext

NEVER = 0.05  # the slow tools never answer: any timeout fires
ALLOW = Policy([Rule(["charge", "set_status", "flaky"], "allow")])  # side effects allowed


def results(store: MemoryStore, run_id: str) -> list[tuple[str, bool]]:
    return [
        (e.result.content, e.result.is_error)
        for e in store.events(run_id)
        if isinstance(e, ToolReturned)
    ]


def test_a_read_only_call_that_hangs_is_stopped_and_the_model_reads_why() -> None:
    stopped = asyncio.Event()

    @tool(timeout=NEVER)
    async def lookup(order: str) -> str:
        """Look an order up."""
        try:
            await asyncio.Event().wait()  # never set
        except asyncio.CancelledError:
            stopped.set()
            raise
        return "never"

    store = MemoryStore()
    model = ScriptedModel([call("lookup", order="A1"), "The lookup is down."])
    result = Agent(model, tools=[lookup], store=store).run_sync("where is A1?", run_id="r1")
    assert result.output == "The lookup is down."
    stopped_text = "Tool 'lookup' did not answer within 0.05 s and was stopped."
    assert results(store, "r1") == [(stopped_text, True)]
    assert stopped.is_set()  # the coroutine was cancelled, not left running
    assert "did not answer within 0.05 s" in str(model.requests[1].messages[-1].content)


def test_a_side_effect_that_hangs_is_in_doubt_and_never_run_again_blindly() -> None:
    charged: list[str] = []

    def make() -> Any:
        @tool(effect="side_effect", timeout=NEVER)
        async def charge(order: str, ctx: ToolContext) -> str:
            """Charge an order."""
            charged.append(ctx.idempotency_key)
            await asyncio.Event().wait()
            return "charged"

        return charge

    store = MemoryStore()
    model = ScriptedModel([call("charge", order="A1"), "done"])
    with pytest.raises(ToolCallInDoubtError) as caught:
        Agent(model, tools=[make()], store=store, policy=ALLOW).run_sync("charge A1", run_id="r1")
    assert "was stopped after 0.05 s (its timeout)" in str(caught.value)
    assert (caught.value.run_id, caught.value.tool) == ("r1", "charge")
    assert store.get_run("r1").status == "in_doubt"
    events = store.events("r1")
    assert [e.call.name for e in events if isinstance(e, ToolCalled)] == ["charge"]
    assert results(store, "r1") == []  # started, no result: exactly as after a crash
    # a resume does not run it again either (on_doubt "ask")
    with pytest.raises(ToolCallInDoubtError):
        Agent(ScriptedModel(["done"]), tools=[make()], store=store, policy=ALLOW).resume_sync("r1")
    assert charged == ["r1:1:0"]


def test_an_idempotent_side_effect_that_hangs_may_be_called_again() -> None:
    attempts: list[str] = []

    @tool(effect="side_effect", on_doubt="retry", timeout=NEVER)
    async def set_status(order: str, ctx: ToolContext) -> str:
        """Set an order's status (idempotent by key)."""
        attempts.append(ctx.idempotency_key)
        if len(attempts) == 1:
            await asyncio.Event().wait()  # the first attempt hangs
        return "status set"

    store = MemoryStore()
    model = ScriptedModel(
        [call("set_status", order="A1"), call("set_status", order="A1"), "Status set."]
    )
    result = Agent(model, tools=[set_status], store=store, policy=ALLOW).run_sync(
        "set it", run_id="r1"
    )
    assert result.output == "Status set."
    assert results(store, "r1") == [
        ("Tool 'set_status' did not answer within 0.05 s; it may be called again.", True),
        ("status set", False),
    ]
    assert attempts == ["r1:1:0", "r1:2:0"]


@pytest.mark.parametrize(("found", "read"), [("charged 40", ("charged 40", False)), (None, None)])
def test_a_reconcilable_side_effect_that_hangs_is_looked_up(
    found: str | None, read: tuple[str, bool] | None
) -> None:
    looked: list[dict[str, Any]] = []

    def reconcile(context: ToolContext, arguments: dict[str, Any]) -> str | None:
        looked.append(arguments)
        return found

    @tool(effect="side_effect", reconcile=reconcile, timeout=NEVER)
    async def charge(order: str) -> str:
        """Charge an order."""
        await asyncio.Event().wait()
        return "never"

    store = MemoryStore()
    model = ScriptedModel([call("charge", order="A1"), "ok"])
    Agent(model, tools=[charge], store=store, policy=ALLOW).run_sync("charge", run_id="r1")
    assert looked == [{"order": "A1"}]
    expected = read or (
        "Tool 'charge' did not answer within 0.05 s; it did not happen: it may be called again.",
        True,
    )
    assert results(store, "r1") == [expected]


def test_a_blocking_tool_is_abandoned_and_its_late_result_dropped() -> None:
    release, finished = threading.Event(), threading.Event()

    @tool(blocking=True, timeout=NEVER)
    def slow_report() -> str:
        """A report that takes long."""
        release.wait(60)
        finished.set()
        return "late report"

    store = MemoryStore()
    model = ScriptedModel([call("slow_report"), "No report today."])
    try:
        result = Agent(model, tools=[slow_report], store=store).run_sync("report", run_id="r1")
        # run_sync returned while the thread still waits: nothing waited for it
        assert not finished.is_set()
    finally:
        release.set()
    assert result.output == "No report today."
    assert finished.wait(60)  # the thread finished afterwards...
    assert [content for content, _ in results(store, "r1")] == [
        "Tool 'slow_report' did not answer within 0.05 s and was stopped."
    ]  # ...and its result reached nothing


def test_a_quick_call_and_the_tools_own_timeout_error_are_not_its_timeout() -> None:
    @tool(timeout=30)
    async def quick() -> str:
        """Answer at once."""
        return "fine"

    @tool(effect="side_effect", timeout=30)
    async def flaky() -> str:
        """Fail with a timeout of its own (a socket's, say)."""
        raise TimeoutError("the upstream socket timed out")

    store = MemoryStore()
    model = ScriptedModel([call("quick"), call("flaky"), "done"])
    Agent(model, tools=[quick, flaky], store=store, policy=ALLOW).run_sync("go", run_id="r1")
    assert results(store, "r1") == [
        ("fine", False),
        ("Tool 'flaky' failed: TimeoutError: the upstream socket timed out", True),
    ]
    assert store.get_run("r1").status == "final"  # not in doubt: the tool said it failed


def test_a_timeout_needs_a_function_that_can_be_stopped() -> None:
    def plain() -> str:
        """Runs inline."""
        return "x"

    with pytest.raises(ToolDefinitionError, match="cannot be stopped"):
        tool(timeout=1)(plain)
    for bad in (0, -1):
        with pytest.raises(ToolDefinitionError, match="seconds > 0"):
            tool(blocking=True, timeout=bad)(plain)
    assert tool(blocking=True, timeout=2)(plain).timeout == 2


def test_the_tool_timeouts_example_runs_as_written(tmp_path: Path) -> None:
    result = run_example("tool_timeouts.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "lookup_order: error: Tool 'lookup_order' did not answer within 0.2 s" in out
    assert "pay_refund: ok: refund of 25.00 paid for A1001" in out  # found by reconcile
    assert "payments at the provider: 1" in out  # never paid twice
