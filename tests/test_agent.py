"""The agent loop: tool calls, parallel calls, output validation, budgets, loops, errors."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

from pilothouse import Agent, Budget, ScriptedModel, call, tool
from pilothouse.events import (
    ErrorOccurred,
    FinalOutput,
    ModelRequested,
    ModelResponded,
    OutputValidated,
    RunStarted,
    Stopped,
    ToolCalled,
    ToolReturned,
)
from pilothouse.exceptions import (
    BudgetExceeded,
    ConfigurationError,
    LoopDetected,
    ModelError,
    OutputValidationError,
)
from pilothouse.messages import Usage
from pilothouse.models.base import ModelRequest, ModelResponse, TextDelta


@tool
def lookup(key: str) -> str:
    """Look a key up in the table."""
    return {"a": "apple", "b": "banana"}.get(key, "unknown")


def agent(replies: list[object] | ScriptedModel, **kwargs: object) -> Agent[None, str]:
    model = replies if isinstance(replies, ScriptedModel) else ScriptedModel(replies)  # type: ignore[arg-type]
    kwargs.setdefault("tools", [lookup])
    kwargs.setdefault("store", ":memory:")
    return Agent(model, "You look things up.", **kwargs)  # type: ignore[arg-type]


def types(a: Agent[Any, object], run_id: str) -> list[str]:
    return [e.type for e in a.store.events(run_id)]


def test_tool_call_then_answer_and_what_the_model_saw() -> None:
    model = ScriptedModel([call("lookup", key="a"), "It is apple."])
    a = agent(model)
    result = a.run_sync("What is a?")
    assert result.ok and result.output == "It is apple." and result.steps == 2
    second = model.requests[1].messages
    assert [m.role for m in second] == ["system", "user", "assistant", "tool"]
    assert second[0].content == "You look things up."
    assert second[2].tool_calls[0].name == "lookup"
    assert (second[3].content, second[3].name) == ("apple", "lookup")
    assert [t.name for t in model.requests[0].tools] == ["lookup"]
    assert types(a, result.run_id) == [
        "run_started",
        "model_request",
        "model_response",
        "tool_call",
        "tool_result",
        "model_request",
        "model_response",
        "output_validated",
        "final",
    ]


def test_journal_contents_reconstruct_the_conversation() -> None:
    a = agent([call("lookup", key="b"), "banana"])
    result = a.run_sync("b?")
    events = a.store.events(result.run_id)
    started = events[0]
    assert isinstance(started, RunStarted)
    assert (started.input, started.model, started.tools) == ("b?", "scripted", ["lookup"])
    requested = [e for e in events if isinstance(e, ModelRequested)]
    # The run's context (its system prompt and input, recorded once on run_started),
    # then the concatenation of every request's new messages, is the full conversation.
    assert requested[0].new_messages == []
    rebuilt = started.context() + [m for e in requested for m in e.new_messages]
    assert rebuilt == result.messages[: len(rebuilt)]
    tool_call = next(e for e in events if isinstance(e, ToolCalled))
    assert tool_call.idempotency_key == f"{result.run_id}:1:0"
    tool_result = next(e for e in events if isinstance(e, ToolReturned))
    assert tool_result.result.content == "banana"
    final = events[-1]
    assert isinstance(final, FinalOutput) and final.output == "banana"
    assert [e.seq for e in events] == list(range(len(events)))
    info = a.store.get_run(result.run_id)
    assert (info.status, info.steps, info.output) == ("final", 2, "banana")


async def test_parallel_calls_run_concurrently() -> None:
    started: list[int] = []
    all_started = asyncio.Event()

    @tool
    async def slow(n: int) -> int:
        """Wait until all three calls have started."""
        started.append(n)
        if len(started) == 3:
            all_started.set()
        # Run one after another, the first call would wait forever (the guard fails it).
        await asyncio.wait_for(all_started.wait(), 30)
        return n * 2

    a = agent([[call("slow", n=1), call("slow", n=2), call("slow", n=3)], "done"], tools=[slow])
    result = await a.run("go")
    assert result.output == "done"
    assert sorted(started) == [1, 2, 3]
    tool_messages = [m for m in result.messages if m.role == "tool"]
    assert [m.content for m in tool_messages] == ["2", "4", "6"]
    events = a.store.events(result.run_id)
    kinds = [e.type for e in events if e.type in ("tool_call", "tool_result")]
    assert kinds == ["tool_call"] * 3 + ["tool_result"] * 3


def test_unknown_tool_and_bad_arguments_go_back_to_the_model() -> None:
    model = ScriptedModel([call("lokup", key="a"), call("lookup", k="a"), "gave up"])
    result = agent(model).run_sync("x")
    assert result.output == "gave up"
    unknown = model.requests[1].messages[-1]
    assert unknown.content == "Unknown tool 'lokup'. Available tools: lookup."
    invalid = model.requests[2].messages[-1]
    assert invalid.content.startswith("Invalid arguments for tool 'lookup'")
    assert "key: Field required" in invalid.content


class Weather(BaseModel):
    city: str
    celsius: float


def test_structured_output_retries_with_the_validation_error() -> None:
    model = ScriptedModel(
        ['{"city": "Oslo"}', 'Sure! ```json\n{"city": "Oslo", "celsius": 4.5}\n```']
    )
    a = Agent(model, "Report weather.", output_type=Weather, store=":memory:")
    result = a.run_sync("Oslo?")
    assert result.output == Weather(city="Oslo", celsius=4.5)
    assert model.requests[0].output_schema == Weather.model_json_schema()
    assert "celsius" in model.requests[0].messages[0].content  # schema told in the prompt
    retry = model.requests[1].messages[-1]
    assert retry.role == "user" and "celsius: Field required" in retry.content
    events = a.store.events(result.run_id)
    checks = [(e.ok, e.error is None) for e in events if isinstance(e, OutputValidated)]
    assert checks == [(False, False), (True, True)]
    assert a.store.get_run(result.run_id).output == {"city": "Oslo", "celsius": 4.5}


def test_output_retries_are_bounded() -> None:
    a = Agent(
        ScriptedModel(["nope", "still no", "never"]),
        output_type=Weather,
        output_retries=1,
        store=":memory:",
    )
    result = a.run_sync("x")
    assert result.outcome == "output_invalid" and result.steps == 2
    with pytest.raises(OutputValidationError, match="still invalid after 1 retries"):
        _ = result.output


def test_empty_reply_is_corrected_not_accepted() -> None:
    model = ScriptedModel([ModelResponse(text="  "), "real answer"])
    result = agent(model).run_sync("x")
    assert result.output == "real answer"
    assert "reply was empty" in model.requests[1].messages[-1].content


def test_step_budget_stops_the_run_with_a_clear_outcome() -> None:
    keys = iter("abcdefgh")
    model = ScriptedModel(lambda r: call("lookup", key=next(keys)))
    a = agent(model, max_steps=3)
    result = a.run_sync("x")
    assert result.outcome == "budget_stop" and result.steps == 3 and len(model.requests) == 3
    assert result.stop is not None and result.stop.reason == "steps"
    with pytest.raises(BudgetExceeded, match="steps budget exhausted"):
        _ = result.output
    assert types(a, result.run_id)[-1] == "run_stopped"
    assert a.store.get_run(result.run_id).status == "budget_stop"


def test_token_budget_and_cap_on_the_next_call() -> None:
    keys = iter("abcdefgh")
    model = ScriptedModel(
        lambda r: ModelResponse(
            tool_calls=(call("lookup", key=next(keys)),), usage=Usage(40, 10, 0.01, 1)
        )
    )
    a = agent(model, budget=Budget(max_tokens=120))
    result = a.run_sync("x")
    assert result.stop is not None and result.stop.reason == "tokens"
    assert len(model.requests) == 3 and result.usage.total_tokens == 150
    assert [r.settings.max_tokens for r in model.requests] == [120, 70, 20]


def test_cost_budget() -> None:
    keys = iter("abcdefgh")
    model = ScriptedModel(
        lambda r: ModelResponse(
            tool_calls=(call("lookup", key=next(keys)),), usage=Usage(1, 1, 0.5, 1)
        )
    )
    result = agent(model, budget=Budget(max_cost=1.0)).run_sync("x")
    assert result.stop is not None and result.stop.reason == "cost" and result.steps == 2


async def test_time_budget_cancels_a_slow_tool() -> None:
    cancelled = []

    @tool
    async def slow() -> str:
        """Does not finish within the budget: only the budget ends it."""
        try:
            await asyncio.sleep(60)  # a guard: the budget must cancel it long before
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return "late"

    a = agent([call("slow"), "unreachable"], tools=[slow], budget=Budget(max_seconds=0.2))
    result = await a.run("x")
    assert cancelled == [True]  # the budget cancelled the call rather than waiting it out
    assert result.stop is not None and result.stop.reason == "seconds"
    # The call started and never returned: the journal shows it without a result (in doubt).
    assert types(a, result.run_id)[-3:] == ["model_response", "tool_call", "run_stopped"]


def test_loop_detection_stops_repeated_identical_calls() -> None:
    model = ScriptedModel([call("lookup", key="a")] * 10)
    a = agent(model, budget=Budget(max_repeats=3))
    result = a.run_sync("x")
    assert result.outcome == "loop_stop" and result.steps == 3
    with pytest.raises(LoopDetected, match="requested 3 times"):
        _ = result.output
    executed = [e for e in a.store.events(result.run_id) if isinstance(e, ToolReturned)]
    assert len(executed) == 2  # the third identical call never ran


def test_model_errors_are_journaled_then_raised() -> None:
    model = ScriptedModel([call("lookup", key="a")])  # runs out on the second call
    a = agent(model)
    with pytest.raises(ModelError, match="ran out of replies") as info:
        a.run_sync("x")
    run_id = info.value.run_id  # type: ignore[attr-defined]
    events = a.store.events(run_id)
    assert [e.type for e in events][-2:] == ["model_request", "error"]
    error = events[-1]
    assert isinstance(error, ErrorOccurred) and error.kind == "ModelError"
    assert any(isinstance(e, ToolReturned) for e in events)  # earlier steps kept
    assert a.store.get_run(run_id).status == "error"


async def test_stream_yields_events_and_text_deltas() -> None:
    a = agent([call("lookup", key="a"), "The answer is apple, clearly."])
    items = [item async for item in a.stream("x")]
    deltas = "".join(i.text for i in items if isinstance(i, TextDelta))
    assert deltas == "The answer is apple, clearly."
    kinds = [i.type for i in items if not isinstance(i, TextDelta)]
    assert kinds[0] == "run_started" and kinds[-1] == "final"
    assert "tool_result" in kinds
    assert isinstance(items[-1], FinalOutput) and items[-1].output == deltas


async def test_stream_reraises_errors_after_the_error_event() -> None:
    a = agent([])
    seen = []
    with pytest.raises(ModelError):
        async for item in a.stream("x"):
            seen.append(item)
    assert isinstance(seen[-1], ErrorOccurred)


def test_subscribers_see_every_event_in_order() -> None:
    seen = []
    a = agent([call("lookup", key="a"), "ok"])
    result = a.run_sync("x", subscribers=[seen.append])
    assert [e.seq for e in seen] == [e.seq for e in a.store.events(result.run_id)]
    assert isinstance(seen[2], ModelResponded)


def test_render_prompt_shows_what_the_model_receives() -> None:
    a = Agent(ScriptedModel([]), "Be brief.", [lookup], output_type=Weather, store=":memory:")
    text = a.render_prompt("Oslo?")
    assert '"content": "Be brief.' in text and '"Oslo?"' in text
    assert '"name": "lookup"' in text and "Look a key up in the table." in text
    assert '"celsius"' in text


def test_model_can_answer_with_a_function_of_the_request() -> None:
    def reply(request: ModelRequest) -> str:
        return f"{len(request.messages)} messages"

    assert agent(ScriptedModel(reply)).run_sync("x").output == "2 messages"


def test_bad_configuration_is_rejected_early() -> None:
    with pytest.raises(ConfigurationError, match="two tools are named 'lookup'"):
        Agent(ScriptedModel([]), tools=[lookup, lookup])
    with pytest.raises(ConfigurationError, match="max_steps"):
        Agent(ScriptedModel([]), max_steps=0)


async def test_run_sync_inside_a_loop_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match=r"await agent\.run"):
        agent(["x"]).run_sync("x")


async def test_many_concurrent_runs_share_one_store() -> None:
    a = Agent(
        ScriptedModel(lambda r: "ok" if len(r.messages) > 2 else call("lookup", key="a")),
        tools=[lookup],
        store=":memory:",
    )
    results = await asyncio.gather(*(a.run(f"q{i}") for i in range(50)))
    assert all(r.output == "ok" for r in results)
    assert len({r.run_id for r in results}) == 50
    for r in results:
        assert types(a, r.run_id).count("tool_result") == 1
        assert isinstance(a.store.events(r.run_id)[-1], FinalOutput)


def test_run_stopped_event_fields() -> None:
    a = agent(ScriptedModel(lambda r: call("lookup", key=str(len(r.messages)))), max_steps=1)
    result = a.run_sync("x")
    stop = a.store.events(result.run_id)[-1]
    assert isinstance(stop, Stopped) and stop.type == "run_stopped"
    assert (stop.reason, stop.value, stop.maximum, stop.rule) == ("steps", 1, 1, None)
    assert stop.outcome == result.outcome == "budget_stop"
    assert stop.to_dict()["reason"] == "steps" and "limit" not in stop.to_dict()


def test_a_policy_abort_is_a_stop_with_its_rule_not_a_budget() -> None:
    from pilothouse.policy import Policy, Rule
    from pilothouse.trace import describe

    @tool(effect="side_effect")
    def refund(order_id: str) -> str:
        """Refund an order."""
        return "refunded"

    policy = Policy([Rule("refund", "deny", fallback="abort", id="no-refunds")])
    a = agent([call("refund", order_id="A"), "done"], tools=[refund], policy=policy)
    result = a.run_sync("x")
    stop = a.store.events(result.run_id)[-1]
    assert isinstance(stop, Stopped) and result.stop == stop
    assert (stop.reason, stop.value, stop.maximum, stop.rule) == (
        "policy",
        None,
        None,
        "no-refunds",
    )
    assert result.outcome == stop.outcome == "policy_stop"
    assert a.store.get_run(result.run_id).status == "policy_stop"
    assert describe(stop).startswith("■ stopped (policy): ") and "[rule no-refunds]" in describe(
        stop
    )


def test_a_budget_stop_of_an_older_journal_reads_as_run_stopped() -> None:
    """Journals written before `run_stopped` hold `budget_stop` events: the same typed
    event, with the limit as the reason; a policy abort then carried 0 of 0 as its
    value, which is no value at all."""
    from pilothouse.events import BudgetStopped, event_from_dict

    old = {"type": "budget_stop", "run_id": "r", "seq": 4, "ts": 1.0, "step": 2}
    steps = event_from_dict({**old, "limit": "steps", "value": 2, "maximum": 2, "message": "m"})
    assert isinstance(steps, Stopped) and BudgetStopped is Stopped
    assert (steps.type, steps.reason, steps.value, steps.maximum) == ("run_stopped", "steps", 2, 2)
    assert steps.limit == "steps" and steps.outcome == "budget_stop"
    policy = event_from_dict({**old, "limit": "policy", "value": 0, "maximum": 0, "message": "no"})
    assert isinstance(policy, Stopped) and policy.outcome == "policy_stop"
    assert (policy.value, policy.maximum, policy.rule) == (None, None, None)
    loop = event_from_dict({**old, "limit": "loop", "value": 3, "maximum": 3, "message": "m"})
    assert isinstance(loop, Stopped) and loop.outcome == "loop_stop"
    again = event_from_dict(steps.to_dict())
    assert again == steps  # the new form reads back as itself
