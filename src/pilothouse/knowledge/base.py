"""A knowledge base: documents, their chunks and a BM25 index in one SQLite file (FTS5).

`KnowledgeBase(path)` opens or creates the index; `ingest` adds a document (a
document ingested again unchanged keeps its chunk ids; a changed one replaces its
chunks); `search` ranks chunks with FTS5's BM25 for any query text (the query is
reduced to its words, so FTS5 syntax in it is never read as syntax); `retrieve` is
`search` recorded as a `retrieval` event when given a journal's `emit`; `as_tool`
offers it to an agent as a read-only tool, which records that event in the run's
journal (so a replay needs no index: the tool's result is in the journal).

With an `embedder` (`pilothouse.knowledge.WordLlama`, the `embeddings` extra) every
chunk also gets a vector, stored beside it (`kb_vectors`), and `search` ranks by
`ranking`: "bm25", "vector" (cosine, numpy over the stored vectors) or "hybrid" (the
default with an embedder: reciprocal rank fusion of the two).

The index records its chunking and embedder (model and dimension) in `kb_meta`;
opening it with other settings raises `IndexMismatchError` saying how to reindex
(`KnowledgeBase(path, chunking=..., embedder=..., reindex=True)` re-cuts the stored
documents and embeds them again).
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from pilothouse.exceptions import DocumentError, IndexMismatchError, KnowledgeError

from .chunks import Chunk, Chunking, chunk_text
from .common import MAX_WORD_CHARS, WORD, Hit, Index, format_hits, hits_json, query_words
from .embed import Embedder
from .parse import MAX_DOCUMENT_CHARS, Kind, parse
from .vectors import FUSION_DEPTH, Ranking, VectorCache, check_ranking, fuse, mismatches, to_blob

__all__ = ["Hit", "KnowledgeBase", "format_hits", "hits_json", "query_words"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kb_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kb_documents (
    doc_id TEXT PRIMARY KEY, source TEXT NOT NULL, kind TEXT NOT NULL, title TEXT NOT NULL,
    text TEXT NOT NULL, digest TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kb_chunks (
    rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
    doc_id TEXT NOT NULL REFERENCES kb_documents(doc_id),
    position INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS kb_chunks_doc ON kb_chunks(doc_id, position);
CREATE VIRTUAL TABLE IF NOT EXISTS kb_fts USING fts5(
    title, text, tokenize='porter unicode61');
CREATE TABLE IF NOT EXISTS kb_vectors (rowid INTEGER PRIMARY KEY, vector BLOB NOT NULL);
"""


