"""Replay of a planned run: its journal as a cassette (`replay_plan`).

The recording's planner and joiner replies are served by a `ReplayModel`, which checks
each request against the recorded one; the agent's tools keep their validation and
policy but are answered from the recorded results. What happened is then compared with
the recording by step and content, not by position, so a recording whose parallel
tasks finished in another order, or that was resumed after a crash, replays as itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pilothouse.events import (
    Event,
    FinalOutput,
    ModelRequested,
    OutputValidated,
    PlanAccepted,
    PlanRejected,
    RunStarted,
    Stopped,
    ToolCalled,
    ToolReturned,
)
from pilothouse.exceptions import ReplayDivergence, StoreError
from pilothouse.flows.plan import PlannedAgent
from pilothouse.messages import ToolCall, ToolResult
from pilothouse.policy import Principal
from pilothouse.runtime.journal import MemoryStore
from pilothouse.tools.tool import Tool, ToolContext

__all__ = ["PlanReplayReport", "replay_plan"]


@dataclass(slots=True)
class PlanReplayReport:
    """What a replay of a planned run found: `ok`, else the first `difference`."""

    run_id: str
    outcome: str
    difference: str | None = None
    events: list[Event] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.difference is None


class _ServedTool(Tool):
    """A tool answered from the recording (validation stays the original's)."""

    __slots__ = ("_recorded",)

    def __init__(self, original: Tool, recorded: dict[int, ToolResult]) -> None:
        for name in Tool.__slots__:
            setattr(self, name, getattr(original, name))
        self._recorded = recorded

    async def invoke(
        self, call: ToolCall, kwargs: dict[str, Any], context: ToolContext[Any]
    ) -> ToolResult:
        result = self._recorded.get(context.step)
        if result is None:
            raise ReplayDivergence(
                f"step {context.step}: {call.name} ran, but the recording has no result for it",
                run_id=context.run_id,
                step=context.step,
                kind="tool_result",
                expected="(no call)",
                got=call.name,
            )
        return ToolResult(call.id, call.name, result.content, result.is_error)


def _signature(event: Event) -> tuple[Any, ...] | None:
    """What a replay must reproduce of an event (None: not compared, e.g. timings)."""
    if isinstance(event, ModelRequested):
        return ("model_request", event.step, [m.to_dict() for m in event.new_messages])
    if isinstance(event, ToolCalled):
        decision = event.decision.effect if event.decision else None
        return ("tool_call", event.step, event.call.name, event.call.arguments, decision)
    if isinstance(event, ToolReturned):
        return ("tool_result", event.step, event.result.content, event.result.is_error)
    if isinstance(event, PlanAccepted):
        return ("plan_accepted", event.step, event.tasks, event.first_step)
    if isinstance(event, PlanRejected):
        return ("plan_rejected", event.step, event.reasons)
    if isinstance(event, FinalOutput):
        return ("final", event.output)
    if isinstance(event, Stopped):
        return ("run_stopped", event.reason)
    if isinstance(event, OutputValidated):
        return ("output_validated", event.step, event.ok)
    return None


async def replay_plan(
    planned: PlannedAgent[Any], recording: Sequence[Event], *, deps: Any = None
) -> PlanReplayReport:
    """Run a recorded planned run again, its model replies (checked against the
    requests) and tool results served from the journal, in a `MemoryStore`; the
    report names the first event that differs. Compared by content and step, not by
    position, so a recording whose parallel tasks finished in another order (or
    that was resumed after a crash) replays the same."""
    from pilothouse.models.replay import ReplayModel

    events = list(recording)
    started = events[0]
    if not isinstance(started, RunStarted):
        raise StoreError("a replay needs a whole run's journal, starting with run_started")
    results = {e.step: e.result for e in events if isinstance(e, ToolReturned)}
    model = ReplayModel(events)
    again = PlannedAgent(
        planned.agent,
        planner=model,
        max_replans=planned.max_replans,
        max_tasks=planned.max_tasks,
        agents=planned.agents,
        grounded=planned.grounded,
    )
    spec = planned.spec_around(planned.agent.run_spec(model))
    tools: dict[str, Tool] = {n: _ServedTool(t, results) for n, t in spec.tools.items()}
    again._spec = dataclasses.replace(spec, tools=tools)
    store = MemoryStore()
    principal = Principal.from_dict(started.principal) if started.principal else None
    report = PlanReplayReport(started.run_id, "error")
    try:
        result = await again.run(
            started.input, run_id=started.run_id, deps=deps, principal=principal, store=store
        )
        report.outcome = result.outcome
    except ReplayDivergence as exc:
        report.outcome = "diverged"
        report.difference = str(exc)
    except Exception as exc:
        report.difference = f"the replay failed: {type(exc).__name__}: {exc}"
    report.events = store.events(started.run_id)
    if report.difference is None:
        want = sorted(map(repr, filter(None, map(_signature, _settled(events)))))
        got = sorted(map(repr, filter(None, map(_signature, report.events))))
        if want != got:
            missing = [s for s in want if s not in got]
            extra = [s for s in got if s not in want]
            report.difference = (
                f"recorded but not replayed: {missing[:1] or '-'}; "
                f"replayed but not recorded: {extra[:1] or '-'}"
            )
    return report


def _settled(events: Sequence[Event]) -> list[Event]:
    """A recording as an uninterrupted run would have written it: a request asked
    again after a crash (no new messages) and a repeated tool_call of an in-doubt
    task are left out."""
    out: list[Event] = []
    seen_calls: set[int] = set()
    asked: set[int] = set()
    for e in events:
        if isinstance(e, ModelRequested):
            if e.step in asked:
                continue
            asked.add(e.step)
        if isinstance(e, ToolCalled):
            if e.step in seen_calls:
                continue
            seen_calls.add(e.step)
        out.append(e)
    return out
