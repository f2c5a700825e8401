"""What the HTTP model adapters share: a pool per event loop, bounded retries, SSE.

`OpenAIModel` and `AnthropicModel` speak different wire formats but fail, retry
and stream the same way, so that part lives once here. A subclass says where to
POST (`url`), with which headers, and how a final failure reads (`_http_error`,
`_transport_error`); it may also rewrite a rejected body once (`_downgrade`).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import email.utils
import json
import logging
import random
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar, Self

import httpx

from pilothouse.exceptions import (
    ConfigurationError,
    ModelError,
    ModelTimeoutError,
    ModelUnreachableError,
)

RETRY_AFTER_CAP = 30.0  # seconds; a server asking for longer is better surfaced as an error

Json = dict[str, Any]


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait (`retry-after-ms`, `Retry-After`), capped."""
    milliseconds = response.headers.get("retry-after-ms")
    if milliseconds is not None:
        with contextlib.suppress(ValueError):
            return min(max(float(milliseconds) / 1000.0, 0.0), RETRY_AFTER_CAP)
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


async def sse_data(response: httpx.Response) -> AsyncIterator[str]:
    """The ``data`` of each server-sent event; ``event:`` names and comments are skipped."""
    data_lines: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            data_lines.append(line[5:].removeprefix(" "))
        elif not line.strip() and data_lines:
            yield "\n".join(data_lines)
            data_lines.clear()
    if data_lines:
        yield "\n".join(data_lines)


