"""The one contract every model adapter meets.

A model receives a `ModelRequest` (messages, the tools on offer, an optional JSON
schema for the final output, sampling settings) and returns a `ModelResponse`
(text and/or tool calls, usage). Streaming yields `TextDelta`s and ends with the
complete `ModelResponse`, so usage is never lost while streaming.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

# ModelResponse lives in `messages` (the journal stores it; events must not import
# models); it is re-exported here, where adapters have always found it.
from pilothouse.messages import Message
from pilothouse.messages import ModelResponse as ModelResponse


@dataclass(slots=True)
class ToolSpec:
    """What a model is told about one tool: its name, description and JSON schema."""

    name: str
    description: str
    parameters: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


@dataclass(slots=True)
class ModelSettings:
    """Sampling settings; `None` leaves the provider's default."""

    temperature: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    top_p: float | None = None


@dataclass(slots=True)
class ModelRequest:
    """Everything a model call needs. `output_schema` constrains a final answer's JSON."""

    messages: list[Message]
    tools: list[ToolSpec] = field(default_factory=list)
    output_schema: dict[str, Any] | None = None
    tool_choice: Literal["auto", "required", "none"] = "auto"
    settings: ModelSettings = field(default_factory=ModelSettings)


@dataclass(slots=True)
class TextDelta:
    """A piece of streamed text."""

    text: str


StreamItem = TextDelta | ModelResponse


@dataclass(slots=True)
class Capabilities:
    """What an adapter can do natively; the agent degrades where a flag is off."""

    native_tools: bool = False
    json_schema: bool = False
    grammar: bool = False
    streaming: bool = True


@runtime_checkable
class Model(Protocol):
    """A language model behind one small async interface."""

    @property
    def name(self) -> str:
        """A stable identifier, recorded in the journal (for example `openai:gpt-4o-mini`)."""
        ...

    @property
    def capabilities(self) -> Capabilities: ...

    async def generate(self, request: ModelRequest) -> ModelResponse:
        """Answer one request."""
        ...

    def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]:
        """Yield text deltas as they arrive, then the complete response last."""
        ...

    def render(self, request: ModelRequest) -> str:
        """Show exactly what would be sent to the model for this request."""
        ...
