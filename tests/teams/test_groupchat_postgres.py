"""A group chat on PostgreSQL: the transcript written once to the chat's session by
the team run, each turn reading it, and a resumed chat re-running no finished turn."""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse import Agent, ScriptedModel
from pilothouse.runtime.journal import open_store
from pilothouse.teams.groupchat import GroupChat, MaxMessages, Member


class _Cut(BaseException):
    """Stands for the process dying mid-turn."""


def _chat(store: Any, cut: dict[str, int]) -> GroupChat:
    def b_reply(request: Any) -> str:
        cut["b"] += 1
        if cut["b"] == cut.get("at", 0):
            raise _Cut()
        return f"b{sum(1 for m in request.messages if m.content.startswith('['))}"

    a = Agent(ScriptedModel(lambda r: f"a{len(r.messages)}"), name="a", store=store)
    b = Agent(ScriptedModel(b_reply), name="b", store=store)
    return GroupChat([Member(a), Member(b)], termination=MaxMessages(4), store=store)


async def test_a_chat_keeps_its_transcript_in_a_postgres_session(
    fresh_postgres_dsn: str,
) -> None:
    store = open_store(fresh_postgres_dsn)
    calls = {"b": 0, "at": 2}  # b's second turn (the chat's fourth) is cut off
    with pytest.raises(_Cut):
        await _chat(store, calls).run("go", run_id="pg")
    result = await _chat(store, {"b": 0}).resume("pg")
    texts = [s.text for s in result.transcript]
    assert texts[0] == "go" and len(texts) == 5
    stored = [m.message.content for m in store.session_messages("pg.transcript")]
    assert stored == [f"[{s.speaker}] {s.text}" for s in result.transcript]
    for n in (1, 2, 3, 4):
        started = store.events(f"pg.{n}.0.turn")[0]
        assert started.session_upto == n and started.history == []  # type: ignore[attr-defined]
    # the resumed fourth turn saw the first four messages, as it would have
    assert texts[4] == "b4"
    assert [c.run_id for c in store.children("pg")] == [f"pg.{n}.0.turn" for n in (1, 2, 3, 4)]
