"""What every action format shares: the parse result, the protocol, tool matching.

A format tells a model without native tool calling how to act (instructions
rendered from a visible template) and turns the model's text back into tool
calls, a final answer, or a failure with a reason the model can act on.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from pilothouse.actions import repair
from pilothouse.messages import ToolCall, ToolResult
from pilothouse.models.base import ToolSpec

Kind = Literal["tool_call", "final_answer", "unrecoverable"]

FINAL_NAMES = frozenset({"finalanswer", "finish", "final", "answer", "finalresponse", "respond"})
"""Pseudo-tool names (normalized) that mean "this is my answer" when no such tool is offered."""

_SCHEMA_KEYS = frozenset(
    {"type", "properties", "required", "description", "title", "additionalProperties", "items"}
)


@dataclass(slots=True)
class ParsedCall:
    """One tool call recovered from text: an offered tool's name and its arguments."""

    tool: str
    args: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"tool": self.tool, "args": self.args}


@dataclass(slots=True)
class ParseResult:
    """Tool calls, a final answer, or a failure (`reason` says what to fix)."""

    kind: Kind
    calls: tuple[ParsedCall, ...] = ()
    answer: str = ""
    reason: str = ""
    repairs: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.kind != "unrecoverable"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form `pilothouse parse` prints."""
        if self.kind == "tool_call":
            d: dict[str, Any] = {"kind": "tool_call", "calls": [c.to_dict() for c in self.calls]}
        elif self.kind == "final_answer":
            d = {"kind": "final_answer", "answer": self.answer}
        else:
            d = {"kind": "unrecoverable", "reason": self.reason}
        if self.repairs:
            d["repairs"] = list(self.repairs)
        return d

    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The calls as loop `ToolCall`s with fresh ids."""
        return tuple(ToolCall(f"call_{uuid.uuid4().hex[:12]}", c.tool, c.args) for c in self.calls)


def failure(reason: str, repairs: Sequence[str] = ()) -> ParseResult:
    """A parse failure the loop turns into a corrective message."""
    return ParseResult("unrecoverable", reason=reason, repairs=tuple(repairs))


def final(answer: str, repairs: Sequence[str] = ()) -> ParseResult:
    return ParseResult("final_answer", answer=answer, repairs=tuple(repairs))


@runtime_checkable
class ActionFormat(Protocol):
    """How a model is told to act in text, and how its text is read back."""

    name: str
    template: str
    """The instructions, a `string.Template` with `$tools` and `$tool_names`; override freely."""
    observation_template: str
    """How a tool's result is shown back to the model: `$name`, `$content`."""

    def instructions(self, tools: Sequence[ToolSpec]) -> str:
        """The text that joins the system prompt."""
        ...

    def parse(
        self,
        text: str,
        tools: Sequence[ToolSpec],
        aliases: Mapping[str, str] | None = None,
        output_schema: Mapping[str, Any] | None = None,
    ) -> ParseResult:
        """Turn model text into calls, an answer, or a failure. Never raises.

        `output_schema` is the JSON schema of the agent's structured answer, if it
        has one: an answer of that shape is an answer, even where its keys look like
        a call's (``{"name": ..., "input": ...}``)."""
        ...

    def render_calls(self, calls: Sequence[ParsedCall]) -> str:
        """The text a well-behaved model would write for these calls."""
        ...

    def observation(self, results: Sequence[ToolResult]) -> str:
        """Tool results as the user-turn text the model reads next."""
        ...


def describe_tools(tools: Sequence[ToolSpec]) -> str:
    """One line per tool: name, description, JSON schema of its arguments."""
    lines = []
    for t in tools:
        params = json.dumps(t.parameters.get("properties", {}), ensure_ascii=False)
        required = t.parameters.get("required") or []
        req = f" (required: {', '.join(required)})" if required else ""
        lines.append(f"- {t.name}: {t.description or '(no description)'} Arguments: {params}{req}")
    return "\n".join(lines) or "(no tools)"


