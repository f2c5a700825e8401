"""What the action-envelope tests of every parser round share: the text formats they
parse in, tool specs, the parse outcomes they assert, and tune entries of the corpus
read by id (never a held-out one)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pilothouse.actions import get_format
from pilothouse.models.base import ToolSpec

CORPUS = Path(__file__).resolve().parents[2] / "benchmarks/data/parse_corpus"
FORMATS = ["json", "react", "xml", "auto"]


def tune_raw(file: str, split: str, entry_id: str) -> str:
    """The raw output of entry `entry_id` of `file`, which must be in tune `split`."""
    for line in (CORPUS / file).read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry["id"] == entry_id:
            assert entry["split"] == split, entry_id
            return str(entry["raw"])
    raise KeyError(entry_id)


def spec(name: str, required: bool = True, **props: str) -> ToolSpec:
    """A tool `name` taking `props` (name -> JSON type), all required unless not."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {k: {"type": v} for k, v in props.items()},
    }
    if required:
        schema["required"] = list(props)
    return ToolSpec(name, "", schema)


def calls(text: str, tools: list[ToolSpec], fmt: str = "auto") -> list[tuple[str, Any]]:
    """The calls `text` parses to (asserting it is a call)."""
    result = get_format(fmt).parse(text, tools)
    assert result.kind == "tool_call", result
    return [(c.tool, c.args) for c in result.calls]


def refused(text: str, tools: list[ToolSpec], fmt: str = "auto") -> str:
    """The reason `text` is refused (asserting it is)."""
    result = get_format(fmt).parse(text, tools)
    assert result.kind == "unrecoverable", result
    return result.reason


def answered(text: str, tools: list[ToolSpec], fmt: str = "auto") -> str:
    """The answer `text` parses to (asserting it is one)."""
    result = get_format(fmt).parse(text, tools)
    assert result.kind == "final_answer", result
    return result.answer
