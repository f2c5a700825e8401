"""Readable one-line descriptions of journal events, for terminals and logs.

Pure functions: the CLI and examples print what these return; the library itself
never prints.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pilothouse.events import (
    ApprovalGiven,
    ApprovalRequested,
    ArtefactPublished,
    ChatMessage,
    ChildFinished,
    ChildStarted,
    DoubtSettled,
    ErrorOccurred,
    Event,
    FinalOutput,
    ModelFallback,
    ModelRequested,
    ModelResponded,
    ModelRouted,
    NodeFailed,
    NodeFinished,
    NodeStarted,
    OutputValidated,
    ParseFailed,
    PlanAccepted,
    PlanRejected,
    Retrieved,
    RunStarted,
    SpeakerSelected,
    StageRequested,
    StageResponded,
    Stopped,
    TeamEnded,
    ToolCalled,
    ToolReturned,
)

if TYPE_CHECKING:
    from pilothouse.runtime.journal import Store


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = text.replace("\n", " ⏎ ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _args(arguments: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={_short(json.dumps(v, ensure_ascii=False, default=str), 60)}"
        for k, v in arguments.items()
    )


def describe(event: Event, *, limit: int = 160) -> str:
    """One line saying what happened, e.g. ``tool_call  lookup(key="a")``."""
    if isinstance(event, RunStarted) and event.model == "flow":  # pilothouse.flows
        nodes = ", ".join(event.tools) or "no nodes"
        head = f"run {event.run_id} · flow {event.agent} · {len(event.tools)} nodes: {nodes}"
        return _short(f"{head} · input: {_short(event.input, 60)}", limit)
    if isinstance(event, NodeStarted | NodeFinished | NodeFailed):
        return _short(_describe_node(event), limit)
    if isinstance(event, RunStarted):
        tools = ", ".join(event.tools) or "no tools"
        head = f"run {event.run_id} · agent {event.agent} · model {event.model} · {tools}"
        return f"{head} · input: {_short(event.input, 60)}"
    if isinstance(event, ModelRequested):
        new = " | ".join(
            f"{m.role}: {_short(m.content, 60)}" for m in event.new_messages if m.content
        )
        hooked = []
        if event.instructions is not None:
            hooked.append("own instructions")
        if event.view is not None:
            hooked.append(f"view of {len(event.view)} message(s)")
        if event.schemas:
            hooked.append(f"narrowed {', '.join(event.schemas)}")
        if event.tool_choice != "auto":
            hooked.append(f"tool_choice {event.tool_choice}")
        if event.answered:
            hooked.append("answered by the hook")
        hook = (
            f"  [step hook: {'; '.join(hooked)}; tools {', '.join(event.tools)}]" if hooked else ""
        )
        head = f"→ model  +{len(event.new_messages)} message(s)"
        return head + (f"  {new}" if new else "") + hook
    if isinstance(event, ModelResponded):
        r = event.response
        parts = [
            f"{c.name}({_args(c.arguments)})"
            + (f" [unparsed: {c.parse_error}]" if c.parse_error else "")
            for c in r.tool_calls
        ]
        if r.text:
            parts.insert(0, repr(_short(r.text, limit)))
        usage = f"{r.usage.input_tokens}+{r.usage.output_tokens} tok"
        return f"← model  {' '.join(parts) or '(empty)'}  [{usage}, {event.duration:.2f}s]"
    if isinstance(event, StageRequested):
        note = f"  ({_short(event.note, 80)})" if event.note else ""
        narrowed = f"; narrowed {', '.join(event.schemas)}" if event.schemas else ""
        shown = ", ".join(event.tools) or "no tools"
        return f"  → stage {event.index} {event.stage}  [{shown}{narrowed}]{note}"
    if isinstance(event, StageResponded):
        u = event.response.usage
        cut = f"  [unfinished: {_short(event.error, 80)}]" if event.error else ""
        return (
            f"  ← stage {event.index} {event.stage}  {_short(event.response.text, limit)!r}  "
            f"[{u.input_tokens}+{u.output_tokens} tok, {event.duration:.2f}s]{cut}"
        )
    if isinstance(event, ToolCalled):
        c = event.call
        d = event.decision
        mark = "⏸" if d is not None and d.effect == "ask" else "⛔"
        verdict = "" if d is None or d.allowed else f"  {mark} {d.effect} by {d.rule}: {d.reason}"
        return f"⚙ call   {c.name}({_args(c.arguments)})  [{event.effect}]{verdict}"
    if isinstance(event, ToolReturned):
        mark = "✗" if event.result.is_error else "✓"
        return f"{mark} result {event.result.name}: {_short(event.result.content, limit)}"
    if isinstance(event, ApprovalRequested):
        c = event.call
        what = "approval of" if event.kind == "approval" else "an answer for"
        return (
            f"⏸ waiting for {what} {c.name}({_args(c.arguments)}) [{event.key}]: "
            f"{_short(event.reason, limit)}"
        )
    if isinstance(event, ApprovalGiven):
        verdict = "approved" if event.approved else "declined"
        by = f" by {event.by}" if event.by else ""
        answer = f": {_short(event.answer, limit)}" if event.answer else ""
        return f"▶ {verdict}{by} [{event.key}]{answer}"
    if isinstance(event, DoubtSettled):
        verdict = "took effect" if event.happened else "did not take effect"
        by = f" by {event.by}" if event.by else ""
        found = f": {_short(event.result, limit)}" if event.result else ""
        return f"▶ settled{by} [{event.key}]: {verdict}{found}"
    if isinstance(event, OutputValidated):
        return "✓ output valid" if event.ok else f"✗ output invalid: {_short(event.error, limit)}"
    if isinstance(event, ParseFailed):
        return (
            f"✗ unparsed ({event.format}): {_short(event.reason, limit)}  "
            f"[{event.retries_left} re-ask(s) left]"
        )
    if isinstance(event, FinalOutput):
        u = event.usage
        cost = f", ${u.cost:.6g}" if u.cost is not None else ""
        return (
            f"■ final  {_short(event.output, limit)}  "
            f"[{u.requests} calls, {u.total_tokens} tok{cost}]"
        )
    if isinstance(event, Stopped):  # (also a `budget_stop` of an older journal)
        of = f" {event.value:g} of {event.maximum:g}" if event.maximum is not None else ""
        rule = f" [rule {event.rule}]" if event.rule else ""
        return f"■ stopped ({event.reason}{of}): {event.message}{rule}"
    if isinstance(event, ErrorOccurred):
        return f"■ error  {event.kind}: {event.message}"
    if isinstance(event, ChildStarted):
        capped = f"  [capped to the parent's budget: {event.capped}]" if event.capped else ""
        return f"↳ child  {event.child_run_id} ({event.agent}) started by {event.key}{capped}"
    if isinstance(event, ChildFinished):
        u = event.usage
        return (
            f"↲ child  {event.child_run_id} ended {event.outcome}  "
            f"[{event.steps} steps, {u.total_tokens} tok rolled up]"
        )
    if isinstance(event, ModelFallback):
        shown = "  [streamed text discarded]" if event.after_output else ""
        return (
            f"⇢ fallback  {event.from_model} → {event.to_model}  "
            f"({event.error} after {event.attempts} attempt(s)){shown}"
        )
    if isinstance(event, ModelRouted):
        tried = (
            f" after {', '.join(event.tried)} ({_short(event.reason, 80)})" if event.tried else ""
        )
        return f"⇢ route  {event.model}{tried}"
    if isinstance(event, PlanAccepted):  # planned task graphs (flows/plan.py)
        tasks = ", ".join(f"{t.get('id')}:{t.get('tool')}" for t in event.tasks)
        return _short(f"✓ plan {event.attempt} accepted: {tasks}", limit)
    if isinstance(event, PlanRejected):
        return _short(f"✗ plan {event.attempt} rejected: {'; '.join(event.reasons)}", limit)
    if isinstance(event, SpeakerSelected):  # team patterns (teams/groupchat.py)
        note = f" ({_short(event.note, 80)})" if event.note else ""
        cost = f" [{event.usage.total_tokens} tok]" if event.usage.total_tokens else ""
        among = ", ".join(event.candidates)
        return f"☞ speaker  {event.chosen} by {event.how} among {among}{cost}{note}"
    if isinstance(event, ChatMessage):
        return f"✉ {event.speaker}: {_short(event.text, limit)}"
    if isinstance(event, ArtefactPublished):
        to = ", ".join(event.routed_to) or "nobody"
        return f"✉ {event.kind} v{event.version} from {event.producer} → {to}"
    if isinstance(event, TeamEnded):
        return f"■ team ended: {event.reason} ({event.messages} turn(s))"
    if isinstance(event, Retrieved):  # a knowledge base's search (pilothouse.knowledge)
        found = ", ".join(f"{h.get('doc')} {h.get('score')}" for h in event.hits[:3])
        return _short(
            f"⌕ retrieval  {event.knowledge_base}@{event.index_version}  "
            f"{_short(event.query, 60)} → {len(event.hits)} hit(s): {found}",
            limit,
        )
    return f"{event.type}"


def _updates(updates: Sequence[dict[str, Any]]) -> str:
    """A node's state updates as ``key=value`` pairs, in order; values as JSON (a string
    quoted, so ``"1"`` and ``1`` differ), shortened."""
    pairs = [
        f"{k}={_short(json.dumps(v, ensure_ascii=False, default=str), 40)}"
        for u in updates
        for k, v in u.items()
    ]
    return ", ".join(pairs) if pairs else "no updates"


def _describe_node(event: NodeStarted | NodeFinished | NodeFailed) -> str:
    """A flow node's start, end or failure (see `describe`)."""
    label = f"{event.key}" if event.key.split("-")[0] == event.node else f"{event.key} {event.node}"
    if isinstance(event, NodeStarted):
        kind = "" if event.kind == "function" else f" ({event.kind})"
        after = f" after {', '.join(event.after)}" if event.after else ""
        item = (
            f" · item {_short(json.dumps(event.item, default=str), 40)}"
            if event.item is not None
            else ""
        )
        capped = f" · capped {event.capped}" if event.capped else ""
        return f"▷ node  {label}{kind}{after}{item}{capped}"
    if isinstance(event, NodeFinished):
        parts = [_updates(event.updates)]
        if event.routes:
            parts.append(f"→ {', '.join(event.routes)}")
        for target, items in event.fanout.items():
            parts.append(f"⇉ {target} x {len(items)}")
        if event.steps or event.usage.total_tokens:
            parts.append(f"{event.steps} steps, {event.usage.total_tokens} tok")
        return f"◁ node  {label}  {' · '.join(parts)}  [{event.duration * 1000:.0f} ms]"
    if event.cancelled:
        return f"✗ node  {label} cancelled ({event.message})"
    return f"✗ node  {label} failed  {event.kind}: {event.message}"


