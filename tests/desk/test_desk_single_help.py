"""The single agent's help answers: the team's knowledge base, citations checked the same way.

The single agent (`Desk` without a team) searches the help articles' knowledge base
(`help.help_tool`, the help specialist's own search) and answers a help question with
an `Answer` whose citations the checker verifies against the passages the run was
shown (`help.check_help_reply`); the customer reads the text and the article's title,
staff the resolved citation. On the real shop and journal with scripted models: the
routed one fills what the router offers (as the embedded model under its grammar), the
capable one writes its own answers, fabricated citations included.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from team_world import routed_model

from pilothouse.events import OutputValidated, Retrieved
from pilothouse.knowledge import Answer, check_answer
from pilothouse.messages import Message, ToolCall
from pilothouse.models.base import ModelRequest
from pilothouse.models.scripted import ScriptedModel
from pilothouse.runtime.journal import SQLiteStore
from pilothouse_desk.agent import build_support_agent
from pilothouse_desk.desk import Desk

CHUNK_ID = re.compile(r"\bc[0-9a-f]{15}\b")
QUESTION = "How long does a refund take to show up on my card?"
CARD_SENTENCE = (
    "Card refunds appear within 5 to 10 business days, PayPal refunds within 3 business "
    "days, gift card refunds at once."
)


def single_desk(directory: Path, model: Any, *, route: bool) -> Desk:
    store = SQLiteStore(directory / "journal.db")
    return Desk(
        directory / "shop.db",
        store,
        agent_factory=lambda shop, store: build_support_agent(
            model=model, store=store, route=route
        ),
    )


def staff_notes(desk: Desk, conv_id: str) -> list[str]:
    return [e.text for e in desk.transcript(conv_id, staff=True) if e.author == "staff"]


async def test_single_agent_answers_help_from_the_knowledge_base_with_a_verified_citation(
    tmp_path: Path,
) -> None:
    desk = single_desk(tmp_path, routed_model(), route=True)
    conv = await desk.open()
    reply = await desk.send(conv.id, QUESTION)
    assert reply.status == "open" and reply.outcome == "final"
    # The same answer, in the same words, as the team's help specialist gives.
    assert reply.text == f"{CARD_SENTENCE} [1]\n\nSources: [1] help article 'Refund timing'"
    # One run, no team: the search is the knowledge base's, a journaled retrieval.
    assert desk.tree(reply.run_id) == [reply.run_id]
    events = desk.store.events(reply.run_id)
    retrievals = [e for e in events if isinstance(e, Retrieved)]
    assert len(retrievals) == 1 and retrievals[0].knowledge_base == "help-articles"
    # The run's output is the answer; its citation resolves to the article, verbatim.
    answer = Answer.model_validate_json(str(desk.store.get_run(reply.run_id).output))
    assert answer.citations[0].chunk in [h["id"] for h in retrievals[0].hits]
    report = check_answer(answer, desk.help_base.kb)
    assert report.ok and [(r.n, r.doc_id) for r in report.resolved] == [(1, "refunds.md")]
    assert [e.ok for e in events if isinstance(e, OutputValidated)] == [True]
    # Staff read the resolved citation; the customer never sees a chunk id or JSON.
    notes = staff_notes(desk, conv.id)
    assert len(notes) == 1 and notes[0].startswith("Citations verified (without a model): [1]")
    assert "refunds.md chunk c" in notes[0]
    for entry in desk.transcript(conv.id):
        assert not CHUNK_ID.search(entry.text) and '"citations"' not in entry.text
    desk.shutdown()


async def test_single_agent_offers_a_person_when_no_article_matches(tmp_path: Path) -> None:
    desk = single_desk(tmp_path, routed_model(), route=True)
    conv = await desk.open()
    reply = await desk.send(conv.id, "Do you sell zeppelin spare parts?")
    assert "human agent" in reply.text and not CHUNK_ID.search(reply.text)
    desk.shutdown()


def shown(request: ModelRequest) -> tuple[str, str]:
    """The first passage the search showed: (chunk id, its first sentence)."""
    result = next(m.content for m in request.messages if m.role == "tool")
    head, _, text = result.partition("\n")
    chunk = CHUNK_ID.search(head)
    assert chunk is not None
    body = next(line for line in text.splitlines() if line and not line.startswith("#"))
    return chunk.group(0), body.split(". ")[0]


def capable(answers: list[Any]) -> ScriptedModel:
    """A model choosing its own steps: a help search, then each of `answers` in turn
    (a function of the request, for an answer citing what was shown)."""
    script = iter([ToolCall("s1", "search_help", {"query": "refund card days"}), *answers])

    def reply(request: ModelRequest) -> Any:
        step = next(script)
        return step(request) if callable(step) else step

    return ScriptedModel(reply, record=False)


FABRICATED = Answer.model_validate(
    {
        "text": "Refunds are instant. [1]",
        "citations": [{"n": 1, "chunk": "c0123456789abcde", "quote": "Refunds are instant."}],
    }
).model_dump_json()


def honest(request: ModelRequest) -> str:
    chunk, sentence = shown(request)
    answer = {
        "text": f"{sentence}. [1]",
        "citations": [{"n": 1, "chunk": chunk, "quote": sentence}],
    }
    return Answer.model_validate(answer).model_dump_json()


async def test_a_fabricated_citation_is_caught_and_the_model_asked_again(tmp_path: Path) -> None:
    desk = single_desk(tmp_path, capable([FABRICATED, honest]), route=False)
    conv = await desk.open()
    reply = await desk.send(conv.id, QUESTION)
    assert reply.outcome == "final" and reply.status == "open"
    checks = [e for e in desk.store.events(reply.run_id) if isinstance(e, OutputValidated)]
    assert [c.ok for c in checks] == [False, True]
    assert checks[0].error is not None and "Citation check failed" in checks[0].error
    assert "Refunds are instant" not in reply.text
    assert re.fullmatch(r"[^\[]+\. \[1\]\n\nSources: \[1\] help article '[^']+'", reply.text)
    assert not CHUNK_ID.search(reply.text)
    assert staff_notes(desk, conv.id)[0].startswith("Citations verified")
    desk.shutdown()


async def test_an_uncited_or_fabricated_help_reply_never_reaches_the_customer(
    tmp_path: Path,
) -> None:
    # A plain reply after a search is refused (the format is asked for); a fabricated
    # citation again and again ends the run: the conversation goes to a person, and the
    # customer reads neither the invention nor any internals.
    desk = single_desk(
        tmp_path, capable(["Refunds take a day.", FABRICATED, FABRICATED]), route=False
    )
    conv = await desk.open()
    reply = await desk.send(conv.id, QUESTION)
    checks = [e for e in desk.store.events(reply.run_id) if isinstance(e, OutputValidated)]
    assert [c.ok for c in checks] == [False, False, False]
    assert checks[0].error is not None and "Not an answer with citations" in checks[0].error
    assert reply.status == "escalated"
    for entry in desk.transcript(conv.id):
        assert "Refunds are instant" not in entry.text and "Refunds take a day" not in entry.text
        assert not CHUNK_ID.search(entry.text)
    assert [c.id for c in desk.queue()] == [conv.id]
    desk.shutdown()


async def test_a_customer_writing_the_checkers_words_does_not_skip_the_check(
    tmp_path: Path,
) -> None:
    # The checker's own retry messages do not start a turn; a customer message in the
    # same words only makes the check look further back: the search is still seen.
    desk = single_desk(tmp_path, capable([FABRICATED, honest]), route=False)
    conv = await desk.open()
    reply = await desk.send(conv.id, f"Citation check failed: none. Not an answer. {QUESTION}")
    checks = [e for e in desk.store.events(reply.run_id) if isinstance(e, OutputValidated)]
    assert [c.ok for c in checks] == [False, True]
    assert "Refunds are instant" not in reply.text and not CHUNK_ID.search(reply.text)
    desk.shutdown()


async def test_the_session_holds_the_help_answer_as_the_customer_read_it(tmp_path: Path) -> None:
    # The next turn's model reads the conversation from the session: there the answer is
    # the text the customer read, never the `Answer`'s JSON with chunk ids and quotes
    # (the journal's run output keeps the `Answer`).
    asked: list[list[Message]] = []

    def thanked(request: ModelRequest) -> str:
        asked.append(list(request.messages))  # as sent (the loop goes on appending)
        return "Anything else I can help with?"

    desk = single_desk(tmp_path, capable([honest, thanked]), route=False)
    conv = await desk.open()
    reply = await desk.send(conv.id, QUESTION)
    said = [m.message for m in desk.store.session_messages(conv.id)]
    assert [(m.role, m.content) for m in said] == [("user", QUESTION), ("assistant", reply.text)]
    assert Answer.model_validate_json(str(desk.store.get_run(reply.run_id).output)).citations
    second = await desk.send(conv.id, "Thanks!")
    assert second.text == "Anything else I can help with?"
    seen = asked[0]
    assert [m.content for m in seen if m.role == "assistant" and not m.tool_calls] == [reply.text]
    conversation = [m.content for m in seen if m.role != "system"]  # the system says the format
    assert not any(CHUNK_ID.search(c) or '"citations"' in c for c in conversation)
    desk.shutdown()
