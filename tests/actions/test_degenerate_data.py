"""Integrity of benchmarks/data/degenerate/data.jsonl (issue #15, session 15 "loops").

Checks only the data: schema, allowed values, unique ids and texts, the fixed split rule,
and the SmolLM2 label rule of the README (recomputed from the recorded replies). It scores
no detector and prints no entry.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from script_module import load_script

ROOT = Path(__file__).resolve().parents[2]
# the README's label rule, as the script that labelled the data applies it
LABELS = load_script("build_degenerate_data", ROOT / "benchmarks" / "build_degenerate_data.py")
DATA = ROOT / "benchmarks" / "data" / "degenerate"
FIELDS = {"id", "source", "kind", "label", "why", "split", "text"}
KINDS = {"prose", "markdown", "code", "table", "csv", "json", "log", "changelog", "smollm2",
         "thread", "corpus"}  # fmt: skip
SALT = "pilothouse-degenerate-split-1:"


def _rows(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return _rows("data.jsonl")


def test_every_entry_has_the_schema(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        assert set(row) - {"moved_from_holdout"} == FIELDS, row["id"]
        assert row["kind"] in KINDS and row["label"] in {"loop", "answer"}, row["id"]
        assert isinstance(row["text"], str) and row["text"].strip(), row["id"]
        assert len(row["text"]) <= 5000 or row["kind"] in {"smollm2", "thread", "corpus"}


def test_ids_and_texts_are_unique(rows: list[dict[str, Any]]) -> None:
    assert len({r["id"] for r in rows}) == len(rows)
    assert len({r["text"] for r in rows}) == len(rows)


def test_the_split_follows_the_fixed_rule(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        even = hashlib.sha256((SALT + row["id"]).encode()).digest()[0] % 2 == 0
        expected = "tune" if even else "holdout"
        assert row["split"] == expected or (
            row.get("moved_from_holdout") and row["split"] == "tune"
        )


def test_smollm2_labels_follow_the_written_rule(rows: list[dict[str, Any]]) -> None:
    recorded = {r["reply"]: r for r in _rows("smollm2_raw.jsonl")}
    labelled = [r for r in rows if r["kind"] == "smollm2"]
    assert labelled
    for row in labelled:
        reply = recorded[row["text"]]
        if row["why"].startswith("reading:"):
            continue  # changed by reading; the reason is in `why`
        share = min(LABELS.new_share(row["text"]), LABELS.char_new_share(row["text"]))
        if row["label"] == "loop":
            assert reply["finish"] == "length" and share <= 0.2, row["id"]
        else:
            assert reply["finish"] == "stop" or share >= 0.5, row["id"]


def test_both_halves_hold_loops_and_answers(rows: list[dict[str, Any]]) -> None:
    for split in ("tune", "holdout"):
        labels = [r["label"] for r in rows if r["split"] == split]
        assert labels.count("loop") >= 5 and labels.count("answer") >= 200, split
