"""Parallel calls the request enumerates: one call per listed value, without the model.

"The present value ... for 10, 20 and 30 years" asks for three calls that differ in one
argument; "the weather in Boston and San Francisco" for two. SmolLM2-135M writes one
call (``years`` 10); writing the others is mechanical: when a scalar argument's value
is one item of an enumeration in the request ("10, 20 and 30"; "Boston and San
Francisco"), the call is repeated with each other item in its place (`expanded`).

Items are numbers, or names (runs of capitalised words), separated by commas and
"and". An enumeration is not one of values when another of its items is already
another argument's value ("from New York and Los Angeles" with ``origin`` "New York"
and ``destination`` "Los Angeles"; a latitude and longitude "43.65, -79.38"), and
only the first argument (in the schema's order) found in one is expanded.
"""

from __future__ import annotations

import itertools
import re
import uuid
from typing import Any

from pilothouse.messages import ToolCall
from pilothouse.models.base import ToolSpec

__all__ = ["enumerations", "expanded"]

_SEP = r"(?:\s*,\s*(?:and\s+)?|\s+and\s+)"
_AND = re.compile(r"(?:,\s*|\s+)and\s+")
_NUMBER = r"-?\d+(?:\.\d+)?"
_WORD = r"(?!I\b)[A-Z][\w'-]*"
_NAME = rf"{_WORD}(?:\s+(?:of\s+|de\s+)?{_WORD})*"
_NUMBERS = re.compile(rf"(?<![\w.$-]){_NUMBER}(?:{_SEP}{_NUMBER})+(?!\w|\.\d)")
_NAMES = re.compile(rf"(?<!\w){_NAME}(?:{_SEP}{_NAME})+(?!\w)")
_MOST = 5
_MOST_CALLS = 8


def enumerations(text: str) -> list[list[str]]:
    """The enumerations of `text` (two to five numbers or names, the last joined by
    "and": "Seattle, Washington" is one place), each as its items."""
    out: list[list[str]] = []
    for pattern in (_NUMBERS, _NAMES):
        for m in pattern.finditer(text):
            if not _AND.search(m.group(0)):
                continue
            items = [i.strip().removesuffix("'s") for i in re.split(_SEP, m.group(0))]
            items = [i for i in items if i]
            if 2 <= len(items) <= _MOST and len(set(items)) == len(items):
                out.append(items)
    return out


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _typed(item: str, prop: dict[str, Any]) -> Any:
    kind = prop.get("type")
    if kind == "integer":
        return int(item) if re.fullmatch(r"-?\d+", item) else None
    if kind == "number":
        if not re.fullmatch(_NUMBER, item):
            return None
        return float(item) if "." in item else int(item)
    if kind == "string" and not any(k in prop for k in ("enum", "const", "pattern", "format")):
        return item
    return None


def expanded(call: ToolCall, spec: ToolSpec, text: str) -> list[ToolCall]:
    """`call`, and a copy for each other combination of the enumerations its arguments'
    values belong to: paired in order when the request says "respectively" (and the
    enumerations are as long), every combination otherwise ("Lakers and Bulls in 2018
    and 2020": four calls). Just `call` when no argument is enumerated."""
    properties: dict[str, Any] = (spec.parameters or {}).get("properties") or {}
    found = enumerations(text)
    values = {k: _text(v) for k, v in call.arguments.items()}
    listed: dict[str, list[Any]] = {}  # argument -> its values, the call's own first
    used: set[int] = set()
    for name, prop in properties.items():
        mine = values.get(name)
        if mine is None or not isinstance(prop, dict):
            continue
        for index, items in enumerate(found):
            if index in used or mine not in items:
                continue
            others = [i for i in items if i != mine]
            held = [v for k, v in values.items() if k != name and v]
            if any(o in v or v in o for v in held for o in others):
                continue  # another argument holds one of them: a pair, not a list
            typed = [_typed(i, prop) for i in others]
            if any(t is None for t in typed):
                continue
            listed[name] = [call.arguments[name], *typed]
            used.add(index)
            break
    if not listed:
        return [call]
    names = list(listed)
    lengths = {len(v) for v in listed.values()}
    if re.search(r"\brespectively\b", text, re.I) and len(lengths) == 1:
        combos = [dict(zip(names, row, strict=True)) for row in zip(*listed.values(), strict=True)]
    else:
        combos = [dict(zip(names, row, strict=True)) for row in itertools.product(*listed.values())]
    if len(combos) > _MOST_CALLS:
        return [call]
    out = [call]
    for combo in combos[1:]:
        out.append(
            ToolCall(f"call_{uuid.uuid4().hex[:12]}", call.name, {**call.arguments, **combo})
        )
    return out
