"""Answers that cite, and a checker that verifies every citation without a model.

An `Answer` is text with ``[n]`` markers and a list of `Citation` (n, chunk id,
quote). `check_answer` verifies it against a knowledge base:

- numbering: the markers' numbers, in order of first appearance, are 1, 2, 3, ...;
  every marker has a citation and every citation a marker; no number twice;
- resolution: each citation's chunk exists;
- the quote is in the cited chunk, verbatim after normalising whitespace and quote
  marks only (case, words and punctuation must match). When it is not, the problem
  is named: ``misattributed`` (the quote is real text of another chunk),
  ``stitched`` (it joins pieces of text that are not contiguous: two chunks, or two
  places of one), ``fabricated`` (no such text).

A citation that passes resolves to (document, chunk, span): the quote's characters
in the document's text. The checks are string operations, so the verdict is the same
on every run and costs no model call.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from .chunks import Chunk

Problem = Literal[
    "numbering",
    "unknown_chunk",
    "empty_quote",
    "misattributed",
    "stitched",
    "fabricated",
]

_MARKER = re.compile(r"\[(\d{1,4})\]")
_QUOTES = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
        "\u00ab": '"',
        "\u00bb": '"',
        "`": "'",
    }
)
MIN_PIECE_WORDS = 3  # a stitched quote's pieces are found down to this many words
STITCH_LOOKUPS = 200  # lookups the stitched test may make for one citation


class Citation(BaseModel):
    """One source of an answer: its number, the chunk's id, a verbatim quote from it."""

    n: int = Field(description="the number used as [n] in the answer")
    chunk: str = Field(description="the chunk id shown by the search tool")
    quote: str = Field(description="words copied exactly from that chunk")


class Answer(BaseModel):
    """An answer with numbered citations."""

    text: str = Field(description="the answer, with [n] after each claim")
    citations: list[Citation] = Field(default_factory=list)


class Chunks(Protocol):
    """What the checker reads: a chunk by id, and candidate chunks for a quote."""

    def chunk(self, chunk_id: str) -> Chunk | None: ...

    def find_text(self, quote: str, limit: int = 20) -> list[Chunk]: ...


@dataclass(frozen=True, slots=True)
class Resolved:
    """A verified citation: its number, document, chunk and the quote's span in the
    document's text."""

    n: int
    doc_id: str
    chunk_id: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem with an answer's citations; `n` is the citation (0: the answer)."""

    n: int
    problem: Problem
    message: str


@dataclass(slots=True)
class Report:
    """The checker's verdict: resolved citations and problems (none: the answer is ok)."""

    resolved: list[Resolved] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def message(self) -> str:
        """The problems as one message (for the model asked to fix its answer)."""
        return "; ".join(f.message for f in self.findings)


def normalise(text: str) -> tuple[str, list[int]]:
    """`text` with quote marks made straight and whitespace runs made one space
    (trimmed), and for each character of the result its index in `text`."""
    out: list[str] = []
    where: list[int] = []
    space = False
    for i, ch in enumerate(text.translate(_QUOTES)):
        if ch.isspace():
            space = bool(out)
            continue
        if space:
            out.append(" ")
            where.append(i - 1)
            space = False
        out.append(ch)
        where.append(i)
    return "".join(out), where


def _norm(text: str) -> str:
    return normalise(text)[0]


def locate(quote: str, chunk: Chunk) -> tuple[int, int] | None:
    """The quote's span in the chunk's document (start, end), or None if the chunk's
    text does not contain it (after normalisation)."""
    wanted = _norm(quote)
    if not wanted:
        return None
    text, where = normalise(chunk.text)
    at = text.find(wanted)
    if at < 0:
        return None
    return chunk.start + where[at], chunk.start + where[at + len(wanted) - 1] + 1


def _contains(chunks: Chunks, quote: str, exclude: str) -> Chunk | None:
    wanted = _norm(quote)
    for c in chunks.find_text(quote):
        if c.id != exclude and wanted in _norm(c.text):
            return c
    return None


