"""Text embeddings from a model shipped inside a PyPI package: nothing is fetched at run time.

`WordLlama` reads the token-embedding table (32,000 x 256, float32, 16 MB) and the
tokenizer that the `wordllama` wheel (MIT, the `embeddings` extra) installs beside its
code, and embeds a text as the mean of its tokens' rows, L2-normalised: what the
package's own `embed` computes, without importing the package (its loader looks for the
tokenizer in a folder the wheel does not have and would fall back to a download, and its
import configures the root logger). The files are located with `importlib.util.find_spec`,
which reads no code and opens no socket.

An embedder is anything with `name`, `dim`, `fingerprint()` and `embed(texts)` returning
an ``(n, dim)`` float32 array of unit rows (`Embedder`, defined beside the tool index in
`pilothouse.tools.select`, which ranks tools with one too). A knowledge base records the
fingerprint in its index and refuses another (`IndexMismatchError`, saying how to
reindex), so vectors made by two models never meet in one ranking.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pilothouse.exceptions import ConfigurationError, KnowledgeError
from pilothouse.tools.select import Embedder

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vectors = npt.NDArray[np.float32]
else:
    Vectors = Any

__all__ = ["MAX_EMBED_CHARS", "Embedder", "WordLlama", "embeddings_available"]

MAX_EMBED_CHARS = 20_000
"""Characters of one text that are embedded: bounded work for any input (a chunk is
1,200 by default; a query is cut well before this)."""

_WEIGHTS = ("weights", "l2_supercat_256.safetensors")
_TOKENIZER = ("tokenizers", "l2_supercat_tokenizer_config.json")
_DIMS = (64, 128, 256)  # the table's leading dimensions are trained to stand alone


def embeddings_available() -> bool:
    """Whether the `embeddings` extra is installed (the wheel's files are present)."""
    try:
        _files()
    except KnowledgeError:
        return False
    return True


def _files() -> tuple[Path, Path]:
    spec = importlib.util.find_spec("wordllama")
    roots = list(spec.submodule_search_locations or []) if spec else []
    for root in map(Path, roots):
        weights, tokenizer = root.joinpath(*_WEIGHTS), root.joinpath(*_TOKENIZER)
        if weights.is_file() and tokenizer.is_file():
            return weights, tokenizer
    raise KnowledgeError(
        "embeddings need the wordllama package's model files: pip install 'pilothouse[embeddings]'"
    )


@lru_cache(maxsize=1)
def _table() -> tuple[Vectors, Any]:
    """The embedding table and tokenizer, read once per process (0.2-0.3 s)."""
    try:
        import numpy as np
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer
    except ImportError:
        raise KnowledgeError(
            "embeddings need numpy, safetensors and tokenizers: pip install "
            "'pilothouse[embeddings]'"
        ) from None
    weights, tokenizer_file = _files()
    table = np.ascontiguousarray(load_file(str(weights))["embedding.weight"], dtype=np.float32)
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return table, tokenizer


class WordLlama:
    """WordLlama's `l2_supercat` table as an `Embedder` (see the module).

    `dim` 64, 128 or 256 keeps that many leading dimensions (the model was trained so
    they stand alone); a smaller one is faster and a little worse.
    """

    def __init__(self, dim: int = 256) -> None:
        if dim not in _DIMS:
            raise ConfigurationError(f"WordLlama dim must be one of {_DIMS}, not {dim}")
        self.dim = dim
        self.name = f"wordllama-l2_supercat-{dim}"
        self._lock = threading.Lock()
        table, self._tokenizer = _table()
        self._table = table[:, :dim]

    def fingerprint(self) -> str:
        return json.dumps(
            {"embedder": "wordllama", "model": "l2_supercat", "dim": self.dim, "pool": "mean"},
            sort_keys=True,
        )

    def embed(self, texts: Sequence[str]) -> Vectors:
        import numpy as np

        # bounded, and lone surrogates (which the tokenizer refuses) replaced
        texts = [t[:MAX_EMBED_CHARS].encode("utf-8", "replace").decode("utf-8") for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        with self._lock:  # one tokenizer, shared by every thread of the process
            encoded = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        for row, enc in enumerate(encoded):
            ids = np.asarray(enc.ids, dtype=np.int64)
            if ids.size:
                np.clip(ids, 0, self._table.shape[0] - 1, out=ids)
                out[row] = self._table[ids].mean(axis=0, dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        out /= norms
        return out

    def __repr__(self) -> str:
        return f"WordLlama(dim={self.dim})"
