"""What every knowledge base shares, whatever its store: hits, query words, the text a
model reads, and the methods built on `search` and `ingest` (retrieval on the record,
the search tool, files and trees)."""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pilothouse.events import Retrieved
from pilothouse.exceptions import DocumentError
from pilothouse.tools.tool import Tool, ToolContext

from .chunks import Chunk
from .parse import Kind, kind_of

__all__ = ["WORD", "Hit", "Index", "format_hits", "hits_json", "query_words"]

WORD = re.compile(r"\w+")
# Words too common to rank by (BM25 would weigh them little anyway; dropping them keeps
# an OR query short).
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "in",
        "is",
        "it",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "with",
        "you",
        "your",
        "my",
        "me",
        "we",
    ]
)
MAX_QUERY_WORDS = 64
MAX_WORD_CHARS = 64


@dataclass(frozen=True, slots=True)
class Hit:
    """A chunk found by a search: the chunk, its document's title, its BM25 score
    (higher is better)."""

    chunk: Chunk
    title: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        c = self.chunk
        return {
            "id": c.id,
            "doc": c.doc_id,
            "position": c.position,
            "span": [c.start, c.end],
            "score": round(self.score, 6),
        }


def query_words(query: str) -> list[str]:
    """The words of a query that are searched: lower-cased, stop words dropped, at most
    `MAX_QUERY_WORDS` distinct words of at most `MAX_WORD_CHARS` characters."""
    words: list[str] = []
    seen: set[str] = set()
    for m in WORD.finditer(query.lower()):
        w = m.group()
        if w in _STOP or w in seen or len(w) > MAX_WORD_CHARS:
            continue
        seen.add(w)
        words.append(w)
        if len(words) == MAX_QUERY_WORDS:
            break
    return words


class Index(ABC):
    """A knowledge base's shared surface; a store implements `search`, `ingest`, and
    the readers (`chunk`, `find_text`, ...)."""

    name: str
    max_document_chars: int

    @property
    @abstractmethod
    def version(self) -> str:
        """The index version that retrieval events carry."""

    @abstractmethod
    def search(self, query: str, k: int = 5) -> list[Hit]:
        """The `k` best chunks for `query`."""

    @abstractmethod
    def ingest(
        self,
        doc_id: str,
        data: str | bytes,
        *,
        kind: Kind = "text",
        source: str = "",
        title: str | None = None,
    ) -> list[Chunk]:
        """Add or replace a document; its chunks."""

    def ingest_file(
        self, path: str | Path, *, doc_id: str | None = None, kind: Kind | None = None
    ) -> list[Chunk]:
        """Ingest a file (its kind from its suffix unless given); the id defaults to
        the path as given."""
        path = Path(path)
        kind = kind or kind_of(path)
        try:
            size = path.stat().st_size
            if size > 4 * self.max_document_chars:
                raise DocumentError(f"{path}: {size:,} bytes, over the limit; split it")
            data = path.read_bytes()
        except OSError as exc:
            raise DocumentError(f"{path}: cannot read it ({exc.strerror})") from None
        return self.ingest(doc_id or str(path), data, kind=kind, source=str(path))

    def ingest_tree(
        self, root: str | Path, *, pattern: str = "**/*.html", relative: bool = True
    ) -> int:
        """Ingest every file under `root` matching `pattern`, ids relative to `root`;
        the number of documents."""
        root = Path(root)
        count = 0
        for path in sorted(root.glob(pattern)):
            if path.is_file():
                self.ingest_file(path, doc_id=str(path.relative_to(root)) if relative else None)
                count += 1
        return count

    def retrieve(
        self,
        query: str,
        k: int = 5,
        *,
        emit: Callable[[Any], Any] | None = None,
        run_id: str = "",
        step: int = 0,
        index: int = -1,
    ) -> list[Hit]:
        """`search`, recorded as a `retrieval` event through `emit` (a journal's) when
        given: the query, the hits' ids, documents, spans and scores, the index version."""
        hits = self.search(query, k)
        if emit is not None:
            emit(
                Retrieved(
                    run_id=run_id,
                    step=step,
                    query=query[:2000],
                    knowledge_base=self.name,
                    index_version=self.version,
                    hits=[h.to_dict() for h in hits],
                    index=index,
                )
            )
        return hits

    def as_tool(self, *, name: str = "search_knowledge", k: int = 5) -> Tool:
        """A read-only tool searching this base; each call records a `retrieval` event in
        the run's journal, and its result lists each chunk with the id to cite."""
        kb = self

        def search_knowledge(query: str, ctx: ToolContext[Any]) -> str:
            hits = kb.retrieve(
                query, k, emit=ctx.emit, run_id=ctx.run_id, step=ctx.step, index=ctx.index
            )
            return format_hits(hits)

        search_knowledge.__doc__ = (
            f"Search the knowledge base {self.name!r} for passages about a question.\n\n"
            "Args:\n    query: what to look for, in words"
        )
        return Tool(search_knowledge, name=name, effect="read_only")


def format_hits(hits: Iterable[Hit]) -> str:
    """Hits as the text a model reads: each chunk's id (to cite), document, span and
    text (`rag.shown_chunks` reads them back from a run's messages)."""
    parts = []
    for h in hits:
        c = h.chunk
        head = f"[chunk {c.id}] {c.doc_id} @{c.start}-{c.end}" + (
            f" ({' '.join(h.title.split())})" if h.title else ""
        )
        parts.append(f"{head}\n{c.text}")
    return "\n\n".join(parts) if parts else "No passages found."


def hits_json(hits: Iterable[Hit]) -> str:
    """Hits as JSON (id, document, span, score): for logs and benchmarks."""
    return json.dumps([h.to_dict() for h in hits])
