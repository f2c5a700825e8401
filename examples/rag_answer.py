"""Answers with verified citations from a knowledge base, offline.

The support desk's help articles (Markdown shipped in pilothouse_desk/articles) are
ingested into a SQLite knowledge base; a RAG agent searches it (a read-only tool:
through the policy, each search a `retrieval` event in the journal) and answers with
[n] citations, each a chunk id and a quote. The scripted model first misquotes the
article; the citation checker (no model involved) refuses the answer with
`ModelRetry`, the model quotes the text exactly, and the citation resolves to the
document, the chunk and the quote's characters in the article.

    python examples/rag_answer.py
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

import pilothouse_desk
from pilothouse import ScriptedModel, SQLiteStore, call
from pilothouse.events import OutputValidated, Retrieved
from pilothouse.knowledge import Answer, KnowledgeBase, check_answer, rag_agent
from pilothouse.models.base import ModelRequest

ARTICLES = Path(pilothouse_desk.__file__).parent / "articles"


def scripted_model() -> ScriptedModel:
    """Search; answer with a paraphrase passed off as a quote; then quote exactly."""

    def reply(request: ModelRequest) -> Any:
        shown = [m.content for m in request.messages if m.role == "tool"]
        if not shown:
            return call("search_knowledge", query="How long do card refunds take?")
        chunk = re.search(r"\[chunk (c[0-9a-f]{15})\] refunds\.md", shown[-1])
        assert chunk is not None
        retried = any(m.role == "user" and "Citation check" in m.content for m in request.messages)
        quote = (
            "Card refunds appear within 5 to 10 business days"
            if retried
            else "Card refunds take about a week"
        )
        return json.dumps(
            {
                "text": "A card refund reaches you in 5 to 10 business days [1].",
                "citations": [{"n": 1, "chunk": chunk.group(1), "quote": quote}],
            }
        )

    return ScriptedModel(reply)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        kb = KnowledgeBase(Path(tmp) / "help.db", name="help")
        for path in sorted(ARTICLES.glob("*.md")):
            kb.ingest_file(path, doc_id=path.name)
        documents, chunks = kb.count()
        print(f"knowledge base: {documents} articles, {chunks} chunks, version {kb.version}")

        store = SQLiteStore(Path(tmp) / "journal.db")
        agent = rag_agent(kb, scripted_model(), store=store)
        result = agent.run_sync("How long until I see my card refund?")
        for event in store.events(result.run_id):
            if isinstance(event, Retrieved):
                top = ", ".join(f"{h['doc']} ({h['score']:.2f})" for h in event.hits[:3])
                print(f"retrieval journaled: {event.query!r} -> {top}")
            elif isinstance(event, OutputValidated):
                print("✓ citations verified" if event.ok else f"✗ refused: {event.error}")

        answer: Answer = result.output
        print(f"answer: {answer.text}")
        report = check_answer(answer, kb)
        for r in report.resolved:
            text = kb.document_text(r.doc_id) or ""
            print(
                f"[{r.n}] {r.doc_id}, chunk {r.chunk_id}, characters {r.start}-{r.end}: "
                f"{text[r.start : r.end]!r}"
            )
        kb.close()


if __name__ == "__main__":
    main()
