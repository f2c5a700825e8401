"""`OpenAIModel`: any OpenAI-compatible chat-completions endpoint over httpx.

One adapter covers api.openai.com and the servers that copy its API (vLLM,
llama.cpp's servers, Ollama, LM Studio, proxies). It speaks the wire format
directly instead of depending on the `openai` SDK, so the request is visible
(`render`), the errors are ours (`pilothouse.exceptions`), and retries are bounded.

Where compatible servers differ from OpenAI, the adapter sends the OpenAI form
first and downgrades once, only when the server rejects the field:

- ``stream_options`` (needed for usage while streaming) is dropped when a
  streaming request is refused with HTTP 400/422;
- ``response_format={"type": "json_schema", ...}`` becomes
  ``{"type": "json_object", "schema": ...}`` (the form llama-cpp-python's server
  accepts) when the server's error names ``response_format``.

Each downgrade is remembered per instance, so it costs one extra request at most.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from pilothouse._version import __version__
from pilothouse.exceptions import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ContentPolicyError,
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
from pilothouse.models._http import retry_after as _retry_after  # noqa: F401 - the old name
from pilothouse.models.base import (
    Capabilities,
    ModelRequest,
    ModelResponse,
    StreamItem,
    TextDelta,
)

__all__ = ["DEFAULT_BASE_URL", "OpenAIModel"]

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_OFFICIAL_HOST = "api.openai.com"
_CONTEXT_PATTERN = re.compile(
    r"context[ _]length|context window|context size|maximum context|too many tokens",
    re.IGNORECASE,
)

Json = dict[str, Any]


def _is_context_error(message: str, code: str | None) -> bool:
    return code == "context_length_exceeded" or bool(_CONTEXT_PATTERN.search(message))


_POLICY_CODES = frozenset({"content_policy_violation", "content_filter"})
_POLICY_PATTERN = re.compile(r"content (management )?policy|safety system", re.IGNORECASE)


def _is_policy_error(message: str, code: str | None) -> bool:
    return code in _POLICY_CODES or bool(_POLICY_PATTERN.search(message))


def _content_text(content: Any) -> str:
    """Message content as text; some servers send a list of typed parts instead of a string."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _message_to_openai(message: Message) -> Json:
    """One pilothouse `Message` in the chat-completions wire format."""
    if message.role == "tool":
        out: Json = {"role": "tool", "content": message.content}
        if message.tool_call_id is not None:
            out["tool_call_id"] = message.tool_call_id
        return out
    out = {"role": message.role, "content": message.content}
    if message.name is not None:
        out["name"] = message.name
    if message.role == "assistant" and message.tool_calls:
        # OpenAI wants null, not "", as the content of a pure tool-call turn.
        out["content"] = message.content or None
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {
                    "name": call.name,
                    "arguments": json.dumps(call.arguments, ensure_ascii=False),
                },
            }
            for call in message.tool_calls
        ]
    return out


