"""A RAG agent on a real SQLite journal: retrieval journaled, a bad citation refused with
ModelRetry (journaled), the run replayed offline without the index; a chain's retrieval."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from kb_corpus import RETURNS, SHIPPING, WARRANTY

from pilothouse import ScriptedModel, SQLiteStore, call
from pilothouse.events import OutputValidated, Retrieved, ToolReturned, event_from_dict
from pilothouse.flows import Chain
from pilothouse.knowledge import Answer, Chunking, KnowledgeBase, Passages, rag_agent, retriever
from pilothouse.models.base import ModelRequest
from pilothouse.policy import Policy
from pilothouse.testing import replay


@pytest.fixture
def kb(tmp_path: Path) -> KnowledgeBase:
    kb = KnowledgeBase(tmp_path / "kb.db", name="help", chunking=Chunking(size=200))
    kb.ingest("returns.md", RETURNS, kind="markdown")
    kb.ingest("shipping.html", SHIPPING, kind="html")
    kb.ingest("warranty.txt", WARRANTY)
    return kb


def _answer(chunk: str, quote: str) -> str:
    return json.dumps(
        {
            "text": "Refunds take 5 business days [1].",
            "citations": [{"n": 1, "chunk": chunk, "quote": quote}],
        }
    )


def _chunk_id_in(request: ModelRequest) -> str:
    """The id of the refund chunk, read from the tool result the model was shown."""
    results = [m.content for m in request.messages if m.role == "tool"]
    found = re.search(
        r"\[chunk (c[0-9a-f]{15})\] returns\.md[^\n]*\n[^\[]*Refunds go back", results[-1]
    )
    assert found, results[-1]
    return found.group(1)


def _script() -> Any:
    """Search, answer with a misquote, then (told why) with the exact words."""
    turn = {"n": 0}

    def reply(request: ModelRequest) -> Any:
        turn["n"] += 1
        if turn["n"] == 1:
            return call("search_knowledge", query="refund to my payment method")
        chunk = _chunk_id_in(request)
        if turn["n"] == 2:
            return _answer(chunk, "Refunds arrive within 5 business days")
        return _answer(
            chunk, "Refunds go back to the original payment method within 5 business days"
        )

    return reply


def test_rag_agent_journals_retrieval_and_refuses_bad_citations(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    store = SQLiteStore(tmp_path / "journal.db")
    agent = rag_agent(kb, ScriptedModel(_script()), store=store, policy=Policy())
    result = agent.run_sync("How long does a refund take?")
    answer = result.output
    assert isinstance(answer, Answer)
    assert "original payment method" in answer.citations[0].quote

    events = store.events(result.run_id)
    (retrieval,) = [e for e in events if isinstance(e, Retrieved)]
    assert retrieval.query == "refund to my payment method"
    assert retrieval.knowledge_base == "help" and retrieval.index_version == kb.version
    assert retrieval.hits[0]["doc"] == "returns.md"
    assert [h["score"] for h in retrieval.hits] == sorted(
        (h["score"] for h in retrieval.hits), reverse=True
    )
    assert retrieval.hits[0]["id"] in next(
        e.result.content for e in events if isinstance(e, ToolReturned)
    )
    # the event survives the store's round trip
    assert event_from_dict(retrieval.to_dict()) == retrieval
    checks = [e for e in events if isinstance(e, OutputValidated)]
    assert [c.ok for c in checks] == [False, True]
    assert "Citation check failed" in (checks[0].error or "")
    assert "fabricated" in (checks[0].error or "") or "not in chunk" in (checks[0].error or "")

    # replay needs no index: the tool's result comes from the journal
    empty = KnowledgeBase(tmp_path / "empty.db", name="help", chunking=Chunking(size=200))
    again = rag_agent(empty, ScriptedModel([]), store=SQLiteStore(tmp_path / "other.db"))
    report = replay(again, events)
    assert report.ok, report.divergences


def test_retrieval_tool_goes_through_the_policy(kb: KnowledgeBase, tmp_path: Path) -> None:
    policy = Policy.from_dict(
        {
            "version": 1,
            "rules": [{"id": "no-search", "tools": "search_knowledge", "effect": "deny"}],
        }
    )
    model = ScriptedModel([call("search_knowledge", query="refund"), '{"text": "I cannot say."}'])
    agent = rag_agent(kb, model, store=SQLiteStore(tmp_path / "j.db"), policy=policy)
    result = agent.run_sync("refund?")
    events = agent.store.events(result.run_id)
    assert not [e for e in events if isinstance(e, Retrieved)]  # never ran
    (returned,) = [e for e in events if isinstance(e, ToolReturned)]
    assert returned.result.is_error


def test_chain_retrieval_step_is_journaled_and_resumes_without_searching(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    def first_doc(p: Passages) -> str:
        return str(p.hits[0]["doc"])

    store = SQLiteStore(tmp_path / "flows.db")
    chain: Chain[str] = Chain([retriever(kb, k=3), first_doc], name="rag")
    result = chain.run_sync("refund payment method", store=store)
    assert result.output == "returns.md"
    finished = [e.to_dict() for e in store.events(result.run_id) if e.type == "node_finished"]
    update = finished[0]["updates"][0]["value"]
    assert update["index_version"] == kb.version
    assert update["hits"][0]["doc"] == "returns.md" and "score" in update["hits"][0]


def test_citing_a_chunk_the_run_never_showed_is_refused(kb: KnowledgeBase, tmp_path: Path) -> None:
    """The chunk exists in the index, but no search of this run showed it: refused, and
    the verdict comes from the journal, not from the index."""
    unseen = next(c for c in kb.chunks("warranty.txt") if "two-year" in c.text)
    cite = json.dumps(
        {
            "text": "Two years [1].",
            "citations": [{"n": 1, "chunk": unseen.id, "quote": "two-year warranty"}],
        }
    )
    model = ScriptedModel([call("search_knowledge", query="refund payment"), cite, cite, cite])
    agent = rag_agent(kb, model, store=SQLiteStore(tmp_path / "j.db"))
    result = agent.run_sync("warranty?")
    assert result.outcome == "output_invalid"
    errors = [e.error for e in agent.store.events(result.run_id) if isinstance(e, OutputValidated)]
    assert len(errors) == 3 and all(f"names chunk '{unseen.id}'" in (e or "") for e in errors)


def test_search_tool_outside_a_loop_records_nothing_and_works(kb: KnowledgeBase) -> None:
    from pilothouse.flows import tool_step

    chain: Chain[str] = Chain([tool_step(kb.as_tool(k=2))], name="search")
    result = chain.run_sync({"query": "express shipping"})
    assert "[chunk c" in result.output and "shipping.html @" in result.output


def test_retriever_feeds_a_prompt_step(kb: KnowledgeBase, tmp_path: Path) -> None:
    from pilothouse.flows import prompt_step

    model = ScriptedModel(["Express arrives the next business day."])
    chain: Chain[str] = Chain(
        [
            retriever(kb, k=2),
            prompt_step(
                "answer", "Answer from:\n$context\n\nQ: $question", model=model, input=Passages
            ),
        ],
        name="rag_chain",
    )
    result = chain.run_sync("express shipping", store=SQLiteStore(tmp_path / "c.db"))
    assert result.output == "Express arrives the next business day."
    sent = model.requests[0].messages[-1].content
    assert sent.startswith("Answer from:\n[chunk c") and sent.endswith("Q: express shipping")


def test_trace_describes_a_retrieval(kb: KnowledgeBase) -> None:
    from pilothouse.trace import describe

    hits = kb.retrieve("express shipping", 2, emit=(events := []).append, run_id="r1")
    assert hits
    (event,) = events
    line = describe(event)
    assert line.startswith(f"⌕ retrieval  help@{kb.version}  express shipping → 2 hit(s):")
    assert "shipping.html" in line
