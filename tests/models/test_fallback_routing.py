"""RouterModel: the cheap model first, the next one on a declared condition, on the record."""

from __future__ import annotations

import json

import pytest
from openai_faults import Json, completion, serving

from pilothouse import Agent, ScriptedModel, tool
from pilothouse.events import ModelFallback, ModelResponded, ModelRouted, ToolCalled
from pilothouse.exceptions import ConfigurationError
from pilothouse.messages import Message, ToolCall
from pilothouse.models.base import ModelRequest, ModelResponse, TextDelta
from pilothouse.models.fallback import FallbackModel
from pilothouse.models.openai import OpenAIModel
from pilothouse.models.routing import RouterModel


@tool
def lookup(key: str) -> str:
    """Look a key up."""
    return {"a": "apple"}.get(key, "unknown")


def _broken_call(body: Json) -> Json:
    """A small model's reply: a tool call whose arguments are not JSON."""
    answer = completion(calls=[("lookup", {})], model="small")
    answer["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = '{"key": "a"'
    return answer


def _good(body: Json) -> Json:
    if any(m.get("role") == "tool" for m in body["messages"]):
        return completion("It is apple.", model="large")
    return completion(calls=[("lookup", {"key": "a"})], model="large")


async def test_a_broken_tool_call_escalates_and_the_choice_is_journaled() -> None:
    with serving(_broken_call) as small, serving(_good) as large:
        router = RouterModel(
            [OpenAIModel("small", base_url=small.url), OpenAIModel("large", base_url=large.url)],
            escalate_on="broken_tool_call",
        )
        agent = Agent(router, "Look up.", [lookup], store=":memory:")
        result = await agent.run("what is a?")
    assert result.output == "It is apple."
    events = agent.store.events(result.run_id)
    routes = [e for e in events if isinstance(e, ModelRouted)]
    assert [
        (r.step, r.model.split("@")[0], [t.split("@")[0] for t in r.tried]) for r in routes
    ] == [
        (1, "openai:large", ["openai:small"]),
        (2, "openai:large", ["openai:small"]),
    ]
    assert routes[0].reason.startswith("broken_tool_call: tool call 'lookup' has arguments")
    # the thrown-away reply's tokens are counted in the step's usage
    first = next(e for e in events if isinstance(e, ModelResponded))
    assert first.response.usage.input_tokens == 20 and first.response.model == "large"
    calls = [e for e in events if isinstance(e, ToolCalled)]
    assert [c.call.arguments for c in calls] == [{"key": "a"}]  # only the good call ran


async def test_a_reply_no_condition_objects_to_stays_with_the_cheap_model() -> None:
    small = ScriptedModel(["cheap and fine"], name="small")
    large = ScriptedModel(["expensive"], name="large")
    router = RouterModel([small, large], escalate_on=["empty", "truncated"])
    agent = Agent(router, "Answer.", store=":memory:")
    result = await agent.run("hi")
    assert result.output == "cheap and fine" and large.requests == []
    [route] = [e for e in agent.store.events(result.run_id) if isinstance(e, ModelRouted)]
    assert (route.model, route.tried, route.reason) == ("small", [], "")


async def test_a_predicate_over_the_response_and_held_back_streaming() -> None:
    def too_short(request: ModelRequest, response: ModelResponse) -> str | None:
        return "fewer than 3 words" if len(response.text.split()) < 3 else None

    small = ScriptedModel(["no"], name="small")
    large = ScriptedModel(["a proper long answer"], name="large")
    router = RouterModel([small, large], escalate_on=too_short)
    items = [i async for i in router.stream(ModelRequest([Message.user("q")]))]
    deltas = [i.text for i in items if isinstance(i, TextDelta)]
    assert "no" not in deltas  # the overruled reply's text was held back, never shown
    final = items[-1]
    assert isinstance(final, ModelResponse) and final.text == "a proper long answer"
    assert router.escalation(ModelRequest([]), ModelResponse("no")) == (
        "too_short: fewer than 3 words"
    )


async def test_an_output_schema_condition() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    router = RouterModel(
        [ScriptedModel(['{"n": "x"}'], name="s"), ScriptedModel(['{"n": 1}'], name="l")],
        escalate_on="invalid_output",
    )
    request = ModelRequest([Message.user("q")], output_schema=schema)
    response = await router.generate(request)
    assert response.text == '{"n": 1}'
    assert json.loads(response.text) == {"n": 1}
    assert router.escalation(request, ModelResponse("not json")) is not None


async def test_a_router_of_fallbacks_journals_both() -> None:
    broken = ModelResponse(tool_calls=(ToolCall("c", "lookup", {}, "bad JSON", "{"),))
    fails = ScriptedModel([broken], name="small")
    with serving(lambda body: completion("fine", model="large")) as large:
        router = RouterModel(
            [fails, FallbackModel([OpenAIModel("down", base_url="http://127.0.0.1:1/v1"),
                                   OpenAIModel("large", base_url=large.url)])],
        )  # fmt: skip
        agent = Agent(router, "Answer.", store=":memory:")
        result = await agent.run("hi")
    assert result.output == "fine"
    events = agent.store.events(result.run_id)
    assert [e.error for e in events if isinstance(e, ModelFallback)] == ["unavailable"]
    [route] = [e for e in events if isinstance(e, ModelRouted)]
    assert route.model.startswith("fallback(") and route.tried == ["small"]


def test_unknown_conditions_and_single_models_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="unknown escalate_on"):
        RouterModel([ScriptedModel([]), ScriptedModel([])], escalate_on="vibes")
    with pytest.raises(ConfigurationError):
        RouterModel([ScriptedModel([])])
