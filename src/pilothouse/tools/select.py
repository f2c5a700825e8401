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

`ToolIndex(tools, embedder=...)` also ranks by embeddings (any `Embedder`, e.g.
`pilothouse.knowledge.WordLlama`, the model shipped in the `embeddings` extra's wheel):
a tool's vector is its name and description's plus 0.3 times the best-matching
parameter description's, and "hybrid" (the default with an embedder) fuses the BM25 and
vector rankings by weighted reciprocal rank, then re-ranks the top of the fusion by how
much of the query each tool's name holds. Without an embedder nothing changes.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from pilothouse.models.base import ToolSpec

__all__ = [
    "STOP_WORDS",
    "Embedder",
    "ToolIndex",
    "bm25",
    "rank_texts",
    "rank_tools",
    "select_tools",
    "similarities",
    "tool_text",
    "words",
]

_STOP_TEXT = """a an and are as at be by can could do does did for from has have how i if in
into is it its me my of on or our please should so than that the their them then there
these this those to us was we were what when where which who whom why will with would
you your yours tell give get"""
STOP_WORDS = frozenset(_STOP_TEXT.split())
"""Words too common to say anything about which tool fits (English only)."""


@runtime_checkable
class Embedder(Protocol):
    """An embedding model as tool and knowledge retrieval use it (implemented by
    `pilothouse.knowledge.WordLlama`): `embed` returns an ``(n, dim)`` float32 numpy
    array of unit rows; `fingerprint` names model, dimension and pooling."""

    name: str
    dim: int

    def fingerprint(self) -> str: ...

    def embed(self, texts: Sequence[str]) -> Any: ...


ToolRanking = Literal["bm25", "vector", "hybrid"]
PARAMETER_WEIGHT = 0.3
"""How much a tool's best-matching parameter description adds to its vector score
(chosen on the tune queries of benchmarks/tool_retrieval.py: 0, 0.3, 0.5 tried)."""
FUSION_K = 60  # reciprocal rank fusion's constant (Cormack et al., 2009)
FUSION_DEPTH = 50  # how deep each ranking is read before fusing
LEXICAL_WEIGHT = 0.5
"""BM25's weight in the hybrid fusion, the vector ranking's being 1 (chosen on the tune
queries of benchmarks/tool_retrieval.py: 0.25-1 tried; 0.5 raised MRR at every size and
kept recall@5, the vector ranking being the stronger one alone)."""
RERANK_DEPTH = 20  # how many fused tools the name re-rank reorders
NAME_BONUS = 0.05
"""The name re-rank: each of the top `RERANK_DEPTH` fused tools scores
``1/(FUSION_K + position) + NAME_BONUS * coverage / FUSION_K``, coverage being the share of
the query's content words found in the tool's name (chosen on tune: 0.05-0.4 tried)."""


_BLOCK = 512  # rows per matrix-vector product (see `similarities`)


def similarities(matrix: Any, vector: Any) -> Any:
    """``matrix @ vector`` in blocks of 512 rows.

    A product this small takes ~0.1 ms on one core, but past a size threshold OpenBLAS
    hands it to its thread pool, and on a busy 2-core machine waking those threads cost
    5-15 ms per query (measured: 2,524 x 256 went from 0.11 ms to 5.2 ms). Blocks stay
    under the threshold, so each query costs what its arithmetic costs."""
    import numpy as np

    if len(matrix) <= _BLOCK:
        return matrix @ vector
    return np.concatenate([matrix[i : i + _BLOCK] @ vector for i in range(0, len(matrix), _BLOCK)])


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


def _name_text(name: str) -> str:
    return name.replace("_", " ").replace("-", " ")


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

    __slots__ = (
        "_average",
        "_frequency",
        "_heads",
        "_lengths",
        "_names",
        "_owners",
        "_parameters",
        "_postings",
        "b",
        "embedder",
        "k1",
        "ranking",
        "specs",
    )

    def __init__(
        self,
        tools: Sequence[ToolSpec],
        *,
        k1: float = 1.2,
        b: float = 0.75,
        embedder: Embedder | None = None,
        ranking: ToolRanking | None = None,
    ) -> None:
        self.specs = list(tools)
        self.k1 = k1
        self.b = b
        self.embedder = embedder
        self.ranking: ToolRanking = ranking or ("hybrid" if embedder else "bm25")
        if self.ranking not in ("bm25", "vector", "hybrid"):
            raise ValueError(f"ranking must be bm25, vector or hybrid, not {self.ranking!r}")
        if self.ranking != "bm25" and embedder is None:
            raise ValueError(f"ranking {self.ranking!r} needs an embedder")
        self._heads: Any = None
        self._parameters: Any = None
        self._owners: Any = None
        if embedder is not None:
            self._embed_tools(embedder)
        postings: dict[str, list[tuple[int, int]]] = {}
        self._lengths: list[int] = []
        for i, spec in enumerate(self.specs):
            counts = Counter(words(tool_text(spec)))
            counts.update(words(spec.name.replace("_", " ")))
            self._lengths.append(sum(counts.values()))
            for word, tf in counts.items():
                postings.setdefault(word, []).append((i, tf))
        self._postings = postings
        self._names = [frozenset(words(_name_text(s.name))) for s in self.specs]
        self._frequency = {w: len(p) for w, p in postings.items()}
        self._average = (sum(self._lengths) / len(self._lengths) if self._lengths else 0.0) or 1.0

    def __len__(self) -> int:
        return len(self.specs)

    def _embed_tools(self, embedder: Embedder) -> None:
        """A vector per tool (name and description) and per parameter description."""
        import numpy as np

        heads = [f"{s.name.replace('_', ' ')}. {s.description}" for s in self.specs]
        owners: list[int] = []
        texts: list[str] = []
        for i, spec in enumerate(self.specs):
            properties = (spec.parameters or {}).get("properties") or {}
            for name, prop in properties.items():
                if isinstance(prop, dict) and isinstance(prop.get("description"), str):
                    owners.append(i)
                    texts.append(f"{str(name).replace('_', ' ')}: {prop['description']}")
        self._heads = embedder.embed(heads) if heads else np.zeros((0, embedder.dim), "f4")
        self._parameters = embedder.embed(texts) if texts else np.zeros((0, embedder.dim), "f4")
        self._owners = np.asarray(owners, dtype=np.int64)

    def vector_scores(self, query: str) -> Any:
        """Each tool's similarity with `query` (a numpy array in tool order): the cosine
        with its name and description, plus `PARAMETER_WEIGHT` times its best positive
        parameter cosine."""
        import numpy as np

        if self.embedder is None:
            raise ValueError("this tool index has no embedder")
        q = self.embedder.embed([query])[0]
        scores = similarities(self._heads, q)
        if len(self._owners):
            best = np.zeros(len(self.specs), dtype=np.float32)
            np.maximum.at(best, self._owners, similarities(self._parameters, q))
            scores = scores + PARAMETER_WEIGHT * best
        return scores

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

    def search(
        self, query: str, limit: int = 5, *, ranking: ToolRanking | None = None
    ) -> list[tuple[ToolSpec, float]]:
        """The (at most `limit`) best tools for `query`, best first, with scores; ties
        keep list order, as in `rank_tools`. "bm25" (the default without an embedder)
        returns only tools that match at all; "vector" and "hybrid" rank every tool."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        mode = ranking or self.ranking
        if mode != "bm25" and self.embedder is None:
            raise ValueError(f"ranking {mode!r} needs an embedder")
        if mode == "bm25":
            return [(self.specs[i], s) for i, s in self._lexical(query)[:limit]]
        nearest = self._nearest(query, max(limit, FUSION_DEPTH) if mode == "hybrid" else limit)
        if mode == "vector":
            return [(self.specs[i], s) for i, s in nearest]
        lexical = [i for i, _ in self._lexical(query)[: max(limit, FUSION_DEPTH)]]
        fused: dict[int, float] = {}
        for weight, ranked in ((LEXICAL_WEIGHT, lexical), (1.0, [i for i, _ in nearest])):
            for rank, i in enumerate(ranked, 1):
                fused[i] = fused.get(i, 0.0) + weight / (FUSION_K + rank)
        order = sorted(fused.items(), key=lambda pair: (-pair[1], pair[0]))
        return [(self.specs[i], s) for i, s in self._rerank(query, order)[:limit]]

    def _rerank(self, query: str, order: list[tuple[int, float]]) -> list[tuple[int, float]]:
        """A fused ranking rescored by position, its top `RERANK_DEPTH` plus how much of
        the query the tool's name covers (a name is the most specific thing a tool says
        about itself; near-duplicates across APIs differ mostly there)."""
        asked = set(words(query))
        out: list[tuple[int, float]] = []
        for position, (i, _) in enumerate(order, 1):
            score = 1.0 / (FUSION_K + position)
            if position <= RERANK_DEPTH and asked:
                score += NAME_BONUS * len(asked & self._names[i]) / len(asked) / FUSION_K
            out.append((i, score))
        out.sort(key=lambda pair: -pair[1])  # stable: equal scores keep the fused order
        return out

    def _lexical(self, query: str) -> list[tuple[int, float]]:
        return sorted(self.scores(query).items(), key=lambda pair: (-pair[1], pair[0]))

    def _nearest(self, query: str, n: int) -> list[tuple[int, float]]:
        import numpy as np

        if not self.specs or not query.strip():
            return []
        scores = self.vector_scores(query)
        if n < len(scores):  # the n best (and any tied with the n-th), then sorted
            floor = np.partition(scores, len(scores) - n)[len(scores) - n]
            candidates = np.flatnonzero(scores >= floor)
        else:
            candidates = np.arange(len(scores))
        order = sorted(candidates.tolist(), key=lambda i: (-float(scores[i]), i))[:n]
        return [(i, float(scores[i])) for i in order]  # ties keep list order
