"""Graphs: typed state, nodes, edges, conditional edges, fan-out and join, subgraphs,
questions for a person; checked when built, run durably (`pilothouse.flows.engine`).

    class State(BaseModel):
        topics: Annotated[list[str], replace] = []
        notes: Annotated[list[str], append] = []

    g = Graph(State, name="research")
    g.node("plan", plan)
    g.node("research", research)          # runs once per topic (ctx.item)
    g.node("write", write)
    g.edge(START, "plan")
    g.map("plan", "research", over=lambda s: s.topics, join="write")
    flow = g.build()
    result = await flow.run({"question": "..."}, store="flows.db")

`build()` refuses what would fail or hang at run time: a state key without a reducer
(already when the `Graph` is made), an edge to an unknown node, a node no edge reaches,
a conditional edge without declared targets, a fan-out target reached another way, a
cycle that passes through no node with a `max_visits` bound.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, Literal

from pydantic import BaseModel

from pilothouse.exceptions import FlowDefinitionError
from pilothouse.policy.engine import Principal
from pilothouse.runtime.budget import Budget
from pilothouse.runtime.journal import Store, Subscriber, open_store

from .drive import drive_new, drive_resumed, replay_flow
from .nodes import (
    END,
    START,
    FanOut,
    FlowResult,
    Node,
    OnDoubt,
    Route,
    S,
    check_name,
    takes_context,
)
from .state import Reducer, StateSchema

__all__ = ["END", "START", "Flow", "Graph"]

OnError = Literal["cancel", "finish"]


class Graph(Generic[S]):
    """A graph under construction (see the module). `state` is a pydantic model whose
    every key declares a reducer; `on_error` says what a failing node does to its
    siblings: ``"cancel"`` them (default) or let every branch that does not depend on
    it ``"finish"``. `budget` covers every node: agent nodes are capped to what is
    left, and the flow stops once its usage reaches a limit."""

    def __init__(
        self,
        state: type[S],
        *,
        name: str = "graph",
        reducers: Mapping[str, Reducer] | None = None,
        on_error: OnError = "cancel",
        budget: Budget | None = None,
        max_fanout: int = 1000,
    ) -> None:
        self.schema = StateSchema(state, reducers)
        self.name = check_name(name)
        if on_error not in ("cancel", "finish"):
            raise FlowDefinitionError(f"on_error must be 'cancel' or 'finish', not {on_error!r}")
        if max_fanout < 0:
            raise FlowDefinitionError("max_fanout must be 0 or more")
        self.on_error: OnError = on_error
        self.budget = budget or Budget(max_steps=None)
        self.max_fanout = max_fanout
        self.nodes: dict[str, Node] = {}
        self.edges: dict[str, list[str]] = {}
        self.routes: dict[str, list[Route]] = {}
        self.maps: dict[str, list[FanOut]] = {}

    # -- nodes ----------------------------------------------------------------------

    def _add(self, node: Node) -> None:
        check_name(node.name)
        if node.name in self.nodes:
            raise FlowDefinitionError(f"graph {self.name!r} already has a node {node.name!r}")
        if node.max_visits is not None and node.max_visits < 1:
            raise FlowDefinitionError(f"node {node.name!r}: max_visits must be at least 1")
        if node.on_doubt not in ("retry", "fail"):
            raise FlowDefinitionError(
                f"node {node.name!r}: on_doubt must be 'retry' or 'fail', not {node.on_doubt!r}"
            )
        if node.into is not None and node.into not in self.schema.adapters:
            raise FlowDefinitionError(
                f"node {node.name!r} writes into {node.into!r}, which is not a state key "
                f"({', '.join(self.schema.keys)})"
            )
        self.nodes[node.name] = node

    def node(
        self,
        name: str,
        fn: Callable[..., Any],
        *,
        on_doubt: OnDoubt = "retry",
        max_visits: int | None = None,
        blocking: bool = False,
    ) -> Graph[S]:
        """A function node: ``fn(state)`` or ``fn(state, ctx)``, sync or async, returns
        a dict of state updates (or None). `on_doubt`: what a resumed flow does with an
        execution that started and has no recorded end: ``"retry"`` runs it again with
        the same `ctx.idempotency_key`; ``"fail"`` stops for a person to check.
        `blocking`: a sync function that blocks (I/O, CPU) runs in a worker thread, so
        parallel branches are not held up by it (an async one never needs this)."""
        if isinstance(fn, Flow):
            return self.subgraph(name, fn, max_visits=max_visits)
        if not callable(fn):
            raise FlowDefinitionError(f"node {name!r} must be a function, an agent or a Flow")
        with_ctx = takes_context(fn, f"node {name!r}")
        self._add(Node(name, "function", fn, with_ctx, on_doubt, max_visits, blocking=blocking))
        return self

    def agent(
        self,
        name: str,
        agent: Any,
        *,
        prompt: Callable[..., str],
        into: str | None = None,
        output: Callable[[Any, Any], Any] | None = None,
        max_visits: int | None = None,
    ) -> Graph[S]:
        """An agent node: a child run of the flow's run on ``prompt(state)`` (or
        ``prompt(state, ctx)``), its output written to state key `into` or turned into
        an update by ``output(state, agent_output)``. Started exactly once, re-attached
        on resume; its limits are capped to the flow's budget; its usage rolls up."""
        if getattr(agent, "run_spec", None) is None:
            raise FlowDefinitionError(f"agent node {name!r} needs an Agent")
        if (into is None) == (output is None):
            raise FlowDefinitionError(f"agent node {name!r}: give exactly one of into= or output=")
        with_ctx = takes_context(prompt, f"the prompt of node {name!r}")
        node = Node(name, "agent", prompt, with_ctx, "retry", max_visits, agent, into, output)
        self._add(node)
        return self

    def ask(
        self,
        name: str,
        question: Callable[..., str],
        *,
        into: str,
        max_visits: int | None = None,
    ) -> Graph[S]:
        """A node that waits for a person: ``question(state)`` is journaled as an
        ``approval_requested`` (kind ``question``), the flow pauses once nothing else
        can run, and `Flow.resume(run_id, answers={key: answer})` writes the answer
        (text, or True/False) into state key `into`. Branches that do not depend on
        the question keep running meanwhile."""
        with_ctx = takes_context(question, f"the question of node {name!r}")
        self._add(Node(name, "ask", question, with_ctx, "retry", max_visits, into=into))
        return self

    def subgraph(self, name: str, flow: Flow[Any], *, max_visits: int | None = None) -> Graph[S]:
        """A built flow as one node: it runs as a child flow run, from the keys of this
        state it shares; its updates of shared keys come back through this graph's
        reducers, in its own order."""
        if not isinstance(flow, Flow):
            raise FlowDefinitionError(f"subgraph node {name!r} needs a built Flow (graph.build())")
        shared = set(flow.schema.keys) & set(self.schema.keys)
        if not shared:
            raise FlowDefinitionError(
                f"subgraph node {name!r}: {flow.name!r} shares no state key with {self.name!r}"
            )
        self._add(Node(name, "subgraph", None, False, "retry", max_visits, flow=flow))
        return self

    # -- edges ----------------------------------------------------------------------

    def edge(self, source: str, target: str) -> Graph[S]:
        """`target` runs after `source` (a join when several edges lead to it)."""
        self.edges.setdefault(source, []).append(target)
        return self

    def route(
        self, source: str, router: Callable[..., str | Sequence[str]], targets: Iterable[str]
    ) -> Graph[S]:
        """A conditional edge: after `source`, ``router(state)`` names the next node(s)
        (or END) among `targets`, declared so the graph can be checked and drawn."""
        with_ctx = takes_context(router, f"the router of node {source!r}")
        self.routes.setdefault(source, []).append(Route(source, router, tuple(targets), with_ctx))
        return self

    def map(
        self, source: str, target: str, *, over: Callable[[Any], Iterable[Any]], join: str
    ) -> Graph[S]:
        """Fan-out and join: after `source`, `target` runs once per item of
        ``over(state)`` (``ctx.item``), all at once; `join` runs once after every item
        (once too when there are none). The items' updates meet in the state's
        reducers, in item order."""
        self.maps.setdefault(source, []).append(FanOut(source, target, over, join))
        return self

    # -- building -------------------------------------------------------------------

    def build(self) -> Flow[S]:
        """Check the graph (see the module) and return the runnable `Flow`."""
        return Flow(self)

    def mermaid(self) -> str:
        """The graph as a Mermaid flowchart (see `Flow.mermaid`)."""
        return self.build().mermaid()


