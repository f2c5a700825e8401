"""`@tool`: a typed Python function becomes a tool whose signature *is* its schema.

The name comes from the function, the description from its docstring (with
per-parameter descriptions from a Google-style ``Args:`` section or
``Annotated[..., Field(description=...)]``), the JSON schema from the signature
through pydantic. Arguments from the model are validated before the call; a
validation error goes back to the model as a result it can act on.

Sync tools run inline on the event loop (no thread hop per call) unless marked
``blocking=True``; async tools are awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import re
import sys
import threading
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, overload

from pydantic_core import ValidationError, to_json
from typing_extensions import TypeVar

from pilothouse.exceptions import (
    ConfigurationError,
    ToolCallInDoubtError,
    ToolDefinitionError,
    ToolError,
    ToolTimeoutError,
)
from pilothouse.messages import ToolCall, ToolResult
from pilothouse.models.base import ToolSpec

Effect = Literal["read_only", "side_effect", "irreversible"]
_EFFECTS = ("read_only", "side_effect", "irreversible")
OnDoubt = Literal["retry", "reconcile", "ask"]
Interrupt = Literal["approval", "question"]
_ON_DOUBT = ("retry", "reconcile", "ask")
# reconcile(context, arguments) -> the call's result if its effect happened, else None.
Reconcile = Callable[["ToolContext[Any]", dict[str, Any]], Any]


DepsT = TypeVar("DepsT", default=None)


class ChildRunner(Protocol):
    """Starts or re-attaches child runs for a tool (see `pilothouse.runtime.children`)."""

    async def run_child(
        self, context: ToolContext[Any], agent: Any, input: str, key: str | None, deps: Any
    ) -> Any: ...

    async def run_children(
        self, context: ToolContext[Any], children: Sequence[tuple[Any, str, str]], deps: Any
    ) -> list[Any]: ...


_SAME: Any = object()  # run_child's default deps: the parent's

# The calls (ids of their ToolContexts) whose children's lock the running task holds,
# inherited by every task it starts (its child's steps and tools): such a child asking
# the same call for another child would wait for its own end, so it is refused instead.
_HOLDING: ContextVar[frozenset[int]] = ContextVar("pilothouse_children_held", default=frozenset())


@dataclass(slots=True)
class ToolContext(Generic[DepsT]):
    """Handed to a tool that declares a parameter of this type (hidden from the model).

    `idempotency_key` is stable for one call of one run (run, step, call index), so a
    side-effecting tool can pass it on to the system it changes and a retried call
    is recognised there as the same call. `deps` are the run's dependencies
    (`agent.run(..., deps=...)`): live objects, never journaled.
    """

    run_id: str
    step: int
    index: int
    deps: DepsT = None  # type: ignore[assignment]
    runner: ChildRunner | None = field(default=None, repr=False, compare=False)
    children: int = field(default=0, repr=False, compare=False)
    # The run journal's `emit`, for a tool that records an event of its own (a knowledge
    # base's `retrieval`); None outside a run's loop.
    emit: Callable[[Any], Any] | None = field(default=None, repr=False, compare=False)
    # held while a child of this call runs: children started side by side any way
    # but `run_children` run one after another, in the order they were started
    one_at_a_time: asyncio.Lock | None = field(default=None, repr=False, compare=False)
    # the call has returned: a child whose turn comes now is not started (`_ended`)
    ended: bool = field(default=False, repr=False, compare=False)

    @property
    def idempotency_key(self) -> str:
        return f"{self.run_id}:{self.step}:{self.index}"

    async def run_child(
        self, agent: Any, input: str, *, key: str | None = None, deps: Any = _SAME
    ) -> Any:
        """Run `agent` on `input` as a child of this run; return its `RunResult`.

        Exactly once: the child's run id comes from this call's idempotency key and
        `key` (default: the count of children this call started, so one call may start
        several), so a parent resumed after a crash re-attaches to the child it had
        started: a finished child's recorded result is returned without running it
        again, a stopped one is resumed, and none is started twice. A tool that
        delegates is therefore safe to run again: declare it ``on_doubt="retry"``.
        The child draws from this run's remaining budget (its own limits are capped
        to it), its usage rolls up into this run's, it acts for the same principal,
        and gets `deps` (default: this run's).
        """
        runner, held = self._runner("run_child")
        self.children += 1
        # named now: a child waiting for its turn must not read a count grown meanwhile
        name = key if key is not None else str(self.children)
        async with self._alone("run_child", held):
            return await runner.run_child(
                self, agent, input, name, self.deps if deps is _SAME else deps
            )

    async def run_children(
        self,
        children: Sequence[tuple[Any, str]],
        *,
        keys: Sequence[str] | None = None,
        deps: Any = _SAME,
    ) -> list[Any]:
        """Run several children side by side, `(agent, input)` each; return their
        `RunResult`s in order.

        Exactly once like `run_child` (`keys` name them; default: their count in this
        call, as `run_child` counts). This call's share of the run's budget is split
        evenly between them, so fanning out buys no budget: starting children side by
        side any other way (`asyncio.gather` over `run_child`) runs them one after
        another instead, each capped to what the ones before it left, since how many
        would run at once is not known when the first starts. Every child runs to its
        end before a failure of one is raised.
        """
        runner, held = self._runner("run_children")
        if keys is not None and len(keys) != len(children):
            raise ConfigurationError(
                f"run_children got {len(children)} children and {len(keys)} keys"
            )
        named = [
            (agent, input, keys[i] if keys is not None else str(self.children + 1 + i))
            for i, (agent, input) in enumerate(children)
        ]
        self.children += len(named)
        async with self._alone("run_children", held):
            return await runner.run_children(self, named, self.deps if deps is _SAME else deps)

    def _runner(self, what: str) -> tuple[ChildRunner, frozenset[int]]:
        """The runner that starts this call's children, and the calls whose children's
        lock this task holds, if this call is not one of them: a child of this call
        asking it for another child would wait forever for its own turn (the lock is
        held until that child ends)."""
        if self.runner is None:
            raise ConfigurationError(
                f"{what}() needs a running agent: this ToolContext was not made by a run"
            )
        held = _HOLDING.get()
        if id(self) in held:
            raise ConfigurationError(
                f"{what}() called, inside a child of this tool call, on the call's own "
                "ToolContext: it would wait for that child to end. A child delegates "
                "through its own ToolContext (a tool of its own taking one)"
            )
        return self.runner, held

    @contextlib.asynccontextmanager
    async def _alone(self, what: str, held: frozenset[int]) -> AsyncIterator[None]:
        """This call's turn to run children: a child capped from what the call has left
        runs alone (the call's lock), so that what it leaves is counted before the next
        one's cap (two children sharing a cap would each be allowed all of it); none
        starts once the call has returned, and the task marks the lock as held."""
        if self.one_at_a_time is None:
            self.one_at_a_time = asyncio.Lock()
        async with self.one_at_a_time:
            if self.ended:
                raise ConfigurationError(
                    f"{what}() after the tool call had returned (a child left waiting for "
                    "its turn by a gather that raised, or a task the tool did not await): "
                    "not started, since the call's record and budget are closed"
                )
            token = _HOLDING.set(held | {id(self)})
            try:
                yield
            finally:
                _HOLDING.reset(token)

    async def _ended(self) -> None:
        """The call has returned or raised: no child starts after this, and the one
        running (a gather that raised on a failing sibling does not stop it) is waited
        for, so every child is started, finished and rolled up within its call."""
        self.ended = True
        if self.one_at_a_time is not None:
            async with self.one_at_a_time:  # the waiting ones, queued first, refuse
                pass


class ToolArgumentError(ValueError):
    """The model's arguments did not satisfy the tool's schema; the message is for the model."""


_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters):\s*$")
_ARG_LINE = re.compile(r"^\s+(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SECTION = re.compile(r"^\s*(Returns|Raises|Yields|Examples?|Notes?):\s*$")


def _parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a docstring into the description and per-parameter descriptions."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    description: list[str] = []
    params: dict[str, str] = {}
    current: str | None = None
    in_args = False
    for line in lines:
        if _ARGS_HEADER.match(line):
            in_args = True
            continue
        if _SECTION.match(line):
            in_args = False
            current = None
            continue
        if in_args:
            m = _ARG_LINE.match("    " + line if not line.startswith(" ") else line)
            if m and not line.startswith("        "):
                current = m.group(1).lstrip("*")
                params[current] = m.group(2).strip()
            elif current and line.strip():
                params[current] = f"{params[current]} {line.strip()}"
            continue
        if current is None:
            description.append(line)
    return "\n".join(description).strip(), params


def _strip_titles(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop pydantic's generated titles: they cost tokens and tell a model nothing."""
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)
    for sub in schema.get("$defs", {}).values():
        if isinstance(sub, dict):
            _strip_titles(sub)
    return schema


def _serialise(value: Any) -> str:
    """Turn a tool's return value into the text the model reads."""
    if isinstance(value, str):
        return value
    return to_json(value).decode()


def _format_validation_error(name: str, error: Any) -> str:
    parts = []
    for e in error.errors(include_url=False):
        loc = ".".join(str(p) for p in e["loc"]) or "(arguments)"
        parts.append(f"{loc}: {e['msg']}")
    return f"Invalid arguments for tool {name!r}: " + "; ".join(parts)


class Tool:
    """A callable the model may use: schema, validation, effect kind and execution."""

    __slots__ = (
        "_context_param",
        "_validator",
        "blocking",
        "description",
        "effect",
        "function",
        "interrupt",
        "is_async",
        "name",
        "on_doubt",
        "parameters",
        "reconcile",
        "timeout",
        "title",
    )

    def __init__(
        self,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        title: str | None = None,
        effect: Effect = "read_only",
        blocking: bool = False,
        localns: dict[str, Any] | None = None,
        on_doubt: OnDoubt | None = None,
        reconcile: Reconcile | None = None,
        requires_approval: bool = False,
        interrupt: Interrupt | None = None,
        timeout: float | None = None,
    ) -> None:
        if effect not in _EFFECTS:
            raise ToolDefinitionError(f"effect must be one of {_EFFECTS}, not {effect!r}")
        if on_doubt is None:
            on_doubt = "reconcile" if reconcile is not None else "ask"
        if on_doubt not in _ON_DOUBT:
            raise ToolDefinitionError(f"on_doubt must be one of {_ON_DOUBT}, not {on_doubt!r}")
        if on_doubt == "reconcile" and reconcile is None:
            raise ToolDefinitionError(
                'on_doubt="reconcile" needs reconcile=a function (context, arguments) that '
                "returns the call's result if its effect happened, else None"
            )
        # What resume does with a call of this tool that started but has no recorded
        # result (read-only tools are always run again; see `pilothouse.runtime.resume`).
        self.on_doubt: OnDoubt = on_doubt
        self.reconcile = reconcile
        # A call of this tool pauses the run for a human: "approval" (requires_approval)
        # before it runs, or "question" (`ask_human`: the human's answer is the result).
        if interrupt is not None and interrupt not in ("approval", "question"):
            raise ToolDefinitionError(
                f"interrupt must be 'approval' or 'question', not {interrupt!r}"
            )
        self.interrupt: Interrupt | None = interrupt or ("approval" if requires_approval else None)
        self.function = function
        self.name = name or function.__name__
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}", self.name):
            raise ToolDefinitionError(
                f"tool name {self.name!r} must be 1-64 letters, digits, '_', '.' or '-'"
            )
        doc_description, param_docs = _parse_docstring(function.__doc__)
        self.description = description if description is not None else doc_description
        self.title = title
        self.effect: Effect = effect
        self.blocking = blocking
        self.is_async = inspect.iscoroutinefunction(function)
        if timeout is not None and not (timeout > 0 and (self.is_async or blocking)):
            raise ToolDefinitionError(
                f"tool {self.name!r}: a timeout is a number of seconds > 0, for an async "
                "function or blocking=True (a plain function runs inline and cannot be "
                "stopped)"
            )
        self.timeout = timeout
        self._context_param: str | None = None
        self._validator, self.parameters = self._build_schema(param_docs, localns)

    def _build_schema(
        self, param_docs: dict[str, str], localns: dict[str, Any] | None
    ) -> tuple[Any, dict[str, Any]]:
        try:
            # localns resolves string annotations naming classes local to the defining function.
            hints = typing.get_type_hints(self.function, localns=localns, include_extras=True)
        except Exception as exc:  # NameError on an unresolvable forward reference
            raise ToolDefinitionError(
                f"tool {self.name!r}: cannot resolve its type hints ({exc})"
            ) from exc
        # pydantic's model machinery loads with the first tool, not with `import pilothouse`
        from pydantic import ConfigDict, Field, create_model
        from pydantic.errors import PydanticSchemaGenerationError, PydanticUserError

        fields: dict[str, Any] = {}
        for pname, param in inspect.signature(self.function).parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise ToolDefinitionError(
                    f"tool {self.name!r}: *{pname}/**{pname} cannot be described to a model; "
                    "list the parameters explicitly"
                )
            if param.kind is param.POSITIONAL_ONLY:
                raise ToolDefinitionError(
                    f"tool {self.name!r}: parameter {pname!r} is positional-only; "
                    "tools are called with keyword arguments"
                )
            annotation = hints.get(pname, inspect.Parameter.empty)
            if annotation is ToolContext or typing.get_origin(annotation) is ToolContext:
                self._context_param = pname
                continue
            if annotation is inspect.Parameter.empty:
                raise ToolDefinitionError(
                    f"tool {self.name!r}: parameter {pname!r} has no type annotation; "
                    "annotate it (for example `{pname}: str`) so a schema can be made"
                )
            default = ... if param.default is param.empty else param.default
            doc = param_docs.get(pname)
            fields[pname] = (annotation, Field(default, description=doc) if doc else default)
        try:
            model = create_model(
                f"{self.name}_arguments",
                __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=False),
                **fields,
            )
            schema = _strip_titles(model.model_json_schema())
        except (PydanticSchemaGenerationError, PydanticUserError, TypeError) as exc:
            raise ToolDefinitionError(
                f"tool {self.name!r}: its signature cannot become a JSON schema ({exc}). "
                "Use JSON-compatible types: str, int, float, bool, list, dict, Literal, "
                "enums, dataclasses or pydantic models"
            ) from exc
        return (model if fields else None), schema

    @property
    def takes_context(self) -> bool:
        """Whether the function asks for a `ToolContext` (only such a tool can start
        child runs, so a run whose tools do not needs no run tree)."""
        return self._context_param is not None

    def spec(self) -> ToolSpec:
        """What the model is told about this tool."""
        return ToolSpec(self.name, self.description, self.parameters)

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Check arguments against the schema and bind defaults; raise ToolArgumentError."""
        if self._validator is None:
            if arguments:
                raise ToolArgumentError(
                    f"Invalid arguments for tool {self.name!r}: it takes no arguments, "
                    f"got {sorted(arguments)}"
                )
            return {}
        try:
            # The model's core validator directly: model_validate adds a Python layer.
            model = self._validator.__pydantic_validator__.validate_python(arguments)
        except ValidationError as exc:
            raise ToolArgumentError(_format_validation_error(self.name, exc)) from None
        return dict(model.__dict__)  # the validated fields, defaults bound

    async def execute(self, call: ToolCall, context: ToolContext) -> ToolResult:
        """Validate and run one call; any failure becomes an error result for the model."""
        prepared = self.prepare(call)
        if isinstance(prepared, ToolResult):
            return prepared
        return await self.invoke(call, prepared, context)

    def prepare(self, call: ToolCall) -> dict[str, Any] | ToolResult:
        """Validate a call's arguments and bind defaults: the kwargs, or an error result.

        The loop calls this, then `Policy.check` on the validated arguments, then
        `invoke`; `execute` is the two steps without a policy.
        """
        if call.parse_error is not None:
            return ToolResult(
                call.id,
                self.name,
                f"Could not parse arguments for tool {self.name!r}: "
                f"{call.parse_error}. Send a JSON object matching the schema.",
                True,
            )
        try:
            return self.validate(call.arguments)
        except ToolArgumentError as exc:
            return ToolResult(call.id, self.name, str(exc), True)

    async def invoke(
        self, call: ToolCall, kwargs: dict[str, Any], context: ToolContext
    ) -> ToolResult:
        """Run the function on already validated arguments (from `prepare`).

        An exception is the error result the model reads, except `ToolCallInDoubtError`
        from a child run (`ctx.run_child`): the child stopped in doubt, so this call's
        outcome is unknown too and it stops this run in doubt, up to the root, until a
        person settles the child's call. Told to a model as an error instead, a parent
        could delegate the same effect again."""
        if self._context_param is not None:
            kwargs[self._context_param] = context
        try:
            if self.timeout is not None:
                return await self._invoke_timed(call, kwargs, self.timeout)
            try:
                if self.is_async:
                    value = await self.function(**kwargs)
                elif self.blocking:
                    value = await asyncio.to_thread(self.function, **kwargs)
                else:
                    value = self.function(**kwargs)
            except ToolCallInDoubtError:
                raise  # a child run's side effect is in doubt: so is this call (see below)
            except Exception as exc:
                return self._failed(call, exc)
            return self._returned(call, value)
        finally:
            if self._context_param is not None:
                await context._ended()

    async def _invoke_timed(
        self, call: ToolCall, kwargs: dict[str, Any], seconds: float
    ) -> ToolResult:
        """`invoke` under the tool's timeout. A read-only call that runs out is an error
        the model reads; any other raises `ToolTimeoutError` (whether it happened is
        unknown: the run applies `on_doubt`). A blocking function's thread cannot be
        stopped: it finishes in the background and its result is dropped."""
        try:
            async with asyncio.timeout(seconds) as limit:
                if self.is_async:
                    value = await self.function(**kwargs)
                else:
                    value = await _in_own_thread(self.function, kwargs, self.name)
        except TimeoutError as exc:
            if not limit.expired():
                return self._failed(call, exc)  # the tool's own timeout, not this one
            message = f"Tool {self.name!r} did not answer within {seconds:g} s"
            if self.effect == "read_only":
                return ToolResult(call.id, self.name, message + " and was stopped.", True)
            raise ToolTimeoutError(message, tool=self.name, seconds=seconds) from None
        except ToolCallInDoubtError:
            raise
        except Exception as exc:
            return self._failed(call, exc)
        return self._returned(call, value)

    def _failed(self, call: ToolCall, exc: Exception) -> ToolResult:
        if isinstance(exc, ToolError):
            return ToolResult(call.id, self.name, str(exc), True)
        return ToolResult(
            call.id, self.name, f"Tool {self.name!r} failed: {type(exc).__name__}: {exc}", True
        )

    def _returned(self, call: ToolCall, value: Any) -> ToolResult:
        try:
            content = _serialise(value)
        except Exception as exc:
            return ToolResult(
                call.id,
                self.name,
                f"Tool {self.name!r} returned a value that cannot be serialised "
                f"({type(value).__name__}): {exc}",
                True,
            )
        return ToolResult(call.id, self.name, content, False)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the underlying function directly, as plain Python."""
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Tool({self.name!r}, effect={self.effect!r})"