@dataclass(frozen=True, slots=True)
class NodeRow:
    """One execution of a flow's node, as its journal tells it (see `flow_nodes`)."""

    key: str
    node: str
    kind: str
    status: str  # running (no end journaled: in flight, or in doubt), finished, failed, cancelled
    after: tuple[str, ...] = ()
    detail: str = ""  # updates, routes and fan-outs of a finished one; the cause of a failure
    duration: float | None = None


def flow_nodes(events: Sequence[Event]) -> list[NodeRow]:
    """Each node execution of a flow run, in the order it started, with its status:
    what a trace or the web console shows beside the flow's graph, read from the
    journal alone."""
    rows: dict[str, NodeRow] = {}
    for e in events:
        if isinstance(e, NodeStarted):
            rows[e.key] = NodeRow(e.key, e.node, e.kind, "running", tuple(e.after))
        elif isinstance(e, NodeFinished | NodeFailed) and e.key in rows:
            row = rows[e.key]
            if isinstance(e, NodeFinished):
                parts = [_updates(e.updates)]
                parts += [f"→ {', '.join(e.routes)}"] if e.routes else []
                parts += [f"⇉ {t} x {len(items)}" for t, items in e.fanout.items()]
                status, detail, took = "finished", " · ".join(parts), e.duration
            else:
                status = "cancelled" if e.cancelled else "failed"
                detail, took = f"{e.kind}: {e.message}", None
            rows[e.key] = NodeRow(
                row.key, row.node, row.kind, status, row.after, _short(detail, 200), took
            )
    return list(rows.values())


def flow_graph(events: Sequence[Event]) -> str | None:
    """A flow run's graph as Mermaid source, as its `run_started` recorded it (None for
    a run that is no flow, or a flow journaled before the graph was recorded)."""
    first = events[0] if events else None
    if isinstance(first, RunStarted) and first.model == "flow" and first.mermaid:
        return first.mermaid
    return None


def walk_tree(store: Store, run_id: str, depth: int = 0) -> Iterator[tuple[int, str]]:
    """(depth, run id) of a run and, depth first, the children its journal started.

    The tree comes from the journals themselves (`child_started` events), so it is
    the same on every store and includes a child a crashed parent started."""
    yield depth, run_id
    seen: set[str] = set()
    for event in store.events(run_id):
        if isinstance(event, ChildStarted) and event.child_run_id not in seen:
            seen.add(event.child_run_id)
            yield from walk_tree(store, event.child_run_id, depth + 1)
