"""What an endpoint serves, by model name (pure: no HTTP).

`served_agents` accepts what ``pilothouse serve-agent module:attr`` may name: one
`Agent` or `Team` (served under its `name`), a list of them (each under its name), a
mapping of model names to them, or a function returning any of these.

A served model is a `Served`: the one place that knows how an agent's run and a team's
run differ. A team's run is its entry agent's run, with each handoff and delegation a
child run of it; when a member waits for a person, that member's run is the one
``paused`` and the root stops ``interrupted`` until the decision (`pilothouse.teams`).
The endpoint reads and decides both through the root run's id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pilothouse.agent import Agent
from pilothouse.exceptions import ConfigurationError
from pilothouse.messages import Message
from pilothouse.policy import Principal
from pilothouse.runtime.drive import start_run
from pilothouse.runtime.journal import Store, Subscriber
from pilothouse.runtime.loop import RunLink, RunResult, RunSpec
from pilothouse.runtime.rows import RunInfo
from pilothouse.serving.protocol import SESSION_NAME
from pilothouse.teams import Team


class Served:
    """One served model: an `Agent`, or a `Team` whose entry agent's runs are the roots."""

    def __init__(self, name: str, target: Agent[Any, Any] | Team) -> None:
        self.name = name
        self.target = target
        self.store: Store = target.store
        self.is_team = isinstance(target, Team)
        # the agent whose runs are this model's root runs
        self.root_agent = target.entry_name if isinstance(target, Team) else target.name

    def run_spec(self) -> RunSpec[Any]:
        """The root run's spec (the entry agent's, with the team's tools, for a team)."""
        return self.target.run_spec()

    async def start(
        self,
        input: str,
        run_id: str,
        *,
        subscribers: Sequence[Subscriber],
        principal: Principal | None,
        history: Sequence[Message],
        link: RunLink | None,
        on_text: Callable[[str], None] | None,
    ) -> RunResult[Any]:
        """Run this model on a request: a root run `run_id` (its children for a team)."""
        if isinstance(self.target, Team):
            return await self.target.run(
                input,
                run_id=run_id,
                session=link.session_id if link is not None else None,
                subscribers=subscribers,
                principal=principal,
                history=history,
            )
        return await start_run(
            self.run_spec(),
            self.store,
            input,
            run_id,
            subscribers=subscribers,
            principal=principal,
            history=history,
            link=link,
            on_text=on_text,
        )

    async def decide(
        self,
        run_id: str,
        approved_by: str,
        *,
        approvals: Mapping[str, bool | str] | None = None,
        settle: Mapping[str, bool | str] | None = None,
    ) -> RunResult[Any]:
        """Journal a person's decisions on root run `run_id` (its waiting calls'
        `approvals`, or what they found of its in-doubt calls, `settle`) and continue it."""
        return await self.target.resume(
            run_id, approvals=approvals, settle=settle, approved_by=approved_by
        )

    def owns(self, info: RunInfo, store: Store) -> bool:
        """Whether `info` (a run of `store`) is one of this model's root runs."""
        return info.parent_run_id is None and store is self.store and info.agent == self.root_agent

    def doubtful_run(self, root: RunInfo) -> tuple[RunInfo, RunSpec[Any]] | None:
        """The run of `root`'s tree whose own call is in doubt, with the spec that reads
        it (None: the root is not in doubt)."""
        if root.status != "in_doubt":
            return None
        if not isinstance(self.target, Team):
            return root, self.run_spec()
        run_id = self.target.in_doubt(root.run_id)
        if run_id is None:
            return None
        return self.store.get_run(run_id), self.target.spec_of(run_id)

    def waiting_run(self, root: RunInfo) -> RunInfo | None:
        """The run of `root`'s tree that waits for a person (None: none waits)."""
        if not isinstance(self.target, Team):
            return root if root.status == "paused" else None
        if root.status not in ("paused", "interrupted"):
            return None  # a team that waits has its root paused or interrupted
        waiting = self.target.waiting(root.run_id)
        return None if waiting is None else self.store.get_run(waiting)


def served_agents(value: Any) -> dict[str, Served]:
    """The models to serve, by the name clients send; `ConfigurationError` for anything
    else, two under one name, an agent that needs deps (a request has no way to give
    live objects: serve an agent built around them instead), or two served models whose
    root runs could not be told apart (a team and its entry agent on one store)."""
    if callable(value) and not isinstance(value, (Agent, Team)):
        value = _call(value)
    if isinstance(value, (Agent, Team)):
        pairs = [(value.name, value)]
    elif isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, (list, tuple)):
        pairs = [(a.name if isinstance(a, (Agent, Team)) else "?", a) for a in value]
    else:
        raise ConfigurationError(
            f"cannot serve a {type(value).__name__}: give an Agent or a Team, a list of them, "
            "a dict of model name -> Agent or Team, or a function returning one"
        )
    served: dict[str, Served] = {}
    roots: dict[tuple[int, str], str] = {}
    for name, target in pairs:
        if not isinstance(target, (Agent, Team)):
            raise ConfigurationError(
                f"cannot serve {target!r} as model {name!r}: not an Agent or a Team"
            )
        if not isinstance(name, str) or not SESSION_NAME.fullmatch(name):
            raise ConfigurationError(
                f"model name {name!r}: 1 to 128 letters, digits or . _ @ + ~ - "
                "(name the agent, or serve a dict of names)"
            )
        if name in served:
            raise ConfigurationError(f"two served models are named {name!r}; serve a dict")
        for agent in _agents_of(target):
            if agent.deps_type is not None:
                raise ConfigurationError(
                    f"agent {agent.name!r} of model {name!r} declares deps_type: a request "
                    "cannot give it deps; serve an agent whose tools reach their state "
                    "another way"
                )
        model = Served(name, target)
        clash = roots.setdefault((id(model.store), model.root_agent), name)
        if clash != name and (model.is_team or served[clash].is_team):
            raise ConfigurationError(
                f"models {clash!r} and {name!r} both start runs of agent "
                f"{model.root_agent!r} in one store: a run could not be told apart; give "
                "the team's entry agent another name or another store"
            )
        served[name] = model
    if not served:
        raise ConfigurationError("no agent to serve")
    return served


def served_stores(models: Mapping[str, Served]) -> list[Store]:
    """The stores the served models write to, each once."""
    return list({id(m.store): m.store for m in models.values()}.values())


def _agents_of(target: Agent[Any, Any] | Team) -> list[Agent[Any, Any]]:
    if isinstance(target, Team):
        return [member.agent for member in target.members.values()]
    return [target]


def _call(factory: Callable[[], Any]) -> Any:
    value = factory()
    if callable(value) and not isinstance(value, (Agent, Team)):
        raise ConfigurationError("the factory returned another function, not agents")
    return value
