"""Group chat: speaker selection, termination, what members see, usage, abuse cases.

Every model is a `ScriptedModel`; every journal a real SQLite file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from pilothouse import Agent, ScriptedModel, tool
from pilothouse.events import ChatMessage, ChildFinished, SpeakerSelected, TeamEnded
from pilothouse.exceptions import (
    ChatError,
    ConfigurationError,
    ModelError,
    RunFinishedError,
    SessionNotFoundError,
)
from pilothouse.messages import Usage
from pilothouse.models.base import ModelRequest
from pilothouse.models.scripted import call
from pilothouse.runtime.journal import SQLiteStore
from pilothouse.teams.groupchat import (
    ChatState,
    GroupChat,
    HandoffToUser,
    MaxMessages,
    Member,
    ModelSelector,
    RuleSelector,
    TextMention,
    Timeout,
    TokenBudget,
)
from pilothouse.tools import ask_human


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "journal.db")


def member(store: SQLiteStore, name: str, replies: list[Any], description: str = "") -> Member:
    return Member(Agent(ScriptedModel(replies), name=name, store=store), description)


def events_of(store: SQLiteStore, run_id: str, kind: type) -> list[Any]:
    return [e for e in store.events(run_id) if isinstance(e, kind)]


async def test_round_robin_order_and_stop_reason(store: SQLiteStore) -> None:
    chat = GroupChat(
        [member(store, "a", ["a1", "a2"]), member(store, "b", ["b1", "b2"])],
        termination=MaxMessages(4),
        store=store,
    )
    result = await chat.run("go", run_id="rr2")
    assert [(s.speaker, s.text) for s in result.messages] == [
        ("a", "a1"),
        ("b", "b1"),
        ("a", "a2"),
        ("b", "b2"),
    ]
    assert result.reason == "max_messages(4)"
    selected = events_of(store, "rr2", SpeakerSelected)
    assert [(e.step, e.chosen, e.how) for e in selected] == [
        (1, "a", "round_robin"),
        (2, "b", "round_robin"),
        (3, "a", "round_robin"),
        (4, "b", "round_robin"),
    ]
    assert [e.candidates for e in selected] == [["a", "b"], ["b"], ["a"], ["b"]]  # no repeats
    assert [e.reason for e in events_of(store, "rr2", TeamEnded)] == ["max_messages(4)"]
    assert store.get_run("rr2").status == "final"
    assert [c.run_id for c in store.children("rr2")] == [f"rr2.{n}.0.turn" for n in (1, 2, 3, 4)]


async def test_rule_selector_reads_the_transcript(store: SQLiteStore) -> None:
    def after_draft(state: ChatState, candidates: list[str]) -> str | None:
        if "draft" in state.last.text:
            return "reviewer"
        return "writer" if "writer" in candidates else None

    chat = GroupChat(
        [
            member(store, "writer", ["draft one", "draft two"]),
            member(store, "reviewer", ["fix the title", "APPROVED"]),
        ],
        selector=RuleSelector(after_draft),
        termination=TextMention("APPROVED"),
        store=store,
    )
    result = await chat.run("write", run_id="rule")
    assert [s.speaker for s in result.messages] == ["writer", "reviewer", "writer", "reviewer"]
    assert result.reason == "text_mention('APPROVED')"
    assert {e.how for e in events_of(store, "rule", SpeakerSelected)} == {"rule"}


async def test_rule_choosing_nobody_falls_back_and_says_so(store: SQLiteStore) -> None:
    chat = GroupChat(
        [member(store, "a", ["a1"]), member(store, "b", ["b1"])],
        selector=RuleSelector(lambda state, names: None, name="never"),
        termination=MaxMessages(2),
        store=store,
    )
    result = await chat.run("go", run_id="none")
    assert [s.speaker for s in result.messages] == ["a", "b"]
    selected = events_of(store, "none", SpeakerSelected)
    assert [(e.how, e.note) for e in selected] == [("fallback", "rule never chose nobody")] * 2


async def test_rule_naming_a_non_member_is_an_error_and_journaled(store: SQLiteStore) -> None:
    chat = GroupChat(
        [member(store, "a", ["a1"]), member(store, "b", ["b1"])],
        selector=RuleSelector(lambda state, names: "mallory", name="bad"),
        termination=MaxMessages(2),
        store=store,
    )
    with pytest.raises(ChatError, match="'mallory', which is not a candidate"):
        await chat.run("go", run_id="bad")
    assert store.get_run("bad").status == "error"
    assert store.events("bad")[-1].type == "error"
    assert store.children("bad") == []  # no member ran


async def test_model_selector_chooses_under_an_enum_schema(store: SQLiteStore) -> None:
    selector_model = ScriptedModel(['{"speaker": "writer"}'])
    chat = GroupChat(
        [
            member(store, "researcher", ["tides follow the moon"], "finds facts"),
            member(store, "writer", ["draft", "final TERMINATE"], "writes prose"),
        ],
        selector=ModelSelector(selector_model),
        termination=TextMention("TERMINATE") | MaxMessages(6),
        store=store,
    )
    result = await chat.run("a note on tides", run_id="model")
    # turn 1: the model chose; turns 2 and 3: one candidate left (no repeats), no call
    assert [s.speaker for s in result.messages] == ["writer", "researcher", "writer"]
    assert len(selector_model.requests) == 1
    first = selector_model.requests[0]
    assert first.output_schema is not None
    speaker = first.output_schema["properties"]["speaker"]
    assert speaker.get("enum") == ["researcher", "writer"]
    shown = first.messages[-1].content
    assert "- researcher: finds facts" in shown and "- writer: writes prose" in shown
    # the conversation is the chat's session, read as the selector's context
    assert [m.content for m in first.messages[1:-1]] == ["[user] a note on tides"]
    assert store.events("model.1.0.select")[0].session_id == "model.transcript"  # type: ignore[attr-defined]
    selected = events_of(store, "model", SpeakerSelected)
    assert selected[0].how == "model" and selected[0].selector_run_id == "model.1.0.select"
    assert selected[0].usage == Usage(1, 5, None, 1)
    assert [e.how for e in selected] == ["model", "only_candidate", "only_candidate"]


async def test_model_selector_invalid_reply_retried_then_valid(store: SQLiteStore) -> None:
    selector_model = ScriptedModel(['{"speaker": "mallory"}', '{"speaker": "b"}'])
    chat = GroupChat(
        [member(store, "a", ["a1"], "first"), member(store, "b", ["b1"], "second")],
        selector=ModelSelector(selector_model, retries=1),
        termination=MaxMessages(1),
        store=store,
    )
    result = await chat.run("go", run_id="retry")
    assert [s.speaker for s in result.messages] == ["b"]
    assert "does not match" in selector_model.requests[1].messages[-1].content
    (selected,) = events_of(store, "retry", SpeakerSelected)
    assert (selected.how, selected.chosen) == ("model", "b")
    assert selected.usage.requests == 2  # both replies counted


async def test_model_selector_naming_a_non_member_falls_back_deterministically(
    store: SQLiteStore,
) -> None:
    selector_model = ScriptedModel(lambda request: '{"speaker": "mallory"}')
    chat = GroupChat(
        [member(store, "a", ["a1"], "first"), member(store, "b", ["b1"], "second")],
        selector=ModelSelector(selector_model, retries=2),
        termination=MaxMessages(2),
        allow_repeat=True,
        store=store,
    )
    result = await chat.run("go", run_id="fb")
    assert [s.speaker for s in result.messages] == ["a", "b"]  # round-robin's choices
    selected = events_of(store, "fb", SpeakerSelected)
    assert [e.how for e in selected] == ["fallback", "fallback"]
    assert "output_retries" in selected[0].note or "valid" in selected[0].note
    assert len(selector_model.requests) == 3 + 3  # 1 + 2 retries per selection
    assert selected[0].usage.requests == 3


async def test_members_see_messages_never_other_members_tool_calls(store: SQLiteStore) -> None:
    @tool
    def secret_lookup(topic: str) -> str:
        """Look a topic up in the researcher's private index."""
        return f"index says {topic} is 42"

    researcher_model = ScriptedModel([call("secret_lookup", topic="tides"), "the answer is 42"])
    researcher = Agent(researcher_model, name="researcher", tools=[secret_lookup], store=store)
    writer_model = ScriptedModel(["42, written up"])
    writer = Agent(writer_model, name="writer", store=store)
    chat = GroupChat([researcher, writer], termination=MaxMessages(2), store=store)
    await chat.run("tides?", run_id="iso")
    (request,) = writer_model.requests
    roles = [m.role for m in request.messages]
    assert roles == ["user", "user", "user"]  # the task, the researcher's message, the prompt
    assert request.messages[0].content == "[user] tides?"
    assert request.messages[1].content == "[researcher] the answer is 42"
    assert "You are writer in a group chat with researcher" in request.messages[2].content
    text = repr(request)
    assert "secret_lookup" not in text and "index says" not in text
    assert request.tools == []


