"""The shared corpus of real outputs that broke agent parsers, scored per its README."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pilothouse.actions import get_format
from pilothouse.models.base import ToolSpec
from script_module import load_script

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "data" / "agent-outputs" / "corpus.jsonl"


bench = load_script("parse_recovery", ROOT / "benchmarks" / "parse_recovery.py")
ENTRIES: list[dict[str, Any]] = (
    [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line]
    if CORPUS.exists()
    else []
)
needs_corpus = pytest.mark.skipif(
    not CORPUS.exists(), reason=f"the shared corpus is not present at {CORPUS}"
)


def tools_for(entry: dict[str, Any]) -> list[ToolSpec]:
    return [ToolSpec(t["name"], "", t["parameters"]) for t in bench.offered_tools(entry)]


@needs_corpus
@pytest.mark.parametrize("entry", ENTRIES, ids=[e["id"] for e in ENTRIES])
def test_corpus_entry(entry: dict[str, Any]) -> None:
    result = get_format(bench.format_of(entry)).parse(entry["raw"], tools_for(entry))
    assert bench.matches(result.to_dict(), entry), (entry["expected"], result)


@needs_corpus
def test_scores_meet_the_targets() -> None:
    score = bench.score_pilothouse(ENTRIES, False)
    assert score.recoverable and score.unrecoverable
    assert score.recovered / score.recoverable >= 0.95
    assert score.refused == score.unrecoverable
    assert score.markup_answers == 0


def test_scoring_rules_can_fail() -> None:
    entry = {
        "expected": {"kind": "tool_call", "tool": "t", "args": "x"},
        "patterns": [],
    }
    assert bench.matches({"kind": "tool_call", "calls": [{"tool": "t", "args": {"a": "x"}}]}, entry)
    assert not bench.matches(
        {"kind": "tool_call", "calls": [{"tool": "t", "args": {"a": "y"}}]}, entry
    )
    assert not bench.matches({"kind": "final_answer", "answer": "x"}, entry)
    assert bench.args_match({"n": "10"}, {"n": 10}, False)
