"""Validating a final answer against the agent's `output_type`.

`str` passes through. Any other type (a pydantic model, a dataclass, a list of
them, ...) is validated with a pydantic `TypeAdapter` from the JSON in the
model's answer; a markdown fence or prose around the JSON is tolerated. A failure
message is written for the model, which is asked again a bounded number of times.
"""

from __future__ import annotations

import json
import re
from typing import Any, Generic

from typing_extensions import TypeVar

from pilothouse.prompts import Prompts

OutputT = TypeVar("OutputT", default=str)

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


def _extract_json(text: str) -> str:
    """Find the JSON value in an answer that may wrap it in a fence or prose."""
    fenced = _FENCE.search(text)
    if fenced:
        return fenced.group(1).strip()
    stripped = text.strip()
    if stripped[:1] in "{[":
        return stripped
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        return stripped
    start = min(starts)
    end = max(text.rfind("}"), text.rfind("]"))
    return text[start : end + 1] if end > start else text[start:]


class OutputSpec(Generic[OutputT]):
    """How to check and serialise the final output of one agent."""

    def __init__(self, output_type: type[OutputT]) -> None:
        self.output_type = output_type
        self.is_text = output_type is str
        self._adapter: Any = None
        self.schema: dict[str, Any] | None = None
        if not self.is_text:
            from pydantic import TypeAdapter

            self._adapter = TypeAdapter(output_type)
            self.schema = self._adapter.json_schema()

    def instructions(self, prompts: Prompts | None = None) -> str:
        """The sentence added to the system prompt when a structured answer is wanted."""
        if self.schema is None:
            return ""
        schema = json.dumps(self.schema, separators=(",", ":"))
        return (prompts or Prompts.default()).render("output_instructions", schema=schema)

    def validate(self, text: str, prompts: Prompts | None = None) -> OutputT:
        """Return the typed output or raise `ValueError` with a message for the model."""
        if self.is_text:
            return text  # type: ignore[return-value]
        from pydantic import ValidationError

        try:
            return self._adapter.validate_json(_extract_json(text))  # type: ignore[no-any-return]
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(value)'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            retry = (prompts or Prompts.default()).render("output_retry", problems=problems)
            raise ValueError(retry) from None

    def from_json(self, value: Any) -> OutputT:
        """The typed output again from its journaled form (`to_json`)."""
        if self.is_text:
            return value  # type: ignore[no-any-return]
        return self._adapter.validate_python(value)  # type: ignore[no-any-return]

    def to_json(self, value: OutputT) -> Any:
        """A JSON-able form of the output, for the journal."""
        if self.is_text:
            return value
        return self._adapter.dump_python(value, mode="json")
