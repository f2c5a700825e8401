"""Teams: agents that hand control to each other or call each other as tools.

A team run is the entry agent's run; every handoff and delegation is a child run
under it (`runtime.drive.ChildRuns`: exactly-once starts, budgets flowing down,
usage rolling up). The team object holds configuration only: what happened is read
back from the store, so `Team.resume` after a crash or a pause continues the same
tree without starting any child twice.

Human in the loop is one parameter, `autonomy`:
- ``"supervised"``: every consequential call (a tool that is not read-only; team
  transfers and delegations excepted, they are routing) of any member waits for a
  person;
- ``"on_risk"``: only calls the policy answers ``ask`` (or tools that require
  approval) wait;
- ``"autonomous"``: no one is asked; a call the policy would ask about goes to the
  member's own approver if it has one, and is refused otherwise.
A member that waits pauses the whole team: each run above it stops `interrupted`
(its delegating call in doubt, retried on resume: `run_child` re-attaches), the
member's run is `paused` with its requests. `Team.resume(run_id, approvals=...)`
answers the member's requests, finishes the member, then resumes the root, which
re-attaches to the finished member: exactly the pending call runs, once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from pilothouse.exceptions import ApprovalError, ConfigurationError
from pilothouse.messages import Message, Usage
from pilothouse.policy.context import Principal
from pilothouse.prompts import Prompts
from pilothouse.runtime.budget import Budget
from pilothouse.runtime.drive import resume_run, start_run
from pilothouse.runtime.journal import Store, Subscriber
from pilothouse.runtime.loop import RunLink, RunResult, RunSpec
from pilothouse.tools.tool import Tool

from .delegate import agent_tool
from .handoff import CONTEXT_POLICIES, Claims, Guard, Handoff, finish_hook, transfer_tool
from .members import AUTONOMY, Autonomy, Member, TeamPaused


class Team:
    """Agents with handoffs between them and members called as tools.

    `entry` starts every run. `handoffs` maps an agent's name to the transfers it may
    make; `delegates` maps an agent's name to the agents it may call as tools. Every
    agent reached must share the store. `budget` is the team's: the entry run's limits
    (members draw from what remains) and `max_handoffs`. `loop_limit` is the loop
    guard: that many transfers in a row back to an agent already in the chain, from
    runs that made no progress, stop the team with reason ``handoff_loop``.
    """

    def __init__(
        self,
        entry: Any,
        *,
        handoffs: Mapping[str, Sequence[Handoff]] | None = None,
        delegates: Mapping[str, Sequence[Any]] | None = None,
        autonomy: Autonomy = "on_risk",
        budget: Budget | None = None,
        loop_limit: int = 3,
        max_revisions: int | None = 2,
        name: str | None = None,
    ) -> None:
        if autonomy not in AUTONOMY:
            raise ConfigurationError(f"autonomy must be one of {AUTONOMY}, not {autonomy!r}")
        if loop_limit < 1:
            raise ConfigurationError("loop_limit must be at least 1")
        self.name = name or f"team:{entry.name}"
        self.autonomy: Autonomy = autonomy
        self.budget = budget
        self.store: Store = entry.store
        self.entry_name = str(entry.name)
        self.guard = Guard(loop_limit, budget.max_handoffs if budget is not None else None)
        self.prompts = Prompts.default()
        handoffs = dict(handoffs or {})
        delegates = dict(delegates or {})
        agents: dict[str, Any] = {}
        for agent in [
            entry,
            *(h.target for hs in handoffs.values() for h in hs),
            *(d for ds in delegates.values() for d in ds),
        ]:
            known = agents.setdefault(str(agent.name), agent)
            if known is not agent:
                raise ConfigurationError(
                    f"two different agents of the team are named {agent.name!r}"
                )
            if agent.store is not self.store:
                raise ConfigurationError(
                    f"agent {agent.name!r} writes to another store than {entry.name!r}: "
                    "a team's runs form one tree in one store"
                )
        for source in [*handoffs, *delegates]:
            if source not in agents:
                raise ConfigurationError(f"{source!r} is not an agent of the team")
        for source, hs in handoffs.items():
            for h in hs:
                if h.context not in CONTEXT_POLICIES:
                    raise ConfigurationError(
                        f"handoff context must be one of {CONTEXT_POLICIES}, not {h.context!r}"
                    )
                if str(h.target.name) == source:
                    raise ConfigurationError(f"{source!r} cannot hand off to itself")
        self.members: dict[str, Member] = {}
        for agent_name, agent in agents.items():
            self.members[agent_name] = Member(agent, autonomy, (), None)
        claims = Claims()
        for agent_name, member in self.members.items():
            tools: list[Tool] = [
                transfer_tool(
                    h,
                    self.store,
                    self.members[str(h.target.name)],
                    self.guard,
                    self.prompts,
                    claims,
                )
                for h in handoffs.get(agent_name, ())
            ]
            tools.extend(
                agent_tool(
                    self.members[str(d.name)],
                    store=self.store,
                    max_revisions=max_revisions,
                    prompts=self.prompts,
                )
                for d in delegates.get(agent_name, ())
            )
            member.team_tools = tuple(tools)
            member.hook = finish_hook if handoffs.get(agent_name) else None

    def run_spec(self) -> RunSpec[Any]:
        """The root run's spec: the entry agent with the team's transfer and delegation
        tools, its step hook and budget. What `runtime.replay.replay_run` needs to
        replay a team's root run from its journal (each member's run replays with the
        member's own `Agent`)."""
        return self._entry_spec()

    def _entry_spec(self) -> RunSpec[Any]:
        spec = self.members[self.entry_name].run_spec()
        if self.budget is not None:
            spec.budget = self.budget
        return spec

    async def run(
        self,
        input: str,
        *,
        deps: Any = None,
        run_id: str | None = None,
        session: str | None = None,
        subscribers: Sequence[Subscriber] = (),
        principal: Principal | None = None,
        history: Sequence[Message] = (),
    ) -> RunResult[Any]:
        """Run the team on `input`: the entry agent's run, its handoffs and delegations.

        Returns the root run's result; a team waiting for a person returns outcome
        ``paused`` with the waiting member's requests in `pending`. `session` makes the
        root run a turn of that session (as `Agent.run`); `subscribers` receive the
        root run's events; `principal` is whom every run of the tree acts for;
        `history`, the conversation before `input` when there is no session (as
        `Agent.run`).
        """
        root = run_id or f"team-{uuid.uuid4().hex[:16]}"
        link = None
        if session is not None:
            self.store.get_session(session)  # SessionNotFoundError names it
            link = RunLink(session_id=session)
        try:
            return await start_run(
                self._entry_spec(),
                self.store,
                input,
                root,
                deps=deps,
                link=link,
                subscribers=subscribers,
                principal=principal,
                history=history,
            )
        except TeamPaused as paused:
            return self._paused(root, paused.result)

    async def resume(
        self,
        run_id: str,
        *,
        approvals: Mapping[str, bool | str] | None = None,
        approved_by: str = "",
        settle: Mapping[str, bool | str] | None = None,
        deps: Any = None,
        subscribers: Sequence[Subscriber] = (),
    ) -> RunResult[Any]:
        """Continue a team run that paused, crashed or was interrupted.

        With `approvals`, the member waiting for them is resumed first with them; then
        the root is resumed, and every run between re-attaches to its children.
        A member whose side effect is in doubt stops every run above it in doubt too
        (`ToolCallInDoubtError` naming the member's call): `settle`, keyed by such
        calls' keys (see `Agent.resume`), goes down with the root's delegating calls as
        they re-attach, and the member continues with what a person found; nothing is
        delegated or run again. `subscribers` receive the root run's new events.
        """
        if approvals:
            waiting = self.waiting(run_id)
            if waiting is None:
                raise ApprovalError(
                    f"no run of team run {run_id} waits for a person", run_id=run_id
                )
            spec = self._entry_spec() if waiting == run_id else self._member_of(waiting).run_spec()
            try:
                result = await resume_run(
                    spec,
                    self.store,
                    waiting,
                    approvals=approvals,
                    approved_by=approved_by,
                    deps=deps,
                    subscribers=subscribers if waiting == run_id else (),
                )
            except TeamPaused as paused:
                return self._paused(run_id, paused.result)
            if result.outcome == "paused":
                return self._paused(run_id, result)
            if waiting == run_id:
                return result  # the root itself waited: it has run to its end
        try:
            return await resume_run(
                self._entry_spec(),
                self.store,
                run_id,
                settle=settle,
                approved_by=approved_by,
                deps=deps,
                subscribers=subscribers,
            )
        except TeamPaused as paused:
            return self._paused(run_id, paused.result)

    def run_sync(self, input: str, **kwargs: Any) -> RunResult[Any]:
        """`run` from synchronous code."""
        return asyncio.run(self.run(input, **kwargs))

    def resume_sync(self, run_id: str, **kwargs: Any) -> RunResult[Any]:
        """`resume` from synchronous code."""
        return asyncio.run(self.resume(run_id, **kwargs))

    def waiting(self, run_id: str) -> str | None:
        """The run of the team's tree that waits for a person (None: none does)."""
        stack = [run_id]
        while stack:
            current = stack.pop()
            if self.store.get_run(current).status == "paused":
                return current
            stack.extend(r.run_id for r in reversed(self.store.children(current)))
        return None

    def in_doubt(self, run_id: str) -> str | None:
        """The run whose own call a person settles when team run `run_id` stands in
        doubt: the end of the chain of runs in doubt below it (a member's doubt stops
        every run above it in doubt); None when the root is not in doubt."""
        if self.store.get_run(run_id).status != "in_doubt":
            return None
        current = run_id
        while True:
            below = [r.run_id for r in self.store.children(current) if r.status == "in_doubt"]
            if not below:
                return current
            current = below[0]

    def spec_of(self, run_id: str) -> RunSpec[Any]:
        """The spec that resumes run `run_id` of this team's tree: the entry agent's for
        a root run, its member's otherwise."""
        info = self.store.get_run(run_id)
        if info.parent_run_id is None:
            return self._entry_spec()
        return self._member_of(run_id).run_spec()

    def _member_of(self, run_id: str) -> Member:
        agent = self.store.get_run(run_id).agent
        try:
            return self.members[agent]
        except KeyError:
            raise ConfigurationError(f"run {run_id} is {agent!r}'s, not a team member's") from None

    def _paused(self, root: str, waiting: RunResult[Any]) -> RunResult[Any]:
        info = self.store.get_run(root)
        usage = Usage(info.input_tokens, info.output_tokens, info.cost)
        return RunResult(root, "paused", usage, info.steps, [], pending=list(waiting.pending))


class Supervisor(Team):
    """A supervisor agent that routes work to members (as tools) and reviews it.

    Each member is offered to `supervisor` as a tool ``ask_<member>(task, feedback)``;
    its output comes back to the supervisor, which accepts it (answers, or asks
    another member) or sends it back with a reason in `feedback`: the member sees its
    previous answer and the reason, at most `max_revisions` times each.
    """

    def __init__(
        self,
        supervisor: Any,
        members: Sequence[Any],
        *,
        autonomy: Autonomy = "on_risk",
        budget: Budget | None = None,
        max_revisions: int = 2,
        name: str | None = None,
    ) -> None:
        if not members:
            raise ConfigurationError("a supervisor needs at least one member")
        super().__init__(
            supervisor,
            delegates={str(supervisor.name): list(members)},
            autonomy=autonomy,
            budget=budget,
            max_revisions=max_revisions,
            name=name,
        )
