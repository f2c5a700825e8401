"""The engine under the team patterns (group chat, SOP pipeline, role-play): one
journaled run per team, its lease and index row, and its turns as child runs.

A team run is a run like an agent's or a flow's (`run_started` with ``model`` naming
the pattern, the index row, a lease). Each turn is a child run keyed by the team's
run id and the turn number (``<team>.<n>.0.<key>``), so whether a turn exists is a
lookup, not a memory: a resumed team reuses a turn whose message it journaled, reads
back a child that finished before the team could journal it, resumes one that
stopped, and starts only turns that never started. Usage of every child (members and
selectors) is summed into the team's, to the token.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pilothouse.events import (
    ChildFinished,
    ChildStarted,
    ErrorOccurred,
    Event,
    FinalOutput,
    RunStarted,
    RunStatus,
)
from pilothouse.exceptions import (
    ChatError,
    ConfigurationError,
    RunFinishedError,
    RunNotFoundError,
    SessionExistsError,
    SessionNotFoundError,
    StoreError,
)
from pilothouse.messages import Message, Usage
from pilothouse.policy.engine import Principal
from pilothouse.runtime.budget import Budget
from pilothouse.runtime.drive import finished_result, resume_run, start_run
from pilothouse.runtime.journal import Journal, Store, Subscriber
from pilothouse.runtime.lease import RunLease
from pilothouse.runtime.loop import RunLink, RunResult, commit_journal
from pilothouse.runtime.rows import MAX_SESSION_ID, RunInfo, SessionWrite

ENDED = ("final", "error", "run_stopped", "budget_stop")


def transcript_session_id(run_id: str) -> str:
    """The id of the session holding team run `run_id`'s transcript (a hash of the run
    id when the run id is too long to be part of a session id)."""
    sid = f"{run_id}.transcript"
    if len(sid) <= MAX_SESSION_ID:
        return sid
    return "team-" + hashlib.sha256(run_id.encode()).hexdigest()[:32] + ".transcript"


class TeamDrive:
    """One drive of one team run: the journal, the recorded events, the children."""

    def __init__(
        self,
        store: Store,
        journal: Journal,
        run_id: str,
        root: str,
        events: Sequence[Event],
        *,
        principal: Principal | None,
        deps: Any,
        started: float,
    ) -> None:
        self.store, self.journal, self.run_id, self.root = store, journal, run_id, root
        self.events = list(events)
        self.principal, self.deps = principal, deps
        self.started = started  # wall-clock time the run started (its `run_started`)
        self.order: list[str] = []  # the members' names in the team's order
        self.budget: Budget | None = None  # the team's limits: each child is capped to them
        # The session holding the team's transcript (one message per turn, written by the
        # team in the commit that journals the turn); turns read their context from it.
        self.session_id: str | None = None
        self.clock: Callable[[], float] = time.time
        self._children_started = {e.child_run_id for e in events if isinstance(e, ChildStarted)}
        self._children_finished = {e.child_run_id for e in events if isinstance(e, ChildFinished)}
        self.usage = Usage()
        self.steps = 0
        for e in events:
            if isinstance(e, ChildFinished):
                self.usage, self.steps = self.usage + e.usage, self.steps + e.steps

    def exhausted(self) -> str | None:
        """The team's budget limit that is used up (``budget(tokens: 120 of 100)``)."""
        if self.budget is None:
            return None
        hit = self.budget.exceeded(self.steps, self.usage, self.clock() - self.started)
        if hit is None:
            return None
        limit, value, maximum = hit
        return f"budget({limit}: {value:g} of {maximum:g})"

    def _capped(self, spec: Any) -> tuple[Any, dict[str, list[float]]]:
        """The child's spec with each limit lowered to what remains of the team's (from
        the usage journaled before the turn: the same on resume), and what was lowered."""
        team = self.budget
        if team is None:
            return spec, {}
        own: Budget = spec.budget
        left: dict[str, float | None] = {
            "steps": None if team.max_steps is None else max(0, team.max_steps - self.steps),
            "tokens": None
            if team.max_tokens is None
            else max(0, team.max_tokens - self.usage.total_tokens),
            "seconds": None
            if team.max_seconds is None
            else max(0.0, team.max_seconds - (self.clock() - self.started)),
            "cost": None
            if team.max_cost is None
            else max(0.0, team.max_cost - (self.usage.cost or 0.0)),
        }
        mine: dict[str, float | None] = {
            "steps": own.max_steps,
            "tokens": own.max_tokens,
            "seconds": own.max_seconds,
            "cost": own.max_cost,
        }
        capped = {
            name: [-1.0 if mine[name] is None else float(mine[name] or 0), float(value)]
            for name, value in left.items()
            if value is not None and (mine[name] is None or (mine[name] or 0) > value)
        }
        if not capped:
            return spec, {}
        given = {name: value[1] for name, value in capped.items()}
        budget = Budget(
            int(given["steps"]) if "steps" in given else own.max_steps,
            int(given["tokens"]) if "tokens" in given else own.max_tokens,
            given.get("seconds", own.max_seconds),
            given.get("cost", own.max_cost),
            own.max_repeats,
        )
        spec = copy.copy(spec)
        spec.budget = budget
        return spec, capped

    def open_transcript(self, kind: str) -> str | None:
        """Make (or find again, on resume) the session that holds this team's transcript
        and return its id; None for a run begun before teams kept one (its turns carry
        the transcript in their own journals, and its resume goes on that way)."""
        sid = transcript_session_id(self.run_id)
        try:
            found = self.store.get_session(sid)
            if (found.metadata or {}).get("team_run_id") != self.run_id:
                raise ChatError(
                    f"session {sid!r} exists and is not team run {self.run_id}'s transcript: "
                    "the team will not write into (or read) another conversation; give the "
                    "team another run_id",
                    run_id=self.run_id,
                )
        except SessionNotFoundError:
            if any(isinstance(e, ChildStarted) for e in self.events):
                return None  # turns ran without a session: an older journal
            with contextlib.suppress(SessionExistsError):  # made by an earlier attempt
                self.store.create_session(sid, {"team_run_id": self.run_id, "pattern": kind})
        self.session_id = sid
        return sid

    def say(self, n: int, message: Message) -> None:
        """Queue the transcript's message `n` (0: the task) for the session, written
        with the next commit's events (a message already written is not written again)."""
        if self.session_id is not None:
            self.journal.add_session(SessionWrite(self.session_id, self.run_id, ((n, message),)))

    def recorded(self, kind: type[Event]) -> list[Any]:
        """The events of one type this run's journal held when the drive began."""
        return [e for e in self.events if isinstance(e, kind)]

    def emit(self, event: Event) -> None:
        self.journal.emit(event)

    async def commit(self, *, last: bool = False) -> None:
        await commit(self.journal, last=last)

    async def child(
        self,
        step: int,
        key: str,
        agent: Any,
        input: str,
        history: Sequence[Message] = (),
        *,
        from_session: bool = False,
    ) -> RunResult[Any]:
        """Start, resume or read back the turn `key` of step `step` (exactly once).

        `from_session`: the child's context is the team's session as it stands (its
        run references the session and how many messages it saw, instead of copying
        them: storage grows with the transcript, not with its square)."""
        if from_session and (self.session_id is None or history):
            raise ConfigurationError("a turn reads its context from the session or history=")
        spec, capped = self._capped(agent.run_spec())
        child_id = f"{self.run_id}.{step}.0.{key}"
        if child_id not in self._children_started:
            self._children_started.add(child_id)
            self.emit(
                ChildStarted(
                    run_id=self.run_id,
                    step=step,
                    index=0,
                    key=f"{self.run_id}:{step}:0",
                    child_run_id=child_id,
                    agent=spec.agent_name,
                    capped=capped,
                )
            )
            await self.commit()
        try:
            self.store.get_run(child_id)
            exists = True
        except RunNotFoundError:
            exists = False
        try:
            session = self.session_id if from_session else None
            result = await self._drive_child(spec, child_id, step, input, history, exists, session)
        except Exception as exc:
            # A child whose own record says it ended in an error ends the team too (a
            # resumed team would only read that error back); one that was cut off
            # (interrupted, held by another process, a store outage) is not over.
            if self._ended_in_error(child_id):
                raise ChatError(
                    f"the {spec.agent_name!r} run {child_id} failed: {type(exc).__name__}: {exc}",
                    run_id=self.run_id,
                ) from exc
            raise
        # A paused turn is over for the team too (its question is the member's message;
        # the team does not resume it), so its usage counts now and is journaled once.
        if child_id not in self._children_finished:
            self._children_finished.add(child_id)
            steps = result.steps + result.child_steps  # the runs it delegated to count too
            self.usage, self.steps = self.usage + result.usage, self.steps + steps
            self.emit(
                ChildFinished(
                    run_id=self.run_id,
                    step=step,
                    index=0,
                    child_run_id=child_id,
                    outcome=result.outcome,
                    usage=result.usage,
                    steps=steps,
                )
            )
        return result

    async def _drive_child(
        self,
        spec: Any,
        child_id: str,
        step: int,
        input: str,
        history: Sequence[Message],
        exists: bool,
        session: str | None = None,
    ) -> RunResult[Any]:
        if not exists:
            link = RunLink(
                self.run_id,
                self.root,
                f"{self.run_id}:{step}:0",
                session_id=session,
                session_writes=session is None,
            )
            return await start_run(
                spec,
                self.store,
                input,
                child_id,
                principal=self.principal,
                history=history,
                deps=self.deps,
                link=link,
            )
        try:
            return await resume_run(
                spec, self.store, child_id, principal=self.principal, deps=self.deps
            )
        except RunFinishedError:
            return finished_result(spec, child_id, self.store.events(child_id))

    def _ended_in_error(self, child_id: str) -> bool:
        try:
            return self.store.get_run(child_id).status == "error"
        except StoreError:
            return False

    async def close(self, status: RunStatus, event: Event, output: Any) -> None:
        """Journal the end (`final` or `error`) with the index row, in one last commit."""
        self.emit(event)
        info = self.journal.info
        if info is not None:
            info.status = status
            info.updated = time.time()
            info.steps = self.steps
            info.input_tokens = self.usage.input_tokens
            info.output_tokens = self.usage.output_tokens
            info.cost = self.usage.cost
            info.output = output
            self.journal.set_info(info)
        await self.commit(last=True)

    async def finish(self, output: Any) -> None:
        await self.close(
            "final", FinalOutput(run_id=self.run_id, output=output, usage=self.usage), output
        )

    async def fail(self, exc: BaseException) -> None:
        await self.close(
            "error",
            ErrorOccurred(run_id=self.run_id, kind=type(exc).__name__, message=str(exc)),
            None,
        )


