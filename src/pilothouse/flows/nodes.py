"""What a graph is made of: its nodes (functions, agents, questions for a person,
subgraphs), what a node is handed when it runs (`NodeContext`), and how a flow ended
(`FlowResult`). Plain data: `pilothouse.flows.graph` builds it, `pilothouse.flows.engine`
runs it."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel

from pilothouse.exceptions import (
    BudgetExceeded,
    FlowDefinitionError,
    RunPaused,
)
from pilothouse.messages import Usage
from pilothouse.runtime.loop import PendingRequest

S = TypeVar("S", bound=BaseModel)
NodeKind = Literal["function", "agent", "ask", "subgraph"]
OnDoubt = Literal["retry", "fail"]
FlowOutcome = Literal["final", "paused", "budget_stop"]
START = "__start__"
END = "__end__"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")


def check_name(name: str) -> str:
    """Node names become keys (``name-n``) and child run ids: letters, digits, '_'."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise FlowDefinitionError(
            f"node name {name!r}: use 1-40 letters, digits or '_', starting with a letter"
        )
    return name


def takes_context(fn: Callable[..., Any], what: str) -> bool:
    """Whether `fn` takes (state, ctx) rather than (state): counted once, at build."""
    try:
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        return False
    if len(params) not in (1, 2):
        raise FlowDefinitionError(
            f"{what} must take (state) or (state, ctx), not {len(params)} arguments"
        )
    return len(params) == 2


@dataclass(slots=True)
class NodeContext:
    """What a node execution is handed beside the state: who it is, the fan-out item
    it works on, the flow's deps (live objects, never journaled).

    `idempotency_key` (``run_id:key``) is stable across a crash and resume: a node
    with side effects passes it to the system it changes, so a node run again after
    a crash (``on_doubt="retry"``) is recognised there as the same execution."""

    run_id: str
    key: str
    node: str
    item: Any = None
    deps: Any = None

    @property
    def idempotency_key(self) -> str:
        return f"{self.run_id}:{self.key}"


@dataclass(slots=True)
class Node:
    """One node of a graph (see `Graph.node`, `agent`, `ask`, `subgraph`)."""

    name: str
    kind: NodeKind
    fn: Callable[..., Any] | None = None
    with_ctx: bool = False
    on_doubt: OnDoubt = "retry"
    max_visits: int | None = None
    agent: Any = None  # an Agent (kind "agent")
    into: str | None = None  # the state key an agent's output or a person's answer goes to
    output: Callable[..., Any] | None = None  # (state, output) -> update, instead of into
    flow: Any = None  # a Flow (kind "subgraph")
    blocking: bool = False  # a sync function run in a worker thread


@dataclass(slots=True)
class Route:
    """A conditional edge: `router(state)` names the next node(s) among `targets`."""

    source: str
    router: Callable[..., Any]
    targets: tuple[str, ...]
    with_ctx: bool = False


@dataclass(slots=True)
class FanOut:
    """A map edge: `over(state)` lists items; `target` runs once per item; `join`
    runs once after all of them (also when there are none)."""

    source: str
    target: str
    over: Callable[..., Any]
    join: str


@dataclass(slots=True)
class FlowResult(Generic[S]):
    """How a flow run ended: its final state (``outcome="final"``), a pause for a
    person (`pending`, answered with `Flow.resume(run_id, answers=...)`), or a budget
    stop (`stop_message`). `updates` are every node's state updates in the order they
    were applied (JSON), which a parent flow folds into its own state."""

    run_id: str
    outcome: FlowOutcome
    usage: Usage
    steps: int
    nodes: int  # node executions recorded (run or reused)
    _state: Any = None
    pending: list[PendingRequest] = field(default_factory=list)
    stop_message: str = ""
    updates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.outcome == "final"

    @property
    def state(self) -> S:
        """The final state; raises `RunPaused` or `BudgetExceeded` if there is none."""
        if self.outcome == "final":
            return self._state  # type: ignore[no-any-return]
        if self.outcome == "paused":
            waiting = "; ".join(f"{p.key} ({p.reason})" for p in self.pending)
            raise RunPaused(
                f"flow {self.run_id} is waiting for a person: {waiting}. Continue it with "
                "flow.resume(run_id, answers={key: answer})",
                run_id=self.run_id,
                outcome=self.outcome,
            )
        raise BudgetExceeded(
            f"flow {self.run_id} stopped: {self.stop_message}",
            run_id=self.run_id,
            outcome=self.outcome,
        )
