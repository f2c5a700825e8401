"""The live-like set: user tools as people publish them, for tuning without BFCL's live data.

BFCL's live categories (user-contributed functions) are held out by issue #22, so
nothing may be tuned on them; yet their tools differ from the non-live ones (short or
missing descriptions, other languages, camelCase names, odd types). This set gives
that distribution something to tune on: 58 tool declarations found in public agents
and apps (never in gorilla/BFCL or a fork), each with requests written for it, some
it serves (``livelike_simple``) and some it cannot (``livelike_irrelevance``), in
BFCL's own case and possible-answer form, so BFCL's checker scores it like the rest.
It is built by ``benchmarks/data/bfcl_livelike/build.py`` (see its README), split
once, seeded, by tool into tune and holdout. Later batches are further files beside
it (``livelike_r7.jsonl``: another 18 tools, their own seeded split), read with it, so
a batch added later never redraws the split an earlier one was tuned on.

The file is read from ``$PILOTHOUSE_BFCL_LIVELIKE`` or, by default, from the
repository checkout this package runs from, with every ``livelike_*.jsonl`` beside
it; without it, a `ConfigurationError`.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from pilothouse.exceptions import ConfigurationError
from pilothouse_suites.bfcl.data import Case

LIVELIKE_CATEGORIES = ("livelike_simple", "livelike_irrelevance")
PARTS = ("tune", "holdout")
ENV = "PILOTHOUSE_BFCL_LIVELIKE"
DEFAULT_FILE = (
    Path(__file__).resolve().parents[3] / "benchmarks" / "data" / "bfcl_livelike" / "livelike.jsonl"
)


def livelike_file() -> Path:
    """Where the set is read from (``$PILOTHOUSE_BFCL_LIVELIKE`` or the checkout's)."""
    return Path(os.environ.get(ENV) or DEFAULT_FILE)


def _case(row: dict[str, Any]) -> Case:
    turns = row["question"]
    if len(turns) != 1:
        raise ConfigurationError(f"live-like case {row['id']}: not a single-turn case")
    system = "\n\n".join(m["content"] for m in turns[0] if m["role"] == "system")
    users = [m["content"] for m in turns[0] if m["role"] == "user"]
    if len(users) != 1:
        raise ConfigurationError(f"live-like case {row['id']}: not a single user message")
    return Case(
        row["id"],
        row["category"],
        system,
        users[0],
        tuple(row["function"]),
        tuple(row["ground_truth"]),
    )


@cache
def _rows() -> dict[str, tuple[Case, str]]:
    path = livelike_file()
    if not path.exists():
        raise ConfigurationError(
            f"the live-like set is not at {path}: set ${ENV} to its livelike.jsonl "
            "(benchmarks/data/bfcl_livelike/ in the Pilothouse repository)"
        )
    out: dict[str, tuple[Case, str]] = {}
    batches = [path, *sorted(path.parent.glob("livelike_*.jsonl"))]
    lines = [line for batch in batches for line in batch.read_text(encoding="utf-8").splitlines()]
    for line in lines:
        if not line.strip():
            continue
        row = json.loads(line)
        if row["id"] in out:
            raise ConfigurationError(f"live-like case {row['id']}: in two files")
        if row["category"] not in LIVELIKE_CATEGORIES or row["part"] not in PARTS:
            raise ConfigurationError(f"live-like case {row.get('id')}: bad category or part")
        out[row["id"]] = (_case(row), row["part"])
    return out


def livelike_cases(category: str) -> dict[str, Case]:
    """The cases of `category` (``livelike_simple`` or ``livelike_irrelevance``), by id."""
    return {i: c for i, (c, _) in _rows().items() if c.category == category}


def livelike_ids(category: str, part: str = "sample") -> list[str]:
    """The ids of `category`'s `part`: tune, holdout, or sample/all (both)."""
    if part not in ("sample", "all", *PARTS):
        raise ConfigurationError(f"live-like part {part!r}: use sample, tune, holdout or all")
    return [
        i
        for i, (c, p) in _rows().items()
        if c.category == category and (part in ("sample", "all") or p == part)
    ]


def livelike_part(case_id: str) -> str:
    """tune or holdout."""
    return _rows()[case_id][1]
