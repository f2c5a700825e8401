"""`FallbackModel`: ask the next model of a list when one fails in a way another can fix.

What to do after each error is the taxonomy in `pilothouse.exceptions` (each
`ModelError` class's `recovery`), applied here and nowhere else:

- ``retry`` (timeouts, HTTP 429, 5xx): the same model again, after the wait the server
  asked for (``Retry-After``, up to `max_retry_after`; a longer wait falls back at
  once) or an exponential backoff, at most `retries` times and `patience` seconds of
  waiting in all; then the next model;
- ``fallback`` (nothing listening: connection refused, a stream cut off; a
  conversation too long for this model's context): the next model at once;
- ``raise`` (a bad request, bad credentials, a content-policy refusal, a malformed
  reply, a bug): no other model is asked; the error is raised as it is.

Each member makes one attempt per call (`HttpModel.without_retries`): the adapters'
own retries would otherwise run first and delay the fallback by their backoff. Every
fallback is journaled (`model_fallback`: from, to, the error kind) when the loop runs
the model (`Reporting`); the answer's `ModelResponse.model` names the model that
answered. A fallback in the middle of a run repeats no tool call: the request the
next model receives is the conversation so far, tool results included.

Streaming: a failure before the first token falls back invisibly (the event is still
journaled); after it, the next model starts the answer again and the
`model_fallback` event, with ``after_output``, tells the stream's reader to discard
the text it received so far.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator, Sequence

from pilothouse.exceptions import (
    ConfigurationError,
    ModelOutputError,
    ModelTimeoutError,
    model_error_recovery,
)
from pilothouse.models.base import (
    Capabilities,
    Model,
    ModelLog,
    ModelRequest,
    ModelResponse,
    StreamItem,
    TextDelta,
)

__all__ = ["FallbackModel", "member_of"]

_log = logging.getLogger(__name__)


def member_of(model: Model | str) -> Model:
    """A model as a member of a composite: resolved from its string, making one attempt
    per call when the adapter has retries of its own (`without_retries`)."""
    if isinstance(model, str):
        from pilothouse.models.registry import resolve_model

        model = resolve_model(model)
    single = getattr(model, "without_retries", None)
    if callable(single):
        once: Model = single()
        return once
    return model


class _Spent(Exception):
    """A member's attempts are over; the next member is asked (internal)."""

    def __init__(self, error: BaseException, kind: str, attempts: int, after_output: bool):
        super().__init__(str(error))
        self.error, self.kind, self.attempts, self.after_output = (
            error,
            kind,
            attempts,
            after_output,
        )


