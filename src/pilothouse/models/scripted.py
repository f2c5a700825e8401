"""`ScriptedModel`: a model you write by hand, for tests (yours and ours).

Feed it a list of replies or a function of the request; it answers in order and
records every request it received, so a test can assert on exactly what the
agent sent. A reply may be a `ModelResponse`, a plain string (a final text
answer), a `ToolCall`, or a list of `ToolCall`s (parallel calls in one reply).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from pilothouse.exceptions import ModelError
from pilothouse.messages import ToolCall, Usage
from pilothouse.models.base import (
    Capabilities,
    ModelRequest,
    ModelResponse,
    StreamItem,
    TextDelta,
)

Reply = ModelResponse | str | ToolCall | Sequence[ToolCall]
ReplyFunction = Callable[[ModelRequest], Reply]

_call_counter = 0


def call(name: str, /, **arguments: Any) -> ToolCall:
    """Build a tool call for a script: `call("lookup", key="a")`."""
    global _call_counter
    _call_counter += 1
    return ToolCall(f"call_{_call_counter}", name, arguments)


def _as_response(reply: Reply, model: str) -> ModelResponse:
    if isinstance(reply, ModelResponse):
        return reply
    if isinstance(reply, str):
        return ModelResponse(text=reply, usage=_usage(reply), model=model, finish_reason="stop")
    calls = (reply,) if isinstance(reply, ToolCall) else tuple(reply)
    if not all(isinstance(c, ToolCall) for c in calls):
        raise TypeError(f"ScriptedModel cannot reply with {reply!r}")
    return ModelResponse(
        tool_calls=calls, usage=Usage(1, 1, None, 1), model=model, finish_reason="tool_calls"
    )


def _usage(text: str) -> Usage:
    return Usage(1, max(1, len(text) // 4), None, 1)


class ScriptedModel:
    """A deterministic model double: replies from a script and records requests.

    >>> model = ScriptedModel([call("lookup", key="a"), "done"])
    """

    capabilities = Capabilities(native_tools=True, json_schema=True, grammar=False)

    def __init__(
        self,
        replies: Iterable[Reply] | ReplyFunction,
        *,
        name: str = "scripted",
        record: bool = True,
    ) -> None:
        self._function: ReplyFunction | None = None
        self._replies: list[Reply] = []
        if callable(replies):
            self._function = replies
        else:
            self._replies = list(replies)
        self._name = name
        self._index = 0
        self._record = record
        self.requests: list[ModelRequest] = []

    @property
    def name(self) -> str:
        return self._name

    def _next(self, request: ModelRequest) -> ModelResponse:
        if self._record:
            # Copy the message list: the agent keeps appending to its own.
            self.requests.append(
                ModelRequest(
                    list(request.messages),
                    request.tools,
                    request.output_schema,
                    request.tool_choice,
                    request.settings,
                )
            )
        if self._function is not None:
            return _as_response(self._function(request), self._name)
        if self._index >= len(self._replies):
            raise ModelError(
                f"ScriptedModel ran out of replies after {self._index}; "
                "add more replies to the script or lower max_steps"
            )
        reply = self._replies[self._index]
        self._index += 1
        return _as_response(reply, self._name)

    async def generate(self, request: ModelRequest) -> ModelResponse:
        return self._next(request)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]:
        response = self._next(request)
        text = response.text
        for start in range(0, len(text), 8):
            yield TextDelta(text[start : start + 8])
        yield response

    def render(self, request: ModelRequest) -> str:
        body = {
            "messages": [m.to_dict() for m in request.messages],
            "tools": [t.to_dict() for t in request.tools],
            "output_schema": request.output_schema,
            "tool_choice": request.tool_choice,
        }
        return json.dumps(body, indent=2, ensure_ascii=False)
