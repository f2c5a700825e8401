"""SOP pipelines (MetaGPT style): roles that watch kinds of message and produce typed,
versioned artefacts into a shared pool that routes each message only to its subscribers.

    pipeline = SOPPipeline([
        Role(pm, watches=["task"], produces=PRD),
        Role(architect, watches=[PRD], produces=Design),
        Role(engineer, watches=[Design], produces=Code),
    ], store="team.db")
    result = await pipeline.run("A command-line todo app")
    result.latest("Code")

Why it is built this way:

- **Routing by subscription.** A message's kind is its artefact type's name (the
  task's is ``task``); it is delivered only to the roles that watch that kind, and a
  role runs when such a message arrives. What a role sees is the latest version of
  each kind it watches, as user-role messages: never an artefact it did not subscribe
  to, never another role's tool calls.
- **Typed, versioned artefacts.** A role's output is validated as the type it
  declares (`produces`); anything else is an `ArtefactTypeError` that ends the run
  with the pool as it was (every earlier artefact is journaled). The n-th artefact of
  a kind is version n (`artefact_published`: kind, version, producer, content, routed_to).
- **Deterministic and bounded.** Messages are handled first in, first out, and a
  message's subscribers run in the order the roles were given; each activation is a
  child run keyed by its number, so a resumed pipeline re-runs no finished activation.
  `max_activations` bounds a pipeline whose roles feed each other (a review loop);
  `budget` caps each activation to what remains of the team's limits and stops the
  pipeline once one is used up.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from pilothouse.events import ArtefactPublished, TeamEnded
from pilothouse.exceptions import ArtefactTypeError, ConfigurationError
from pilothouse.messages import Message, Usage
from pilothouse.policy.engine import Principal
from pilothouse.prompts import Prompts
from pilothouse.runtime.budget import Budget
from pilothouse.runtime.journal import Store, Subscriber, open_store

from ._chat_run import TeamDrive, drive_team

TASK = "task"  # the kind of the pipeline's input message


def kind_of(kind: str | type[BaseModel]) -> str:
    """A message kind: a name, or an artefact type (its class name)."""
    return kind if isinstance(kind, str) else kind.__name__


@dataclass(slots=True, frozen=True)
class Artefact:
    """One message of the pool: its kind, version (1 for the first of its kind), who
    produced it, its content (JSON), and the roles it was routed to."""

    kind: str
    version: int
    producer: str
    content: Any
    routed_to: tuple[str, ...] = ()


class Role:
    """An agent that runs when a message of a kind it `watches` arrives and produces
    one artefact of type `produces` (a pydantic model; give the agent that
    `output_type`, so its answer is validated and asked again before it reaches here).
    `when`, a function of the arriving message, lets a role pass on one (an engineer
    that acts on a review only if it was not approved): a pure function of journaled
    content, so a resumed pipeline decides the same."""

    def __init__(
        self,
        agent: Any,
        *,
        watches: Sequence[str | type[BaseModel]],
        produces: type[BaseModel],
        name: str = "",
        when: Callable[[Artefact], bool] | None = None,
    ) -> None:
        if not watches:
            raise ConfigurationError(f"role {name or agent.name!r} watches no kind of message")
        if not (isinstance(produces, type) and issubclass(produces, BaseModel)):
            raise ConfigurationError("a role produces a pydantic model type")
        self.agent = agent
        self.name = name or str(agent.name)
        self.watches = tuple(dict.fromkeys(kind_of(k) for k in watches))
        self.produces = produces
        self.when = when

    @property
    def kind(self) -> str:
        """The kind of message it produces (its artefact type's name)."""
        return self.produces.__name__

    def artefact(self, output: Any, run_id: str) -> BaseModel:
        """The output as this role's artefact type, or `ArtefactTypeError`."""
        wanted = self.produces
        if isinstance(output, wanted):
            return output
        problem = f"a {type(output).__name__}"
        if isinstance(output, str | dict):
            try:
                if isinstance(output, str):
                    return wanted.model_validate_json(output)
                return wanted.model_validate(output)
            except ValidationError as exc:
                problem = f"{exc.error_count()} problem(s): {exc.errors()[0]['msg']}"
        raise ArtefactTypeError(
            f"role {self.name!r} must produce a {wanted.__name__}; it produced {problem}. "
            "Nothing of it entered the pool",
            run_id=run_id,
        )


@dataclass(slots=True)
class SOPResult:
    """The pool when the pipeline stopped, in publication order (the task first), why it
    stopped (``idle``: no message left to route; ``max_activations(n)``), its usage."""

    run_id: str
    pool: list[Artefact]
    reason: str
    usage: Usage = field(default_factory=Usage)
    steps: int = 0

    def latest(self, kind: str | type[BaseModel]) -> Artefact | None:
        """The newest version of a kind, if any was produced."""
        name = kind_of(kind)
        found = [a for a in self.pool if a.kind == name]
        return found[-1] if found else None

    def versions(self, kind: str | type[BaseModel]) -> list[Artefact]:
        name = kind_of(kind)
        return [a for a in self.pool if a.kind == name]

    def to_json(self) -> dict[str, Any]:
        return {
            "pool": [
                {"kind": a.kind, "version": a.version, "producer": a.producer, "content": a.content}
                for a in self.pool
            ],
            "reason": self.reason,
        }


class SOPPipeline:
    """Roles around a shared message pool (see the module)."""

    kind = "sop"

    def __init__(
        self,
        roles: Sequence[Role],
        *,
        max_activations: int = 20,
        budget: Budget | None = None,
        name: str = "sop",
        store: Store | str | None = None,
        prompts: Prompts | None = None,
    ) -> None:
        self.roles = list(roles)
        if not self.roles:
            raise ConfigurationError("an SOP pipeline needs at least one role")
        names = [r.name for r in self.roles]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"role names must be distinct: {', '.join(names)}")
        if not any(TASK in r.watches for r in self.roles):
            raise ConfigurationError(f"no role watches {TASK!r}: nothing would start")
        if max_activations < 1:
            raise ConfigurationError("max_activations must be at least 1")
        self.max_activations = max_activations
        self.budget = budget
        self.name = name
        self.prompts = prompts or Prompts.default()
        self._store_spec = store
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self._store_spec)
        return self._store

    @property
    def definition_hash(self) -> str:
        body = {
            "roles": [
                [r.name, list(r.watches), r.produces.__name__, r.produces.model_json_schema()]
                for r in self.roles
            ],
            "max_activations": self.max_activations,
            "budget": None if self.budget is None else repr(self.budget),
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]

    def subscribers(self, kind: str) -> list[Role]:
        """The roles a message of `kind` is routed to, in the order they were given."""
        return [r for r in self.roles if kind in r.watches]

    async def run(
        self,
        task: str,
        *,
        run_id: str | None = None,
        deps: Any = None,
        principal: Principal | None = None,
        subscribers: Sequence[Subscriber] = (),
    ) -> SOPResult:
        """Publish `task` and route messages until none is left (or the bound)."""
        from pilothouse.agent import new_run_id

        return await self._go(task, run_id or new_run_id(), False, deps, principal, subscribers)

    async def resume(
        self,
        run_id: str,
        *,
        deps: Any = None,
        principal: Principal | None = None,
        subscribers: Sequence[Subscriber] = (),
    ) -> SOPResult:
        """Continue a pipeline from its journal: published artefacts are reused, a
        finished activation is read back, never run again."""
        task = self.store.get_run(run_id).input
        return await self._go(task, run_id, True, deps, principal, subscribers)

    async def _go(
        self,
        task: str,
        run_id: str,
        resume: bool,
        deps: Any,
        principal: Principal | None,
        subscribers: Sequence[Subscriber],
    ) -> SOPResult:
        async def body(drive: TeamDrive) -> SOPResult:
            return await self._drive(drive, task)

        result: SOPResult = await drive_team(
            self.kind,
            self.name,
            self.definition_hash,
            [r.name for r in self.roles],
            self.store,
            task,
            run_id,
            body,
            resume=resume,
            subscribers=subscribers,
            principal=principal,
            deps=deps,
        )
        return result

    async def _drive(self, drive: TeamDrive, task: str) -> SOPResult:
        drive.budget = self.budget
        recorded = {e.step: e for e in drive.recorded(ArtefactPublished)}
        first = recorded.get(0)
        if first is None:
            first = self._publish(drive, 0, TASK, 1, "user", task)
            await drive.commit()
        pool = [_artefact(first)]
        queue = [pool[0]]
        step = 0
        reason = "idle"
        while queue and reason == "idle":
            message = queue.pop(0)
            for role in self.subscribers(message.kind):
                if role.when is not None and not role.when(message):
                    continue
                if step >= self.max_activations:
                    reason = f"max_activations({self.max_activations})"
                    break
                spent = drive.exhausted()
                if spent is not None:
                    reason = spent
                    break
                step += 1
                event = recorded.get(step)
                if event is None:
                    event = await self._activate(drive, step, role, pool)
                published = _artefact(event)
                pool.append(published)
                queue.append(published)
        drive.emit(TeamEnded(run_id=drive.run_id, step=step, reason=reason, messages=step))
        result = SOPResult(drive.run_id, pool, reason, drive.usage, drive.steps)
        await drive.finish(result.to_json())
        return result

    def _publish(
        self,
        drive: TeamDrive,
        step: int,
        kind: str,
        version: int,
        producer: str,
        content: Any,
        child_run_id: str | None = None,
    ) -> ArtefactPublished:
        event = ArtefactPublished(
            run_id=drive.run_id,
            step=step,
            kind=kind,
            version=version,
            producer=producer,
            content=content,
            routed_to=[r.name for r in self.subscribers(kind)],
            child_run_id=child_run_id,
        )
        drive.emit(event)
        return event

    async def _activate(
        self, drive: TeamDrive, step: int, role: Role, pool: list[Artefact]
    ) -> ArtefactPublished:
        latest: dict[str, Artefact] = {}
        for artefact in pool:  # what it subscribes to, newest version of each kind
            if artefact.kind in role.watches:
                latest[artefact.kind] = artefact
        seen = sorted(latest.values(), key=pool.index)
        history = [Message.user(_show(a)) for a in seen]
        prompt = self.prompts.render("sop_turn", role=role.name, kind=role.kind)
        result = await drive.child(step, "role", role.agent, prompt, history)
        if result.outcome != "final":
            note = result.stop.message if result.stop is not None else result.outcome
            raise ArtefactTypeError(
                f"role {role.name!r} produced no {role.kind} (its run ended {result.outcome}: "
                f"{note})",
                run_id=drive.run_id,
            )
        made = role.artefact(result.output, drive.run_id)
        version = 1 + sum(1 for a in pool if a.kind == role.kind)
        content = made.model_dump(mode="json")
        event = self._publish(drive, step, role.kind, version, role.name, content, result.run_id)
        await drive.commit()
        return event


def _artefact(event: ArtefactPublished) -> Artefact:
    return Artefact(
        event.kind, event.version, event.producer, event.content, tuple(event.routed_to)
    )


def _show(artefact: Artefact) -> str:
    """An artefact as the role reads it: a header naming it, then its content."""
    content = (
        artefact.content
        if isinstance(artefact.content, str)
        else json.dumps(artefact.content, ensure_ascii=False, sort_keys=True)
    )
    return f"[{artefact.kind} v{artefact.version} from {artefact.producer}]\n{content}"
