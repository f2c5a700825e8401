"""Provider-neutral conversation data: messages, tool calls, tool results, usage, a model's
response.

Plain slotted dataclasses rather than pydantic models: they are built several
times per agent step, and the step must cost microseconds. They are not declared
frozen only because frozen dataclasses cost three times as much to build; treat
them as immutable values. Each type converts to and from JSON-able dicts for the
journal.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(slots=True)
class ToolCall:
    """A model's request to run one tool.

    `arguments` is the parsed JSON object; when the model sent something that does
    not parse, `arguments` is empty and `parse_error` says why, so the loop can tell
    the model instead of guessing. `raw_arguments` keeps the unparsed string then,
    so the loop can try the native action format's repairs first.
    """

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    parse_error: str | None = None
    raw_arguments: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "name": self.name, "arguments": self.arguments}
        if self.parse_error is not None:
            d["parse_error"] = self.parse_error
        if self.raw_arguments is not None:
            d["raw_arguments"] = self.raw_arguments
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ToolCall:
        return cls(
            d["id"],
            d["name"],
            d.get("arguments") or {},
            d.get("parse_error"),
            d.get("raw_arguments"),
        )


@dataclass(slots=True)
class ToolResult:
    """What running a tool produced, as the text the model will read.

    `full` is the whole result when `content` is a capped view of it (an MCP tool's
    300 KB answer): journaled, so the trace has everything, but never sent to a model.
    """

    call_id: str
    name: str
    content: str
    is_error: bool = False
    full: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "call_id": self.call_id,
            "name": self.name,
            "content": self.content,
            "is_error": self.is_error,
        }
        if self.full is not None:
            d["full"] = self.full
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ToolResult:
        return cls(d["call_id"], d["name"], d["content"], d.get("is_error", False), d.get("full"))


@dataclass(slots=True)
class Message:
    """One turn of a conversation.

    An assistant message may carry `tool_calls`; a tool message carries the
    `tool_call_id` and tool `name` it answers, and `is_error` when the content is
    the error the call ended with (providers such as Anthropic take that flag, and a
    small model's decoding treats an error differently from a result).
    """

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    is_error: bool = False

    @classmethod
    def system(cls, content: str) -> Message:
        return cls("system", content)

    @classmethod
    def user(cls, content: str) -> Message:
        return cls("user", content)

    @classmethod
    def assistant(cls, content: str = "", tool_calls: tuple[ToolCall, ...] = ()) -> Message:
        return cls("assistant", content, tool_calls)

    @classmethod
    def tool(cls, result: ToolResult) -> Message:
        return cls("tool", result.content, (), result.call_id, result.name, result.is_error)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            d["tool_calls"] = [c.to_dict() for c in self.tool_calls]
        if self.tool_call_id is not None:
            d["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            d["name"] = self.name
        if self.is_error:
            d["is_error"] = True
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Message:
        return cls(
            d["role"],
            d.get("content") or "",
            tuple(ToolCall.from_dict(c) for c in d.get("tool_calls", ())),
            d.get("tool_call_id"),
            d.get("name"),
            bool(d.get("is_error", False)),
        )


@dataclass(slots=True)
class Usage:
    """Tokens spent by one or more model calls, and their cost in USD when known."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None
    requests: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        cost = None
        if self.cost is not None or other.cost is not None:
            cost = (self.cost or 0.0) + (other.cost or 0.0)
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            cost,
            self.requests + other.requests,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost": self.cost,
            "requests": self.requests,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Usage:
        return cls(
            d.get("input_tokens", 0), d.get("output_tokens", 0), d.get("cost"), d.get("requests", 0)
        )


@dataclass(slots=True)
class ModelResponse:
    """A model's answer: text, tool calls (possibly several), and what it cost."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    finish_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "tool_calls": [c.to_dict() for c in self.tool_calls],
            "usage": self.usage.to_dict(),
            "model": self.model,
            "finish_reason": self.finish_reason,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelResponse:
        return cls(
            d.get("text", ""),
            tuple(ToolCall.from_dict(c) for c in d.get("tool_calls", ())),
            Usage.from_dict(d.get("usage") or {}),
            d.get("model", ""),
            d.get("finish_reason"),
        )


def call_identity(name: str, arguments: Mapping[str, Any]) -> Hashable:
    """What makes two tool calls the same call: the tool and its arguments' values.

    The one definition of a repeated call, shared by the run's loop detector
    (`runtime.budget.LoopDetector`: the N-th identical call stops the run) and the
    guided layer's repeat check (a call identical to one made since the user's
    message becomes an answer). Values compare as Python values (``1 == 1.0``); a
    nested list or object compares by its text, key order included.
    """
    try:
        return (name, frozenset(arguments.items()))
    except TypeError:  # unhashable values (lists, dicts): compare their text
        return (name, repr(sorted(arguments.items())))
