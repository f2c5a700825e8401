"""Guided steps are journaled stage by stage, and replay re-runs the real construction.

`tests/cassettes/order_status_guided.jsonl` was recorded on the embedded SmolLM2-135M
(``record_cassette`` with the agent below): each step's stages (``stage_request`` /
``stage_response``) sit between its ``model_request`` and ``model_response``. Replaying
it runs the guided layer again over a server of the recorded stage replies, so a
change to what a stage sends (its prompt, its schema) is a divergence, while the old
cassette (recorded before stages were journaled) still replays whole.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from cli_tools import get_order_status
from pilothouse import Agent
from pilothouse.events import StageRequested, StageResponded
from pilothouse.guided import GuidedModel
from pilothouse.guided.render import TOOL_PROMPT
from pilothouse.messages import Message
from pilothouse.models.base import ModelRequest, ModelSettings, request_digest
from pilothouse.models.scripted import ScriptedModel
from pilothouse.runtime.replay import load_journal
from pilothouse.testing import assert_replays, replay

CASSETTES = Path(__file__).resolve().parents[1] / "cassettes"
GUIDED_CASSETTE = CASSETTES / "order_status_guided.jsonl"
OLD_CASSETTE = CASSETTES / "order_status_local.jsonl"
ORDER_INSTRUCTIONS = (
    "You are a support agent. Call get_order_status once, then answer the customer in one sentence."
)
HAS_LLAMA = importlib.util.find_spec("llama_cpp") is not None


def order_agent(model: object = "local") -> Agent[None, str]:
    return Agent(model, ORDER_INSTRUCTIONS, [get_order_status], max_steps=4, name="cli")  # type: ignore[arg-type]


def test_the_cassette_records_each_stage_without_copying_the_conversation() -> None:
    events = load_journal(GUIDED_CASSETTE)
    stages = [(e.step, e.stage) for e in events if isinstance(e, StageRequested)]
    assert stages == [(1, "choose"), (1, "arguments"), (2, "choose")]
    answered = [e for e in events if isinstance(e, StageResponded)]
    assert [e.response.usage.requests for e in answered] == [1, 1, 1]
    for e in events:
        if isinstance(e, StageRequested):
            line = json.dumps(e.to_dict())
            assert "Where is my order" not in line  # the conversation is on model_request
            assert e.digest and e.output_schema is not None and "## Tools" in e.added


def test_a_guided_cassette_replays_through_the_guided_construction() -> None:
    report = assert_replays(order_agent(), GUIDED_CASSETTE)
    assert report.steps == 2 and report.outcome == "final"
    replayed = [(e.step, e.stage) for e in report.events if isinstance(e, StageRequested)]
    assert replayed == [(1, "choose"), (1, "arguments"), (2, "choose")]
    assert [e.type for e in report.events] == [e.type for e in load_journal(GUIDED_CASSETTE)]


def test_a_cassette_recorded_before_stages_still_replays_whole() -> None:
    report = assert_replays(order_agent(), OLD_CASSETTE)
    assert report.steps == 2
    assert not [e for e in report.events if isinstance(e, StageRequested)]


@pytest.mark.skipif(not HAS_LLAMA, reason="LocalModel needs llama-cpp-python (never loaded here)")
def test_changing_a_stage_prompt_fails_the_replay() -> None:
    from pilothouse.models.local import LocalModel

    changed = TOOL_PROMPT.replace(
        "Reply with exactly one JSON object", "Reply with one JSON object"
    )
    report = replay(order_agent(LocalModel(tool_prompt=changed)), GUIDED_CASSETTE)
    d = report.divergence
    assert d is not None and d.kind == "stage" and d.step == 1
    assert "stage #0 (choose)" in d.detail and "prompt text differs" in d.detail
    assert report.steps == 0  # nothing was answered after the divergence
    # Unchanged, it passes (the same class, the same guidance).
    assert replay(order_agent(LocalModel(tool_prompt=TOOL_PROMPT)), GUIDED_CASSETTE).ok


@pytest.mark.skipif(not HAS_LLAMA, reason="LocalModel needs llama-cpp-python (never loaded here)")
def test_changing_a_stage_schema_fails_the_replay() -> None:
    from pilothouse.models.local import LocalModel

    # Without grounded answers the answer after the result is any string: step 2's
    # choice schema differs, though its prompt text does not.
    report = replay(order_agent(LocalModel(grounded_answers=False)), GUIDED_CASSETTE)
    d = report.divergence
    assert d is not None and d.kind == "stage" and d.step == 2
    assert "schema" in d.detail


def test_guided_model_stages_are_journaled_in_a_live_run() -> None:
    inner = ScriptedModel(
        [
            '{"tool": "get_order_status"}',
            '{"tool": "get_order_status", "arguments": {"order_id": "A1234"}}',
            '{"answer": "It shipped on Monday."}',
        ]
    )
    model = GuidedModel(inner)
    assert model.name == f"guided:{inner.name}"
    agent = order_agent(model)
    agent._store_spec = ":memory:"
    result = agent.run_sync("Where is my order A1234?")
    assert result.output == "It shipped on Monday."
    events = agent.store.events(result.run_id)
    asked = [e for e in events if isinstance(e, StageRequested)]
    assert [(e.step, e.index, e.stage) for e in asked] == [
        (1, 0, "choose"),
        (1, 1, "arguments"),
        (2, 0, "choose"),
    ]
    # The inner model got plain turns and the stage's schema; the digest is of exactly that.
    sent = inner.requests[0]
    assert sent.tools == [] and sent.output_schema == asked[0].output_schema
    assert asked[0].digest == request_digest(sent)
    assert result.usage.requests == 3
    # The run replays through the same guidance.
    assert replay(order_agent(model), events).ok


def test_render_prompt_shows_the_first_stage() -> None:
    inner = ScriptedModel(["x"])
    text = order_agent(GuidedModel(inner)).render_prompt("Where is my order A1234?")
    assert "guided stage: choose" in text and "## Tools" in text


def test_digest_covers_messages_schema_and_settings() -> None:
    base = ModelRequest([Message.user("hi")], output_schema={"type": "string"})
    other = ModelRequest([Message.user("hi")], output_schema={"type": "integer"})
    capped = ModelRequest(
        [Message.user("hi")], output_schema={"type": "string"}, settings=ModelSettings(max_tokens=3)
    )
    assert len({request_digest(base), request_digest(other), request_digest(capped)}) == 3
    assert request_digest(base) == request_digest(
        ModelRequest([Message.user("hi")], output_schema={"type": "string"})
    )
