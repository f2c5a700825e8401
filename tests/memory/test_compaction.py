"""Compaction: a journaled view that never splits a call from its result or drops a
pending call, on 10,000 seeded random histories and through real runs."""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

from pilothouse import Agent, Message, ScriptedModel, Session, call, tool
from pilothouse.events import (
    HookModelCalled,
    ModelRequested,
    ModelResponded,
    RunStarted,
    ToolReturned,
    event_from_dict,
)
from pilothouse.memory import Compaction, recall_result_tool
from pilothouse.memory.compaction import SUMMARY_PURPOSE, units
from pilothouse.messages import ModelResponse, ToolCall, Usage
from pilothouse.models.base import ModelRequest
from pilothouse.runtime.journal import MemoryStore, RunInfo, SQLiteStore
from pilothouse.runtime.replay import export_journal
from pilothouse.testing import replay


def _summary_model() -> ScriptedModel:
    def reply(request: ModelRequest) -> ModelResponse:
        text = request.messages[-1].content
        return ModelResponse(f"summary of {len(text)} characters")

    return ScriptedModel(reply)


def random_history(rng: random.Random) -> list[Message]:
    """A conversation: user turns, answers, and steps of 1-3 calls with results; a step's
    results may be missing (pending) anywhere, not only at the end."""
    messages: list[Message] = [Message.system("You are helpful.")] if rng.random() < 0.8 else []
    n = 0
    for _ in range(rng.randint(0, 25)):
        kind = rng.random()
        if kind < 0.3:
            messages.append(Message.user("question " + "w" * rng.randint(0, 400)))
        elif kind < 0.45:
            messages.append(Message.assistant("answer " + "a" * rng.randint(0, 300)))
        else:
            calls = []
            for _ in range(rng.randint(1, 3)):
                n += 1
                calls.append(ToolCall(f"c{n}", "lookup", {"q": "x" * rng.randint(0, 40)}))
            messages.append(Message.assistant("", tuple(calls)))
            answered = [c for c in calls if rng.random() < 0.9]
            rng.shuffle(answered)
            for c in answered:
                size = rng.choice([10, 200, 2_000, 8_000])
                messages.append(Message("tool", "r" * size, (), c.id, c.name))
    return messages


def check_view(original: list[Message], view: list[Message]) -> tuple[int, int]:
    """(split call/result pairs, dropped pending calls) of a view against its history."""
    results = {m.tool_call_id for m in original if m.role == "tool"}
    pending = {c.id for m in original for c in m.tool_calls if c.id not in results}
    splits = 0
    i = 0
    view_calls: set[str] = set()
    while i < len(view):
        m = view[i]
        if m.role == "tool":
            splits += 1  # a result not directly after its call's message
            i += 1
            continue
        if m.role == "assistant" and m.tool_calls:
            ids = [c.id for c in m.tool_calls]
            view_calls.update(ids)
            j = i + 1
            got: set[str] = set()
            while j < len(view) and view[j].role == "tool" and view[j].tool_call_id in ids:
                got.add(view[j].tool_call_id or "")
                j += 1
            splits += sum(1 for c in ids if c in results and c not in got)
            i = j
            continue
        i += 1
    dropped = len(pending - view_calls)
    return splits, dropped