class HttpModel:
    """The transport half of an adapter that POSTs JSON to one endpoint."""

    retry_statuses: ClassVar[frozenset[int]] = frozenset({408, 429})  # and every 5xx
    base_url_env: ClassVar[str]  # the variable that sets `base_url`, named in error messages
    base_url: str

    def __init__(
        self,
        *,
        timeout: float,
        max_retries: int,
        backoff: float,
        http_client: httpx.AsyncClient | None,
    ) -> None:
        if timeout <= 0:
            raise ConfigurationError(f"timeout must be positive seconds, got {timeout!r}")
        if max_retries < 0:
            raise ConfigurationError(f"max_retries must be 0 or more, got {max_retries!r}")
        if backoff < 0:
            raise ConfigurationError(f"backoff must be 0 or more seconds, got {backoff!r}")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self._client = http_client
        self._owns_client = http_client is None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        # Retries are logged under the adapter's own module (pilothouse.models.openai, ...).
        self._logger = logging.getLogger(type(self).__module__)

    # ------------------------------------------------------------------ for subclasses

    @property
    def url(self) -> str:
        raise NotImplementedError

    def _headers(self, *, stream: bool) -> dict[str, str]:
        raise NotImplementedError

    def _http_error(self, status: int, text: str, attempts: int) -> ModelError:
        raise NotImplementedError

    def _transport_error(self, exc: httpx.HTTPError, attempts: int) -> ModelUnreachableError:
        tried = f" after {attempts} attempts" if attempts > 1 else ""
        if isinstance(exc, httpx.TimeoutException):
            return ModelTimeoutError(
                f"{self.url} did not answer within {self.timeout:g} s{tried} "
                f"({type(exc).__name__}). Check that the server at {self.base_url} is running "
                f"and not overloaded ({self.base_url_env} / base_url), or raise timeout="
            )
        return ModelUnreachableError(
            f"cannot reach {self.base_url}{tried} ({type(exc).__name__}: {exc}). Check "
            f"{self.base_url_env} / base_url and that the server is running and listening there"
        )

    def _downgrade(self, body: Json, status: int, text: str) -> Json | None:
        """A body without the field this server just rejected, or None: no second form."""
        return None

    def _remember_downgrades(self, original: Json, sent: Json) -> None:
        """Called after a success with the body first built and the one that worked."""

    # ------------------------------------------------------------------ the client

    def _get_client(self) -> httpx.AsyncClient:
        """This instance's client, made on first use (and remade if the event loop changed).

        An httpx pool is bound to the loop it was first used on; callers that run each
        agent with `asyncio.run` would otherwise hit "event loop is closed".
        """
        if not self._owns_client:
            assert self._client is not None
            return self._client
        loop = asyncio.get_running_loop()
        if self._client is None or self._client.is_closed or self._client_loop is not loop:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout))
            self._client_loop = loop
        return self._client

    async def aclose(self) -> None:
        """Close the connection pool this instance opened (a client passed in stays open)."""
        if self._owns_client and self._client is not None:
            client, self._client = self._client, None
            if self._client_loop is asyncio.get_running_loop():
                await client.aclose()
            self._client_loop = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def without_retries(self) -> Self:
        """A copy that makes one attempt per call (`max_retries=0`), sharing the rest.

        What `FallbackModel` uses of each member: its own retry policy decides when to
        try again and when to move on, so an adapter's retries never delay a fallback.
        """
        clone = copy.copy(self)
        clone.max_retries = 0
        return clone

    # ------------------------------------------------------------------ sending

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        if response is not None:
            asked = retry_after(response)
            if asked is not None:
                return asked
        # Exponential backoff with full jitter: spreads out clients that failed together.
        return random.uniform(0.0, min(self.backoff * 2 ** (attempt - 1), RETRY_AFTER_CAP))

    async def _send(self, body: Json, *, stream: bool) -> httpx.Response:
        """POST `body` with bounded retries; return a 2xx response (still open if `stream`)."""
        client = self._get_client()
        original = body
        attempt = 0
        while True:
            attempt += 1
            response: httpx.Response | None = None
            try:
                http_request = client.build_request(
                    "POST", self.url, json=body, headers=self._headers(stream=stream)
                )
                response = await client.send(http_request, stream=stream)
                if response.status_code < 400:
                    self._remember_downgrades(original, body)
                    return response
                text = (await response.aread()).decode("utf-8", errors="replace")
                await response.aclose()
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                if response is not None:
                    await response.aclose()
                if attempt > self.max_retries:
                    raise self._transport_error(exc, attempt) from exc
                delay = self._delay(attempt, None)
                self._logger.warning(
                    "%s: %s on attempt %d; retrying in %.2f s",
                    self.url,
                    type(exc).__name__,
                    attempt,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            except httpx.HTTPError as exc:  # bad URL scheme, proxy trouble: retrying won't help
                raise self._transport_error(exc, attempt) from exc

            status = response.status_code
            downgraded = self._downgrade(body, status, text)
            if downgraded is not None:
                self._logger.info(
                    "%s rejected the request (HTTP %d); retrying once in the compatible form",
                    self.url,
                    status,
                )
                body = downgraded
                attempt -= 1  # a change of form is not a retry of the same request
                continue
            retryable = status in self.retry_statuses or status >= 500
            if not retryable or attempt > self.max_retries:
                error = self._http_error(status, text, attempt)
                error.retry_after = retry_after(response)  # for a FallbackModel's own retry
                raise error
            delay = self._delay(attempt, response)
            self._logger.warning(
                "%s: HTTP %d on attempt %d; retrying in %.2f s", self.url, status, attempt, delay
            )
            await asyncio.sleep(delay)


# --------------------------------------------------------------------------- body helpers
# Shared by the OpenAI-compatible and Anthropic adapters (public names: anthropic used to
# import them from openai as private names).

EXCERPT = 300  # characters of a response body quoted in error messages


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """Shorten a body for an error message: enough to diagnose, never a wall of text."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def error_detail(text: str) -> tuple[str, str | None]:
    """Pull the human message and the error code out of an error body, whatever its shape."""
    try:
        data = json.loads(text)
    except ValueError:
        return excerpt(text), None
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail") or error
            code = error.get("code") or error.get("type")
            return excerpt(str(message)), str(code) if code is not None else None
        if isinstance(error, str):
            return excerpt(error), None
    return excerpt(text), None


def parse_arguments(raw: Any) -> tuple[dict[str, Any], str | None]:
    """Turn a tool call's argument string into a dict, or say why it cannot be one.

    Never raises: broken arguments are the model's mistake, and the loop tells the
    model about it rather than crashing the run.
    """
    if isinstance(raw, dict):
        return raw, None
    if raw is None:
        return {}, None
    if not isinstance(raw, str):
        return {}, f"arguments must be a JSON object string, got {type(raw).__name__}"
    if not raw.strip():
        return {}, None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        return {}, (
            f"arguments are not valid JSON ({exc.msg} at position {exc.pos}): {excerpt(raw, 200)!r}"
        )
    if not isinstance(value, dict):
        return {}, f"arguments must be a JSON object, got {type(value).__name__}: {raw[:200]!r}"
    return value, None


def raw_if_broken(raw: Any, error: str | None) -> str | None:
    """The unparsed arguments string, kept only when it did not parse (for repair)."""
    return raw if error is not None and isinstance(raw, str) else None
