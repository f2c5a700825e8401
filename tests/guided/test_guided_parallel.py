"""Parallel calls the request enumerates (`guided.parallel`): one per listed value."""

from __future__ import annotations

import json

from pilothouse.guided import GuidedModel
from pilothouse.guided.parallel import enumerations, expanded
from pilothouse.messages import Message, ToolCall
from pilothouse.models.base import ModelRequest, ToolSpec
from pilothouse.models.scripted import ScriptedModel

VALUE = ToolSpec(
    "present_value",
    "The present value of an investment.",
    {
        "type": "object",
        "properties": {
            "payment": {"type": "integer"},
            "rate": {"type": "number"},
            "years": {"type": "integer"},
        },
        "required": ["payment", "rate", "years"],
    },
)
DISTANCE = ToolSpec(
    "distance",
    "Driving distance between two cities.",
    {
        "type": "object",
        "properties": {"origin": {"type": "string"}, "destination": {"type": "string"}},
        "required": ["origin", "destination"],
    },
)
WEATHER = ToolSpec(
    "weather",
    "The weather in a place.",
    {"type": "object", "properties": {"location": {"type": "string"}, "days": {"type": "integer"}}},
)


def _args(calls: list[ToolCall]) -> list[dict[str, object]]:
    return [c.arguments for c in calls]


def test_enumerations_are_numbers_or_names_ending_in_and() -> None:
    assert enumerations("for 10, 20 and 30 years") == [["10", "20", "30"]]
    assert enumerations("the weather in Boston and San Francisco") == [["Boston", "San Francisco"]]
    assert enumerations("the humidity in Miami, Florida this week") == []  # one place
    assert enumerations("coordinates 43.65, -79.38 in December") == []


def test_a_call_is_repeated_for_each_other_listed_value() -> None:
    call = ToolCall("c1", "present_value", {"payment": 1000, "rate": 0.05, "years": 10})
    text = "The present value of $1000 a year at 5% for 10, 20 and 30 years."
    assert [a["years"] for a in _args(expanded(call, VALUE, text))] == [10, 20, 30]


def test_a_pair_the_call_already_holds_is_no_list() -> None:
    call = ToolCall("c1", "distance", {"origin": "New York City", "destination": "Los Angeles"})
    text = "Find the distance between New York City and Los Angeles."
    assert expanded(call, DISTANCE, text) == [call]


def test_respectively_pairs_the_lists_and_otherwise_every_combination() -> None:
    call = ToolCall("c1", "weather", {"location": "Boston", "days": 3})
    paired = expanded(call, WEATHER, "Boston and Denver for 3 and 5 days respectively")
    assert _args(paired) == [{"location": "Boston", "days": 3}, {"location": "Denver", "days": 5}]
    every = expanded(call, WEATHER, "Boston and Denver for 3 and 5 days")
    assert len(every) == 4 and {"location": "Denver", "days": 3} in _args(every)


async def test_the_guided_model_returns_the_enumerated_calls_together() -> None:
    inner = ScriptedModel(
        [  # the request plainly asks for the tool (relevance.asked_for): no choose stage
            json.dumps(
                {
                    "tool": "present_value",
                    "arguments": {"payment": 1000, "rate": 5, "years": 10},
                }
            ),
        ]
    )
    text = "The present value of 1000 per year at 5 percent for 10, 20 and 30 years."
    response = await GuidedModel(inner).staged(ModelRequest([Message.user(text)], [VALUE]))
    assert [c.arguments["years"] for c in response.tool_calls] == [10, 20, 30]
    assert len({c.id for c in response.tool_calls}) == 3


def test_a_sentence_may_end_right_after_the_last_item() -> None:
    assert enumerations("Find the factorial of 5,10 and 15.") == [["5", "10", "15"]]
