"""The PostgreSQL knowledge base on a real server: same ids and spans as SQLite, hostile
queries, settings checked, the citation checker over it."""

from __future__ import annotations

import pytest
from claims import generate
from kb_corpus import RETURNS, SHIPPING, WARRANTY
from test_knowledge_base import HOSTILE

from pilothouse.exceptions import DocumentError, IndexMismatchError
from pilothouse.knowledge import Chunking, KnowledgeBase, check_answer
from pilothouse.knowledge.postgres import PostgresKnowledgeBase


def _fill(kb: KnowledgeBase | PostgresKnowledgeBase) -> None:
    kb.ingest("returns.md", RETURNS, kind="markdown")
    kb.ingest("shipping.html", SHIPPING, kind="html")
    kb.ingest("warranty.txt", WARRANTY)


def test_same_chunks_as_sqlite_and_stable_ids(fresh_postgres_dsn: str) -> None:
    pg = PostgresKnowledgeBase(fresh_postgres_dsn, chunking=Chunking(size=200))
    lite = KnowledgeBase(chunking=Chunking(size=200))
    _fill(pg)
    _fill(lite)
    assert pg.documents() == lite.documents()
    for doc in lite.documents():
        assert pg.chunks(doc) == lite.chunks(doc)
        assert pg.document_text(doc) == lite.document_text(doc)
    version = pg.version
    _fill(pg)  # unchanged: nothing written
    assert pg.version == version
    hits = pg.search("refund to the original payment method")
    assert hits[0].chunk.doc_id == "returns.md"
    assert pg.remove("warranty.txt") and pg.count()[0] == 2
    with pytest.raises(IndexMismatchError, match="reindex=True"):
        PostgresKnowledgeBase(fresh_postgres_dsn, chunking=Chunking(size=500))
    rebuilt = PostgresKnowledgeBase(fresh_postgres_dsn, chunking=Chunking(size=500), reindex=True)
    text = rebuilt.document_text("returns.md") or ""
    assert all(text[c.start : c.end] == c.text for c in rebuilt.chunks("returns.md"))


def test_hostile_queries_and_documents(fresh_postgres_dsn: str) -> None:
    pg = PostgresKnowledgeBase(fresh_postgres_dsn)
    _fill(pg)
    for query in HOSTILE:
        pg.search(query)
        pg.find_text(query)
    with pytest.raises(DocumentError):
        pg.ingest("g", bytes(range(256)) * 10)
    assert pg.count()[0] == 3


def test_citation_checker_over_postgres(fresh_postgres_dsn: str) -> None:
    pg = PostgresKnowledgeBase(fresh_postgres_dsn, chunking=Chunking(size=200))
    _fill(pg)
    claims = generate(pg, per_kind=10, seed=5)  # type: ignore[arg-type]
    for claim in claims:
        assert check_answer(claim.answer, pg).ok == (claim.label == "ok"), claim
