"""The live-like set (user tools from public code): the committed file is its builder's
seeded draw, every row is a valid BFCL case with its source, the split is by tool, and
BFCL's checker accepts the ground truth (the oracle scores 100% through the harness).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pilothouse import ConfigurationError
from pilothouse.evals import run_eval
from pilothouse.messages import ToolCall
from pilothouse_suites import bfcl
from pilothouse_suites.bfcl import livelike

needs_bfcl = pytest.mark.skipif(not bfcl.available(), reason=bfcl.INSTALL_HINT)
DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "bfcl_livelike"
GORILLA_TYPES = {"dict", "float", "integer", "string", "boolean", "array"}
SOURCE = re.compile(r"^[\w.-]+/[\w.-]+:[^@]+@[0-9a-f]{40}$")


def _builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("livelike_build", DATA / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BATCHES = ("livelike.jsonl", "livelike_r7.jsonl")


def _batch(name: str) -> list[dict[str, Any]]:
    text = (DATA / name).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _rows() -> list[dict[str, Any]]:
    return [row for name in BATCHES for row in _batch(name)]


def _types(schema: dict[str, Any]) -> set[str]:
    found = {schema["type"]}
    for sub in (schema.get("properties") or {}).values():
        found |= _types(sub)
    if isinstance(schema.get("items"), dict):
        found |= _types(schema["items"])
    return found


def test_the_committed_files_are_the_builders_seeded_draws() -> None:
    build = _builder()
    assert tuple(build.SETS) == BATCHES
    for name in BATCHES:
        assert build.build(name) == _batch(name), name


def test_the_seventh_round_batch_adds_new_tools_with_their_own_split() -> None:
    first, second = _batch(BATCHES[0]), _batch(BATCHES[1])
    assert not {r["tool"] for r in first} & {r["tool"] for r in second}
    assert not {r["source"] for r in first} & {r["source"] for r in second}
    assert len(second) >= 40
    assert sum(r["category"] == "livelike_irrelevance" for r in second) >= 15
    for part in ("tune", "holdout"):
        tools = {r["tool"] for r in second if r["part"] == part}
        assert tools and not tools & {r["tool"] for r in second if r["part"] != part}
    assert all("_r7_" in r["id"] for r in second)


def test_every_row_is_a_single_function_bfcl_case_with_its_source() -> None:
    rows = _rows()
    assert len({r["id"] for r in rows}) == len(rows)
    for row in rows:
        assert SOURCE.match(row["source"]), row["id"]
        assert not re.search(r"gorilla|bfcl", row["source"], re.IGNORECASE), row["id"]
        (doc,) = row["function"]
        params = doc["parameters"]
        assert params["type"] == "dict" and _types(params) <= GORILLA_TYPES, row["id"]
        assert set(params["required"]) <= set(params["properties"]), row["id"]
        messages = row["question"][0]
        assert [m["role"] for m in messages][-1] == "user" and messages[-1]["content"]
        if row["category"] == "livelike_irrelevance":
            assert row["ground_truth"] == [], row["id"]
            continue
        (answer,) = row["ground_truth"]
        assert list(answer) == [doc["name"]], row["id"]
        accepted = answer[doc["name"]]
        assert set(accepted) == set(params["properties"]), row["id"]
        for name in params["required"]:
            assert accepted[name] and "" not in accepted[name], (row["id"], name)


def test_the_split_is_by_tool_and_each_part_has_calls_and_irrelevance() -> None:
    rows = _rows()
    tools = {p: {r["tool"] for r in rows if r["part"] == p} for p in ("tune", "holdout")}
    assert tools["tune"] and tools["holdout"] and not tools["tune"] & tools["holdout"]
    counts = {(r["category"], r["part"]) for r in rows}
    assert counts == {(c, p) for c in livelike.LIVELIKE_CATEGORIES for p in ("tune", "holdout")}
    calls = [r for r in rows if r["category"] == "livelike_simple"]
    assert len(calls) >= 60
    assert len(rows) - len(calls) >= 30


def test_a_required_argument_without_a_value_is_refused_by_the_builder() -> None:
    build = _builder()
    with pytest.raises(ValueError, match="required"):
        build._answer("send_email", {"to_email": ["a@b.c"], "subject": ["x"]})
    with pytest.raises(ValueError, match="not parameters"):
        build._answer("babys_weather", {"city": ["Rome"], "country": ["IT"]})


def test_the_loader_reads_parts_and_names_a_missing_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tune = livelike.livelike_ids("livelike_simple", "tune")
    holdout = livelike.livelike_ids("livelike_simple", "holdout")
    assert tune and holdout and not set(tune) & set(holdout)
    assert sorted(livelike.livelike_ids("livelike_simple")) == sorted(tune + holdout)
    case = livelike.livelike_cases("livelike_simple")[tune[0]]
    assert livelike.livelike_part(case.id) == "tune" and case.question
    monkeypatch.setenv(livelike.ENV, str(tmp_path / "missing.jsonl"))
    livelike._rows.cache_clear()
    try:
        with pytest.raises(ConfigurationError, match=livelike.ENV):
            livelike.livelike_cases("livelike_simple")
    finally:
        monkeypatch.delenv(livelike.ENV)
        livelike._rows.cache_clear()


def test_the_tools_offered_have_json_types_only() -> None:
    json_types = {"object", "array", "string", "number", "integer", "boolean"}
    for category in livelike.LIVELIKE_CATEGORIES:
        for case in livelike.livelike_cases(category).values():
            for tool in bfcl.bfcl_tools(case):
                assert _types(tool.parameters) <= json_types, case.id


@needs_bfcl
def test_the_checker_accepts_the_ground_truth_and_rejects_a_wrong_value() -> None:
    cases = livelike.livelike_cases("livelike_simple")
    for case in cases.values():
        assert bfcl.check(case, bfcl.truth_calls(case)).valid, case.id
    munich = cases["livelike_simple_0"]  # get_weather(city="Munich")
    wrong = bfcl.check(munich, [ToolCall("c", "get_weather", {"city": "Berlin"})])
    assert not wrong.valid and wrong.error_type == "value_error:string"
    irrelevant = livelike.livelike_cases("livelike_irrelevance")["livelike_irrelevance_0"]
    assert bfcl.check(irrelevant, []).valid
    assert bfcl.check(irrelevant, [ToolCall("c", "get_weather", {"city": "x"})]).error_type == (
        "irrelevance"
    )


@needs_bfcl
def test_the_oracle_scores_the_whole_set_through_the_harness() -> None:
    suite = bfcl.livelike_suite(part="all")
    assert {s.tags[0] for s in suite.scenarios} == {"tune", "holdout"}
    log = asyncio.run(run_eval(suite, ["bfcl:oracle"], epochs=1, concurrency=4))
    assert len(log.samples) == len(_rows())
    assert [s.message for s in log.samples if not s.ok] == []
    naive = bfcl.livelike_naive_suite(part="tune")
    assert naive.name == "bfcl-livelike-naive"
    assert len(naive.scenarios) == sum(r["part"] == "tune" for r in _rows())
    assert {s.tags[0] for s in naive.scenarios} == {"tune"}