def test_ten_thousand_random_histories_no_split_no_dropped_pending_call() -> None:
    rng = random.Random(20)
    summarizer = _summary_model()
    splits = dropped = compacted = summarised = 0

    async def main() -> None:
        nonlocal splits, dropped, compacted, summarised
        for _ in range(10_000):
            history = random_history(rng)
            compaction = Compaction(
                rng.choice([50, 300, 1_000, 3_000]),
                keep_recent=rng.randint(0, 6),
                head=rng.choice([0, 50, 300]),
                tail=rng.choice([0, 50, 200]),
                summarizer=summarizer if rng.random() < 0.6 else None,
            )
            view = await compaction.view(history)
            if view is None:  # under the threshold, or nothing could be compacted
                continue
            compacted += 1
            summarised += compaction.summaries_made > 0
            s, d = check_view(history, view)
            splits += s
            dropped += d
            # the system prompt is not part of a view, and the protected tail is sent as is
            assert all(m.role != "system" for m in view)
            body = history[1:] if history and history[0].role == "system" else history
            spans = units(body)
            if compaction.keep_recent and spans:
                kept = spans[max(len(spans) - compaction.keep_recent, 0)].start
                assert all(any(v is m for v in view) for m in body[kept:])

    asyncio.run(main())
    assert (splits, dropped) == (0, 0)
    assert compacted > 3_000 and summarised > 1_000  # the property was really exercised


BIG = "".join(f"row {i}: price {i * 7} EUR; " for i in range(400))  # ~8,800 characters


@tool
def catalogue(page: int) -> str:
    """A page of the catalogue."""
    return f"page {page}: " + BIG


def test_a_run_sends_the_compacted_view_and_the_journal_keeps_everything(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "journal.db")
    compaction = Compaction(1_500, keep_recent=1, head=100, tail=50)
    first = call("catalogue", page=1)
    model = ScriptedModel(
        [
            [first],
            [call("catalogue", page=2)],
            [call("recall_result", call_id=first.id)],
            "row 399 costs 2793 EUR",
        ]
    )
    agent = Agent(
        model,
        tools=[catalogue, recall_result_tool(store, compaction)],
        store=store,
        prepare_step=compaction,
    )
    result = agent.run_sync("What does row 399 cost?")
    assert result.output == "row 399 costs 2793 EUR"
    events = store.events(result.run_id)
    requests = [e for e in events if isinstance(e, ModelRequested)]
    assert requests[0].view is None and requests[1].view is None  # under the threshold
    assert requests[2].view is not None and requests[3].view is not None
    # the model really received the view: page 1's result trimmed, with the marker
    sent = model.requests[2].messages
    tool_texts = [m.content for m in sent if m.role == "tool"]
    assert len(tool_texts[0]) < 400 and f'recall_result("{first.id}")' in tool_texts[0]
    assert tool_texts[1].endswith(BIG)  # the recent unit is sent whole
    # the exact value comes back from the journal, whole
    recalled = [e.result for e in events if isinstance(e, ToolReturned)][-1]
    assert not recalled.is_error and recalled.content == "page 1: " + BIG
    # the journal's record of what was sent is what was sent
    context = events[0].context()  # type: ignore[attr-defined]
    convo = [*context]
    for r in requests[:3]:
        convo.extend(r.new_messages)
    assert [m.to_dict() for m in requests[2].sent(convo)] == [
        m.to_dict() for m in model.requests[2].messages
    ]
    # and a replay of the run sees the same views (no divergence)
    report = replay(agent, events)
    assert report.ok, report.divergence


def test_a_summary_replaces_the_oldest_turns_and_is_reused(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "journal.db")
    summarizer = _summary_model()
    compaction = Compaction(600, keep_recent=2, head=50, tail=20, summarizer=summarizer)
    history = []
    for i in range(8):
        history += [Message.user(f"turn {i} " + "u" * 400), Message.assistant("ok " * 100)]
    session = Session.create(store)
    session.append(history)
    model = ScriptedModel(["first", "second"])
    agent = Agent(model, store=store, prepare_step=compaction)
    agent.run_sync("what did I say in turn 0?", session=session)
    assert compaction.summaries_made == 1
    sent = model.requests[0].messages
    assert sent[0].content.startswith("Summary of the earlier conversation")  # no system prompt
    assert "summary of" in sent[0].content
    assert sent[-1].content == "what did I say in turn 0?" and len(sent) == 3
    # nothing was deleted: the session holds every message
    assert len(session.history()) == 16 + 2
    # the model that summarised saw the turns it replaced, as text
    asked = summarizer.requests[0].messages[0].content
    assert "turn 0 " in asked and "Keep every fact" in asked
    # a second turn reuses the summary of the same prefix when that is enough
    compaction.max_tokens = 2_000
    agent.run_sync("and turn 1?", session=session)
    assert compaction.summaries_made == 1


