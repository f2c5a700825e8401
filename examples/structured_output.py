"""Typed output and parallel tool calls, checked with the ScriptedModel test double.

Runs as written (no model needed): `python examples/structured_output.py`.
Swap `ScriptedModel([...])` for `"local"` or `"openai:gpt-4o-mini"` to use a real model;
this is also how you write deterministic tests for your own agents.
"""

from __future__ import annotations

from pydantic import BaseModel

from pilothouse import Agent, ScriptedModel, call, tool
from pilothouse.trace import describe


class Forecast(BaseModel):
    city: str
    celsius: float
    advice: str


@tool
def temperature(city: str) -> float:
    """Current temperature in a city, in degrees Celsius.

    Args:
        city: the city name, e.g. "Oslo"
    """
    return {"Oslo": -3.5, "Lisbon": 17.0}.get(city, 10.0)


model = ScriptedModel(
    [
        # One response, two calls: they run concurrently.
        [call("temperature", city="Oslo"), call("temperature", city="Lisbon")],
        # A first answer that misses a field: the validation error goes back to the model.
        '{"city": "Lisbon", "celsius": 17.0}',
        '{"city": "Lisbon", "celsius": 17.0, "advice": "Lisbon is warmer: go there."}',
    ]
)
agent = Agent(
    model,
    instructions="Compare temperatures and recommend the warmer city.",
    tools=[temperature],
    output_type=Forecast,
    store=":memory:",
)

if __name__ == "__main__":
    result = agent.run_sync("Oslo or Lisbon this weekend?")
    for event in agent.store.events(result.run_id):
        print(describe(event))
    forecast: Forecast = result.output
    assert forecast.city == "Lisbon" and forecast.celsius == 17.0
    # What the model was sent on its second call: the two tool results.
    print([m.content for m in model.requests[1].messages if m.role == "tool"])
