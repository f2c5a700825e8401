"""`AnthropicModel` against a real HTTP server on loopback serving recorded Anthropic payloads.

The hosted API cannot be reached from CI, so a `ThreadingHTTPServer` replays bodies
and event streams in the shapes Anthropic documents (tests/models/payloads/anthropic)
and records what it received: the tests check both directions of the wire format,
the retries and the error mapping.
"""

from __future__ import annotations

import asyncio
import collections
import json
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from pilothouse import Agent, tool
from pilothouse.events import FinalOutput, ModelResponded, ToolCalled, ToolReturned
from pilothouse.exceptions import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ContextLengthError,
    ModelOutputError,
    ModelUnreachableError,
    RateLimitError,
    ServerError,
)
from pilothouse.messages import Message, ToolCall, ToolResult
from pilothouse.models.anthropic import DEFAULT_MAX_TOKENS, OUTPUT_TOOL, AnthropicModel
from pilothouse.models.base import ModelRequest, ModelSettings, TextDelta, ToolSpec
from pilothouse.models.registry import resolve_model
from pilothouse.runtime.replay import capabilities_of

PAYLOADS = Path(__file__).parent / "payloads" / "anthropic"
KEY = "sk-ant-api03-test-secret-do-not-leak"


def payload(name: str) -> Any:
    """A recorded JSON body."""
    return json.loads((PAYLOADS / name).read_text())


def answered_with(arguments: dict[str, Any]) -> Any:
    """The recorded tool_use reply, answering through the output tool instead."""
    reply = payload("tool_use_reply.json")
    reply["content"] = [
        {"type": "tool_use", "id": "toolu_01Out", "name": OUTPUT_TOOL, "input": arguments}
    ]
    return reply


def sse(name: str) -> str:
    """A recorded event stream, as the bytes Anthropic sends."""
    return (PAYLOADS / name).read_text()


# ---------------------------------------------------------------- the loopback server


@dataclass
class Canned:
    """One answer: a status, a content type, a body, extra headers."""

    status: int
    body: str
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


class AnthropicServer:
    """A loopback server answering POST /v1/messages with queued recorded payloads."""

    def __init__(self) -> None:
        self.queue: collections.deque[Canned] = collections.deque()
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._http.daemon_threads = True
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def json(self, body: Any, status: int = 200, **headers: str) -> None:
        self.queue.append(Canned(status, json.dumps(body), headers=headers))

    def events(self, text: str) -> None:
        self.queue.append(Canned(200, text, "text/event-stream; charset=utf-8"))

    def take(self, received: Received) -> Canned:
        with self._lock:
            self.received.append(received)
            if self.queue:
                return self.queue.popleft()
        missing = {"type": "error", "error": {"type": "api_error", "message": "no reply queued"}}
        return Canned(500, json.dumps(missing))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                canned = server.take(Received(self.path, headers, json.loads(raw)))
                data = canned.body.encode()
                self.send_response(canned.status)
                self.send_header("Content-Type", canned.content_type)
                self.send_header("Content-Length", str(len(data)))
                for key, value in canned.headers.items():
                    self.send_header(key.replace("_", "-"), value)
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def __enter__(self) -> AnthropicServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def server() -> Iterator[AnthropicServer]:
    with AnthropicServer() as running:
        yield running


@pytest.fixture(autouse=True)
def _no_anthropic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)


Factory = Callable[..., AnthropicModel]


@pytest.fixture
async def make_model(server: AnthropicServer) -> AsyncIterator[Factory]:
    made: list[AnthropicModel] = []

    def make(**kwargs: Any) -> AnthropicModel:
        options: dict[str, Any] = {"api_key": KEY, "base_url": server.url, "backoff": 0.0}
        options.update(kwargs)
        model = AnthropicModel("claude-sonnet-4-5", **options)
        made.append(model)
        return model

    yield make
    for model in made:
        await model.aclose()


