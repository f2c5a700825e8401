"""Chains: a fixed sequence of typed steps, each one's output the next one's input.

A step is a Python function (`step`), a model call with a prompt template
(`prompt_step`: a child agent run without tools, so the request, the reply and the
output's validation are journaled like any agent's), a tool (`tool_step`, checked by
a `Policy` like every tool call) or an agent (`agent_step`). Each declares its input
and output types (pydantic models or plain types; a function's come from its
annotations). Between steps the value is validated against the next step's input
type, and each step's output against its own output type: a mismatch is a
`StepValidationError` naming the step and what did not fit, journaled as the step's
failure.

A chain runs as a flow: a graph of one node per step over a one-key state, so it is
journaled, resumable and budgeted the same way (docs/flows.md).
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from string import Template
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from pilothouse.agent import Agent
from pilothouse.exceptions import FlowDefinitionError, StepValidationError, ToolError
from pilothouse.messages import ToolCall, Usage
from pilothouse.models.base import Model
from pilothouse.policy.context import RunContext
from pilothouse.policy.engine import Policy, Principal
from pilothouse.prompts import PromptTemplate
from pilothouse.runtime.budget import Budget
from pilothouse.runtime.journal import Store, Subscriber
from pilothouse.tools.tool import Tool, ToolContext, as_tool

from .graph import END, START, Flow, Graph
from .nodes import NodeContext, check_name
from .state import replace

__all__ = ["Chain", "ChainResult", "Step", "agent_step", "prompt_step", "step", "tool_step"]

Out = TypeVar("Out")
StepKind = Literal["function", "prompt", "tool", "agent"]


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a chain: its name, kind, input and output types, and what runs.

    `fn` is the function (kind ``function``), or for ``prompt`` and ``agent`` steps the
    input-to-prompt renderer; `agent` the agent a ``prompt`` or ``agent`` step runs;
    `tool` the tool of a ``tool`` step."""

    name: str
    kind: StepKind
    input: Any
    output: Any
    fn: Callable[..., Any] | None = None
    agent: Any = None
    tool: Tool | None = None


def _hints(fn: Callable[..., Any]) -> tuple[Any, Any]:
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        hints = dict(getattr(fn, "__annotations__", {}))
    params = [p for p in hints if p != "return"]
    found = (hints[params[0]] if params else Any), hints.get("return", Any)
    for hint in found:
        if isinstance(hint, str):
            raise FlowDefinitionError(
                f"cannot resolve the annotation {hint!r} of {getattr(fn, '__name__', fn)!r} "
                "(a name local to a function?): give step(..., input=, output=) instead"
            )
    return found


def step(
    fn: Callable[..., Any], *, name: str | None = None, input: Any = None, output: Any = None
) -> Step:
    """A function step: ``fn(value)``, sync or async; its types from its annotations
    unless `input` / `output` say otherwise."""
    if not callable(fn):
        raise FlowDefinitionError(f"step() needs a function, not {type(fn).__name__}")
    hinted_in, hinted_out = _hints(fn)
    return Step(
        check_name(name or fn.__name__),
        "function",
        hinted_in if input is None else input,
        hinted_out if output is None else output,
        fn=fn,
    )


def _template(name: str, text: str, input: Any) -> PromptTemplate:
    """A step's prompt as data, checked against the fields its input has."""
    template = Template(text)
    if not template.is_valid():
        raise FlowDefinitionError(
            f"the prompt of step {name!r} has a '$' that starts no field (write $$ for a $)"
        )
    used = set(template.get_identifiers())
    if isinstance(input, type) and issubclass(input, BaseModel):
        known = set(input.model_fields)
    else:
        known = {"input"}
    unknown = sorted(used - known)
    if unknown:
        raise FlowDefinitionError(
            f"the prompt of step {name!r} uses {', '.join('$' + u for u in unknown)}, which its "
            f"input does not have (it has: {', '.join('$' + k for k in sorted(known))})"
        )
    return PromptTemplate(name, text, frozenset(used))


def _renderer(template: PromptTemplate) -> Callable[[Any], str]:
    def render(value: Any) -> str:
        values = dict(value) if isinstance(value, BaseModel) else {"input": value}
        return template.render(**{k: values[k] for k in template.fields})

    return render


