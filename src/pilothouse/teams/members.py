"""A team member as the run tree sees it: the member's own run spec, plus the team's
tools (transfers, delegations), its step hook and its autonomy.

The team never copies an `Agent`: `Member.run_spec()` returns a shallow copy of the
member's spec with the team's additions, which is all `ChildRuns.run_child` needs.
Reading the tree (who handed off to whom, what a member already did) is a lookup in
the store, never a memory of the team object: a resumed team sees what it did.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic_core import to_json

from pilothouse.decision import Decision
from pilothouse.events import ModelRequested, ModelResponded, RunStarted, ToolReturned
from pilothouse.exceptions import ConfigurationError
from pilothouse.messages import Message, ToolCall
from pilothouse.policy.engine import RunContext
from pilothouse.runtime.journal import Store
from pilothouse.runtime.loop import RunResult, RunSpec
from pilothouse.runtime.step import StepContext, StepOptions, call_maybe_async
from pilothouse.tools.tool import Tool

Autonomy = Literal["supervised", "on_risk", "autonomous"]
AUTONOMY: tuple[Autonomy, ...] = ("supervised", "on_risk", "autonomous")
# The key of a handoff's child run: `<source run>.<step>.<index>.handoff`.
HANDOFF_KEY = "handoff"
TRANSFER_PREFIX = "transfer_to_"


class TeamPaused(BaseException):
    """Internal: a member waits for a person, so every run above it stops too.

    A `BaseException` so that no tool's error handling turns it into a result: each
    run it passes through is left `interrupted` (resumable, its call in doubt), and
    `Team.run` returns the paused member's requests. The approval resumes the member
    (`Team.resume`), then the root, whose in-doubt call re-attaches to the member.
    """

    def __init__(self, result: RunResult[Any]) -> None:
        super().__init__(f"run {result.run_id} waits for a person")
        self.result = result


def _deny_all(call: ToolCall, decision: Decision, context: RunContext) -> bool:
    """An autonomous team asks no one: a call the policy would ask about is refused."""
    return False


class Member:
    """One agent of a team, as its runs are started (see the module)."""

    __slots__ = ("agent", "autonomy", "hook", "name", "team_tools")

    def __init__(
        self,
        agent: Any,
        autonomy: Autonomy,
        team_tools: Sequence[Tool],
        hook: Callable[[StepContext[Any]], StepOptions | None] | None,
    ) -> None:
        if getattr(agent, "run_spec", None) is None:
            raise ConfigurationError(f"a team member must be an Agent, not {type(agent).__name__}")
        self.agent, self.name = agent, str(agent.name)
        self.autonomy, self.team_tools, self.hook = autonomy, tuple(team_tools), hook

    def run_spec(self) -> RunSpec[Any]:
        """The member's spec with the team's tools, hook and autonomy (a shallow copy)."""
        own: RunSpec[Any] = self.agent.run_spec()
        spec = copy.copy(own)
        tools = dict(own.tools)
        if self.autonomy == "supervised":  # every consequential step asks a person first
            for name, tool in tools.items():
                if tool.effect != "read_only" and tool.interrupt is None:
                    asking = copy.copy(tool)
                    asking.interrupt = "approval"
                    tools[name] = asking
        for tool in self.team_tools:
            if tool.name in tools:
                raise ConfigurationError(
                    f"member {self.name!r} already has a tool named {tool.name!r}"
                )
            tools[tool.name] = tool
        spec.tools = tools
        if self.autonomy == "autonomous":
            spec.approver = own.approver or _deny_all
        else:
            spec.approver = None  # an `ask` pauses the team for a person
        if self.hook is not None:
            spec.prepare_step = _chained(self.hook, own.prepare_step)
        return spec


def _chained(
    team: Callable[[StepContext[Any]], StepOptions | None],
    own: Callable[[StepContext[Any]], Any] | None,
) -> Callable[[StepContext[Any]], Any]:
    """The team's hook first (a finished handoff ends the run); then the member's own."""

    async def hook(ctx: StepContext[Any]) -> StepOptions | None:
        options = team(ctx)
        if options is not None or own is None:
            return options
        result: StepOptions | None = await call_maybe_async(own, ctx)
        return result

    return hook


def output_text(output: Any) -> str:
    """A run's output as the text a tool result or a hook's answer carries."""
    return output if isinstance(output, str) else to_json(output).decode()


def conversation(store: Store, run_id: str) -> list[Message]:
    """The user and assistant text of a run so far, from its journal.

    What a `full` handoff passes on: the words of the conversation, not its system
    prompt, tool calls or tool results, which name tools the target does not have
    (the history that makes a target call another agent's tools).
    """
    words: list[Message] = []
    for event in store.events(run_id):
        if isinstance(event, RunStarted | ModelRequested):
            said = event.context() if isinstance(event, RunStarted) else event.new_messages
            words.extend(Message("user", m.content) for m in said if m.role == "user")
        elif isinstance(event, ModelResponded) and event.response.text.strip():
            words.append(Message("assistant", event.response.text))
    return [m for m in words if m.content.strip()]


def handoff_chain(store: Store, run_id: str) -> list[tuple[str, str]]:
    """(run id, agent) of each run of the handoff chain ending at `run_id`, root first.

    A handoff's child run id ends with `.handoff`, so the chain is read from the ids
    and the index rows: what the team did, not what a team object remembers."""
    chain: list[tuple[str, str]] = []
    current: str | None = run_id
    while current is not None:
        info = store.get_run(current)
        chain.append((current, info.agent))
        if not current.endswith("." + HANDOFF_KEY):
            break
        current = info.parent_run_id
    chain.reverse()
    return chain


def made_progress(store: Store, run_id: str) -> bool:
    """Whether a run did anything but transfer: a tool other than a transfer returned
    without an error (the loop guard's notion of progress)."""
    for event in store.events(run_id):
        if (
            isinstance(event, ToolReturned)
            and not event.result.is_error
            and not event.result.name.startswith(TRANSFER_PREFIX)
        ):
            return True
    return False
