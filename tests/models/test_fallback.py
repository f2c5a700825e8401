"""FallbackModel against fault-injecting OpenAI-compatible servers on loopback.

Each test scripts what the first endpoint does (429 with Retry-After, 5xx, 400, 401,
a content-policy refusal, a context-length error in OpenAI's real format, a hang, a
reset connection, nothing listening) in front of a second endpoint that answers, and
checks who was asked how often, what was raised and what the journal says. No
assertion on elapsed time (the benchmark measures the time to the first fallback).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from openai_faults import (
    ANSWER,
    AUTHENTICATION,
    BAD_REQUEST,
    CONTENT_POLICY,
    CONTEXT_LENGTH,
    HANG,
    RATE_LIMIT,
    RESET,
    SERVER_ERROR,
    Json,
    completion,
    refused_url,
    says,
    serving,
    status,
    stream_reset,
)

from pilothouse import Agent, Policy, ScriptedModel, tool
from pilothouse.events import (
    ModelFallback,
    ModelResponded,
    ToolCalled,
    ToolReturned,
    event_from_dict,
)
from pilothouse.exceptions import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ContentPolicyError,
    ContextLengthError,
    ModelError,
    ModelTimeoutError,
    RateLimitError,
    ServerError,
    model_error_recovery,
)
from pilothouse.messages import Message
from pilothouse.models.anthropic import AnthropicModel
from pilothouse.models.base import ModelRequest, ModelResponse, ModelSettings, TextDelta
from pilothouse.models.fallback import FallbackModel
from pilothouse.models.openai import OpenAIModel

HELLO = ModelRequest([Message.user("hello")])


class Log:
    """A `ModelLog` that keeps what it is told."""

    def __init__(self) -> None:
        self.fallbacks: list[tuple[str, str, str, int, bool]] = []
        self.routes: list[tuple[str, str, list[str]]] = []

    def fell_back(
        self, from_model: str, to_model: str, error: str, message: str, attempts: int, after: bool
    ) -> None:
        self.fallbacks.append((from_model, to_model, error, attempts, after))

    def routed(self, model: str, reason: str, tried: list[str]) -> None:
        self.routes.append((model, reason, tried))


def pair(a_url: str, b_url: str, **kwargs: Any) -> FallbackModel:
    kwargs.setdefault("retries", 2)
    kwargs.setdefault("backoff", 0.0)
    return FallbackModel(
        [OpenAIModel("a", base_url=a_url, max_retries=5), OpenAIModel("b", base_url=b_url)],
        **kwargs,
    )


# --------------------------------------------------------------------------- the taxonomy


def test_the_taxonomy_is_one_table() -> None:
    table = {
        RateLimitError: ("rate_limit", "retry"),
        ServerError: ("server_error", "retry"),
        ModelTimeoutError: ("timeout", "retry"),
        ContextLengthError: ("context_length", "fallback"),
        BadRequestError: ("bad_request", "raise"),
        AuthenticationError: ("authentication", "raise"),
        ContentPolicyError: ("content_policy", "raise"),
    }
    for cls, expected in table.items():
        assert model_error_recovery(cls("x")) == expected, cls
    assert model_error_recovery(TimeoutError()) == ("timeout", "retry")
    assert model_error_recovery(KeyError("bug")) == ("KeyError", "raise")


# --------------------------------------------------------------------------- retry, then fall back


async def test_429_with_retry_after_is_retried_on_the_same_model() -> None:
    limited = status(429, RATE_LIMIT, retry_after="0")
    with serving(says("from a"), [limited, limited, ANSWER]) as a, serving(says("from b")) as b:
        log = Log()
        response = await pair(a.url, b.url).generate_logged(HELLO, log)
    assert response.text == "from a"
    assert len(a.requests) == 3 and b.requests == []
    assert log.fallbacks == []


async def test_429_past_the_retries_falls_back_and_adapter_retries_are_off() -> None:
    with (
        serving(says("a"), [status(429, RATE_LIMIT, retry_after="0")]) as a,
        serving(says("from b")) as b,
    ):
        model = pair(a.url, b.url, retries=2)
        log = Log()
        response = await model.generate_logged(HELLO, log)
    assert response.text == "from b"
    # 1 + 2 retries of FallbackModel's; the member's own max_retries=5 is not used
    assert len(a.requests) == 3 and len(b.requests) == 1
    assert log.fallbacks == [(model.models[0].name, model.models[1].name, "rate_limit", 3, False)]


async def test_the_users_model_keeps_its_own_retries() -> None:
    mine = OpenAIModel("a", base_url="http://127.0.0.1:1/v1", max_retries=5)
    model = FallbackModel([mine, ScriptedModel(["x"])])
    assert mine.max_retries == 5
    assert getattr(model.models[0], "max_retries", None) == 0


@pytest.mark.parametrize("code", [500, 502, 503])
async def test_5xx_past_the_retries_falls_back(code: int) -> None:
    with serving(says("a"), [status(code, SERVER_ERROR)]) as a, serving(says("from b")) as b:
        log = Log()
        response = await pair(a.url, b.url, retries=1).generate_logged(HELLO, log)
    assert response.text == "from b" and len(a.requests) == 2
    assert [f[2:] for f in log.fallbacks] == [("server_error", 2, False)]


async def test_a_retry_after_beyond_the_cap_falls_back_without_waiting() -> None:
    with (
        serving(says("a"), [status(503, SERVER_ERROR, retry_after="3600")]) as a,
        serving(says("from b")) as b,
    ):
        log = Log()
        response = await pair(a.url, b.url, max_retry_after=5).generate_logged(HELLO, log)
    assert response.text == "from b" and len(a.requests) == 1
    assert [f[2:] for f in log.fallbacks] == [("server_error", 1, False)]


async def test_patience_bounds_the_waiting_on_one_model() -> None:
    # each 429 asks for 0.3 s; the third wait would pass 0.7 s of patience: next model
    with (
        serving(says("a"), [status(429, RATE_LIMIT, retry_after_ms="300")]) as a,
        serving(says("from b")) as b,
    ):
        log = Log()
        response = await pair(a.url, b.url, retries=5, patience=0.7).generate_logged(HELLO, log)
    assert response.text == "from b"
    assert len(a.requests) == 3  # waited 0.3 + 0.3; a third wait would make 0.9
    assert [f[2:] for f in log.fallbacks] == [("rate_limit", 3, False)]


async def test_context_length_falls_back_at_once() -> None:
    with serving(says("a"), [status(400, CONTEXT_LENGTH)]) as a, serving(says("long b")) as b:
        log = Log()
        response = await pair(a.url, b.url).generate_logged(HELLO, log)
    assert response.text == "long b" and len(a.requests) == 1
    assert [f[2:] for f in log.fallbacks] == [("context_length", 1, False)]


async def test_connection_refused_falls_back_at_once() -> None:
    with serving(says("from b")) as b:
        log = Log()
        response = await pair(refused_url(), b.url).generate_logged(HELLO, log)
    assert response.text == "from b"
    assert [f[2:] for f in log.fallbacks] == [("unavailable", 1, False)]


async def test_a_reset_connection_falls_back() -> None:
    with serving(says("a"), [RESET]) as a, serving(says("from b")) as b:
        log = Log()
        response = await pair(a.url, b.url).generate_logged(HELLO, log)
    assert response.text == "from b" and len(a.requests) == 1
    assert [f[2] for f in log.fallbacks] == ["unavailable"]


async def test_a_hanging_server_times_out_is_retried_then_falls_back() -> None:
    with serving(says("a"), [HANG]) as a, serving(says("from b")) as b:
        log = Log()
        model = FallbackModel(
            [OpenAIModel("a", base_url=a.url, timeout=0.3), OpenAIModel("b", base_url=b.url)],
            retries=1,
            backoff=0.0,
        )
        response = await model.generate_logged(HELLO, log)
    assert response.text == "from b"
    assert [f[2:] for f in log.fallbacks] == [("timeout", 2, False)]
    # (how many of the two requests the hung server got to read before it was stopped
    # depends on its threads, not on the model: not asserted)


class Hangs:
    """A model that never answers (an await nothing completes)."""

    name = "hangs"
    capabilities = ScriptedModel([]).capabilities

    def __init__(self) -> None:
        self.calls = 0

    async def generate(self, request: ModelRequest) -> ModelResponse:
        self.calls += 1
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    def render(self, request: ModelRequest) -> str:
        return ""


async def test_the_fallback_models_own_deadline_cuts_a_hung_attempt() -> None:
    hangs = Hangs()
    model = FallbackModel([hangs, ScriptedModel(["backup"])], retries=1, backoff=0.0, timeout=0.05)  # type: ignore[list-item]
    log = Log()
    response = await model.generate_logged(HELLO, log)
    assert response.text == "backup" and hangs.calls == 2
    assert log.fallbacks == [("hangs", "scripted", "timeout", 2, False)]


async def test_the_last_models_error_is_raised_when_every_model_fails() -> None:
    with (
        serving(says("a"), [status(503, SERVER_ERROR)]) as a,
        serving(says("b"), [status(429, RATE_LIMIT, retry_after="0")]) as b,
        pytest.raises(RateLimitError),
    ):
        await pair(a.url, b.url, retries=0).generate(HELLO)
    assert len(a.requests) == 1 and len(b.requests) == 1


# --------------------------------------------------------------------------- never fall back


@pytest.mark.parametrize(
    ("code", "body", "error"),
    [
        (400, BAD_REQUEST, BadRequestError),
        (401, AUTHENTICATION, AuthenticationError),
        (400, CONTENT_POLICY, ContentPolicyError),
    ],
)
async def test_a_bad_request_credentials_or_policy_refusal_never_falls_back(
    code: int, body: Json, error: type[ModelError]
) -> None:
    with (
        serving(says("a"), [status(code, body)]) as a,
        serving(says("from b")) as b,
        pytest.raises(error) as raised,
    ):
        await pair(a.url, b.url).generate(HELLO)
    assert type(raised.value) is error
    assert len(a.requests) == 1 and b.requests == []


def test_a_fallback_list_needs_a_model_and_sane_limits() -> None:
    with pytest.raises(ConfigurationError):
        FallbackModel([])
    with pytest.raises(ConfigurationError):
        FallbackModel([ScriptedModel(["x"])], retries=-1)
    with pytest.raises(ConfigurationError):
        FallbackModel([ScriptedModel(["x"])], timeout=0)


# --------------------------------------------------------------------------- streaming


async def test_streaming_falls_back_invisibly_before_the_first_token() -> None:
    with serving(says("a"), [status(503, SERVER_ERROR)]) as a, serving(says("hello from b")) as b:
        log = Log()
        items = [i async for i in pair(a.url, b.url, retries=0).stream_logged(HELLO, log)]
    text = "".join(i.text for i in items if isinstance(i, TextDelta))
    assert text.strip() == "hello from b"
    assert items[-1].text.strip() == "hello from b"  # type: ignore[union-attr]
    assert [f[2:] for f in log.fallbacks] == [("server_error", 1, False)]


async def test_streaming_after_the_first_token_falls_back_with_an_explicit_event() -> None:
    with (
        serving(says("a"), [stream_reset("partial answ")]) as a,
        serving(says("whole answer")) as b,
    ):
        log = Log()
        items = [i async for i in pair(a.url, b.url).stream_logged(HELLO, log)]
    deltas = [i.text for i in items if isinstance(i, TextDelta)]
    assert deltas[0] == "partial answ"  # what the reader saw before the break
    assert items[-1].text.strip() == "whole answer"  # type: ignore[union-attr]
    assert len(a.requests) == 1  # text was out: the same model is not retried
    assert [f[2:] for f in log.fallbacks] == [("server_error", 1, True)]  # cut off mid-answer


# --------------------------------------------------------------------------- in a run


def _tool_then_answer(body: Json) -> Json:
    """A good endpoint: calls `charge` until it sees the result, then answers."""
    if any(m.get("role") == "tool" for m in body["messages"]):
        return completion("charged, done", model="b-model")
    return completion(calls=[("charge", {"amount": 5})], model="b-model")


def _anthropic_answer(body: Json) -> Json:
    """Anthropic's Messages API answering once the tool result is in the conversation."""
    seen = json.dumps(body["messages"])
    assert "tool_result" in seen  # the result the first model's step produced
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "charged once, done"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 30, "output_tokens": 6},
    }