WEATHER = ToolSpec(
    "get_weather",
    "Current weather for a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def conversation() -> list[Message]:
    """A history with every role: system, user, a parallel tool call, two results."""
    calls = (
        ToolCall("toolu_1", "get_weather", {"city": "Paris"}),
        ToolCall("toolu_2", "get_weather", {"city": "Atlantis"}),
    )
    return [
        Message.system("You are terse."),
        Message.user("Weather in Paris and Atlantis?"),
        Message.assistant("Checking both.", calls),
        Message.tool(ToolResult("toolu_1", "get_weather", "18 C, clear")),
        Message.tool(ToolResult("toolu_2", "get_weather", "unknown city", is_error=True)),
        Message.user("Be brief."),
    ]


# ---------------------------------------------------------------- requests


async def test_text_reply_usage_headers_and_body(
    server: AnthropicServer, make_model: Factory
) -> None:
    server.json(payload("text_reply.json"))
    model = make_model(price=(3.0, 15.0))
    response = await model.generate(ModelRequest([Message.system("Be kind."), Message.user("Hi")]))
    assert response.text == "Hello! How can I help you today?"
    assert response.tool_calls == ()
    assert response.finish_reason == "stop"
    assert response.model == "claude-sonnet-4-5-20250929"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (21, 12)
    assert response.usage.cost == pytest.approx((21 * 3.0 + 12 * 15.0) / 1e6)
    (sent,) = server.received
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["content-type"] == "application/json"
    assert "authorization" not in sent.headers
    assert sent.body == {
        "model": "claude-sonnet-4-5",
        "max_tokens": DEFAULT_MAX_TOKENS,
        "system": "Be kind.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
    }


async def test_history_is_converted_to_alternating_turns_with_tool_results(
    server: AnthropicServer, make_model: Factory
) -> None:
    server.json(payload("text_reply.json"))
    settings = ModelSettings(temperature=0.2, max_tokens=300, seed=7)
    await make_model().generate(ModelRequest(conversation(), [WEATHER], settings=settings))
    body = server.received[0].body
    assert body["system"] == "You are terse."
    assert body["max_tokens"] == 300 and body["temperature"] == 0.2
    assert "seed" not in body  # Anthropic has no seed
    assert [turn["role"] for turn in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"] == [
        {"type": "text", "text": "Checking both."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        {
            "type": "tool_use",
            "id": "toolu_2",
            "name": "get_weather",
            "input": {"city": "Atlantis"},
        },
    ]
    # Both results and the follow-up text share one user turn, results first.
    assert body["messages"][2]["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": "toolu_1",
            "content": "18 C, clear",
            "is_error": False,
        },
        {
            "type": "tool_result",
            "tool_use_id": "toolu_2",
            "content": "unknown city",
            "is_error": True,
        },
        {"type": "text", "text": "Be brief."},
    ]
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "input_schema": WEATHER.parameters,
        }
    ]
    assert body["tool_choice"] == {"type": "auto"}


async def test_same_role_turns_merge_and_late_system_messages_stay_in_place(
    server: AnthropicServer, make_model: Factory
) -> None:
    server.json(payload("text_reply.json"))
    messages = [
        Message.system("Rule one."),
        Message.system("Rule two."),
        Message.user("a"),
        Message.user("b"),
        Message.assistant(""),  # an empty reply has nothing to send
        Message.system("Now answer."),
    ]
    await make_model().generate(ModelRequest(messages))
    body = server.received[0].body
    assert body["system"] == "Rule one.\n\nRule two."
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "a"},
                {"type": "text", "text": "b"},
                {"type": "text", "text": "Now answer."},
            ],
        }
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [("auto", {"type": "auto"}), ("required", {"type": "any"}), ("none", {"type": "none"})],
)
def test_tool_choice_forms(choice: Any, expected: dict[str, Any]) -> None:
    model = AnthropicModel("claude-sonnet-4-5")
    body = json.loads(
        model.render(ModelRequest([Message.user("x")], [WEATHER], tool_choice=choice)).split(
            "\n", 1
        )[1]
    )
    assert body["tool_choice"] == expected


