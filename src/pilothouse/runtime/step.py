"""Step hooks and output validators: application code that shapes a step, on the record.

`prepare_step(ctx) -> StepOptions | None` runs before each model call and decides
what that one step offers: which tools, which instructions, which tool choice and
settings. The loop journals the result on the step's `model_request` (`tools`,
`instructions`, `tool_choice`, `settings`), so the trace, `render_prompt` and replay
show the request the model really received; no model wrapper has to rewrite
requests behind the journal's back.

An output validator checks a final answer beyond its type (a business rule) and
may return a corrected value, or raise `ModelRetry("why")`: the answer is refused,
the refusal journaled as a failed `output_validated`, and the model asked again,
using up one of the agent's `output_retries`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol

from pilothouse.exceptions import ConfigurationError
from pilothouse.messages import Message, Usage
from pilothouse.models.base import Model, ModelRequest, ModelResponse, ModelSettings
from pilothouse.tools.tool import DepsT

if TYPE_CHECKING:
    from pilothouse.events import StopReason
    from pilothouse.tools.tool import Tool

ToolChoice = Literal["auto", "required", "none"]


class HookModels(Protocol):
    """How a step hook asks a model on the record (`StepContext.models`, one per step).

    `generate` journals the call (`hook_model_call`: request, response, usage) and
    returns the response; when this run's journal already holds a response for `key`
    (a resumed run, a replay) that response is returned and no model is asked.
    `recorded` lists this run's recorded responses for `purpose` by key, so a hook can
    rebuild what it had derived from them (compaction: its summaries)."""

    def recorded(self, purpose: str) -> Mapping[str, ModelResponse]: ...

    async def generate(
        self, model: Model, request: ModelRequest, *, purpose: str, key: str
    ) -> ModelResponse: ...


@dataclass(slots=True)
class StepContext(Generic[DepsT]):
    """What a step hook or an output validator may read: the run so far and the deps.

    `step` is the step about to be made (a hook) or the step that answered (a
    validator). `messages` is the conversation as the model would receive it (do
    not change it: a hook shapes a step through `StepOptions`). `models` (set for a
    step hook by the loop) asks a model on the record (`HookModels`).
    """

    run_id: str
    step: int
    messages: Sequence[Message]
    usage: Usage
    deps: DepsT
    tools: Mapping[str, Tool]
    models: HookModels | None = None


@dataclass(frozen=True, slots=True)
class StepOptions:
    """What one step offers the model. `None` keeps the agent's own choice.

    `tools`: the names of the tools offered (a call to another tool in this step is
    answered "not available at this step", never run); `instructions`: the system
    prompt for this step instead of the agent's; `tool_choice`: ``"required"`` makes
    the model call a tool, ``"none"`` makes it answer; `settings`: sampling settings
    for this step; `messages`: the conversation sent after the system prompt (a view
    built from `ctx.messages`, such as the last turns: nothing is deleted, and the
    journal records which messages were sent); `schemas`: tool parameters narrowed
    for this step (tool name -> JSON schema, such as an ``enum`` of the ids the user
    wrote; the tool still validates against its own schema); `answer`: the step's
    reply, written by the application without calling the model (journaled as the
    step's response, from model ``"prepare_step"``).
    """

    tools: Sequence[str] | None = None
    instructions: str | None = None
    tool_choice: ToolChoice | None = None
    settings: ModelSettings | None = None
    messages: Sequence[Message] | None = None
    schemas: Mapping[str, Mapping[str, Any]] | None = None
    answer: str | None = None
    # (reason, message): end the run here with a `run_stopped` event instead of a step
    # (a team's loop guard and handoff limit use it: the stop is on the record)
    stop: tuple[StopReason, str] | None = None


PrepareStep = Callable[[StepContext[Any]], "StepOptions | Awaitable[StepOptions | None] | None"]
# (ctx, output) -> output, or (output) -> output; sync or async; raises ModelRetry.
OutputValidator = Callable[..., Any]


def check_options(options: Any, tools: Mapping[str, Tool]) -> StepOptions | None:
    """The hook's answer, checked: a mistake in a hook is a clear error, not a odd step."""
    if options is None:
        return None
    if not isinstance(options, StepOptions):
        raise ConfigurationError(
            f"prepare_step returned {type(options).__name__}; return StepOptions(...) or None"
        )
    if options.tools is not None:
        unknown = [name for name in options.tools if name not in tools]
        if unknown:
            raise ConfigurationError(
                f"prepare_step offered unknown tools {unknown}; the agent's tools are "
                f"{sorted(tools)}"
            )
    if options.tool_choice not in (None, "auto", "required", "none"):
        raise ConfigurationError(
            f"prepare_step: tool_choice must be 'auto', 'required' or 'none', "
            f"not {options.tool_choice!r}"
        )
    if options.tool_choice == "required" and options.tools is not None and not options.tools:
        raise ConfigurationError("prepare_step: tool_choice='required' with no tools offered")
    offered = set(tools if options.tools is None else options.tools)
    for name, schema in (options.schemas or {}).items():
        if name not in offered:
            raise ConfigurationError(f"prepare_step: a schema for {name!r}, which is not offered")
        if not isinstance(schema, Mapping) or schema.get("type", "object") != "object":
            raise ConfigurationError(
                f"prepare_step: the schema for {name!r} must be a JSON schema of an object"
            )
    if options.messages is not None and not all(isinstance(m, Message) for m in options.messages):
        raise ConfigurationError("prepare_step: messages must be Message objects")
    if options.stop is not None:
        from pilothouse.events import STOP_OUTCOMES

        if (
            not isinstance(options.stop, tuple)
            or len(options.stop) != 2
            or options.stop[0] not in STOP_OUTCOMES
            or not isinstance(options.stop[1], str)
        ):
            raise ConfigurationError(
                f"prepare_step: stop must be (reason, message) with a reason among "
                f"{sorted(STOP_OUTCOMES)}, not {options.stop!r}"
            )
    if options.answer is not None and not isinstance(options.answer, str):
        raise ConfigurationError(
            f"prepare_step: answer must be text, not {type(options.answer).__name__}"
        )
    return options


def validator_arity(function: OutputValidator) -> int:
    """How many arguments an output validator takes: 1 (output) or 2 (ctx, output)."""
    try:
        params = [
            p
            for p in inspect.signature(function).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError) as exc:  # a builtin without a signature
        raise ConfigurationError(f"output validator {function!r}: {exc}") from exc
    if len(params) not in (1, 2):
        raise ConfigurationError(
            f"output validator {getattr(function, '__name__', function)!r} takes "
            f"{len(params)} arguments; write it as f(output) or f(ctx, output)"
        )
    return len(params)


async def call_maybe_async(function: Callable[..., Any], *args: Any) -> Any:
    """Call a sync or async hook; await its result if it is awaitable."""
    result = function(*args)
    if inspect.isawaitable(result):
        result = await result
    return result