def test_recall_result_reads_this_session_only(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "journal.db")
    ours, theirs = Session.create(store), Session.create(store)
    first = call("catalogue", page=7)
    tools = [catalogue, recall_result_tool(store)]
    Agent(ScriptedModel([[first], "done"]), tools=tools, store=store).run_sync(
        "page 7", session=ours
    )
    again = Agent(
        ScriptedModel([[call("recall_result", call_id=first.id)], "done"]), tools=tools, store=store
    ).run_sync("that page again", session=ours)
    other = Agent(
        ScriptedModel([[call("recall_result", call_id=first.id)], "done"]), tools=tools, store=store
    ).run_sync("someone else's page", session=theirs)
    got = [e.result for e in store.events(again.run_id) if isinstance(e, ToolReturned)]
    assert got[0].content == "page 7: " + BIG
    refused = [e.result for e in store.events(other.run_id) if isinstance(e, ToolReturned)]
    assert refused[0].is_error and "no result" in refused[0].content
    assert json.dumps(refused[0].content).count("price") == 0


def test_a_run_with_summaries_replays_without_divergence(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "journal.db")
    history = []
    for i in range(8):
        history += [Message.user(f"turn {i} " + "u" * 400), Message.assistant("ok " * 100)]
    session = Session.create(store)
    session.append(history)

    def agent_of(model: ScriptedModel) -> Agent:
        compaction = Compaction(600, keep_recent=2, summarizer=_summary_model())
        return Agent(model, tools=[catalogue], store=store, prepare_step=compaction)

    model = ScriptedModel([[call("catalogue", page=3)], "page 3 read"])
    result = agent_of(model).run_sync("read page 3", session=session)
    events = store.events(result.run_id)
    views = [e.view for e in events if isinstance(e, ModelRequested)]
    assert all(v is not None and isinstance(v[0], dict) for v in views)  # the summary, recorded
    # a fresh agent (empty summary cache) makes the same views from the same journal
    cassette = tmp_path / "turn.jsonl"
    export_journal(store, result.run_id, cassette)
    report = replay(agent_of(ScriptedModel([])), cassette)
    assert report.ok, report.divergence


# -- the summariser's call on the record --------------------------------------------------


