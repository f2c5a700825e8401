"""Conversations as sessions: each turn is a run that references its session.

The turn's context is read from the session (not copied into the journal), its input
is appended with its first write and its answer with its last, two turns never run
on one session at once, and a cassette of a turn replays without the store.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pilothouse import Agent, Policy, ScriptedModel, Session, call, tool
from pilothouse.events import ModelRequested, RunStarted
from pilothouse.exceptions import (
    ConfigurationError,
    SessionBusyError,
    SessionNotFoundError,
)
from pilothouse.messages import Message
from pilothouse.models.base import ModelRequest
from pilothouse.runtime.journal import MemoryStore, SQLiteStore, Store
from pilothouse.runtime.replay import export_journal
from pilothouse.testing import assert_replays
from pilothouse.tools import ToolContext


def echo_model() -> ScriptedModel:
    """Answers each turn with what it was asked and how many messages it saw."""

    def reply(request: ModelRequest) -> str:
        said = request.messages[-1].content
        return f"[{len(request.messages)}] re: {said}"

    return ScriptedModel(reply)


def chat_agent(store: Store) -> Agent[None, str]:
    return Agent(echo_model(), "Be brief.", store=store)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "s.db")


def test_turns_read_the_session_and_append_only_their_own_messages(store: Store) -> None:
    session = Session.create(store)
    agent = chat_agent(store)
    first = agent.run_sync("hello", session=session)
    second = agent.run_sync("and again", session=session.id)
    assert first.output == "[2] re: hello"
    assert second.output == "[4] re: and again"  # system, hello, its answer, the new input
    assert [(m.message.role, m.message.content, m.run_id) for m in session.messages()] == [
        ("user", "hello", first.run_id),
        ("assistant", "[2] re: hello", first.run_id),
        ("user", "and again", second.run_id),
        ("assistant", "[4] re: and again", second.run_id),
    ]
    started = store.events(second.run_id)[0]
    assert isinstance(started, RunStarted)
    assert (started.session_id, started.session_upto, started.history) == (session.id, 2, [])
    asked = next(e for e in store.events(second.run_id) if isinstance(e, ModelRequested))
    assert asked.new_messages == []  # the context and input are on run_started, once
    assert [r.run_id for r in session.runs()] == [first.run_id, second.run_id]
    assert store.get_run(second.run_id).session_id == session.id


def test_a_long_conversation_journal_grows_linearly() -> None:
    store = MemoryStore()
    session = Session.create(store)
    agent = chat_agent(store)
    text = "x" * 3900
    sizes = []
    for turn in range(30):
        run = agent.run_sync(f"{turn} {text}", session=session)
        sizes.append(sum(len(json.dumps(e.to_dict())) for e in store.events(run.run_id)))
    # Every turn's journal is the same size whatever came before it (it was the whole
    # history, growing with each turn, when history was copied into every run).
    assert max(sizes) - min(sizes) < 100
    assert sum(sizes) < 2 * 30 * 2 * 3900 + 30 * 3000


def test_a_second_turn_while_one_is_in_progress_is_refused_and_writes_nothing() -> None:
    store = MemoryStore()
    session = Session.create(store)
    inner: list[Any] = []

    @tool
    async def interrupt(ctx: ToolContext) -> str:
        """Send another message to the same conversation while this turn runs."""
        try:
            await chat_agent(store).run("me too", session=session)
        except SessionBusyError as exc:
            inner.append(exc)
            return "busy"
        return "not busy"

    agent = Agent(ScriptedModel([call("interrupt"), "done"]), tools=[interrupt], store=store)
    result = agent.run_sync("start", session=session)
    assert result.output == "done"
    assert len(inner) == 1 and inner[0].session_id == session.id
    assert inner[0].run_id == result.run_id  # names the turn in progress
    assert [m.message.content for m in session.messages()] == ["start", "done"]
    assert [r.run_id for r in session.runs()] == [result.run_id]


def test_unknown_session_and_session_with_history_are_clear_errors() -> None:
    store = MemoryStore()
    agent = chat_agent(store)
    with pytest.raises(SessionNotFoundError):
        agent.run_sync("hi", session="no-such-session")
    session = Session.create(store)
    with pytest.raises(ConfigurationError, match="either session= or history="):
        agent.run_sync("hi", session=session, history=[Message.user("earlier")])
    assert store.list_runs() == [] and session.messages() == []


def test_a_paused_turn_frees_the_session_and_its_answer_joins_when_it_ends() -> None:
    store = MemoryStore()
    session = Session.create(store)

    @tool(requires_approval=True, effect="side_effect", on_doubt="retry")
    def refund(amount: int) -> str:
        """Refund an amount."""
        return f"refunded {amount}"

    agent = Agent(
        ScriptedModel([call("refund", amount=5), "Refunded 5."]),
        tools=[refund],
        store=store,
        policy=Policy.allow_all(),
    )
    paused = agent.run_sync("refund me 5", session=session)
    assert paused.outcome == "paused"
    other = chat_agent(store).run_sync("is anyone there?", session=session)  # not busy
    assert other.output == "[3] re: is anyone there?"  # system, the refund ask, this
    session.append([Message.assistant("A person will look at your refund.")], author="human:ann")
    done = agent.resume_sync(paused.run_id, approvals={paused.pending[0].key: True})
    assert done.output == "Refunded 5."
    # The resumed turn kept its own context (the session as it was when it began).
    last = agent.model.requests[-1].messages  # type: ignore[attr-defined]
    assert [m.role for m in last] == ["user", "assistant", "tool"]
    assert last[0].content == "refund me 5"
    assert [(m.message.content, m.author) for m in session.messages()] == [
        ("refund me 5", ""),
        ("is anyone there?", ""),
        ("[3] re: is anyone there?", ""),
        ("A person will look at your refund.", "human:ann"),
        ("Refunded 5.", ""),
    ]


def test_a_turn_resumed_after_a_crash_sees_the_session_as_it_began(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "crash.db")
    session = Session.create(store)
    chat_agent(store).run_sync("first", session=session)
    calls: list[int] = []

    @tool
    def slow(n: int) -> str:
        """A tool the process dies in."""
        calls.append(n)
        if len(calls) == 1:
            raise SystemExit("killed")
        return f"ok {n}"

    def model() -> ScriptedModel:
        def reply(request: ModelRequest) -> Any:
            if request.messages[-1].role == "tool":
                return f"saw {len(request.messages)} messages"
            return call("slow", n=1)

        return ScriptedModel(reply)

    agent = Agent(model(), "Be brief.", [slow], store=store)
    with pytest.raises(SystemExit):
        agent.run_sync("second", session=session)
    session.append([Message.assistant("a later note")], author="human:bo")
    run_id = next(r.run_id for r in session.runs() if r.status == "interrupted")
    result = Agent(model(), "Be brief.", [slow], store=store).resume_sync(run_id)
    # system, first, its answer, second, the call, its result: not the later note
    assert result.output == "saw 6 messages"
    assert session.messages()[-1].message.content == "saw 6 messages"


def test_a_turn_replays_from_its_exported_cassette(tmp_path: Path, store: Store) -> None:
    session = Session.create(store)
    agent = chat_agent(store)
    agent.run_sync("hello", session=session)
    second = agent.run_sync("again", session=session)
    path = tmp_path / "turn.jsonl"
    export_journal(store, second.run_id, path)
    started = json.loads(path.read_text().splitlines()[0])
    assert [m["content"] for m in started["history"]] == ["hello", "[2] re: hello"]
    assert "session_id" not in started
    report = assert_replays(chat_agent(MemoryStore()), path)
    assert report.outcome == "final"
    with pytest.raises(ConfigurationError, match="replay its export"):
        from pilothouse.testing import replay

        replay(chat_agent(MemoryStore()), store.events(second.run_id))


def test_session_text_writes_the_answer_as_later_turns_should_read_it(store: Store) -> None:
    """A structured answer joins the session as the agent's `session_text` says; the
    journal's final output keeps the value, and the next turn's model reads the text."""
    from pydantic import BaseModel

    from pilothouse.events import FinalOutput

    class Quote(BaseModel):
        text: str
        source: str

    def said(output: Quote) -> str:
        return f"{output.text} (source: {output.source})"

    model = ScriptedModel(['{"text": "Refunds take 5 days.", "source": "refunds.md"}', "Yes."])
    agent = Agent(model, output_type=Quote, store=store, session_text=said)
    session = Session.create(store)
    first = agent.run_sync("how long do refunds take?", session=session)
    assert first.output == Quote(text="Refunds take 5 days.", source="refunds.md")
    final = next(e for e in store.events(first.run_id) if isinstance(e, FinalOutput))
    assert final.output == {"text": "Refunds take 5 days.", "source": "refunds.md"}
    assert session.messages()[-1].message.content == "Refunds take 5 days. (source: refunds.md)"
    plain = Agent(model, store=store)  # the next turn, another agent on the same session
    plain.run_sync("sure?", session=session)
    seen = [m.content for m in model.requests[-1].messages if m.role == "assistant"]
    assert seen == ["Refunds take 5 days. (source: refunds.md)"]


def test_session_text_must_be_a_function_returning_text() -> None:
    with pytest.raises(ConfigurationError, match="session_text must be a function"):
        Agent(ScriptedModel(["x"]), session_text="not callable")  # type: ignore[arg-type]
    store = MemoryStore()
    session = Session.create(store)
    agent = Agent(ScriptedModel(["x"]), store=store, session_text=lambda out: len(out))  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigurationError, match="session_text returned int, not str"):
        agent.run_sync("hi", session=session)
    assert [m.message.content for m in session.messages()] == ["hi"]  # no answer written