@dataclass(slots=True)
class _PartialCall:
    """A tool call being assembled from streamed deltas."""

    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class OpenAIModel(HttpModel):
    """A model behind an OpenAI-compatible ``/chat/completions`` endpoint.

    >>> model = OpenAIModel("smollm2", base_url="http://127.0.0.1:8080/v1")  # doctest: +SKIP
    """

    capabilities = Capabilities(native_tools=True, json_schema=True, grammar=False, streaming=True)
    base_url_env = "OPENAI_BASE_URL"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        price: tuple[float, float] | None = None,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        if not model:
            raise ConfigurationError("OpenAIModel needs a model name, e.g. 'gpt-4o-mini'")
        super().__init__(
            timeout=timeout, max_retries=max_retries, backoff=backoff, http_client=http_client
        )
        self._model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip(
            "/"
        )
        try:
            host = httpx.URL(self.base_url).host
        except httpx.InvalidURL as exc:
            raise ConfigurationError(
                f"invalid base URL {self.base_url!r} ({exc}): pass base_url= or set "
                "OPENAI_BASE_URL to something like 'http://127.0.0.1:8080/v1'"
            ) from exc
        self._api_key = api_key or os.environ.get("OPENAI_API_KEY") or None
        if host == _OFFICIAL_HOST and self._api_key is None:
            raise AuthenticationError(
                f"no API key for {self.base_url}: set the OPENAI_API_KEY environment variable "
                "(or pass api_key=...), or point base_url / OPENAI_BASE_URL at a local "
                "OpenAI-compatible server, which needs no key"
            )
        self.price = price
        self._extra_headers = dict(headers or {})
        # Downgrades learnt from this server's rejections (see the module docstring).
        self._send_stream_options = True
        self._schema_as_json_object = False
        self._warned_no_stream_usage = False

    def __repr__(self) -> str:
        return f"OpenAIModel({self._model!r}, base_url={self.base_url!r})"

    @property
    def name(self) -> str:
        """`openai:<model>`, plus `@<base_url>` off api.openai.com, as the registry spells it."""
        if self.base_url == DEFAULT_BASE_URL:
            return f"openai:{self._model}"
        return f"openai:{self._model}@{self.base_url}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    # ------------------------------------------------------------------ requests

    def _body(self, request: ModelRequest, *, stream: bool = False) -> Json:
        """The JSON body for `request`, exactly as it goes on the wire."""
        body: Json = {
            "model": self._model,
            "messages": [_message_to_openai(m) for m in request.messages],
        }
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    },
                }
                for t in request.tools
            ]
            if request.tool_choice == "required" and len(request.tools) == 1:
                # Same meaning for OpenAI, and the only forced form llama-cpp-python's
                # server understands ("required" fails there).
                body["tool_choice"] = {
                    "type": "function",
                    "function": {"name": request.tools[0].name},
                }
            else:
                body["tool_choice"] = request.tool_choice
        settings = request.settings
        for key, value in (
            ("temperature", settings.temperature),
            ("max_tokens", settings.max_tokens),
            ("seed", settings.seed),
            ("top_p", settings.top_p),
        ):
            if value is not None:
                body[key] = value
        if request.output_schema is not None:
            if self._schema_as_json_object:
                body["response_format"] = {"type": "json_object", "schema": request.output_schema}
            else:
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "output", "schema": request.output_schema},
                }
        if stream:
            body["stream"] = True
            if self._send_stream_options:
                body["stream_options"] = {"include_usage": True}
        return body

    def _headers(self, *, stream: bool) -> dict[str, str]:
        headers = {
            "User-Agent": f"pilothouse/{__version__}",
            "Accept": "text/event-stream" if stream else "application/json",
        }
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        headers.update(self._extra_headers)
        return headers

    # ------------------------------------------------------------------ errors

    def _http_error(self, status: int, text: str, attempts: int) -> ModelError:
        """The typed error for a final HTTP failure, with cause, fix, status and body."""
        message, code = _error_detail(text)
        where = f"{self.url} (model {self._model!r})"
        tried = f" after {attempts} attempts" if attempts > 1 else ""
        if status in (401, 403):
            return AuthenticationError(
                f"{where} refused the credentials (HTTP {status}): {message}. Set OPENAI_API_KEY "
                "(or api_key=) to a key valid for this endpoint",
                status=status,
                body=text,
            )
        if status == 429:
            return RateLimitError(
                f"{where} is rate limiting (HTTP 429){tried}: {message}. Wait and retry, run "
                "fewer requests at once, or raise max_retries / check the account's quota",
                status=status,
                body=text,
            )
        if status == 408:
            return ModelTimeoutError(
                f"{where} timed out the request (HTTP 408){tried}: {message}. Check that the "
                "server is not overloaded, or raise timeout / max_retries",
                status=status,
                body=text,
            )
        if status >= 500:
            return ServerError(
                f"{where} failed with HTTP {status}{tried}: {message}. This is the server's "
                "fault: retry later, or check the server's logs if you run it",
                status=status,
                body=text,
            )
        if _is_context_error(message, code):
            return ContextLengthError(
                f"the conversation does not fit the context window of {self._model!r} "
                f"(HTTP {status}): {message}. Shorten the history (compaction), lower "
                "max_tokens, or use a model with a longer context",
                status=status,
                body=text,
            )
        if _is_policy_error(message, code):
            return ContentPolicyError(
                f"{where} refused the request under its content policy (HTTP {status}): "
                f"{message}. Rephrase the request; another model is not asked",
                status=status,
                body=text,
            )
        if status == 404:
            fix = (
                "check the model name and that the base URL ends with the API prefix "
                "(usually /v1); set OPENAI_BASE_URL or base_url="
            )
        else:
            fix = "change what the server names above (a field this server does not support?)"
        return BadRequestError(
            f"{where} rejected the request (HTTP {status}): {message}. Fix: {fix}",
            status=status,
            body=text,
        )

    def _downgrade(self, body: Json, status: int, text: str) -> Json | None:
        """A body without the field this server just rejected, or None if that was not it."""
        message, code = _error_detail(text)
        if status not in (400, 422, 500) or _is_context_error(message, code):
            return None
        lowered = text.lower()
        if "stream_options" in body and status in (400, 422):
            return {k: v for k, v in body.items() if k != "stream_options"}
        response_format = body.get("response_format")
        if (
            isinstance(response_format, dict)
            and response_format.get("type") == "json_schema"
            and ("response_format" in lowered or "json_schema" in lowered)
        ):
            schema = response_format["json_schema"]["schema"]
            return {**body, "response_format": {"type": "json_object", "schema": schema}}
        return None

    def _remember_downgrades(self, original: Json, sent: Json) -> None:
        """Keep the compatible form once it worked, so the next call needs no rejection."""
        if "stream_options" in original and "stream_options" not in sent:
            self._send_stream_options = False
        if original.get("response_format") != sent.get("response_format"):
            self._schema_as_json_object = True

    # ------------------------------------------------------------------ responses

    def _usage(self, data: Any) -> Usage:
        if not isinstance(data, dict):
            return Usage(requests=1)
        input_tokens = int(data.get("prompt_tokens") or 0)
        output_tokens = int(data.get("completion_tokens") or 0)
        cost = None
        if self.price is not None:
            cost = (input_tokens * self.price[0] + output_tokens * self.price[1]) / 1_000_000
        return Usage(input_tokens, output_tokens, cost, requests=1)

    def _parse_completion(self, text: str) -> ModelResponse:
        """A `ModelResponse` from a chat.completion body; malformed bodies are the server's."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ModelOutputError(
                f"{self.url} answered with a body that is not JSON ({exc}): "
                f"{_excerpt(text)!r}. Check that base_url points at an OpenAI-compatible API",
                body=text,
            ) from exc
        if not isinstance(data, dict):
            raise ModelOutputError(
                f"{self.url} answered with JSON that is not a chat completion: "
                f"{_excerpt(text)!r}. Check that base_url points at an OpenAI-compatible API",
                body=text,
            )
        if data.get("error"):
            detail, _ = _error_detail(text)
            raise ServerError(
                f"{self.url} answered 2xx with an error: {detail}. Retry, or check the server",
                body=text,
            )
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise ModelOutputError(
                f"{self.url} answered without choices: {_excerpt(text)!r}. Check that base_url "
                "points at a chat-completions API",
                body=text,
            )
        choice = choices[0]
        message = choice.get("message") or {}
        raw_calls = message.get("tool_calls") or []
        if not raw_calls and isinstance(message.get("function_call"), dict):
            raw_calls = [{"id": "", "function": message["function_call"]}]  # legacy servers
        calls: list[ToolCall] = []
        for index, raw in enumerate(raw_calls):
            function = raw.get("function") or {}
            arguments, error = _parse_arguments(function.get("arguments"))
            calls.append(
                ToolCall(
                    str(raw.get("id") or f"call_{index}"),
                    str(function.get("name") or ""),
                    arguments,
                    error,
                    _raw_if_broken(function.get("arguments"), error),
                )
            )
        return ModelResponse(
            text=_content_text(message.get("content")),
            tool_calls=tuple(calls),
            usage=self._usage(data.get("usage")),
            model=str(data.get("model") or self._model),
            finish_reason=choice.get("finish_reason"),
        )

    # ------------------------------------------------------------------ the protocol

    async def generate(self, request: ModelRequest) -> ModelResponse:
        """Answer one request with a single POST (plus bounded retries)."""
        response = await self._send(self._body(request), stream=False)
        return self._parse_completion(response.text)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]:
        """Yield `TextDelta`s as they arrive, then one complete `ModelResponse` with usage.

        Retries happen only before the first byte: once text has been yielded, a
        broken stream raises `ModelUnreachableError` instead of silently restarting.
        """
        response = await self._send(self._body(request, stream=True), stream=True)
        try:
            if "text/event-stream" not in response.headers.get("content-type", ""):
                # The server ignored stream=true and answered in one piece.
                complete = self._parse_completion((await response.aread()).decode())
                if complete.text:
                    yield TextDelta(complete.text)
                yield complete
                return
            async for item in self._read_events(response):
                yield item
        finally:
            await response.aclose()

    async def _read_events(self, response: httpx.Response) -> AsyncIterator[StreamItem]:
        text: list[str] = []
        calls: dict[int, _PartialCall] = {}
        usage: Any = None
        finish_reason: str | None = None
        model = self._model
        finished = False  # saw `data: [DONE]` or a finish_reason
        try:
            async for data in sse_data(response):
                if data.strip() == "[DONE]":
                    finished = True
                    break
                chunk = self._parse_chunk(data)
                model = str(chunk.get("model") or model)
                if chunk.get("usage"):
                    usage = chunk["usage"]
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    piece = _content_text(delta.get("content"))
                    if piece:
                        text.append(piece)
                        yield TextDelta(piece)
                    for position, raw in enumerate(delta.get("tool_calls") or ()):
                        index = raw.get("index", position)
                        partial = calls.setdefault(index, _PartialCall())
                        function = raw.get("function") or {}
                        # OpenAI sends id and name once; some servers repeat them in every chunk.
                        partial.id = partial.id or str(raw.get("id") or "")
                        partial.name = partial.name or str(function.get("name") or "")
                        if function.get("arguments"):
                            partial.arguments.append(str(function["arguments"]))
                    if choice.get("finish_reason"):
                        finish_reason = choice["finish_reason"]
                        finished = True
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise ModelUnreachableError(
                f"the stream from {self.url} broke after {sum(map(len, text))} characters "
                f"({type(exc).__name__}: {exc}). Retry the step; check the server at "
                f"{self.base_url} if it keeps happening"
            ) from exc

        if not finished:
            # OpenAI always ends with a finish_reason and `[DONE]`. Some servers end the
            # stream silently when they fail mid-request (llama-cpp-python does for a
            # streamed automatic tool call); returning a partial answer would hide that.
            raise ServerError(
                f"the stream from {self.url} ended without a finish_reason or [DONE] after "
                f"{sum(map(len, text))} characters: the server failed mid-answer. Check its "
                "logs; if it cannot stream this request (e.g. tool calls), use generate()"
            )
        if usage is None and not self._warned_no_stream_usage:
            self._warned_no_stream_usage = True
            logger.warning(
                "%s sent no usage in its stream; token and cost budgets will undercount "
                "for this model (use generate() for exact usage)",
                self.base_url,
            )
        tool_calls: list[ToolCall] = []
        for index in sorted(calls):
            partial = calls[index]
            joined = "".join(partial.arguments)
            arguments, error = _parse_arguments(joined)
            tool_calls.append(
                ToolCall(
                    partial.id or f"call_{index}",
                    partial.name,
                    arguments,
                    error,
                    _raw_if_broken(joined, error),
                )
            )
        yield ModelResponse(
            text="".join(text),
            tool_calls=tuple(tool_calls),
            usage=self._usage(usage),
            model=model,
            finish_reason=finish_reason,
        )

    def _parse_chunk(self, data: str) -> Json:
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise ModelOutputError(
                f"{self.url} streamed an event that is not JSON ({exc}): {_excerpt(data)!r}",
                body=data,
            ) from exc
        if not isinstance(chunk, dict):
            raise ModelOutputError(
                f"{self.url} streamed an event that is not a chunk object: {_excerpt(data)!r}",
                body=data,
            )
        if chunk.get("error"):
            message, _ = _error_detail(data)
            raise ServerError(
                f"{self.url} reported an error mid-stream: {message}. Retry the step",
                body=data,
            )
        return chunk

    def render(self, request: ModelRequest) -> str:
        """The request line and JSON body `generate` would send; the API key is never shown."""
        body = json.dumps(self._body(request), indent=2, ensure_ascii=False)
        return f"POST {self.url}\n{body}"
