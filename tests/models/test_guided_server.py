"""Guided tool use over llama.cpp's own server, through `OpenAIModel`: not only in-process.

The inner model is `OpenAIModel` pointed at llama-cpp-python's server on SmolLM2-135M
(`llama_server`); each stage is a plain chat request whose reply is held to the stage's
schema by ``response_format`` (the server turns it into a grammar). The agent calls
its tool and answers, the journal holds every stage, and the run replays offline.
"""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import Field

from pilothouse import Agent, tool
from pilothouse.events import StageRequested, StageResponded, ToolCalled
from pilothouse.guided import GuidedModel
from pilothouse.models.openai import OpenAIModel
from pilothouse.testing import replay_async


@tool
def get_order_status(order_id: Annotated[str, Field(pattern=r"^[A-Z][0-9]{4}$")]) -> str:
    """Look up the shipping status of a customer's order.

    Args:
        order_id: the order id exactly as the customer wrote it (a letter and four digits)
    """
    return f"Order {order_id} has shipped with DHL and should arrive on March 14."


INSTRUCTIONS = (
    "You are an order-status assistant. First call get_order_status with the customer's "
    "order id. When you get the result, answer the customer with it."
)


@pytest.mark.slow
async def test_a_guided_agent_on_llama_cpp_server_calls_its_tool_and_answers(
    llama_server: str, llama_api_key: str
) -> None:
    # A generous timeout: the machine's CPUs are shared (the test asserts no timing).
    inner = OpenAIModel(
        "smollm2", base_url=llama_server, api_key=llama_api_key, backoff=0.05, timeout=600
    )
    model = GuidedModel(inner)
    assert model.name == f"guided:{inner.name}"
    agent = Agent(
        model, INSTRUCTIONS, [get_order_status], max_steps=4, name="server", store=":memory:"
    )
    result = await agent.run("Where is my order A1234?")
    events = agent.store.events(result.run_id)
    calls = [e.call for e in events if isinstance(e, ToolCalled)]
    assert [(c.name, c.arguments) for c in calls] == [("get_order_status", {"order_id": "A1234"})]
    assert result.outcome == "final", result.stop
    stages = [(e.step, e.stage) for e in events if isinstance(e, StageRequested)]
    assert stages[:2] == [(1, "choose"), (1, "arguments")]
    assert any(step == 2 for step, _ in stages)
    answered = [e for e in events if isinstance(e, StageResponded)]
    assert len(answered) == len(stages)
    assert all(e.response.usage.requests == 1 for e in answered)
    assert result.usage.requests == len(stages)
    # Offline, the recorded stages replay through the same guided construction.
    report = await replay_async(
        Agent(model, INSTRUCTIONS, [get_order_status], max_steps=4, name="server"), events
    )
    assert report.ok, report.summary()
