"""Driving runs: start one, resume one, and start children from inside a tool.

`Agent.run`, `Agent.resume` and `Agent.stream` are thin wrappers over `start_run`
and `resume_run`; `ChildRuns` is the run tree's engine: the object behind
`ToolContext.run_child`, which starts a child run exactly once.

A child's run id is derived from the parent call's idempotency key and the child's
key, so whether the child already exists is a lookup, not a memory: a parent
resumed after a crash re-runs its in-doubt delegating call, `run_child` finds the
child it had started, returns its recorded result if it finished, resumes it if
it stopped, and starts it only if it never started. The parent's journal records
`child_started` and `child_finished` (the child's usage, which rolls up into the
parent's and counts against its budget); the child's `run_started` records its
parent, its root and the parent call's key.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic_core import to_json

from pilothouse.events import (
    ChildFinished,
    ChildStarted,
    ErrorOccurred,
    Event,
    FinalOutput,
    ModelRequested,
    ModelResponded,
    RunStarted,
    RunStatus,
    Stopped,
)
from pilothouse.exceptions import (
    ChildRunError,
    ConfigurationError,
    RunFinishedError,
    RunNotFoundError,
    StoreError,
)
from pilothouse.messages import Message, Usage
from pilothouse.policy.engine import Principal
from pilothouse.runtime.budget import Budget, split_evenly
from pilothouse.runtime.journal import Journal, Store, Subscriber
from pilothouse.runtime.lease import DEFAULT_LEASE_SECONDS, RunLease
from pilothouse.runtime.loop import RunLink, RunResult, RunSpec, run_loop
from pilothouse.runtime.output import OutputT
from pilothouse.tools.tool import ToolContext

_log = logging.getLogger("pilothouse.runtime")
_CHILD_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_deps(spec: RunSpec[Any], deps: Any) -> None:
    """Deps of the wrong type are a clear error at `run`, not an AttributeError in a tool."""
    wanted = spec.deps_type
    if wanted is None:
        return
    if deps is None:
        raise ConfigurationError(
            f"agent {spec.agent_name!r} declares deps_type={_name(wanted)}: pass deps=... to run it"
        )
    origin = getattr(wanted, "__origin__", None) or wanted
    if isinstance(origin, type) and not isinstance(deps, origin):
        raise ConfigurationError(
            f"agent {spec.agent_name!r} takes deps of type {_name(wanted)}, not "
            f"{type(deps).__name__}"
        )


def _delegates(spec: RunSpec[Any]) -> bool:
    """Whether a tool of the run may start children (only one given a `ToolContext` can)."""
    return any(t.takes_context for t in spec.tools.values())


def _name(kind: Any) -> str:
    return getattr(kind, "__name__", repr(kind))


def session_context(store: Store, session_id: str, upto: int | None = None) -> list[Message]:
    """The messages of a session a turn sees (the first `upto`, default all)."""
    if upto == 0:
        return []
    found = store.session_messages(session_id, limit=upto)
    return [m.message for m in found]


async def start_run(
    spec: RunSpec[OutputT],
    store: Store,
    input: str,
    run_id: str,
    *,
    subscribers: Sequence[Subscriber] = (),
    principal: Principal | None = None,
    history: Sequence[Message] = (),
    deps: Any = None,
    link: RunLink | None = None,
    on_text: Callable[[str], None] | None = None,
) -> RunResult[OutputT]:
    """Start a new run under its own lease, and drive it to its end (or a pause)."""
    check_deps(spec, deps)
    if link is not None and link.session_id is not None:
        if history:
            raise ConfigurationError(
                "give a run either session= or history=, not both: a session is its history"
            )
        history = session_context(store, link.session_id)
    lease = RunLease(store, run_id)
    journal = Journal(run_id, store, subscribers, lease=lease)
    root = link.root_run_id if link is not None and link.root_run_id else run_id
    tree = (
        ChildRuns(journal, store, root, principal, deps, spec.budget) if _delegates(spec) else None
    )
    return await lease.hold(
        run_loop(
            spec,
            input,
            journal,
            on_text=on_text,
            principal=principal,
            history=history,
            deps=deps,
            tree=tree,
            link=link,
        )
    )


async def resume_run(
    spec: RunSpec[OutputT],
    store: Store,
    run_id: str,
    *,
    approvals: Mapping[str, bool | str] | None = None,
    approved_by: str = "",
    settle: Mapping[str, bool | str] | None = None,
    subscribers: Sequence[Subscriber] = (),
    principal: Principal | None = None,
    holder: str | None = None,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    deps: Any = None,
) -> RunResult[OutputT]:
    """Continue a stopped run from its journal (see `Agent.resume` for the rules)."""
    from pilothouse.runtime.resume import (
        apply_approvals,
        apply_settlements,
        split_settlements,
        state_from_events,
    )

    check_deps(spec, deps)
    info = store.get_run(run_id)
    # A caller that names the holder (a worker) took the lease and gives it up itself.
    lease = RunLease(store, run_id, holder, lease_seconds, release=holder is None)
    lease.acquire()
    try:
        events = store.events(run_id)
        started = events[0] if events and isinstance(events[0], RunStarted) else None
        session: list[Message] = []
        if started is not None and started.session_id is not None and started.version >= 2:
            session = session_context(store, started.session_id, started.session_upto)
        state = state_from_events(spec, run_id, events, info.created, principal, session)
        given: list[Event] = []
        if approvals:
            given += apply_approvals(state, run_id, approvals, approved_by)
        own, below = split_settlements(store, run_id, settle or {})
        if own:
            given += apply_settlements(spec, state, run_id, own, approved_by)
    except BaseException:
        lease.stop()
        raise
    journal = Journal(run_id, store, subscribers, seq=len(events), lease=lease)
    for event in given:
        journal.emit(event)
    assert started is not None  # state_from_events checked it
    root = started.root_run_id or run_id
    acting = principal if started.principal is None else state.policy_context.principal
    tree = (
        ChildRuns(
            journal, store, root, acting, deps, spec.budget, events, settle=below, by=approved_by
        )
        if _delegates(spec)
        else None
    )
    return await lease.hold(
        run_loop(
            spec,
            state.user_input,
            journal,
            principal=principal,
            state=state,
            deps=deps,
            tree=tree,
        )
    )


def finished_result(spec: RunSpec[OutputT], run_id: str, events: Sequence[Event]) -> RunResult[Any]:
    """The `RunResult` of a run that already ended, rebuilt from its journal.

    What a re-attached child returns instead of running again. A run that ended in
    an error raises `ChildRunError` with the recorded message.
    """
    usage = Usage()
    steps = below = 0
    started = events[0]
    assert isinstance(started, RunStarted)
    messages = started.context()  # a child is no session's turn: its context is here
    parent = started.parent_run_id or ""
    for event in events:
        if isinstance(event, ModelRequested):
            steps = event.step
            messages.extend(event.new_messages)
        elif isinstance(event, ModelResponded):
            usage += event.response.usage
        elif isinstance(event, ChildFinished):
            usage, below = usage + event.usage, below + event.steps
    last = events[-1]
    if isinstance(last, FinalOutput):
        text = last.output if isinstance(last.output, str) else to_json(last.output).decode()
        messages.append(Message.assistant(text))
        output = spec.output.from_json(last.output)
        return RunResult(run_id, "final", usage, steps, messages, output, child_steps=below)
    if isinstance(last, ErrorOccurred):
        raise ChildRunError(
            f"child run {run_id} failed: {last.kind}: {last.message}",
            run_id=run_id,
            parent_run_id=parent,
        )
    if isinstance(last, Stopped):  # (a `budget_stop` of an older journal reads as one)
        return RunResult(
            run_id, last.outcome, usage, steps, messages, None, last, child_steps=below
        )
    raise ChildRunError(
        f"child run {run_id} ended with {last.type}, which is not an outcome",
        run_id=run_id,
        parent_run_id=parent,
    )


@dataclass(frozen=True, slots=True)
class _Standing:
    """What a run had used before one step's calls ran: its children are capped from it."""

    tokens: int
    cost: float
    child_steps: int
    started: float
    shares: Mapping[int, tuple[int, int]]  # call index: (its place, how many share)


