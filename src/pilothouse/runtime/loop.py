"""The agent loop, top to bottom in one file.

One step: ask the model (with the conversation so far and the tools on offer);
if it calls tools, validate and run them (several calls run concurrently) and
feed the results back; if it answers, validate the answer against the output
type (asking again with the error when it fails). Every arrow emits a journal
event. Budgets and the loop detector are checked before each model call. The
journal is written before and after any side-effecting call, at least every
`flush_interval` otherwise, and when the run ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic

from pilothouse.events import (
    BudgetStopped,
    ErrorOccurred,
    FinalOutput,
    ModelRequested,
    ModelResponded,
    OutputValidated,
    RunStarted,
    ToolCalled,
    ToolReturned,
)
from pilothouse.exceptions import (
    BudgetExceeded,
    LoopDetected,
    OutputValidationError,
    RunStopped,
)
from pilothouse.messages import Message, ToolCall, ToolResult, Usage
from pilothouse.models.base import (
    Model,
    ModelRequest,
    ModelResponse,
    ModelSettings,
    TextDelta,
    ToolSpec,
)
from pilothouse.runtime.budget import Budget, LoopDetector
from pilothouse.runtime.journal import Journal, RunInfo
from pilothouse.runtime.output import OutputSpec, OutputT
from pilothouse.tools.tool import Tool, ToolContext

_EMPTY_REPLY = "Your reply was empty. Either call one of the tools or give your final answer."


@dataclass(slots=True)
class RunResult(Generic[OutputT]):
    """How a run ended. `output` raises `RunStopped` if it ended without one."""

    run_id: str
    outcome: str  # "final" | "budget_stop" | "loop_stop" | "output_invalid"
    usage: Usage
    steps: int
    messages: list[Message]
    _output: Any = None
    stop: BudgetStopped | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "final"

    @property
    def output(self) -> OutputT:
        if self.outcome == "final":
            return self._output  # type: ignore[no-any-return]
        assert self.stop is not None
        kind: type[RunStopped] = {
            "loop_stop": LoopDetected,
            "output_invalid": OutputValidationError,
        }.get(self.outcome, BudgetExceeded)
        raise kind(
            f"run {self.run_id} stopped: {self.stop.message}",
            run_id=self.run_id,
            outcome=self.outcome,
        )


@dataclass(slots=True)
class RunSpec(Generic[OutputT]):
    """Everything the loop needs from an agent definition."""

    agent_name: str
    model: Model
    instructions: str
    tools: dict[str, Tool]
    output: OutputSpec[OutputT]
    budget: Budget
    settings: ModelSettings = field(default_factory=ModelSettings)
    output_retries: int = 2
    definition_hash: str = ""

    def system_prompt(self) -> str:
        extra = self.output.instructions()
        return f"{self.instructions}\n\n{extra}".strip() if extra else self.instructions

    def initial_messages(self, user_input: str) -> list[Message]:
        system = self.system_prompt()
        messages = [Message.system(system)] if system else []
        messages.append(Message.user(user_input))
        return messages


class _Stop(Exception):
    """Internal: a budget, the loop detector or output retries ended the run."""

    def __init__(self, outcome: str, limit: str, value: float, maximum: float, message: str):
        super().__init__(message)
        self.outcome, self.limit, self.value, self.maximum = outcome, limit, value, maximum


async def run_loop(
    spec: RunSpec[OutputT],
    user_input: str,
    journal: Journal,
    *,
    on_text: Callable[[str], None] | None = None,
) -> RunResult[OutputT]:
    """Run one agent to its end, journaling every step. Errors propagate after journaling."""
    run_id = journal.run_id
    started = time.monotonic()
    tool_specs: list[ToolSpec] = [t.spec() for t in spec.tools.values()]
    tool_names = list(spec.tools)
    loops = LoopDetector(spec.budget.max_repeats)
    messages = spec.initial_messages(user_input)
    reported = 0  # messages[:reported] are already in the journal
    usage = Usage()
    step = 0
    retries_left = spec.output_retries
    info = RunInfo(
        run_id, spec.agent_name, spec.model.name, user_input, "running", time.time(), time.time()
    )
    journal.set_info(info)
    journal.emit(
        RunStarted(
            run_id=run_id,
            agent=spec.agent_name,
            model=spec.model.name,
            input=user_input,
            instructions=spec.system_prompt(),
            tools=tool_names,
            output_schema=spec.output.schema,
            definition_hash=spec.definition_hash,
        )
    )

    def finish(status: str, output: Any = None) -> None:
        journal.set_info(
            RunInfo(
                run_id,
                info.agent,
                info.model,
                user_input,
                status,
                info.created,
                time.time(),
                step,
                usage.input_tokens,
                usage.output_tokens,
                usage.cost,
                output,
            )
        )
        journal.commit()

    try:
        while True:
            limit = spec.budget.exceeded(step, usage, time.monotonic() - started)
            if limit is not None:
                name, value, maximum = limit
                raise _Stop(
                    "budget_stop",
                    name,
                    value,
                    maximum,
                    f"{name} budget exhausted ({value} of {maximum}); raise the "
                    f"limit in Budget(max_{name}=...) if the task needs more",
                )
            step += 1
            request = ModelRequest(
                messages, tool_specs, spec.output.schema, "auto", _capped(spec, usage)
            )
            journal.emit(
                ModelRequested(
                    run_id=run_id, step=step, new_messages=messages[reported:], tools=tool_names
                )
            )
            reported = len(messages)
            began = time.perf_counter()
            asking = _ask(spec.model, request, on_text)
            response = await (
                asking if spec.budget.max_seconds is None else _within(spec.budget, started, asking)
            )
            usage += response.usage
            journal.emit(
                ModelResponded(
                    run_id=run_id,
                    step=step,
                    response=response,
                    duration=time.perf_counter() - began,
                )
            )
            messages.append(Message.assistant(response.text, response.tool_calls))

            if response.tool_calls:
                results = await _run_tools(spec, journal, step, response.tool_calls, loops, started)
                messages.extend(Message.tool(r) for r in results)
                continue

            text = response.text
            try:
                if not text.strip():
                    raise ValueError(_EMPTY_REPLY)
                output = spec.output.validate(text)
            except ValueError as exc:
                journal.emit(OutputValidated(run_id=run_id, step=step, ok=False, error=str(exc)))
                if retries_left <= 0:
                    raise _Stop(
                        "output_invalid",
                        "output_retries",
                        spec.output_retries,
                        spec.output_retries,
                        f"final answer still invalid after {spec.output_retries} retries: {exc}",
                    ) from None
                retries_left -= 1
                messages.append(Message.user(str(exc)))
                continue
            journal.emit(OutputValidated(run_id=run_id, step=step, ok=True))
            output_json = spec.output.to_json(output)
            journal.emit(FinalOutput(run_id=run_id, step=step, output=output_json, usage=usage))
            finish("final", output_json)
            return RunResult(run_id, "final", usage, step, messages, output)
    except _Stop as stop:
        event = journal.emit(
            BudgetStopped(
                run_id=run_id,
                step=step,
                limit=stop.limit,
                value=stop.value,
                maximum=stop.maximum,
                message=str(stop),
            )
        )
        finish(stop.outcome)
        assert isinstance(event, BudgetStopped)
        return RunResult(run_id, stop.outcome, usage, step, messages, None, event)
    except Exception as exc:
        journal.emit(
            ErrorOccurred(run_id=run_id, step=step, kind=type(exc).__name__, message=str(exc))
        )
        finish("error")
        if not hasattr(exc, "run_id"):
            exc.run_id = run_id  # type: ignore[attr-defined]
        raise
    except BaseException:
        # Cancelled or interrupted: keep what happened; the run stays "running" (resumable).
        journal.commit()
        raise


def _capped(spec: RunSpec[Any], usage: Usage) -> ModelSettings:
    """Cap the next call's output tokens to what remains of the token budget."""
    if spec.budget.max_tokens is None:
        return spec.settings
    remaining = max(1, spec.budget.max_tokens - usage.total_tokens)
    current = spec.settings.max_tokens
    if current is not None and current <= remaining:
        return spec.settings
    s = spec.settings
    return ModelSettings(s.temperature, remaining, s.seed, s.top_p)


