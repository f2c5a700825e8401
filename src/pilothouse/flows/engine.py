"""Running a flow: event-driven scheduling, durable to the node.

**Scheduling.** A node execution ("activation") is started as soon as its inputs are
ready, on its own asyncio task; there is no superstep barrier. Inputs are the
completed executions that routed to the node ("deliveries"). A node with deliveries
fires when no running or paused execution could still reach it through the graph's
edges: a join waits for every branch that may yet arrive, and fires exactly once for
them, while a node nothing else can reach starts at once. A fan-out creates one
execution of its target per item and delivers to its join directly, so an empty
fan-out fires the join exactly once with nothing to reduce.

**Deterministic state.** Each execution sees the flow's input with the updates of its
causes (the executions it transitively waited for) applied in *key order*:
``(depth, node, n, item)``, where depth is the execution's longest chain of causes.
The final state applies every update in that order. Completion time never enters:
replaying or resuming a flow gives the same state whichever branch finished first.

**Durable to the node.** Keys are stable (``node-n``, ``node-m-k`` for item k of the
node's m-th fan-out), because a node's executions are causally ordered. Each
execution journals ``node_started`` (committed before it runs) and ``node_finished``
with its updates, routes and fan-out items (committed before anything depends on
it). A resumed flow runs the same scheduler over the journal: a finished key's record
is reused without running the node, an in-doubt one (started, never finished)
follows its node's ``on_doubt``. Agent nodes are child runs of the flow's run
(`ChildRuns`: started exactly once, re-attached on resume); subgraphs are child flow
runs; a question for a person is an ``approval_requested`` the flow pauses on.

**Budgets divide where branches part.** Each execution carries an allotment: what it
and everything after it on its branch may spend of the flow's budget. An execution's
leftover (its allotment less what it used) is split evenly between what it starts that
can spend (an agent or subgraph node, or a node that can reach one, and each fan-out
item of such a node), and pooled again where branches join; a branch whose spending
nodes a sibling, or a fan-out's items, always reach over edges takes no share (they
run after it, on what it left: `_kept`). An agent node is capped to its allotment. So
executions that run at once never share a budget, however far apart their causes
are, and since allotments are a function of the graph, the recorded routes, items and
usage, a resumed flow gives every node the cap it had.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Mapping, Sequence
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
    NodeFailed,
    NodeFinished,
    NodeStarted,
    RunStatus,
    Stopped,
)
from pilothouse.exceptions import (
    CycleLimitError,
    FlowError,
    LeaseLostError,
    NodeInDoubtError,
    ReplayDivergence,
    RunInterrupted,
    RunNotFoundError,
    ToolCallInDoubtError,
    WriteConflictError,
)
from pilothouse.messages import ToolCall, Usage
from pilothouse.policy.engine import Principal
from pilothouse.runtime.budget import Budget, split_evenly
from pilothouse.runtime.drive import ChildRuns
from pilothouse.runtime.journal import Journal, Store
from pilothouse.runtime.loop import PendingRequest
from pilothouse.runtime.rows import encode_json
from pilothouse.tools.tool import ToolContext

from .nodes import END, START, FlowResult, Node, NodeContext
from .record import ENDED, Flow, Record, commit, result_of_finished, sort_key


class _Paused(Exception):
    """Internal: the node waits for a person (its own question, or a child's)."""

    def __init__(self, pending: list[PendingRequest]):
        super().__init__("paused")
        self.pending = pending


@dataclass(slots=True)
class _Done:
    """A finished execution: typed updates, routes, fan-out items, usage."""

    updates: list[dict[str, Any]]
    routes: list[str]
    fanout: dict[str, list[Any]]
    usage: Usage
    steps: int


@dataclass(frozen=True, slots=True)
class _Allot:
    """What an execution and what follows it on its branch may spend (`None`: no limit):
    the flow's budget divided where branches part, pooled where they join."""

    steps: int | None
    tokens: int | None
    cost: float | None

    def less(self, done: _Done) -> _Allot:
        """What is left of this after an execution used `done`'s usage."""
        return _Allot(
            None if self.steps is None else max(0, self.steps - done.steps),
            None if self.tokens is None else max(0, self.tokens - done.usage.total_tokens),
            None if self.cost is None else max(0.0, self.cost - (done.usage.cost or 0.0)),
        )

    def share(self, n: int, at: int) -> _Allot:
        """The `at`-th of `n` even shares (the first ones take a remainder)."""
        return _Allot(
            None if self.steps is None else split_evenly(self.steps, n, at),
            None if self.tokens is None else split_evenly(self.tokens, n, at),
            None if self.cost is None else self.cost / n,
        )

    def __add__(self, other: _Allot) -> _Allot:
        return _Allot(
            None if self.steps is None else self.steps + (other.steps or 0),
            None if self.tokens is None else self.tokens + (other.tokens or 0),
            None if self.cost is None else self.cost + (other.cost or 0.0),
        )


@dataclass(slots=True, eq=False)
class _Act:
    """One execution of a node (see the module)."""

    id: int
    key: str
    node: Node | None  # None: the flow's start
    depth: int
    sort: tuple[int, str, int, int]
    item: Any
    triggers: tuple[_Act, ...]
    view: dict[str, Any]
    after: dict[str, Any] | None = None
    done: _Done | None = None
    pending: list[PendingRequest] = field(default_factory=list)
    allot: _Allot = _Allot(None, None, None)  # what it and its branch may spend


class FlowRun:
    """One drive of one flow run: the scheduler and the node executions."""

    def __init__(
        self,
        flow: Flow,
        store: Store,
        journal: Journal,
        run_id: str,
        root: str,
        initial: dict[str, Any],
        *,
        deps: Any,
        principal: Principal | None,
        record: Record,
        answers: Mapping[str, bool | str],
        rerun: frozenset[str],
        events: Sequence[Event] = (),
        replay: bool = False,
        settle: Mapping[str, bool | str] | None = None,
        settled_by: str = "",
    ) -> None:
        self.flow, self.store, self.journal = flow, store, journal
        self.run_id, self.root, self.deps, self.principal = run_id, root, deps, principal
        self.initial = initial
        self.record, self.answers, self.rerun = record, answers, rerun
        self.schema = flow.schema
        self.replay = replay
        self.tree = ChildRuns(
            journal,
            store,
            root,
            principal,
            deps,
            Budget(None),
            events,
            settle=settle,
            by=settled_by,
        )
        self.started = time.monotonic()
        self._ids = 0
        self.acts: dict[int, _Act] = {}
        self.pending: dict[str, list[_Act]] = {}
        # (cause key, node): the share of the cause's leftover it handed to the node,
        # which the node's execution pools with its other causes' (`_hand_on`)
        self.given: dict[tuple[str, str], _Allot] = {}
        budget = flow.budget
        self.whole = _Allot(budget.max_steps, budget.max_tokens, budget.max_cost)
        self.nothing = _Allot(
            None if budget.max_steps is None else 0,
            None if budget.max_tokens is None else 0,
            None if budget.max_cost is None else 0.0,
        )
        # the named targets a split keeps, by the targets it was given (`_kept`)
        self.kept: dict[tuple[tuple[str, ...], tuple[str, ...]], list[str]] = {}
        self.active: dict[int, _Act] = {}
        self.blockers: dict[str, int] = {}  # node -> running executions that can reach it
        self.tasks: dict[asyncio.Task[_Done], _Act] = {}
        self.visits: dict[str, int] = {}
        self.fanouts: dict[str, int] = {}
        self.blocked: set[str] = set()
        self.failures: list[tuple[_Act, BaseException]] = []
        self.paused: list[_Act] = []
        self.finished = 0
        self.usage = Usage()
        self.steps = 0
        self.stop: tuple[str, float, float] | None = None
        self.fatal: FlowError | None = None
        self._ended: list[asyncio.Task[_Done]] = []
        self._wake = asyncio.Event()

    # -- the scheduler ----------------------------------------------------------------

    async def drive(self) -> FlowResult[Any]:
        root = self._new(None, "__start__", 0, None, (), self.initial, self.whole)
        root.after, root.done = self.initial, _Done([], [], {}, Usage(), 0)
        targets = list(self.flow.edges.get(START, ()))
        self._deliver(root, targets)
        self._hand_on(root, targets, {})
        try:
            while True:
                try:
                    self._fire_ready()
                except CycleLimitError as exc:
                    self.fatal = exc
                    await self._cancel_all()
                    break
                if not self.tasks:
                    break
                while not self._ended:  # woken by a task's end, not by polling them all
                    self._wake.clear()
                    await self._wake.wait()
                done, self._ended = self._ended, []
                for task in sorted(done, key=lambda t: self.tasks[t].sort):
                    act = self.tasks.pop(task)
                    try:
                        result = task.result()
                    except _Paused as paused:
                        act.pending = paused.pending
                        self.paused.append(act)
                        continue
                    except (RunInterrupted, LeaseLostError, WriteConflictError):
                        raise  # the journal cannot be written: not the node's failure
                    except (Exception, asyncio.CancelledError) as exc:
                        self._failed(act, exc)
                        continue
                    self._complete(act, result)
                if self.failures and self.flow.on_error == "cancel":
                    await self._cancel_all()
                    break
                if self.stop is None and (self.tasks or self.pending):
                    self.stop = self.flow.budget.exceeded(
                        self.steps, self.usage, time.monotonic() - self.started
                    )
                if self.stop is not None:
                    await self._cancel_all()
                    break
        except BaseException:
            await self._cancel_all()
            raise
        return await self._end()

    def _fire_ready(self) -> None:
        """Start every node whose deliveries are complete (see the module); executions
        with a recorded end complete at once, which may make more nodes ready."""
        progress = True
        while progress and not (self.failures and self.flow.on_error == "cancel"):
            progress = False
            for name in sorted(self.pending):
                if name in self.blocked or not self._ready(name):
                    continue
                triggers = self.pending.pop(name)
                self._fire(name, triggers)
                progress = True

    def _task_ended(self, task: asyncio.Task[_Done]) -> None:
        if task in self.tasks:  # (a cancelled one is taken out by `_cancel_all`)
            self._ended.append(task)
            self._wake.set()

    def _ready(self, name: str) -> bool:
        return not self.blockers.get(name)

    def _activate(self, act: _Act) -> None:
        """`act` runs (or waits for a person): nothing it can reach may fire meanwhile.
        Counted per node, so a ready check is one lookup, not a scan of what runs."""
        self.active[act.id] = act
        assert act.node is not None
        name = act.node.name
        for target in (name, *self.flow.reach[name]):
            self.blockers[target] = self.blockers.get(target, 0) + 1

    def _deactivate(self, act: _Act) -> None:
        if self.active.pop(act.id, None) is None:
            return
        assert act.node is not None
        name = act.node.name
        for target in (name, *self.flow.reach[name]):
            self.blockers[target] -= 1

    def _fire(self, name: str, triggers: list[_Act]) -> None:
        node = self.flow.nodes[name]
        n = self.visits.get(name, 0)
        if node.max_visits is not None and n >= node.max_visits:
            raise CycleLimitError(
                f"flow {self.flow.name!r}: node {name!r} would run a {_nth(n + 1)} time; its "
                f"bound is max_visits={node.max_visits}. Raise the bound or make the "
                "condition that leaves the cycle hold sooner",
                run_id=self.run_id,
                node=name,
                key=f"{name}-{n}",
            )
        self.visits[name] = n + 1
        triggers = sorted({t.id: t for t in triggers}.values(), key=lambda a: a.sort)
        depth = 1 + max(t.depth for t in triggers)
        if len(triggers) == 1:  # its cause's state after it: the same fold (see `_fold`)
            assert triggers[0].after is not None
            view = triggers[0].after
        else:
            view = self._fold(_causes(triggers))
        allot = self.nothing
        for trigger in triggers:
            allot = allot + self.given.pop((trigger.key, name), self.nothing)
        act = self._new(node, f"{name}-{n}", depth, None, tuple(triggers), view, allot)
        self._launch(act)

    def _fold(self, causes: list[_Act]) -> dict[str, Any]:
        """The input with the updates of `causes` applied in key order. A cause's
        depth is below its effects', so for one trigger this is the trigger's own
        view with its updates applied: what `_fire` reuses instead of folding."""
        state = self.initial
        for act in sorted(causes, key=lambda a: a.sort):
            if act.done is not None:
                for update in act.done.updates:
                    state = self.schema.apply(state, update)
        return state

    def _new(
        self,
        node: Node | None,
        key: str,
        depth: int,
        item: Any,
        triggers: tuple[_Act, ...],
        view: dict[str, Any],
        allot: _Allot,
    ) -> _Act:
        self._ids += 1
        act = _Act(
            self._ids, key, node, depth, sort_key(key, depth), item, triggers, view, allot=allot
        )
        self.acts[act.id] = act
        return act

    def _launch(self, act: _Act) -> None:
        recorded = self.record.finished.get(act.key)
        if recorded is not None:
            self.finished += 1
            self._complete(act, self._reused(recorded))
            return
        if self.replay:
            raise ReplayDivergence(
                f"node {act.key} would run, and the recording has no end for it",
                run_id=self.run_id,
                step=act.depth,
                kind="node",
                got=act.key,
            )
        self._activate(act)
        task = asyncio.ensure_future(self._execute(act))
        self.tasks[task] = act
        task.add_done_callback(self._task_ended)

    def _reused(self, e: NodeFinished) -> _Done:
        updates = [self.schema.load(u) for u in e.updates]
        return _Done(updates, list(e.routes), dict(e.fanout), e.usage, e.steps)

    def _deliver(self, act: _Act, targets: Sequence[str]) -> None:
        for target in dict.fromkeys(targets):  # an edge and a route to one node: once
            if target != END:
                self.pending.setdefault(target, []).append(act)

    def _complete(self, act: _Act, done: _Done) -> None:
        """Fold the execution's updates into what it hands on, and deliver."""
        self._deactivate(act)
        act.done = done
        after = act.view
        for update in done.updates:
            after = self.schema.apply(after, update)
        act.after = after
        self.usage = self.usage + done.usage
        self.steps += done.steps
        assert act.node is not None
        name = act.node.name
        targets = [*self.flow.edges.get(name, ()), *done.routes]
        fanned = self.flow.fanouts.get(name)
        if fanned is not None:  # an item of a fan-out: its join waits for it
            targets.append(fanned.join)
        targets.extend(self.flow.fanouts[t].join for t in sorted(done.fanout))
        self._deliver(act, targets)
        items = self._hand_on(act, targets, done.fanout)
        for target, items_of in sorted(done.fanout.items()):
            m = self.fanouts.get(target, 0)
            self.fanouts[target] = m + 1
            node = self.flow.nodes[target]
            for k, item in enumerate(items_of):
                allot = items.get((target, k), self.nothing)
                key = f"{target}-{m}-{k}"
                self._launch(self._new(node, key, act.depth + 1, item, (act,), after, allot))

    def _hand_on(
        self, act: _Act, targets: Sequence[str], fanout: Mapping[str, list[Any]]
    ) -> dict[tuple[str, int], _Allot]:
        """Split what `act` left between the nodes it delivered to and the fan-out items
        it starts, those that can spend (`Flow.spenders`, `_kept`): named nodes first (by name),
        then the items (by fan-out target and place). The nodes' shares wait in `given` for the
        node to fire; the items' are returned, by (target, place). A function of the
        graph and of the recorded routes, items and usage, so the same on resume."""
        if self.whole == self.nothing:
            return {}  # no limit to divide: every allotment is "no limit"
        assert act.done is not None
        left = act.allot.less(act.done)
        spends = self.flow.spenders
        mapped = tuple(t for t, v in sorted(fanout.items()) if v and spends[t])
        named = self._kept(sorted({t for t in targets if t != END and spends[t]}), mapped)
        spent = [(t, k) for t, v in sorted(fanout.items()) if spends[t] for k in range(len(v))]
        ways = len(named) + len(spent)
        for at, target in enumerate(named):
            self.given[(act.key, target)] = left.share(ways, at)
        return {item: left.share(ways, len(named) + k) for k, item in enumerate(spent)}

    def _kept(self, named: list[str], mapped: tuple[str, ...]) -> list[str]:
        """The targets of one split that take a share: not one whose every agent and
        subgraph node a sibling that keeps its share, or a fan-out target given items
        (`mapped`: its items always deliver to its join), reaches over edges alone.
        Those can fire only once that sibling's branch, which cannot go around them,
        has delivered to them what it left: a share held for them meanwhile would only
        starve the sibling (a plain `log -> join -> summary` beside a long agent that
        also ends in `join` took half of the flow's budget from it; a map's agent join
        took a share from its items), and what they get in the end, the pool of what
        was left, is the same. Routes and maps may go elsewhere, and an empty map
        starts no item, so only edges and items count. A function of the graph and the
        recorded items."""
        if not named or (len(named) < 2 and not mapped):
            return named
        key = (tuple(named), mapped)
        kept = self.kept.get(key)
        if kept is None:
            kept = list(named)
            for target in named:
                mine = self.flow.spenders[target]
                if any(u != target and mine <= self.flow.over_edges[u] for u in (*kept, *mapped)):
                    kept.remove(target)
            self.kept[key] = kept
        return kept

    def _failed(self, act: _Act, exc: BaseException) -> None:
        self._deactivate(act)
        assert act.node is not None
        self.failures.append((act, exc))
        # nothing that depends on a failed execution may run (on_error="finish")
        self.blocked.add(act.node.name)
        self.blocked.update(self.flow.reach[act.node.name])

    async def _cancel_all(self) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            act = self.tasks.pop(task)
            self._deactivate(act)
            assert act.node is not None
            if not task.cancelled():
                continue  # it ended before the cancellation landed: its end is journaled
            self.journal.emit(
                NodeFailed(
                    run_id=self.run_id,
                    step=act.depth,
                    key=act.key,
                    node=act.node.name,
                    kind="cancelled",
                    message="cancelled: "
                    + ("the flow's budget ran out" if self.stop else "a sibling failed"),
                    cancelled=True,
                )
            )
        if tasks:
            await commit(self.journal)

    # -- one node execution -----------------------------------------------------------

    async def _execute(self, act: _Act) -> _Done:
        node = act.node
        assert node is not None
        began = time.monotonic()
        if act.key in self.record.started and act.key not in self.rerun:
            if node.kind == "function" and node.on_doubt == "fail":
                raise NodeInDoubtError(
                    f"flow run {self.run_id}: node {node.name!r} ({act.key}) started before "
                    "the flow stopped and has no recorded end; it may have acted. Check, "
                    f"then resume with rerun=[{act.key!r}] to run it again",
                    run_id=self.run_id,
                    node=node.name,
                    key=act.key,
                )
        elif act.key not in self.record.started:
            capped = self._capped(act)
            self.journal.emit(
                NodeStarted(
                    run_id=self.run_id,
                    step=act.depth,
                    key=act.key,
                    node=node.name,
                    kind=node.kind,
                    after=[t.key for t in act.triggers if t.node is not None],
                    item=_json(act.item),
                    capped=capped,
                )
            )
            await commit(self.journal)
        try:
            updates, usage, steps = await self._run_node(node, act)
            typed = [self.schema.check(u, f"node {node.name!r} ({act.key})") for u in updates]
            after = act.view
            for update in typed:
                after = self.schema.apply(after, update)
            routes, fanout = self._routes(node, act, after)
        except (
            _Paused,
            NodeInDoubtError,
            ToolCallInDoubtError,  # an agent node's side effect: the flow waits in doubt
            RunInterrupted,
            LeaseLostError,
            WriteConflictError,
        ):
            raise
        except Exception as exc:
            self.journal.emit(
                NodeFailed(
                    run_id=self.run_id,
                    step=act.depth,
                    key=act.key,
                    node=node.name,
                    kind=type(exc).__name__,
                    message=str(exc),
                )
            )
            await commit(self.journal)
            raise
        self.journal.emit(
            NodeFinished(
                run_id=self.run_id,
                step=act.depth,
                key=act.key,
                node=node.name,
                updates=[self.schema.dump(u) for u in typed],
                routes=routes,
                fanout={t: [_json(i) for i in items] for t, items in fanout.items()},
                usage=usage,
                steps=steps,
                duration=round(time.monotonic() - began, 6),
            )
        )
        await commit(self.journal)
        # the fan-out items as journaled (JSON), so a fresh run and a resumed one agree
        items = {t: [_json(i) for i in v] for t, v in fanout.items()}
        return _Done(typed, routes, items, usage, steps)

    def _routes(
        self, node: Node, act: _Act, after: dict[str, Any]
    ) -> tuple[list[str], dict[str, list[Any]]]:
        routes: list[str] = []
        fanout: dict[str, list[Any]] = {}
        if node.name not in self.flow.routes and node.name not in self.flow.maps:
            return routes, fanout
        view = self.schema.view(after)
        for route in self.flow.routes.get(node.name, ()):
            ctx = self._ctx(act)
            chosen = route.router(view, ctx) if route.with_ctx else route.router(view)
            names = [chosen] if isinstance(chosen, str) else list(chosen or ())
            for name in names:
                if name not in route.targets:
                    raise ValueError(
                        f"the router of node {node.name!r} chose {name!r}, which is not among "
                        f"its declared targets ({', '.join(route.targets)})"
                    )
                if name not in routes:
                    routes.append(name)
        for fan in self.flow.maps.get(node.name, ()):
            items = list(fan.over(view))
            if len(items) > self.flow.max_fanout:
                raise ValueError(
                    f"node {node.name!r} fanned out {len(items)} items to {fan.target!r}; "
                    f"the flow allows {self.flow.max_fanout} (Graph(max_fanout=...))"
                )
            fanout[fan.target] = items
        return routes, fanout

    def _ctx(self, act: _Act) -> NodeContext:
        assert act.node is not None
        return NodeContext(self.run_id, act.key, act.node.name, act.item, self.deps)

    async def _run_node(self, node: Node, act: _Act) -> tuple[list[Any], Usage, int]:
        view = self.schema.view(act.view)
        if node.kind == "function":
            assert node.fn is not None
            args = (view, self._ctx(act)) if node.with_ctx else (view,)
            if node.blocking:
                value = await asyncio.to_thread(node.fn, *args)
            else:
                value = node.fn(*args)
            if asyncio.iscoroutine(value):
                value = await value
            return [value], Usage(), 0
        if node.kind == "ask":
            return [await self._ask(node, act, view)], Usage(), 0
        if node.kind == "agent":
            return await self._agent(node, act, view)
        return await self._subgraph(node, act)

    async def _ask(self, node: Node, act: _Act, view: Any) -> dict[str, Any]:
        key = f"{self.run_id}:{act.key}"
        given = self.record.answered.get(key)
        if given is None and key in self.answers:
            given = self._answer(key)
        if given is not None:
            answer: Any = given.answer if given.answer is not None else given.approved
            assert node.into is not None
            return {node.into: answer}
        requested = self.record.requested.get(key)
        if requested is None:
            assert node.fn is not None
            question = node.fn(view, self._ctx(act)) if node.with_ctx else node.fn(view)
            requested = ApprovalRequested(
                run_id=self.run_id,
                step=act.depth,
                index=0,
                key=key,
                kind="question",
                call=ToolCall(act.key, node.name, {"question": str(question)}),
                reason=str(question),
            )
            self.journal.emit(requested)
            await commit(self.journal)
            self.record.requested[key] = requested
        raise _Paused([PendingRequest.from_event(requested)])

    def _answer(self, key: str) -> ApprovalGiven:
        value = self.answers[key]
        requested = self.record.requested[key]
        given = ApprovalGiven(
            run_id=self.run_id,
            step=requested.step,
            index=0,
            key=key,
            approved=bool(value) if isinstance(value, bool) else True,
            answer=None if isinstance(value, bool) else str(value),
        )
        self.journal.emit(given)
        self.record.answered[key] = given
        return given

    def _capped(self, act: _Act) -> dict[str, list[float]]:
        """Limits of an agent node's agent or a subgraph node's flow lowered to the
        execution's allotment (see the module): what the flow's budget left to its
        branch, after its causes' usage, split where branches part (a fan-out's items,
        the nodes one execution starts at once, however far down their agents are) and
        pooled where they join. Time is not split."""
        node = act.node
        if node is None or node.kind not in ("agent", "subgraph"):
            return {}
        own: Budget = node.agent.run_spec().budget if node.kind == "agent" else node.flow.budget
        budget, allot = self.flow.budget, act.allot
        left: dict[str, float | None] = {
            "steps": allot.steps,
            "tokens": allot.tokens,
            "seconds": None
            if budget.max_seconds is None
            else max(0.0, budget.max_seconds - (time.monotonic() - self.started)),
            "cost": allot.cost,
        }
        mine = {
            "steps": own.max_steps,
            "tokens": own.max_tokens,
            "seconds": own.max_seconds,
            "cost": own.max_cost,
        }
        return {
            name: [-1 if mine[name] is None else float(mine[name] or 0), float(value)]
            for name, value in left.items()
            if value is not None and (mine[name] is None or (mine[name] or 0) > value)
        }

    async def _agent(self, node: Node, act: _Act, view: Any) -> tuple[list[Any], Usage, int]:
        assert node.fn is not None
        prompt = node.fn(view, self._ctx(act)) if node.with_ctx else node.fn(view)
        spec = node.agent.run_spec()
        capped = self._capped(act)
        if capped:
            spec = copy.copy(spec)
            spec.budget = _lowered(spec.budget, capped)
        context: ToolContext[Any] = ToolContext(
            run_id=self.run_id, step=act.depth, index=0, deps=self.deps, runner=self.tree
        )
        result = await self.tree.run_child(context, _Spec(spec), str(prompt), act.key, self.deps)
        if result.outcome == "paused":
            raise _Paused(list(result.pending))
        if result.outcome != "final":
            raise FlowError(
                f"agent node {node.name!r} ({act.key}) stopped: "
                f"{result.stop.message if result.stop else result.outcome}",
                run_id=self.run_id,
                node=node.name,
                key=act.key,
            )
        output = result.output
        if node.output is not None:
            update = node.output(view, output)
        else:
            assert node.into is not None
            update = {node.into: output}
        return [update], result.usage, result.steps + result.child_steps  # its tree's

    async def _subgraph(self, node: Node, act: _Act) -> tuple[list[Any], Usage, int]:
        sub: Flow = node.flow
        capped = self._capped(act)
        if capped:  # the same graph (and hash) within what this branch may spend
            sub = copy.copy(sub)
            sub.budget = _lowered(sub.budget, capped)
        child_id = f"{self.run_id}.{act.depth}.0.{act.key}"
        if not any(
            isinstance(e, ChildStarted) and e.child_run_id == child_id for e in self.record.children
        ):
            started = ChildStarted(
                run_id=self.run_id,
                step=act.depth,
                index=0,
                key=f"{self.run_id}:{act.key}",
                child_run_id=child_id,
                agent=sub.name,
            )
            self.journal.emit(started)
            self.record.children.append(started)
        given = {k: v for k, v in act.view.items() if k in sub.schema.adapters}
        try:
            events = self.store.events(child_id) if self.store.get_run(child_id) else []
        except RunNotFoundError:
            events = []
        if events and events[-1].type in ENDED:
            result = result_of_finished(sub, child_id, events)
        elif events:
            mine = {  # only the child's own questions (and its children's)
                k: v
                for k, v in self.answers.items()
                if k.startswith((f"{child_id}:", f"{child_id}."))
            }
            result = await sub.resume(
                child_id,
                store=self.store,
                deps=self.deps,
                answers=mine,
                settle=self.tree.settlements_for(child_id),
                approved_by=self.tree.settled_by,
            )
        else:
            result = await sub.start(
                self.store,
                self.schema.dump(given),
                child_id,
                deps=self.deps,
                principal=self.principal,
                parent=(self.run_id, self.root, f"{self.run_id}:{act.key}"),
            )
        if result.outcome == "paused":
            raise _Paused(list(result.pending))
        if not any(
            isinstance(e, ChildFinished) and e.child_run_id == child_id
            for e in self.record.children
        ):
            finished = ChildFinished(
                run_id=self.run_id,
                step=act.depth,
                index=0,
                child_run_id=child_id,
                outcome=result.outcome,
                usage=result.usage,
                steps=result.steps,
            )
            self.journal.emit(finished)
            self.record.children.append(finished)
        if result.outcome != "final":
            raise FlowError(
                f"subgraph node {node.name!r} ({act.key}) stopped: {result.stop_message}",
                run_id=self.run_id,
                node=node.name,
                key=act.key,
            )
        mine = self.schema.adapters
        updates = [{k: v for k, v in u.items() if k in mine} for u in result.updates]
        return [u for u in updates if u], result.usage, result.steps

    # -- the end ----------------------------------------------------------------------

    async def _end(self) -> FlowResult[Any]:
        done = sorted(
            (a for a in self.acts.values() if a.node is not None and a.done is not None),
            key=lambda a: a.sort,
        )
        state = self.initial
        for act in done:
            assert act.done is not None
            for update in act.done.updates:
                state = self.schema.apply(state, update)
        updates = [self.schema.dump(u) for a in done if a.done for u in a.done.updates]
        if self.fatal is not None:
            fatal = self.fatal
            await self._close(
                "error",
                ErrorOccurred(run_id=self.run_id, kind=type(fatal).__name__, message=str(fatal)),
                None,
            )
            raise fatal
        if self.failures:
            act, exc = min(self.failures, key=lambda f: f[0].sort)
            if isinstance(exc, NodeInDoubtError | ToolCallInDoubtError):
                # not an end: resumable once a person checked (rerun=, or the agent
                # node's child run settled with Agent.resume(settle=))
                await self._close("in_doubt", None, None)
                raise exc
            assert act.node is not None
            if isinstance(exc, FlowError):
                error = exc
            else:
                error = FlowError(
                    f"flow {self.flow.name!r}: node {act.node.name!r} ({act.key}) failed: "
                    f"{type(exc).__name__}: {exc}",
                    run_id=self.run_id,
                    node=act.node.name,
                    key=act.key,
                    cause=exc,
                )
                error.__cause__ = exc
            await self._close(
                "error",
                ErrorOccurred(run_id=self.run_id, kind=type(exc).__name__, message=str(error)),
                None,
            )
            raise error
        if self.stop is not None:
            limit, value, maximum = self.stop
            message = f"the flow's {limit} budget ran out ({value:g} of {maximum:g})"
            await self._close(
                "budget_stop",
                Stopped(
                    run_id=self.run_id,
                    reason=limit,  # type: ignore[arg-type]
                    message=message,
                    value=value,
                    maximum=maximum,
                ),
                None,
            )
            return FlowResult(
                self.run_id,
                "budget_stop",
                self.usage,
                self.steps,
                len(done),
                stop_message=message,
                updates=updates,
            )
        if self.paused:
            pending = [p for a in sorted(self.paused, key=lambda a: a.sort) for p in a.pending]
            await self._close("paused", None, None)
            return FlowResult(
                self.run_id, "paused", self.usage, self.steps, len(done), pending=pending
            )
        output = self.schema.dump(state)
        await self._close(
            "final", FinalOutput(run_id=self.run_id, output=output, usage=self.usage), output
        )
        return FlowResult(
            self.run_id,
            "final",
            self.usage,
            self.steps,
            len(done),
            self.schema.model.model_validate(state),
            updates=updates,
        )

    async def _close(self, status: RunStatus, event: Event | None, output: Any) -> None:
        if event is not None:
            self.journal.emit(event)
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
        await commit(self.journal, last=True)


class _Spec:
    """An agent as `ChildRuns` takes it, with the budget the flow capped it to."""

    __slots__ = ("_spec",)

    def __init__(self, spec: Any) -> None:
        self._spec = spec

    def run_spec(self) -> Any:
        return self._spec


def _lowered(own: Budget, capped: Mapping[str, list[float]]) -> Budget:
    """`own` with the limits `capped` lowers ({name: [own, given]}) set to theirs."""
    given = {name: value[1] for name, value in capped.items()}
    return Budget(
        int(given["steps"]) if "steps" in given else own.max_steps,
        int(given["tokens"]) if "tokens" in given else own.max_tokens,
        given.get("seconds", own.max_seconds),
        given.get("cost", own.max_cost),
        own.max_repeats,
    )


def _causes(triggers: Sequence[_Act]) -> list[_Act]:
    """Every execution `triggers` transitively waited for, and themselves (not the
    flow's start): what an execution with these triggers sees the updates of."""
    seen: set[int] = set()
    out: list[_Act] = []
    todo = list(triggers)
    while todo:
        act = todo.pop()
        if act.id in seen or act.node is None:
            continue
        seen.add(act.id)
        out.append(act)
        todo.extend(act.triggers)
    return out


def _nth(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _json(value: Any) -> Any:
    """A fan-out item as the journal keeps it (JSON values)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value

    return json.loads(encode_json(value))
