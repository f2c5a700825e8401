"""Hybrid retrieval: BM25 and embeddings from a model shipped in a wheel, offline.

Needs the `embeddings` extra (`pip install 'pilothouse[embeddings]'`: WordLlama, MIT,
whose wheel carries its 256-d token-embedding table and tokenizer; nothing is downloaded,
and this script refuses every socket to show it).

1. The support desk's help articles go into a knowledge base with an embedder: each
   chunk gets a vector stored beside it, the index records the embedder, and opening
   it without one fails loudly with how to reindex. A question that shares no word with
   the article it needs finds nothing by BM25 and finds it by embeddings and hybrid.
2. Tool retrieval over the 987 tools generated from public SDK descriptions
   (benchmarks/data/tools): BM25 alone and hybrid for requests in a user's words.

    python examples/hybrid_search.py
"""

from __future__ import annotations

import json
import socket
import tempfile
from pathlib import Path
from typing import Any

import pilothouse_desk
from pilothouse.exceptions import IndexMismatchError
from pilothouse.knowledge import KnowledgeBase, WordLlama
from pilothouse.models.base import ToolSpec
from pilothouse.tools.select import ToolIndex

ARTICLES = Path(pilothouse_desk.__file__).parent / "articles"
TOOLS = Path(__file__).resolve().parent.parent / "benchmarks" / "data" / "tools" / "sdk_tools.json"


class NoSocket(socket.socket):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a socket was opened")


def main() -> None:
    socket.socket = NoSocket  # type: ignore[misc]
    embedder = WordLlama()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "help.db"
        kb = KnowledgeBase(path, name="help", embedder=embedder)
        for article in sorted(ARTICLES.glob("*.md")):
            kb.ingest_file(article, doc_id=article.name)
        documents, chunks = kb.count()
        print(f"knowledge base: {documents} articles, {chunks} chunks, each with a vector")
        question = "reimbursement"
        for ranking in ("bm25", "vector", "hybrid"):
            hits = kb.search(question, 3, ranking=ranking)  # type: ignore[arg-type]
            found = ", ".join(h.chunk.doc_id for h in hits) or "nothing"
            print(f"{ranking:>6}: {question!r} -> {found}")
        kb.close()
        try:
            KnowledgeBase(path, name="help")
        except IndexMismatchError as exc:
            says = '"dim": 256' in str(exc) and "reindex=True" in str(exc)
            print(f"opened without the embedder: refused, naming the embedder and reindex: {says}")
    specs = [
        ToolSpec(t["name"], t["description"], t["parameters"])
        for t in json.loads(TOOLS.read_text(encoding="utf-8"))
    ]
    lexical, hybrid = ToolIndex(specs), ToolIndex(specs, embedder=embedder)
    print(f"tool retrieval over {len(specs)} tools (top 5):")
    for request, wanted in [
        ("make a code sandbox container", "openai_containers_create"),
        ("delete an uploaded file", "openai_files_delete"),
    ]:
        for name, index in (("bm25", lexical), ("hybrid", hybrid)):
            top = [s.name for s, _ in index.search(request, 5)]
            mark = "✓" if wanted in top else "✗"
            print(f"  {mark} {name:>6}: {request!r} -> {top[0] if top else 'nothing'}")


if __name__ == "__main__":
    main()
