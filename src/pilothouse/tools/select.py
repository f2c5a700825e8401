"""Deterministic pre-selection of tools: rank tool specs by lexical match with a request.

A small model chooses better among two or three tools than among twenty, and a
lexical ranking costs microseconds and is reproducible. Each tool is a document
made of its name (split at ``_``, ``-`` and camelCase), its description, its
parameter names and their descriptions; a request is scored against every
document with Okapi BM25 (the function of SQLite's FTS5 ``bm25()``, written here
in a few lines so no index has to be kept in sync with a changing tool list).

    ranked = rank_tools("What time is it in Tokyo?", specs)   # [(spec, score), ...]
    chosen = select_tools("What time is it in Tokyo?", specs, limit=3)

Used by the guided layer (`pilothouse.guided`) to restrict a small model's choice;
any agent may use it to shorten the tool list it sends.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from pilothouse.models.base import ToolSpec

__all__ = [
    "STOP_WORDS",
    "ToolIndex",
    "bm25",
    "rank_texts",
    "rank_tools",
    "select_tools",
    "tool_text",
    "words",
]

_STOP_TEXT = """a an and are as at be by can could do does did for from has have how i if in
into is it its me my of on or our please should so than that the their them then there
these this those to us was we were what when where which who whom why will with would
you your yours tell give get"""
STOP_WORDS = frozenset(_STOP_TEXT.split())
"""Words too common to say anything about which tool fits (English only)."""


def _stem(word: str) -> str:
    """A light suffix strip so that "orders"/"order" and "converted"/"convert" meet."""
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith(("ss", "us", "is")):
                return word
            return word[: len(word) - len(suffix)] + keep
    return word


def words(text: str) -> list[str]:
    """Lower-case, stemmed content words of `text`; identifiers are split into words.

    Numbers are left out: "37" in a request says nothing about which tool fits, and
    a number in a tool's example would otherwise pull every arithmetic question.
    """
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text)
    out: list[str] = []
    for token in re.findall(r"[A-Za-z]+", spaced):
        lowered = token.lower()
        if lowered in STOP_WORDS or len(lowered) < 2:
            continue
        out.append(_stem(lowered))
    return out


def _parameter_text(schema: dict[str, Any]) -> Iterable[str]:
    properties: dict[str, Any] = schema.get("properties") or {}
    for name, prop in properties.items():
        yield name
        if isinstance(prop, dict) and isinstance(prop.get("description"), str):
            yield prop["description"]


def tool_text(spec: ToolSpec) -> str:
    """What a tool is matched on: name, description, parameter names and descriptions."""
    name = spec.name.replace("_", " ").replace("-", " ")
    return " ".join([name, spec.description, *_parameter_text(spec.parameters or {})])


def bm25(
    query: str, documents: Sequence[Counter[str]], *, k1: float = 1.2, b: float = 0.75
) -> list[float]:
    """Okapi BM25 score of `query` against each document (a bag of `words`).

    0 means no content word of the query occurs in that document.
    """
    n = len(documents)
    if not n:
        return []
    lengths = [sum(d.values()) for d in documents]
    average = sum(lengths) / n or 1.0
    asked = set(words(query))
    frequency = {w: sum(1 for d in documents if w in d) for w in asked}
    scores: list[float] = []
    for counts, length in zip(documents, lengths, strict=True):
        score = 0.0
        for w in asked:
            tf = counts.get(w, 0)
            if not tf:
                continue
            idf = math.log(1.0 + (n - frequency[w] + 0.5) / (frequency[w] + 0.5))
            score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / average))
        scores.append(score)
    return scores


def rank_texts(query: str, texts: Sequence[str]) -> list[tuple[int, float]]:
    """(index, BM25 score) of every text against `query`, best first (ties keep order)."""
    scores = bm25(query, [Counter(words(t)) for t in texts])
    return sorted(enumerate(scores), key=lambda pair: -pair[1])


def rank_tools(query: str, tools: Sequence[ToolSpec]) -> list[tuple[ToolSpec, float]]:
    """Every tool with its BM25 score against `query`, best first (ties keep list order).

    A score of 0 means no content word of the query occurs in the tool's text.
    Words of the tool's name count twice: a name is the most specific thing a tool
    says about itself.
    """
    docs: list[Counter[str]] = []
    for spec in tools:
        counts = Counter(words(tool_text(spec)))
        counts.update(words(spec.name.replace("_", " ")))
        docs.append(counts)
    scores = bm25(query, docs)
    order = sorted(range(len(docs)), key=lambda i: -scores[i])
    return [(tools[i], scores[i]) for i in order]


def select_tools(query: str, tools: Sequence[ToolSpec], limit: int = 3) -> list[ToolSpec]:
    """The (at most `limit`) tools that match `query` at all, best first; [] if none does."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    return [spec for spec, score in rank_tools(query, tools) if score > 0][:limit]


class ToolIndex:
    """`rank_tools` over a fixed tool list, with the documents counted once.

    `rank_tools` counts every tool's words on each query (fine for the dozen tools a
    guided step sees); with hundreds of tools that is most of the cost, so this index
    keeps the bags, lengths and document frequencies, and an inverted list per word
    so a query touches only the tools that share a word with it. The scores are the
    same function as `rank_tools` (same `words`, same BM25, name words counted
    twice), so a ranking never depends on which of the two made it.
    """

    __slots__ = ("_average", "_frequency", "_lengths", "_postings", "b", "k1", "specs")

    def __init__(self, tools: Sequence[ToolSpec], *, k1: float = 1.2, b: float = 0.75) -> None:
        self.specs = list(tools)
        self.k1 = k1
        self.b = b
        postings: dict[str, list[tuple[int, int]]] = {}
        self._lengths: list[int] = []
        for i, spec in enumerate(self.specs):
            counts = Counter(words(tool_text(spec)))
            counts.update(words(spec.name.replace("_", " ")))
            self._lengths.append(sum(counts.values()))
            for word, tf in counts.items():
                postings.setdefault(word, []).append((i, tf))
        self._postings = postings
        self._frequency = {w: len(p) for w, p in postings.items()}
        self._average = (sum(self._lengths) / len(self._lengths) if self._lengths else 0.0) or 1.0

    def __len__(self) -> int:
        return len(self.specs)

    def scores(self, query: str) -> dict[int, float]:
        """BM25 score of `query` for each tool sharing a word with it (the rest score 0)."""
        n = len(self.specs)
        k1, b, average = self.k1, self.b, self._average
        out: dict[int, float] = {}
        for w in set(words(query)):
            posting = self._postings.get(w)
            if posting is None:
                continue
            f = self._frequency[w]
            idf = math.log(1.0 + (n - f + 0.5) / (f + 0.5))
            for i, tf in posting:
                length = self._lengths[i]
                gain = idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / average))
                out[i] = out.get(i, 0.0) + gain
        return out

    def search(self, query: str, limit: int = 5) -> list[tuple[ToolSpec, float]]:
        """The (at most `limit`) tools that match `query` at all, best first, with scores;
        ties keep list order, as in `rank_tools`."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        scored = sorted(self.scores(query).items(), key=lambda pair: (-pair[1], pair[0]))
        return [(self.specs[i], s) for i, s in scored[:limit]]