async def test_a_fallback_mid_run_repeats_no_tool_call_and_is_journaled() -> None:
    charges: list[int] = []

    @tool(effect="side_effect")
    def charge(amount: int) -> str:
        """Charge the customer."""
        charges.append(amount)
        return f"charged {amount}"

    # the OpenAI-compatible server calls the tool at step 1, then fails with 503 for good;
    # an Anthropic endpoint takes over at step 2 with the tool's result in its request
    with (
        serving(_tool_then_answer, [ANSWER, status(503, SERVER_ERROR)]) as a,
        serving(_anthropic_answer) as b,
    ):
        model = FallbackModel(
            [
                OpenAIModel("a", base_url=a.url),
                AnthropicModel("claude-haiku-4-5", api_key="k", base_url=b.root),
            ],
            retries=1,
            backoff=0.0,
        )
        agent = Agent(model, "Charge.", [charge], store=":memory:", policy=Policy.allow_all())
        result = await agent.run("charge 5")
    assert result.output == "charged once, done"
    assert charges == [5]  # the fallback did not repeat the call
    events = agent.store.events(result.run_id)
    assert sum(isinstance(e, ToolCalled) for e in events) == 1
    assert sum(isinstance(e, ToolReturned) for e in events) == 1
    [fallback] = [e for e in events if isinstance(e, ModelFallback)]
    assert (fallback.step, fallback.error, fallback.attempts) == (2, "server_error", 2)
    assert fallback.from_model.startswith("openai:a@")
    assert fallback.to_model.startswith("anthropic:claude-haiku-4-5@")
    answers = [e.response.model for e in events if isinstance(e, ModelResponded)]
    assert answers == ["b-model", "claude-haiku-4-5"]  # who answered each step
    assert len(b.requests) == 1
    # the journal's form reads back
    again = event_from_dict(fallback.to_dict())
    assert again == fallback