async def test_team_usage_is_the_sum_of_members_and_selectors_to_the_token(
    store: SQLiteStore,
) -> None:
    selector_model = ScriptedModel(
        ['{"speaker": "a"}', '{"speaker": "nope"}', '{"speaker": "b"}', '{"speaker": "a"}']
    )
    chat = GroupChat(
        [
            member(store, "a", ["alpha " * 7, "gamma " * 11], "a"),
            member(store, "b", ["beta " * 3], "b"),
        ],
        selector=ModelSelector(selector_model),
        termination=MaxMessages(3),
        allow_repeat=True,
        store=store,
    )
    result = await chat.run("go", run_id="usage")
    total = Usage()
    for child in store.children("usage"):
        for event in store.events(child.run_id):
            if event.type == "model_response":
                total = total + event.response.usage  # type: ignore[attr-defined]
    assert result.usage == total
    assert result.usage.total_tokens == total.total_tokens > 0
    final = store.events("usage")[-1]
    assert final.type == "final" and final.usage == total  # type: ignore[attr-defined]
    info = store.get_run("usage")
    assert (info.input_tokens, info.output_tokens) == (total.input_tokens, total.output_tokens)
    finished = events_of(store, "usage", ChildFinished)
    assert len(finished) == 6  # three selections, three turns


