"""`RouterModel`: a cheap model first, a stronger one when a declared condition says so.

The condition is declared, not guessed: a name from `CONDITIONS` (a tool call whose
arguments did not parse, an empty reply, a reply cut off by the token limit, a final
answer that does not meet the request's output schema) or a function of the request
and the reply that returns the reason to escalate (or None). The choice is journaled
(`model_route`: the model that answered, the models tried before it, the reason), and
the usage of every reply asked for is counted in the step's `model_response`: a
reply thrown away still cost tokens.

Streaming: the text of a model that may still be overruled is held back until its
reply is checked; the last model's text streams as it arrives.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Sequence

from pilothouse.exceptions import ConfigurationError, SchemaError
from pilothouse.jsonschema_check import validate
from pilothouse.messages import Usage
from pilothouse.models.base import (
    Capabilities,
    Model,
    ModelLog,
    ModelRequest,
    ModelResponse,
    Reporting,
    StreamItem,
    TextDelta,
)
from pilothouse.models.fallback import member_of

__all__ = ["CONDITIONS", "Condition", "RouterModel"]

# A reason to escalate this reply to the next model, or None to keep it.
Condition = Callable[[ModelRequest, ModelResponse], str | None]


def _broken_tool_call(request: ModelRequest, response: ModelResponse) -> str | None:
    for call in response.tool_calls:
        if call.parse_error is not None:
            return f"tool call {call.name!r} has arguments that do not parse: {call.parse_error}"
    offered = {t.name for t in request.tools}
    for call in response.tool_calls:
        if call.name not in offered:
            return f"tool call names {call.name!r}, which was not offered"
    return None


def _empty(request: ModelRequest, response: ModelResponse) -> str | None:
    if not response.text.strip() and not response.tool_calls:
        return "empty reply"
    return None


def _truncated(request: ModelRequest, response: ModelResponse) -> str | None:
    return "reply cut off at the token limit" if response.finish_reason == "length" else None


def _invalid_output(request: ModelRequest, response: ModelResponse) -> str | None:
    if request.output_schema is None or response.tool_calls:
        return None
    try:
        value = json.loads(response.text)
    except ValueError as exc:
        return f"final answer is not JSON ({exc})"
    try:
        error = validate(value, request.output_schema)
    except SchemaError as exc:
        return f"output schema cannot be checked: {exc}"
    return f"final answer does not meet the output schema: {error}" if error else None


CONDITIONS: dict[str, Condition] = {
    "broken_tool_call": _broken_tool_call,
    "empty": _empty,
    "truncated": _truncated,
    "invalid_output": _invalid_output,
}


class RouterModel:
    """Ask `models` in order, keeping the first reply no condition objects to.

    `escalate_on`: condition names from `CONDITIONS` and/or functions
    ``(request, response) -> reason | None``; the last model's reply is kept whatever
    it is. Members may be `FallbackModel`s (their fallbacks are journaled too).

    >>> RouterModel([small, large], escalate_on=["broken_tool_call"])  # doctest: +SKIP
    """

    def __init__(
        self,
        models: Sequence[Model | str],
        *,
        escalate_on: str | Condition | Sequence[str | Condition] = ("broken_tool_call",),
    ) -> None:
        if len(models) < 2:
            raise ConfigurationError("RouterModel needs at least two models (cheap first)")
        self.models: tuple[Model, ...] = tuple(member_of(m) for m in models)
        given = (
            [escalate_on]
            if isinstance(escalate_on, str) or callable(escalate_on)
            else list(escalate_on)
        )
        if not given:
            raise ConfigurationError("RouterModel needs at least one escalate_on condition")
        self.conditions: list[tuple[str, Condition]] = []
        for c in given:
            if isinstance(c, str):
                if c not in CONDITIONS:
                    raise ConfigurationError(
                        f"unknown escalate_on condition {c!r}; known: {', '.join(CONDITIONS)}, "
                        "or pass a function (request, response) -> reason | None"
                    )
                self.conditions.append((c, CONDITIONS[c]))
            else:
                self.conditions.append((getattr(c, "__name__", "condition"), c))
        self.capabilities = Capabilities.shared(self.models)

    def __repr__(self) -> str:
        return f"RouterModel({[m.name for m in self.models]!r})"

    @property
    def name(self) -> str:
        conditions = ",".join(n for n, _ in self.conditions)
        return "router(" + ",".join(m.name for m in self.models) + f";{conditions})"

    def render(self, request: ModelRequest) -> str:
        """What the first (cheapest) model would be sent."""
        return self.models[0].render(request)

    def escalation(self, request: ModelRequest, response: ModelResponse) -> str | None:
        """The first declared condition this reply meets, as ``name: reason``; None keeps it."""
        for name, condition in self.conditions:
            reason = condition(request, response)
            if reason:
                return f"{name}: {reason}"
        return None

    async def generate(self, request: ModelRequest) -> ModelResponse:
        return await self.generate_logged(request, None)

    def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]:
        return self.stream_logged(request, None)

    async def generate_logged(self, request: ModelRequest, log: ModelLog | None) -> ModelResponse:
        """The first reply that meets no condition (the last model's otherwise), journaled."""
        tried: list[str] = []
        spent: Usage | None = None
        reason = ""
        last = len(self.models) - 1
        for position, member in enumerate(self.models):
            if isinstance(member, Reporting):
                response = await member.generate_logged(request, log)
            else:
                response = await member.generate(request)
            spent = response.usage if spent is None else spent + response.usage
            why = None if position == last else self.escalation(request, response)
            if why is None:
                if log is not None:
                    log.routed(member.name, reason, tried)
                return _with_usage(response, spent)
            tried.append(member.name)
            reason = why
        raise AssertionError("unreachable: the last model's reply is kept")  # pragma: no cover

    async def stream_logged(
        self, request: ModelRequest, log: ModelLog | None
    ) -> AsyncIterator[StreamItem]:
        """Stream the kept reply; a reply that may be overruled is checked before its text."""
        tried: list[str] = []
        spent: Usage | None = None
        reason = ""
        last = len(self.models) - 1
        for position, member in enumerate(self.models):
            items = (
                member.stream_logged(request, log)
                if isinstance(member, Reporting)
                else member.stream(request)
            )
            held: list[str] = []
            final: ModelResponse | None = None
            async for item in items:
                if isinstance(item, TextDelta):
                    if position == last:
                        yield item
                    else:
                        held.append(item.text)
                else:
                    final = item
            if final is None:
                from pilothouse.exceptions import ModelOutputError

                raise ModelOutputError(f"model {member.name!r} ended its stream without a response")
            spent = final.usage if spent is None else spent + final.usage
            why = None if position == last else self.escalation(request, final)
            if why is None:
                if log is not None:
                    log.routed(member.name, reason, tried)
                for text in held:
                    yield TextDelta(text)
                yield _with_usage(final, spent)
                return
            tried.append(member.name)
            reason = why


def _with_usage(response: ModelResponse, usage: Usage | None) -> ModelResponse:
    """The kept reply carrying the usage of every reply the step asked for."""
    if usage is None or usage is response.usage:
        return response
    return dataclasses.replace(response, usage=usage)