def _found_anywhere(chunks: Chunks, piece: str, cited: Chunk) -> bool:
    wanted = _norm(piece)
    if wanted in _norm(cited.text):
        return True
    return any(wanted in _norm(c.text) for c in chunks.find_text(piece))


def _stitched(chunks: Chunks, quote: str, cited: Chunk, budget: int = STITCH_LOOKUPS) -> bool:
    """Whether the quote splits into two or more pieces of real text (each at least
    `MIN_PIECE_WORDS` words, or the last piece) that are not one passage. At most
    `budget` lookups: a quote too long to split within it is not named stitched (it is
    flagged all the same, as fabricated), so a hostile answer cannot make the check slow."""
    words = _norm(quote).split(" ")
    n = len(words)
    # greedy: the longest real prefix, then the rest, piece by piece
    start = 0
    pieces = 0
    while start < n:
        end = n
        while end > start:
            if end - start >= MIN_PIECE_WORDS or end == n:
                budget -= 1
                if budget < 0:
                    return False
                if _found_anywhere(chunks, " ".join(words[start:end]), cited):
                    break
            end -= 1
        if end == start:
            return False
        pieces += 1
        start = end
    return pieces >= 2


def check_answer(answer: Answer, chunks: Chunks) -> Report:
    """Verify an answer's citations against `chunks` (a `KnowledgeBase`); see the module."""
    report = Report()
    _check_numbers(answer, report)
    for cite in answer.citations:
        n = cite.n
        if not _norm(cite.quote):
            report.findings.append(
                Finding(n, "empty_quote", f"citation [{n}] has no quote: copy the cited words")
            )
            continue
        cited = chunks.chunk(cite.chunk)
        if cited is None:
            report.findings.append(
                Finding(
                    n,
                    "unknown_chunk",
                    f"citation [{n}] names chunk {cite.chunk[:40]!r}, which does not exist: "
                    "cite a chunk id the search tool showed",
                )
            )
            continue
        span = locate(cite.quote, cited)
        if span is not None:
            report.resolved.append(Resolved(n, cited.doc_id, cited.id, *span))
            continue
        other = _contains(chunks, cite.quote, cited.id)
        if other is not None:
            report.findings.append(
                Finding(
                    n,
                    "misattributed",
                    f"citation [{n}]: the quote is not in chunk {cited.id} but in chunk "
                    f"{other.id}: cite that chunk",
                )
            )
        elif _stitched(chunks, cite.quote, cited):
            report.findings.append(
                Finding(
                    n,
                    "stitched",
                    f"citation [{n}]: the quote joins text from different places; quote one "
                    "passage per citation",
                )
            )
        else:
            report.findings.append(
                Finding(
                    n,
                    "fabricated",
                    f"citation [{n}]: the quote is not in chunk {cited.id} (nor in another "
                    "passage): copy the words exactly",
                )
            )
    return report


def _check_numbers(answer: Answer, report: Report) -> None:
    seen: list[int] = []
    for m in _MARKER.finditer(answer.text):
        n = int(m.group(1))
        if n not in seen:
            seen.append(n)
    expected = list(range(1, len(seen) + 1))
    if seen != expected:
        report.findings.append(
            Finding(
                0,
                "numbering",
                f"the citation numbers appear as {seen[:10]}: number them 1, 2, 3 in the order "
                "they first appear",
            )
        )
    numbers = [c.n for c in answer.citations]
    twice = sorted({n for n in numbers if numbers.count(n) > 1})
    if twice:
        report.findings.append(
            Finding(0, "numbering", f"citation numbers used twice: {twice[:10]}")
        )
    missing = sorted(set(seen) - set(numbers))
    if missing:
        report.findings.append(
            Finding(0, "numbering", f"markers without a citation: {missing[:10]}")
        )
    unused = sorted(set(numbers) - set(seen))
    if unused:
        report.findings.append(
            Finding(0, "numbering", f"citations no [n] in the text refers to: {unused[:10]}")
        )


def cited_text(resolved: Sequence[Resolved], document_text: dict[str, str]) -> list[str]:
    """The quoted characters of resolved citations, from the documents' text."""
    return [document_text[r.doc_id][r.start : r.end] for r in resolved]