async def test_a_streamed_run_shows_the_fallback_between_the_deltas() -> None:
    with serving(says("a"), [stream_reset("nope")]) as a, serving(says("fine answer")) as b:
        agent = Agent(pair(a.url, b.url), "Answer.", store=":memory:")
        items = [i async for i in agent.stream("hi")]
    kinds = [
        "text" if isinstance(i, TextDelta) else i.type
        for i in items
        if isinstance(i, TextDelta) or i.type in ("model_fallback", "final")
    ]
    first_fallback = kinds.index("model_fallback")
    assert kinds[:first_fallback] == ["text"]  # the discarded text came before the event
    assert kinds[-1] == "final"
    fallback = next(i for i in items if getattr(i, "type", "") == "model_fallback")
    assert fallback.after_output is True  # type: ignore[union-attr]


async def test_a_journal_written_before_model_fallback_still_reads() -> None:
    old = {
        "type": "model_response",
        "run_id": "r",
        "seq": 3,
        "ts": 1.0,
        "step": 1,
        "response": {"text": "hi", "tool_calls": [], "usage": {}, "finish_reason": "stop"},
    }
    event = event_from_dict(old)
    assert isinstance(event, ModelResponded) and event.response.model == ""


# --------------------------------------------------------------------------- hostile servers


