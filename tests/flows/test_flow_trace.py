"""Flows in the trace: readable node events (`trace.describe`), each execution's status
(`trace.flow_nodes`), the graph recorded on `run_started` (`trace.flow_graph`), the
run tree of agent nodes and subflows (`trace.walk_tree`), and `pilothouse flow show`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from pilothouse import Agent, ScriptedModel
from pilothouse.events import NodeFailed, NodeFinished, NodeStarted, RunStarted, event_from_dict
from pilothouse.exceptions import FlowError
from pilothouse.flows import START, Graph, add, append, replace
from pilothouse.messages import Usage
from pilothouse.runtime.journal import MemoryStore, SQLiteStore, open_store
from pilothouse.trace import describe, flow_graph, flow_nodes, walk_tree


class Work(BaseModel):
    topics: Annotated[list[str], replace] = []
    notes: Annotated[list[str], append] = []
    count: Annotated[int, add] = 0
    answer: Annotated[str, replace] = ""


# -- describe: pure functions over events ----------------------------------------------


def test_a_node_start_names_its_key_kind_causes_and_item() -> None:
    line = describe(NodeStarted(run_id="r", key="research-0-2", node="research", after=["plan-0"]))
    assert line == "▷ node  research-0-2 after plan-0"
    agent = describe(
        NodeStarted(run_id="r", key="write-0", node="write", kind="agent", item={"t": "x"})
    )
    assert agent == '▷ node  write-0 (agent) · item {"t": "x"}'


def test_a_node_end_summarises_updates_routes_and_fan_outs() -> None:
    event = NodeFinished(
        run_id="r",
        key="plan-0",
        node="plan",
        updates=[{"topics": ["a", "b"]}, {"count": 1}],
        routes=["review"],
        fanout={"research": ["a", "b"]},
        usage=Usage(input_tokens=3, output_tokens=4),
        steps=1,
        duration=0.012,
    )
    line = describe(event)
    assert line == (
        '◁ node  plan-0  topics=["a", "b"], count=1 · → review · ⇉ research x 2 · '
        "1 steps, 7 tok  [12 ms]"
    )
    quiet = describe(NodeFinished(run_id="r", key="n-0", node="n"))
    assert quiet == "◁ node  n-0  no updates  [0 ms]"


def test_long_updates_are_shortened_and_the_line_respects_its_limit() -> None:
    event = NodeFinished(run_id="r", key="n-0", node="n", updates=[{"answer": "x" * 500}])
    assert 'answer="' + "x" * 38 + "…" in describe(event)
    assert len(describe(event, limit=50)) == 50


def test_a_node_failure_gives_its_cause_and_a_cancellation_says_so() -> None:
    failed = NodeFailed(run_id="r", key="boom-0", node="boom", kind="ValueError", message="bad")
    assert describe(failed) == "✗ node  boom-0 failed  ValueError: bad"
    cancelled = NodeFailed(
        run_id="r",
        key="hang-0",
        node="hang",
        kind="CancelledError",
        message="a sibling failed",
        cancelled=True,
    )
    assert describe(cancelled) == "✗ node  hang-0 cancelled (a sibling failed)"


def test_a_flow_run_start_is_described_as_a_flow_and_an_agent_run_is_unchanged() -> None:
    flow = RunStarted(run_id="f", agent="research", model="flow", input="{}", tools=["a", "b"])
    assert describe(flow) == "run f · flow research · 2 nodes: a, b · input: {}"
    agent = RunStarted(run_id="g", agent="bot", model="m", input="hi", tools=["lookup"])
    assert describe(agent) == "run g · agent bot · model m · lookup · input: hi"


def test_flow_nodes_reads_each_execution_status_from_events_alone() -> None:
    events = [
        NodeStarted(run_id="r", key="a-0", node="a"),
        NodeStarted(run_id="r", key="b-0", node="b", after=["a-0"]),
        NodeStarted(run_id="r", key="c-0", node="c"),
        NodeStarted(run_id="r", key="d-0", node="d"),
        NodeFinished(run_id="r", key="a-0", node="a", updates=[{"count": 1}], duration=0.5),
        NodeFailed(run_id="r", key="b-0", node="b", kind="KeyError", message="'x'"),
        NodeFailed(run_id="r", key="c-0", node="c", kind="C", message="m", cancelled=True),
        NodeFinished(run_id="r", key="ghost-0", node="ghost"),  # no start: not a row
    ]
    rows = {r.key: r for r in flow_nodes(events)}
    assert list(rows) == ["a-0", "b-0", "c-0", "d-0"]
    assert (rows["a-0"].status, rows["a-0"].detail, rows["a-0"].duration) == (
        "finished",
        "count=1",
        0.5,
    )
    assert (rows["b-0"].status, rows["b-0"].detail, rows["b-0"].after) == (
        "failed",
        "KeyError: 'x'",
        ("a-0",),
    )
    assert rows["c-0"].status == "cancelled"
    assert rows["d-0"].status == "running"  # no end journaled: in flight or in doubt


def test_flow_graph_is_none_for_a_run_that_is_no_flow() -> None:
    agent = RunStarted(run_id="g", agent="bot", model="m", input="hi", mermaid="flowchart TD\n")
    assert flow_graph([agent]) is None
    assert flow_graph([]) is None
    old_flow = RunStarted(run_id="f", agent="x", model="flow", input="{}")
    assert flow_graph([old_flow]) is None  # journaled before the graph was recorded


def test_the_graph_on_run_started_survives_its_stored_form() -> None:
    started = RunStarted(run_id="f", agent="x", model="flow", input="{}", mermaid="flowchart TD\n")
    again = event_from_dict(started.to_dict())
    assert isinstance(again, RunStarted) and again.mermaid == "flowchart TD\n"
    plain = RunStarted(run_id="g", agent="bot", model="m", input="hi")
    assert "mermaid" not in plain.to_dict()  # an agent run's stored form is unchanged


# -- a real flow on a real store --------------------------------------------------------


def _flow() -> Any:
    inner = Graph(Work, name="inner")
    inner.node("deep", lambda s: {"notes": ["deep"]}).edge(START, "deep")
    writer = Agent(ScriptedModel(["a summary"]), name="writer")
    g = Graph(Work, name="research")
    g.node("plan", lambda s: {"topics": ["x", "y"]}).edge(START, "plan")
    g.node("look", lambda s: {"notes": ["looked"], "count": 1})
    g.agent("write", writer, prompt=lambda s: ", ".join(s.notes), into="answer")
    g.map("plan", "look", over=lambda s: s.topics, join="write")
    g.subgraph("sub", inner.build()).edge("write", "sub")
    return g.build()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A real journal store of each kind (PostgreSQL on loopback; skipped without it)."""
    if request.param == "sqlite":
        opened: Any = SQLiteStore(tmp_path / "flows.db")
    else:
        opened = open_store(request.getfixturevalue("fresh_postgres_dsn"))
    yield opened
    opened.close()