class KnowledgeBase(Index):
    """Documents, chunks and their BM25 index in one SQLite file (see the module).

    `path` is a file or ``":memory:"``; `name` names the base in `retrieval` events;
    `chunking` and `embedder` must match what the index was built with unless
    `reindex=True`; `ranking` is what `search` does by default.
    """

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        name: str = "knowledge",
        chunking: Chunking | None = None,
        reindex: bool = False,
        max_document_chars: int = MAX_DOCUMENT_CHARS,
        embedder: Embedder | None = None,
        ranking: Ranking | None = None,
    ) -> None:
        self.path = str(path)
        self.name = name
        self.chunking = chunking or Chunking()
        self.embedder = embedder
        self.ranking = check_ranking(
            ranking or ("hybrid" if embedder else "bm25"), embedder is not None
        )
        self._vectors = VectorCache(embedder.dim if embedder else 0, self.path)
        self.max_document_chars = max_document_chars
        self.lock = threading.Lock()
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self.db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise KnowledgeError(f"cannot open the knowledge base {self.path}: {exc}") from None
        self._check_settings(reindex)

    # -- settings ------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM kb_meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO kb_meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _embedder_fingerprint(self) -> str:
        return self.embedder.fingerprint() if self.embedder else "none"

    def _check_settings(self, reindex: bool) -> None:
        wanted = self.chunking.fingerprint()
        wanted_embedder = self._embedder_fingerprint()
        recorded = self._meta("chunking")
        if recorded is None:
            with self.lock:
                self._set_meta("chunking", wanted)
                self._set_meta("embedder", wanted_embedder)
                self._set_meta("generation", "0")
            return
        differ = mismatches(recorded, wanted, self._meta("embedder") or "none", wanted_embedder)
        if not differ:
            return
        if not reindex:
            raise IndexMismatchError(
                f"the index {self.path} was built with {' and '.join(differ)}: open it with "
                "the recorded settings, or rebuild it with "
                f"KnowledgeBase({self.path!r}, chunking=..., embedder=..., reindex=True) "
                "(the stored documents are cut and embedded again; if the chunking changed, "
                "chunk ids change and citations of the old chunks no longer resolve)"
            )
        self._reindex(wanted, wanted_embedder)

    def _reindex(self, wanted: str, wanted_embedder: str) -> None:
        with self.lock:
            docs = self.db.execute("SELECT doc_id, title, text FROM kb_documents").fetchall()
            cut = [(d, title, chunk_text(d, text, self.chunking)) for d, title, text in docs]
            vectors = [self._embed(title, chunks) for _, title, chunks in cut]
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.execute("DELETE FROM kb_chunks")
                self.db.execute("DELETE FROM kb_fts")
                self.db.execute("DELETE FROM kb_vectors")
                for (doc_id, title, chunks), blobs in zip(cut, vectors, strict=True):
                    self._insert_chunks(doc_id, title, chunks, blobs)
                self._set_meta("chunking", wanted)
                self._set_meta("embedder", wanted_embedder)
                self._bump()
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def _embed(self, title: str, chunks: Sequence[Chunk]) -> list[bytes] | None:
        """Each chunk's vector (its document's title with its text), or None without an
        embedder."""
        if self.embedder is None:
            return None
        matrix = self.embedder.embed([f"{title}\n{c.text}" for c in chunks])
        return [to_blob(row) for row in matrix]

    def _bump(self) -> None:
        self._set_meta("generation", str(int(self._meta("generation") or "0") + 1))

    @property
    def version(self) -> str:
        """The index version: the digest of the chunking (and the embedder, if any) and a
        generation counted up by every change of content, so a retrieval event says which
        index answered."""
        settings = self.chunking.fingerprint()
        if self.embedder is not None:
            settings += "\x00" + self.embedder.fingerprint()
        digest = hashlib.sha256(settings.encode()).hexdigest()[:8]
        return f"{digest}.{self._meta('generation') or '0'}"

    # -- ingestion -----------------------------------------------------------------

    def ingest(
        self,
        doc_id: str,
        data: str | bytes,
        *,
        kind: Kind = "text",
        source: str = "",
        title: str | None = None,
    ) -> list[Chunk]:
        """Add or replace document `doc_id`; its chunks. Unchanged: nothing is written
        and the chunks (and ids) are the ones stored."""
        if not doc_id or len(doc_id) > 1000:
            raise DocumentError("a document id must be 1-1000 characters")
        parsed = parse(data, kind, source or doc_id, self.max_document_chars)
        text = parsed.text
        title = parsed.title if title is None else title
        digest = hashlib.sha256(f"{kind}\x00{title}\x00{text}".encode()).hexdigest()
        with self.lock:
            row = self.db.execute(
                "SELECT digest FROM kb_documents WHERE doc_id = ?", (doc_id,)
            ).fetchone()
            if row is not None and row[0] == digest:
                return self._chunks_of(doc_id)
            chunks = chunk_text(doc_id, text, self.chunking)
            blobs = self._embed(title, chunks)
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self._delete(doc_id)
                self.db.execute(
                    "INSERT INTO kb_documents(doc_id, source, kind, title, text, digest) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (doc_id, source or doc_id, kind, title, text, digest),
                )
                self._insert_chunks(doc_id, title, chunks, blobs)
                self._bump()
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        return chunks

    def remove(self, doc_id: str) -> bool:
        """Remove a document and its chunks; whether it existed."""
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                found = self._delete(doc_id)
                if found:
                    self._bump()
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        return found

    def _delete(self, doc_id: str) -> bool:
        rows = self.db.execute("SELECT rowid FROM kb_chunks WHERE doc_id = ?", (doc_id,))
        rowids = [(r[0],) for r in rows.fetchall()]
        self.db.executemany("DELETE FROM kb_fts WHERE rowid = ?", rowids)
        self.db.executemany("DELETE FROM kb_vectors WHERE rowid = ?", rowids)
        self.db.execute("DELETE FROM kb_chunks WHERE doc_id = ?", (doc_id,))
        return self.db.execute("DELETE FROM kb_documents WHERE doc_id = ?", (doc_id,)).rowcount > 0

    def _insert_chunks(
        self, doc_id: str, title: str, chunks: Sequence[Chunk], blobs: list[bytes] | None = None
    ) -> None:
        for i, c in enumerate(chunks):
            cur = self.db.execute(
                'INSERT INTO kb_chunks(id, doc_id, position, start, "end", text) '
                "VALUES (?, ?, ?, ?, ?, ?)",
                (c.id, doc_id, c.position, c.start, c.end, c.text),
            )
            self.db.execute(
                "INSERT INTO kb_fts(rowid, title, text) VALUES (?, ?, ?)",
                (cur.lastrowid, title, c.text),
            )
            if blobs is not None:
                self.db.execute(
                    "INSERT INTO kb_vectors(rowid, vector) VALUES (?, ?)",
                    (cur.lastrowid, blobs[i]),
                )

    # -- reading -------------------------------------------------------------------

    def _chunks_of(self, doc_id: str) -> list[Chunk]:
        rows = self.db.execute(
            'SELECT id, doc_id, position, start, "end", text FROM kb_chunks '
            "WHERE doc_id = ? ORDER BY position",
            (doc_id,),
        ).fetchall()
        return [Chunk(*r) for r in rows]

    def chunks(self, doc_id: str) -> list[Chunk]:
        """A document's chunks in order (empty for an unknown document)."""
        with self.lock:
            return self._chunks_of(doc_id)

    def chunk(self, chunk_id: str) -> Chunk | None:
        """The chunk with this id, or None."""
        with self.lock:
            row = self.db.execute(
                'SELECT id, doc_id, position, start, "end", text FROM kb_chunks WHERE id = ?',
                (chunk_id,),
            ).fetchone()
        return None if row is None else Chunk(*row)

    def document_text(self, doc_id: str) -> str | None:
        """The text a document's spans point into, or None."""
        with self.lock:
            row = self.db.execute(
                "SELECT text FROM kb_documents WHERE doc_id = ?", (doc_id,)
            ).fetchone()
        return None if row is None else str(row[0])

    def documents(self) -> list[str]:
        """The ids of the stored documents."""
        with self.lock:
            rows = self.db.execute("SELECT doc_id FROM kb_documents ORDER BY doc_id").fetchall()
        return [r[0] for r in rows]

    def count(self) -> tuple[int, int]:
        """(documents, chunks)."""
        with self.lock:
            docs = self.db.execute("SELECT count(*) FROM kb_documents").fetchone()[0]
            chunks = self.db.execute("SELECT count(*) FROM kb_chunks").fetchone()[0]
        return int(docs), int(chunks)

    def search(self, query: str, k: int = 5, *, ranking: Ranking | None = None) -> list[Hit]:
        """The `k` best chunks for `query`, ranked by `ranking` (default: the base's).

        "bm25": FTS5's BM25 (title words weigh double); any text is a valid query, only
        its words are searched (`query_words`), none → no hits. "vector": cosine
        similarity of the query's embedding with each chunk's. "hybrid": reciprocal rank
        fusion of the top 50 of both (the score is the fused score)."""
        k = max(1, min(int(k), 100))
        mode = self.ranking if ranking is None else check_ranking(ranking, bool(self.embedder))
        if mode == "bm25":
            return self._bm25(query, k)
        vector_hits = self._nearest(query, max(k, FUSION_DEPTH) if mode == "hybrid" else k)
        if mode == "vector":
            return self._hits_by_rowid(vector_hits)
        lexical = [rowid for rowid, _ in self._bm25_scored(query, max(k, FUSION_DEPTH))]
        fused = fuse([lexical, [rowid for rowid, _ in vector_hits]])[:k]
        return self._hits_by_rowid(fused)

    def _bm25(self, query: str, k: int) -> list[Hit]:
        return self._hits_by_rowid(self._bm25_scored(query, k))

    def _bm25_scored(self, query: str, n: int) -> list[tuple[int, float]]:
        """(rowid, BM25 score: higher is better) of the `n` best chunks for the query."""
        words = query_words(query)
        if not words:
            return []
        match = " OR ".join(f'"{w}"' for w in words)
        with self.lock:
            rows = self.db.execute(
                "SELECT kb_fts.rowid, bm25(kb_fts, 2.0, 1.0) AS rank FROM kb_fts "
                "JOIN kb_chunks c ON c.rowid = kb_fts.rowid "
                "WHERE kb_fts MATCH ? ORDER BY rank, c.id LIMIT ?",
                (match, n),
            ).fetchall()
        return [(int(r[0]), -float(r[1])) for r in rows]

    def _nearest(self, query: str, n: int) -> list[tuple[int, float]]:
        """(rowid, cosine) of the `n` chunks nearest the query's embedding."""
        assert self.embedder is not None
        if not query.strip():
            return []
        vector = self.embedder.embed([query])[0]

        def load() -> tuple[list[int], list[bytes]]:
            rows = self.db.execute("SELECT rowid, vector FROM kb_vectors ORDER BY rowid")
            keys, blobs = [], []
            for rowid, blob in rows.fetchall():
                keys.append(int(rowid))
                blobs.append(bytes(blob))
            return keys, blobs

        with self.lock:
            generation = self._meta("generation") or "0"
            return self._vectors.top(vector, n, generation, load)

    def _hits_by_rowid(self, scored: Sequence[tuple[int, float]]) -> list[Hit]:
        if not scored:
            return []
        marks = ",".join("?" * len(scored))
        with self.lock:
            rows = self.db.execute(
                'SELECT c.rowid, c.id, c.doc_id, c.position, c.start, c."end", c.text, d.title '
                "FROM kb_chunks c JOIN kb_documents d ON d.doc_id = c.doc_id "
                f"WHERE c.rowid IN ({marks})",
                [rowid for rowid, _ in scored],
            ).fetchall()
        by_rowid = {r[0]: r for r in rows}
        return [
            Hit(Chunk(*by_rowid[rowid][1:7]), by_rowid[rowid][7], score)
            for rowid, score in scored
            if rowid in by_rowid
        ]

    def find_text(self, quote: str, limit: int = 20) -> list[Chunk]:
        """Chunks whose text may contain `quote` (its words as one phrase, by the index;
        best matches first); the caller checks the text verbatim. Used by the citation
        checker."""
        words = [w for w in WORD.findall(quote.lower()) if len(w) <= MAX_WORD_CHARS][:64]
        if not words:
            return []
        match = '"' + " ".join(words) + '"'  # a phrase: the words in this order
        with self.lock:
            rows = self.db.execute(
                'SELECT c.id, c.doc_id, c.position, c.start, c."end", c.text FROM kb_fts '
                "JOIN kb_chunks c ON c.rowid = kb_fts.rowid WHERE kb_fts MATCH ? "
                "ORDER BY bm25(kb_fts, 0.0, 1.0) LIMIT ?",
                (match, limit),
            ).fetchall()
        return [Chunk(*r) for r in rows]

    def close(self) -> None:
        with self.lock:
            self.db.close()