@pytest.mark.parametrize("asked", ["-5", "soon", "Wed, 21 Oct 2015 07:28:00 GMT", "1e308"])
async def test_a_forged_retry_after_neither_hangs_nor_crashes(asked: str) -> None:
    with (
        serving(says("a"), [status(503, SERVER_ERROR, retry_after=asked)]) as a,
        serving(says("from b")) as b,
    ):
        log = Log()
        response = await pair(a.url, b.url, retries=1, patience=0.5).generate_logged(HELLO, log)
    assert response.text == "from b"
    assert [f[2] for f in log.fallbacks] == ["server_error"]
    assert 1 <= len(a.requests) <= 2


async def test_a_megabyte_error_body_is_journaled_short() -> None:
    huge = {"error": {"message": "overloaded " * 100_000, "type": "server_error", "code": None}}
    with serving(says("a"), [status(503, huge)]) as a, serving(says("fine")) as b:
        agent = Agent(pair(a.url, b.url, retries=0), "Answer.", store=":memory:")
        result = await agent.run("hi")
    [fallback] = [e for e in agent.store.events(result.run_id) if isinstance(e, ModelFallback)]
    assert result.output == "fine" and 0 < len(fallback.message) <= 500


# --------------------------------------------------------------------------- a real backup


@pytest.mark.slow
async def test_a_503_falls_back_to_llama_cpp_pythons_real_server(
    llama_server: str, llama_api_key: str
) -> None:
    request = ModelRequest(
        [Message.user("Say hello.")], settings=ModelSettings(max_tokens=8, temperature=0.0)
    )
    with serving(says("a"), [status(503, SERVER_ERROR)]) as a:
        model = FallbackModel(
            [
                OpenAIModel("a", base_url=a.url),
                OpenAIModel("smollm2", base_url=llama_server, api_key=llama_api_key),
            ],
            retries=1,
            backoff=0.0,
        )
        log = Log()
        response = await model.generate_logged(request, log)
        streamed = [i async for i in model.stream_logged(request, log)]
    assert response.text and response.usage.output_tokens >= 1  # real tokens from llama.cpp
    assert len(a.requests) == 4  # 2 attempts for generate, 2 for stream
    assert [f[2:] for f in log.fallbacks] == [("server_error", 2, False)] * 2
    final = streamed[-1]
    assert isinstance(final, ModelResponse) and final.text  # (the server's KV cache may differ)