class Resolver:
    """Matches names the model wrote to offered tools, and fixes up their arguments."""

    def __init__(self, tools: Sequence[ToolSpec], aliases: Mapping[str, str] | None = None):
        self.tools = {t.name: t for t in tools}
        self._norm: dict[str, str | None] = {}
        for name in self.tools:
            self._add(name, name)
        for alias, name in (aliases or {}).items():
            if name in self.tools:
                self._add(alias, name)

    def _add(self, alias: str, name: str) -> None:
        key = repair.normalize_name(alias)
        seen = self._norm.get(key, name)
        self._norm[key] = name if seen == name else None  # ambiguous: match nothing

    def match(self, written: Any) -> str | None:
        """The offered tool a written name means, or `None` (never a guess)."""
        if not isinstance(written, str):
            return None
        name = written.strip().strip("`'\"*").strip()
        if name in self.tools:
            return name
        return self._norm.get(repair.normalize_name(name))

    @staticmethod
    def is_final(written: Any) -> bool:
        return isinstance(written, str) and repair.normalize_name(written) in FINAL_NAMES

    def params(self, tool: str) -> dict[str, Any]:
        props = self.tools[tool].parameters.get("properties")
        return props if isinstance(props, dict) else {}

    def arguments(self, tool: str, raw: Any, repairs: list[str]) -> dict[str, Any] | str:
        """Arguments for `tool` from what the model wrote, or a reason they are unusable."""
        params = self.params(tool)
        if isinstance(raw, str):
            text = raw.strip()
            if text[:1] in ("{", "[", '"'):
                loaded = repair.loads(text)
                if loaded is not None and isinstance(loaded.value, (dict, str)):
                    repairs.extend(loaded.repairs)
                    if isinstance(loaded.value, dict) or text.startswith('"'):
                        return self.arguments(tool, loaded.value, repairs)
                if text.startswith("{"):
                    return f"the input for {tool!r} is not valid JSON: {text[:120]!r}"
            if not params:
                if text in ("", "None", "none", "null", "{}", "N/A"):
                    if text:
                        repairs.append("placeholder_input")
                    return {}
                return f"tool {tool!r} takes no arguments, got {text[:80]!r}"
            if len(params) == 1:
                repairs.append("string_input_to_single_parameter")
                return {next(iter(params)): raw if isinstance(raw, str) else text}
            return (
                f"tool {tool!r} takes a JSON object with {', '.join(params)}; got text "
                f"{text[:80]!r}"
            )
        if raw is None:
            if not params:
                repairs.append("missing_input")
                return {}
            return f"tool {tool!r} needs arguments ({', '.join(params)}) and none were given"
        if isinstance(raw, (int, float, bool, list)):
            if len(params) == 1:
                repairs.append("value_input_to_single_parameter")
                return {next(iter(params)): raw}
            return f"tool {tool!r} takes a JSON object, got {type(raw).__name__}"
        if not isinstance(raw, dict):
            return f"tool {tool!r} takes a JSON object"
        schema_like = set(raw) <= _SCHEMA_KEYS and ("type" in raw or "properties" in raw)
        if raw and schema_like and not set(raw) & set(params):
            if not params:
                repairs.append("schema_echo_for_no_parameter_tool")
                return {}
            return (
                f"the input for {tool!r} repeats a JSON schema instead of giving values "
                f"for {', '.join(params)}"
            )
        if raw == self.tools[tool].parameters and raw:
            return f"the input for {tool!r} repeats its schema instead of giving values"
        return _schema_case(raw, params, repairs)

    def missing_required(self, tool: str, args: Mapping[str, Any]) -> list[str]:
        """The tool's required parameters that `args` lacks."""
        required = self.tools[tool].parameters.get("required") or []
        return [k for k in required if isinstance(k, str) and k not in args]

    def bare_arguments_tool(self, args: dict[str, Any]) -> str | None:
        """The one offered tool whose parameters fit an envelope-less argument object."""
        if not args:
            return None
        fits = []
        for name, spec in self.tools.items():
            props = self.params(name)
            required = set(spec.parameters.get("required") or [])
            if props and set(args) <= set(props) and required <= set(args):
                fits.append(name)
        return fits[0] if len(fits) == 1 else None


def _schema_case(
    args: dict[str, Any], params: Mapping[str, Any], repairs: list[str]
) -> dict[str, Any]:
    """`args` with each key the schema does not know, but knows under another case
    (`City` for `city`: SGLang's MiniCPM4 tests), renamed to the schema's spelling.
    Only a rename to one schema key that the arguments do not already hold."""
    if not params or all(k in params for k in args):
        return args
    folded: dict[str, str | None] = {}
    for key in params:
        folded[key.casefold()] = None if key.casefold() in folded else key
    out: dict[str, Any] = {}
    for key, value in args.items():
        target = folded.get(key.casefold()) if key not in params else key
        if target is None or target in args or target in out:
            target = key
        elif target != key and "parameter_name_case" not in repairs:
            repairs.append("parameter_name_case")
        out[target] = value
    return out
