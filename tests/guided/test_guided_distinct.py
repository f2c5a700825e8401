"""One value, one argument: a free string repeating another argument's value, or only
naming its own parameter, is asked again."""

from __future__ import annotations

import json

from pilothouse.guided import GuidedModel
from pilothouse.guided.arguments import (
    distinct_parameters,
    repeated_values,
    self_named,
    settle,
)
from pilothouse.messages import Message
from pilothouse.models.base import ModelRequest, ToolSpec
from pilothouse.models.scripted import ScriptedModel

RANKING = ToolSpec(
    "sports_ranking",
    "Fetch the ranking of a team in a league.",
    {
        "type": "object",
        "properties": {
            "team": {"type": "string", "description": "The team."},
            "league": {"type": "string", "description": "The league."},
            "season": {"type": "integer", "description": "The season."},
        },
        "required": ["team", "league"],
    },
)
ASKED = "What is the ranking of Manchester United in Premier League?"


def test_the_later_of_two_arguments_holding_one_value_is_the_repeat() -> None:
    same = {"team": "Manchester United", "league": "Manchester United"}
    assert repeated_values(same, RANKING) == ["league"]
    assert repeated_values({"team": "Manchester United", "league": "Premier League"}, RANKING) == []


def test_a_number_and_its_text_are_one_value_but_numbers_are_not_asked_again() -> None:
    spec = ToolSpec(
        "area",
        "",
        {
            "type": "object",
            "properties": {"base": {"type": "integer"}, "unit": {"type": "string"}},
        },
    )
    assert repeated_values({"base": 10, "unit": "10"}, spec) == ["unit"]
    first = ToolSpec(
        "area",
        "",
        {"type": "object", "properties": {"unit": {"type": "string"}, "base": {"type": "integer"}}},
    )
    # base is no free string, so the number is never asked again; since the sixth round
    # the string holding base's number is, whichever comes first (multiple_20: material
    # "3" before size 3)
    assert repeated_values({"unit": "10", "base": 10}, first) == ["unit"]
    assert repeated_values({"unit": "cm", "base": 10}, first) == []


def test_the_repeat_is_held_to_spans_sharing_no_word_with_the_other_values() -> None:
    same = {"team": "Manchester United", "league": "Manchester United"}
    schema = distinct_parameters(RANKING, same, ["league"], ASKED)
    assert schema is not None
    assert schema["properties"]["team"] == {"const": "Manchester United"}
    choices = schema["properties"]["league"]["enum"]
    assert "Premier League" in choices
    assert not any("Manchester" in c or "United" in c for c in choices)
    assert "season" not in schema["properties"] and schema["additionalProperties"] is False


def test_an_optional_string_repeating_a_number_as_text_is_left_out() -> None:
    spec = ToolSpec(
        "area",
        "",
        {
            "type": "object",
            "properties": {
                "base": {"type": "integer"},
                "height": {"type": "integer"},
                "unit": {"type": "string"},
            },
            "required": ["base", "height"],
        },
    )
    settled, changes = settle({"base": 6, "height": 10, "unit": "10"}, spec, "base 6 and height 10")
    assert settled == {"base": 6, "height": 10} and changes


async def test_the_distinct_stage_asks_the_repeat_again_and_keeps_the_rest() -> None:
    inner = ScriptedModel(
        [  # the request plainly asks for the tool: no choose stage (relevance.asked_for)
            json.dumps(
                {
                    "tool": "sports_ranking",
                    "arguments": {"team": "Manchester United", "league": "Manchester United"},
                }
            ),
            json.dumps(
                {
                    "tool": "sports_ranking",
                    "arguments": {"team": "Manchester United", "league": "Premier League"},
                }
            ),
        ]
    )
    request = ModelRequest([Message.user(ASKED)], [RANKING])
    response = await GuidedModel(inner).staged(request)
    (call,) = response.tool_calls
    assert call.arguments == {"team": "Manchester United", "league": "Premier League"}
    second = inner.requests[1].output_schema
    assert second is not None and "Premier League" in json.dumps(second)
    assert '"const": "Manchester United"' in json.dumps(second)


def test_a_required_value_that_only_names_its_parameter_is_a_label() -> None:
    assert self_named({"team": "Manchester United", "league": "League"}, RANKING) == ["league"]
    assert self_named({"team": "Manchester United", "league": "Premier League"}, RANKING) == []
    assert self_named({"team": "team 1", "league": "Premier League"}, RANKING) == []  # a digit


def test_a_label_is_asked_again_without_the_spans_that_only_name_it() -> None:
    written = {"team": "Manchester United", "league": "League"}
    schema = distinct_parameters(RANKING, written, ["league"], ASKED)
    assert schema is not None
    choices = schema["properties"]["league"]["enum"]
    assert "Premier League" in choices and "League" not in choices


async def test_the_distinct_stage_asks_a_label_again() -> None:
    # "league" in lower case: not the request's name cut at a word (ninth round's
    # `value_forms.whole_name` completes "League" to "Premier League" in `settle`)
    inner = ScriptedModel(
        [
            json.dumps(
                {
                    "tool": "sports_ranking",
                    "arguments": {"team": "Manchester United", "league": "league"},
                }
            ),
            json.dumps(
                {
                    "tool": "sports_ranking",
                    "arguments": {"team": "Manchester United", "league": "Premier League"},
                }
            ),
        ]
    )
    request = ModelRequest([Message.user(ASKED)], [RANKING])
    response = await GuidedModel(inner).staged(request)
    assert response.tool_calls[0].arguments["league"] == "Premier League"
    assert len(inner.requests) == 2
