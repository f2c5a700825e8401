"""A guided run resumed from any point of its journal: the step's stages are simply redone."""

from __future__ import annotations

import json
from typing import Any

from cli_tools import get_order_status
from pilothouse import Agent, MemoryStore
from pilothouse.events import StageRequested
from pilothouse.guided import GuidedModel
from pilothouse.models.base import ModelRequest
from pilothouse.models.scripted import ScriptedModel
from pilothouse.runtime.journal import RunInfo
from pilothouse.testing import replay


def stage_replies() -> ScriptedModel:
    """An inner model that answers each stage from what it is asked (order-free)."""

    def reply(request: ModelRequest) -> Any:
        schema = json.dumps(request.output_schema)
        if '"arguments"' in schema:
            return '{"tool": "get_order_status", "arguments": {"order_id": "A1234"}}'
        if any(m.role == "user" and m.content.startswith("Result of") for m in request.messages):
            return '{"answer": "Order A1234 was shipped on Monday and arrives Thursday."}'
        return '{"tool": "get_order_status"}'

    return ScriptedModel(reply)


def agent(store: MemoryStore) -> Agent[None, str]:
    return Agent(GuidedModel(stage_replies()), "Help.", [get_order_status], store=store)


def test_resume_from_every_point_redoes_only_the_unanswered_step() -> None:
    full = agent(MemoryStore())
    done = full.run_sync("Where is my order A1234?")
    assert done.output.startswith("Order A1234 was shipped")
    events = full.store.events(done.run_id)
    assert [e.stage for e in events if isinstance(e, StageRequested)] == [
        "choose",
        "arguments",
        "choose",
    ]
    info = full.store.get_run(done.run_id)
    for cut in range(1, len(events) - 1):
        store = MemoryStore()
        store.write(
            events[:cut],
            RunInfo(done.run_id, info.agent, info.model, info.input, "running", info.created),
        )
        result = agent(store).resume_sync(done.run_id)
        assert result.output == done.output, cut
        after = store.events(done.run_id)
        assert [e.seq for e in after] == list(range(len(after)))
        # A step stopped between its stages is asked again from its first stage.
        answered = {e.step for e in after if e.type == "model_response"}
        for step in answered:
            last_request = max(
                i for i, e in enumerate(after) if e.type == "model_request" and e.step == step
            )
            stages = [
                e.stage
                for e in after[last_request:]
                if isinstance(e, StageRequested) and e.step == step
            ]
            assert stages[0] == "choose", (cut, step, stages)
        # The resumed journal replays: the stages of the answered attempt are used.
        report = replay(agent(MemoryStore()), after)
        assert report.ok, (cut, report.summary())