ToolFunction = Callable[..., Any] | Callable[..., Awaitable[Any]]


async def _in_own_thread(function: Callable[..., Any], kwargs: dict[str, Any], name: str) -> Any:
    """`function(**kwargs)` in a daemon thread of its own (with the caller's context
    variables), awaited. A timed-out blocking tool cannot be stopped; in the default
    executor its thread would hold up `asyncio.run` (and so `Agent.run_sync`) until it
    finished, so a timed tool's thread is one nobody waits for."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if done.done():  # stopped by the timeout: the late result goes nowhere
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(value)

    def work() -> None:
        try:
            value, error = function(**kwargs), None
        except BaseException as exc:  # handed to the awaiting task, as to_thread does
            value, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(settle, value, error)

    context = contextvars.copy_context()
    threading.Thread(target=context.run, args=(work,), name=f"tool:{name}", daemon=True).start()
    return await done


@overload
def tool(function: ToolFunction, /) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    title: str | None = None,
    effect: Effect = "read_only",
    blocking: bool = False,
    on_doubt: OnDoubt | None = None,
    reconcile: Reconcile | None = None,
    requires_approval: bool = False,
    timeout: float | None = None,
) -> Callable[[ToolFunction], Tool]: ...


def tool(
    function: ToolFunction | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    title: str | None = None,
    effect: Effect = "read_only",
    blocking: bool = False,
    on_doubt: OnDoubt | None = None,
    reconcile: Reconcile | None = None,
    requires_approval: bool = False,
    timeout: float | None = None,
) -> Tool | Callable[[ToolFunction], Tool]:
    """Turn a typed function into a `Tool`; use bare (`@tool`) or with options.

    `effect` tells the policy and durability layers what the call does to the world:
    `read_only` (default), `side_effect` or `irreversible`. `blocking=True` runs a
    sync function in a worker thread instead of inline. `on_doubt` says what a resumed
    run does with a side-effecting call that started but has no recorded result:
    "retry" (the tool is idempotent, e.g. it passes `ToolContext.idempotency_key` on),
    "reconcile" (`reconcile(context, arguments)` returns the result if the effect
    happened, None if not) or "ask" (the default: the run stops with
    `ToolCallInDoubtError`; never a silent second execution). `requires_approval=True`
    pauses the run before every call of this tool until a human decides
    (`Agent.resume(run_id, approvals={key: True/False})`), even where the policy allows it.
    `timeout` (seconds; an async function or ``blocking=True``) stops a call that takes
    longer: a read-only tool's call becomes an error the model reads; any other call's
    effect is unknown, so the run applies `on_doubt` to it at once ("retry": the model
    reads that it timed out and may call again; "reconcile": its result is looked up;
    "ask": the run stops ``in_doubt``).
    """

    def make(fn: ToolFunction, localns: dict[str, Any]) -> Tool:
        return Tool(
            fn,
            name=name,
            description=description,
            title=title,
            effect=effect,
            blocking=blocking,
            localns=localns,
            on_doubt=on_doubt,
            reconcile=reconcile,
            requires_approval=requires_approval,
            timeout=timeout,
        )

    if function is not None:
        return make(function, sys._getframe(1).f_locals)

    def wrap(fn: ToolFunction) -> Tool:
        return make(fn, sys._getframe(1).f_locals)

    return wrap


def as_tool(obj: Tool | ToolFunction) -> Tool:
    """Accept a `Tool` or a plain function wherever tools are listed."""
    return obj if isinstance(obj, Tool) else Tool(obj)
