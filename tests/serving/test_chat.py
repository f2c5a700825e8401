"""Chat completions through the official `openai` client: whole and streamed answers,
usage, history, server-side tools, paused runs, and the journal behind each request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from serving_world import World, client

from pilothouse import Agent, tool
from pilothouse.events import RunStarted, ToolCalled
from pilothouse.messages import ToolCall
from pilothouse.models.base import ModelRequest, ModelResponse
from pilothouse.models.scripted import ScriptedModel
from pilothouse.serving import BackgroundServer, create_app


def test_models_lists_the_agents_and_retrieves_one(world: World) -> None:
    with world.serve() as server:
        api = client(server)
        assert sorted(m.id for m in api.models.list()) == ["checked", "echo"]
        assert api.models.retrieve("echo").owned_by == "pilothouse"
        with pytest.raises(openai_error("NotFoundError")) as caught:
            api.models.retrieve("nobody")
        assert caught.value.status_code == 404


def openai_error(name: str) -> type[Exception]:
    import openai

    error: type[Exception] = getattr(openai, name)
    return error


def test_an_answer_is_one_journaled_run_with_its_usage(world: World) -> None:
    with world.serve() as server:
        answer = client(server).chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "hello"}]
        )
    assert answer.object == "chat.completion"
    assert answer.model == "echo"
    choice = answer.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "echo: hello [0 earlier]"
    assert choice.finish_reason == "stop"
    run_id = answer.model_extra["pilothouse"]["run_id"]
    assert answer.id == f"chatcmpl-{run_id}"
    info = world.store.get_run(run_id)
    assert (info.status, info.input, info.agent) == ("final", "hello", "echo")
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == info.input_tokens
    assert answer.usage.completion_tokens == info.output_tokens
    assert answer.usage.total_tokens == info.input_tokens + info.output_tokens


def test_earlier_messages_are_the_runs_history(world: World) -> None:
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello, how can I help?"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "and "}, {"type": "text", "text": "now"}],
        },
    ]
    with world.serve() as server:
        answer = client(server).chat.completions.create(model="echo", messages=messages)
    assert answer.choices[0].message.content == "echo: and now [2 earlier]"
    started = world.store.events(answer.model_extra["pilothouse"]["run_id"])[0]
    assert isinstance(started, RunStarted)
    assert [(m.role, m.content) for m in started.history] == [
        ("user", "hi"),
        ("assistant", "hello, how can I help?"),
    ]


def test_a_stream_is_openais_chunks_and_ends_with_done(world: World) -> None:
    with world.serve() as server:
        stream = client(server).chat.completions.create(
            model="echo",
            messages=[{"role": "user", "content": "a streamed reply of some length"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: a streamed reply of some length [0 earlier]"
    # the model wrote it in pieces of 8 characters, and they were forwarded as written
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finishing] == ["stop"]
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage is not None
    assert all(c.usage is None for c in chunks[:-1])
    run_id = finishing[0].model_extra["pilothouse"]["run_id"]
    info = world.store.get_run(run_id)
    assert info.status == "final"
    assert usage_chunk.usage.completion_tokens == info.output_tokens


def test_the_raw_stream_is_data_lines_ending_with_done(world: World) -> None:
    body = {"model": "echo", "messages": [{"role": "user", "content": "raw"}], "stream": True}
    with (
        world.serve() as server,
        httpx.Client(base_url=server.url, timeout=60) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    payloads = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert all(e.startswith("data: ") for e in events[:-1])
    assert "usage" not in payloads[0]  # no usage unless stream_options asks for it
    assert payloads[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }


def test_tools_run_on_the_server_and_the_client_sees_the_answer(world: World) -> None:
    with world.serve() as server:
        api = client(server)
        answer = api.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "weather in Oslo"}]
        )
        streamed = list(
            api.chat.completions.create(
                model="echo",
                messages=[{"role": "user", "content": "weather in Bergen"}],
                stream=True,
            )
        )
    message = answer.choices[0].message
    assert message.content == "The forecast: sunny in Oslo"
    assert message.tool_calls is None and answer.choices[0].finish_reason == "stop"
    events = world.store.events(answer.model_extra["pilothouse"]["run_id"])
    assert [e.call.name for e in events if isinstance(e, ToolCalled)] == ["weather"]
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == (
        "The forecast: sunny in Bergen"
    )
    assert all(c.choices[0].delta.tool_calls is None for c in streamed if c.choices)


def test_an_answer_that_is_checked_is_streamed_whole_and_matches(world: World) -> None:
    # The "checked" agent has an output validator: its text is not the answer until
    # validated, so the stream carries the validated answer, once, at the end.
    with world.serve() as server:
        api = client(server)
        whole = api.chat.completions.create(
            model="checked", messages=[{"role": "user", "content": "quiet words"}]
        )
        chunks = list(
            api.chat.completions.create(
                model="checked",
                messages=[{"role": "user", "content": "quiet words"}],
                stream=True,
            )
        )
    content = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert content == ["ECHO: QUIET WORDS [0 EARLIER]"]
    assert whole.choices[0].message.content == "ECHO: QUIET WORDS [0 EARLIER]"


def test_a_run_that_waits_for_approval_says_so(world: World) -> None:
    with world.serve() as server:
        api = client(server)
        answer = api.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "pay 300"}]
        )
        chunks = list(
            api.chat.completions.create(
                model="echo", messages=[{"role": "user", "content": "pay 20"}], stream=True
            )
        )
    extra = answer.model_extra["pilothouse"]
    assert extra["outcome"] == "paused"
    [pending] = extra["pending"]
    assert pending["tool"] == "send_money" and pending["kind"] == "approval"
    text = answer.choices[0].message.content
    assert "waiting for a person to approve send_money" in text and extra["run_id"] in text
    assert world.store.get_run(extra["run_id"]).status == "paused"
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "waiting for a person to approve send_money" in streamed
    last = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
    assert last.model_extra["pilothouse"]["outcome"] == "paused"


def test_text_written_beside_a_tool_call_is_streamed_and_apart_from_the_answer(
    tmp_path: Path,
) -> None:
    @tool
    def lookup(key: str) -> str:
        """Look a key up."""
        return f"value of {key}"

    def reply(request: ModelRequest) -> Any:
        if request.messages[-1].role == "tool":
            return "The value is known."
        return ModelResponse("Let me check.", (ToolCall("c1", "lookup", {"key": "k"}),))

    agent = Agent(ScriptedModel(reply), "", [lookup], name="chatty", store=str(tmp_path / "j.db"))
    hi = [{"role": "user", "content": "hi"}]
    with BackgroundServer(create_app(agent)) as server:
        api = client(server)
        whole = api.chat.completions.create(model="chatty", messages=hi)
        chunks = list(api.chat.completions.create(model="chatty", messages=hi, stream=True))
    assert whole.choices[0].message.content == "The value is known."
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == "Let me check.\n\nThe value is known."


def test_a_run_stopped_by_its_budget_says_so(tmp_path: Path) -> None:
    @tool
    def lookup(key: str) -> str:
        """Look a key up."""
        return key

    model = ScriptedModel(lambda request: ToolCall("c", "lookup", {"key": "again"}))
    agent = Agent(model, "", [lookup], name="stuck", max_steps=1, store=str(tmp_path / "j.db"))
    with BackgroundServer(create_app(agent)) as server:
        answer = client(server).chat.completions.create(
            model="stuck", messages=[{"role": "user", "content": "hi"}]
        )
    extra = answer.model_extra["pilothouse"]
    assert extra["outcome"] == "budget_stop"
    assert answer.choices[0].message.content == (
        f"The agent stopped before answering (steps; run {extra['run_id']})."
    )
    assert answer.choices[0].finish_reason == "stop"
