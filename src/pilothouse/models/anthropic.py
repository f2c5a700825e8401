"""`AnthropicModel`: Claude through Anthropic's Messages API, over httpx.

Like `OpenAIModel`, it speaks the wire format directly (``POST /v1/messages``)
instead of depending on the ``anthropic`` SDK, so the request is visible
(`render`), the errors are ours (`pilothouse.exceptions`) and retries are bounded.

How pilothouse's provider-neutral conversation maps onto the Messages API:

- leading system messages become the top-level ``system`` string; a system message
  later in the conversation becomes user text at its place, so its position is kept;
- an assistant's tool calls become ``tool_use`` blocks, and tool messages become
  ``tool_result`` blocks (with ``is_error``) in a user turn;
- turns of the same role are merged, because the API requires user and assistant
  to alternate (several tool results therefore share one user turn, as Anthropic
  asks, with the results first and any text after them);
- ``tool_choice`` ``auto``/``required``/``none`` is ``{"type": "auto"|"any"|"none"}``.

Structured output: the Messages API has no JSON-schema response format, so an
``output_schema`` is offered as one extra tool, ``final_answer``, whose
``input_schema`` is the schema (a non-object schema is wrapped in ``{"value": ...}``
because ``input_schema`` must describe an object). With no other tools (or
``tool_choice="none"``) that tool is forced; beside real tools ``tool_choice``
becomes ``{"type": "any"}``: the model must either act or answer through the
schema. Its input comes back as the response *text* (JSON), which is what the
agent loop validates, and never as a tool call.

The API key (``api_key=`` or ``$ANTHROPIC_API_KEY``) is checked at the first
request, not at construction: `render`, `capabilities` and replaying a recorded run
need no key. Anthropic ignores ``seed``; it is not sent.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from pilothouse._version import __version__
from pilothouse.exceptions import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ContextLengthError,
    ModelError,
    ModelOutputError,
    ModelTimeoutError,
    ModelUnreachableError,
    RateLimitError,
    ServerError,
)
from pilothouse.messages import Message, ToolCall, Usage
from pilothouse.models._http import HttpModel, sse_data
from pilothouse.models._http import error_detail as _error_detail
from pilothouse.models._http import excerpt as _excerpt
from pilothouse.models._http import parse_arguments as _parse_arguments
from pilothouse.models._http import raw_if_broken as _raw_if_broken
from pilothouse.models.base import (
    Capabilities,
    ModelRequest,
    ModelResponse,
    StreamItem,
    TextDelta,
    ToolSpec,
)

__all__ = [
    "ANTHROPIC_VERSION",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_TOKENS",
    "OUTPUT_TOOL",
    "AnthropicModel",
]

DEFAULT_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # the API requires max_tokens; enough for a step, not a book
OUTPUT_TOOL = "final_answer"  # the tool an output_schema is offered as
# Prompt-cache pricing relative to the input price (Anthropic's 5-minute cache).
_CACHE_WRITE_FACTOR = 1.25
_CACHE_READ_FACTOR = 0.1
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

Json = dict[str, Any]


# ---------------------------------------------------------------- request conversion


def _merge_turn(turns: list[Json], role: str, blocks: list[Json]) -> None:
    """Append `blocks` as a `role` turn, merged into the previous turn of that role."""
    if not blocks:
        return  # the API rejects empty turns and empty text blocks
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": list(blocks)})


def _message_blocks(message: Message) -> tuple[str, list[Json]]:
    """The role and content blocks one (non-leading-system) message becomes."""
    if message.role == "tool":
        result: Json = {
            "type": "tool_result",
            "tool_use_id": message.tool_call_id or "",
            "content": message.content,
            "is_error": message.is_error,
        }
        return "user", [result]
    blocks: list[Json] = [{"type": "text", "text": message.content}] if message.content else []
    if message.role == "assistant":
        blocks.extend(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
            for call in message.tool_calls
        )
        return "assistant", blocks
    return "user", blocks  # user text, and a system message in mid-conversation


def _convert_messages(messages: list[Message]) -> tuple[str, list[Json]]:
    """The top-level ``system`` string and the alternating ``messages`` list."""
    leading = 0
    while leading < len(messages) and messages[leading].role == "system":
        leading += 1
    system = "\n\n".join(m.content for m in messages[:leading] if m.content)
    turns: list[Json] = []
    for message in messages[leading:]:
        role, blocks = _message_blocks(message)
        _merge_turn(turns, role, blocks)
    for turn in turns:
        if turn["role"] == "user":
            # Anthropic wants a user turn's tool results before any text in it.
            turn["content"].sort(key=lambda block: block["type"] != "tool_result")
    return system, turns


@dataclass(slots=True, frozen=True)
class _OutputTool:
    """The tool an output schema is offered as; `wrapped`: the schema is `value` in it."""

    name: str
    input_schema: Json
    wrapped: bool

    def answer(self, arguments: dict[str, Any]) -> str:
        """The JSON text of the answer given as this tool's input."""
        value = arguments.get("value") if self.wrapped else arguments
        return json.dumps(value, ensure_ascii=False)