async def test_a_flow_run_records_its_graph_and_its_tree(store: Any) -> None:
    flow = _flow()
    await flow.run(store=store, run_id="fl")
    events = store.events("fl")
    assert flow_graph(events) == flow.mermaid()
    assert "subgraph sub [sub]" in (flow_graph(events) or "")
    rows = flow_nodes(events)
    assert [(r.key, r.status) for r in rows] == [
        ("plan-0", "finished"),
        ("look-0-0", "finished"),
        ("look-0-1", "finished"),
        ("write-0", "finished"),
        ("sub-0", "finished"),
    ]
    assert rows[0].detail == 'topics=["x", "y"] · ⇉ look x 2'
    assert rows[3].kind == "agent" and rows[3].detail == 'answer="a summary"'
    tree = list(walk_tree(store, "fl"))
    assert tree == [(0, "fl"), (1, "fl.3.0.write-0"), (1, "fl.4.0.sub-0")]
    child = store.events("fl.4.0.sub-0")
    assert (flow_graph(child) or "").startswith("flowchart TD\n  deep[deep]\n")  # the subflow


async def test_a_failed_flow_shows_the_failure_and_the_cancelled_sibling() -> None:
    import asyncio

    started = asyncio.Event()

    async def hang(s: Work) -> dict[str, Any]:
        started.set()
        await asyncio.Event().wait()
        return {}

    async def boom(s: Work) -> dict[str, Any]:
        await started.wait()
        raise RuntimeError("the disk is full")

    g = Graph(Work, name="cancel").node("hang", hang).node("boom", boom)
    g.edge(START, "hang").edge(START, "boom")
    store = MemoryStore()
    with pytest.raises(FlowError):
        await g.build().run(store=store, run_id="c")
    rows = {r.node: r for r in flow_nodes(store.events("c"))}
    assert rows["boom"].status == "failed"
    assert rows["boom"].detail == "RuntimeError: the disk is full"
    assert rows["hang"].status == "cancelled"


# -- the CLI ----------------------------------------------------------------------------


async def test_flow_show_and_trace_show_print_a_flow_from_its_journal(
    cli: Any, tmp_path: Path
) -> None:
    db = tmp_path / "flows.db"
    store = SQLiteStore(db)
    flow = _flow()
    await flow.run(store=store, run_id="fl")
    store.close()

    shown = cli("flow", "show", "fl", "--store", str(db))
    assert shown.returncode == 0, shown.stderr
    assert "flow research · run fl · status final" in shown.stdout
    for line in flow.mermaid().splitlines():
        assert line in shown.stdout
    assert "look-0-1  look  finished" in shown.stdout
    assert "write-0  write  agent  finished" in shown.stdout

    source = cli("flow", "show", "fl", "--store", str(db), "--mermaid")
    assert source.returncode == 0 and source.stdout == flow.mermaid()

    trace = cli("trace", "show", "fl", "--store", str(db))
    assert trace.returncode == 0, trace.stderr
    assert "flow research · 4 nodes: look, plan, sub, write" in trace.stdout
    assert '▷ node  look-0-1 after plan-0 · item "y"' in trace.stdout
    assert '◁ node  plan-0  topics=["x", "y"] · ⇉ look x 2' in trace.stdout
    assert "fl.3.0.write-0" in trace.stdout and "fl.4.0.sub-0" in trace.stdout  # the tree

    agent_run = cli("flow", "show", "fl.3.0.write-0", "--store", str(db))
    assert agent_run.returncode == 1 and "is not a flow run" in agent_run.stderr
    missing = cli("flow", "show", "nope", "--store", str(db))
    assert missing.returncode == 1 and "nope" in missing.stderr
