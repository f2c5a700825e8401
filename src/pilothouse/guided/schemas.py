"""The JSON schemas each guided stage holds a reply to.

A reply is one JSON object: ``{"tool": <name>, "arguments": {...}}`` (a call),
``{"tool": <name>}`` (a choice, arguments asked next) or ``{"answer": ...}``. The
alternatives are written as JSON schemas (``oneOf``; a call's ``arguments`` is that
tool's own parameter schema), which a model that can constrain its output enforces
(llama.cpp turns them into a grammar; an OpenAI-compatible server takes them as
``response_format``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pilothouse.models.base import ToolSpec

__all__ = ["answer_schema", "choice_schema", "reply_schema"]


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