def test_no_tools_sends_no_tool_choice() -> None:
    body = AnthropicModel("claude-sonnet-4-5")._body(ModelRequest([Message.user("x")]))
    assert "tools" not in body and "tool_choice" not in body


# ---------------------------------------------------------------- responses


async def test_tool_use_reply_with_text_before_it_and_cache_tokens(
    server: AnthropicServer, make_model: Factory
) -> None:
    server.json(payload("tool_use_reply.json"))
    response = await make_model(price=(3.0, 15.0)).generate(
        ModelRequest([Message.user("Weather in SF?")], [WEATHER])
    )
    assert response.text == "I'll check the current weather in San Francisco for you."
    assert response.tool_calls == (
        ToolCall("toolu_01A09q90qw90lq917835lq9", "get_weather", {"city": "San Francisco, CA"}),
    )
    assert response.finish_reason == "tool_calls"
    assert response.usage.input_tokens == 384 + 200 + 1024  # cache writes and reads count
    assert response.usage.output_tokens == 71
    expected = (3.0 * (384 + 200 * 1.25 + 1024 * 0.1) + 15.0 * 71) / 1e6
    assert response.usage.cost == pytest.approx(expected)


class Forecast(BaseModel):
    city: str
    celsius: int


async def test_output_schema_is_a_forced_tool_and_comes_back_as_text(
    server: AnthropicServer, make_model: Factory
) -> None:
    server.json(answered_with({"city": "Paris", "celsius": 18}))
    schema = Forecast.model_json_schema()
    response = await make_model().generate(
        ModelRequest([Message.user("Paris?")], output_schema=schema)
    )
    assert json.loads(response.text) == {"city": "Paris", "celsius": 18}
    assert response.tool_calls == () and response.finish_reason == "stop"
    body = server.received[0].body
    assert body["tools"][-1]["name"] == OUTPUT_TOOL
    assert body["tools"][-1]["input_schema"] == schema
    assert body["tool_choice"] == {"type": "tool", "name": OUTPUT_TOOL}


async def test_non_object_output_schema_is_wrapped_and_unwrapped(
    server: AnthropicServer, make_model: Factory
) -> None:
    server.json(answered_with({"value": [1, 2]}))
    schema = {"type": "array", "items": {"type": "integer"}}
    response = await make_model().generate(
        ModelRequest([Message.user("Two numbers")], [WEATHER], output_schema=schema)
    )
    assert json.loads(response.text) == [1, 2]
    body = server.received[0].body
    assert body["tools"][-1]["input_schema"] == {
        "type": "object",
        "properties": {"value": schema},
        "required": ["value"],
    }
    assert body["tool_choice"] == {"type": "any"}  # act, or answer through the schema


def test_wrapped_output_schema_keeps_its_definitions_at_the_root() -> None:
    from pydantic import TypeAdapter

    schema = TypeAdapter(list[Forecast]).json_schema()
    body = AnthropicModel("claude-sonnet-4-5")._body(
        ModelRequest([Message.user("x")], output_schema=schema)
    )
    (output,) = body["tools"]
    assert output["input_schema"]["$defs"] == schema["$defs"]
    assert output["input_schema"]["properties"]["value"] == {
        "type": "array",
        "items": {"$ref": "#/$defs/Forecast"},
    }


async def test_an_error_object_in_a_200_body_is_typed(
    server: AnthropicServer, make_model: Factory
) -> None:
    server.json(payload("error_overloaded.json"))
    with pytest.raises(ServerError, match="Overloaded"):
        await make_model().generate(ModelRequest([Message.user("x")]))


async def test_malformed_body_is_a_model_output_error(
    server: AnthropicServer, make_model: Factory
) -> None:
    server.queue.append(Canned(200, "<html>gateway</html>"))
    with pytest.raises(ModelOutputError, match="not JSON"):
        await make_model().generate(ModelRequest([Message.user("x")]))
    server.json({"type": "message", "content": "not a list"})
    with pytest.raises(ModelOutputError, match="content list"):
        await make_model().generate(ModelRequest([Message.user("x")]))