def _costed_summary_model() -> ScriptedModel:
    def reply(request: ModelRequest) -> ModelResponse:
        text = request.messages[-1].content
        return ModelResponse(
            f"summary of {len(text)} characters", usage=Usage(input_tokens=len(text) // 4)
        )

    return ScriptedModel(reply)


def _long_history() -> list[Message]:
    history: list[Message] = []
    for i in range(8):
        history += [Message.user(f"turn {i} " + "u" * 400), Message.assistant("ok " * 100)]
    return history


def _summarising_agent(model: ScriptedModel, summarizer: ScriptedModel, store: Any) -> Agent:
    compaction = Compaction(600, keep_recent=2, head=50, tail=20, summarizer=summarizer)
    return Agent(model, tools=[catalogue], store=store, prepare_step=compaction)


def _replies() -> list[Any]:
    return [[call("catalogue", page=1)], [call("catalogue", page=2)], "read both"]


def test_the_summary_is_a_journaled_model_call_with_its_usage() -> None:
    store = MemoryStore()
    summarizer = _costed_summary_model()
    result = _summarising_agent(ScriptedModel(_replies()), summarizer, store).run_sync(
        "read pages 1 and 2", history=_long_history()
    )
    events = store.events(result.run_id)
    calls = [e for e in events if isinstance(e, HookModelCalled)]
    assert len(calls) == len(summarizer.requests) >= 1
    first = calls[0]
    assert first.purpose == SUMMARY_PURPOSE and first.model
    assert first.request == [m.to_dict() for m in summarizer.requests[0].messages]
    assert first.settings == {"temperature": 0, "max_tokens": 400}
    assert first.response.text.startswith("summary of")
    # the call comes before its step's request, whose view carries the summary
    request = next(e for e in events if isinstance(e, ModelRequested) and e.step == first.step)
    assert first.seq < request.seq
    assert request.view is not None and first.response.text in json.dumps(request.view)
    # its usage counts toward the run's
    spent = sum(c.response.usage.input_tokens for c in calls)
    steps = sum(e.response.usage.input_tokens for e in events if isinstance(e, ModelResponded))
    assert spent > 0 and result.usage.input_tokens == spent + steps
    # it survives the stored form
    again = event_from_dict(json.loads(json.dumps(first.to_dict())))
    assert again.to_dict() == first.to_dict()


def test_a_resumed_run_never_asks_the_summariser_again() -> None:
    """Cut the journal at every point after the first summary and resume with a fresh
    hook (empty cache): only the summaries the cut lost are asked for, never one the
    journal holds; the run ends as the uninterrupted one did."""
    store = MemoryStore()
    summarizer = _costed_summary_model()
    full = _summarising_agent(ScriptedModel(_replies()), summarizer, store).run_sync(
        "read pages 1 and 2", history=_long_history()
    )
    events = store.events(full.run_id)
    summary_at = [i for i, e in enumerate(events) if isinstance(e, HookModelCalled)]
    assert summary_at
    views = {e.step: e.view for e in events if isinstance(e, ModelRequested)}
    for cut in range(summary_at[0] + 1, len(events) - 1):
        prefix = events[:cut]
        copy = _prefix_store(store, full.run_id, cut)
        answered = sum(1 for e in prefix if isinstance(e, ModelResponded))
        fresh = _costed_summary_model()
        resumed = _summarising_agent(ScriptedModel(_replies()[answered:]), fresh, copy).resume_sync(
            full.run_id
        )
        assert resumed.output == "read both", cut
        lost = sum(1 for i in summary_at if i >= cut)
        assert len(fresh.requests) == lost, cut  # 0 whenever the journal holds the summary
        after = copy.events(full.run_id)
        # the same views step by step (a step asked again after the cut: its last request)
        assert {e.step: e.view for e in after if isinstance(e, ModelRequested)} == views, cut
        assert resumed.usage.input_tokens == full.usage.input_tokens, cut


def test_a_replay_serves_the_recorded_summary(tmp_path: Path) -> None:
    store = MemoryStore()
    full = _summarising_agent(ScriptedModel(_replies()), _costed_summary_model(), store).run_sync(
        "read pages 1 and 2", history=_long_history()
    )
    never = ScriptedModel([])  # a summariser that cannot answer: the replay must not ask
    report = replay(_summarising_agent(ScriptedModel([]), never, store), store.events(full.run_id))
    assert report.ok, report.divergence
    assert never.requests == []


def _prefix_store(store: MemoryStore, run_id: str, cut: int) -> MemoryStore:
    """A store holding the first `cut` events of a run, as if it had stopped there."""
    info = store.get_run(run_id)
    copy = MemoryStore()
    copy.write(
        store.events(run_id)[:cut],
        RunInfo(run_id, info.agent, info.model, info.input, "running", info.created),
    )
    return copy


# -- a summary reused by a later turn of the session is on that turn's record -------------


def _session_store_with(store: MemoryStore, earlier: str, run_id: str, cut: int) -> MemoryStore:
    """A store holding run `earlier` whole and the first `cut` events of `run_id` (a later
    turn of the same session that stopped there)."""
    copy = MemoryStore()
    started = next(e for e in store.events(run_id) if isinstance(e, RunStarted))
    assert started.session_id
    copy.create_session(started.session_id)
    before = store.session_messages(started.session_id, limit=started.session_upto)
    copy.append_session(started.session_id, [m.message for m in before])
    for rid, events in ((earlier, store.events(earlier)), (run_id, store.events(run_id)[:cut])):
        info = store.get_run(rid)
        copy.write(events, info if rid == earlier else replace(info, status="running"))
    return copy


def test_a_later_turn_reusing_a_summary_records_it_and_resumes_without_asking(
    tmp_path: Path,
) -> None:
    """Turn 1 of a session asks for a summary; turn 2 (same hook, same process) reuses it
    from the cache: the reuse is journaled in turn 2 (no usage), so turn 2 resumed from
    any cut with a fresh hook (a new process), or replayed alone, serves the same summary
    and asks no model; cut before the reuse was recorded, a hook given the store finds
    the summary in turn 1's journal."""
    store = MemoryStore()
    summarizer = _costed_summary_model()
    compaction = Compaction(600, keep_recent=2, head=50, tail=20, summarizer=summarizer)
    session = Session.create(store)
    session.append(_long_history())
    agent = Agent(ScriptedModel(["first", "second"]), store=store, prepare_step=compaction)
    one = agent.run_sync("what did I say in turn 0?", session=session)
    two = agent.run_sync("and in turn 1?", session=session)
    assert len(summarizer.requests) == 1 and compaction.summaries_reused == 1
    (made,) = [e for e in store.events(one.run_id) if isinstance(e, HookModelCalled)]
    (reuse,) = [e for e in store.events(two.run_id) if isinstance(e, HookModelCalled)]
    assert reuse.key == made.key and reuse.purpose == SUMMARY_PURPOSE
    assert reuse.model == f"reuse:{one.run_id}" and reuse.response.text == made.response.text
    assert reuse.response.usage == Usage() and two.usage.input_tokens == sum(
        e.response.usage.input_tokens
        for e in store.events(two.run_id)
        if isinstance(e, ModelResponded)
    )
    events = store.events(two.run_id)
    views = {e.step: e.view for e in events if isinstance(e, ModelRequested)}
    assert made.response.text in json.dumps(views[1])
    reused_at = events.index(reuse)

    def turn_two(copy: MemoryStore, summarizer: ScriptedModel, with_store: bool) -> Any:
        given = copy if with_store else None
        hook = Compaction(600, keep_recent=2, head=50, tail=20, summarizer=summarizer, store=given)
        return Agent(ScriptedModel(["second"]), store=copy, prepare_step=hook)

    for cut in range(1, len(events) - 1):
        copy = _session_store_with(store, one.run_id, two.run_id, cut)
        never = ScriptedModel([])  # a summariser that cannot answer: it must not be asked
        # a fresh hook has the store only where the journal of turn 2 lacks the reuse
        resumed = turn_two(copy, never, cut <= reused_at).resume_sync(two.run_id)
        assert resumed.output == "second" and never.requests == [], cut
        after = copy.events(two.run_id)
        assert {e.step: e.view for e in after if isinstance(e, ModelRequested)} == views, cut
        assert resumed.usage == two.usage, cut
    # without the store, a fresh hook cut before the reuse has to ask (the known limit)
    asked = _costed_summary_model()
    copy = _session_store_with(store, one.run_id, two.run_id, reused_at)
    turn_two(copy, asked, with_store=False).resume_sync(two.run_id)
    assert len(asked.requests) == 1
    # turn 2 replayed alone (its export carries the session's messages), by a fresh hook
    # without the store: no divergence, no model asked
    cassette = tmp_path / "turn2.jsonl"
    export_journal(store, two.run_id, cassette)
    never = ScriptedModel([])
    report = replay(turn_two(MemoryStore(), never, with_store=False), cassette)
    assert report.ok, report.divergence
    assert never.requests == []