async def test_termination_combinators() -> None:
    def state(*texts: str, tokens: int = 0, elapsed: float = 0.0) -> ChatState:
        from pilothouse.teams.groupchat import Said

        said = (Said("user", "task"), *(Said("m", t) for t in texts))
        return ChatState(said, Usage(tokens, 0), elapsed)

    either = MaxMessages(3) | TextMention("DONE")
    assert either.check(state("x")) is None
    assert either.check(state("DONE")) == "text_mention('DONE')"
    assert either.check(state("a", "b", "c")) == "max_messages(3)"
    both = MaxMessages(2) & TextMention("DONE")
    assert both.check(state("DONE")) is None
    assert both.check(state("a", "b")) is None
    assert both.check(state("a", "DONE")) == "max_messages(2) & text_mention('DONE')"
    nested = (TokenBudget(100) & MaxMessages(1)) | Timeout(30)
    assert nested.check(state("a", tokens=99)) is None
    assert nested.check(state("a", tokens=100)) == "token_budget(100) & max_messages(1)"
    assert nested.check(state(elapsed=30.0)) == "timeout(30)"
    assert TextMention("DONE").check(state()) is None  # the task does not count
    assert HandoffToUser().check(state("x")) is None


async def test_token_budget_stops_between_turns(store: SQLiteStore) -> None:
    chat = GroupChat(
        [member(store, "a", ["x" * 40] * 5), member(store, "b", ["y" * 40] * 5)],
        termination=TokenBudget(25),
        store=store,
    )
    result = await chat.run("go", run_id="tok")
    # each turn costs 1 + 10 tokens: stops once 25 are used, after the third turn
    assert result.messages and len(result.messages) == 3
    assert result.reason == "token_budget(25)" and result.usage.total_tokens == 33


