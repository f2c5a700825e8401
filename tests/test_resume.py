"""Resume: a stopped run continues from its journal, never asking or acting twice."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pilothouse import Agent, ScriptedModel, SQLiteStore, tool
from pilothouse.events import Event
from pilothouse.exceptions import (
    ConfigurationError,
    RunFinishedError,
    RunNotFoundError,
    StoreError,
    ToolCallInDoubtError,
)
from pilothouse.messages import ToolCall
from pilothouse.models.base import ModelRequest
from pilothouse.policy import Policy
from pilothouse.runtime.journal import MemoryStore, RunInfo
from pilothouse.tools import Tool, ToolContext
from turns import Crash
from turns import by_turn as conversation_model

if TYPE_CHECKING:
    from conftest import CLI


REPLIES: list[Any] = [
    [ToolCall("c1", "lookup", {"key": "a"}), ToolCall("c2", "lookup", {"key": "b"})],
    ToolCall("c3", "lookup", {"key": "c"}),
    "",  # an empty answer: the loop asks again (output retry)
    "done",
]


def counting_lookup(counts: dict[str, int]) -> Tool:
    @tool
    def lookup(key: str) -> str:
        """Look up."""
        counts[key] = counts.get(key, 0) + 1
        return key.upper()

    return lookup


def copy_prefix(store: MemoryStore, run_id: str, cut: int) -> MemoryStore:
    """A store holding the first `cut` events of a run, as if it had stopped there."""
    info = store.get_run(run_id)
    copy = MemoryStore()
    copy.write(
        store.events(run_id)[:cut],
        RunInfo(run_id, info.agent, info.model, info.input, "running", info.created),
    )
    return copy


JSON_REPLIES: list[Any] = [
    '{"action": "lookup", "action_input": {"key": "a"}}',
    '{"action": "lookup", "action_input": 5',  # unreadable: parse_failed, asked again
    '{"action": "Final Answer", "action_input": ""}',  # empty: output retry
    '{"action": "Final Answer", "action_input": "done"}',
]


@pytest.mark.parametrize(
    ("replies", "action_format"),
    [(REPLIES, "auto"), (JSON_REPLIES, "json")],
    ids=["native", "json"],
)
def test_resume_from_every_point_equals_an_uninterrupted_run(
    replies: list[Any], action_format: str
) -> None:
    counts: dict[str, int] = {}
    model = conversation_model(replies)
    full = Agent(
        model, tools=[counting_lookup(counts)], store=MemoryStore(), action_format=action_format
    )
    done = full.run_sync("go")
    assert done.output == "done" and done.steps == 4
    events = full.store.events(done.run_id)
    assert events[-1].type == "final"
    for cut in range(1, len(events) - 1):
        prefix = events[:cut]
        store = copy_prefix(full.store, done.run_id, cut)  # type: ignore[arg-type]
        counts2: dict[str, int] = {}
        model2 = conversation_model(replies)
        agent = Agent(
            model2, tools=[counting_lookup(counts2)], store=store, action_format=action_format
        )
        result = agent.resume_sync(done.run_id)
        assert result.output == "done", cut
        assert result.steps == 4
        # Model calls already answered are not made again.
        answered = sum(1 for e in prefix if e.type == "model_response")
        assert len(model2.requests) == 4 - answered, cut
        if model2.requests:  # and the last request is exactly the uninterrupted one
            assert model2.requests[-1].messages == model.requests[-1].messages, cut
        # Recorded tool results are reused; only unrecorded calls run.
        recorded = {e.index for e in prefix if e.type == "tool_result" and e.step == 1}
        expect = {k: 1 for k in "abc"}
        if cut:
            for key, index in (("a", 0), ("b", 1)):
                if index in recorded:
                    expect[key] = 0
            if any(e.type == "tool_result" and e.step == 2 for e in prefix):
                expect["c"] = 0
        if action_format == "json":
            expect = {"a": 0 if any(e.type == "tool_result" for e in prefix) else 1}
        assert counts2 == {k: v for k, v in expect.items() if v}, cut
        # Nothing rewritten: the old events are a prefix, seq numbers continue.
        after = store.events(done.run_id)
        assert [e.to_dict() for e in after[:cut]] == [e.to_dict() for e in prefix]
        assert [e.seq for e in after] == list(range(len(after)))
        assert [e.type for e in after].count("run_started") == 1
        assert after[-1].type == "final"
        assert store.get_run(done.run_id).status == "final"
        assert result.usage.input_tokens == done.usage.input_tokens, cut


def crashing_model(replies: list[Any], crash_at: int) -> ScriptedModel:
    """Like `conversation_model`, but the `crash_at`-th request (1-based) kills the run."""
    asked = [0]

    def reply(request: ModelRequest) -> Any:
        asked[0] += 1
        if asked[0] == crash_at:
            raise Crash
        return replies[sum(1 for m in request.messages if m.role == "assistant")]

    return ScriptedModel(reply)


def test_crash_during_a_model_call_resumes_with_that_call() -> None:
    store = MemoryStore()
    counts: dict[str, int] = {}
    agent = Agent(crashing_model(REPLIES, 3), tools=[counting_lookup(counts)], store=store)
    with pytest.raises(Crash):
        agent.run_sync("go", run_id="r1")
    assert store.get_run("r1").status == "interrupted"
    model = conversation_model(REPLIES)
    again = Agent(model, tools=[counting_lookup(counts)], store=store)
    result = again.resume_sync("r1")
    assert result.output == "done"
    assert len(model.requests) == 2  # step 3 (unanswered) and step 4
    assert counts == {"a": 1, "b": 1, "c": 1}
    steps = [e.step for e in store.events("r1") if e.type == "model_request"]
    assert steps == [1, 2, 3, 3, 4]  # the unanswered request is asked again, same step


def test_completed_results_reused_and_in_doubt_read_only_rerun() -> None:
    store = MemoryStore()
    counts: dict[str, int] = {}

    @tool
    def lookup(key: str) -> str:
        """Look up."""
        counts[key] = counts.get(key, 0) + 1
        if key == "b" and counts[key] == 1:
            raise Crash  # dies while running: a tool_call with no tool_result
        return key.upper()

    agent = Agent(conversation_model(REPLIES), tools=[lookup], store=store)
    with pytest.raises(Crash):
        agent.run_sync("go", run_id="r1")
    types = [(e.type, e.step) for e in store.events("r1")]
    assert types.count(("tool_call", 1)) == 2 and types.count(("tool_result", 1)) == 1
    model = conversation_model(REPLIES)
    result = Agent(model, tools=[lookup], store=store).resume_sync("r1")
    assert result.output == "done"
    assert len(model.requests) == 3  # step 1 was answered
    assert counts == {"a": 1, "b": 2, "c": 1}  # a reused; b (read-only, in doubt) rerun


LEDGER: dict[str, str] = {}


def payment_tool(
    calls: list[str], *, crash_before: bool = False, **options: Any
) -> Callable[[], Tool]:
    def make() -> Tool:
        @tool(effect="side_effect", **options)
        def pay(amount: int, ctx: ToolContext) -> str:
            """Pay."""
            calls.append(ctx.idempotency_key)
            if len(calls) == 1 and crash_before:
                raise Crash
            LEDGER[ctx.idempotency_key] = f"paid {amount}"
            if len(calls) == 1:
                raise Crash  # the effect happened, its result was never recorded
            return f"paid {amount}"

        return pay

    return make


def reconcile(ctx: ToolContext, arguments: dict[str, Any]) -> str | None:
    return LEDGER.get(ctx.idempotency_key)


PAY = [ToolCall("p1", "pay", {"amount": 5}), "paid"]


def pay_agent(
    make: Callable[[], Tool], store: MemoryStore, model: ScriptedModel
) -> Agent[None, str]:
    return Agent(model, tools=[make()], store=store, policy=Policy.allow_all())


@pytest.mark.parametrize("happened", [True, False])
def test_in_doubt_side_effect_is_reconciled(happened: bool) -> None:
    LEDGER.clear()
    store, calls = MemoryStore(), []
    make = payment_tool(calls, crash_before=not happened, reconcile=reconcile)
    with pytest.raises(Crash):
        pay_agent(make, store, conversation_model(PAY)).run_sync("pay", run_id="r1")
    model = conversation_model(PAY)
    result = pay_agent(make, store, model).resume_sync("r1")
    assert result.output == "paid" and len(model.requests) == 1
    assert calls == ["r1:1:0"] * (1 if happened else 2)  # reconciled, or run once more
    assert LEDGER == {"r1:1:0": "paid 5"}
    results = [e for e in store.events("r1") if e.type == "tool_result"]
    assert len(results) == 1 and results[0].result.content == "paid 5"  # type: ignore[attr-defined]


def test_in_doubt_side_effect_defaults_to_ask_and_never_runs_twice() -> None:
    LEDGER.clear()
    store, calls = MemoryStore(), []
    make = payment_tool(calls)
    with pytest.raises(Crash):
        pay_agent(make, store, conversation_model(PAY)).run_sync("pay", run_id="r1")
    model = conversation_model(PAY)
    with pytest.raises(ToolCallInDoubtError) as err:
        pay_agent(make, store, model).resume_sync("r1")
    assert (err.value.run_id, err.value.step, err.value.tool) == ("r1", 1, "pay")
    assert "r1" in str(err.value) and "step 1" in str(err.value) and "pay" in str(err.value)
    assert calls == ["r1:1:0"] and model.requests == []
    assert store.get_run("r1").status == "in_doubt"
    assert all(e.type != "error" for e in store.events("r1"))
    # The author declares the tool idempotent (not part of the definition): it resumes.
    retry = payment_tool(calls, on_doubt="retry")
    assert pay_agent(retry, store, conversation_model(PAY)).resume_sync("r1").output == "paid"
    assert calls == ["r1:1:0", "r1:1:0"]  # same key: the payee can deduplicate


def test_on_doubt_reconcile_needs_a_function() -> None:
    from pilothouse.exceptions import ToolDefinitionError

    with pytest.raises(ToolDefinitionError, match="reconcile"):

        @tool(effect="side_effect", on_doubt="reconcile")
        def send(to: str) -> str:
            """Send."""
            return to


def test_bad_resumes_are_clear_errors() -> None:
    store = MemoryStore()
    counts: dict[str, int] = {}
    agent = Agent(conversation_model(REPLIES), tools=[counting_lookup(counts)], store=store)
    run_id = agent.run_sync("go").run_id
    with pytest.raises(RunFinishedError, match=f"run {run_id!r} already ended"):
        agent.resume_sync(run_id)
    with pytest.raises(RunNotFoundError, match="nope"):
        agent.resume_sync("nope")
    cut = copy_prefix(store, run_id, 5)
    other = Agent(conversation_model(REPLIES), "Be terse.", [counting_lookup(counts)], store=cut)
    with pytest.raises(ConfigurationError, match=f"run {run_id!r} was recorded by a different"):
        other.resume_sync(run_id)
    broken = MemoryStore()
    events: list[Event] = cut.events(run_id)[1:]
    broken.write(events, cut.get_run(run_id))
    headless = Agent(conversation_model(REPLIES), tools=[counting_lookup(counts)], store=broken)
    with pytest.raises(StoreError, match=f"run {run_id!r}.*step 0"):
        headless.resume_sync(run_id)


def test_cli_resume_unknown_run(cli: CLI, tmp_path: Path) -> None:
    result = cli("resume", "nope", "--store", str(tmp_path / "j.db"))
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: no run 'nope'")


CHILD = textwrap.dedent(
    """
    import sqlite3, sys, time
    from pilothouse import Agent, SQLiteStore, tool
    from pilothouse.messages import ToolCall
    from pilothouse.policy import Policy
    from pilothouse.tools import ToolContext

    journal, ledger, mode = sys.argv[1], sys.argv[2], sys.argv[3]

    def reconcile(ctx, arguments):
        db = sqlite3.connect(ledger)
        row = db.execute("SELECT result FROM ledger WHERE key=?", (ctx.idempotency_key,)).fetchone()
        return None if row is None else row[0]

    @tool(effect="side_effect", reconcile=reconcile)
    def transfer(amount: int, ctx: ToolContext) -> str:
        \"\"\"Move money.\"\"\"
        db = sqlite3.connect(ledger, isolation_level=None)
        db.execute("INSERT INTO ledger VALUES (?, ?)", (ctx.idempotency_key, f"moved {amount}"))
        db.close()
        if mode == "crash" and amount == 2:
            print("WROTE", flush=True)
            time.sleep(60)  # killed here: the effect happened, no result recorded
        return f"moved {amount}"

    replies = [ToolCall("t1", "transfer", {"amount": 1}), ToolCall("t2", "transfer", {"amount": 2}),
               ToolCall("t3", "transfer", {"amount": 3}), "moved 6"]

    class Model:
        name = "scripted"
        from pilothouse.models.base import Capabilities
        capabilities = Capabilities(native_tools=True, json_schema=True, grammar=False)
        async def generate(self, request):
            from pilothouse.models.scripted import _as_response
            n = sum(1 for m in request.messages if m.role == "assistant")
            return _as_response(replies[n], "scripted")

    agent = Agent(Model(), tools=[transfer], store=SQLiteStore(journal), policy=Policy.allow_all())
    if mode == "crash":
        agent.run_sync("move", run_id="k1")
    else:
        print(agent.resume_sync("k1").output)
    """
)


def test_sigkill_mid_side_effect_then_resume_is_exactly_once(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    journal, ledger = tmp_path / "journal.db", tmp_path / "ledger.db"
    db = sqlite3.connect(ledger)
    db.execute("CREATE TABLE ledger (key TEXT PRIMARY KEY, result TEXT)")
    db.commit()
    db.close()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    child = subprocess.Popen(
        [sys.executable, str(script), str(journal), str(ledger), "crash"],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()  # blocks until the child wrote its effect
    assert line.strip() == "WROTE"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    store = SQLiteStore(journal)
    assert store.get_run("k1").status == "running"
    assert store.events("k1")[-1].type == "tool_call"  # in doubt
    store.close()
    resumed = subprocess.run(
        [sys.executable, str(script), str(journal), str(ledger), "resume"],
        capture_output=True,
        env=env,
        text=True,
        timeout=30,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == "moved 6"
    db = sqlite3.connect(ledger)
    rows = db.execute("SELECT key, result FROM ledger ORDER BY key").fetchall()
    db.close()
    assert rows == [("k1:1:0", "moved 1"), ("k1:2:0", "moved 2"), ("k1:3:0", "moved 3")]
    store = SQLiteStore(journal)
    events = store.events("k1")
    assert store.get_run("k1").status == "final"
    assert [e.seq for e in events] == list(range(len(events)))
    results = [e.result.content for e in events if e.type == "tool_result"]  # type: ignore[attr-defined]
    assert results == ["moved 1", "moved 2", "moved 3"]
    store.close()


def test_an_older_journal_ending_in_budget_stop_still_reads_resumes_replays_and_describes(
    tmp_path: Path,
) -> None:
    """Journals written before `run_stopped` end a stopped run with `budget_stop` (its
    `limit` the reason): stored rows of that type read as the same typed event, so the
    run is known to be finished, replays identically, is described in the trace and is
    read back as a child's result with the right outcome."""
    from pilothouse.events import Stopped
    from pilothouse.runtime.drive import finished_result
    from pilothouse.testing import replay
    from pilothouse.trace import describe

    path = tmp_path / "old.db"
    counts: dict[str, int] = {}
    keys = iter("abcdefgh")
    model = ScriptedModel(lambda r: ToolCall(f"c{len(r.messages)}", "lookup", {"key": next(keys)}))
    agent = Agent(model, tools=[counting_lookup(counts)], max_steps=2, store=SQLiteStore(path))
    result = agent.run_sync("x")
    assert result.outcome == "budget_stop"
    db = sqlite3.connect(path)  # rewrite the stop as a journal of the earlier version wrote it
    db.execute(
        "UPDATE events SET type='budget_stop', data=? WHERE run_id=? AND type='run_stopped'",
        (
            '{"limit": "steps", "value": 2, "maximum": 2, "message": "steps budget exhausted"}',
            result.run_id,
        ),
    )
    db.commit()
    db.close()

    store = SQLiteStore(path)
    events = store.events(result.run_id)
    stop = events[-1]
    assert isinstance(stop, Stopped) and (stop.reason, stop.value, stop.maximum) == ("steps", 2, 2)
    assert describe(stop) == "■ stopped (steps 2 of 2): steps budget exhausted"
    from pilothouse.evals.report import describe_event  # an evaluation log's stored dict

    old_dict = {**stop.to_dict(), "type": "budget_stop", "limit": "steps"}
    del old_dict["reason"]
    assert describe_event(old_dict) == describe(stop)
    again = Agent(model, tools=[counting_lookup(counts)], max_steps=2, store=store)
    with pytest.raises(RunFinishedError) as finished:
        again.resume_sync(result.run_id)
    assert finished.value.outcome == "budget_stop"
    ended = finished_result(again.run_spec(), result.run_id, events)
    assert (ended.outcome, ended.stop) == ("budget_stop", stop)
    report = replay(
        Agent(model, tools=[counting_lookup({})], max_steps=2, store=":memory:"), events
    )
    assert report.ok and report.outcome == "budget_stop", report.summary()
