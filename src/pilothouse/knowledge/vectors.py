"""Vectors beside the chunks, searched with numpy, and the fusion of two rankings.

A store keeps one float32 vector per chunk (little-endian bytes in a BLOB/BYTEA column
next to the chunk's row). `VectorCache` holds them as one matrix in memory, read again
only when the index's generation changes (every ingest or removal counts it up), so a
search is one matrix-vector product and a partial sort: ~1-3 ms for 6,500 chunks.

`fuse` is reciprocal rank fusion (Cormack et al., 2009): each ranking gives an item
``weight / (k + rank)`` and the sums decide. It needs no calibration between BM25 scores
and cosine similarities (which live on different scales), only the ranks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pilothouse.exceptions import ConfigurationError, IndexMismatchError
from pilothouse.tools.select import similarities

if TYPE_CHECKING:
    from .embed import Vectors
else:
    Vectors = Any

__all__ = ["RANKINGS", "Ranking", "VectorCache", "check_ranking", "from_blob", "fuse", "to_blob"]

Ranking = Literal["bm25", "vector", "hybrid"]
RANKINGS: tuple[Ranking, ...] = ("bm25", "vector", "hybrid")
RRF_K = 60  # the constant of the original paper; tune-set checks in docs/knowledge.md
FUSION_DEPTH = 50  # how deep each ranking is read before fusing

K = TypeVar("K", bound=Hashable)


def check_ranking(ranking: str, has_embedder: bool) -> Ranking:
    """`ranking` if valid with or without an embedder, else a clear error."""
    if ranking not in RANKINGS:
        raise ConfigurationError(f"ranking must be one of {RANKINGS}, not {ranking!r}")
    if ranking != "bm25" and not has_embedder:
        raise ConfigurationError(
            f"ranking {ranking!r} needs an embedder: open the knowledge base with "
            "embedder=WordLlama() (pip install 'pilothouse[embeddings]')"
        )
    return ranking


def to_blob(vector: Vectors) -> bytes:
    import numpy as np

    return np.asarray(vector, dtype="<f4").tobytes()


def from_blob(blob: bytes, dim: int) -> Vectors:
    import numpy as np

    return np.frombuffer(blob, dtype="<f4").reshape(-1, dim)


def fuse(rankings: Iterable[Sequence[K]], *, k: int = RRF_K) -> list[tuple[K, float]]:
    """Reciprocal rank fusion: every item of every ranking, best first, with its fused
    score; ties are broken by the first ranking that placed the item (then its rank)."""
    scores: dict[K, float] = {}
    first: dict[K, tuple[int, int]] = {}
    for which, ranking in enumerate(rankings):
        for rank, item in enumerate(ranking, 1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
            first.setdefault(item, (which, rank))
    return sorted(scores.items(), key=lambda pair: (-pair[1], first[pair[0]]))


class VectorCache:
    """A store's vectors as one matrix, reloaded when its generation changes.

    `load(generation)` is called with the store's current generation and must return
    the keys and the matrix; the caller holds the store's lock around both calls.
    """

    def __init__(self, dim: int, where: str) -> None:
        self.dim = dim
        self.where = where
        self._lock = threading.Lock()
        self._generation: str | None = None
        self._keys: list[Any] = []
        self._matrix: Vectors | None = None

    def invalidate(self) -> None:
        with self._lock:
            self._generation = None

    def top(
        self,
        query: Vectors,
        n: int,
        generation: str,
        load: Callable[[], tuple[list[Any], list[bytes]]],
    ) -> list[tuple[Any, float]]:
        """The `n` keys whose vectors are closest to `query` (cosine), best first; ties
        by key, so the order never depends on the storage order."""
        import numpy as np

        with self._lock:
            if generation != self._generation or self._matrix is None:
                keys, blobs = load()
                bad = [len(b) for b in blobs if len(b) != 4 * self.dim]
                if bad:
                    raise IndexMismatchError(
                        f"the vectors in {self.where} have {bad[0] // 4} dimensions, not "
                        f"{self.dim}: reindex with reindex=True"
                    )
                self._matrix = (
                    from_blob(b"".join(blobs), self.dim)
                    if blobs
                    else np.zeros((0, self.dim), dtype=np.float32)
                )
                self._keys = keys
                self._generation = generation
            matrix, keys = self._matrix, self._keys
        if not len(keys):
            return []
        scores = similarities(matrix, np.asarray(query, dtype=np.float32).reshape(-1))
        n = min(n, len(keys))
        part = np.argpartition(-scores, n - 1)[:n] if n < len(keys) else np.arange(len(keys))
        ranked = sorted(part.tolist(), key=lambda i: (-float(scores[i]), keys[i]))
        return [(keys[i], float(scores[i])) for i in ranked]


def mismatches(
    recorded_chunking: str, wanted_chunking: str, recorded_embedder: str, wanted_embedder: str
) -> list[str]:
    """What differs between an index's recorded settings and the ones asked for, in
    words for `IndexMismatchError`."""
    out = []
    if recorded_chunking != wanted_chunking:
        out.append(f"chunking {recorded_chunking} (asked for: {wanted_chunking})")
    if recorded_embedder != wanted_embedder:
        out.append(f"the embedder {recorded_embedder} (asked for: {wanted_embedder})")
    return out


__all__ += ["FUSION_DEPTH", "RRF_K", "mismatches"]
