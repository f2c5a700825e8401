"""Schema-anchored readings: the offered tools' names and parameter names as anchors.

When a call's envelope is garbled, the markup alone cannot say what was meant, but the
request can: the model was offered a handful of tools, each with named parameters. A
word in the broken opener that is exactly an offered tool's name, followed by parameter
tags whose every name is one of that tool's parameters, is that call; a ``NAME[ARGS]``
whose name is an offered tool's is a Mistral call even without its ``[TOOL_CALLS]``
token; and an object whose keys are exactly the tool's parameter names can be split at
those keys when its strings hold unescaped quotes. Every reading here needs the anchors
to agree (one tool name, every parameter that tool's), so prose that merely mentions a
tool, or markup naming no offered tool, stays as it was: the other readers and the
"markup is never an answer" gate decide it.

Origins (parse corpus `session14.jsonl`, `tune14`): Qwen3.8 opening a call with
``<parameter=bash>`` where ``<function=bash>`` belongs (antirez/ds4#1050), a
``/v1/messages`` bridge streaming ``<name>task\\n</parameter>`` as the opener
(signalnine/q27#24); mlx-lm's Mistral tool state accumulating
``get_weather[ARGS]{...}[TOOL_CALLS]get_weather[ARGS]{...}`` with the first token
consumed (ml-explore/mlx-lm#1448); Hermes Agent's ``write_file`` arguments with
source code's quotes left unescaped (NousResearch/hermes-agent#36271). Work is linear
in the text and capped at `MAX_CALLS` calls and parameters.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pilothouse.actions import repair
from pilothouse.actions.base import Resolver

Envelope = tuple[Any, Any]
MAX_CALLS = 64
_MAX_TEXT = 200_000  # longer texts are not read here: bounded work

_PARAM_TAG = re.compile(r"<parameter=([^>\n]{1,200})>")
_PARAM = re.compile(
    r"<parameter=([^>\n]{1,200})>\n?(.*?)\n?(?:</parameter>|(?=<parameter=)|\Z)", re.S
)
_WORD = re.compile(r"[A-Za-z_][\w.\-]{0,80}")
# the words of the call's own structure, which a garbled opener may keep around the name
_STRUCTURE = frozenset({"tool_call", "function", "parameter", "name", "invoke", "call"})


def _typed(value: str, prop: Any) -> Any:
    """A parameter written as text, typed by its schema entry (JSON for non-strings)."""
    kind = prop.get("type") if isinstance(prop, dict) else None
    if kind in (None, "string"):
        return value
    loaded = repair.loads(value)
    return loaded.value if loaded is not None else value


def garbled_qwen_call(text: str, r: Resolver) -> list[Envelope] | str | None:
    """A Qwen3-Coder call (``<parameter=KEY>value</parameter>`` ... ``</function>``)
    whose ``<function=NAME>`` opener is garbled or missing, read when the opener region
    holds exactly one word besides the structure's own (`_STRUCTURE`), that word is an
    offered tool's name (``<parameter=bash>``, ``<name>task``, ``<read>``), and every
    other parameter tag names one of that tool's parameters. A last parameter that never
    closes (the reply was cut) is refused; anything else is not this syntax (`None`)."""
    if len(text) > _MAX_TEXT or "</function>" not in text:
        return None
    start = text.rfind("<tool_call>", 0, text.find("<parameter="))
    head_from = 0 if start < 0 else start + len("<tool_call>")
    tags = list(_PARAM_TAG.finditer(text, head_from))[: MAX_CALLS + 1]
    first_param = next((m for m in tags if m.group(1).strip() not in r.tools), None)
    if first_param is None:
        return None
    head = text[head_from : first_param.start()]
    if start < 0 and "<" not in head:
        return None  # prose before the parameters, no broken opener: not this syntax
    words = [w for w in _WORD.findall(head) if w not in _STRUCTURE]
    if len(words) != 1 or words[0] not in r.tools:
        return None
    tool = words[0]
    props = r.params(tool)
    body = text[first_param.start() : text.find("</function>", first_param.start())]
    args: dict[str, Any] = {}
    for m in _PARAM.finditer(body):
        key = m.group(1).strip()
        if props and key not in props:
            return None  # a parameter the tool does not have: the anchors disagree
        args[key] = _typed(m.group(2), props.get(key))
        if len(args) > MAX_CALLS:
            return None
    if not args:
        return None
    if not body.rstrip().endswith("</parameter>"):
        return f"the last parameter of {tool!r} never closes"
    return [(tool, args)]


_ARGS_CALL = re.compile(r"\s*(?:\[TOOL_CALLS\]\s*)?([A-Za-z_][\w.\-]{0,80})\s*\[ARGS\]\s*")


def args_calls(text: str, r: Resolver, pos: int = 0) -> tuple[list[Envelope], int] | None:
    """Mistral ``NAME[ARGS]{json}`` calls from `pos` on, one after another, each named
    for an offered tool, the ``[TOOL_CALLS]`` token before each optional (mlx-lm's tool
    state keeps the text after the first one, ml-explore/mlx-lm#1448). The calls read
    and where the last one ends; `None` when the text at `pos` is not such a call. A
    call whose JSON does not close is not read (the caller refuses the reply)."""
    out: list[Envelope] = []
    while len(out) < MAX_CALLS:
        m = _ARGS_CALL.match(text, pos)
        if m is None or m.group(1) not in r.tools:
            break
        got = repair.first_value(text[m.end() :])
        if got is None or "closed_missing_bracket" in got[0].repairs:
            return None
        out.append((m.group(1), got[0].value))
        pos = m.end() + got[1]
    return (out, pos) if out else None


def leading_args_calls(text: str, r: Resolver) -> list[Envelope] | None:
    """The ``NAME[ARGS]{json}`` calls a reply opens with, without a ``[TOOL_CALLS]``
    token before the first (see `args_calls`); prose may follow the last one."""
    if len(text) > _MAX_TEXT or "[ARGS]" not in text:
        return None
    got = args_calls(text, r)
    return got[0] if got is not None else None


def keyed_object(text: str, keys: Any) -> dict[str, Any] | None:
    """An object whose keys are exactly named parameters, split at those keys when its
    strings hold unescaped double quotes (``{"path": "a.py", "content":
    "env.get("KEY", "default")"}``, NousResearch/hermes-agent#36271): each ``"KEY":``
    must occur once, the keys in the text must all be parameters, the first must open
    the object and each later one must follow a comma; a value between two keys (or the
    last key and the closing brace) is a string when it is quoted at both ends, else
    JSON. `None` when the object is not that shape: no guess is made."""
    stripped = text.strip()
    if len(stripped) > _MAX_TEXT or not (stripped.startswith("{") and stripped.endswith("}")):
        return None
    names = [k for k in keys if isinstance(k, str) and k][:MAX_CALLS]
    found: list[tuple[int, int, str]] = []
    for key in names:
        anchor = re.compile(r'"' + re.escape(key) + r'"\s*:\s*')
        hits = list(anchor.finditer(stripped))
        if len(hits) > 1:
            return None
        if hits:
            found.append((hits[0].start(), hits[0].end(), key))
    if not found:
        return None
    found.sort()
    if stripped[1 : found[0][0]].strip():
        return None  # something other than a parameter opens the object
    out: dict[str, Any] = {}
    for i, (_, value_at, key) in enumerate(found):
        end = found[i + 1][0] if i + 1 < len(found) else len(stripped) - 1
        region = stripped[value_at:end].rstrip()
        if i + 1 < len(found):
            if not region.endswith(","):
                return None
            region = region[:-1].rstrip()
        value = _value(region)
        if value is _NOT:
            return None
        out[key] = value
    return out


_NOT = object()


def _value(region: str) -> Any:
    """One value's text: JSON when it parses, else a string quoted at both ends whose
    inner unescaped quotes are the string's own characters."""
    try:
        return json.loads(region)
    except ValueError:
        pass
    if len(region) < 2 or region[0] != '"' or region[-1] != '"':
        return _NOT
    inner = re.sub(r'(?<!\\)((?:\\\\)*)"', r'\1\\"', region[1:-1])
    try:
        return json.loads('"' + inner + '"')
    except ValueError:
        return _NOT