def _ask(
    model: Model, request: ModelRequest, on_text: Callable[[str], None] | None
) -> Awaitable[ModelResponse]:
    """The model call: plain `generate`, or `stream` forwarding text as it arrives."""
    return model.generate(request) if on_text is None else _streamed(model, request, on_text)


async def _streamed(
    model: Model, request: ModelRequest, on_text: Callable[[str], None]
) -> ModelResponse:
    final: ModelResponse | None = None
    async for item in model.stream(request):
        if isinstance(item, TextDelta):
            on_text(item.text)
        else:
            final = item
    if final is None:
        from pilothouse.exceptions import ModelOutputError

        raise ModelOutputError(f"model {model.name!r} ended its stream without a response")
    return final


async def _within(budget: Budget, started: float, awaitable: Any) -> Any:
    """Await under the run's wall-clock budget; running out is a budget stop."""
    assert budget.max_seconds is not None
    remaining = started + budget.max_seconds - time.monotonic()
    try:
        async with asyncio.timeout(max(0.0, remaining)):
            return await awaitable
    except TimeoutError:
        raise _Stop(
            "budget_stop",
            "seconds",
            round(time.monotonic() - started, 3),
            budget.max_seconds,
            f"seconds budget exhausted ({budget.max_seconds} s) while waiting on the "
            "model or a tool; raise Budget(max_seconds=...) if the task needs more",
        ) from None


