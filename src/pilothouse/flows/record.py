"""What a flow run's journal says, read back: the executions that ended (`Record`),
the order updates are applied in (`sort_key`), a finished flow's result, and the
journal write with bounded retries every flow drive uses (`commit`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pilothouse.events import (
    ApprovalGiven,
    ApprovalRequested,
    ChildFinished,
    ChildStarted,
    ErrorOccurred,
    Event,
    FinalOutput,
    NodeFinished,
    NodeStarted,
    Stopped,
)
from pilothouse.exceptions import (
    FlowError,
)
from pilothouse.messages import Usage
from pilothouse.runtime.journal import Journal
from pilothouse.runtime.loop import commit_journal

from .nodes import FlowResult

# A flow run is typed loosely here (`pilothouse.flows.graph.Flow`): the graph module
# builds on this one, and the two may not import each other.
Flow = Any

_log = logging.getLogger("pilothouse.flows")
# The event types that end a run (a `budget_stop` of an older journal included).
ENDED = ("final", "error", "run_stopped", "budget_stop")


@dataclass(slots=True)
class Record:
    """What a flow's journal says happened (read once when it is resumed)."""

    finished: dict[str, NodeFinished] = field(default_factory=dict)
    started: set[str] = field(default_factory=set)
    requested: dict[str, ApprovalRequested] = field(default_factory=dict)
    answered: dict[str, ApprovalGiven] = field(default_factory=dict)
    children: list[Event] = field(default_factory=list)

    @classmethod
    def of(cls, events: Sequence[Event]) -> Record:
        record = cls()
        for e in events:
            if isinstance(e, NodeFinished):
                record.finished[e.key] = e
            elif isinstance(e, NodeStarted):
                record.started.add(e.key)
            elif isinstance(e, ApprovalRequested):
                record.requested[e.key] = e
            elif isinstance(e, ApprovalGiven):
                record.answered[e.key] = e
            elif isinstance(e, ChildStarted | ChildFinished):
                record.children.append(e)
        return record


def sort_key(key: str, depth: int) -> tuple[int, str, int, int]:
    """An execution's place in the order updates are applied (see the module)."""
    parts = key.split("-")
    n = int(parts[1]) if len(parts) > 1 else 0
    k = int(parts[2]) if len(parts) > 2 else -1
    return depth, parts[0], n, k


def ordered_updates(events: Sequence[Event]) -> list[dict[str, Any]]:
    """A finished flow's updates (JSON) in the order its final state applied them."""
    done = [e for e in events if isinstance(e, NodeFinished)]
    done.sort(key=lambda e: sort_key(e.key, e.step))
    return [u for e in done for u in e.updates]


def result_of_finished(flow: Flow, run_id: str, events: Sequence[Event]) -> FlowResult[Any]:
    """The result of a flow run whose journal records its end (a re-attached subgraph)."""
    last = events[-1]
    usage, steps = Usage(), 0
    nodes = 0
    for e in events:
        if isinstance(e, NodeFinished):
            usage, steps, nodes = usage + e.usage, steps + e.steps, nodes + 1
    if isinstance(last, FinalOutput):
        state = flow.schema.model.model_validate(last.output)
        return FlowResult(
            run_id, "final", usage, steps, nodes, state, updates=ordered_updates(events)
        )
    if isinstance(last, Stopped):
        return FlowResult(run_id, "budget_stop", usage, steps, nodes, stop_message=last.message)
    message = last.message if isinstance(last, ErrorOccurred) else last.type
    raise FlowError(f"flow run {run_id} failed: {message}", run_id=run_id)


async def commit(journal: Journal, *, last: bool = False) -> None:
    """`journal.commit()` with the agent loop's bounded retries (`commit_journal`): a
    store that stays down ends the drive with `RunInterrupted` (the flow is resumable)."""
    await commit_journal(journal, last=last, resume="flow.resume(run_id)")