class Flow(Generic[S]):
    """A checked graph, ready to run (`Graph.build`). Immutable."""

    def __init__(self, graph: Graph[S]) -> None:
        self.name = graph.name
        self.schema = graph.schema
        self.on_error = graph.on_error
        self.budget = graph.budget
        self.max_fanout = graph.max_fanout
        self.nodes = dict(graph.nodes)
        self.edges = {k: tuple(v) for k, v in graph.edges.items()}
        self.routes = {k: tuple(v) for k, v in graph.routes.items()}
        self.maps = {k: tuple(v) for k, v in graph.maps.items()}
        self.fanouts = {f.target: f for fans in self.maps.values() for f in fans}
        self._check()
        self.successors = self._successors()
        self.reach = {name: self._reach(name) for name in self.nodes}
        # the agent and subgraph nodes among each node and what it can reach: the
        # nodes a branch through it may spend the flow's budget on (flows/engine.py)
        self.spenders = {
            name: frozenset(
                n for n in (name, *self.reach[name]) if self.nodes[n].kind in ("agent", "subgraph")
            )
            for name in self.nodes
        }
        # each node and every node its executions always deliver to, directly or not
        always = self._successors(always=True)
        self.over_edges = {name: self._reach(name, always) | {name} for name in self.nodes}
        self._check_cycles()
        self.definition_hash = self._hash()
        self._mermaid: str | None = None

    def _known(self, name: str, where: str, *, end_ok: bool = True) -> None:
        if name in self.nodes or (end_ok and name == END):
            return
        raise FlowDefinitionError(
            f"graph {self.name!r}: {where} names {name!r}, which is no node "
            f"(nodes: {', '.join(sorted(self.nodes)) or 'none'})"
        )

    def _check(self) -> None:
        if START not in self.edges:
            raise FlowDefinitionError(f"graph {self.name!r} has no edge from START")
        for source, ends in self.edges.items():
            if source != START:
                self._known(source, "an edge", end_ok=False)
            for t in ends:
                self._known(t, f"the edge from {source!r}")
        for source, routes in self.routes.items():
            self._known(source, "a conditional edge", end_ok=False)
            for r in routes:
                if not r.targets:
                    raise FlowDefinitionError(
                        f"graph {self.name!r}: the conditional edge from {source!r} declares "
                        "no targets"
                    )
                for t in r.targets:
                    self._known(t, f"the conditional edge from {source!r}")
        mapped: dict[str, str] = {}
        for source, fans in self.maps.items():
            self._known(source, "a map", end_ok=False)
            for f in fans:
                self._known(f.target, f"the map from {source!r}", end_ok=False)
                self._known(f.join, f"the join of the map from {source!r}", end_ok=False)
                if f.target in mapped:
                    raise FlowDefinitionError(
                        f"graph {self.name!r}: {f.target!r} is the target of two maps"
                    )
                mapped[f.target] = source
                if self.nodes[f.target].max_visits is not None:
                    raise FlowDefinitionError(
                        f"graph {self.name!r}: map target {f.target!r} takes no max_visits "
                        "(bound the node that fans out instead)"
                    )
        for target, source in mapped.items():
            if source in mapped:
                raise FlowDefinitionError(
                    f"graph {self.name!r}: {source!r} is a map target and fans out again "
                    f"to {target!r}; nest fan-outs with a subgraph as the map target"
                )
            others = [s for s, ts in self.edges.items() if target in ts] + [
                s for s, rs in self.routes.items() for r in rs if target in r.targets
            ]
            if others:
                raise FlowDefinitionError(
                    f"graph {self.name!r}: map target {target!r} is also reached from "
                    f"{', '.join(sorted(set(others)))}; a map target runs only per item"
                )
        seen = {START}
        todo = [START]
        while todo:
            for t in self._next(todo.pop()):
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
        unreached = sorted(set(self.nodes) - seen)
        if unreached:
            raise FlowDefinitionError(
                f"graph {self.name!r}: no edge reaches {', '.join(unreached)}"
            )

    def _next(self, name: str, *, always: bool = False) -> list[str]:
        """Where executions of `name` may deliver; `always`: only where every one does
        (edges, its maps' joins, a fan-out item's join; not routes or map targets)."""
        out = list(self.edges.get(name, ()))
        if not always:
            for r in self.routes.get(name, ()):
                out.extend(r.targets)
        for f in self.maps.get(name, ()):
            out.extend((f.join,) if always else (f.target, f.join))
        if name in self.fanouts:
            out.append(self.fanouts[name].join)
        return [t for t in out if t != END]

    def _successors(self, *, always: bool = False) -> dict[str, tuple[str, ...]]:
        return {
            name: tuple(dict.fromkeys(self._next(name, always=always)))
            for name in [START, *self.nodes]
        }

    def _reach(
        self, name: str, successors: Mapping[str, Sequence[str]] | None = None
    ) -> frozenset[str]:
        seen: set[str] = set()
        successors = self.successors if successors is None else successors
        todo = list(successors[name])
        while todo:
            t = todo.pop()
            if t not in seen:
                seen.add(t)
                todo.extend(successors[t])
        return frozenset(seen)

    def _check_cycles(self) -> None:
        """Every cycle must pass through a node with `max_visits`: the graph without
        those nodes is acyclic."""
        free = {n for n, node in self.nodes.items() if node.max_visits is None}
        state: dict[str, int] = {}
        path: list[str] = []

        def visit(name: str) -> None:
            state[name] = 1
            path.append(name)
            for t in self.successors[name]:
                if t not in free:
                    continue
                if state.get(t) == 1:
                    cycle = [*path[path.index(t) :], t]
                    raise FlowDefinitionError(
                        f"graph {self.name!r} has a cycle without a bound: "
                        f"{' -> '.join(cycle)}. Give one of its nodes max_visits=N"
                    )
                if t not in state:
                    visit(t)
            path.pop()
            state[name] = 2

        for name in sorted(free):
            if name not in state:
                visit(name)

    def _hash(self) -> str:
        shape = {
            "name": self.name,
            "state": self.schema.model.model_json_schema(),
            "reducers": {k: r.name for k, r in self.schema.reducers.items()},
            "nodes": {n: [v.kind, v.on_doubt, v.max_visits, v.into] for n, v in self.nodes.items()},
            "edges": self.edges,
            "routes": {k: [r.targets for r in v] for k, v in self.routes.items()},
            "maps": {k: [[f.target, f.join] for f in v] for k, v in self.maps.items()},
        }
        text = json.dumps(shape, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # -- running --------------------------------------------------------------------

    async def run(
        self,
        input: BaseModel | Mapping[str, Any] | None = None,
        *,
        store: Store | str | None = None,
        run_id: str | None = None,
        deps: Any = None,
        principal: Principal | None = None,
        subscribers: Sequence[Subscriber] = (),
    ) -> FlowResult[S]:
        """Run the flow from `input` (the state's defaults, then these values) as a
        journaled run. Returns the final state (`FlowResult.state`), or a pause for a
        person; a failing node raises `FlowError` naming it, after its siblings were
        cancelled or finished (`on_error`)."""
        from pilothouse.agent import new_run_id

        return await self.start(
            open_store(store),
            self.schema.initial(input),
            run_id or new_run_id(),
            deps=deps,
            principal=principal,
            subscribers=subscribers,
        )

    async def resume(
        self,
        run_id: str,
        *,
        store: Store | str | None = None,
        answers: Mapping[str, bool | str] | None = None,
        rerun: Sequence[str] = (),
        deps: Any = None,
        principal: Principal | None = None,
        subscribers: Sequence[Subscriber] = (),
        settle: Mapping[str, bool | str] | None = None,
        approved_by: str = "",
    ) -> FlowResult[S]:
        """Continue a flow run after a crash or a pause. Finished node executions are
        read back, never run again; one in doubt follows its node's `on_doubt` (`rerun`
        lists keys a person checked and wants run again); `answers` answers open
        questions (`FlowResult.pending[i].key`). `settle` is a person's word on an agent
        node's call in doubt (the key `ToolCallInDoubtError` names, as `Agent.resume`
        takes it): the node's run is resumed with it, within the node's budget."""
        return await drive_resumed(
            self,
            open_store(store),
            run_id,
            answers=dict(answers or {}),
            rerun=rerun,
            deps=deps,
            principal=principal,
            subscribers=subscribers,
            settle=settle,
            approved_by=approved_by,
        )

    async def start(
        self,
        store: Store,
        initial: Mapping[str, Any],
        run_id: str,
        *,
        deps: Any = None,
        principal: Principal | None = None,
        subscribers: Sequence[Subscriber] = (),
        parent: tuple[str, str, str] | None = None,
    ) -> FlowResult[S]:
        """Start this flow as run `run_id` on `store` (a child flow run when `parent` =
        (parent run, root run, parent key)): what `run` and a subgraph node call."""
        return await drive_new(
            self,
            store,
            self.schema.initial(initial),
            run_id,
            deps=deps,
            principal=principal,
            subscribers=subscribers,
            parent=parent,
        )

    async def replay(self, run_id: str, *, store: Store | str | None = None) -> FlowResult[S]:
        """Replay a finished flow run from its journal: the scheduler runs over the
        recorded node ends (no node runs; nothing is written) and the state it folds
        must equal the recorded final state (`ReplayDivergence` otherwise), whichever
        order the branches finished in when it was recorded."""
        return await replay_flow(self, run_id, open_store(store).events(run_id))

    def run_sync(self, input: BaseModel | Mapping[str, Any] | None = None, **kw: Any) -> Any:
        """`run` for code without an event loop."""
        import asyncio

        return asyncio.run(self.run(input, **kw))

    # -- drawing --------------------------------------------------------------------

    def mermaid(self) -> str:
        """The graph as a Mermaid flowchart: conditional edges dotted, fan-outs labelled
        ``map``, bounded nodes with their bound, agent nodes as subroutines, questions
        for a person as hexagons, subgraphs nested."""
        if self._mermaid is None:  # immutable, so drawn once (each run journals it)
            lines = ["flowchart TD"]
            lines.extend(self._mermaid_body(""))
            self._mermaid = "\n".join(lines) + "\n"
        return self._mermaid

    def _mermaid_body(self, prefix: str) -> list[str]:
        def ref(name: str) -> str:
            if name == START:
                return f"{prefix}__start__([start])"
            if name == END:
                return f"{prefix}__end__([end])"
            return f"{prefix}{name}"

        lines: list[str] = []
        for name, node in self.nodes.items():
            label = name if node.max_visits is None else f"{name} ≤{node.max_visits}"
            if node.kind == "agent":
                lines.append(f"  {prefix}{name}[[{label}]]")
            elif node.kind == "ask":
                lines.append(f"  {prefix}{name}{{{{{label}}}}}")
            elif node.kind == "subgraph":
                lines.append(f"  subgraph {prefix}{name} [{label}]")
                lines.extend("  " + line for line in node.flow._mermaid_body(f"{prefix}{name}_"))
                lines.append("  end")
            else:
                lines.append(f"  {prefix}{name}[{label}]")
        for source, targets in self.edges.items():
            for t in targets:
                lines.append(f"  {ref(source)} --> {ref(t)}")
        for source, routes in self.routes.items():
            for r in routes:
                for t in r.targets:
                    lines.append(f"  {ref(source)} -.-> {ref(t)}")
        for source, fans in self.maps.items():
            for f in fans:
                lines.append(f"  {ref(source)} ==>|map| {ref(f.target)}")
                lines.append(f"  {ref(f.target)} -->|join| {ref(f.join)}")
        ends = [
            n
            for n in self.nodes
            if not (self.edges.get(n) or self.routes.get(n) or self.maps.get(n))
            and n not in self.fanouts
        ]
        for name in ends:
            lines.append(f"  {ref(name)} --> {ref(END)}")
        return lines