async def test_timeout_with_an_explicit_clock(store: SQLiteStore) -> None:
    now = [0.0]

    def reply(request: ModelRequest) -> str:
        now[0] += 10.0  # each turn "takes" ten seconds
        return "tick"

    chat = GroupChat(
        [Agent(ScriptedModel(reply), name="a", store=store)],
        termination=Timeout(25, clock=lambda: base + now[0]),
        allow_repeat=True,
        store=store,
    )
    base = time.time()  # the chat's start is wall-clock time (its `run_started`)
    result = await chat.run("go", run_id="time")
    assert len(result.messages) == 3 and result.reason == "timeout(25)"


async def test_handoff_to_user_stops_when_a_member_asks_a_person(store: SQLiteStore) -> None:
    helper = Agent(
        ScriptedModel([call("ask_human", question="Which city?")]),
        name="helper",
        tools=[ask_human],
        store=store,
    )
    chat = GroupChat(
        [member(store, "planner", ["need the city"]), Member(helper)],
        termination=HandoffToUser() | MaxMessages(5),
        store=store,
    )
    result = await chat.run("plan a trip", run_id="hand")
    assert result.reason == "handoff_to_user"
    assert result.messages[-1].speaker == "helper"
    assert result.messages[-1].text == "Which city?"
    assert result.messages[-1].outcome == "paused"
    (message,) = [e for e in events_of(store, "hand", ChatMessage) if e.speaker == "helper"]
    assert message.outcome == "paused"
    # the paused turn's model call counts in the team's usage too
    total = Usage()
    for child in store.children("hand"):
        for event in store.events(child.run_id):
            if event.type == "model_response":
                total = total + event.response.usage  # type: ignore[attr-defined]
    assert result.usage == total and total.requests == 2


async def test_an_endless_chat_is_bounded(store: SQLiteStore) -> None:
    chat = GroupChat(
        [
            Agent(ScriptedModel(lambda r: "more"), name="a", store=store),
            Agent(ScriptedModel(lambda r: "more"), name="b", store=store),
        ],
        max_turns=7,
        store=store,
    )
    result = await chat.run("talk forever", run_id="endless")
    assert len(result.messages) == 7 and result.reason == "max_messages(7)"


async def test_finished_chat_is_not_resumed_and_definition_is_checked(store: SQLiteStore) -> None:
    chat = GroupChat([member(store, "a", ["a1"])], termination=MaxMessages(1), store=store)
    await chat.run("go", run_id="done")
    with pytest.raises(RunFinishedError):
        await chat.resume("done")
    other = GroupChat([member(store, "a", ["a1"])], termination=MaxMessages(2), store=store)
    with pytest.raises(ConfigurationError, match="another definition"):
        await other.resume("done")


def test_member_names_are_checked(store: SQLiteStore) -> None:
    with pytest.raises(ConfigurationError, match="distinct"):
        GroupChat([member(store, "a", []), member(store, "a", [])])
    with pytest.raises(ConfigurationError, match="distinct"):
        GroupChat([member(store, "user", [])])
    with pytest.raises(ConfigurationError):
        GroupChat([])


async def test_the_trace_reads_the_team_events(store: SQLiteStore) -> None:
    from pilothouse.trace import describe

    chat = GroupChat(
        [member(store, "a", ["a1 DONE"], "first"), member(store, "b", [], "second")],
        selector=ModelSelector(ScriptedModel(['{"speaker": "a"}'])),
        termination=TextMention("DONE"),
        store=store,
    )
    await chat.run("go", run_id="trace")
    lines = [describe(e) for e in store.events("trace")]
    assert "☞ speaker  a by model among a, b [5 tok]" in lines
    assert "✉ a: a1 DONE" in lines
    assert "■ team ended: text_mention('DONE') (1 turn(s))" in lines
    again = [e.to_dict() for e in store.events("trace")]
    from pilothouse.events import event_from_dict

    assert [event_from_dict(d).to_dict() for d in again] == again  # stored form round-trips


