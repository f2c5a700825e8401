"""Knowledge bases: documents cut into chunks with stable ids and spans, an index
(SQLite FTS5 with BM25, or a PostgreSQL tsvector; optional embeddings and hybrid
ranking), retrieval as a journaled event, and answers whose citations are verified
without a model (docs/knowledge.md)."""

from .base import Hit, KnowledgeBase, format_hits, query_words
from .chunks import Chunk, Chunking, chunk_text
from .citations import Answer, Citation, Finding, Report, Resolved, check_answer, normalise
from .common import Index
from .embed import Embedder, WordLlama, embeddings_available
from .parse import Parsed, kind_of, parse
from .postgres import PostgresKnowledgeBase
from .rag import Passages, rag_agent, retriever
from .vectors import Ranking, fuse

__all__ = [
    "Answer",
    "Chunk",
    "Chunking",
    "Citation",
    "Embedder",
    "Finding",
    "Hit",
    "Index",
    "KnowledgeBase",
    "Parsed",
    "Passages",
    "PostgresKnowledgeBase",
    "Ranking",
    "Report",
    "Resolved",
    "WordLlama",
    "check_answer",
    "chunk_text",
    "embeddings_available",
    "format_hits",
    "fuse",
    "kind_of",
    "normalise",
    "parse",
    "query_words",
    "rag_agent",
    "retriever",
]
