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
import contextlib
import inspect
import itertools
import logging
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, cast

from pydantic_core import to_json, to_jsonable_python

from pilothouse.decision import Decision
from pilothouse.events import (
    ApprovalGiven,
    ApprovalRequested,
    ErrorOccurred,
    FinalOutput,
    HookModelCalled,
    ModelFallback,
    ModelRequested,
    ModelResponded,
    ModelRouted,
    Outcome,
    OutputValidated,
    ParseFailed,
    RunStarted,
    RunStatus,
    StageRequested,
    StageResponded,
    Stopped,
    StopReason,
    ToolCalled,
    ToolReturned,
)
from pilothouse.exceptions import (
    BudgetExceeded,
    ConfigurationError,
    LeaseLostError,
    LoopDetected,
    ModelRetry,
    OutputValidationError,
    PolicyDenied,
    RunInterrupted,
    RunPaused,
    RunStopped,
    SessionBusyError,
    SessionNotFoundError,
    StoreError,
    ToolCallInDoubtError,
    ToolTimeoutError,
    WriteConflictError,
)
from pilothouse.messages import Message, ToolCall, ToolResult, Usage
from pilothouse.models.base import (
    Model,
    ModelLog,
    ModelRequest,
    ModelResponse,
    ModelSettings,
    Reporting,
    Stage,
    Staged,
    StreamItem,
    TextDelta,
    ToolSpec,
)
from pilothouse.policy import Approver, CallRecord, Policy, Principal, RunContext
from pilothouse.prompts import Prompts
from pilothouse.runtime.budget import Budget, LoopDetector
from pilothouse.runtime.journal import Journal
from pilothouse.runtime.output import OutputSpec, OutputT
from pilothouse.runtime.policy_source import JournalCalls
from pilothouse.runtime.rows import RunInfo, SessionWrite
from pilothouse.runtime.step import (
    OutputValidator,
    PrepareStep,
    StepContext,
    StepOptions,
    call_maybe_async,
    check_options,
)
from pilothouse.tools.tool import ChildRunner, Tool, ToolContext

if TYPE_CHECKING:
    from pilothouse.actions.base import ActionFormat

_log = logging.getLogger("pilothouse.loop")
# `ModelResponse.model` of a step a `prepare_step` hook answered itself (no model call).
HOOK_ANSWER = "prepare_step"


@dataclass(frozen=True, slots=True)
class PendingRequest:
    """A tool call the paused run waits on: an approval, or a question for a person.

    Answer it with `Agent.resume(run_id, approvals={request.key: ...})`: True or False
    for an approval, the answer text for a question.
    """

    key: str  # the call's idempotency key, "run_id:step:index"
    kind: str  # "approval" | "question"
    tool: str
    arguments: dict[str, Any]
    reason: str  # why approval is needed, or the question
    step: int
    index: int

    @classmethod
    def from_event(cls, event: ApprovalRequested) -> PendingRequest:
        """The request an `approval_requested` event records."""
        call = event.call
        return cls(
            event.key, event.kind, call.name, call.arguments, event.reason, event.step, event.index
        )


