"""Compaction x citations: a passage compaction trimmed out of the model's view stays
citable. The checker reads the run's conversation (the journal's whole tool results, not
the view a step sent), and a passage read back with `recall_result` counts as shown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kb_corpus import RETURNS, SHIPPING, WARRANTY

from pilothouse import ScriptedModel, SQLiteStore, call
from pilothouse.events import ModelRequested, OutputValidated, ToolReturned
from pilothouse.knowledge import Answer, Chunking, KnowledgeBase, rag_agent
from pilothouse.knowledge.rag import shown_chunks
from pilothouse.memory import Compaction, recall_result_tool
from pilothouse.models.base import ModelRequest
from pilothouse.testing import replay

QUOTE = "Refunds go back to the original payment method within 5 business days"


@pytest.fixture
def kb(tmp_path: Path) -> KnowledgeBase:
    kb = KnowledgeBase(tmp_path / "kb.db", name="help", chunking=Chunking(size=200))
    kb.ingest("returns.md", RETURNS, kind="markdown")
    kb.ingest("shipping.html", SHIPPING, kind="html")
    kb.ingest("warranty.txt", WARRANTY)
    return kb


def _refund_chunk(kb: KnowledgeBase) -> str:
    (chunk,) = [c for c in kb.chunks("returns.md") if QUOTE in c.text]
    return chunk.id


def _answer(chunk: str, quote: str) -> str:
    return json.dumps(
        {
            "text": "Refunds take 5 business days [1].",
            "citations": [{"n": 1, "chunk": chunk, "quote": quote}],
        }
    )


def _agent(kb: KnowledgeBase, store: SQLiteStore, replies: Any) -> Any:
    compaction = Compaction(250, keep_recent=1, head=40, tail=20)
    return rag_agent(
        kb,
        ScriptedModel(replies),
        store=store,
        prepare_step=compaction,
        output_retries=1,
        tools=[recall_result_tool(store, compaction)],
    )


def _searches() -> list[Any]:
    return [
        [call("search_knowledge", query="refund payment method days")],
        [call("search_knowledge", query="warranty appliance defects")],
        [call("search_knowledge", query="express shipping next day")],
    ]


def test_a_citation_of_a_trimmed_passage_passes_the_check(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    store = SQLiteStore(tmp_path / "journal.db")
    chunk = _refund_chunk(kb)
    agent = _agent(kb, store, [*_searches(), _answer(chunk, QUOTE)])
    result = agent.run_sync("How long does a refund take?")
    assert isinstance(result.output, Answer) and result.output.citations[0].chunk == chunk
    events = store.events(result.run_id)
    # the last step's view really had the refund passage trimmed away
    last = [e for e in events if isinstance(e, ModelRequested)][-1]
    assert last.view is not None
    sent = agent.model.requests[-1].messages
    first_result = next(m for m in sent if m.role == "tool")
    assert QUOTE not in first_result.content and "recall_result" in first_result.content
    # and the citation was checked and accepted at the first attempt
    checks = [e for e in events if isinstance(e, OutputValidated)]
    assert checks and all(c.ok for c in checks)
    report = replay(_agent(kb, store, []), events)
    assert report.ok, report.divergence


def test_a_fabricated_quote_is_still_refused_after_compaction(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    store = SQLiteStore(tmp_path / "journal.db")
    chunk = _refund_chunk(kb)
    forged = "Refunds go back to the original payment method within 2 business days"
    agent = _agent(kb, store, [*_searches(), _answer(chunk, forged), _answer(chunk, forged)])
    result = agent.run_sync("How long does a refund take?")
    assert result.outcome != "final", result.outcome
    checks = [e for e in store.events(result.run_id) if isinstance(e, OutputValidated)]
    assert checks and not any(c.ok for c in checks)


def test_a_passage_read_back_with_recall_result_counts_as_shown(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    """The model re-reads a trimmed search result through `recall_result` and cites it:
    the recalled text is the journal's own record of that result."""
    store = SQLiteStore(tmp_path / "journal.db")
    chunk = _refund_chunk(kb)
    first = {"id": ""}

    def reply(request: ModelRequest) -> Any:
        step = sum(1 for m in request.messages if m.role == "assistant") + 1
        if step <= 3:
            found = _searches()[step - 1]
            if step == 1:
                first["id"] = found[0].id
            return found
        if step == 4:
            return call("recall_result", call_id=first["id"])
        return _answer(chunk, QUOTE)

    agent = _agent(kb, store, reply)
    result = agent.run_sync("How long does a refund take?")
    assert isinstance(result.output, Answer)
    events = store.events(result.run_id)
    recalled = [e.result for e in events if isinstance(e, ToolReturned)][-1]
    assert recalled.name == "recall_result" and QUOTE in recalled.content
    checks = [e for e in events if isinstance(e, OutputValidated)]
    assert checks and all(c.ok for c in checks)
    # Why the checker reads the run's conversation, not the view a step sent: in the view
    # the search result is trimmed and the recalled copy is another tool's result (whose
    # headers the checker does not trust: `recall_result` can return any tool's output,
    # which could forge a chunk header), so the view alone shows no such chunk.
    assert shown_chunks(agent.model.requests[-1].messages).chunk(chunk) is None
    assert shown_chunks(result.messages).chunk(chunk) is not None
