"""Arguments in the user's own words: request spans, enums from the request, optionals left out.

Measured on BFCL (tune cases), SmolLM2-135M's argument values drift from the request:
"2023" for "06-01-2023", ``pet_food`` for "pet food", "Xbox" (a tool's example) for
"Playstation", an optional ``price_range`` left out although the user said "cheap",
an optional argument filled with a made-up default. The functions here are pure
functions of the request and the tool's schema, applied between stages (so replaying
the recorded stage replies re-runs them exactly):

- `spans`: the request's word spans in its own form ("Legend of Zelda: Breath of the
  Wild", "05-12-2022", "R vs Adams"): what a re-asked string argument is held to
  (`span_schema`), instead of words the model strings together;
- `settle`: after the arguments are written, an enum parameter whose members the
  request names exactly one of gets that member; an optional argument the request does
  not support (a string with a word nobody said, a number nobody wrote, a flag or enum
  member not mentioned) is left out, so the tool's own default applies.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from pilothouse.models.base import ToolSpec
from pilothouse.tools.select import STOP_WORDS

__all__ = ["settle", "span_schema", "spans"]

_EDGE = "\"'`,.;:!?()[]{}"
_MAX_SPAN_WORDS = 8
_MAX_SPAN_CHARS = 80
_QUOTED = re.compile(r"(?<!\w)'([^']{1,80})'(?!\w)|\"([^\"]{1,80})\"|“([^”]{1,80})”")


def spans(text: str, limit: int = _MAX_SPAN_WORDS) -> list[str]:
    """Contiguous word spans of `text` in its own form, quoted strings first.

    Words are whitespace-separated; a span's outer punctuation is stripped, inner
    punctuation kept ("Zelda: Breath"). A span neither starts nor ends with a common
    function word ("of the Wild" is not one; "Legend of Zelda" is).
    """
    out: dict[str, None] = {}
    for m in _QUOTED.finditer(text):
        quoted = next(g for g in m.groups() if g is not None).strip()
        if quoted:
            out[quoted] = None
    tokens = text.split()
    for i in range(len(tokens)):
        for j in range(i + 1, min(len(tokens), i + limit) + 1):
            span = " ".join(tokens[i:j]).strip(_EDGE)
            if not span or len(span) > _MAX_SPAN_CHARS:
                continue
            first, last = span.split()[0].lower(), span.split()[-1].lower()
            if first.strip(_EDGE) in STOP_WORDS or last.strip(_EDGE) in STOP_WORDS:
                continue
            out[span] = None
    return list(out)


def span_schema(text: str) -> dict[str, Any] | None:
    """A string schema whose value is one of `text`'s `spans` (None: it has none)."""
    found = spans(text)
    return {"type": "string", "enum": found} if found else None


_TOKEN = re.compile(r"[a-z]+|[0-9]+(?:\.[0-9]+)?")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _mentions(text: str, phrase: str) -> bool:
    """Whether `text` holds `phrase` as words (case-insensitive, ``_`` read as a space)."""
    words = [re.escape(w) for w in re.split(r"[\s_\-]+", phrase.strip()) if w]
    if not words:
        return False
    pattern = r"(?<![A-Za-z0-9])" + r"[\s_\-]+".join(words) + r"(?![A-Za-z0-9])"
    return re.search(pattern, text, re.IGNORECASE) is not None


def _supported(value: Any, text: str, said: set[str], numbers: set[str]) -> bool:
    """Whether the request supports `value`: each string's words and each number in it."""
    if isinstance(value, bool):
        return False  # a flag is supported by its parameter's name, checked by the caller
    if isinstance(value, (int, float)):
        return _number_text(value) in numbers
    if isinstance(value, str):
        tokens = _tokens(value)
        return bool(tokens) and all(t in said or t in STOP_WORDS for t in tokens)
    if isinstance(value, list):
        return bool(value) and all(_supported(v, text, said, numbers) for v in value)
    if isinstance(value, dict):
        return bool(value) and all(_supported(v, text, said, numbers) for v in value.values())
    return False


def _request_numbers(text: str) -> set[str]:
    found = set()
    for raw in re.findall(r"[0-9]+(?:[.,][0-9]+)*", text):
        plain = raw.replace(",", "")
        found.add(plain)
        try:
            found.add(_number_text(float(plain)))
        except ValueError:
            continue
    return found


def settle(
    arguments: dict[str, Any], spec: ToolSpec, text: str
) -> tuple[dict[str, Any], list[str]]:
    """`arguments` with enums taken from `text` and unsupported optionals left out.

    `text` is what the user (and the agent's instructions) said. Returns the settled
    arguments and one line per change, for the stage's note. Required arguments other
    than enums are never changed: a value the request does not hold may still be right
    (a unit converted, a code looked up).
    """
    parameters = spec.parameters or {}
    properties: dict[str, Any] = parameters.get("properties") or {}
    required = set(parameters.get("required") or ())
    said = set(_tokens(text))
    numbers = _request_numbers(text)
    out = dict(arguments)
    changes: list[str] = []
    for name, prop in properties.items():
        if not isinstance(prop, dict):
            continue
        members = prop.get("enum")
        if isinstance(members, list) and all(isinstance(m, str) for m in members):
            named = [m for m in members if _mentions(text, m)]
            if len(named) == 1 and out.get(name) != named[0]:
                changes.append(f"{name}: {named[0]!r}, the member the request names")
                out[name] = named[0]
                continue
            if not named and name not in required and name in out:
                changes.append(f"{name} left out: the request names none of its members")
                del out[name]
            continue
        if name in required or name not in out:
            continue
        value = out[name]
        if isinstance(value, bool):
            supported = any(_mentions(text, w) for w in re.split(r"[_\W]+", name) if len(w) > 2)
        else:
            supported = _supported(value, text, said, numbers)
        if not supported:
            changes.append(f"{name} left out: the request does not say {json.dumps(value)[:60]}")
            del out[name]
    return out, changes


def free_strings(spec: ToolSpec, names: Sequence[str] | None = None) -> list[str]:
    """The parameters a span can fill: strings (or arrays of strings) without enum,
    const, format or pattern; all of them, or those among `names`."""
    properties: dict[str, Any] = (spec.parameters or {}).get("properties") or {}
    out = []
    for name, prop in properties.items():
        if names is not None and name not in names:
            continue
        if not isinstance(prop, dict):
            continue
        target = prop.get("items") if prop.get("type") == "array" else prop
        if not isinstance(target, dict) or target.get("type") != "string":
            continue
        if any(k in target for k in ("enum", "const", "format", "pattern")):
            continue
        out.append(name)
    return out