async def _run_tools(
    spec: RunSpec[Any],
    journal: Journal,
    step: int,
    calls: Sequence[ToolCall],
    loops: LoopDetector,
    started: float,
) -> list[ToolResult]:
    """Journal, run (concurrently) and journal the results of one response's tool calls."""
    run_id = journal.run_id
    pending: list[tuple[ToolCall, Tool | None, ToolContext]] = []
    effectful = False
    for index, call in enumerate(calls):
        count = loops.see(call.name, call.arguments)
        if count >= loops.limit:
            raise _Stop(
                "loop_stop",
                "loop",
                count,
                loops.limit,
                f"loop detected: {call.name}({call.arguments}) was requested {count} "
                f"times with the same arguments",
            )
        tool = spec.tools.get(call.name)
        context = ToolContext(run_id, step, index)
        journal.emit(
            ToolCalled(
                run_id=run_id,
                step=step,
                index=index,
                call=call,
                idempotency_key=context.idempotency_key,
                effect=tool.effect if tool else "unknown",
            )
        )
        pending.append((call, tool, context))
        effectful = effectful or (tool is not None and tool.effect != "read_only")
    if effectful:
        journal.commit()  # a call that can change the world is on disk before it runs

    async def one(call: ToolCall, tool: Tool | None, context: ToolContext) -> ToolResult:
        began = time.perf_counter()
        if tool is None:
            result = ToolResult(
                call.id,
                call.name,
                f"Unknown tool {call.name!r}. Available tools: "
                f"{', '.join(spec.tools) or '(none)'}.",
                True,
            )
        else:
            result = await tool.execute(call, context)
        journal.emit(
            ToolReturned(
                run_id=run_id,
                step=step,
                index=context.index,
                result=result,
                duration=time.perf_counter() - began,
            )
        )
        return result

    if len(pending) == 1:
        work: Any = one(*pending[0])
    else:
        work = asyncio.gather(*(one(*p) for p in pending))
    done = await (work if spec.budget.max_seconds is None else _within(spec.budget, started, work))
    if effectful:
        journal.commit()  # a side effect's result is on disk before anything else happens
    else:
        journal.checkpoint()
    return [done] if len(pending) == 1 else list(done)