# ---------------------------------------------------------------- streaming


async def test_stream_text_tool_use_split_mid_json_and_usage(
    server: AnthropicServer, make_model: Factory
) -> None:
    server.events(sse("stream_tool_use.sse"))
    items = [
        item
        async for item in make_model().stream(
            ModelRequest([Message.user("Weather in SF and Paris?")], [WEATHER])
        )
    ]
    deltas = [i.text for i in items if isinstance(i, TextDelta)]
    assert deltas == ["Okay", ", let's check the weather", " in San Francisco and Paris:"]
    final = items[-1]
    assert not isinstance(final, TextDelta)
    assert final.text == "".join(deltas)
    assert final.tool_calls == (
        ToolCall("toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather", {"city": "San Francisco, CA"}),
        ToolCall("toolu_01CCtqGaBX9LkpqVt1CFaZJb", "get_weather", {"city": "Paris"}),
    )
    assert final.finish_reason == "tool_calls"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (472, 89)
    assert server.received[0].body["stream"] is True
    assert server.received[0].headers["accept"] == "text/event-stream"


async def test_stream_plain_text(server: AnthropicServer, make_model: Factory) -> None:
    server.events(sse("stream_text.sse"))
    items = [i async for i in make_model().stream(ModelRequest([Message.user("Hi")]))]
    assert [i.text for i in items[:-1] if isinstance(i, TextDelta)] == ["Hello", "!"]
    final = items[-1]
    assert not isinstance(final, TextDelta)
    assert (final.text, final.finish_reason, final.usage.output_tokens) == ("Hello!", "stop", 15)


async def test_stream_answer_through_the_output_tool_is_text(
    server: AnthropicServer, make_model: Factory
) -> None:
    server.events(sse("stream_final_answer.sse"))
    request = ModelRequest([Message.user("Paris?")], output_schema=Forecast.model_json_schema())
    items = [i async for i in make_model().stream(request)]
    final = items[-1]
    assert not isinstance(final, TextDelta)
    assert json.loads(final.text) == {"city": "Paris", "celsius": 18}
    assert [i.text for i in items[:-1] if isinstance(i, TextDelta)] == [final.text]
    assert final.tool_calls == () and final.finish_reason == "stop"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (610, 41)


async def test_stream_answered_in_one_piece_still_works(
    server: AnthropicServer, make_model: Factory
) -> None:
    server.json(payload("text_reply.json"))  # a proxy that ignored stream=true
    items = [i async for i in make_model().stream(ModelRequest([Message.user("Hi")]))]
    assert [type(i).__name__ for i in items] == ["TextDelta", "ModelResponse"]
    assert items[0].text == "Hello! How can I help you today?"


async def test_stream_error_event_is_a_server_error(
    server: AnthropicServer, make_model: Factory
) -> None:
    server.events(sse("stream_error.sse"))
    with pytest.raises(ServerError, match="Overloaded"):
        async for _ in make_model().stream(ModelRequest([Message.user("Hi")])):
            pass


async def test_stream_cut_before_message_stop_is_an_error(
    server: AnthropicServer, make_model: Factory
) -> None:
    text = sse("stream_text.sse")
    server.events(text[: text.index("event: message_delta")])
    with pytest.raises(ServerError, match="without message_stop"):
        async for _ in make_model().stream(ModelRequest([Message.user("Hi")])):
            pass


# ---------------------------------------------------------------- errors and retries


async def test_529_overloaded_then_success_is_retried(
    server: AnthropicServer, make_model: Factory
) -> None:
    server.json(payload("error_overloaded.json"), status=529)
    server.json(payload("text_reply.json"))
    response = await make_model().generate(ModelRequest([Message.user("Hi")]))
    assert response.text.startswith("Hello")
    assert len(server.received) == 2
    assert server.received[0].body == server.received[1].body