class FallbackModel:
    """Models tried in order: the first answers unless it fails in a way the next can fix.

    `retries`: further attempts of the same model after a ``retry`` error (timeout,
    429, 5xx); `backoff`: base seconds of the exponential backoff (full jitter) when
    the server named no wait; `max_retry_after`: the longest ``Retry-After`` honoured
    (a server asking for longer is skipped at once); `patience`: the most seconds spent
    waiting between attempts of one model before the next is asked (so the first
    fallback comes within about `patience` of a 429 or 5xx, whatever the server asks);
    `timeout`: seconds one attempt may take (until the first streamed item when
    streaming), on top of each adapter's own timeout; None leaves the adapters' own.

    >>> FallbackModel(["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"])  # doctest: +SKIP
    """

    def __init__(
        self,
        models: Sequence[Model | str],
        *,
        retries: int = 2,
        backoff: float = 0.5,
        max_retry_after: float = 10.0,
        patience: float = 1.5,
        timeout: float | None = None,
    ) -> None:
        if len(models) < 1:
            raise ConfigurationError("FallbackModel needs at least one model")
        if retries < 0:
            raise ConfigurationError(f"retries must be 0 or more, got {retries!r}")
        if backoff < 0 or max_retry_after < 0 or patience < 0:
            raise ConfigurationError(
                "backoff, max_retry_after and patience must be 0 or more seconds"
            )
        if timeout is not None and timeout <= 0:
            raise ConfigurationError(f"timeout must be positive seconds, got {timeout!r}")
        self.models: tuple[Model, ...] = tuple(member_of(m) for m in models)
        self.retries = retries
        self.backoff = backoff
        self.max_retry_after = max_retry_after
        self.patience = patience
        self.timeout = timeout
        self.capabilities = Capabilities.shared(self.models)

    def __repr__(self) -> str:
        return f"FallbackModel({[m.name for m in self.models]!r})"

    @property
    def name(self) -> str:
        """``fallback(a,b,...)``: part of the agent's definition, so a changed list is seen."""
        return "fallback(" + ",".join(m.name for m in self.models) + ")"

    def render(self, request: ModelRequest) -> str:
        """What the first model would be sent (the others receive the same request)."""
        return self.models[0].render(request)

    # ------------------------------------------------------------------ the protocol

    async def generate(self, request: ModelRequest) -> ModelResponse:
        """Answer with the first model that can (decisions go to Python logging)."""
        return await self.generate_logged(request, None)

    def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]:
        """Stream from the first model that can (decisions go to Python logging)."""
        return self.stream_logged(request, None)

    async def generate_logged(self, request: ModelRequest, log: ModelLog | None) -> ModelResponse:
        """Answer with the first model that can, reporting each fallback to `log`."""
        last = len(self.models) - 1
        for position, member in enumerate(self.models):
            try:
                response = await self._attempts(member, request)
            except _Spent as spent:
                if position == last:
                    raise spent.error from None
                self._report(log, member, self.models[position + 1], spent)
                continue
            return _stamped(response, member)
        raise AssertionError("unreachable: the last member raises")  # pragma: no cover

    async def stream_logged(
        self, request: ModelRequest, log: ModelLog | None
    ) -> AsyncIterator[StreamItem]:
        """Stream from the first model that can; see the module for what a reader sees."""
        last = len(self.models) - 1
        for position, member in enumerate(self.models):
            attempt = 0
            waited = 0.0
            while True:
                attempt += 1
                emitted = False
                try:
                    async with contextlib.aclosing(self._stream_once(member, request)) as items:
                        async for item in items:
                            if isinstance(item, TextDelta):
                                emitted = True
                                yield item
                            else:
                                yield _stamped(item, member)
                                return
                    raise ModelOutputError(
                        f"model {member.name!r} ended its stream without a response"
                    )
                except Exception as exc:
                    kind, recovery = model_error_recovery(exc)
                    if recovery == "raise":
                        raise
                    if not emitted and recovery == "retry" and attempt <= self.retries:
                        delay = self._delay(attempt, exc, waited)
                        if delay is not None:
                            self._retrying(member, kind, attempt, delay)
                            waited += delay
                            await asyncio.sleep(delay)
                            continue
                    if position == last:
                        raise
                    self._report(
                        log, member, self.models[position + 1], _Spent(exc, kind, attempt, emitted)
                    )
                    break

    # ------------------------------------------------------------------ attempts

    async def _attempts(self, member: Model, request: ModelRequest) -> ModelResponse:
        """One member's answer, retried per the taxonomy; `_Spent` when it is the next's turn."""
        attempt = 0
        waited = 0.0
        while True:
            attempt += 1
            try:
                if self.timeout is None:
                    return await member.generate(request)
                try:
                    async with asyncio.timeout(self.timeout):
                        return await member.generate(request)
                except TimeoutError as exc:
                    raise self._timed_out(member) from exc
            except Exception as exc:
                kind, recovery = model_error_recovery(exc)
                if recovery == "raise":
                    raise
                if recovery == "retry" and attempt <= self.retries:
                    delay = self._delay(attempt, exc, waited)
                    if delay is not None:
                        self._retrying(member, kind, attempt, delay)
                        waited += delay
                        await asyncio.sleep(delay)
                        continue
                raise _Spent(exc, kind, attempt, False) from exc

    async def _stream_once(
        self, member: Model, request: ModelRequest
    ) -> AsyncGenerator[StreamItem, None]:
        """One streaming attempt; `timeout` bounds the wait for its first item."""
        items = aiter(member.stream(request))
        try:
            if self.timeout is not None:
                try:
                    async with asyncio.timeout(self.timeout):
                        first = await anext(items)
                except TimeoutError as exc:
                    raise self._timed_out(member) from exc
                except StopAsyncIteration:
                    return
                yield first
            async for item in items:
                yield item
        finally:
            close = getattr(items, "aclose", None)
            if close is not None:
                await close()

    def _timed_out(self, member: Model) -> ModelTimeoutError:
        return ModelTimeoutError(
            f"{member.name} did not answer within FallbackModel(timeout={self.timeout:g}) s"
        )

    def _delay(self, attempt: int, error: BaseException, waited: float) -> float | None:
        """Seconds before retry `attempt` of the same model, `waited` seconds having been
        spent waiting on it already; None: do not wait, ask the next model now."""
        asked = getattr(error, "retry_after", None)
        if isinstance(asked, int | float):
            if asked > self.max_retry_after:
                return None
            delay = float(asked)
        else:
            ceiling = min(self.backoff * 2 ** (attempt - 1), self.max_retry_after)
            delay = random.uniform(0.0, ceiling) if ceiling > 0 else 0.0
        return delay if waited + delay <= self.patience else None

    def _retrying(self, member: Model, kind: str, attempt: int, delay: float) -> None:
        _log.warning("%s: %s on attempt %d; retrying in %.2f s", member.name, kind, attempt, delay)

    def _report(self, log: ModelLog | None, member: Model, after: Model, spent: _Spent) -> None:
        message = str(spent.error)
        _log.warning(
            "%s failed (%s after %d attempts: %s); falling back to %s",
            member.name,
            spent.kind,
            spent.attempts,
            message,
            after.name,
        )
        if log is not None:
            log.fell_back(
                member.name, after.name, spent.kind, message, spent.attempts, spent.after_output
            )


def _stamped(response: ModelResponse, member: Model) -> ModelResponse:
    """The response naming the model that answered (the adapter's own name if it gave none)."""
    if response.model:
        return response
    return dataclasses.replace(response, model=member.name)
