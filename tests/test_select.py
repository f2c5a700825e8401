"""Lexical pre-selection of tools (`pilothouse.tools.select`) on real tool specs."""

from __future__ import annotations

from typing import Literal

import pytest

from pilothouse.models.base import ToolSpec
from pilothouse.tools import tool
from pilothouse.tools.select import rank_tools, select_tools, tool_text, words


@tool
def get_order_status(order_id: str) -> str:
    """Look up the shipping status of a customer's order.

    Args:
        order_id: the order number, such as A1234
    """
    return f"{order_id} shipped"


@tool
def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> str:
    """Current weather for a city.

    Args:
        city: the city name
        unit: temperature unit
    """
    return f"sunny in {city}"


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression such as 37 * 48 + 125.

    Args:
        expression: the arithmetic expression
    """
    return expression


@tool
def convertTimeZone(time: str, target_zone: str) -> str:  # a camelCase name on purpose
    """Convert a time to another zone."""
    return time


SPECS: list[ToolSpec] = [
    t.spec() for t in (get_order_status, get_weather, calculator, convertTimeZone)
]


def names(specs: list[ToolSpec]) -> list[str]:
    return [s.name for s in specs]


def test_words_are_lowercased_stemmed_and_drop_stop_words_and_numbers() -> None:
    assert words("What are the Orders of 2024?") == ["order"]
    assert words("getOrderStatus order_id") == ["order", "status", "order", "id"]
    assert words("boxes, cities and running") == ["box", "city", "runn"]
    assert words("the a of 37 * 48") == []


def test_tool_text_holds_name_description_and_parameters() -> None:
    text = tool_text(get_order_status.spec())
    assert text.startswith("get order status Look up the shipping status")
    assert "order_id" in text and "the order number" in text


@pytest.mark.parametrize(
    ("request_text", "best"),
    [
        ("Where is my order A1234?", "get_order_status"),
        ("Has my parcel shipped yet?", "get_order_status"),
        ("What's the weather like in Paris?", "get_weather"),
        ("Evaluate this arithmetic please: 2 + 2", "calculator"),
        ("Convert 10:00 to the Tokyo time zone", "convertTimeZone"),
    ],
)
def test_the_matching_tool_ranks_first(request_text: str, best: str) -> None:
    ranked = rank_tools(request_text, SPECS)
    assert ranked[0][0].name == best
    assert ranked[0][1] > 0
    assert ranked[0][1] > ranked[1][1]


def test_scores_are_sorted_and_every_tool_is_ranked() -> None:
    ranked = rank_tools("weather for my order", SPECS)
    assert sorted(names([s for s, _ in ranked])) == sorted(names(SPECS))
    scores = [score for _, score in ranked]
    assert scores == sorted(scores, reverse=True)


def test_select_keeps_only_matching_tools_up_to_the_limit() -> None:
    assert names(select_tools("weather for my order", SPECS)) in (
        ["get_weather", "get_order_status"],
        ["get_order_status", "get_weather"],
    )
    assert len(select_tools("weather for my order", SPECS, limit=1)) == 1
    assert select_tools("Hello! How are you?", SPECS) == []
    # Numbers say nothing about the tool, even when a description holds the same ones.
    assert select_tools("37 * 48 + 125", SPECS) == []


def test_no_tools_and_a_bad_limit() -> None:
    assert rank_tools("anything", []) == []
    assert select_tools("anything", []) == []
    with pytest.raises(ValueError, match="at least 1"):
        select_tools("weather", SPECS, limit=0)