def _output_tool(request: ModelRequest) -> _OutputTool | None:
    """The output tool `request` offers, if any (``required`` asks for a real tool)."""
    schema = request.output_schema
    if schema is None or request.tool_choice == "required":
        return None
    taken = {t.name for t in request.tools}
    name = OUTPUT_TOOL
    while name in taken:
        name += "_"
    if schema.get("type") == "object":
        return _OutputTool(name, schema, False)
    inner = {k: v for k, v in schema.items() if k != "$defs"}
    wrapper: Json = {
        "type": "object",
        "properties": {"value": inner},
        "required": ["value"],
    }
    if "$defs" in schema:  # `#/$defs/...` references must still resolve from the root
        wrapper["$defs"] = schema["$defs"]
    return _OutputTool(name, wrapper, True)


def _request_id(text: str) -> str | None:
    """The ``request_id`` Anthropic puts in error bodies (what its support asks for)."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    value = data.get("request_id") if isinstance(data, dict) else None
    return str(value) if value else None


def _tool(spec: ToolSpec) -> Json:
    return {"name": spec.name, "description": spec.description, "input_schema": spec.parameters}


# ---------------------------------------------------------------- response pieces


@dataclass(slots=True)
class _Block:
    """A content block of a streamed message, assembled from its deltas."""

    type: str
    id: str = ""
    name: str = ""
    text: list[str] = field(default_factory=list)
    input: Any = None  # a complete `input` (non-streamed blocks)


class AnthropicModel(HttpModel):
    """Claude (or any server speaking Anthropic's Messages API) behind `Model`.

    >>> model = AnthropicModel("claude-sonnet-4-5")  # doctest: +SKIP
    """

    capabilities = Capabilities(native_tools=True, json_schema=True, grammar=False, streaming=True)
    retry_statuses = frozenset({408, 409, 429})  # and every 5xx, 529 (overloaded) included
    base_url_env = "ANTHROPIC_BASE_URL"

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        timeout: float = 120.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        anthropic_version: str = ANTHROPIC_VERSION,
        price: tuple[float, float] | None = None,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        """`price` is (input, output) USD per million tokens; cache tokens are priced from it."""
        if not model:
            raise ConfigurationError("AnthropicModel needs a model name, e.g. 'claude-sonnet-4-5'")
        super().__init__(
            timeout=timeout, max_retries=max_retries, backoff=backoff, http_client=http_client
        )
        if max_tokens < 1:
            raise ConfigurationError(f"max_tokens must be 1 or more, got {max_tokens!r}")
        self._model = model
        self.base_url = (
            base_url or os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL
        ).rstrip("/")
        try:
            httpx.URL(self.base_url).host  # noqa: B018 - validates the URL
        except httpx.InvalidURL as exc:
            raise ConfigurationError(
                f"invalid base URL {self.base_url!r} ({exc}): pass base_url= or set "
                "ANTHROPIC_BASE_URL to something like 'https://api.anthropic.com'"
            ) from exc
        self._api_key = api_key or None
        self.max_tokens = max_tokens
        self.anthropic_version = anthropic_version
        self.price = price
        self._extra_headers = dict(headers or {})

    def __repr__(self) -> str:
        return f"AnthropicModel({self._model!r}, base_url={self.base_url!r})"

    @property
    def name(self) -> str:
        """`anthropic:<model>`, plus `@<base_url>` off api.anthropic.com (registry spelling)."""
        if self.base_url == DEFAULT_BASE_URL:
            return f"anthropic:{self._model}"
        return f"anthropic:{self._model}@{self.base_url}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/v1/messages"

    # ------------------------------------------------------------------ requests

    def _body(self, request: ModelRequest, *, stream: bool = False) -> Json:
        """The JSON body for `request`, exactly as it goes on the wire."""
        system, turns = _convert_messages(request.messages)
        settings = request.settings
        body: Json = {
            "model": self._model,
            "max_tokens": settings.max_tokens or self.max_tokens,
        }
        if system:
            body["system"] = system
        body["messages"] = turns
        tools = [_tool(t) for t in request.tools]
        choice: Json = {
            "type": {"auto": "auto", "required": "any", "none": "none"}[request.tool_choice]
        }
        output = _output_tool(request)
        if output is not None:
            tools.append(
                {
                    "name": output.name,
                    "description": "Give your final answer: call this exactly once, with the "
                    "answer as its input, when you are done.",
                    "input_schema": output.input_schema,
                }
            )
            if request.tools and request.tool_choice == "auto":
                choice = {"type": "any"}  # act, or answer through the schema
            else:
                choice = {"type": "tool", "name": output.name}
        if tools:
            body["tools"] = tools
            body["tool_choice"] = choice
        if settings.temperature is not None:
            body["temperature"] = settings.temperature
        if settings.top_p is not None:
            body["top_p"] = settings.top_p
        if stream:
            body["stream"] = True
        return body

    def _headers(self, *, stream: bool) -> dict[str, str]:
        key = self._api_key or os.environ.get("ANTHROPIC_API_KEY")
        if not key:
            raise ConfigurationError(
                f"no API key for {self.url}: set the ANTHROPIC_API_KEY environment variable "
                "(or pass api_key=... to AnthropicModel)"
            )
        headers = {
            "x-api-key": key,
            "anthropic-version": self.anthropic_version,
            "content-type": "application/json",
            "accept": "text/event-stream" if stream else "application/json",
            "user-agent": f"pilothouse/{__version__}",
        }
        headers.update(self._extra_headers)
        return headers

    # ------------------------------------------------------------------ errors

    def _http_error(
        self, status: int, text: str, attempts: int, *, event: bool = False
    ) -> ModelError:
        """The typed error for a final HTTP failure (or an `error` event), with its fix."""
        message, kind = _error_detail(text)
        where = f"{self.url} (model {self._model!r})"
        tried = f" after {attempts} attempts" if attempts > 1 else ""
        request_id = _request_id(text)
        ref = f" [request_id {request_id}]" if request_id else ""
        said = f"{message} ({kind}){ref}" if kind else f"{message}{ref}"
        # An `error` event arrives inside a 200 response; its status is the one its type implies.
        how = f"an error event, type {kind}" if event else f"HTTP {status}"
        if status in (401, 403) or kind in ("authentication_error", "permission_error"):
            return AuthenticationError(
                f"{where} refused the credentials ({how}): {said}. Set "
                "ANTHROPIC_API_KEY (or api_key=) to a key allowed to use this model",
                status=status,
                body=text,
            )
        if status == 429 or kind == "rate_limit_error":
            return RateLimitError(
                f"{where} is rate limiting ({how}){tried}: {said}. Wait and retry, run "
                "fewer requests at once, or raise max_retries / check the account's limits",
                status=status,
                body=text,
            )
        if status == 408:
            return ModelTimeoutError(
                f"{where} timed out the request ({how}){tried}: {said}. Retry, or raise "
                "timeout / max_retries",
                status=status,
                body=text,
            )
        if status >= 500 or kind in ("overloaded_error", "api_error"):
            return ServerError(
                f"{where} failed with {how}{tried}: {said}. This is Anthropic's side "
                "(529 means overloaded): retry later or raise max_retries",
                status=status,
                body=text,
            )
        if "prompt is too long" in message.lower() or status == 413:
            return ContextLengthError(
                f"the conversation does not fit the context window of {self._model!r} "
                f"({how}): {said}. Shorten the history (compaction), lower "
                "max_tokens, or use a model with a longer context",
                status=status,
                body=text,
            )
        fix = (
            "check the model name and that base_url is the API root "
            "(e.g. https://api.anthropic.com, without /v1)"
            if status == 404
            else "change what the API names above"
        )
        return BadRequestError(
            f"{where} rejected the request ({how}): {said}. Fix: {fix}",
            status=status,
            body=text,
        )

    # ------------------------------------------------------------------ responses

    def _usage(self, data: Any) -> Usage:
        """Usage with cache writes and reads counted as input (and priced as Anthropic does)."""
        if not isinstance(data, dict):
            return Usage(requests=1)
        plain = int(data.get("input_tokens") or 0)
        written = int(data.get("cache_creation_input_tokens") or 0)
        read = int(data.get("cache_read_input_tokens") or 0)
        output_tokens = int(data.get("output_tokens") or 0)
        cost = None
        if self.price is not None:
            price_in, price_out = self.price
            cost = (
                price_in * (plain + written * _CACHE_WRITE_FACTOR + read * _CACHE_READ_FACTOR)
                + price_out * output_tokens
            ) / 1_000_000
        return Usage(plain + written + read, output_tokens, cost, requests=1)

    def _response(
        self,
        blocks: list[_Block],
        usage: Any,
        model: str,
        stop_reason: Any,
        output: _OutputTool | None,
    ) -> ModelResponse:
        """The `ModelResponse` for a message's content blocks (complete or streamed)."""
        text = "".join("".join(b.text) for b in blocks if b.type == "text")
        calls: list[ToolCall] = []
        answer: str | None = None
        for index, block in enumerate(blocks):
            if block.type != "tool_use":
                continue
            raw: Any = block.input if block.input is not None else "".join(block.text)
            arguments, error = _parse_arguments(raw)
            if output is not None and block.name == output.name:
                # A broken answer goes back as text, so output validation tells the model.
                answer = output.answer(arguments) if error is None else str(raw)
                continue
            calls.append(
                ToolCall(
                    block.id or f"toolu_{index}",
                    block.name,
                    arguments,
                    error,
                    _raw_if_broken(raw, error),
                )
            )
        finish = _FINISH_REASONS.get(str(stop_reason), stop_reason)
        if answer is not None and not calls:
            text, finish = answer, "stop"
        return ModelResponse(
            text=text,
            tool_calls=tuple(calls),
            usage=self._usage(usage),
            model=model,
            finish_reason=str(finish) if finish is not None else None,
        )

    def _load(self, text: str, what: str) -> Json:
        """A JSON object from the API, or `ModelOutputError` (an `error` object raises)."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ModelOutputError(
                f"{self.url} sent {what} that is not JSON ({exc}): {_excerpt(text)!r}. Check "
                "that base_url points at Anthropic's Messages API",
                body=text,
            ) from exc
        if not isinstance(data, dict):
            raise ModelOutputError(
                f"{self.url} sent {what} that is not a JSON object: {_excerpt(text)!r}",
                body=text,
            )
        if data.get("type") == "error":
            error = data.get("error")
            kind = str(error.get("type") or "") if isinstance(error, dict) else ""
            status = {"overloaded_error": 529, "rate_limit_error": 429, "api_error": 500}
            raise self._http_error(status.get(kind, 400), text, 1, event=True)
        return data

    def _parse_message(self, text: str, request: ModelRequest) -> ModelResponse:
        """A `ModelResponse` from a complete ``message`` body."""
        data = self._load(text, "a body")
        content = data.get("content")
        if data.get("type") != "message" or not isinstance(content, list):
            raise ModelOutputError(
                f"{self.url} answered without a message's content list: {_excerpt(text)!r}. "
                "Check that base_url points at Anthropic's Messages API",
                body=text,
            )
        blocks: list[_Block] = []
        for raw in content:
            if not isinstance(raw, dict):
                raise ModelOutputError(
                    f"{self.url} sent a content block that is not an object: {raw!r}", body=text
                )
            kind = str(raw.get("type") or "")
            if kind == "text":
                blocks.append(_Block(kind, text=[str(raw.get("text") or "")]))
            elif kind == "tool_use":
                blocks.append(
                    _Block(kind, str(raw.get("id") or ""), str(raw.get("name") or ""),
                           input=raw.get("input") if raw.get("input") is not None else {})
                )  # fmt: skip
        return self._response(
            blocks,
            data.get("usage"),
            str(data.get("model") or self._model),
            data.get("stop_reason"),
            _output_tool(request),
        )

    # ------------------------------------------------------------------ the protocol

    async def generate(self, request: ModelRequest) -> ModelResponse:
        """Answer one request with a single POST (plus bounded retries)."""
        response = await self._send(self._body(request), stream=False)
        return self._parse_message(response.text, request)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]:
        """Yield `TextDelta`s as they arrive, then one complete `ModelResponse` with usage.

        Retries happen only before the first byte: once text has been yielded, a
        broken stream raises `ModelUnreachableError` instead of silently restarting.
        An answer given through the output tool is yielded as one delta when complete.
        """
        response = await self._send(self._body(request, stream=True), stream=True)
        try:
            if "text/event-stream" not in response.headers.get("content-type", ""):
                complete = self._parse_message((await response.aread()).decode(), request)
                if complete.text:
                    yield TextDelta(complete.text)
                yield complete
                return
            async for item in self._read_events(response, request):
                yield item
        finally:
            await response.aclose()

    async def _read_events(
        self, response: httpx.Response, request: ModelRequest
    ) -> AsyncIterator[StreamItem]:
        blocks: dict[int, _Block] = {}
        usage: Json = {}
        model = self._model
        stop_reason: Any = None
        finished = False
        output = _output_tool(request)
        streamed = 0
        try:
            async for data in sse_data(response):
                event = self._load(data, "an event")
                kind = event.get("type")
                if kind == "message_start":
                    message = event.get("message") or {}
                    model = str(message.get("model") or model)
                    usage.update(message.get("usage") or {})
                elif kind == "content_block_start":
                    raw = event.get("content_block") or {}
                    blocks[int(event.get("index", len(blocks)))] = _Block(
                        str(raw.get("type") or ""), str(raw.get("id") or ""),
                        str(raw.get("name") or ""),
                    )  # fmt: skip
                elif kind == "content_block_delta":
                    block = blocks.get(int(event.get("index", -1)))
                    delta = event.get("delta") or {}
                    if block is None:
                        raise ModelOutputError(
                            f"{self.url} streamed a delta for a block it never started: "
                            f"{_excerpt(data)!r}",
                            body=data,
                        )
                    if delta.get("type") == "text_delta" and block.type == "text":
                        piece = str(delta.get("text") or "")
                        if piece:
                            block.text.append(piece)
                            streamed += len(piece)
                            yield TextDelta(piece)
                    elif delta.get("type") == "input_json_delta" and block.type == "tool_use":
                        block.text.append(str(delta.get("partial_json") or ""))
                elif kind == "content_block_stop":
                    block = blocks.get(int(event.get("index", -1)))
                    if block is not None and output is not None and block.name == output.name:
                        arguments, error = _parse_arguments("".join(block.text))
                        if error is None:
                            yield TextDelta(output.answer(arguments))
                elif kind == "message_delta":
                    stop_reason = (event.get("delta") or {}).get("stop_reason") or stop_reason
                    # Counts here are cumulative: they replace message_start's.
                    usage.update(
                        {k: v for k, v in (event.get("usage") or {}).items() if v is not None}
                    )
                elif kind == "message_stop":
                    finished = True
                    break
                # `ping` and event types added later are ignored, as Anthropic asks.
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise ModelUnreachableError(
                f"the stream from {self.url} broke after {streamed} characters "
                f"({type(exc).__name__}: {exc}). Retry the step"
            ) from exc
        if not finished:
            raise ServerError(
                f"the stream from {self.url} ended without message_stop after {streamed} "
                "characters: the answer is incomplete. Retry the step"
            )
        yield self._response([blocks[i] for i in sorted(blocks)], usage, model, stop_reason, output)

    def render(self, request: ModelRequest) -> str:
        """The request line and JSON body `generate` would send; the API key is never shown."""
        body = json.dumps(self._body(request), indent=2, ensure_ascii=False)
        return f"POST {self.url}\n{body}"