def prompt_step(
    name: str,
    template: str,
    *,
    model: Model | str,
    input: Any = str,
    output: Any = str,
    instructions: str = "",
    output_retries: int = 2,
) -> Step:
    """A model call: `template` (``$field`` of the input model, or ``$input`` for a plain
    input) rendered from the step's input and sent to `model`; its reply validated as
    `output` (retried like an agent's answer). Runs as a child agent run, so the
    request and reply are on the record."""
    rendered = _template(name, template, input)
    agent: Agent[None, Any] = Agent(
        model,
        instructions,
        output_type=output,
        name=check_name(name),
        max_steps=1 + output_retries,
        output_retries=output_retries,
    )
    return Step(name, "prompt", input, output, fn=_renderer(rendered), agent=agent)


def agent_step(name: str, agent: Any, *, input: Any = str, prompt: str | None = None) -> Step:
    """An agent as a step: its input is `str(value)` or, with `prompt`, that template
    rendered from the value; its output type is the agent's."""
    if getattr(agent, "run_spec", None) is None:
        raise FlowDefinitionError(f"agent_step {name!r} needs an Agent")
    render = _renderer(_template(name, prompt, input)) if prompt is not None else str
    output = agent.run_spec().output.output_type
    return Step(check_name(name), "agent", input, output, fn=render, agent=agent)


def tool_step(
    tool: Tool | Callable[..., Any], *, name: str | None = None, output: Any = None
) -> Step:
    """A tool as a step: the input (a model or a dict) is its arguments; it passes the
    chain's `Policy` like any tool call. The output type is the function's return type."""
    made = as_tool(tool)
    hinted = typing.get_type_hints(made.function).get("return", str)
    return Step(
        check_name(name or made.name),
        "tool",
        Any,  # the tool validates its arguments against its own schema
        hinted if output is None else output,
        tool=made,
    )


class _Value(BaseModel):
    """A chain's state: the value between two steps."""

    value: Annotated[Any, replace] = None


@dataclass(slots=True)
class ChainResult(Generic[Out]):
    """A chain's output (validated as its last step's output type), its run and usage."""

    run_id: str
    output: Out
    usage: Usage
    steps: int


