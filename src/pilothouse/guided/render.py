"""How a conversation with tools is shown to a model that only reads and writes text.

The guided layer sends its inner model plain chat turns (system, user, assistant):
the offered tools and the reply forms join the first system message (`TOOL_PROMPT`),
earlier tool calls are shown as the JSON object the grammar makes the model write,
tool results become user turns (`TOOL_RESULT_PROMPT`), and earlier answers are shown
as ``{"answer": ...}`` so the model sees its own reply format throughout. Every text
here is a template the caller can replace; nothing is hidden from ``render``.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Sequence
from string import Template
from typing import Any

from pilothouse.messages import Message, ToolCall
from pilothouse.models.base import ModelRequest, ToolSpec
from pilothouse.prompts import Prompts

__all__ = [
    "TOOL_PROMPT",
    "TOOL_RESULT_PROMPT",
    "describe_tool",
    "described_examples",
    "readable_result",
    "reply_forms",
    "reply_json",
    "text_messages",
    "tool_examples",
    "tool_section",
]

TOOL_PROMPT = Prompts.default().text("guided_tools")
"""The system-prompt section that tells the model about tools: the ``guided_tools``
prompt of ``prompts.toml`` (``$tools``: `describe_tool` of each; ``$forms``: the reply
forms this request allows, `reply_forms`; ``$tool_names``: the offered names). Pass
``tool_prompt=...`` to `GuidedModel` (or `LocalModel`) to replace it; it is checked
against those fields."""

TOOL_RESULT_PROMPT = Prompts.default().text("guided_tool_result")
"""How a tool's result is shown to the model, as a user turn: the ``guided_tool_result``
prompt (``$name``, ``$content``)."""


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
        lines.append(f"  example: {reply_json(ToolCall('', spec.name, example))}")
    return "\n".join(lines)


_EXAMPLE_CUE = re.compile(r"(?:\be\.g\.,?|\bsuch as|\bfor example,?|\bfor instance,?)\s+(.+)", re.I)


def described_examples(description: str) -> list[str]:
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
            candidates += described_examples(prop["description"])
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
    order it answered "2.4.0" instead of "Cancel an order"), so the guided layer uses it
    only with ``flatten_json=True``. Anything that is not a JSON object or array is
    returned unchanged.
    """
    flat = flattened(content)
    return content if flat is None else flat


def flattened(content: str) -> str | None:
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


def reply_json(call: ToolCall) -> str:
    """A tool call as the JSON object the grammar makes the model write."""
    return json.dumps({"tool": call.name, "arguments": call.arguments}, ensure_ascii=False)


def tool_section(request: ModelRequest, tool_prompt: str = TOOL_PROMPT) -> str:
    """The tool prompt for this request (empty when no tools are on offer)."""
    if not request.tools or request.tool_choice == "none":
        return ""
    return Template(tool_prompt).safe_substitute(
        tools="\n".join(describe_tool(t) for t in request.tools),
        forms=reply_forms(request.tools, request.output_schema, request.tool_choice),
        tool_names=", ".join(t.name for t in request.tools),
    )


def text_messages(
    request: ModelRequest,
    *,
    tool_prompt: str = TOOL_PROMPT,
    tool_result_prompt: str = TOOL_RESULT_PROMPT,
    flatten_json: bool = False,
) -> tuple[list[Message], str]:
    """The conversation as plain system/user/assistant turns, and the tool section added.

    The tool section (`tool_section`) joins the first system message. Earlier tool
    calls are shown as the JSON the model would have written; tool results become user
    turns (`tool_result_prompt`; results of parallel calls share one turn, so roles keep
    alternating); with tools on offer earlier answers are shown as ``{"answer": ...}``.
    """
    section = tool_section(request, tool_prompt)
    out: list[Message] = []
    placed = False
    after_result = False
    for message in request.messages:
        if message.role == "system":
            content = message.content
            if section and not placed:
                content = f"{content.rstrip()}\n\n{section}" if content.strip() else section
                placed = True
            out.append(Message.system(content))
        elif message.role == "user":
            out.append(Message.user(message.content))
        elif message.role == "assistant":
            out.append(
                Message.assistant(_assistant_text(message, bool(section), request.output_schema))
            )
        else:
            content = readable_result(message.content) if flatten_json else message.content
            result = Template(tool_result_prompt).safe_substitute(
                name=message.name or "tool", content=content
            )
            if after_result:
                out[-1] = Message.user(out[-1].content + "\n\n" + result)
            else:
                out.append(Message.user(result))
        after_result = message.role == "tool"
    if section and not placed:
        out.insert(0, Message.system(section))
    return out, section


def _assistant_text(message: Message, tool_mode: bool, output_schema: dict[str, Any] | None) -> str:
    parts = [message.content] if message.content else []
    if message.tool_calls:
        return "\n".join([*parts, *(reply_json(c) for c in message.tool_calls)])
    if not tool_mode:
        return message.content
    answer: Any = message.content
    if output_schema is not None:
        with contextlib.suppress(ValueError):
            answer = json.loads(message.content)
    return json.dumps({"answer": answer}, ensure_ascii=False)