async def test_a_team_budget_caps_every_turn_and_stops_the_chat(store: SQLiteStore) -> None:
    from pilothouse import Budget
    from pilothouse.events import ChildStarted

    long = "word " * 40  # 1 + 50 tokens a turn
    chat = GroupChat(
        [member(store, "a", [long, long]), member(store, "b", [long, long])],
        termination=MaxMessages(10),
        budget=Budget(max_steps=None, max_tokens=120),
        store=store,
    )
    result = await chat.run("go", run_id="budget")
    started = events_of(store, "budget", ChildStarted)
    # the first turn is capped to the whole budget, the second to what the first left
    assert [e.capped.get("tokens") for e in started] == [[-1.0, 120.0], [-1.0, 69.0], [-1.0, 18.0]]
    # the loop caps the call's max_tokens to what the turn was given
    a_model = chat.members[0].agent.model
    assert [r.settings.max_tokens for r in a_model.requests] == [120, 18]
    assert result.reason.startswith("budget(tokens: ") and result.usage.total_tokens >= 120
    assert len(result.messages) == 3


async def test_a_member_run_that_fails_ends_the_chat_with_an_error(store: SQLiteStore) -> None:
    def broken(request: ModelRequest) -> str:
        raise ModelError("the provider said no")

    chat = GroupChat(
        [member(store, "a", ["a1"]), Member(Agent(ScriptedModel(broken), name="b", store=store))],
        termination=MaxMessages(3),
        store=store,
    )
    with pytest.raises(ChatError, match=r"'b' run chat-err\.2\.0\.turn failed: ModelError"):
        await chat.run("go", run_id="chat-err")
    assert store.get_run("chat-err").status == "error"
    assert [e.speaker for e in events_of(store, "chat-err", ChatMessage)] == ["a"]  # kept
    with pytest.raises(RunFinishedError):
        await chat.resume("chat-err")


async def test_turns_read_the_transcript_from_the_chat_session(store: SQLiteStore) -> None:
    chat = GroupChat(
        [member(store, "a", ["a1", "a2"]), member(store, "b", ["b1", "b2"])],
        termination=MaxMessages(4),
        store=store,
    )
    result = await chat.run("go", run_id="sess")
    # the session holds the transcript once, written by the team run
    stored = store.session_messages("sess.transcript")
    assert [m.message.content for m in stored] == [
        "[user] go",
        "[a] a1",
        "[b] b1",
        "[a] a2",
        "[b] b2",
    ]
    assert {m.run_id for m in stored} == {"sess"}
    assert [s.text for s in result.transcript] == ["go", "a1", "b1", "a2", "b2"]
    # each turn references the messages it saw and copies none of them
    for n in (1, 2, 3, 4):
        started = store.events(f"sess.{n}.0.turn")[0]
        assert started.history == []  # type: ignore[attr-defined]
        assert started.session_id == "sess.transcript"  # type: ignore[attr-defined]
        assert started.session_upto == n  # type: ignore[attr-defined]
        assert started.session_writes is False  # type: ignore[attr-defined]
        assert store.get_run(f"sess.{n}.0.turn").session_id is None  # not a turn of its own
    assert store.list_runs(None, session_id="sess.transcript") == []


class _Cut(BaseException):
    """Stands for the process dying mid-turn (not an error the loop journals)."""


