"""An answer before any tool ran is asked for in a few tokens (`guided.brevity`)."""

from __future__ import annotations

from cli_tools import get_order_status
from pilothouse.guided import GuidedModel
from pilothouse.guided.brevity import EARLY_ANSWER_TOKENS, short, trimmed
from pilothouse.messages import Message, ToolCall, ToolResult
from pilothouse.models.base import ModelRequest, ModelResponse, ModelSettings
from pilothouse.models.scripted import ScriptedModel

SPEC = get_order_status.spec()


def test_a_limit_the_caller_chose_is_kept() -> None:
    assert short(ModelSettings()).max_tokens == EARLY_ANSWER_TOKENS
    assert short(ModelSettings(max_tokens=500)).max_tokens == 500


def test_a_cut_answer_ends_at_its_last_sentence() -> None:
    text = "There are 4 kings in a deck.\n\nThe probability of drawing"
    assert trimmed(text) == "There are 4 kings in a deck."
    assert trimmed("The area is 30. The area of the triangle is") == "The area is 30."
    assert trimmed("Order A1234 has shipped.") == "Order A1234 has shipped."


def test_without_a_sentence_end_it_is_cut_to_a_whole_word() -> None:
    assert trimmed("0.333 repeating 0.333 repeat") == "0.333 repeating 0.333 ..."


async def test_the_choose_stage_before_any_tool_ran_is_asked_short() -> None:
    inner = ScriptedModel(['{"answer": "I can help with orders."}'])
    request = ModelRequest([Message.user("Where is my order A1234?")], [SPEC])
    response = await GuidedModel(inner).staged(request)
    assert response.text == "I can help with orders."
    assert inner.requests[0].settings.max_tokens == EARLY_ANSWER_TOKENS


async def test_a_choose_stage_after_a_tool_result_is_not() -> None:
    call = ToolCall("c1", "get_order_status", {"order_id": "A1234"})
    request = ModelRequest(
        [
            Message.user("Where is my order A1234?"),
            Message.assistant("", (call,)),
            Message.tool(ToolResult("c1", "get_order_status", "Order A1234 has shipped.")),
        ],
        [SPEC],
    )
    inner = ScriptedModel(['{"answer": "Order A1234 has shipped."}'])
    await GuidedModel(inner).staged(request)
    assert inner.requests[0].settings.max_tokens is None


async def test_the_answer_when_no_tool_fits_is_asked_short_and_trimmed() -> None:
    cut = ModelResponse(
        text="Beethoven composed it. He wrote it in 1801. He was", finish_reason="length"
    )
    inner = ScriptedModel([cut])
    request = ModelRequest([Message.user("Who composed the Moonlight Sonata?")], [SPEC])
    response = await GuidedModel(inner).staged(request)
    assert inner.requests[0].settings.max_tokens == EARLY_ANSWER_TOKENS
    assert not inner.requests[0].tools and not response.tool_calls
    assert response.text == "Beethoven composed it. He wrote it in 1801."
