"""Durable to the node: resume from any commit reuses every finished node; questions
for a person pause a branch and resume with the answer; agent nodes are child runs
whose usage rolls up and whose budget is capped by the flow's."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from pilothouse import Agent, ScriptedModel
from pilothouse.events import (
    ApprovalGiven,
    ApprovalRequested,
    ChildFinished,
    ChildStarted,
    Event,
    NodeFinished,
    NodeStarted,
)
from pilothouse.exceptions import (
    ApprovalError,
    NodeInDoubtError,
    RunFinishedError,
)
from pilothouse.flows import END, START, Graph, NodeContext, add, append, replace
from pilothouse.runtime.budget import Budget
from pilothouse.runtime.journal import MemoryStore, SQLiteStore, Store
from pilothouse.runtime.rows import RunInfo


class Work(BaseModel):
    topics: Annotated[list[str], replace] = []
    notes: Annotated[list[str], append] = []
    rounds: Annotated[int, add] = 0
    answer: Annotated[str, replace] = ""


def _graph(runs: Counter[str]) -> Any:
    """A map, a join, a bounded cycle and a plain branch; counts executions by key."""

    def plan(s: Work, ctx: NodeContext) -> dict[str, Any]:
        runs[ctx.key] += 1
        return {"topics": ["a", "b", "c"]}

    async def research(s: Work, ctx: NodeContext) -> dict[str, Any]:
        runs[ctx.key] += 1
        return {"notes": [f"on {ctx.item}"]}

    def review(s: Work, ctx: NodeContext) -> dict[str, Any]:
        runs[ctx.key] += 1
        return {"rounds": 1, "notes": [f"review {s.rounds}"]}

    def side(s: Work, ctx: NodeContext) -> dict[str, Any]:
        runs[ctx.key] += 1
        return {"notes": ["side"]}

    g = Graph(Work, name="durable")
    g.node("plan", plan).node("research", research).node("review", review, max_visits=3)
    g.node("side", side)
    g.edge(START, "plan").edge(START, "side")
    g.map("plan", "research", over=lambda s: s.topics, join="review")
    g.route("review", lambda s: "review" if s.rounds < 2 else END, ["review", END])
    return g.build()


def _copy(events: list[Event], store: Store, run_id: str, info: RunInfo) -> None:
    if events:
        store.write(events, dataclasses.replace(info, status="running", output=None))


async def test_resume_from_every_commit_reruns_no_finished_node(tmp_path: Path) -> None:
    reference_runs: Counter[str] = Counter()
    source = MemoryStore()
    reference = await _graph(reference_runs).run(store=source, run_id="d")
    events = source.events("d")
    info = source.get_run("d")
    for cut in range(1, len(events)):
        store = SQLiteStore(tmp_path / f"cut{cut}.db")
        _copy(events[:cut], store, "d", info)
        finished = {e.key for e in events[:cut] if isinstance(e, NodeFinished)}
        runs: Counter[str] = Counter()
        resumed = await _graph(runs).resume("d", store=store)
        assert resumed.state == reference.state, cut
        assert not finished & set(runs), (cut, finished & set(runs))  # 0 finished re-run
        assert set(runs) | finished == set(reference_runs), cut
        stored = store.events("d")
        assert [e.seq for e in stored] == list(range(len(stored)))
        done = [e.key for e in stored if isinstance(e, NodeFinished)]
        assert len(done) == len(set(done)) == len(reference_runs)  # each key finished once
        store.close()


async def test_a_flow_that_ended_is_not_resumed() -> None:
    store = MemoryStore()
    await _graph(Counter()).run(store=store, run_id="e")
    with pytest.raises(RunFinishedError, match="already ended"):
        await _graph(Counter()).resume("e", store=store)


async def test_a_node_in_doubt_with_on_doubt_fail_waits_for_a_person() -> None:
    effects: list[str] = []

    def pay(s: Work, ctx: NodeContext) -> dict[str, Any]:
        effects.append(ctx.idempotency_key)
        return {"notes": ["paid"]}

    g = Graph(Work, name="pay").node("pay", pay, on_doubt="fail").edge(START, "pay")
    flow = g.build()
    source = MemoryStore()
    await flow.run(store=source, run_id="p")
    events = source.events("p")
    started = next(i for i, e in enumerate(events) if isinstance(e, NodeStarted))
    store = MemoryStore()
    _copy(events[: started + 1], store, "p", source.get_run("p"))
    effects.clear()
    with pytest.raises(NodeInDoubtError, match="rerun=\\['pay-0'\\]"):
        await flow.resume("p", store=store)
    assert effects == [] and store.get_run("p").status == "in_doubt"
    result = await flow.resume("p", store=store, rerun=["pay-0"])
    assert effects == ["p:pay-0"] and result.state.notes == ["paid"]


# -- a person in the loop ---------------------------------------------------------------


async def test_a_question_pauses_its_branch_and_the_answer_resumes_it() -> None:
    ran: list[str] = []

    def draft(s: Work) -> dict[str, Any]:
        ran.append("draft")
        return {"notes": ["draft"]}

    def other(s: Work) -> dict[str, Any]:
        ran.append("other")
        return {"notes": ["other"]}

    def publish(s: Work) -> dict[str, Any]:
        ran.append("publish")
        return {"notes": [f"published ({s.answer})"]}

    g = Graph(Work, name="review_flow")
    g.node("draft", draft).ask("approve", lambda s: f"Publish {s.notes}?", into="answer")
    g.node("publish", publish).node("other", other)
    g.edge(START, "draft").edge("draft", "approve").edge("approve", "publish")
    g.edge(START, "other")
    flow = g.build()
    store = MemoryStore()
    paused = await flow.run(store=store, run_id="q")
    assert paused.outcome == "paused" and sorted(ran) == ["draft", "other"]  # not blocked
    assert [p.key for p in paused.pending] == ["q:approve-0"]
    assert paused.pending[0].reason == "Publish ['draft']?"
    assert store.get_run("q").status == "paused"
    with pytest.raises(ApprovalError, match="no open question 'q:nope-0'"):
        await flow.resume("q", store=store, answers={"q:nope-0": "yes"})
    with pytest.raises(ApprovalError, match="not a question of flow run q"):
        await flow.resume("q", store=store, answers={"other:approve-0": "yes"})
    again = await flow.resume("q", store=store)  # no answer yet: still paused, not asked twice
    assert again.outcome == "paused"
    done = await flow.resume("q", store=store, answers={"q:approve-0": "ship it"})
    assert done.state.notes == ["draft", "other", "published (ship it)"]
    assert sorted(ran) == ["draft", "other", "publish"]  # nothing ran twice
    events = store.events("q")
    assert sum(isinstance(e, ApprovalRequested) for e in events) == 1
    given = [e for e in events if isinstance(e, ApprovalGiven)]
    assert len(given) == 1 and given[0].answer == "ship it"


# -- agent nodes ------------------------------------------------------------------------


async def test_an_agent_node_is_a_child_run_with_capped_budget_and_rolled_up_usage() -> None:
    model = ScriptedModel(["a summary of the notes"])
    writer = Agent(model, "Summarise.", name="writer", budget=Budget(max_tokens=10_000))
    g = Graph(Work, name="with_agent", budget=Budget(max_steps=None, max_tokens=500))
    g.node("collect", lambda s: {"notes": ["n1", "n2"]}).edge(START, "collect")
    g.agent("write", writer, prompt=lambda s: "Notes: " + ", ".join(s.notes), into="answer")
    g.edge("collect", "write")
    flow = g.build()
    store = MemoryStore()
    result = await flow.run(store=store, run_id="ag")
    assert result.state.answer == "a summary of the notes"
    assert model.requests[0].messages[-1].content == "Notes: n1, n2"
    child_id = "ag.2.0.write-0"
    assert store.get_run(child_id).parent_run_id == "ag"
    assert store.get_run(child_id).status == "final"
    events = store.events("ag")
    started = next(e for e in events if isinstance(e, NodeStarted) and e.node == "write")
    assert started.capped == {"tokens": [10_000.0, 500.0]}
    assert [e.child_run_id for e in events if isinstance(e, ChildStarted)] == [child_id]
    finished = [e for e in events if isinstance(e, ChildFinished)]
    assert finished[0].usage.total_tokens == result.usage.total_tokens > 0
    assert store.get_run("ag").input_tokens == result.usage.input_tokens


async def test_the_items_of_a_fan_out_split_the_flows_budget() -> None:
    """Abuse: a map over many items must not give each item's agent all that is left
    (before, three writers were each capped to the flow's 1000 tokens). The items run
    at once, so each gets an even share of what the fan-out's cause left: the same on
    resume, and together no more than the budget."""
    writer = Agent(ScriptedModel(lambda r: "a line"), name="writer")
    g = Graph(Work, name="fanned", budget=Budget(max_steps=None, max_tokens=1000))
    g.node("plan", lambda s: {"topics": ["a", "b", "c"]}).edge(START, "plan")
    g.agent("write", writer, prompt=lambda s, ctx: f"write about {ctx.item}", into="answer")
    g.node("join", lambda s: {"rounds": 1})
    g.map("plan", "write", over=lambda s: s.topics, join="join")
    store = MemoryStore()
    result = await g.build().run(store=store, run_id="fan")
    assert result.state.rounds == 1
    caps = {
        e.key: e.capped
        for e in store.events("fan")
        if isinstance(e, NodeStarted) and e.node == "write"
    }
    assert caps == {
        "write-0-0": {"tokens": [-1, 334.0]},  # 1000 = 334 + 333 + 333
        "write-0-1": {"tokens": [-1, 333.0]},
        "write-0-2": {"tokens": [-1, 333.0]},
    }


async def test_agent_branches_of_one_node_split_the_flows_budget() -> None:
    """Abuse: two agent nodes that one node's edges start side by side split what the
    flow has left (before, each was capped to all 1000 tokens); an agent that fires on
    several branches at once (a join) is capped to what is left after all of them."""
    writer = Agent(ScriptedModel(lambda r: "a line"), name="writer")
    g = Graph(Work, name="branches", budget=Budget(max_steps=None, max_tokens=1000))
    g.node("plan", lambda s: {"topics": ["a"]}).edge(START, "plan")
    g.agent("north", writer, prompt=lambda s: "north", into="answer")
    g.agent("south", writer, prompt=lambda s: "south", into="answer")
    g.agent("merge", writer, prompt=lambda s: "merge", into="answer")
    g.edge("plan", "north").edge("plan", "south").edge("north", "merge").edge("south", "merge")
    store = MemoryStore()
    result = await g.build().run(store=store, run_id="br")
    caps = {e.node: e.capped for e in store.events("br") if isinstance(e, NodeStarted)}
    assert caps["north"] == {"tokens": [-1, 500.0]} and caps["south"] == caps["north"]
    used = sum(
        e.usage.total_tokens
        for e in store.events("br")
        if isinstance(e, ChildFinished) and ".merge" not in e.child_run_id
    )
    assert caps["merge"] == {"tokens": [-1, float(1000 - used)]}
    assert result.state.answer == "a line"


async def test_a_resumed_flow_reattaches_to_its_agent_child() -> None:
    model = ScriptedModel(["the answer"])
    writer = Agent(model, name="writer")
    g = Graph(Work, name="reattach")
    g.agent("write", writer, prompt=lambda s: "go", into="answer").edge(START, "write")
    flow = g.build()
    source = MemoryStore()
    await flow.run(store=source, run_id="ra")
    events = source.events("ra")
    last_child = max(i for i, e in enumerate(events) if isinstance(e, ChildStarted))
    store = MemoryStore()
    # the child finished in the store, the flow crashed before recording the node's end
    store.write(source.events("ra.1.0.write-0"), source.get_run("ra.1.0.write-0"))
    _copy(events[: last_child + 1], store, "ra", source.get_run("ra"))
    calls = len(model.requests)
    result = await flow.resume("ra", store=store)
    assert result.state.answer == "the answer"
    assert len(model.requests) == calls  # the child's recorded result, not a new call
    assert sum(isinstance(e, ChildStarted) for e in store.events("ra")) == 1


async def test_the_flow_budget_stops_the_flow_and_cancels_what_runs() -> None:
    gate = asyncio.Event()

    async def wait(s: Work) -> dict[str, Any]:
        await gate.wait()
        return {}

    model = ScriptedModel(["x " * 50])
    hungry = Agent(model, name="hungry")
    g = Graph(Work, name="budget", budget=Budget(max_steps=None, max_tokens=20))
    g.agent("spend", hungry, prompt=lambda s: "go", into="answer").edge(START, "spend")
    g.node("wait", wait).edge(START, "wait")
    g.node("next", lambda s: None).edge("spend", "next")
    store = MemoryStore()
    result = await g.build().run(store=store, run_id="b")
    assert result.outcome == "budget_stop" and "tokens budget ran out" in result.stop_message
    assert store.get_run("b").status == "budget_stop"
    cancelled = [e for e in store.events("b") if getattr(e, "cancelled", False)]
    assert [e.node for e in cancelled] == ["wait"]  # type: ignore[attr-defined]


async def test_a_question_inside_a_subgraph_is_answered_through_the_parent() -> None:
    class Inner(BaseModel):
        answer: Annotated[str, replace] = ""
        notes: Annotated[list[str], append] = []

    inner = Graph(Inner, name="inner")
    inner.ask("confirm", lambda s: "Go on?", into="answer")
    inner.node("act", lambda s: {"notes": [f"acted on {s.answer}"]}).edge("confirm", "act")
    inner.edge(START, "confirm")
    outer = Graph(Work, name="outer")
    outer.subgraph("sub", inner.build()).edge(START, "sub")
    outer.ask("mine", lambda s: "And you?", into="answer").edge(START, "mine")
    flow = outer.build()
    store = MemoryStore()
    paused = await flow.run(store=store, run_id="o")
    keys = sorted(p.key for p in paused.pending)
    assert keys == ["o.1.0.sub-0:confirm-0", "o:mine-0"]
    half = await flow.resume("o", store=store, answers={"o.1.0.sub-0:confirm-0": "yes"})
    assert [p.key for p in half.pending] == ["o:mine-0"]
    done = await flow.resume("o", store=store, answers={"o:mine-0": "fine"})
    assert done.state.notes == ["acted on yes"]
    assert done.state.answer == "yes"  # both write `answer` (replace): key order, sub > mine


async def test_replay_gives_the_same_state_whatever_order_branches_finished_in() -> None:
    def build(first: str) -> Any:
        gates = {"a": asyncio.Event(), "b": asyncio.Event()}

        def branch(name: str, other: str) -> Any:
            async def run(s: Work) -> dict[str, Any]:
                if name != first:
                    await gates[name].wait()
                out = {"notes": [name], "answer": name}
                gates[other].set()  # the other branch may end only after this one
                return out

            return run

        g = Graph(Work, name="order")
        g.node("a", branch("a", "b")).node("b", branch("b", "a"))
        g.node("join", lambda s: {"notes": [f"join saw {s.notes}"]})
        g.edge(START, "a").edge(START, "b").edge("a", "join").edge("b", "join")
        return g.build()

    store = MemoryStore()
    await build("a").run(store=store, run_id="ab")
    await build("b").run(store=store, run_id="ba")
    ends = {
        run: [e.key for e in store.events(run) if isinstance(e, NodeFinished)]
        for run in ("ab", "ba")
    }
    assert ends == {"ab": ["a-0", "b-0", "join-0"], "ba": ["b-0", "a-0", "join-0"]}
    flow = build("a")
    replays = [(await flow.replay(run, store=store)).state for run in ("ab", "ba")]
    assert replays[0] == replays[1]
    assert replays[0].notes == ["a", "b", "join saw ['a', 'b']"] and replays[0].answer == "b"
    assert [e.type for e in store.events("ab")][-1] == "final"  # nothing written


async def test_replay_of_a_tampered_journal_diverges() -> None:
    from pilothouse.exceptions import ReplayDivergence

    flow = _graph(Counter())
    source = MemoryStore()
    await flow.run(store=source, run_id="t")
    events = source.events("t")
    forged = [e for e in events if not (isinstance(e, NodeFinished) and e.key == "side-0")]
    store = MemoryStore()
    store.write(forged, source.get_run("t"))
    with pytest.raises(ReplayDivergence, match="node side-0 would run"):
        await flow.replay("t", store=store)
    final = events[-1]
    final.output = {**final.output, "rounds": 99}  # type: ignore[attr-defined]
    other = MemoryStore()
    other.write(events, source.get_run("t"))
    with pytest.raises(ReplayDivergence, match="differs from the recorded one"):
        await flow.replay("t", store=other)


async def test_an_agent_node_waiting_for_an_approval_pauses_the_flow() -> None:
    from pilothouse import call, tool

    sent: list[str] = []

    @tool(effect="side_effect", requires_approval=True)
    def send(text: str) -> str:
        """Send the text."""
        sent.append(text)
        return "sent"

    model = ScriptedModel([call("send", text="hello"), "done: sent"])
    store = MemoryStore()
    mailer = Agent(model, "Send it.", [send], name="mailer", store=store)
    g = Graph(Work, name="mail")
    g.agent("mail", mailer, prompt=lambda s: "send hello", into="answer").edge(START, "mail")
    g.node("other", lambda s: {"notes": ["other ran"]}).edge(START, "other")
    flow = g.build()
    paused = await flow.run(store=store, run_id="m")
    assert paused.outcome == "paused" and sent == []
    child = "m.1.0.mail-0"
    assert [p.key.rsplit(":", 2)[0] for p in paused.pending] == [child]
    still = await flow.resume("m", store=store)  # the child still waits: so does the flow
    assert still.outcome == "paused"
    await mailer.resume(child, approvals={paused.pending[0].key: True})
    done = await flow.resume("m", store=store)
    assert done.state.answer == "done: sent" and sent == ["hello"]
    assert done.state.notes == ["other ran"]  # ran once, before the pause


class FlakyStore:
    """A real store whose writes fail while `down` is positive (one failure each)."""

    def __init__(self, down: int) -> None:
        self.store, self.down = MemoryStore(), down

    def write(self, *args: Any, **kwargs: Any) -> None:
        if self.down > 0:
            self.down -= 1
            from pilothouse.exceptions import StoreError

            raise StoreError("the disk is busy")
        self.store.write(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


async def test_a_store_that_fails_for_a_moment_loses_nothing() -> None:
    store: Any = FlakyStore(down=2)
    runs: Counter[str] = Counter()
    result = await _graph(runs).run(store=store, run_id="f")
    assert result.outcome == "final" and store.down == 0
    events = store.events("f")
    assert [e.seq for e in events] == list(range(len(events)))  # no gap
    assert all(n == 1 for n in runs.values())


async def test_a_store_that_stays_down_interrupts_the_flow_resumably(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pilothouse.exceptions import RunInterrupted
    from pilothouse.runtime import loop

    monkeypatch.setattr(loop, "COMMIT_RETRY_DELAYS", (0.0, 0.0))
    store: Any = FlakyStore(down=0)

    outages = [3]

    def plan_then_outage(s: Work, ctx: NodeContext) -> dict[str, Any]:
        if outages:
            store.down = outages.pop()  # the next three writes fail: more than the retries
        return {"notes": ["x"]}

    g = Graph(Work, name="outage")
    g.node("a", plan_then_outage).edge(START, "a")
    with pytest.raises(RunInterrupted, match=r"can be resumed with flow\.resume\(run_id\)"):
        await g.build().run(store=store, run_id="o")
    assert store.get_run("o").status == "running"  # not an end: resumable
    result = await g.build().resume("o", store=store)
    assert result.state.notes == ["x"]


def mail_flow(sent: list[str]) -> tuple[Agent[None, str], Any, MemoryStore]:
    """A flow whose one agent node sends "hello", left in doubt (`hanging_mailer`)."""
    from hanging_mailer import hanging_mailer

    store = MemoryStore()
    mailer = hanging_mailer(sent, store)
    g = Graph(Work, name="mail")
    g.agent("mail", mailer, prompt=lambda s: "hello", into="answer").edge(START, "mail")
    return mailer, g.build(), store


async def test_an_agent_node_in_doubt_stops_the_flow_in_doubt_until_settled() -> None:
    from pilothouse.exceptions import ApprovalError, ToolCallInDoubtError

    sent: list[str] = []
    _, flow, store = mail_flow(sent)
    with pytest.raises(ToolCallInDoubtError) as err:
        await flow.run(store=store, run_id="d")
    child = "d.1.0.mail-0"
    assert err.value.run_id == child and sent == ["hello"]
    # not an error: the flow waits, resumable, and says nothing happened twice
    assert store.get_run("d").status == "in_doubt" and store.get_run(child).status == "in_doubt"
    assert not [e for e in store.events("d") if e.type in ("error", "node_failed")]
    with pytest.raises(ToolCallInDoubtError):
        await flow.resume("d", store=store)  # unsettled: still in doubt, nothing re-sent
    key = err.value.idempotency_key
    written = (len(store.events("d")), len(store.events(child)))
    for bad in (
        {f"{child}:9:0": True},  # no such call
        {"d:1:0": True},  # the flow run makes no calls of its own
        {"other:1:0": True},  # another run's
        {"not a key": True},
        {key: 3},  # not a text, True or False
    ):
        with pytest.raises(ApprovalError):
            await flow.resume("d", store=store, settle=bad)  # type: ignore[arg-type]
    assert (len(store.events("d")), len(store.events(child))) == written  # nothing written
    done = await flow.resume("d", store=store, settle={key: "sent, id 42"}, approved_by="ops")
    assert done.state.answer == "done: sent, id 42" and sent == ["hello"]
    settled = [e for e in store.events(child) if e.type == "doubt_settled"]
    assert [(e.key, e.by) for e in settled] == [(key, "ops")]


async def test_a_settled_agent_node_then_resumes_the_flow_in_two_steps() -> None:
    """The two-step path still holds: settle the node's run with its agent, then resume
    the flow, whose node re-attaches to the finished child."""
    from pilothouse.exceptions import ToolCallInDoubtError

    sent: list[str] = []
    mailer, flow, store = mail_flow(sent)
    with pytest.raises(ToolCallInDoubtError) as err:
        await flow.run(store=store, run_id="t")
    await mailer.resume(err.value.run_id, settle={err.value.idempotency_key: False})
    done = await flow.resume("t", store=store)
    assert done.state.answer.startswith("done: ") and sent == ["hello"]