async def test_a_chat_begun_before_sessions_resumes_with_histories(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pilothouse.teams import _chat_run

    calls = {"b": 0}

    def b_replies(request: ModelRequest) -> str:
        calls["b"] += 1
        if calls["b"] == 1:  # b's first turn (the chat's second) is cut off
            raise _Cut()
        return f"b{calls['b']}"

    a = member(store, "a", ["a1", "a2", "a3"])

    def build() -> GroupChat:
        return GroupChat(
            [a, Member(Agent(ScriptedModel(b_replies), name="b", store=store))],
            termination=MaxMessages(4),
            store=store,
        )

    with monkeypatch.context() as patched:  # the chat code before sessions
        patched.setattr(_chat_run.TeamDrive, "open_transcript", lambda self, kind: None)
        with pytest.raises(_Cut):
            await build().run("go", run_id="old")
    assert store.events("old.2.0.turn")[0].history  # type: ignore[attr-defined]
    result = await build().resume("old")
    assert [s.text for s in result.messages] == ["a1", "b2", "a2", "b3"]
    for n in (3, 4):  # the turns begun after the resume carry their history as before
        started = store.events(f"old.{n}.0.turn")[0]
        assert started.session_id is None and len(started.history) == n  # type: ignore[attr-defined]
    with pytest.raises(SessionNotFoundError):
        store.get_session("old.transcript")


async def test_a_turn_exported_from_its_session_replays(store: SQLiteStore, tmp_path: Path) -> None:
    from pilothouse.runtime.replay import export_journal, load_journal
    from pilothouse.testing import replay_async

    writer = Agent(ScriptedModel(["w1", "w2"]), name="writer", store=store)
    reviewer = Agent(ScriptedModel(["r1"]), name="reviewer", store=store)
    selector_model = ScriptedModel(lambda request: '{"speaker": "writer"}')
    chat = GroupChat(
        [Member(writer, "writes"), Member(reviewer, "reviews")],
        selector=ModelSelector(selector_model),
        termination=MaxMessages(3),
        store=store,
    )
    await chat.run("go", run_id="rep")
    path = tmp_path / "turn3.jsonl"
    export_journal(store, "rep.3.0.turn", path)
    started = load_journal(path)[0]
    # self-contained: the messages the turn read from the session are its history
    assert started.session_id is None  # type: ignore[attr-defined]
    assert [m.content for m in started.history] == ["[user] go", "[writer] w1", "[reviewer] r1"]  # type: ignore[attr-defined]
    fresh = Agent(ScriptedModel(["unused"]), name="writer", store=store)
    report = await replay_async(fresh, path)
    assert report.ok, report.summary()
    # the selector's call, which read the session too
    selected = events_of(store, "rep", SpeakerSelected)
    made = [e.selector_run_id for e in selected if e.selector_run_id]
    assert made == ["rep.1.0.select"]
    export_journal(store, "rep.1.0.select", tmp_path / "select.jsonl")
    selector = chat.selector._agent(("writer", "reviewer"))  # type: ignore[attr-defined]
    report = await replay_async(selector, tmp_path / "select.jsonl")
    assert report.ok, report.summary()


async def test_a_session_that_is_not_the_chats_is_never_written_or_read(
    store: SQLiteStore,
) -> None:
    from pilothouse import Session
    from pilothouse.messages import Message

    theirs = Session.create(store, "x.transcript", {"owner": "someone else"})
    theirs.append([Message.user("private words")])
    chat = GroupChat([member(store, "a", ["a1"])], termination=MaxMessages(1), store=store)
    with pytest.raises(ChatError, match="not team run x's transcript"):
        await chat.run("go", run_id="x")
    assert [m.message.content for m in theirs.messages()] == ["private words"]
    assert store.children("x") == []  # no member ran, nothing read their words
    assert store.get_run("x").status == "error"


async def test_a_members_turn_counts_the_steps_of_the_runs_it_delegated_to(
    store: SQLiteStore,
) -> None:
    """Abuse: a member that delegates must not hide its helper's steps from the team's
    `max_steps` (before, a turn counted the member's own 2 steps, not its helper's 4:
    the team's limit could be spent many times over by delegation)."""
    from pilothouse import Budget
    from pilothouse.policy import Policy
    from pilothouse.tools import ToolContext

    @tool
    def read(name: str) -> str:
        """Read a source."""
        return f"{name}: figs"

    reads = [call("read", name="s1"), call("read", name="s2"), call("read", name="s3"), "figs"]
    helper = Agent(ScriptedModel(reads), tools=[read], name="helper", store=store)

    @tool
    async def consult(ctx: ToolContext, question: str) -> str:
        """Ask the helper."""
        return str((await ctx.run_child(helper, question)).output)

    a = Agent(
        ScriptedModel([call("consult", question="figs?"), "a1"]),
        tools=[consult],
        name="a",
        store=store,
        policy=Policy.allow_all(),
    )
    chat = GroupChat(
        [Member(a), member(store, "b", ["b1"])],
        termination=MaxMessages(3),
        budget=Budget(max_steps=7),
        store=store,
    )
    result = await chat.run("go", run_id="deep")
    turns = events_of(store, "deep", ChildFinished)
    assert turns[0].steps == 2 + 4  # a's steps and its helper's
    assert result.reason == "budget(steps: 7 of 7)"  # b's 1 step makes 7: no third turn
    assert result.steps == 7
