"""Embeddings in knowledge bases, on the model the `wordllama` wheel ships: loaded with no
socket, equal to the package's own pooling, vectors stored beside the chunks (SQLite and
PostgreSQL), vector and hybrid ranking, the embedder recorded and a change refused."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from kb_corpus import RETURNS, SHIPPING, WARRANTY

from pilothouse.exceptions import ConfigurationError, IndexMismatchError
from pilothouse.knowledge import Chunking, KnowledgeBase, WordLlama, fuse
from pilothouse.knowledge.embed import MAX_EMBED_CHARS
from pilothouse.knowledge.postgres import PostgresKnowledgeBase

pytest.importorskip("safetensors", reason="the embeddings extra")

# Queries that share no word with the corpus: BM25 finds nothing, the embeddings do.
PARAPHRASES = [
    ("reimbursement", "returns.md"),
    ("guarantee coverage", "warranty.txt"),
    ("faulty device guarantee", "warranty.txt"),
    ("courier speed", "shipping.html"),
]


def _fill(kb: KnowledgeBase | PostgresKnowledgeBase) -> None:
    kb.ingest("returns.md", RETURNS, kind="markdown")
    kb.ingest("shipping.html", SHIPPING, kind="html")
    kb.ingest("warranty.txt", WARRANTY)


@pytest.fixture(scope="module")
def embedder() -> WordLlama:
    return WordLlama()


@pytest.fixture
def kb(tmp_path: Path, embedder: WordLlama) -> KnowledgeBase:
    kb = KnowledgeBase(tmp_path / "kb.db", chunking=Chunking(size=200), embedder=embedder)
    _fill(kb)
    return kb


def test_the_model_loads_from_the_wheel_with_no_socket_and_matches_the_package() -> None:
    """In a fresh process with `socket.socket` refusing: our pooling equals the
    package's own `WordLlamaInference.embed(norm=True)` on the same files."""
    code = textwrap.dedent(
        """
        import socket
        class NoSocket(socket.socket):
            def __init__(self, *a, **k):
                raise AssertionError("a socket was opened")
        socket.socket = NoSocket
        import numpy as np
        from pilothouse.knowledge import WordLlama
        from pilothouse.knowledge.embed import _files, _table
        texts = ["How do I return an item?", "Refunds go back to the card.", "", "x" * 50]
        ours = WordLlama().embed(texts)
        assert ours.shape == (4, 256) and ours.dtype == np.float32
        assert not ours[2].any()  # the empty text
        from wordllama.inference import WordLlamaInference
        from tokenizers import Tokenizer
        table, _ = _table()
        theirs = WordLlamaInference(table, Tokenizer.from_file(str(_files()[1]))).embed(
            texts, norm=True)
        keep = [0, 1, 3]
        assert np.allclose(ours[keep], theirs[keep], atol=1e-5)
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")


def test_vectors_are_unit_rows_and_long_text_is_bounded(embedder: WordLlama) -> None:
    import numpy as np

    rows = embedder.embed(["refund", "a" * (10 * MAX_EMBED_CHARS), "\x00\ud800 ïé"])
    assert rows.shape == (3, 256)
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    small = WordLlama(dim=64).embed(["refund"])
    assert small.shape == (1, 64)
    with pytest.raises(ConfigurationError):
        WordLlama(dim=100)


@pytest.mark.parametrize(("query", "doc"), PARAPHRASES)
def test_embeddings_find_what_shares_no_word(kb: KnowledgeBase, query: str, doc: str) -> None:
    assert kb.search(query, ranking="bm25") == []
    assert kb.search(query, ranking="vector")[0].chunk.doc_id == doc
    assert kb.search(query)[0].chunk.doc_id == doc  # hybrid is the default with an embedder
    assert kb.ranking == "hybrid"


def test_hybrid_is_the_fusion_of_both_rankings(kb: KnowledgeBase) -> None:
    query = "how fast does shipping arrive"
    lexical = [h.chunk.id for h in kb.search(query, 50, ranking="bm25")]
    nearest = [h.chunk.id for h in kb.search(query, 50, ranking="vector")]
    expected = [i for i, _ in fuse([lexical, nearest])][:5]
    assert [h.chunk.id for h in kb.search(query, 5)] == expected
    for h in kb.search(query, 5):  # hits carry the chunk, its spans and its title
        text = kb.document_text(h.chunk.doc_id) or ""
        assert text[h.chunk.start : h.chunk.end] == h.chunk.text


def test_fuse_ranks_by_reciprocal_rank_with_stable_ties() -> None:
    fused = fuse([["a", "b", "x"], ["b", "a", "y"]], k=60)
    assert [n for n, _ in fused] == ["a", "b", "x", "y"]  # a/b tie: the first ranking's order
    assert fused[0][1] == fused[1][1] == 1 / 61 + 1 / 62
    assert fused[2][1] == fused[3][1] == 1 / 63
    both = dict(fuse([["m", "n"], ["n"]]))
    assert both["n"] > both["m"]  # found by both beats first in one
    assert fuse([]) == []


def test_vectors_live_beside_the_chunks_and_follow_every_change(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    db = sqlite3.connect(tmp_path / "kb.db")
    chunks, vectors = db.execute(
        "SELECT (SELECT count(*) FROM kb_chunks), (SELECT count(*) FROM kb_vectors)"
    ).fetchone()
    assert chunks == vectors > 0
    orphans = db.execute(
        "SELECT count(*) FROM kb_vectors v LEFT JOIN kb_chunks c ON c.rowid = v.rowid "
        "WHERE c.rowid IS NULL"
    ).fetchone()[0]
    assert orphans == 0
    assert kb.search("reimbursement", ranking="vector")[0].chunk.doc_id == "returns.md"
    kb.remove("returns.md")  # the cached matrix is read again after a change
    assert all(h.chunk.doc_id != "returns.md" for h in kb.search("reimbursement", 10))
    assert db.execute("SELECT count(*) FROM kb_vectors").fetchone()[0] == kb.count()[1]
    kb.ingest("refunds.txt", "Reimbursement is paid to your card within a week.")
    assert kb.search("reimbursement", ranking="vector")[0].chunk.doc_id == "refunds.txt"
    db.close()


def test_the_embedder_is_recorded_and_a_change_fails_loudly(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    path = tmp_path / "kb.db"
    kb.close()
    with pytest.raises(IndexMismatchError) as err:  # opened without the embedder
        KnowledgeBase(path, chunking=Chunking(size=200))
    assert "wordllama" in str(err.value) and "reindex=True" in str(err.value)
    with pytest.raises(IndexMismatchError) as err:  # another dimension
        KnowledgeBase(path, chunking=Chunking(size=200), embedder=WordLlama(dim=128))
    assert '"dim": 256' in str(err.value) and '"dim": 128' in str(err.value)
    small = KnowledgeBase(
        path, chunking=Chunking(size=200), embedder=WordLlama(dim=128), reindex=True
    )
    db = sqlite3.connect(path)
    sizes = {r[0] for r in db.execute("SELECT length(vector) FROM kb_vectors")}
    assert sizes == {128 * 4}
    assert small.search("reimbursement", ranking="vector")[0].chunk.doc_id == "returns.md"
    small.close()
    plain = KnowledgeBase(path, chunking=Chunking(size=200), reindex=True)  # back to none
    assert db.execute("SELECT count(*) FROM kb_vectors").fetchone()[0] == 0
    assert plain.search("refund")[0].chunk.doc_id == "returns.md"
    db.close()


def test_a_ranking_that_needs_an_embedder_is_refused_without_one() -> None:
    with pytest.raises(ConfigurationError, match="embedder"):
        KnowledgeBase(ranking="hybrid")
    kb = KnowledgeBase()
    with pytest.raises(ConfigurationError, match="embedder"):
        kb.search("refund", ranking="vector")
    with pytest.raises(ConfigurationError, match="ranking"):
        KnowledgeBase(embedder=WordLlama(), ranking="cosine")  # type: ignore[arg-type]


def test_the_version_names_the_embedder(kb: KnowledgeBase, tmp_path: Path) -> None:
    plain = KnowledgeBase(tmp_path / "plain.db", chunking=Chunking(size=200))
    _fill(plain)
    assert kb.version.split(".")[0] != plain.version.split(".")[0]


def test_hostile_queries_in_every_ranking(kb: KnowledgeBase) -> None:
    for query in ["", "   ", "\x00", '"', "NEAR(", "a" * 100_000, "ü" * 5000, "\ud800"]:
        for ranking in ("bm25", "vector", "hybrid"):
            hits = kb.search(query, 5, ranking=ranking)  # type: ignore[arg-type]
            assert len(hits) <= 5


def test_a_corrupted_vector_is_a_clear_error(kb: KnowledgeBase, tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "kb.db")
    db.execute(
        "UPDATE kb_vectors SET vector = x'00000000' WHERE rowid = (SELECT min(rowid) "
        "FROM kb_vectors)"
    )
    db.execute("UPDATE kb_meta SET value = value || '9' WHERE key = 'generation'")
    db.commit()
    db.close()
    with pytest.raises(IndexMismatchError, match="reindex=True"):
        kb.search("refund", ranking="vector")


def test_postgres_stores_vectors_and_ranks_the_same_way(
    fresh_postgres_dsn: str, embedder: WordLlama
) -> None:
    pg = PostgresKnowledgeBase(fresh_postgres_dsn, chunking=Chunking(size=200), embedder=embedder)
    _fill(pg)
    lite = KnowledgeBase(chunking=Chunking(size=200), embedder=embedder)
    _fill(lite)
    for query, doc in PARAPHRASES:
        assert pg.search(query, ranking="bm25") == []
        top = pg.search(query, 3, ranking="vector")
        assert top[0].chunk.doc_id == doc
        # the same vectors: the same order as SQLite's
        assert [h.chunk.id for h in top] == [
            h.chunk.id for h in lite.search(query, 3, ranking="vector")
        ]
        assert pg.search(query)[0].chunk.doc_id == doc
    for query in ["", "\x00", "NEAR(", "a" * 100_000, "\ud800", "' OR 1=1; --"]:
        for ranking in ("bm25", "vector", "hybrid"):
            assert len(pg.search(query, 5, ranking=ranking)) <= 5  # type: ignore[arg-type]
    count = pg.db.execute("SELECT count(*) FROM kb_vectors").fetchone()
    assert count is not None and count[0] == pg.count()[1]
    pg.remove("returns.md")  # vectors go with their chunks
    count = pg.db.execute("SELECT count(*) FROM kb_vectors").fetchone()
    assert count is not None and count[0] == pg.count()[1]
    assert all(h.chunk.doc_id != "returns.md" for h in pg.search("reimbursement", 10))
    pg.close()
    with pytest.raises(IndexMismatchError, match="reindex=True"):
        PostgresKnowledgeBase(fresh_postgres_dsn, chunking=Chunking(size=200))
    with pytest.raises(IndexMismatchError, match='"dim": 64'):
        PostgresKnowledgeBase(
            fresh_postgres_dsn, chunking=Chunking(size=200), embedder=WordLlama(dim=64)
        )
    small = PostgresKnowledgeBase(
        fresh_postgres_dsn, chunking=Chunking(size=200), embedder=WordLlama(dim=64), reindex=True
    )
    row = small.db.execute("SELECT min(length(vector)), max(length(vector)) FROM kb_vectors")
    assert row.fetchone() == (256, 256)
    assert small.search("guarantee coverage", ranking="vector")[0].chunk.doc_id == "warranty.txt"
    small.close()