@dataclass(slots=True)
class RunResult(Generic[OutputT]):
    """How a run ended. `output` raises `RunStopped` if it ended without one.

    A run waiting for a person has outcome ``paused`` and lists what it waits on in
    `pending`; it is continued with `Agent.resume(run_id, approvals=...)`.
    """

    run_id: str
    outcome: Outcome
    usage: Usage
    steps: int
    messages: list[Message]
    _output: Any = None
    stop: Stopped | None = None  # the `run_stopped` event of a stopped run
    pending: list[PendingRequest] = field(default_factory=list)
    # the steps of its finished child runs, theirs included: what a parent counts
    # against its `max_steps` beside `steps` (a tree's steps add up at every level)
    child_steps: int = 0

    @property
    def ok(self) -> bool:
        return self.outcome == "final"

    @property
    def output(self) -> OutputT:
        if self.outcome == "final":
            return self._output  # type: ignore[no-any-return]
        if self.outcome == "paused":
            waiting = "; ".join(f"{p.key} ({p.kind} for {p.tool})" for p in self.pending)
            raise RunPaused(
                f"run {self.run_id} is waiting for a person: {waiting}. Continue it with "
                "agent.resume(run_id, approvals={key: True/False or an answer})",
                run_id=self.run_id,
                outcome=self.outcome,
            )
        assert self.stop is not None
        kind: type[RunStopped] = {
            "loop_stop": LoopDetected,
            "output_invalid": OutputValidationError,
            "policy_stop": PolicyDenied,
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
    policy: Policy | None = None
    approver: Approver | None = None
    # A text action format (json, react, xml, ...): its instructions join the system
    # prompt, tools are not sent natively and the reply text is parsed. None: native.
    action_format: ActionFormat | None = None
    parse_retries: int = 2
    deps_type: Any = None
    prepare_step: PrepareStep | None = None
    # (validator, how many arguments it takes: 1 = (output), 2 = (ctx, output))
    output_validators: tuple[tuple[OutputValidator, int], ...] = ()
    # every text the loop itself writes to the model (prompts.toml, with overrides)
    prompts: Prompts = field(default_factory=Prompts.default)
    # how the answer reads in the run's session (None: the output as text or JSON)
    session_text: Callable[[Any], str] | None = None

    def system_prompt(
        self, instructions: str | None = None, tools: Sequence[Tool] | None = None
    ) -> str:
        """The system message: instructions, then how to act (a text format) and answer.

        `instructions` and `tools` default to the agent's; a step hook passes its own.
        """
        base = self.instructions if instructions is None else instructions
        offered = list(self.tools.values()) if tools is None else tools
        extra = self.output.instructions(self.prompts)
        if self.action_format is not None and offered:
            acting = self.action_format.instructions([t.spec() for t in offered])
            extra = f"{acting}\n\n{extra}".strip() if extra else acting
        return f"{base}\n\n{extra}".strip() if extra else base

    def reply_schema(self, tool_specs: list[ToolSpec]) -> dict[str, Any] | None:
        """The schema a reply is held to: the output's, or the text format's own.

        A model that decodes under a grammar (the embedded one) is held to a text
        format where the format can say itself as a JSON schema (`json` can).
        """
        fmt = self.action_format
        if fmt is not None and self.model.capabilities.grammar and tool_specs:
            constrain = getattr(fmt, "reply_schema", None)
            if constrain is not None:
                schema = constrain(tool_specs, self.output.schema)
                if isinstance(schema, dict):
                    return schema
        return self.output.schema

    def initial_messages(self, user_input: str, history: Sequence[Message] = ()) -> list[Message]:
        """System prompt, the earlier conversation (if any), then the new user input."""
        system = self.system_prompt()
        messages = [Message.system(system)] if system else []
        messages.extend(history)
        messages.append(Message.user(user_input))
        return messages


@dataclass(slots=True)
class ToolReplay:
    """The recorded tool events of the step a resumed run continues from.

    `called`: the step's `tool_call` events by call index; `results`: its recorded
    results. A call in `called` without a result is in doubt, unless the step paused
    for a person (`requested`) and was not released before the stop: then none of
    its calls ran. `given` holds the decisions made so far; `released` says every
    request had a recorded decision before the stop, so execution may have begun.
    """

    called: dict[int, ToolCalled] = field(default_factory=dict)
    results: dict[int, ToolResult] = field(default_factory=dict)
    requested: dict[int, ApprovalRequested] = field(default_factory=dict)
    given: dict[int, ApprovalGiven] = field(default_factory=dict)
    released: bool = False


@dataclass(slots=True)
class RunState:
    """Where a run stands: built fresh for a new run, or from its journal on resume.

    `response` is a recorded model reply of `step` still to act on (resume after a
    model call was answered), with `replay` holding that step's recorded tool events.
    """

    user_input: str
    messages: list[Message]
    policy_context: RunContext
    loops: LoopDetector
    created: float
    reported: int = 0
    usage: Usage = field(default_factory=Usage)
    step: int = 0
    retries_left: int = 0
    parse_retries_left: int = 0
    resumed: bool = False
    response: ModelResponse | None = None
    replay: ToolReplay | None = None
    # steps used by this run's finished children (they draw from this run's max_steps)
    child_steps: int = 0
    # the tools the step `response` answers offered, when a step hook narrowed them
    offered: list[str] | None = None
    session_id: str | None = None
    # responses step hooks got from models (`hook_model_call` events): key -> (purpose,
    # response); a resumed run's hooks are served these instead of asking again
    hook_calls: dict[str, tuple[str, ModelResponse]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunLink:
    """Where a new run sits: its parent in the run tree, and the session it is a turn of.

    `session_writes` False: the run only reads its context from the session (a team
    member's turn reads the team's transcript, which the team writes) and appends
    nothing to it; it is not listed among the session's runs."""

    parent_run_id: str | None = None
    root_run_id: str | None = None
    parent_key: str | None = None
    session_id: str | None = None
    session_writes: bool = True


class RunTree(ChildRunner, Protocol):
    """The loop's side of the run tree (`pilothouse.runtime.drive.ChildRuns`)."""

    def observe(
        self,
        step: int,
        usage: Usage,
        child_steps: int,
        started: float,
        shares: Mapping[int, tuple[int, int]] | None = None,
        *,
        alongside: bool = False,
    ) -> None:
        """What the run has used so far, before a step's tools run (children are capped
        to what remains, split as `shares` says: call index to (place, how many))."""
        ...

    def take(self) -> tuple[Usage, int] | None:
        """Usage and steps of the children that finished since the last call (None:
        nothing to add)."""
        ...


class _Stop(Exception):
    """Internal: a budget, the loop detector, retries or a policy abort ended the run."""

    def __init__(
        self,
        reason: StopReason,
        value: float | None,
        maximum: float | None,
        message: str,
        rule: str | None = None,
    ):
        super().__init__(message)
        self.reason, self.value, self.maximum, self.rule = reason, value, maximum, rule


class _Pause(Exception):
    """Internal: calls of this step wait for a person; the run pauses before any runs."""

    def __init__(self, pending: list[PendingRequest]):
        super().__init__("waiting for a person")
        self.pending = pending


async def run_loop(
    spec: RunSpec[OutputT],
    user_input: str,
    journal: Journal,
    *,
    on_text: Callable[[str], None] | None = None,
    principal: Principal | None = None,
    state: RunState | None = None,
    history: Sequence[Message] = (),
    deps: Any = None,
    tree: RunTree | None = None,
    link: RunLink | None = None,
) -> RunResult[OutputT]:
    """Run one agent to its end, journaling every step. Errors propagate after journaling.

    `history` is the new run's context (earlier turns, or its session's messages when
    `link` names a session); `deps` reach tools, hooks, validators and predicates;
    `tree` starts child runs for tools (`ToolContext.run_child`).

    A new run starts from `user_input`; a resumed one from `state` (see
    `pilothouse.runtime.resume`), through the same loop. Not journaled as errors,
    because the run is not over: `RunInterrupted` (the journal could not be written
    through every retry), `WriteConflictError` and `LeaseLostError` (another process
    drives the run; nothing more is written), cancellation (status ``interrupted``).
    """
    try:
        return await _run_loop(
            spec,
            user_input,
            journal,
            on_text=on_text,
            principal=principal,
            state=state,
            history=history,
            deps=deps,
            tree=tree,
            link=link,
        )
    except _Unwritable as stop:
        # Nothing more can be written: the journal on disk ends at its last good commit
        # (no gap) and its index row does not say the run ended, so it is resumable.
        raise RunInterrupted(str(stop), run_id=journal.run_id) from stop.__cause__


async def _run_loop(
    spec: RunSpec[OutputT],
    user_input: str,
    journal: Journal,
    *,
    on_text: Callable[[str], None] | None = None,
    principal: Principal | None = None,
    state: RunState | None = None,
    history: Sequence[Message] = (),
    deps: Any = None,
    tree: RunTree | None = None,
    link: RunLink | None = None,
) -> RunResult[OutputT]:
    """`run_loop` without the translation of an unwritable journal."""
    run_id = journal.run_id
    link = link or RunLink()
    if state is None:
        messages = spec.initial_messages(user_input, history)
        state = RunState(
            user_input,
            messages,
            # What the policy sees: the principal, trusted user input, executed calls.
            RunContext(principal or Principal(), [user_input]),
            LoopDetector(spec.budget.max_repeats),
            time.time(),
            # The system prompt, the context and the input are recorded once, on
            # run_started (journal version 2): the first model_request adds nothing.
            reported=len(messages),
            retries_left=spec.output_retries,
            parse_retries_left=spec.parse_retries,
            session_id=link.session_id if link.session_writes else None,
        )
    policy_context = state.policy_context
    policy_context.deps = deps
    session_id = state.session_id
    # what `aggregate` conditions read: which run this is, and the journal's other runs
    policy_context.run_id, policy_context.session = run_id, session_id
    if policy_context.aggregates is None and journal.store is not None:
        policy_context.aggregates = {"journal": JournalCalls(journal.store)}

    def new_context(step: int, index: int) -> ToolContext[Any]:
        return ToolContext(run_id, step, index, deps, tree, emit=journal.emit)

    started = time.monotonic()
    guide, guided = _guide_of(spec.model)  # a guided model's tool steps go in stages
    # a model made of models (fallbacks, a router) journals its choices (checked once a
    # run, by attribute: isinstance against a runtime-checkable Protocol costs ~30 µs)
    reporting = cast("Reporting", spec.model) if hasattr(spec.model, "generate_logged") else None
    tool_specs: list[ToolSpec] = [t.spec() for t in spec.tools.values()]
    tool_names = list(spec.tools)
    text_format = spec.action_format
    sent_specs = tool_specs if text_format is None else []  # a text format describes them
    aliases = {t.title: name for name, t in spec.tools.items() if t.title}
    parse_retries_left = state.parse_retries_left
    reply_schema = spec.reply_schema(tool_specs)
    loops = state.loops
    messages = state.messages
    reported = state.reported  # messages[:reported] are already in the journal
    usage = state.usage
    step = state.step
    child_steps = state.child_steps
    retries_left = state.retries_left
    recorded, replay = state.response, state.replay  # a resumed run's unfinished step
    offered: Collection[str] | None = state.offered  # tools a step hook offered
    step_specs = tool_specs
    info = RunInfo(
        run_id,
        spec.agent_name,
        spec.model.name,
        user_input,
        "running",
        state.created,
        time.time(),
        parent_run_id=link.parent_run_id,
        root_run_id=link.root_run_id,
        session_id=session_id,
    )
    journal.set_info(info)
    if state.resumed:
        await _commit(journal)  # the index row says "running" again from the start
    else:
        journal.emit(
            RunStarted(
                run_id=run_id,
                agent=spec.agent_name,
                model=spec.model.name,
                input=user_input,
                instructions=messages[0].content if messages[0].role == "system" else "",
                tools=tool_names,
                output_schema=spec.output.schema,
                definition_hash=spec.definition_hash,
                history=[] if link.session_id is not None else list(history),
                principal=principal.to_dict() if principal is not None else None,
                parent_run_id=link.parent_run_id,
                root_run_id=link.root_run_id,
                parent_key=link.parent_key,
                session_id=link.session_id,
                session_upto=len(history) if link.session_id is not None else 0,
                session_writes=link.session_writes,
                version=2,
            )
        )
        if session_id is not None:  # the turn begins: its input joins the session
            journal.add_session(
                SessionWrite(session_id, run_id, ((0, Message.user(user_input)),), begin=True)
            )
        # On disk before anything else happens: a run that dies at once still exists,
        # so `resume` (or a worker draining stopped runs) can continue it from its input.
        await _commit(journal)

    def index_row(status: RunStatus, output: Any = None) -> None:
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
                info.parent_run_id,
                info.root_run_id,
                info.session_id,
            )
        )

    async def finish(status: RunStatus, output: Any = None) -> None:
        index_row(status, output)
        await _commit(journal, last=True)

    try:
        while True:
            if recorded is None:
                limit = spec.budget.exceeded(step + child_steps, usage, time.monotonic() - started)
                if limit is not None:
                    name, value, maximum = limit
                    raise _Stop(
                        name,
                        value,
                        maximum,
                        f"{name} budget exhausted ({value} of {maximum}); raise the "
                        f"limit in Budget(max_{name}=...) if the task needs more",
                    )
                step += 1
                if spec.prepare_step is None:
                    request = ModelRequest(
                        messages, sent_specs, reply_schema, "auto", _capped(spec, usage)
                    )
                    journal.emit(
                        ModelRequested(
                            run_id=run_id,
                            step=step,
                            new_messages=messages[reported:],
                            tools=tool_names,
                        )
                    )
                    answer = None
                else:
                    hook_models = HookModelJournal(journal, run_id, step, state.hook_calls)
                    request, asked, offered, answer = await hooked_request(
                        spec, run_id, step, messages, usage, deps, hook_models
                    )
                    if hook_models.spent is not None:
                        usage += hook_models.spent
                    asked.new_messages = messages[reported:]
                    journal.emit(asked)
                    step_specs = (
                        tool_specs
                        if offered is None
                        else [t for t in tool_specs if t.name in offered]
                    )
                reported = len(messages)
                began = time.perf_counter()
                if answer is None:
                    asking: Awaitable[ModelResponse]
                    if guide is not None and guided(request):
                        asking = guide.staged(request, _StageJournal(journal, run_id, step))
                    elif reporting is None:
                        asking = _ask(spec.model, request, on_text)
                    else:
                        log = _ModelJournal(journal, run_id, step)
                        asking = _ask_reporting(reporting, request, on_text, log)
                    response = await (
                        asking
                        if spec.budget.max_seconds is None
                        else _within(spec.budget, started, asking)
                    )
                else:  # the application answered this step itself (on the record)
                    response = ModelResponse(answer, model=HOOK_ANSWER)
                    if on_text is not None:
                        on_text(answer)
                usage += response.usage
                journal.emit(
                    ModelResponded(
                        run_id=run_id,
                        step=step,
                        response=response,
                        duration=time.perf_counter() - began,
                    )
                )
            else:  # resumed: this step's model call was answered before the stop
                response, recorded = recorded, None
                if offered is not None:
                    step_specs = [t for t in tool_specs if t.name in offered]
            step_replay, replay = replay, None
            calls = response.tool_calls
            text = response.text
            for c in calls:  # (a plain loop: cheaper than any() on the hot path)
                if c.parse_error is not None:
                    calls = _repair_native(spec, calls, aliases)
                    break
            if text_format is not None and not calls and response.model != HOOK_ANSWER:
                parsed = text_format.parse(text, step_specs, aliases, spec.output.schema)
                if parsed.kind == "tool_call":
                    calls = parsed.tool_calls()
                elif parsed.kind == "final_answer":
                    text = parsed.answer
                else:
                    journal.emit(
                        ParseFailed(
                            run_id=run_id,
                            step=step,
                            format=text_format.name,
                            reason=parsed.reason,
                            text=text[:500],
                            retries_left=parse_retries_left,
                        )
                    )
                    if parse_retries_left <= 0:
                        raise _Stop(
                            "parse_retries",
                            spec.parse_retries,
                            spec.parse_retries,
                            f"the model's reply still could not be read as a "
                            f"{text_format.name} action after {spec.parse_retries} re-asks: "
                            f"{parsed.reason}",
                        )
                    parse_retries_left -= 1
                    messages.append(Message.assistant(text))
                    messages.append(
                        Message.user(
                            corrective_message(spec.prompts, parsed.reason, text_format.name)
                        )
                    )
                    continue
            if text_format is not None and response.model != HOOK_ANSWER:
                messages.append(Message.assistant(response.text))  # the action stays text
            else:
                messages.append(Message.assistant(text, calls))

            if calls:
                if tree is not None:
                    sharing = [
                        i
                        for i, c in enumerate(calls)
                        if (t := spec.tools.get(c.name)) is not None and t.takes_context
                    ]
                    shares = {i: (at, len(sharing)) for at, i in enumerate(sharing)}
                    tree.observe(step, usage, child_steps, started, shares)
                results = await _run_tools(
                    spec,
                    journal,
                    step,
                    calls,
                    loops,
                    started,
                    policy_context,
                    new_context,
                    offered,
                    step_replay,
                )
                if tree is not None and (rolled := tree.take()) is not None:
                    usage += rolled[0]
                    child_steps += rolled[1]
                if text_format is not None:
                    messages.append(Message.user(text_format.observation(results)))
                else:
                    messages.extend(Message.tool(r) for r in results)
                continue

            try:
                if not text.strip():
                    raise ValueError(spec.prompts.render("empty_reply"))
                output = spec.output.validate(text, spec.prompts)
                for validator, arity in spec.output_validators:
                    if arity == 1:
                        output = await call_maybe_async(validator, output)
                    else:
                        ctx = StepContext(run_id, step, messages, usage, deps, spec.tools)
                        output = await call_maybe_async(validator, ctx, output)
            except (ValueError, ModelRetry) as exc:
                journal.emit(OutputValidated(run_id=run_id, step=step, ok=False, error=str(exc)))
                if retries_left <= 0:
                    raise _Stop(
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
            said = None if session_id is None else _session_answer(spec, output, output_json)
            journal.emit(FinalOutput(run_id=run_id, step=step, output=output_json, usage=usage))
            if session_id is not None and said is not None:  # the answer joins the session
                journal.add_session(
                    SessionWrite(session_id, run_id, ((1, Message.assistant(said)),))
                )
            await finish("final", output_json)
            return RunResult(
                run_id, "final", usage, step, messages, output, child_steps=child_steps
            )
    except _Stop as stop:
        stopped = Stopped(
            run_id=run_id,
            step=step,
            reason=stop.reason,
            message=str(stop),
            value=stop.value,
            maximum=stop.maximum,
            rule=stop.rule,
        )
        journal.emit(stopped)
        await finish(stopped.outcome)
        return RunResult(
            run_id, stopped.outcome, usage, step, messages, None, stopped, child_steps=child_steps
        )
    except _Pause as pause:
        await finish("paused")  # the waiting calls are on disk; the process may exit
        return RunResult(
            run_id, "paused", usage, step, messages, pending=pause.pending, child_steps=child_steps
        )
    except ToolCallInDoubtError:
        await finish("in_doubt")  # not an error event: the run stays resumable once decided
        raise
    except (
        _Unwritable,
        WriteConflictError,
        LeaseLostError,
        SessionBusyError,
        SessionNotFoundError,
    ):
        raise  # the store is down, another process drives this run, or the turn never began
    except Exception as exc:
        journal.emit(
            ErrorOccurred(run_id=run_id, step=step, kind=type(exc).__name__, message=str(exc))
        )
        await finish("error")
        if not hasattr(exc, "run_id"):
            exc.run_id = run_id  # type: ignore[attr-defined]
        raise
    except BaseException:
        # Cancelled (a signal, a drain, a lost lease): keep what happened, once, and say
        # "interrupted" so the run is known to be resumable. Nothing waits here.
        index_row("interrupted")
        with contextlib.suppress(StoreError):
            journal.commit(last=True)
        raise


# Waits between attempts to write a commit that failed: about 4 s in all, enough for a
# PostgreSQL failover or a moment of a full disk; longer outages interrupt the run.
COMMIT_RETRY_DELAYS: tuple[float, ...] = (0.05, 0.15, 0.4, 1.0, 2.5)


class _Unwritable(Exception):
    """Internal: the journal could not be written through every retry."""


async def _commit(
    journal: Journal, *, last: bool = False, resume: str = "agent.resume(run_id)"
) -> None:
    """`journal.commit()`, retrying a failed write with bounded backoff.

    The batch keeps its sequence numbers between attempts (`Journal.commit`), so a
    store that recovers leaves no gap; one that stays down raises `_Unwritable`
    and the run ends `RunInterrupted` (resumable). A conflict or a lost lease is not
    transient: it propagates at once.
    """
    delays = iter(COMMIT_RETRY_DELAYS)
    for attempt in itertools.count(1):
        try:
            journal.commit(last=last)
            return
        except (WriteConflictError, LeaseLostError, SessionBusyError, SessionNotFoundError):
            raise  # not transient: another process drives the run, or the turn cannot begin
        except StoreError as exc:
            delay = next(delays, None)
            if delay is None:
                raise _Unwritable(
                    f"run {journal.run_id}: the journal could not be written after {attempt} "
                    f"attempts ({exc}); the run stopped where its journal ends and can be "
                    f"resumed with {resume} once the store is back"
                ) from exc
            _log.warning(
                "run %s: journal write failed (%s); attempt %d of %d in %.2f s",
                journal.run_id,
                exc,
                attempt + 1,
                len(COMMIT_RETRY_DELAYS) + 1,
                delay,
            )
        await asyncio.sleep(delay)


async def hooked_request(
    spec: RunSpec[Any],
    run_id: str,
    step: int,
    messages: list[Message],
    usage: Usage,
    deps: Any,
    models: HookModelJournal | None = None,
) -> tuple[ModelRequest, ModelRequested, list[str] | None, str | None]:
    """The request of a step shaped by the agent's `prepare_step` hook, and its record.

    The `model_request` event records what the hook changed (the tools offered and
    their narrowed schemas, the system prompt, the view of the conversation sent, the
    tool choice, the settings, an answer given without the model), so the journal
    holds the request the model received. Returns (request, event without its new
    messages, the offered tool names or None for all, the hook's answer or None).
    """
    assert spec.prepare_step is not None
    context = StepContext(run_id, step, messages, usage, deps, spec.tools, models)
    options = check_options(await call_maybe_async(spec.prepare_step, context), spec.tools)
    if options is None:
        options = StepOptions()
    if options.stop is not None:
        raise _Stop(options.stop[0], None, None, options.stop[1])
    offered = None if options.tools is None else list(dict.fromkeys(options.tools))
    tools = list(spec.tools.values()) if offered is None else [spec.tools[n] for n in offered]
    narrowed = {k: dict(v) for k, v in (options.schemas or {}).items()}
    specs = [
        t.spec() if t.name not in narrowed else ToolSpec(t.name, t.description, narrowed[t.name])
        for t in tools
    ]
    view = None if options.messages is None else _view(messages, options.messages)
    system: str | None = None
    if options.instructions is not None or (offered is not None and spec.action_format):
        system = spec.system_prompt(options.instructions, tools)
    settings = _capped(spec, usage, options.settings)
    choice = options.tool_choice or "auto"
    event = ModelRequested(
        run_id=run_id,
        step=step,
        new_messages=[],
        tools=list(spec.tools) if offered is None else offered,
        tool_choice=choice,
        instructions=system,
        settings=None if options.settings is None else _settings_dict(settings),
        view=view,
        schemas=narrowed or None,
        answered=options.answer is not None,
    )
    # What is sent is what the journal says was sent: one rule (`ModelRequested.sent`)
    # for the live request and for replay's check of it.
    sent = messages if view is None and system is None else event.sent(messages)
    request = ModelRequest(
        sent,
        specs if spec.action_format is None else [],
        spec.reply_schema(specs),
        choice,
        settings,
    )
    return request, event, offered, options.answer


def _view(messages: Sequence[Message], sent: Sequence[Message]) -> list[int | dict[str, Any]]:
    """How the journal records the messages a hook sent: the position of each one that
    is a message of the conversation (the same object), the message itself otherwise."""
    position = {id(m): i for i, m in enumerate(messages)}
    return [position[id(m)] if id(m) in position else m.to_dict() for m in sent]


def _settings_dict(settings: ModelSettings) -> dict[str, Any]:
    """The settings a step sent, as the journal keeps them (unset ones left out)."""
    return {
        k: v
        for k, v in (
            ("temperature", settings.temperature),
            ("max_tokens", settings.max_tokens),
            ("seed", settings.seed),
            ("top_p", settings.top_p),
        )
        if v is not None
    }


def corrective_message(prompts: Prompts, reason: str, format_name: str) -> str:
    """The short message that asks the model again after an unreadable reply."""
    return prompts.render("parse_retry", reason=reason, format=format_name)


def denied_message(prompts: Prompts, decision: Decision, tool: str) -> str:
    """The error result the model reads when the policy (or a person) refused a call."""
    return prompts.render("policy_denied", tool=tool, reason=decision.message or decision.reason)


def _repair_native(
    spec: RunSpec[Any], calls: Sequence[ToolCall], aliases: dict[str, str]
) -> tuple[ToolCall, ...]:
    """Native calls whose argument strings arrived broken, repaired where that is certain."""
    from pilothouse.actions.formats import NativeFormat  # only on this rare path

    native = NativeFormat()
    out: list[ToolCall] = []
    for call in calls:
        tool = spec.tools.get(call.name)
        if call.parse_error is None or call.raw_arguments is None or tool is None:
            out.append(call)
            continue
        parsed = native.parse(call.raw_arguments, [tool.spec()], aliases)
        if parsed.kind == "tool_call" and len(parsed.calls) == 1:
            out.append(ToolCall(call.id, call.name, parsed.calls[0].args))
        else:
            out.append(call)  # the tool tells the model what was wrong
    return tuple(out)


def _capped(
    spec: RunSpec[Any], usage: Usage, settings: ModelSettings | None = None
) -> ModelSettings:
    """Cap the next call's output tokens to what remains of the token budget."""
    s = spec.settings if settings is None else settings
    if spec.budget.max_tokens is None:
        return s
    remaining = max(1, spec.budget.max_tokens - usage.total_tokens)
    current = s.max_tokens
    if current is not None and current <= remaining:
        return s
    return ModelSettings(s.temperature, remaining, s.seed, s.top_p)


def _session_answer(spec: RunSpec[Any], output: Any, output_json: Any) -> str:
    """The answer's message in the session: the agent's `session_text` of the output,
    else the output as text (a structured one as JSON)."""
    if spec.session_text is not None:
        text = spec.session_text(output)
        if not isinstance(text, str):
            raise ConfigurationError(
                f"agent {spec.agent_name!r}: session_text returned {type(text).__name__}, not str"
            )
        return text
    return output_json if isinstance(output_json, str) else to_json(output_json).decode()


def _guide_of(model: Model) -> tuple[Staged | None, Callable[[ModelRequest], bool]]:
    """The guided construction of a model's tool steps (`pilothouse.guided`), if any,
    and which requests go through it; (None, ...) for a plain model (nothing imported)."""
    if not model.capabilities.guided and not hasattr(model, "staged"):  # (= Staged, fast)
        return None, bool
    from pilothouse.guided import guide_for, needs_guide

    return guide_for(model), needs_guide


def render_request(model: Model, request: ModelRequest) -> str:
    """What `model` receives first for `request`: a guided step's first stage (its exact
    prompt and schema, as the inner model renders them), else the request itself."""
    guide, guided = _guide_of(model)
    render = getattr(guide, "render", None)
    if render is not None and guided(request):
        text: str = render(request)
        return text
    return model.render(request)


class _StageJournal:
    """Journals each generation of a guided step as it happens (`StageLog`).

    A stage records what it adds to the step's request, not the conversation again
    (see `StageRequested`), so the journal stays linear in the run's length.
    """

    __slots__ = ("index", "journal", "run_id", "step")

    def __init__(self, journal: Journal, run_id: str, step: int) -> None:
        self.journal, self.run_id, self.step, self.index = journal, run_id, step, 0

    def requested(self, stage: Stage) -> None:
        sent = stage.request
        self.journal.emit(
            StageRequested(
                run_id=self.run_id,
                step=self.step,
                stage=stage.name,
                index=self.index,
                tools=stage.tools,
                added=stage.added,
                schemas=stage.schemas,
                output_schema=sent.output_schema,
                settings=_settings_dict(sent.settings) or None,
                note=stage.note,
                digest=stage.digest(),
            )
        )

    def responded(
        self, stage: Stage, response: ModelResponse, duration: float, error: str | None = None
    ) -> None:
        self.journal.emit(
            StageResponded(
                run_id=self.run_id,
                step=self.step,
                stage=stage.name,
                index=self.index,
                response=response,
                duration=duration,
                error=error,
            )
        )
        self.index += 1


class HookModelJournal:
    """A step hook's model calls on the record (`HookModels`, one per step): each call
    is journaled as a `hook_model_call` (request, response, usage) before the step's
    `model_request`; a key already recorded (resume, replay) is served, not asked."""

    __slots__ = ("calls", "journal", "run_id", "spent", "step")

    def __init__(
        self,
        journal: Journal,
        run_id: str,
        step: int,
        calls: dict[str, tuple[str, ModelResponse]],
    ) -> None:
        self.journal, self.run_id, self.step, self.calls = journal, run_id, step, calls
        self.spent: Usage | None = None  # what this step's hook calls cost (the loop adds it)

    def preload(self, recorded: Mapping[str, tuple[str, ModelResponse]]) -> None:
        """Serve these recorded calls too (a replay hands over the recording's)."""
        for key, value in recorded.items():
            self.calls.setdefault(key, value)

    def recorded(self, purpose: str) -> dict[str, ModelResponse]:
        return {key: r for key, (p, r) in self.calls.items() if p == purpose}

    async def generate(
        self, model: Model, request: ModelRequest, *, purpose: str, key: str
    ) -> ModelResponse:
        known = self.calls.get(key)
        if known is not None and known[0] == purpose:
            return known[1]
        began = time.perf_counter()
        response = await model.generate(request)
        self.journal.emit(
            HookModelCalled(
                run_id=self.run_id,
                step=self.step,
                purpose=purpose,
                key=key,
                model=response.model or model.name,
                request=[m.to_dict() for m in request.messages],
                settings=_settings_dict(request.settings) or None,
                response=response,
                duration=time.perf_counter() - began,
            )
        )
        self.calls[key] = (purpose, response)
        self.spent = response.usage if self.spent is None else self.spent + response.usage
        return response


class _ModelJournal:
    """Journals what a model made of models decided during one step (`ModelLog`)."""

    __slots__ = ("journal", "run_id", "step")

    def __init__(self, journal: Journal, run_id: str, step: int) -> None:
        self.journal, self.run_id, self.step = journal, run_id, step

    def fell_back(
        self,
        from_model: str,
        to_model: str,
        error: str,
        message: str,
        attempts: int,
        after_output: bool,
    ) -> None:
        self.journal.emit(
            ModelFallback(
                run_id=self.run_id,
                step=self.step,
                from_model=from_model,
                to_model=to_model,
                error=error,
                message=message[:500],
                attempts=attempts,
                after_output=after_output,
            )
        )

    def routed(self, model: str, reason: str, tried: list[str]) -> None:
        self.journal.emit(
            ModelRouted(run_id=self.run_id, step=self.step, model=model, reason=reason, tried=tried)
        )


def _ask_reporting(
    model: Reporting,
    request: ModelRequest,
    on_text: Callable[[str], None] | None,
    log: ModelLog,
) -> Awaitable[ModelResponse]:
    """`_ask` for a model that journals its choices through `log`."""
    if on_text is None:
        return model.generate_logged(request, log)
    return _consume(model.stream_logged(request, log), on_text, getattr(model, "name", "model"))


def _ask(
    model: Model, request: ModelRequest, on_text: Callable[[str], None] | None
) -> Awaitable[ModelResponse]:
    """The model call: plain `generate`, or `stream` forwarding text as it arrives."""
    return model.generate(request) if on_text is None else _streamed(model, request, on_text)


async def _streamed(
    model: Model, request: ModelRequest, on_text: Callable[[str], None]
) -> ModelResponse:
    return await _consume(model.stream(request), on_text, model.name)


async def _consume(
    items: AsyncIterator[StreamItem], on_text: Callable[[str], None], name: str
) -> ModelResponse:
    final: ModelResponse | None = None
    async for item in items:
        if isinstance(item, TextDelta):
            on_text(item.text)
        else:
            final = item
    if final is None:
        from pilothouse.exceptions import ModelOutputError

        raise ModelOutputError(f"model {name!r} ended its stream without a response")
    return final


async def _all_or_none(calls: Iterable[Awaitable[Any]]) -> list[Any]:
    """A step's calls run together, started in index order; when one raises (a team
    member's pause, an interruption), the others are cancelled and awaited before it
    propagates, so no call of a stopped run goes on in the background (a sibling cut
    off inside a side-effecting tool is in doubt on resume, as after a crash)."""
    tasks = [asyncio.ensure_future(c) for c in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _within(budget: Budget, started: float, awaitable: Any) -> Any:
    """Await under the run's wall-clock budget; running out is a budget stop."""
    assert budget.max_seconds is not None
    remaining = started + budget.max_seconds - time.monotonic()
    try:
        async with asyncio.timeout(max(0.0, remaining)):
            return await awaitable
    except TimeoutError:
        raise _Stop(
            "seconds",
            round(time.monotonic() - started, 3),
            budget.max_seconds,
            f"seconds budget exhausted ({budget.max_seconds} s) while waiting on the "
            "model or a tool; raise Budget(max_seconds=...) if the task needs more",
        ) from None


@dataclass(slots=True)
class PlannedCall:
    """One tool call of a step, decided and not yet run: what the step does with it.

    A call runs (`tool.invoke(call, arguments, context)`) unless it already has its
    `result`: the error the model reads instead (unknown tool, invalid arguments, a
    refusal), or, on resume, a result recorded before the stop (`reused`: neither run
    nor journaled again). `request` says it waits for a person: then nothing of the
    step runs. `record` is the policy's provisional history entry, completed once the
    call has run (see `RunContext.record`).
    """

    call: ToolCall
    tool: Tool | None  # None: the agent has no such tool, or this step did not offer it
    context: ToolContext[Any]
    arguments: Any = None  # the validated arguments the tool is invoked with
    result: ToolResult | None = None
    decision: Decision | None = None  # the policy's (None: the call never reached it)
    bound: Any = None  # the arguments as the policy sees them (JSON form when it reads them)
    record: CallRecord | None = None
    request: PendingRequest | None = None
    reused: bool = False

    @property
    def touches_world(self) -> bool:
        """It will run, and its tool is side-effecting or irreversible: a commit point."""
        tool = self.tool
        return self.result is None and tool is not None and tool.effect != "read_only"


async def _run_tools(
    spec: RunSpec[Any],
    journal: Journal,
    step: int,
    calls: Sequence[ToolCall],
    loops: LoopDetector,
    started: float,
    policy_context: RunContext,
    new_context: Callable[[int, int], ToolContext[Any]],
    offered: Collection[str] | None = None,
    replay: ToolReplay | None = None,
) -> list[ToolResult]:
    """Validate, check against the policy, journal, run (concurrently) and journal the results.

    The one choke point: a call runs only if its arguments validated and
    `Policy.check` (or, for an ``ask``, the approver) allowed it. Every decision is
    recorded on the call's `tool_call` event. `replay` (resume only): calls already
    recorded reuse their results or, in doubt, follow their tool's `on_doubt`.
    `offered`: the tools a step hook offered (a call to another is not run).

    Commit points: the step's `tool_call`s are on disk before a side-effecting call
    runs, and its results before anything else happens.
    """
    planned: list[PlannedCall] = []
    waiting: list[PendingRequest] = []  # calls that need a person before the step runs
    touches_world = False  # a call that runs can change the world: commit points 1 and 2
    for index, call in enumerate(calls):
        if replay is not None and index in replay.called:
            context = new_context(step, index)
            plan = await _replanned(spec, replay, context, call, policy_context, offered)
        else:
            _check_repeats(loops, call)
            plan = _plan_call(spec, new_context(step, index), call, policy_context, offered)
            if _asks(plan):
                await _settle_ask(spec, plan, policy_context)
            if plan.result is None and plan.request is None:
                _apply_decision(spec, plan, policy_context)
            _journal_call(journal, plan)
            if _aborts(plan.decision):
                _abort_step(spec.prompts, journal, step, [*planned, plan])
        planned.append(plan)
        if plan.request is not None:
            waiting.append(plan.request)
        elif not touches_world:
            touches_world = plan.touches_world
    if waiting:
        _journal_requests(journal, step, calls, waiting, replay)
        raise _Pause(waiting)
    if touches_world:
        await _commit(journal)  # a call that can change the world is on disk before it runs
    if len(planned) == 1:
        work: Any = _execute(journal, step, planned[0])
    else:
        work = _all_or_none(_execute(journal, step, p) for p in planned)
    done = await (work if spec.budget.max_seconds is None else _within(spec.budget, started, work))
    if touches_world or journal.due():
        await _commit(journal)  # a side effect's result is on disk before anything else
    return [done] if len(planned) == 1 else list(done)


def _check_repeats(loops: LoopDetector, call: ToolCall) -> None:
    """The loop detector: the N-th identical call stops the run before it runs."""
    count = loops.see(call.name, call.arguments)
    if count >= loops.limit:
        raise _Stop(
            "loop",
            count,
            loops.limit,
            f"loop detected: {call.name}({call.arguments}) was requested {count} times with "
            "the same arguments",
        )


def _offered_tool(
    spec: RunSpec[Any], call: ToolCall, offered: Collection[str] | None
) -> Tool | None:
    """The tool a call names, if the agent has it and this step offered it."""
    return spec.tools.get(call.name) if offered is None or call.name in offered else None


def _plan_call(
    spec: RunSpec[Any],
    context: ToolContext[Any],
    call: ToolCall,
    policy_context: RunContext,
    offered: Collection[str] | None,
) -> PlannedCall:
    """A new call, validated and checked by the policy (an ``ask`` is not settled yet)."""
    tool = _offered_tool(spec, call, offered)
    if tool is None:
        return PlannedCall(call, None, context, result=_unknown(spec, call, offered))
    prepared = tool.prepare(call)
    if isinstance(prepared, ToolResult):  # invalid arguments: the model reads why
        return PlannedCall(call, tool, context, result=prepared)
    policy = spec.policy
    bound: Any = call.arguments
    decision: Decision | None = None
    if policy is not None:
        if policy.stateful or policy.has_rules(call.name):
            bound = to_jsonable_python(prepared)
            policy_context.unset = _unset(bound, call.arguments)
        checked = call if bound is call.arguments else ToolCall(call.id, call.name, bound)
        decision = policy.check(checked, policy_context, effect=tool.effect)
    if tool.interrupt is not None:
        decision = _with_tool_interrupt(tool, decision)
    return PlannedCall(call, tool, context, prepared, None, decision, bound)


_NO_NAMES: frozenset[str] = frozenset()


def _unset(bound: Any, given: dict[str, Any]) -> frozenset[str]:
    """The arguments the model left to their defaults: provenance conditions skip them
    (an unset optional argument is not a value anyone chose)."""
    if not isinstance(bound, dict) or len(bound) <= len(given):
        return _NO_NAMES
    return frozenset(k for k in bound if k not in given)


def _with_tool_interrupt(tool: Tool, decision: Decision | None) -> Decision | None:
    """A tool that requires a person's approval turns an allow, or the default deny of
    its effect kind, into an ``ask`` (its author asked for a person, not a refusal)."""
    if tool.interrupt != "approval":
        return decision
    if (
        decision is None
        or decision.allowed
        or (decision.effect == "deny" and decision.source == "default")
    ):
        rule = decision.rule if decision else None
        return Decision.ask(None, f"{tool.name} requires a person's approval", rule, "tool")
    return decision


def _asks(plan: PlannedCall) -> bool:
    """The call's decision is an ``ask``, or its tool asks a person a question."""
    decision = plan.decision
    if decision is not None and decision.effect == "ask":
        return True
    tool = plan.tool
    return tool is not None and tool.interrupt == "question" and plan.result is None


async def _settle_ask(spec: RunSpec[Any], plan: PlannedCall, policy_context: RunContext) -> None:
    """An ``ask`` goes to the in-process approver, or waits for a person (`plan.request`);
    so does an allowed question to a person (`ask_human`)."""
    decision, call = plan.decision, plan.call
    if decision is not None and decision.effect == "ask":
        approver = _approver(spec, spec.policy, decision)
        if approver is None:  # pause: a person decides on resume
            plan.request = _waiting(plan.context, call, decision.reason, "approval")
            return
        checked = ToolCall(call.id, call.name, plan.bound)
        plan.decision = await _ask_approver(approver, checked, decision, policy_context)
    elif decision is None or decision.allowed:
        question = str(call.arguments.get("question", ""))
        plan.request = _waiting(plan.context, call, question, "question")


def _apply_decision(spec: RunSpec[Any], plan: PlannedCall, policy_context: RunContext) -> None:
    """A refused call gets the refusal as its result; a stateful policy remembers the
    refusal, or the call (provisionally, until it has run)."""
    decision, call, tool = plan.decision, plan.call, plan.tool
    assert tool is not None
    policy = spec.policy
    stateful = policy is not None and policy.stateful
    if decision is not None and not decision.allowed:
        message = denied_message(spec.prompts, decision, call.name)
        plan.result = ToolResult(call.id, call.name, message, True)
        if stateful and tool.effect != "read_only":
            policy_context.record_denied(call.name, plan.bound, tool.effect)
    elif stateful:
        plan.record = policy_context.record(call.name, plan.bound, ok=False, effect=tool.effect)


def _journal_call(journal: Journal, plan: PlannedCall) -> None:
    """The call's `tool_call` event: the call, its key, its effect kind, its decision."""
    context = plan.context
    journal.emit(
        ToolCalled(
            run_id=context.run_id,
            step=context.step,
            index=context.index,
            call=plan.call,
            idempotency_key=context.idempotency_key,
            effect=plan.tool.effect if plan.tool else "unknown",
            decision=plan.decision,
        )
    )


def _aborts(decision: Decision | None) -> bool:
    """A deny whose rule says the run must stop (``fallback: abort``)."""
    return decision is not None and decision.effect == "deny" and decision.fallback == "abort"


def _abort_step(
    prompts: Prompts, journal: Journal, step: int, planned: Sequence[PlannedCall]
) -> None:
    """A policy abort: the step's calls so far get a "not run" result, the run stops."""
    for plan in planned:
        call = plan.call
        journal.emit(
            ToolReturned(
                run_id=journal.run_id,
                step=step,
                index=plan.context.index,
                result=ToolResult(call.id, call.name, prompts.render("policy_not_run"), True),
            )
        )
    last = planned[-1]
    assert last.decision is not None
    message = denied_message(prompts, last.decision, last.call.name)
    raise _Stop("policy", None, None, message, rule=last.decision.rule)  # not a budget


def _journal_requests(
    journal: Journal,
    step: int,
    calls: Sequence[ToolCall],
    waiting: Sequence[PendingRequest],
    replay: ToolReplay | None,
) -> None:
    """One `approval_requested` per waiting call not already requested before a stop."""
    for request in waiting:
        if replay is not None and request.index in replay.requested:
            continue
        journal.emit(
            ApprovalRequested(
                run_id=journal.run_id,
                step=step,
                index=request.index,
                key=request.key,
                kind=request.kind,
                call=calls[request.index],
                reason=request.reason,
            )
        )


async def _execute(journal: Journal, step: int, plan: PlannedCall) -> ToolResult:
    """One call: run it (or take the result it already has) and journal its result."""
    began = time.perf_counter()
    result = plan.result
    if result is None:
        assert plan.tool is not None
        try:
            result = await plan.tool.invoke(plan.call, plan.arguments, plan.context)
        except ToolTimeoutError as timed_out:
            result = await _timed_out(plan, timed_out)
        if plan.record is not None:
            plan.record.result, plan.record.ok = result.content, not result.is_error
    elif plan.reused:
        return result  # recorded before the stop: reused, not run nor re-recorded
    journal.emit(
        ToolReturned(
            run_id=journal.run_id,
            step=step,
            index=plan.context.index,
            result=result,
            duration=time.perf_counter() - began,
        )
    )
    return result


async def _timed_out(plan: PlannedCall, timed_out: ToolTimeoutError) -> ToolResult:
    """A side-effecting call stopped by its tool's timeout is in doubt at once, as after
    a crash, and follows its tool's `on_doubt`: ``retry`` (idempotent) tells the model it
    may call again; ``reconcile`` looks the result up (None: it did not happen, and the
    model may call again); ``ask`` stops the run ``in_doubt``."""
    tool, call = plan.tool, plan.call
    assert tool is not None
    if tool.on_doubt == "reconcile":
        content = await _reconciled(plan)
        if content is not None:
            return ToolResult(call.id, call.name, content, False)
        return ToolResult(
            call.id, call.name, f"{timed_out}; it did not happen: it may be called again.", True
        )
    if tool.on_doubt == "retry":
        return ToolResult(call.id, call.name, f"{timed_out}; it may be called again.", True)
    raise _in_doubt(plan, f"was stopped after {timed_out.seconds:g} s (its timeout)")


async def _reconciled(plan: PlannedCall) -> str | None:
    """The in-doubt call's result as its tool's `reconcile` finds it (None: it did not
    happen)."""
    assert plan.tool is not None and plan.tool.reconcile is not None
    found = plan.tool.reconcile(plan.context, dict(plan.arguments))
    if inspect.isawaitable(found):
        found = await found
    if found is None:
        return None
    return found if isinstance(found, str) else to_json(found).decode()


def _in_doubt(plan: PlannedCall, what: str) -> ToolCallInDoubtError:
    """The error that stops a run whose side-effecting call `what` happened to
    (``on_doubt="ask"``): nothing runs it again until someone decides."""
    tool, call, context = plan.tool, plan.call, plan.context
    assert tool is not None
    return ToolCallInDoubtError(
        f"run {context.run_id}, step {context.step}: the {tool.effect} call {call.name}"
        f"({call.arguments}) (idempotency key {context.idempotency_key}) {what}, so "
        "whether it happened is unknown. It was not run again. Check the world and "
        f"resume with settle={{{context.idempotency_key!r}: <its result text, True or "
        "False>} (CLI: pilothouse resume --happened KEY[=RESULT] or --did-not-happen "
        'KEY); for the future, declare @tool(on_doubt="retry") for an idempotent tool '
        'or on_doubt="reconcile" with reconcile=... to check.',
        run_id=context.run_id,
        step=context.step,
        tool=call.name,
        key=context.idempotency_key,
    )


def _unknown(spec: RunSpec[Any], call: ToolCall, offered: Collection[str] | None) -> ToolResult:
    """The result of a call to a tool the agent does not have, or this step did not offer."""
    if offered is not None and call.name in spec.tools:
        return ToolResult(
            call.id,
            call.name,
            f"Tool {call.name!r} is not available at this step. Available tools: "
            f"{', '.join(offered) or '(none)'}.",
            True,
        )
    names = spec.tools if offered is None else offered
    return ToolResult(
        call.id,
        call.name,
        f"Unknown tool {call.name!r}. Available tools: {', '.join(names) or '(none)'}.",
        True,
    )


async def _replanned(
    spec: RunSpec[Any],
    replay: ToolReplay,
    context: ToolContext[Any],
    call: ToolCall,
    policy_context: RunContext,
    offered: Collection[str] | None,
) -> PlannedCall:
    """A call whose `tool_call` was recorded before the run stopped, on resume.

    Its recorded result is reused. A call that waits for a person is answered by the
    decision given (approved: it runs; declined: the model reads so; a question: the
    answer is the result) or, undecided, still waits (`request`). Otherwise it is
    in doubt: a call that never reached the tool (unknown tool, invalid arguments,
    denied) gets its result again; a read-only tool runs again; a side-effecting one
    follows its `on_doubt` unless its step paused before anything ran.
    """
    index = context.index
    tool = _offered_tool(spec, call, offered)
    done = replay.results.get(index)
    if done is not None:
        return PlannedCall(call, tool, context, result=done, reused=True)
    if tool is None:
        return PlannedCall(call, tool, context, result=_unknown(spec, call, offered))
    prepared = tool.prepare(call)
    if isinstance(prepared, ToolResult):
        return PlannedCall(call, tool, context, result=prepared)
    plan = PlannedCall(call, tool, context, prepared)
    request = replay.requested.get(index)
    decision = replay.called[index].decision
    if request is not None:
        _apply_person(spec.prompts, plan, request, replay.given.get(index))
        if plan.request is not None or plan.result is not None:
            return plan
    elif decision is not None and not decision.allowed:
        message = denied_message(spec.prompts, decision, call.name)
        plan.result = ToolResult(call.id, call.name, message, True)
        return plan
    stateful = spec.policy is not None and spec.policy.stateful
    bound = to_jsonable_python(prepared) if stateful else call.arguments
    # A step that paused for a person ran none of its calls until every request had a
    # decision on record: before that nothing is in doubt.
    paused_before_running = bool(replay.requested) and not replay.released
    if tool.effect != "read_only" and not paused_before_running:
        await _settle_doubt(plan, policy_context, bound if stateful else None)
        if plan.result is not None:
            return plan
    if stateful:
        plan.record = policy_context.record(call.name, bound, ok=False, effect=tool.effect)
    return plan


def _apply_person(
    prompts: Prompts, plan: PlannedCall, request: ApprovalRequested, given: ApprovalGiven | None
) -> None:
    """A waiting call on resume: still waiting (no decision yet), declined (the model
    reads so), a question answered (the answer is its result), or approved (it runs)."""
    call = plan.call
    if given is None:
        plan.request = PendingRequest.from_event(request)
    elif not given.approved:
        if request.kind != "approval":
            declined = prompts.render("question_unanswered")
        elif given.answer:
            declined = prompts.render(
                "approval_declined_because", tool=call.name, answer=given.answer
            )
        else:
            declined = prompts.render("approval_declined", tool=call.name)
        plan.result = ToolResult(call.id, call.name, declined, True)
    elif request.kind == "question":
        plan.result = ToolResult(call.id, call.name, given.answer or "", False)


async def _settle_doubt(plan: PlannedCall, policy_context: RunContext, bound: Any) -> None:
    """An in-doubt side effect follows its tool's `on_doubt`: ``ask`` stops the run
    (`ToolCallInDoubtError`), ``reconcile`` may find its result (set on `plan`; a
    stateful policy, given `bound`, records it), ``retry`` runs it again."""
    tool, call = plan.tool, plan.call
    assert tool is not None
    if tool.on_doubt == "ask":
        raise _in_doubt(plan, "started but has no recorded result")
    if tool.on_doubt != "reconcile":
        return
    content = await _reconciled(plan)
    if content is None:
        return
    if bound is not None:
        policy_context.record(call.name, bound, content, effect=tool.effect)
    plan.result = ToolResult(call.id, call.name, content, False)


def _approver(spec: RunSpec[Any], policy: Policy | None, decision: Decision) -> Approver | None:
    """Who decides an ``ask`` in process: the rule's named approver, else the agent's."""
    named = policy.approvers.get(decision.approver or "") if policy is not None else None
    return named or spec.approver


def _waiting(context: ToolContext[Any], call: ToolCall, reason: str, kind: str) -> PendingRequest:
    return PendingRequest(
        context.idempotency_key,
        kind,
        call.name,
        call.arguments,
        reason,
        context.step,
        context.index,
    )


async def _ask_approver(
    approver: Approver, call: ToolCall, decision: Decision, ctx: RunContext
) -> Decision:
    """Turn an `ask` into allow or deny with an in-process approver callable."""
    try:
        answer = approver(call, decision, ctx)
        if inspect.isawaitable(answer):
            answer = await answer
    except Exception as exc:
        return Decision.deny(
            f"{decision.reason}; the approver raised {type(exc).__name__}: {exc} (denied)",
            decision.rule,
            source="approver",
        )
    if answer is True:
        return Decision.allow(
            decision.rule, f"{decision.reason}; approved by the approver", "approver"
        )
    return Decision.deny(
        f"{decision.reason}; the approver refused", decision.rule, source="approver"
    )


# --------------------------------------------------------------------------- flows' entry


@dataclass(slots=True)
class ToolStep:
    """What `run_tool_step` did with one step's calls.

    `results` (one per call, in order) when the calls ran or were answered; otherwise
    `stop`, the `run_stopped` event the caller must journal (the loop detector, a
    policy abort, the wall-clock budget), or `pending`, the calls that wait for a
    person (their `approval_requested` events are journaled; nothing of the step ran).
    """

    results: list[ToolResult]
    stop: Stopped | None = None
    pending: list[PendingRequest] = field(default_factory=list)


async def run_tool_step(
    spec: RunSpec[Any],
    journal: Journal,
    step: int,
    calls: Sequence[ToolCall],
    *,
    loops: LoopDetector,
    started: float,
    policy_context: RunContext,
    new_context: Callable[[int, int], ToolContext[Any]],
    replay: ToolReplay | None = None,
) -> ToolStep:
    """One step's tool calls through the loop's own machinery, for drivers above the
    runtime (planned task graphs in `pilothouse.flows`).

    The same choke point as an agent's step (`_run_tools`): argument validation,
    `Policy.check` (and the approver), the `tool_call` events with their decisions,
    the commit points around side effects, execution, the `tool_result` events;
    `replay` (resume) reuses recorded results and settles an in-doubt call by its
    tool's `on_doubt`. Several steps may run concurrently on one journal (each is its
    own step number, so its idempotency keys are its own). A journal that cannot be
    written raises `RunInterrupted`, as a run does.
    """
    try:
        results = await _run_tools(
            spec, journal, step, calls, loops, started, policy_context, new_context, None, replay
        )
    except _Stop as stop:
        ended = Stopped(
            run_id=journal.run_id,
            step=step,
            reason=stop.reason,
            message=str(stop),
            value=stop.value,
            maximum=stop.maximum,
            rule=stop.rule,
        )
        return ToolStep([], stop=ended)
    except _Pause as pause:
        return ToolStep([], pending=pause.pending)
    except _Unwritable as exc:
        raise RunInterrupted(str(exc), run_id=journal.run_id) from exc.__cause__
    return ToolStep(results)


async def commit_journal(
    journal: Journal, *, last: bool = False, resume: str = "agent.resume(run_id)"
) -> None:
    """Write the journal's pending events at a commit point, retrying a failed write as
    the loop does (`COMMIT_RETRY_DELAYS`); a store that stays down raises
    `RunInterrupted`, whose message says to resume with `resume`. A conflict or a lost
    lease is not transient and propagates at once. For drivers above the runtime
    (planned runs, flows, team patterns)."""
    try:
        await _commit(journal, last=last, resume=resume)
    except _Unwritable as exc:
        raise RunInterrupted(str(exc), run_id=journal.run_id) from exc.__cause__