async def commit(journal: Journal, *, last: bool = False) -> None:
    """`journal.commit()` with the agent loop's bounded retries (`commit_journal`): a
    store that stays down ends the drive with `RunInterrupted` (the team is resumable)."""
    await commit_journal(journal, last=last, resume="the team's resume(run_id)")


Body = Callable[[TeamDrive], Awaitable[Any]]


async def drive_team(
    kind: str,
    name: str,
    definition_hash: str,
    members: Sequence[str],
    store: Store,
    input: str,
    run_id: str,
    body: Body,
    *,
    resume: bool,
    subscribers: Sequence[Subscriber] = (),
    principal: Principal | None = None,
    deps: Any = None,
) -> Any:
    """Start (or resume) the team run `run_id` of pattern `kind` under its lease and run
    `body` on it. `body` returns the run's result; an exception from it is journaled
    as the run's `error` and raised."""
    if resume:
        info = store.get_run(run_id)
        lease = RunLease(store, run_id)
        lease.acquire()
        try:
            events = store.events(run_id)
            if not events or not isinstance(events[0], RunStarted):
                raise ChatError(f"run {run_id} has no run_started event", run_id=run_id)
            first = events[0]
            if first.model != kind or first.agent != name:
                raise ConfigurationError(
                    f"run {run_id} is a run of {first.agent!r} ({first.model}), not of the "
                    f"{kind} {name!r}"
                )
            if first.definition_hash != definition_hash:
                raise ConfigurationError(
                    f"run {run_id} was started by another definition of {name!r} (its "
                    "members, selector or termination changed); it cannot be resumed by this one"
                )
            if events[-1].type in ENDED:
                raise RunFinishedError(
                    f"team run {run_id} already ended ({events[-1].type}); nothing to resume",
                    run_id=run_id,
                    outcome=info.status,
                )
        except BaseException:
            lease.stop()
            raise
        journal = Journal(run_id, store, subscribers, seq=len(events), lease=lease)
        info.status = "running"
        journal.set_info(info)
        started_at = first.ts
        root = first.root_run_id or run_id
    else:
        lease = RunLease(store, run_id)
        journal = Journal(run_id, store, subscribers, lease=lease)
        journal.emit(
            RunStarted(
                run_id=run_id,
                agent=name,
                model=kind,
                input=input,
                tools=list(members),
                definition_hash=definition_hash,
                principal=principal.to_dict() if principal is not None else None,
                version=2,
            )
        )
        now = time.time()
        started_at = now
        journal.set_info(
            RunInfo(run_id, name, kind, input, created=now, updated=now, root_run_id=run_id)
        )
        events = []
        root = run_id

    async def go() -> Any:
        if not resume:
            await commit(journal)
        drive = TeamDrive(
            store, journal, run_id, root, events, principal=principal, deps=deps, started=started_at
        )
        try:
            return await body(drive)
        except ChatError as exc:
            await drive.fail(exc)
            raise

    return await lease.hold(go())
