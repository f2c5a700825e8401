"""The one contract every model adapter meets.

A model receives a `ModelRequest` (messages, the tools on offer, an optional JSON
schema for the final output, sampling settings) and returns a `ModelResponse`
(text and/or tool calls, usage). Streaming yields `TextDelta`s and ends with the
complete `ModelResponse`, so usage is never lost while streaming.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Sequence
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
    # The reply can be held to `ModelRequest.output_schema` (a grammar, or the
    # provider's structured output): what the guided layer needs of its inner model.
    json_schema: bool = False
    grammar: bool = False
    streaming: bool = True
    # Tools are used through the guided layer (`pilothouse.guided`) unless the model is
    # wrapped otherwise: a small model that constrains its output but cannot choose a
    # tool and write its arguments in one go (the embedded SmolLM2-135M).
    guided: bool = False

    @classmethod
    def shared(cls, models: Sequence[Model]) -> Capabilities:
        """What every one of `models` can do (a model made of models, such as a fallback
        chain or a router, promises only that: the agent picks one action format for the
        run, whichever member answers)."""
        caps = [m.capabilities for m in models]
        return cls(
            native_tools=all(c.native_tools for c in caps),
            json_schema=all(c.json_schema for c in caps),
            grammar=all(c.grammar for c in caps),
            streaming=all(c.streaming for c in caps),
        )


@dataclass(slots=True, frozen=True)
class Guidance:
    """How the guided layer builds a step for a model that asks for it (`LocalModel`).

    `staged`: one narrow generation per decision (choice, arguments, answer) rather
    than a single constrained reply; `select_limit`: how many tools pre-selection
    offers; `grounded_answers`: answers after a tool result are held to the words of
    the question and the results; `flatten_json`: JSON results shown as
    ``path: value`` lines; `tool_prompt` / `tool_result_prompt`: replace the default
    templates (None keeps them). See `pilothouse.guided.GuidedModel`.
    """

    staged: bool = True
    select_limit: int = 3
    grounded_answers: bool = True
    flatten_json: bool = False
    tool_prompt: str | None = None
    tool_result_prompt: str | None = None


@dataclass(slots=True)
class Stage:
    """One generation of a guided step: the exact request its inner model is sent.

    `request` holds plain chat turns and the stage's `output_schema`; the other fields
    say what the stage added to the step's conversation, for the journal: the tools
    it shows, the system text it appended (`added`: tool list and reply forms), tool
    parameters it narrowed (`schemas`), and why it was asked (`note`).
    """

    name: str
    request: ModelRequest
    tools: list[str] = field(default_factory=list)
    added: str = ""
    schemas: dict[str, dict[str, Any]] | None = None
    note: str = ""

    def digest(self) -> str:
        """A hash of everything the inner model receives (turns, schema, settings)."""
        return request_digest(self.request)


def request_digest(request: ModelRequest) -> str:
    """sha256 (first 16 hex digits) of a request's messages, tools, schema and settings."""
    s = request.settings
    body = {
        "messages": [m.to_dict() for m in request.messages],
        "tools": [t.to_dict() for t in request.tools],
        "output_schema": request.output_schema,
        "tool_choice": request.tool_choice,
        "settings": [s.temperature, s.max_tokens, s.seed, s.top_p],
    }
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class StageLog(Protocol):
    """Where a guided step reports each generation as it happens (the run's journal)."""

    def requested(self, stage: Stage) -> None:
        """The stage is about to be sent."""
        ...

    def responded(
        self, stage: Stage, response: ModelResponse, duration: float, error: str | None = None
    ) -> None:
        """The stage was answered; `error` says why its reply is unusable as it stands
        (a reply cut off before its JSON was complete: `response` holds the partial text)."""
        ...


@runtime_checkable
class Staged(Protocol):
    """A model whose step is several generations the caller can journal one by one."""

    async def staged(self, request: ModelRequest, log: StageLog | None = None) -> ModelResponse:
        """Answer one request, reporting each inner generation to `log`."""
        ...


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


class ModelLog(Protocol):
    """Where a model made of other models reports its decisions (the run's journal).

    A fallback or a routing choice changes which model answered a step, so it is on
    the record (`model_fallback`, `model_route` events), never only in a log file.
    """

    def fell_back(
        self,
        from_model: str,
        to_model: str,
        error: str,
        message: str,
        attempts: int,
        after_output: bool,
    ) -> None:
        """`from_model` failed with the error kind `error`; `to_model` is asked next."""
        ...

    def routed(self, model: str, reason: str, tried: list[str]) -> None:
        """`model` answers this step; `tried` were asked first and did not do (`reason`)."""
        ...


@runtime_checkable
class Reporting(Protocol):
    """A model that can report its decisions to a `ModelLog` while it answers.

    The loop passes the run's journal to such a model (`FallbackModel`, `RouterModel`);
    called through the plain `Model` methods it answers the same, reporting to
    Python logging only.
    """

    async def generate_logged(self, request: ModelRequest, log: ModelLog | None) -> ModelResponse:
        """`generate`, reporting decisions to `log`."""
        ...

    def stream_logged(
        self, request: ModelRequest, log: ModelLog | None
    ) -> AsyncIterator[StreamItem]:
        """`stream`, reporting decisions to `log`."""
        ...
