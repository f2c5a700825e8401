"""`GuidedModel` on a scripted inner model: what each stage sends and how replies are read."""

from __future__ import annotations

import json

import pytest

from cli_tools import get_order_status
from pilothouse.exceptions import ConfigurationError, ModelOutputError
from pilothouse.guided import GuidedModel, guide_for, guided, needs_guide
from pilothouse.messages import Message, ToolCall, ToolResult
from pilothouse.models.base import Capabilities, ModelRequest, Stage, TextDelta
from pilothouse.models.scripted import ScriptedModel

SPEC = get_order_status.spec()


def asked(text: str = "Where is my order A1234?", **kwargs: object) -> ModelRequest:
    return ModelRequest([Message.system("Help."), Message.user(text)], [SPEC], **kwargs)  # type: ignore[arg-type]


class Log:
    def __init__(self) -> None:
        self.stages: list[Stage] = []
        self.errors: list[str | None] = []

    def requested(self, stage: Stage) -> None:
        self.stages.append(stage)

    def responded(
        self, stage: Stage, response: object, duration: float, error: str | None = None
    ) -> None:
        self.errors.append(error)


async def test_stages_send_plain_turns_and_a_schema_never_tools() -> None:
    inner = ScriptedModel(
        [
            '{"tool": "get_order_status"}',
            '{"tool": "get_order_status", "arguments": {"order_id": "A1234"}}',
        ]
    )
    log = Log()
    response = await GuidedModel(inner).staged(asked(), log)
    (call,) = response.tool_calls
    assert (call.name, call.arguments) == ("get_order_status", {"order_id": "A1234"})
    assert response.usage.requests == 2
    assert [s.name for s in log.stages] == ["choose", "arguments"]
    for request in inner.requests:
        assert request.tools == [] and request.output_schema is not None
        assert {m.role for m in request.messages} <= {"system", "user", "assistant"}
        assert "## Tools" in request.messages[0].content
    assert '"arguments"' not in json.dumps(inner.requests[0].output_schema)


async def test_a_repeated_call_becomes_an_answer_stage_with_a_note() -> None:
    call = ToolCall("c1", "get_order_status", {"order_id": "A1234"})
    request = ModelRequest(
        [
            Message.user("Where is my order A1234?"),
            Message.assistant("", (call,)),
            Message.tool(ToolResult("c1", "get_order_status", "Order A1234 has shipped.")),
        ],
        [SPEC],
    )
    inner = ScriptedModel(
        [
            '{"tool": "get_order_status"}',
            '{"tool": "get_order_status", "arguments": {"order_id": "A1234"}}',
            '{"answer": "Order A1234 has shipped."}',
        ]
    )
    log = Log()
    response = await GuidedModel(inner).staged(request, log)
    assert response.text == "Order A1234 has shipped." and not response.tool_calls
    assert [s.name for s in log.stages] == ["choose", "arguments", "answer"]
    assert "already called" in log.stages[2].note
    # The result turn is shown as the user turn the template makes.
    assert any("Result of get_order_status" in m.content for m in inner.requests[0].messages)


async def test_unstaged_is_one_reply_of_the_whole_schema() -> None:
    inner = ScriptedModel(['{"tool": "get_order_status", "arguments": {"order_id": "A1234"}}'])
    log = Log()
    response = await GuidedModel(inner, staged=False).staged(asked(), log)
    assert response.tool_calls[0].arguments == {"order_id": "A1234"}
    assert [s.name for s in log.stages] == ["reply"]
    assert len(inner.requests[0].output_schema["oneOf"]) == 2  # the call, or an answer


async def test_a_reply_cut_off_after_the_tool_name_is_a_call_with_a_parse_error() -> None:
    inner = ScriptedModel(['{"tool": "get_order_status", "argu'])
    response = await GuidedModel(inner).staged(asked(tool_choice="required"))
    (call,) = response.tool_calls
    assert call.name == "get_order_status" and call.parse_error is not None
    with pytest.raises(ModelOutputError, match="not valid JSON"):
        await GuidedModel(ScriptedModel(['{"to'])).staged(asked(tool_choice="required"))


async def test_without_tools_the_inner_model_answers_and_streams_as_it_is() -> None:
    inner = ScriptedModel(["plain words"])
    model = guided(inner)
    plain = ModelRequest([Message.user("hi")])
    assert not needs_guide(plain) and needs_guide(asked())
    items = [item async for item in model.stream(plain)]
    assert isinstance(items[0], TextDelta) and items[-1].text == "plain words"  # type: ignore[union-attr]
    assert model.render(plain) == inner.render(plain)


def test_guidance_is_for_models_that_ask_or_are_wrapped() -> None:
    inner = ScriptedModel(["x"])
    assert guide_for(inner) is None  # a plain model is left alone
    model = GuidedModel(inner)
    assert guide_for(model) is model
    assert model.name == "guided:scripted" and model.capabilities.native_tools
    no_schema = ScriptedModel(["x"])
    no_schema.capabilities = Capabilities(native_tools=True, json_schema=False)  # type: ignore[misc]
    with pytest.raises(ConfigurationError, match="JSON schema"):
        GuidedModel(no_schema)
    with pytest.raises(ConfigurationError, match="select_limit"):
        GuidedModel(inner, select_limit=0)


def test_stage_events_round_trip_through_their_stored_form() -> None:
    from pilothouse.events import StageRequested, StageResponded, event_from_dict
    from pilothouse.messages import Usage
    from pilothouse.models.base import ModelResponse

    asked_event = StageRequested(
        run_id="r",
        step=2,
        stage="narrow",
        index=1,
        tools=["lookup"],
        added="## Tools",
        schemas={"lookup": {"type": "object"}},
        output_schema={"type": "object"},
        settings={"max_tokens": 8},
        note="query: words nobody said",
        digest="0123456789abcdef",
    )
    answered = StageResponded(
        run_id="r",
        step=2,
        stage="narrow",
        index=1,
        response=ModelResponse('{"tool": "lookup", "arg', usage=Usage(10, 8, 0.0, 1)),
        duration=0.5,
        error="the reply was cut off at max_tokens=8 before its JSON was complete",
    )
    for event in (asked_event, answered):
        assert event_from_dict(event.to_dict()).to_dict() == event.to_dict()


def test_the_repeat_check_and_the_loop_detector_share_one_rule() -> None:
    """One definition of "the same call" (`messages.call_identity`) for both."""
    from pilothouse.guided.checks import Turn
    from pilothouse.messages import Message, ToolCall
    from pilothouse.runtime.budget import LoopDetector

    pairs = [
        ({"a": 1}, {"a": 1.0}),
        ({"a": 1, "b": "x"}, {"b": "x", "a": 1}),
        ({"a": [1, 2]}, {"a": [1, 2]}),
        ({"a": [1, 2]}, {"a": [2, 1]}),
        ({"a": {"x": 1, "y": 2}}, {"a": {"y": 2, "x": 1}}),
        ({"a": "1"}, {"a": 1}),
    ]
    for first, second in pairs:
        detector = LoopDetector(3)
        detector.see("t", first)
        same_for_detector = detector.see("t", second) == 2
        turn = Turn.of(
            [Message.user("q"), Message.assistant("", tool_calls=[ToolCall("c1", "t", first)])]
        )
        assert turn.repeats(ToolCall("c2", "t", second)) is same_for_detector, (first, second)
    assert not Turn.of([Message.user("q")]).repeats(ToolCall("c", "t", {}))
