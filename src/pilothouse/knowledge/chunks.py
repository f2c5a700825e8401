"""Text to chunks with stable ids and exact spans.

A chunk is a run of whole paragraphs (a paragraph longer than the limit is cut at a
sentence or word boundary), and its text is exactly ``document_text[start:end]``, so
a citation can point at characters of the source. Its id is a hash of the document
id, its position and its text: the same document ingested again unchanged gets the
same ids (a citation recorded yesterday still resolves), while a changed chunk gets
a new one (a citation of the old text no longer resolves to the new).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from pilothouse.exceptions import ConfigurationError


@dataclass(frozen=True, slots=True)
class Chunking:
    """How documents are cut; an index records it and refuses another (see `index`)."""

    size: int = 1200  # at most this many characters per chunk (a cut paragraph aside)
    version: int = 1  # of the algorithm below: a change here changes every chunk id

    def __post_init__(self) -> None:
        if not 50 <= self.size <= 100_000:
            raise ConfigurationError(f"Chunking.size must be 50..100000, not {self.size}")

    def to_dict(self) -> dict[str, Any]:
        return {"chunker": "paragraphs", "size": self.size, "version": self.version}

    def fingerprint(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


@dataclass(frozen=True, slots=True)
class Chunk:
    """One chunk: its id, document, position in the document, span and text."""

    id: str
    doc_id: str
    position: int
    start: int
    end: int
    text: str


def chunk_id(doc_id: str, position: int, text: str) -> str:
    """The stable id: a hash of the document id, the position and the text."""
    digest = hashlib.sha256(f"{doc_id}\x00{position}\x00{text}".encode()).hexdigest()
    return "c" + digest[:15]


_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
_SENTENCE_END = re.compile(r"[.!?;:]\s+|\n")


def _paragraphs(text: str) -> list[tuple[int, int]]:
    """(start, end) of each paragraph, surrounding whitespace excluded."""
    spans = []
    pos = 0
    for m in _PARAGRAPH.finditer(text):
        spans.append((pos, m.start()))
        pos = m.end()
    spans.append((pos, len(text)))
    out = []
    for start, end in spans:
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            out.append((start, end))
    return out


def _cut(text: str, start: int, end: int, size: int) -> list[tuple[int, int]]:
    """A long paragraph cut into pieces of at most `size`, at a sentence end, else a
    space, else anywhere."""
    pieces = []
    while end - start > size:
        window = text[start : start + size]
        cut = -1
        for m in _SENTENCE_END.finditer(window):
            if m.end() > size // 3:
                cut = m.end()
        if cut <= 0:
            space = window.rfind(" ", size // 3)
            cut = space + 1 if space > 0 else size
        piece_end = start + cut
        trimmed = piece_end
        while trimmed > start and text[trimmed - 1].isspace():
            trimmed -= 1
        pieces.append((start, trimmed))
        start = piece_end
        while start < end and text[start].isspace():
            start += 1
    if end > start:
        pieces.append((start, end))
    return pieces


def chunk_text(doc_id: str, text: str, chunking: Chunking) -> list[Chunk]:
    """A document's text as chunks (whole paragraphs packed up to `chunking.size`)."""
    size = chunking.size
    spans: list[tuple[int, int]] = []
    for start, end in _paragraphs(text):
        spans.extend(_cut(text, start, end, size) if end - start > size else [(start, end)])
    chunks: list[Chunk] = []
    current: tuple[int, int] | None = None
    for start, end in spans:
        if current is not None and end - current[0] <= size:
            current = (current[0], end)
            continue
        if current is not None:
            chunks.append(_make(doc_id, len(chunks), text, current))
        current = (start, end)
    if current is not None:
        chunks.append(_make(doc_id, len(chunks), text, current))
    return chunks


def _make(doc_id: str, position: int, text: str, span: tuple[int, int]) -> Chunk:
    body = text[span[0] : span[1]]
    return Chunk(chunk_id(doc_id, position, body), doc_id, position, span[0], span[1], body)