async def test_a_run_with_a_fallback_replays_from_its_journal(tmp_path: Any) -> None:
    from pilothouse.runtime.replay import export_journal
    from pilothouse.testing import replay_async

    db = tmp_path / "j.db"
    with (
        serving(_tool_then_answer, [ANSWER, status(503, SERVER_ERROR)]) as a,
        serving(_tool_then_answer) as b,
    ):
        agent = Agent(pair(a.url, b.url, retries=0), "Charge.", [_charge()], store=str(db))
        result = await agent.run("charge 5")
    assert result.ok
    cassette = tmp_path / "run.jsonl"
    export_journal(str(db), result.run_id, str(cassette))
    offline = Agent(pair("http://127.0.0.1:1/v1", "http://127.0.0.1:1/v1"), "Charge.",
                    [_charge()], store=":memory:")  # fmt: skip
    report = await replay_async(offline, cassette)
    assert report.ok, report.summary()  # the fallback is on the record, not re-enacted


def _charge() -> Any:
    @tool
    def charge(amount: int) -> str:
        """Charge the customer (read-only here: a replay serves its recorded result)."""
        return f"charged {amount}"

    return charge


def _anthropic_error(kind: str, message: str = "m") -> Json:
    return {"type": "error", "error": {"type": kind, "message": message}}


@pytest.mark.parametrize(
    ("code", "body", "kind"),
    [
        (408, _anthropic_error("timeout_error"), "timeout"),
        (429, _anthropic_error("rate_limit_error"), "rate_limit"),
        (529, _anthropic_error("overloaded_error"), "server_error"),
        (400, _anthropic_error("invalid_request_error", "prompt is too long: 210000 tokens"),
         "context_length"),
        (401, _anthropic_error("authentication_error"), "authentication"),
    ],
)  # fmt: skip
async def test_both_adapters_meet_the_one_taxonomy(code: int, body: Json, kind: str) -> None:
    """Anthropic's errors, in its own format, land in the same kinds as OpenAI's."""
    with serving(says("x"), [status(code, body)]) as server:
        model = AnthropicModel("claude", api_key="k", base_url=server.root, max_retries=0)
        with pytest.raises(ModelError) as raised:
            await model.generate(HELLO)
    assert model_error_recovery(raised.value)[0] == kind