@dataclass(frozen=True, slots=True)
class _Child:
    """A child about to start: its spec (budget capped), run id and what was lowered."""

    spec: RunSpec[Any]
    run_id: str
    capped: dict[str, list[float]]


class ChildRuns:
    """Starts, re-attaches and accounts for the children of one run (see the module)."""

    __slots__ = (
        "_calls",
        "_finished",
        "_recorded",
        "_rolled",
        "_rolled_steps",
        "_standing",
        "_started",
        "budget",
        "deps",
        "journal",
        "principal",
        "root",
        "settle",
        "settled_by",
        "store",
    )

    def __init__(
        self,
        journal: Journal,
        store: Store,
        root: str,
        principal: Principal | None,
        deps: Any,
        budget: Budget,
        events: Sequence[Event] = (),
        *,
        settle: Mapping[str, bool | str] | None = None,
        by: str = "",
    ) -> None:
        self.journal, self.store, self.root, self.budget = journal, store, root, budget
        self.principal, self.deps = principal, deps
        # a person's word on in-doubt calls of runs below, checked by the resumed parent
        # (`split_settlements`): each goes down with the child it is under
        self.settle, self.settled_by = dict(settle or {}), by
        # children already on this run's record (a resumed parent must not record twice)
        self._started = {e.child_run_id for e in events if isinstance(e, ChildStarted)}
        self._finished = {e.child_run_id for e in events if isinstance(e, ChildFinished)}
        # What the recorded children used, by the parent step that started them: a
        # resumed parent's usage includes them, and its step's children are capped as
        # they were before any of them finished.
        self._recorded: dict[int, tuple[int, float, int]] = {}
        for e in events:
            if isinstance(e, ChildFinished):
                tokens, cost, steps = self._recorded.get(e.step, (0, 0.0, 0))
                self._recorded[e.step] = (
                    tokens + e.usage.total_tokens,
                    cost + (e.usage.cost or 0.0),
                    steps + e.steps,
                )
        self._rolled: Usage | None = None  # finished children's usage not yet taken
        self._rolled_steps = 0
        # (tokens, cost, steps) of the children each call finished, by (step, index)
        self._calls: dict[tuple[int, int], tuple[int, float, int]] = {}
        # what the parent stood at before a step's calls ran, by step
        self._standing: dict[int, _Standing] = {}

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
        """The parent's standing before this step's calls run (a resumed step's, less
        what its children had recorded): every child of the step is capped from it.
        `shares`: for a call index, (its place, how many) when calls that may start
        children split what is left (`_capped`). `alongside`: other steps' calls may
        still be running (a planned run's tasks), so their standings are kept; an agent
        loop's steps run one after another, and a new step forgets the last. An
        alongside standing is what the run had used before any of those steps began,
        which holds none of their children, resumed or not: nothing is taken off it."""
        if alongside:
            tokens, cost, steps = 0, 0.0, 0
        else:
            tokens, cost, steps = self._recorded.get(step, (0, 0.0, 0))
            self._standing.clear()
            self._calls.clear()
        self._standing[step] = _Standing(
            usage.total_tokens - tokens,
            (usage.cost or 0.0) - cost,
            child_steps - steps,
            started,
            dict(shares or {}),
        )

    def flush(self) -> None:
        """Commit the parent's journal now: a tool that reads its own run's record from
        the store (a team's transfer: the conversation, the progress) sees all of it."""
        self.journal.commit()

    def take(self) -> tuple[Usage, int] | None:
        rolled = self._rolled
        if rolled is None:
            return None  # the common case: no child finished since the last call
        self._rolled = None
        return rolled, self._rolled_steps

    def _capped(
        self,
        parent: Budget,
        child: Budget,
        step: int,
        index: int,
        within: tuple[int, int] = (0, 1),
    ) -> tuple[Budget, dict[str, list[float]]]:
        """The child's budget, each limit lowered to what remains of the parent's.

        What remains is counted from the parent's standing before the step's calls ran:
        not from what children of the step's other calls used, since which of those
        finishes first is the scheduler's choice and, on resume, a finished one is
        re-attached at once. So a child gets the same budget uninterrupted and resumed.
        Steps, tokens and cost left are split evenly between the calls that may start
        children (`observe`'s `shares`: an agent step's calls whose tools take a
        `ToolContext`, a planned run's agent tasks; the first ones taking a remainder of
        steps or tokens), so parallel children cannot spend the parent's budget once
        each: a model that splits its work over several delegating calls gets no more
        than one call would. Wall-clock time is not split (the calls run side by side).
        Each call's share is less what its earlier children used; `within`, (place,
        how many), splits that evenly again between children one call starts side by
        side (`run_children`)."""
        standing = self._standing.get(step) or _Standing(0, 0.0, 0, time.monotonic(), {})
        own_tokens, own_cost, own_steps = self._calls.get((step, index), (0, 0.0, 0))
        at, n = standing.shares.get(index, (0, 1))
        j, m = within
        remaining: dict[str, float | None] = {
            "steps": None
            if parent.max_steps is None
            else split_evenly(
                split_evenly(parent.max_steps - step - standing.child_steps, n, at) - own_steps,
                m,
                j,
            ),
            "tokens": None
            if parent.max_tokens is None
            else split_evenly(
                split_evenly(parent.max_tokens - standing.tokens, n, at) - own_tokens, m, j
            ),
            "seconds": None
            if parent.max_seconds is None
            else max(0.0, parent.max_seconds - (time.monotonic() - standing.started)),
            "cost": None
            if parent.max_cost is None
            else max(0.0, max(0.0, parent.max_cost - standing.cost) / n - own_cost) / m,
        }
        own: dict[str, float | None] = {
            "steps": child.max_steps,
            "tokens": child.max_tokens,
            "seconds": child.max_seconds,
            "cost": child.max_cost,
        }
        capped: dict[str, list[float]] = {}
        given: dict[str, float | None] = {}
        for name, left in remaining.items():
            mine = own[name]
            if left is not None and (mine is None or mine > left):
                capped[name] = [-1 if mine is None else mine, left]  # -1: unlimited
                given[name] = left
            else:
                given[name] = mine
        if not capped:
            return child, capped  # nothing lowered: the child's own budget, as it is
        budget = Budget(
            None if given["steps"] is None else int(given["steps"]),
            None if given["tokens"] is None else int(given["tokens"]),
            given["seconds"],
            given["cost"],
            child.max_repeats,
        )
        return budget, capped

    async def run_child(
        self, context: ToolContext[Any], agent: Any, input: str, key: str | None, deps: Any
    ) -> RunResult[Any]:
        """Start, resume or read back the child `key` of this tool call (see the module)."""
        return await self._drive(context, self._prepare(context, agent, key, (0, 1)), input, deps)

    async def run_children(
        self,
        context: ToolContext[Any],
        children: Sequence[tuple[Any, str, str]],
        deps: Any,
    ) -> list[RunResult[Any]]:
        """Start (or re-attach) the children `(agent, input, key)` of this tool call side
        by side, and return their results in order. The call's share of the budget is
        split evenly between them, every cap computed before any of them starts, so
        which finishes first changes no child's budget. Every child runs to its end
        before a failure of one is raised: none is left running unrecorded."""
        keys = [key for _, _, key in children]
        if len(set(keys)) != len(keys):
            raise ConfigurationError(f"run_children keys must differ, got {keys}")
        prepared = [
            self._prepare(context, agent, key, (place, len(children)))
            for place, (agent, _, key) in enumerate(children)
        ]
        results = await asyncio.gather(
            *(
                self._drive(context, child, input, deps)
                for child, (_, input, _) in zip(prepared, children, strict=True)
            ),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [r for r in results if not isinstance(r, BaseException)]

    def _prepare(
        self, context: ToolContext[Any], agent: Any, key: str | None, within: tuple[int, int]
    ) -> _Child:
        """The child's spec with its capped budget, and its run id: all a child's start
        needs, computed before it (or any sibling) runs."""
        spec_of = getattr(agent, "run_spec", None)
        if spec_of is None:
            raise ConfigurationError(f"run_child needs an Agent, not {type(agent).__name__}")
        name = key if key is not None else str(context.children)
        if not _CHILD_KEY.fullmatch(name):
            raise ConfigurationError(
                f"run_child key {name!r}: use 1-64 letters, digits, '_' or '-'"
            )
        own: RunSpec[Any] = spec_of()
        budget, capped = self._capped(self.budget, own.budget, context.step, context.index, within)
        spec = own
        if budget is not own.budget:  # (a copy and one field: replace() costs 5x more)
            spec = copy.copy(own)
            spec.budget = budget
        return _Child(spec, f"{context.run_id}.{context.step}.{context.index}.{name}", capped)

    async def _drive(
        self, context: ToolContext[Any], child: _Child, input: str, deps: Any
    ) -> RunResult[Any]:
        spec, child_id, capped = child.spec, child.run_id, child.capped
        parent_id = context.run_id
        if capped:
            _log.info(
                "run %s: child %s capped to the parent's budget: %s", parent_id, child_id, capped
            )
        if child_id not in self._started:
            self._started.add(child_id)
            self.journal.emit(
                ChildStarted(
                    run_id=parent_id,
                    step=context.step,
                    index=context.index,
                    key=context.idempotency_key,
                    child_run_id=child_id,
                    agent=spec.agent_name,
                    capped=capped,
                )
            )
        try:
            self.store.get_run(child_id)
            exists = True
        except RunNotFoundError:
            exists = False
        try:
            if not exists:
                link = RunLink(parent_id, self.root, context.idempotency_key)
                result = await start_run(
                    spec,
                    self.store,
                    input,
                    child_id,
                    principal=self.principal,
                    deps=deps,
                    link=link,
                )
            else:
                try:
                    result = await resume_run(
                        spec,
                        self.store,
                        child_id,
                        principal=self.principal,
                        deps=deps,
                        settle=self.settlements_for(child_id),
                        approved_by=self.settled_by,
                    )
                except RunFinishedError:
                    result = finished_result(spec, child_id, self.store.events(child_id))
        except Exception:
            # Recorded as finished only if the child's own record says it ended in an
            # error: a child held by another process (RunLeasedError), interrupted by
            # an outage or in doubt is not over, and a resumed parent re-attaches to it.
            if self._ended_in_error(child_id):
                self._finish(context, child_id, "error", None)
            raise
        if result.outcome != "paused":
            self._finish(context, child_id, result.outcome, result)
        else:  # it may spend up to its cap once resumed: the call's next children may not
            held = spec.budget
            self._count(context, held.max_tokens or 0, held.max_cost or 0.0, held.max_steps or 0)
        return result

    def _count(self, context: ToolContext[Any], tokens: int, cost: float, steps: int) -> None:
        """Take what a child of this call used (or, paused, may still use: its whole
        cap, a limit the parent has is never None on it) off what the call's next
        children are capped from."""
        call = (context.step, context.index)
        had_tokens, had_cost, had_steps = self._calls.get(call, (0, 0.0, 0))
        self._calls[call] = (had_tokens + tokens, had_cost + cost, had_steps + steps)

    def settlements_for(self, child_id: str) -> dict[str, bool | str]:
        """The settlements of calls of run `child_id` and of the runs below it."""
        return {
            key: value
            for key, value in self.settle.items()
            if key.startswith((f"{child_id}:", f"{child_id}."))
        }

    def _ended_in_error(self, child_id: str) -> bool:
        try:
            return self.store.get_run(child_id).status == "error"
        except StoreError:
            return False

    def _finish(
        self,
        context: ToolContext[Any],
        child_id: str,
        outcome: RunStatus,
        result: RunResult[Any] | None,
    ) -> None:
        """Record the child's end on this run once, and roll its usage up."""
        if result is not None:  # its steps and its own children's count against ours
            usage, steps = result.usage, result.steps + result.child_steps
        else:  # an error: the child's index row has what it used, its journal the rest
            try:
                info = self.store.get_run(child_id)
                usage, steps = Usage(info.input_tokens, info.output_tokens, info.cost), info.steps
                steps += sum(
                    e.steps for e in self.store.events(child_id) if isinstance(e, ChildFinished)
                )
            except RunNotFoundError:
                usage, steps = Usage(), 0
        self._count(context, usage.total_tokens, usage.cost or 0.0, steps)
        if child_id in self._finished:
            return
        self._finished.add(child_id)
        if self._rolled is None:
            self._rolled, self._rolled_steps = usage, steps
        else:
            self._rolled, self._rolled_steps = self._rolled + usage, self._rolled_steps + steps
        self.journal.emit(
            ChildFinished(
                run_id=context.run_id,
                step=context.step,
                index=context.index,
                child_run_id=child_id,
                outcome=outcome,
                usage=usage,
                steps=steps,
            )
        )
