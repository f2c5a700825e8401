"""Starting, resuming and replaying a flow run: its lease, its journal, its index row,
and the scheduler (`pilothouse.flows.engine.FlowRun`) driven under them."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pilothouse.events import Event, FinalOutput, RunStarted
from pilothouse.exceptions import (
    ApprovalError,
    FlowError,
    ReplayDivergence,
    RunFinishedError,
)
from pilothouse.policy.engine import Principal
from pilothouse.runtime.journal import Journal, Store, Subscriber
from pilothouse.runtime.lease import RunLease
from pilothouse.runtime.resume import split_settlements
from pilothouse.runtime.rows import RunInfo, encode_json

from .engine import FlowRun
from .nodes import FlowResult
from .record import ENDED, Flow, Record, commit


async def drive_new(
    flow: Flow,
    store: Store,
    initial: dict[str, Any],
    run_id: str,
    *,
    deps: Any,
    principal: Principal | None,
    subscribers: Sequence[Subscriber],
    parent: tuple[str, str, str] | None,
) -> FlowResult[Any]:
    """Start a flow run under its own lease and drive it (see `Flow.run`)."""
    lease = RunLease(store, run_id)
    journal = Journal(run_id, store, subscribers, lease=lease)
    text = encode_json(flow.schema.dump_state(initial))
    now = time.time()
    parent_id, root, parent_key = parent if parent is not None else (None, run_id, None)
    journal.emit(
        RunStarted(
            run_id=run_id,
            agent=flow.name,
            model="flow",
            input=text,
            tools=sorted(flow.nodes),
            definition_hash=flow.definition_hash,
            mermaid=flow.mermaid(),
            principal=principal.to_dict() if principal is not None else None,
            parent_run_id=parent_id,
            root_run_id=root if parent is not None else None,
            parent_key=parent_key,
        )
    )
    journal.set_info(
        RunInfo(
            run_id,
            flow.name,
            "flow",
            text,
            created=now,
            updated=now,
            parent_run_id=parent_id,
            root_run_id=root,
        )
    )

    async def go() -> FlowResult[Any]:
        await commit(journal)
        run = FlowRun(
            flow,
            store,
            journal,
            run_id,
            root,
            initial,
            deps=deps,
            principal=principal,
            record=Record(),
            answers={},
            rerun=frozenset(),
        )
        return await run.drive()

    return await lease.hold(go())


async def drive_resumed(
    flow: Flow,
    store: Store,
    run_id: str,
    *,
    answers: Mapping[str, bool | str],
    rerun: Sequence[str],
    deps: Any,
    principal: Principal | None,
    subscribers: Sequence[Subscriber],
    settle: Mapping[str, bool | str] | None = None,
    approved_by: str = "",
) -> FlowResult[Any]:
    """Continue a flow run from its journal (see `Flow.resume`)."""
    info = store.get_run(run_id)
    lease = RunLease(store, run_id)
    lease.acquire()
    try:
        events = store.events(run_id)
        if not events or not isinstance(events[0], RunStarted):
            raise FlowError(f"run {run_id} has no run_started event", run_id=run_id)
        started = events[0]
        if started.model != "flow" or started.agent != flow.name:
            raise FlowError(
                f"run {run_id} is a run of {started.agent!r} ({started.model}), not of the "
                f"flow {flow.name!r}",
                run_id=run_id,
            )
        if events[-1].type in ENDED:
            raise RunFinishedError(
                f"flow run {run_id} already ended ({events[-1].type}); nothing to resume",
                run_id=run_id,
                outcome=info.status,
            )
        record = Record.of(events)
        open_requests = {k for k in record.requested if k not in record.answered}
        own = f"{run_id}:"
        for key, value in answers.items():
            if key.startswith(own) and key not in open_requests:
                raise ApprovalError(
                    f"flow run {run_id} has no open question {key!r} (open: "
                    f"{', '.join(sorted(open_requests)) or 'none'}); nothing was written",
                    run_id=run_id,
                )
            if not key.startswith((own, f"{run_id}.")):
                raise ApprovalError(
                    f"{key!r} is not a question of flow run {run_id} or of its subflows",
                    run_id=run_id,
                )
            if not isinstance(value, bool | str):
                raise ApprovalError(
                    f"the answer to {key!r} must be True, False or a text", run_id=run_id
                )
        calls, below = split_settlements(store, run_id, settle or {})
        if calls:  # a flow run makes no tool calls of its own: its nodes' runs do
            raise ApprovalError(
                f"{', '.join(sorted(calls))}: flow run {run_id} makes no calls of its own; "
                "settle the key ToolCallInDoubtError names",
                run_id=run_id,
            )
        initial = flow.schema.load(json.loads(started.input))
    except BaseException:
        lease.stop()
        raise
    journal = Journal(run_id, store, subscribers, seq=len(events), lease=lease)
    journal.info = info
    info.status = "running"
    journal.set_info(info)
    root = started.root_run_id or run_id

    async def go() -> FlowResult[Any]:
        run = FlowRun(
            flow,
            store,
            journal,
            run_id,
            root,
            initial,
            deps=deps,
            principal=principal,
            record=record,
            answers=answers,
            rerun=frozenset(rerun),
            events=events,
            settle=below,
            settled_by=approved_by,
        )
        return await run.drive()

    return await lease.hold(go())


async def replay_flow(flow: Flow, run_id: str, events: Sequence[Event]) -> FlowResult[Any]:
    """Run the scheduler over a finished flow's journal without running any node:
    every execution must have a recorded end, and the final state folded from the
    recorded updates (in key order) must equal the recorded one. `ReplayDivergence`
    otherwise. Nothing is written to the flow's store."""
    from pilothouse.runtime.journal import MemoryStore

    if not events or not isinstance(events[0], RunStarted):
        raise FlowError(f"run {run_id} has no run_started event", run_id=run_id)
    last = events[-1]
    if not isinstance(last, FinalOutput):
        raise FlowError(f"flow run {run_id} did not end with a final state", run_id=run_id)
    initial = flow.schema.load(json.loads(events[0].input))
    journal = Journal(run_id, MemoryStore())
    run = FlowRun(
        flow,
        journal.store,
        journal,
        run_id,
        run_id,
        initial,
        deps=None,
        principal=None,
        record=Record.of(events),
        answers={},
        rerun=frozenset(),
        events=events,
        replay=True,
    )
    result = await run.drive()
    got = flow.schema.dump(dict(result.state))
    if got != last.output:
        raise ReplayDivergence(
            "the final state folded from the recorded updates differs from the recorded one",
            run_id=run_id,
            step=0,
            kind="final",
            expected=encode_json(last.output)[:200],
            got=encode_json(got)[:200],
        )
    return result