class Chain(Generic[Out]):
    """Steps run in order (see the module). `policy` checks tool steps (default: the
    default policy, which refuses side-effecting tools: pass one that allows them);
    `budget` covers every step's model use."""

    def __init__(
        self,
        steps: Sequence[Step | Callable[..., Any]],
        *,
        name: str = "chain",
        policy: Policy | None = None,
        budget: Budget | None = None,
    ) -> None:
        if not steps:
            raise FlowDefinitionError(f"chain {name!r} has no steps")
        self.steps = [s if isinstance(s, Step) else step(s) for s in steps]
        names = [s.name for s in self.steps]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise FlowDefinitionError(f"chain {name!r}: two steps are named {', '.join(twice)}")
        for before, after in zip(self.steps, self.steps[1:], strict=False):
            _check_link(name, before, after)
        self.name = check_name(name)
        self.policy = policy or Policy()
        self._inputs = [TypeAdapter(s.input) for s in self.steps]
        self._outputs = [TypeAdapter(s.output) for s in self.steps]
        graph = Graph(_Value, name=self.name, budget=budget)
        previous = START
        for i, s in enumerate(self.steps):
            if s.kind in ("prompt", "agent"):
                graph.agent(s.name, s.agent, prompt=self._prompt(i), output=self._output(i))
            else:
                graph.node(s.name, self._function(i))
            graph.edge(previous, s.name)
            previous = s.name
        graph.edge(previous, END)
        self.flow: Flow[_Value] = graph.build()

    # -- validation between steps ---------------------------------------------------

    def _check(self, i: int, value: Any, ctx: NodeContext, side: str) -> Any:
        s = self.steps[i]
        adapter = self._inputs[i] if side == "input" else self._outputs[i]
        try:
            return adapter.validate_python(value)
        except ValidationError as exc:
            wanted = s.input if side == "input" else s.output
            source = (
                "the chain's input"
                if side == "input" and i == 0
                else f"the output of step {i} {self.steps[i - 1].name!r}"
                if side == "input"
                else "what it returned"
            )
            problems = "; ".join(
                f"{'.'.join(str(x) for x in e['loc']) or 'value'}: {e['msg']}"
                for e in exc.errors()[:3]
            )
            raise StepValidationError(
                f"chain {self.name!r}, step {i + 1} {s.name!r}: its {side} must be "
                f"{_type_name(wanted)}, and {source} does not fit: {problems}",
                run_id=ctx.run_id,
                node=s.name,
                key=ctx.key,
            ) from None

    def _function(self, i: int) -> Callable[..., Any]:
        s = self.steps[i]

        async def run(state: _Value, ctx: NodeContext) -> dict[str, Any]:
            value = self._check(i, state.value, ctx, "input")
            if s.kind == "tool":
                result: Any = await self._tool(s, value, ctx)
            else:
                assert s.fn is not None
                result = s.fn(value)
                if hasattr(result, "__await__"):
                    result = await result
            return {"value": self._check(i, result, ctx, "output")}

        return run

    async def _tool(self, s: Step, value: Any, ctx: NodeContext) -> Any:
        tool = s.tool
        assert tool is not None
        if isinstance(value, BaseModel):
            arguments = value.model_dump()
        elif isinstance(value, dict):
            arguments = value
        else:
            raise StepValidationError(
                f"chain {self.name!r}, tool step {s.name!r}: its input must be a model or a "
                f"dict of the tool's arguments, not {type(value).__name__}",
                run_id=ctx.run_id,
                node=s.name,
                key=ctx.key,
            )
        kwargs = tool.validate(arguments)
        call = ToolCall(ctx.key, tool.name, kwargs)
        decision = self.policy.check(call, RunContext(), effect=tool.effect)
        if not decision.allowed:
            raise ToolError(
                f"the policy refused tool step {s.name!r} ({decision.rule}): {decision.reason}"
            )
        context: ToolContext[Any] = ToolContext(run_id=ctx.run_id, step=0, index=0, deps=ctx.deps)
        result = await tool.invoke(call, kwargs, context)
        if result.is_error:
            raise ToolError(result.content)
        if s.output is str:
            return result.content
        try:
            return json.loads(result.content)
        except ValueError:
            return result.content

    def _prompt(self, i: int) -> Callable[..., str]:
        s = self.steps[i]

        def render(state: _Value, ctx: NodeContext) -> str:
            value = self._check(i, state.value, ctx, "input")
            assert s.fn is not None
            return str(s.fn(value))

        return render

    def _output(self, i: int) -> Callable[[Any, Any], dict[str, Any]]:
        def out(state: _Value, output: Any) -> dict[str, Any]:
            return {"value": output}  # the agent validated it against its output type

        return out

    # -- running --------------------------------------------------------------------

    async def run(
        self,
        input: Any,
        *,
        store: Store | str | None = None,
        run_id: str | None = None,
        deps: Any = None,
        principal: Principal | None = None,
        subscribers: Sequence[Subscriber] = (),
    ) -> ChainResult[Out]:
        """Run the steps on `input` as one journaled flow run; the output is the last
        step's, validated. A value that does not fit raises `StepValidationError`."""
        result = await self.flow.run(
            {"value": input},
            store=store,
            run_id=run_id,
            deps=deps,
            principal=principal,
            subscribers=subscribers,
        )
        return self._result(result)

    async def resume(
        self,
        run_id: str,
        *,
        store: Store | str | None = None,
        deps: Any = None,
        settle: Mapping[str, bool | str] | None = None,
        approved_by: str = "",
    ) -> ChainResult[Out]:
        """Continue a chain run after a crash: finished steps are not run again. An
        agent step whose side effect is in doubt (`ToolCallInDoubtError`) continues with
        `settle`, a person's word on that call by its key, as `Flow.resume` takes it."""
        result = await self.flow.resume(
            run_id, store=store, deps=deps, settle=settle, approved_by=approved_by
        )
        return self._result(result)

    def _result(self, result: Any) -> ChainResult[Out]:
        value = result.state.value
        output = self._outputs[-1].validate_python(value)
        return ChainResult(result.run_id, output, result.usage, result.steps)

    def run_sync(self, input: Any, **kw: Any) -> ChainResult[Out]:
        """`run` for code without an event loop."""
        import asyncio

        return asyncio.run(self.run(input, **kw))

    def mermaid(self) -> str:
        """The chain as a Mermaid flowchart."""
        return self.flow.mermaid()


def _type_name(kind: Any) -> str:
    return getattr(kind, "__name__", None) or repr(kind)


def _check_link(chain: str, before: Step, after: Step) -> None:
    """What can be told before running: a model output lacking a field the next
    step's model input requires."""
    out, into = before.output, after.input
    if not (isinstance(out, type) and isinstance(into, type)):
        return
    if issubclass(out, BaseModel) and issubclass(into, BaseModel) and not issubclass(out, into):
        required = {n for n, f in into.model_fields.items() if f.is_required()}
        missing = sorted(required - set(out.model_fields))
        if missing:
            raise FlowDefinitionError(
                f"chain {chain!r}: step {before.name!r} outputs {out.__name__}, which lacks "
                f"{', '.join(missing)} that step {after.name!r} needs ({into.__name__})"
            )
