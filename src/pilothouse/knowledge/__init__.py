"""Knowledge bases: documents cut into chunks with stable ids and spans, a BM25 index
(SQLite FTS5), retrieval as a journaled event, and answers whose citations are
verified without a model (docs/knowledge.md)."""

from .base import Hit, KnowledgeBase, format_hits, query_words
from .chunks import Chunk, Chunking, chunk_text
from .citations import Answer, Citation, Finding, Report, Resolved, check_answer, normalise
from .parse import Parsed, kind_of, parse
from .rag import Passages, rag_agent, retriever

__all__ = [
    "Answer",
    "Chunk",
    "Chunking",
    "Citation",
    "Finding",
    "Hit",
    "KnowledgeBase",
    "Parsed",
    "Passages",
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