async def test_429_honours_retry_after_then_succeeds(
    server: AnthropicServer, make_model: Factory
) -> None:
    server.json(payload("error_rate_limit.json"), 429, retry_after="0.2")
    server.json(payload("text_reply.json"))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await make_model(backoff=0.0).generate(ModelRequest([Message.user("Hi")]))
    assert loop.time() - started >= 0.2
    assert len(server.received) == 2


async def test_exhausted_429_is_a_rate_limit_error(
    server: AnthropicServer, make_model: Factory
) -> None:
    for _ in range(2):
        server.json(payload("error_rate_limit.json"), 429, retry_after="0")
    with pytest.raises(RateLimitError, match="after 2 attempts") as info:
        await make_model(max_retries=1).generate(ModelRequest([Message.user("Hi")]))
    assert info.value.status == 429
    assert "rate_limit_error" in str(info.value)


async def test_exhausted_529_is_a_server_error(
    server: AnthropicServer, make_model: Factory
) -> None:
    server.json(payload("error_overloaded.json"), status=529)
    with pytest.raises(ServerError, match="overloaded") as info:
        await make_model(max_retries=0).generate(ModelRequest([Message.user("Hi")]))
    assert info.value.status == 529


@pytest.mark.parametrize(
    ("status", "name", "error"),
    [
        (401, "error_authentication.json", AuthenticationError),
        (400, "error_prompt_too_long.json", ContextLengthError),
        (400, "error_invalid_request.json", BadRequestError),
    ],
)
async def test_client_errors_are_typed_and_not_retried(
    server: AnthropicServer,
    make_model: Factory,
    status: int,
    name: str,
    error: type[Exception],
) -> None:
    server.json(payload(name), status=status)
    with pytest.raises(error) as info:
        await make_model().generate(ModelRequest([Message.user("Hi")]))
    assert len(server.received) == 1
    assert payload(name)["error"]["message"] in str(info.value)
    assert payload(name)["request_id"] in str(info.value)  # what Anthropic's support asks for
    assert KEY not in str(info.value)


async def test_prompt_too_long_is_also_a_bad_request(
    server: AnthropicServer, make_model: Factory
) -> None:
    server.json(payload("error_prompt_too_long.json"), status=400)
    with pytest.raises(BadRequestError):
        await make_model().generate(ModelRequest([Message.user("Hi")]))


async def test_unreachable_server_is_model_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    model = AnthropicModel(
        "claude-sonnet-4-5", api_key=KEY, base_url=f"http://127.0.0.1:{port}", max_retries=1,
        backoff=0.0,
    )  # fmt: skip
    try:
        with pytest.raises(ModelUnreachableError, match=f"127.0.0.1:{port}") as info:
            await model.generate(ModelRequest([Message.user("Hi")]))
        assert KEY not in str(info.value)
    finally:
        await model.aclose()


# ---------------------------------------------------------------- keys, render, registry


async def test_missing_key_is_a_configuration_error_at_the_first_request(
    server: AnthropicServer,
) -> None:
    model = AnthropicModel("claude-sonnet-4-5", base_url=server.url)  # constructing is fine
    assert "claude-sonnet-4-5" in model.render(ModelRequest([Message.user("x")]))
    with pytest.raises(ConfigurationError, match="ANTHROPIC_API_KEY"):
        await model.generate(ModelRequest([Message.user("x")]))
    assert server.received == []


