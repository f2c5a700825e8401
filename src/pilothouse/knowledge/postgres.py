"""A knowledge base in PostgreSQL: the same documents, chunks, ids and spans as the SQLite
one, searched with a `tsvector` (GIN index) instead of FTS5.

`PostgresKnowledgeBase("postgresql://...")` (psycopg 3, the `postgres` extra, imported
when one is opened) keeps one knowledge base per database (tables ``kb_*``). Ranking is
PostgreSQL's `ts_rank_cd` over an English `tsvector` (title weighted A, text B), not
BM25: scores are not comparable with the SQLite store's. The query is reduced to its
words (`query_words`) and handed to `websearch_to_tsquery`, which never raises a syntax
error, so any text is a valid query. Settings are recorded and checked as in SQLite
(`IndexMismatchError`, `reindex=True`). With an `embedder`, vectors live in `kb_vectors`
(BYTEA beside each chunk, deleted with it) and are searched with numpy in this process,
as in SQLite (no pgvector needed); "hybrid" fuses `ts_rank_cd`'s ranking with them.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from typing import Any

from pilothouse.exceptions import DocumentError, IndexMismatchError, KnowledgeError

from .chunks import Chunk, Chunking, chunk_text
from .common import MAX_WORD_CHARS, WORD, Hit, Index, query_words
from .embed import Embedder
from .parse import MAX_DOCUMENT_CHARS, Kind, parse
from .vectors import FUSION_DEPTH, Ranking, VectorCache, check_ranking, fuse, mismatches, to_blob

__all__ = ["PostgresKnowledgeBase"]

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS kb_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS kb_documents (doc_id TEXT PRIMARY KEY, source TEXT NOT NULL, "
    "kind TEXT NOT NULL, title TEXT NOT NULL, text TEXT NOT NULL, digest TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS kb_chunks (id TEXT PRIMARY KEY, "
    "doc_id TEXT NOT NULL REFERENCES kb_documents(doc_id) ON DELETE CASCADE, "
    'position INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL, '
    "text TEXT NOT NULL, title TEXT NOT NULL, tsv tsvector GENERATED ALWAYS AS ("
    "setweight(to_tsvector('english', title), 'A') || "
    "setweight(to_tsvector('english', text), 'B')) STORED)",
    "CREATE INDEX IF NOT EXISTS kb_chunks_tsv ON kb_chunks USING GIN (tsv)",
    "CREATE INDEX IF NOT EXISTS kb_chunks_doc ON kb_chunks (doc_id, position)",
    "CREATE TABLE IF NOT EXISTS kb_vectors (id TEXT PRIMARY KEY "
    "REFERENCES kb_chunks(id) ON DELETE CASCADE, vector BYTEA NOT NULL)",
]
_CHUNK = 'c.id, c.doc_id, c.position, c.start, c."end", c.text'


class PostgresKnowledgeBase(Index):
    """A knowledge base in a PostgreSQL database (see the module)."""

    def __init__(
        self,
        url: str,
        *,
        name: str = "knowledge",
        chunking: Chunking | None = None,
        reindex: bool = False,
        max_document_chars: int = MAX_DOCUMENT_CHARS,
        embedder: Embedder | None = None,
        ranking: Ranking | None = None,
    ) -> None:
        try:
            import psycopg
        except ImportError:
            raise KnowledgeError(
                "a PostgreSQL knowledge base needs psycopg: pip install 'pilothouse[postgres]'"
            ) from None
        self.name = name
        self.chunking = chunking or Chunking()
        self.max_document_chars = max_document_chars
        self.lock = threading.Lock()
        self.where = url.split("@")[-1]  # no password in messages
        self.embedder = embedder
        self.ranking = check_ranking(
            ranking or ("hybrid" if embedder else "bm25"), embedder is not None
        )
        self._vectors = VectorCache(embedder.dim if embedder else 0, self.where)
        try:
            self.db = psycopg.connect(url, autocommit=True)
            with self.db.transaction():
                self.db.execute("SELECT pg_advisory_xact_lock(7240291)")  # one creator
                for statement in _SCHEMA:
                    self.db.execute(statement)
        except psycopg.Error as exc:
            raise KnowledgeError(f"cannot open the knowledge base at {self.where}: {exc}") from None
        self._check_settings(reindex)

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM kb_meta WHERE key = %s", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO kb_meta(key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _check_settings(self, reindex: bool) -> None:
        wanted = self.chunking.fingerprint()
        wanted_embedder = self.embedder.fingerprint() if self.embedder else "none"
        with self.lock, self.db.transaction():
            self.db.execute("SELECT pg_advisory_xact_lock(7240291)")  # one reindexer
            recorded = self._meta("chunking")
            if recorded is None:
                self._set_meta("chunking", wanted)
                self._set_meta("embedder", wanted_embedder)
                self._set_meta("generation", "0")
                return
            differ = mismatches(recorded, wanted, self._meta("embedder") or "none", wanted_embedder)
            if not differ:
                return
            if not reindex:
                raise IndexMismatchError(
                    f"the index at {self.where} was built with {' and '.join(differ)}: open "
                    "it with the recorded settings, or rebuild it with PostgresKnowledgeBase("
                    "url, chunking=..., embedder=..., reindex=True) (the stored documents are "
                    "cut and embedded again; if the chunking changed, chunk ids change and "
                    "citations of old chunks stop resolving)"
                )
            docs = self.db.execute("SELECT doc_id, title, text FROM kb_documents").fetchall()
            self.db.execute("DELETE FROM kb_chunks")  # their vectors go with them
            for doc_id, title, text in docs:
                chunks = chunk_text(doc_id, text, self.chunking)
                self._insert_chunks(doc_id, title, chunks, self._embed(title, chunks))
            self._set_meta("chunking", wanted)
            self._set_meta("embedder", wanted_embedder)
            self._bump()

    def _embed(self, title: str, chunks: Sequence[Chunk]) -> list[bytes] | None:
        """Each chunk's vector (as `KnowledgeBase._embed`), or None without an embedder."""
        if self.embedder is None:
            return None
        matrix = self.embedder.embed([f"{title}\n{c.text}" for c in chunks])
        return [to_blob(row) for row in matrix]

    def _bump(self) -> None:
        self.db.execute(
            "UPDATE kb_meta SET value = (value::bigint + 1)::text WHERE key = 'generation'"
        )

    @property
    def version(self) -> str:
        settings = self.chunking.fingerprint()
        if self.embedder is not None:
            settings += "\x00" + self.embedder.fingerprint()
        digest = hashlib.sha256(settings.encode()).hexdigest()[:8]
        with self.lock:
            return f"{digest}.{self._meta('generation') or '0'}"

    def ingest(
        self,
        doc_id: str,
        data: str | bytes,
        *,
        kind: Kind = "text",
        source: str = "",
        title: str | None = None,
    ) -> list[Chunk]:
        """Add or replace document `doc_id` (see `KnowledgeBase.ingest`)."""
        if not doc_id or len(doc_id) > 1000:
            raise DocumentError("a document id must be 1-1000 characters")
        parsed = parse(data, kind, source or doc_id, self.max_document_chars)
        text = parsed.text
        if "\x00" in text:  # PostgreSQL text cannot hold NUL
            raise DocumentError(f"{source or doc_id}: NUL characters, not a text document")
        title = parsed.title if title is None else title
        digest = hashlib.sha256(f"{kind}\x00{title}\x00{text}".encode()).hexdigest()
        with self.lock, self.db.transaction():
            row = self.db.execute(
                "SELECT digest FROM kb_documents WHERE doc_id = %s FOR UPDATE", (doc_id,)
            ).fetchone()
            if row is not None and row[0] == digest:
                return self._chunks_of(doc_id)
            chunks = chunk_text(doc_id, text, self.chunking)
            blobs = self._embed(title, chunks)
            self.db.execute("DELETE FROM kb_documents WHERE doc_id = %s", (doc_id,))
            self.db.execute(
                "INSERT INTO kb_documents(doc_id, source, kind, title, text, digest) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (doc_id, source or doc_id, kind, title, text, digest),
            )
            self._insert_chunks(doc_id, title, chunks, blobs)
            self._bump()
        return chunks

    def _insert_chunks(
        self, doc_id: str, title: str, chunks: Sequence[Chunk], blobs: list[bytes] | None = None
    ) -> None:
        with self.db.cursor() as cur:
            cur.executemany(
                'INSERT INTO kb_chunks(id, doc_id, position, start, "end", text, title) '
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [(c.id, doc_id, c.position, c.start, c.end, c.text, title) for c in chunks],
            )
            if blobs is not None:
                cur.executemany(
                    "INSERT INTO kb_vectors(id, vector) VALUES (%s, %s)",
                    [(c.id, blob) for c, blob in zip(chunks, blobs, strict=True)],
                )

    def remove(self, doc_id: str) -> bool:
        """Remove a document and its chunks; whether it existed."""
        with self.lock, self.db.transaction():
            found = (
                self.db.execute("DELETE FROM kb_documents WHERE doc_id = %s", (doc_id,)).rowcount
                > 0
            )
            if found:
                self._bump()
        return found

    def _chunks_of(self, doc_id: str) -> list[Chunk]:
        rows = self.db.execute(
            f"SELECT {_CHUNK} FROM kb_chunks c WHERE c.doc_id = %s ORDER BY c.position",
            (doc_id,),
        ).fetchall()
        return [Chunk(*r) for r in rows]

    def chunks(self, doc_id: str) -> list[Chunk]:
        with self.lock:
            return self._chunks_of(doc_id)

    def chunk(self, chunk_id: str) -> Chunk | None:
        with self.lock:
            row = self.db.execute(
                f"SELECT {_CHUNK} FROM kb_chunks c WHERE c.id = %s", (chunk_id,)
            ).fetchone()
        return None if row is None else Chunk(*row)

    def document_text(self, doc_id: str) -> str | None:
        with self.lock:
            row = self.db.execute(
                "SELECT text FROM kb_documents WHERE doc_id = %s", (doc_id,)
            ).fetchone()
        return None if row is None else str(row[0])

    def documents(self) -> list[str]:
        with self.lock:
            rows = self.db.execute("SELECT doc_id FROM kb_documents ORDER BY doc_id").fetchall()
        return [str(r[0]) for r in rows]

    def count(self) -> tuple[int, int]:
        with self.lock:
            row: Any = self.db.execute(
                "SELECT (SELECT count(*) FROM kb_documents), (SELECT count(*) FROM kb_chunks)"
            ).fetchone()
        return int(row[0]), int(row[1])

    def search(self, query: str, k: int = 5, *, ranking: Ranking | None = None) -> list[Hit]:
        """The `k` best chunks by `ranking` (default: the base's): "bm25" is
        `ts_rank_cd` here; "vector" and "hybrid" as in `KnowledgeBase.search`. Any text is
        a valid query."""
        k = max(1, min(int(k), 100))
        mode = self.ranking if ranking is None else check_ranking(ranking, bool(self.embedder))
        if mode == "bm25":
            return self._lexical(query, k)
        nearest = self._nearest(query, max(k, FUSION_DEPTH) if mode == "hybrid" else k)
        if mode == "vector":
            return self._hits_by_id(nearest)
        lexical = [h.chunk.id for h in self._lexical(query, max(k, FUSION_DEPTH))]
        return self._hits_by_id(fuse([lexical, [i for i, _ in nearest]])[:k])

    def _nearest(self, query: str, n: int) -> list[tuple[str, float]]:
        assert self.embedder is not None
        if not query.strip():
            return []
        vector = self.embedder.embed([query])[0]

        def load() -> tuple[list[str], list[bytes]]:
            rows = self.db.execute("SELECT id, vector FROM kb_vectors ORDER BY id").fetchall()
            return [str(r[0]) for r in rows], [bytes(r[1]) for r in rows]

        with self.lock:
            generation = self._meta("generation") or "0"
            return self._vectors.top(vector, n, generation, load)

    def _hits_by_id(self, scored: Sequence[tuple[str, float]]) -> list[Hit]:
        if not scored:
            return []
        with self.lock:
            rows = self.db.execute(
                f"SELECT {_CHUNK}, c.title FROM kb_chunks c WHERE c.id = ANY(%s)",
                ([i for i, _ in scored],),
            ).fetchall()
        by_id = {str(r[0]): r for r in rows}
        return [
            Hit(Chunk(*by_id[i][:6]), str(by_id[i][6]), score) for i, score in scored if i in by_id
        ]

    def _lexical(self, query: str, k: int) -> list[Hit]:
        words = [w for w in query_words(query) if "\x00" not in w]
        if not words:
            return []
        with self.lock:
            rows = self.db.execute(
                f"SELECT {_CHUNK}, c.title, ts_rank_cd(c.tsv, q) AS score "
                "FROM kb_chunks c, websearch_to_tsquery('english', %s) q "
                "WHERE c.tsv @@ q ORDER BY score DESC, c.id LIMIT %s",
                (" or ".join(words), k),
            ).fetchall()
        return [Hit(Chunk(*r[:6]), str(r[6]), float(r[7])) for r in rows]

    def find_text(self, quote: str, limit: int = 20) -> list[Chunk]:
        """Chunks whose text may contain `quote` (its words as a phrase); the caller checks
        the text verbatim."""
        words = [w for w in WORD.findall(quote.lower()) if len(w) <= MAX_WORD_CHARS][:64]
        if not words:
            return []
        with self.lock:
            rows = self.db.execute(
                f"SELECT {_CHUNK} FROM kb_chunks c, phraseto_tsquery('english', %s) q "
                "WHERE c.tsv @@ q ORDER BY ts_rank_cd(c.tsv, q) DESC, c.id LIMIT %s",
                (" ".join(words), limit),
            ).fetchall()
        return [Chunk(*r) for r in rows]

    def close(self) -> None:
        with self.lock:
            self.db.close()
