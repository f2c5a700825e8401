"""Knowledge bases: documents cut into chunks with stable ids and spans, an index
(SQLite FTS5 with BM25, or a PostgreSQL tsvector), retrieval as a journaled event, and
answers whose citations are verified without a model (docs/knowledge.md)."""

from .base import Hit, KnowledgeBase, format_hits, query_words
from .chunks import Chunk, Chunking, chunk_text
from .citations import Answer, Citation, Finding, Report, Resolved, check_answer, normalise
from .common import Index
from .parse import Parsed, kind_of, parse
from .postgres import PostgresKnowledgeBase
from .rag import Passages, rag_agent, retriever

__all__ = [
    "Answer",
    "Chunk",
    "Chunking",
    "Citation",
    "Finding",
    "Hit",
    "Index",
    "KnowledgeBase",
    "Parsed",
    "Passages",
    "PostgresKnowledgeBase",
    "Report",
    "Resolved",
    "check_answer",
    "chunk_text",
    "format_hits",
    "kind_of",
    "normalise",
    "parse",
    "query_words",
    "rag_agent",
    "retriever",
]
