"""`Agent`: what users write. A model, instructions, typed tools, an output type, budgets.

    agent = Agent("local", instructions="Be brief.", tools=[lookup])
    result = agent.run_sync("What is the capital of France?")
    print(result.output)

Every run is journaled (see `pilothouse.runtime.journal`); `result.run_id` names it
for `pilothouse trace show`. `Agent[Deps, Out]`: `deps_type` declares the live
objects a run is given (`run(..., deps=...)`, read by tools as `ctx.deps`),
`output_type` the answer's type.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, overload

from pilothouse.exceptions import ConfigurationError
from pilothouse.messages import Usage
from pilothouse.models.base import Model, ModelSettings
from pilothouse.prompts import Prompts
from pilothouse.runtime.budget import Budget
from pilothouse.runtime.lease import DEFAULT_LEASE_SECONDS
from pilothouse.runtime.output import OutputSpec, OutputT
from pilothouse.runtime.step import OutputValidator, PrepareStep
from pilothouse.tools.tool import DepsT, Tool, ToolFunction, as_tool

# The run loop, the journal and its stores, the policy engine and the model registry
# load with the first run (or the first look at `agent.policy`), not with
# `from pilothouse import Agent`: defining agents and tools stays cheap to import.
if TYPE_CHECKING:
    from pilothouse.actions.base import ActionFormat
    from pilothouse.events import Event, RunStatus
    from pilothouse.messages import Message
    from pilothouse.models.base import TextDelta
    from pilothouse.policy import Approver, Policy, Principal
    from pilothouse.runtime.journal import Store, Subscriber
    from pilothouse.runtime.loop import RunLink, RunResult, RunSpec
    from pilothouse.runtime.session import Session
    from pilothouse.runtime.workers import DrainReport

_ACTION_FORMATS = ("auto", "native", "json", "react", "xml")
T = TypeVar("T")
V = TypeVar("V", bound=OutputValidator)


def _tool_definition(tool: Tool) -> dict[str, Any]:
    """What defines a tool for resume: its spec and effect, and a `fingerprint` where the
    tool has one (an MCP tool's server tool-list hash: a server that changed its tools
    since the run started changes the agent's definition, and resume refuses it)."""
    definition = tool.spec().to_dict() | {"effect": tool.effect}
    fingerprint = getattr(tool, "fingerprint", None)
    return definition if fingerprint is None else definition | {"fingerprint": fingerprint}


def new_run_id() -> str:
    """A short, time-sortable, collision-resistant run id."""
    return f"{int(time.time() * 1000):x}-{secrets.token_hex(5)}"


class Agent(Generic[DepsT, OutputT]):
    """An LLM that decides its next step: call a tool or answer.

    `model` is a `Model` or a model string (see `pilothouse.models.registry`); the
    default is the embedded local model. `output_type` is `str` or any type pydantic
    can validate (a `BaseModel`, a dataclass, ...). `max_steps` bounds model calls;
    `budget` adds token, time, cost and loop limits. `store` is where journals go
    (default ``./.pilothouse/journal.db``; ``":memory:"`` keeps them in process).
    `policy` (a `Policy` or a YAML file path) checks every tool call before it runs;
    without one, side-effecting and irreversible tools are denied. `approver` decides
    calls a policy rule sends to a human (``ask``); without it, ``ask`` means deny.
    `deps_type` is the type of the run's dependencies (`run(..., deps=...)`), which
    tools (`ToolContext[Deps].deps`), hooks, validators and policy predicates read;
    `prepare_step` shapes each step (see `StepOptions`); output validators
    (`@agent.output_validator`) check an answer beyond its type. `session_text` is how
    an answer reads in its session, i.e. what later turns show the model (default: the
    output as text, a structured one as JSON); the journal's `final_output` keeps the
    value itself. It must be a pure function of the output: a resumed or replayed run
    calls it again and must write the same message.
    """

    @overload
    def __init__(
        self: Agent[DepsT, str],
        model: Model | str | None = None,
        instructions: str = "",
        tools: Iterable[Tool | ToolFunction] = (),
        output_type: type[str] = str,
        *,
        name: str = "agent",
        max_steps: int | None = None,
        budget: Budget | None = None,
        settings: ModelSettings | None = None,
        output_retries: int = 2,
        store: Store | str | None = None,
        policy: Policy | str | None = None,
        approver: Approver | None = None,
        action_format: str | ActionFormat = "auto",
        parse_retries: int = 2,
        deps_type: type[DepsT] | None = None,
        prepare_step: PrepareStep | None = None,
        prompts: Prompts | Mapping[str, str] | None = None,
        session_text: Callable[[str], str] | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        model: Model | str | None = None,
        instructions: str = "",
        tools: Iterable[Tool | ToolFunction] = (),
        *,
        output_type: type[OutputT],
        name: str = "agent",
        max_steps: int | None = None,
        budget: Budget | None = None,
        settings: ModelSettings | None = None,
        output_retries: int = 2,
        store: Store | str | None = None,
        policy: Policy | str | None = None,
        approver: Approver | None = None,
        action_format: str | ActionFormat = "auto",
        parse_retries: int = 2,
        deps_type: type[DepsT] | None = None,
        prepare_step: PrepareStep | None = None,
        prompts: Prompts | Mapping[str, str] | None = None,
        session_text: Callable[[OutputT], str] | None = None,
    ) -> None: ...

    def __init__(
        self,
        model: Model | str | None = None,
        instructions: str = "",
        tools: Iterable[Tool | ToolFunction] = (),
        output_type: Any = str,
        *,
        name: str = "agent",
        max_steps: int | None = None,
        budget: Budget | None = None,
        settings: ModelSettings | None = None,
        output_retries: int = 2,
        store: Store | str | None = None,
        policy: Policy | str | None = None,
        approver: Approver | None = None,
        action_format: str | ActionFormat = "auto",
        parse_retries: int = 2,
        deps_type: Any = None,
        prepare_step: PrepareStep | None = None,
        prompts: Prompts | Mapping[str, str] | None = None,
        session_text: Callable[[Any], str] | None = None,
    ) -> None:
        self.name = name
        self.instructions = instructions
        self.tools: dict[str, Tool] = {}
        for t in tools:
            tool = as_tool(t)
            if tool.name in self.tools:
                raise ConfigurationError(f"agent {name!r}: two tools are named {tool.name!r}")
            self.tools[tool.name] = tool
        self._output: OutputSpec[OutputT] = OutputSpec(output_type)
        budget = budget or Budget()
        if max_steps is not None:
            if max_steps < 1:
                raise ConfigurationError("max_steps must be at least 1")
            budget = Budget(
                max_steps,
                budget.max_tokens,
                budget.max_seconds,
                budget.max_cost,
                budget.max_repeats,
            )
        self.budget = budget
        self.settings = settings or ModelSettings()
        if output_retries < 0:
            raise ConfigurationError("output_retries must be 0 or more")
        self.output_retries = output_retries
        self._model_spec = model
        self._model: Model | None = (
            model if model is not None and not isinstance(model, str) else None
        )
        # No policy means the default one: read-only tools allowed, side-effecting and
        # irreversible tools denied. Pass Policy.allow_all() to opt out explicitly.
        if isinstance(policy, str):
            from pilothouse.policy import Policy

            policy = Policy.load(policy)
        self._policy: Policy | None = policy
        self.approver = approver
        if isinstance(action_format, str) and action_format not in _ACTION_FORMATS:
            raise ConfigurationError(
                f"unknown action_format {action_format!r}; use auto, native, json, react, "
                "xml or an ActionFormat"
            )
        if parse_retries < 0:
            raise ConfigurationError("parse_retries must be 0 or more")
        self.action_format = action_format
        self.parse_retries = parse_retries
        self._store_spec = store
        self._store: Store | None = None
        self._run_spec: RunSpec[OutputT] | None = None
        if prepare_step is not None and not callable(prepare_step):
            raise ConfigurationError("prepare_step must be a function (ctx) -> StepOptions | None")
        self.deps_type = deps_type
        self.prepare_step = prepare_step
        # every text the framework writes to the model, with this agent's overrides
        # (checked here: a missing or unknown field is refused before any run)
        self.prompts = Prompts.of(prompts)
        self._validators: list[tuple[OutputValidator, int]] = []
        if session_text is not None and not callable(session_text):
            raise ConfigurationError("session_text must be a function (output) -> str")
        self.session_text = session_text

    @property
    def policy(self) -> Policy:
        """The policy every tool call is checked against (the default one if none was given)."""
        if self._policy is None:
            from pilothouse.policy import Policy

            self._policy = Policy()
        return self._policy

    @policy.setter
    def policy(self, policy: Policy) -> None:
        self._policy = policy

    @property
    def model(self) -> Model:
        """The resolved model (resolved on first use, so constructing an agent is cheap)."""
        if self._model is None:
            from pilothouse.models.registry import resolve_model

            self._model = resolve_model(cast(str | None, self._model_spec))
        return self._model

    @property
    def store(self) -> Store:
        if self._store is None:
            from pilothouse.runtime.journal import open_store

            self._store = open_store(self._store_spec)
        return self._store

    def output_validator(self, function: V) -> V:
        """Register a check of the final answer (a decorator): ``f(output)`` or
        ``f(ctx, output)``, sync or async, returning the output (possibly corrected) or
        raising `ModelRetry("why")` to refuse it: the model is asked again with that
        message, using up one of `output_retries`. Validators run in order."""
        from pilothouse.runtime.step import validator_arity

        arity = validator_arity(function)
        if self._run_spec is not None:
            raise ConfigurationError(
                f"agent {self.name!r} has already run: register output validators before"
            )
        self._validators.append((function, arity))
        return function

    @property
    def model_given(self) -> Model | str | None:
        """The model as given: a model string stays unresolved until the agent runs
        (replay reads its capabilities without loading or connecting to it)."""
        return self._model if self._model is not None else self._model_spec

    def run_spec(self, model: Model | None = None) -> RunSpec[OutputT]:
        """The loop's view of this agent, built once (an agent is not changed after use).

        For the runtime's own drivers (child runs, workers, replay). With `model`: the
        same definition around another model (replay's recorded one), built afresh."""
        if model is not None:
            return self._build_spec(model)
        if self._run_spec is None:
            self._run_spec = self._build_spec(self.model)
        return self._run_spec

    def _build_spec(self, model: Model) -> RunSpec[OutputT]:
        text_format = self._text_format(model)
        definition = json.dumps(
            {
                "model": model.name,
                "instructions": self.instructions,
                "tools": [_tool_definition(t) for t in self.tools.values()],
                "output": self._output.schema,
            }
            | ({} if text_format is None else {"action_format": text_format.name})
            | ({"prompts": self.prompts.overrides} if self.prompts.overrides else {}),
            sort_keys=True,
        )
        from pilothouse.runtime.loop import RunSpec

        return RunSpec(
            agent_name=self.name,
            model=model,
            instructions=self.instructions,
            tools=self.tools,
            output=self._output,
            budget=self.budget,
            settings=self.settings,
            output_retries=self.output_retries,
            definition_hash=hashlib.sha256(definition.encode()).hexdigest()[:16],
            policy=self.policy,
            approver=self.approver,
            action_format=text_format,
            parse_retries=self.parse_retries,
            deps_type=self.deps_type,
            prepare_step=self.prepare_step,
            output_validators=tuple(self._validators),
            prompts=self.prompts,
            session_text=self.session_text,
        )

    def _text_format(self, model: Model) -> ActionFormat | None:
        """The text action format in use, or None for the model's native tool calls.

        "auto" means native calling where the model has it (or, like the embedded
        model, constrains its own tool calls with a grammar) and `json` otherwise.
        """
        chosen = self.action_format
        caps = model.capabilities
        if chosen == "native" or (chosen == "auto" and (caps.native_tools or caps.grammar)):
            return None
        from pilothouse.actions.formats import TextFormat, get_format  # text formats only

        fmt = get_format("json" if chosen == "auto" else chosen)
        return fmt.with_prompts(self.prompts) if isinstance(fmt, TextFormat) else fmt

    async def run(
        self,
        input: str,
        *,
        history: Sequence[Message] = (),
        session: Session | str | None = None,
        deps: DepsT | None = None,
        run_id: str | None = None,
        subscribers: Sequence[Subscriber] = (),
        principal: Principal | None = None,
    ) -> RunResult[OutputT]:
        """Run the agent on one input. Budget and loop stops are outcomes, errors raise.

        `session` (a `Session` or its id) makes the run a turn of that conversation:
        its context is the session's messages (read, not copied into the journal), its
        input and final answer are appended to the session, and a turn already in
        progress on the session raises `SessionBusyError`. `history` instead gives the
        earlier conversation by hand (recorded once in the run's journal). `deps` are
        the run's dependencies (required when the agent declares `deps_type`; never
        journaled: give them again to `resume`). `principal` (end user, role) is what
        policy conditions on `principal` read. A run that needs a person (a tool with
        `requires_approval`, a policy ``ask`` without an approver, `ask_human`)
        returns with outcome ``paused``; see `resume`.
        """
        from pilothouse.runtime.drive import start_run

        return await start_run(
            self.run_spec(),
            self.store,
            input,
            run_id or new_run_id(),
            subscribers=subscribers,
            principal=principal,
            history=history,
            deps=deps,
            link=self._link(session),
        )

    def _link(self, session: Session | str | None) -> RunLink | None:
        """The run's place for a turn of `session` (checked to exist in this store)."""
        if session is None:
            return None
        session_id = session if isinstance(session, str) else session.id
        self.store.get_session(session_id)  # SessionNotFoundError names it
        from pilothouse.runtime.loop import RunLink

        return RunLink(session_id=session_id)

    async def resume(
        self,
        run_id: str,
        *,
        approvals: Mapping[str, bool | str] | None = None,
        approved_by: str = "",
        settle: Mapping[str, bool | str] | None = None,
        deps: DepsT | None = None,
        subscribers: Sequence[Subscriber] = (),
        principal: Principal | None = None,
        holder: str | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> RunResult[OutputT]:
        """Continue a run that stopped (crash, kill, cancel, pause) from its journal.

        Answered model calls are not made again and recorded tool results are reused;
        a call that started without a recorded result follows its tool's `on_doubt`
        (see `tool`). A paused run continues with `approvals`, keyed by the waiting
        calls' keys (`RunResult.pending`): True or False for an approval, the answer
        text for an `ask_human` question; each decision is journaled (with
        `approved_by`) before anything runs, and a run with calls still undecided stays
        paused. A run stopped ``in_doubt`` (a side-effecting call that may have run,
        whose tool says "ask") continues with `settle`, keyed by the in-doubt calls'
        keys (`ToolCallInDoubtError.idempotency_key`): what a person found in the world,
        the call's result text, True (it took effect) or False (it did not; the model
        may call again); journaled (with `approved_by`) with the result the model
        reads, and the call is never run again. The run acts for the principal it was
        started for (journaled with its start); a different `principal` raises
        `ConfigurationError`. `deps` are given again (they are live objects, not in the
        journal).
        Raises `RunNotFoundError` for an unknown id, `RunFinishedError` for a
        run that already ended, `ConfigurationError` if this agent's definition differs
        from the one that started the run, `ApprovalError` for an approval of a call
        that is not waiting or a settlement of a call that is not in doubt,
        `ToolCallInDoubtError` for an in-doubt side effect whose tool says "ask" and
        which `settle` does not settle. New events continue the run's sequence numbers; nothing
        recorded is rewritten.

        The run's lease is taken before its journal is read (see
        `pilothouse.runtime.lease`): while another live process drives or resumes it,
        this raises `RunLeasedError` (naming the holder and the expiry) and writes
        nothing. `holder` is the lease holder's id (a worker passes its own and
        releases the lease itself; default: a new one for this call, released when
        it ends), `lease_seconds` how long the lease lasts unrenewed.
        """
        from pilothouse.runtime.drive import resume_run

        return await resume_run(
            self.run_spec(),
            self.store,
            run_id,
            approvals=approvals,
            approved_by=approved_by,
            settle=settle,
            subscribers=subscribers,
            principal=principal,
            holder=holder,
            lease_seconds=lease_seconds,
            deps=deps,
        )

    async def resume_stale(
        self,
        *,
        worker: str | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        idle_for: float = 0.0,
        limit: int | None = None,
        statuses: Sequence[RunStatus] = ("running", "interrupted"),
        deps: DepsT | None = None,
    ) -> DrainReport:
        """Drain this agent's stopped runs from its store: claim one, resume it, release
        it, take the next (see `pilothouse.runtime.workers.resume_stale`).

        Runs in as many processes as you like against one shared store; a run is never
        taken by two of them. `statuses` are those a run may have to be taken
        (``running`` and ``interrupted`` by default: paused and in-doubt runs wait for a
        person unless listed)."""
        from pilothouse.runtime.workers import resume_stale

        return await resume_stale(
            self.run_spec(),
            self.store,
            worker=worker,
            lease_seconds=lease_seconds,
            idle_for=idle_for,
            limit=limit,
            statuses=statuses,
            deps=deps,
        )

    def resume_sync(
        self,
        run_id: str,
        *,
        approvals: Mapping[str, bool | str] | None = None,
        approved_by: str = "",
        settle: Mapping[str, bool | str] | None = None,
        deps: DepsT | None = None,
        subscribers: Sequence[Subscriber] = (),
        principal: Principal | None = None,
    ) -> RunResult[OutputT]:
        """`resume` for code without an event loop."""
        return _blocking(
            "resume",
            lambda: self.resume(
                run_id,
                approvals=approvals,
                approved_by=approved_by,
                settle=settle,
                deps=deps,
                subscribers=subscribers,
                principal=principal,
            ),
        )

    def run_sync(
        self,
        input: str,
        *,
        history: Sequence[Message] = (),
        session: Session | str | None = None,
        deps: DepsT | None = None,
        run_id: str | None = None,
        subscribers: Sequence[Subscriber] = (),
        principal: Principal | None = None,
    ) -> RunResult[OutputT]:
        """`run` for code without an event loop."""
        return _blocking(
            "run",
            lambda: self.run(
                input,
                history=history,
                session=session,
                deps=deps,
                run_id=run_id,
                subscribers=subscribers,
                principal=principal,
            ),
        )

    async def stream(
        self,
        input: str,
        *,
        history: Sequence[Message] = (),
        session: Session | str | None = None,
        deps: DepsT | None = None,
        run_id: str | None = None,
        principal: Principal | None = None,
        subscribers: Sequence[Subscriber] = (),
    ) -> AsyncIterator[Event | TextDelta]:
        """Yield each journal event as it happens, and text deltas as the model writes.

        The last item is the `final`, `run_stopped` or `error` event; an error is
        re-raised after its event has been yielded. `subscribers` also get each event
        (a tracer: `pilothouse.telemetry.Telemetry`), as with `run`.
        """
        from pilothouse.models.base import TextDelta
        from pilothouse.runtime.drive import start_run

        queue: asyncio.Queue[Event | TextDelta | None] = asyncio.Queue()
        link = self._link(session)

        async def drive() -> RunResult[OutputT]:
            try:
                return await start_run(
                    self.run_spec(),
                    self.store,
                    input,
                    run_id or new_run_id(),
                    subscribers=[queue.put_nowait, *subscribers],
                    principal=principal,
                    history=history,
                    deps=deps,
                    link=link,
                    on_text=lambda t: queue.put_nowait(TextDelta(t)),
                )
            finally:
                queue.put_nowait(None)

        task = asyncio.ensure_future(drive())
        try:
            while (item := await queue.get()) is not None:
                yield item
            task.result()  # re-raise an error from the run
        finally:
            if not task.done():
                task.cancel()

    def render_prompt(self, input: str, *, deps: DepsT | None = None) -> str:
        """Exactly what the model would receive for this input, in the model's own form.

        With a `prepare_step` hook, the first step as the hook shapes it (given `deps`);
        from inside an event loop that needs `await agent.arender_prompt(...)`. For a
        guided model (the embedded one), the first stage of the first step: the exact
        prompt text the inner model receives and the schema (and grammar) on its reply.
        """
        spec = self.run_spec()
        if spec.prepare_step is not None:
            return _blocking("render_prompt", lambda: self.arender_prompt(input, deps=deps))
        from pilothouse.models.base import ModelRequest
        from pilothouse.runtime.loop import render_request

        specs = [t.spec() for t in self.tools.values()]
        request = ModelRequest(
            spec.initial_messages(input),
            specs if spec.action_format is None else [],
            spec.reply_schema(specs),
            "auto",
            self.settings,
        )
        return render_request(self.model, request)

    async def arender_prompt(self, input: str, *, deps: DepsT | None = None) -> str:
        """`render_prompt` for code inside an event loop (a hook may be async)."""
        spec = self.run_spec()
        if spec.prepare_step is None:
            return self.render_prompt(input)
        from pilothouse.runtime.loop import hooked_request, render_request

        request, _, _, _ = await hooked_request(
            spec, "render", 1, spec.initial_messages(input), Usage(), deps
        )
        return render_request(self.model, request)

    def __repr__(self) -> str:
        return f"Agent({self.name!r}, tools={list(self.tools)})"


def _blocking(name: str, start: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `start()` to completion for code without an event loop (`run_sync`, ...).

    Inside a running loop `asyncio.run` would fail obscurely; say what to do instead.
    The coroutine is only created when it can run, so none is left un-awaited.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(start())
    raise ConfigurationError(
        f"{name}_sync() was called inside a running event loop; use `await agent.{name}(...)`"
    )