async def test_key_and_base_url_from_the_environment(
    server: AnthropicServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    server.json(payload("text_reply.json"))
    model = AnthropicModel("claude-haiku-4-5")
    try:
        await model.generate(ModelRequest([Message.user("x")]))
    finally:
        await model.aclose()
    assert server.received[0].headers["x-api-key"] == KEY


def test_render_is_the_exact_body_and_never_shows_the_key() -> None:
    model = AnthropicModel("claude-sonnet-4-5", api_key=KEY)
    request = ModelRequest(conversation(), [WEATHER])
    line, body = model.render(request).split("\n", 1)
    assert line == "POST https://api.anthropic.com/v1/messages"
    assert json.loads(body) == model._body(request)
    assert KEY not in model.render(request)
    assert KEY not in repr(model)


def test_registry_resolves_anthropic_strings(server: AnthropicServer) -> None:
    model = resolve_model("anthropic:claude-sonnet-4-5")
    assert isinstance(model, AnthropicModel)
    assert model.name == "anthropic:claude-sonnet-4-5"
    assert model.capabilities.native_tools and model.capabilities.json_schema
    other = resolve_model(f"anthropic:claude-opus-4-1@{server.url}")
    assert isinstance(other, AnthropicModel)
    assert other.url == f"{server.url}/v1/messages"
    assert other.name == f"anthropic:claude-opus-4-1@{server.url}"
    # Replaying a recorded run asks for capabilities by name: no key needed.
    assert capabilities_of("anthropic:claude-sonnet-4-5").native_tools


@pytest.mark.parametrize(
    "kwargs", [{"timeout": 0}, {"max_retries": -1}, {"backoff": -1}, {"max_tokens": 0}]
)
def test_impossible_settings_are_configuration_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        AnthropicModel("claude-sonnet-4-5", **kwargs)


# ---------------------------------------------------------------- end to end


@tool
def get_weather(city: str) -> str:
    """Current weather for a city.

    Args:
        city: The city name.
    """
    return f"{city}: 18 C, clear"


async def test_agent_runs_a_tool_call_then_answers_and_the_journal_records_it(
    server: AnthropicServer, make_model: Factory
) -> None:
    first = payload("tool_use_reply.json")
    server.json(first)
    server.json(payload("text_reply.json"))
    agent = Agent(make_model(), "Answer weather questions.", [get_weather], store=":memory:")
    result = await agent.run("Weather in SF?")
    assert result.output == "Hello! How can I help you today?"

    second = server.received[1].body
    assert second["system"].startswith("Answer weather questions.")
    assert [t["role"] for t in second["messages"]] == ["user", "assistant", "user"]
    assert second["messages"][1]["content"] == first["content"]  # the tool_use went back as is
    (returned,) = second["messages"][2]["content"]
    assert returned["type"] == "tool_result"
    assert returned["tool_use_id"] == "toolu_01A09q90qw90lq917835lq9"
    assert returned["content"] == "San Francisco, CA: 18 C, clear"
    assert returned["is_error"] is False
    assert second["tools"][0]["name"] == "get_weather"
    assert second["tools"][0]["input_schema"]["required"] == ["city"]

    events = agent.store.events(result.run_id)
    (called,) = [e for e in events if isinstance(e, ToolCalled)]
    assert called.call.name == "get_weather"
    assert called.call.arguments == {"city": "San Francisco, CA"}
    (returned_event,) = [e for e in events if isinstance(e, ToolReturned)]
    assert returned_event.result.content == "San Francisco, CA: 18 C, clear"
    responses = [e for e in events if isinstance(e, ModelResponded)]
    assert [r.response.finish_reason for r in responses] == ["tool_calls", "stop"]
    (final,) = [e for e in events if isinstance(e, FinalOutput)]
    assert final.usage.input_tokens == 384 + 200 + 1024 + 21
    assert events[0].data()["model"] == f"anthropic:claude-sonnet-4-5@{server.url}"


async def test_agent_with_an_output_type_answers_through_the_output_tool(
    server: AnthropicServer, make_model: Factory
) -> None:
    server.json(payload("tool_use_reply.json"))
    server.json(answered_with({"city": "San Francisco", "celsius": 18}))
    agent = Agent(
        make_model(), "Report weather.", [get_weather], output_type=Forecast, store=":memory:"
    )
    result = await agent.run("Weather in SF?")
    assert result.output == Forecast(city="San Francisco", celsius=18)
    for sent in server.received:
        assert sent.body["tool_choice"] == {"type": "any"}
        assert [t["name"] for t in sent.body["tools"]] == ["get_weather", OUTPUT_TOOL]
