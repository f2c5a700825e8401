"""BFCL in the harness: function docs become tool schemas faithfully, BFCL's own AST
checker scores calls (right, wrong value, wrong type, missing, irrelevance), the
ground-truth oracle scores every case it is run on, and a case is one model turn.

A few fixed cases per category (seconds); `benchmarks/bfcl.py` runs the sample.
Skipped, with the reason, when the ``bfcl-eval`` package is not installed.
"""

from __future__ import annotations

import asyncio
import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pilothouse import ConfigurationError
from pilothouse.evals import EvalLog, run_eval
from pilothouse.exceptions import UnknownModelError
from pilothouse.messages import ToolCall
from pilothouse.models import ScriptedModel
from pilothouse.models.registry import resolve_model
from pilothouse_suites import bfcl

needs_bfcl = pytest.mark.skipif(not bfcl.available(), reason=bfcl.INSTALL_HINT)
CALL_CATEGORIES = ["simple_python", "multiple", "parallel", "parallel_multiple", "live_simple"]


def _run(suite: Any, model: Any, cases: int = 3) -> EvalLog:
    suite.scenarios = suite.scenarios[:cases]
    return asyncio.run(run_eval(suite, [model], epochs=1, concurrency=2))


def _case(category: str, case_id: str) -> bfcl.Case:
    return bfcl.load_category(category)[case_id]


def test_without_the_package_the_suite_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "bfcl_eval", None)
    assert not bfcl.available()
    with pytest.raises(ConfigurationError, match=r"bfcl-eval==2026\.3\.23"):
        bfcl.require_bfcl()


def test_function_docs_become_json_schema() -> None:
    doc = {
        "name": "geo.route",
        "description": "Plan a route.",
        "parameters": {
            "type": "dict",
            "properties": {
                "stops": {
                    "type": "tuple",
                    "items": {
                        "type": "dict",
                        "properties": {
                            "lat": {"type": "float", "description": "Latitude."},
                            "tag": {"type": "any", "description": "Anything."},
                        },
                    },
                },
                "options": {"type": "dict", "properties": {"fast": {"type": "boolean"}}},
                "mode": {"type": "string", "enum": ["car", "foot"], "default": "car"},
                "untyped": {"description": "BFCL defaults a missing type to string."},
            },
            "required": ["stops", "not_a_property"],
        },
    }
    before = copy.deepcopy(doc)
    schema = bfcl.to_parameters(doc)
    assert doc == before  # the published doc is not mutated
    assert schema["type"] == "object" and schema["required"] == ["stops"]
    props = schema["properties"]
    assert props["stops"]["type"] == "array"
    item = props["stops"]["items"]
    assert item["type"] == "object"
    assert item["properties"]["lat"] == {
        "type": "number",
        "format": "float",
        "description": "Latitude. This is a float type value.",
    }
    assert item["properties"]["tag"]["type"] == "string"
    assert props["options"] == {"type": "object", "properties": {"fast": {"type": "boolean"}}}
    assert props["mode"] == {"type": "string", "enum": ["car", "foot"], "default": "car"}
    assert props["untyped"]["type"] == "string"
    tool = bfcl.bfcl_tool(doc)
    assert (tool.name, tool.description, tool.parameters) == ("geo.route", "Plan a route.", schema)


@needs_bfcl
def test_every_sampled_function_becomes_a_tool_with_json_types_only() -> None:
    json_types = {"object", "array", "string", "number", "integer", "boolean"}

    def types_in(schema: dict[str, Any]) -> set[str]:
        found = {schema["type"]} if "type" in schema else set()
        for sub in (schema.get("properties") or {}).values():
            found |= types_in(sub)
        if isinstance(schema.get("items"), dict):
            found |= types_in(schema["items"])
        return found

    for category in bfcl.CATEGORIES:
        cases = bfcl.load_category(category)
        for case_id in bfcl.sample_ids(category):
            for tool in bfcl.bfcl_tools(cases[case_id]):
                assert types_in(tool.parameters) <= json_types, (case_id, tool.name)


@needs_bfcl
def test_the_checker_accepts_the_possible_answer_and_rejects_wrong_calls() -> None:
    case = _case("simple_python", "simple_python_0")  # triangle area, base 10, height 5
    name = "calculate_triangle_area"

    def verdict(**arguments: Any) -> bfcl.Verdict:
        return bfcl.check(case, [ToolCall("c", name, arguments)])

    assert verdict(base=10, height=5).valid
    assert verdict(base=10, height=5, unit="units").valid  # the optional one, as answered
    wrong_value = verdict(base=11, height=5)
    assert not wrong_value.valid and wrong_value.error_type.startswith("value_error")
    wrong_type = verdict(base=10, height="5")
    assert not wrong_type.valid and wrong_type.error_type.startswith("type_error")
    missing = verdict(base=10)
    assert not missing.valid and "missing_required" in missing.error_type
    unknown = verdict(base=10, height=5, colour="red")
    assert not unknown.valid and "unexpected_param" in unknown.error_type
    assert not bfcl.check(case, [ToolCall("c", "area", {"base": 10, "height": 5})]).valid
    assert bfcl.check(case, []).error_type == "no_call"
    two = [ToolCall("a", name, {"base": 10, "height": 5})] * 2
    assert not bfcl.check(case, two).valid
    broken = ToolCall("c", name, {}, parse_error="Expecting value")
    assert bfcl.check(case, [broken]).error_type == "parse_error"


@needs_bfcl
def test_the_checker_on_floats_parallel_order_and_irrelevance() -> None:
    hypot = _case("simple_python", "simple_python_2")  # x=4, y=5 (integers)
    assert not bfcl.check(hypot, [ToolCall("c", "math.hypot", {"x": 4.0, "y": 5})]).valid
    parallel = _case("parallel", "parallel_0")
    calls = bfcl.truth_calls(parallel)
    assert len(calls) > 1
    assert bfcl.check(parallel, calls).valid
    assert bfcl.check(parallel, list(reversed(calls))).valid  # BFCL: any order
    assert not bfcl.check(parallel, calls[:1]).valid
    irrelevant = _case("irrelevance", "irrelevance_0")
    assert bfcl.check(irrelevant, []).valid
    offered = irrelevant.functions[0]["name"]
    made = bfcl.check(irrelevant, [ToolCall("c", offered, {"weight": 1.0, "height": 1.0})])
    assert not made.valid and made.error_type == "irrelevance"


@needs_bfcl
@pytest.mark.parametrize("category", bfcl.CATEGORIES)
def test_the_ground_truth_passes_the_checker_on_the_whole_sample(category: str) -> None:
    cases = bfcl.load_category(category)
    for case_id in bfcl.sample_ids(category):
        case = cases[case_id]
        assert bfcl.check(case, bfcl.truth_calls(case)).valid, case_id


@needs_bfcl
@pytest.mark.parametrize("category", bfcl.CATEGORIES)
def test_the_oracle_scores_every_case_through_the_harness(category: str) -> None:
    log = _run(bfcl.bfcl_suite(category), "bfcl:oracle")
    assert [s.message for s in log.samples if not s.ok] == []
    assert len(log.samples) == 3


@needs_bfcl
def test_a_case_is_one_turn_and_the_tool_is_not_executed() -> None:
    model = ScriptedModel(
        [ToolCall("c", "calculate_triangle_area", {"base": 10, "height": 5}), "never asked"]
    )
    suite = bfcl.bfcl_suite("simple_python", part="all")
    suite.scenarios = [s for s in suite.scenarios if s.name == "simple_python_0"]
    log = asyncio.run(run_eval(suite, [lambda: model], epochs=1))
    (sample,) = log.samples
    assert sample.ok and sample.failure is None
    types = [e["type"] for e in sample.events]
    assert types.count("model_response") == 1
    results = [e for e in sample.events if e["type"] == "tool_result"]
    assert [r["result"]["content"] for r in results] == [bfcl.NOT_EXECUTED]
    assert len(model.requests) == 1
    assert [t.name for t in model.requests[0].tools] == ["calculate_triangle_area"]


@needs_bfcl
def test_answering_in_words_misses_the_calls_and_passes_irrelevance() -> None:
    def words() -> ScriptedModel:
        return ScriptedModel(lambda request: "I cannot help with that.")

    missed = _run(bfcl.bfcl_suite("multiple"), words)
    assert all(not s.ok and "[no_call]" in s.message for s in missed.samples)
    assert all(s.failure == "assertion" for s in missed.samples)
    kept = _run(bfcl.bfcl_suite("irrelevance"), words)
    assert all(s.ok for s in kept.samples)


@needs_bfcl
def test_a_wrong_argument_fails_with_the_checkers_reason() -> None:
    by_question = {c.question: c for c in bfcl.load_category("simple_python").values()}

    def off_by_one(request: Any) -> Any:
        first = bfcl.truth_calls(by_question[request.messages[-1].content])[0]
        arguments = {
            k: (v + 1 if isinstance(v, int) and not isinstance(v, bool) else v)
            for k, v in first.arguments.items()
        }
        return [ToolCall(first.id, first.name, arguments)]

    log = _run(bfcl.bfcl_suite("simple_python", part="all"), lambda: ScriptedModel(off_by_one))
    assert [s.scenario for s in log.samples] == [f"simple_python_{i}" for i in (0, 1, 2)]
    assert all(not s.ok and s.message.startswith("[value_error") for s in log.samples)


@needs_bfcl
def test_the_naive_construction_is_scored_the_same_way() -> None:
    action = {"action": "calculate_triangle_area", "action_input": {"base": 10, "height": 5}}
    inner = ScriptedModel([f"```json\n{json.dumps(action)}\n```"])
    suite = bfcl.bfcl_suite("simple_python", naive=True, part="all")
    assert suite.name == "bfcl-simple_python-naive"
    suite.scenarios = [s for s in suite.scenarios if s.name == "simple_python_0"]
    log = asyncio.run(run_eval(suite, [lambda: inner], epochs=1))
    assert [s.ok for s in log.samples] == [True]
    assert inner.requests[0].tools == []  # the baseline describes the tools in text


@needs_bfcl
def test_the_split_is_recorded_disjoint_and_live_is_all_holdout() -> None:
    recorded = json.loads(bfcl.data.SPLIT_FILE.read_text(encoding="utf-8"))
    assert recorded == bfcl.data.draw_split(recorded["size"], recorded["seed"])
    for category in bfcl.CATEGORIES:
        parts = bfcl.split()[category]
        tune, holdout = set(parts["tune"]), set(parts["holdout"])
        assert not tune & holdout and len(tune | holdout) == 40
        assert tune | holdout <= set(bfcl.load_category(category))
        if category in bfcl.LIVE:
            assert not tune
        names = {s.name: s.tags for s in bfcl.bfcl_scenarios(category)}
        assert all(names[i] == ("holdout",) for i in holdout)


@needs_bfcl
def test_the_pool_sample_is_recorded_and_outside_holdout_tune_and_live() -> None:
    path = Path(__file__).parents[2] / "benchmarks" / "data" / "bfcl_pool_sample.json"
    recorded = json.loads(path.read_text(encoding="utf-8"))
    assert recorded == bfcl.draw_pool_sample(recorded["sizes"], recorded["seed"])
    for category, ids in recorded["categories"].items():
        parts = bfcl.split()[category]
        assert len(ids) == len(set(ids)) == recorded["sizes"][category]
        assert set(ids) <= set(bfcl.pool_ids(category))
        assert not set(ids) & (set(parts["tune"]) | set(parts["holdout"]))
    assert len(bfcl.pool_ids("simple_python")) == 380
    with pytest.raises(ConfigurationError, match="held out"):
        bfcl.pool_ids("live_simple")


@needs_bfcl
def test_the_second_pool_sample_is_fresh_and_that_draw() -> None:
    # seventh round: seed 13, drawn without the seed-12 sample's ids
    data = Path(__file__).parents[2] / "benchmarks" / "data"
    first = json.loads((data / "bfcl_pool_sample.json").read_text(encoding="utf-8"))
    second = json.loads((data / "bfcl_pool_sample_13.json").read_text(encoding="utf-8"))
    assert second["seed"] == 13
    assert second["exclude"] == {k: first["categories"][k] for k in second["sizes"]}
    assert second == bfcl.draw_pool_sample(second["sizes"], 13, second["exclude"])
    for category, ids in second["categories"].items():
        parts = bfcl.split()[category]
        assert len(ids) == len(set(ids)) == second["sizes"][category]
        assert set(ids) <= set(bfcl.pool_ids(category))
        assert not set(ids) & (set(parts["tune"]) | set(parts["holdout"]))
        assert not set(ids) & set(first["categories"][category])


@needs_bfcl
def test_the_parallel_pool_sample_is_that_draw() -> None:
    # eighth round: seed 14, parallel and parallel_multiple (no earlier sample of them)
    path = Path(__file__).parents[2] / "benchmarks" / "data" / "bfcl_pool_sample_14.json"
    recorded = json.loads(path.read_text(encoding="utf-8"))
    assert recorded["seed"] == 14
    assert recorded == bfcl.draw_pool_sample(recorded["sizes"], 14)
    for category, ids in recorded["categories"].items():
        parts = bfcl.split()[category]
        assert len(ids) == len(set(ids)) == recorded["sizes"][category] == 40
        assert set(ids) <= set(bfcl.pool_ids(category))
        assert not set(ids) & (set(parts["tune"]) | set(parts["holdout"]))


@needs_bfcl
def test_bad_names_are_clear_errors() -> None:
    with pytest.raises(ConfigurationError, match="not one of"):
        bfcl.load_category("multi_turn_base")
    with pytest.raises(ConfigurationError, match="use sample, tune, holdout or all"):
        bfcl.sample_ids("simple_python", "everything")
    with pytest.raises(UnknownModelError, match="bfcl:oracle"):
        resolve_model("bfcl:cheat")


@needs_bfcl
def test_the_example_scores_the_oracle(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "bfcl_cases.py"
    result = subprocess.run(
        [sys.executable, str(example), "bfcl:oracle", "multiple", "2"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("-> pass") == 2
    assert "multiple on bfcl:oracle: 2/2" in result.stdout


@needs_bfcl
def test_the_ninth_round_pool_sample_is_fresh_and_that_draw() -> None:
    # ninth round: seed 15, drawn without the seed-12, 13 and 14 samples' ids
    data = Path(__file__).parents[2] / "benchmarks" / "data"
    earlier: dict[str, set[str]] = {}
    for name in ("bfcl_pool_sample.json", "bfcl_pool_sample_13.json", "bfcl_pool_sample_14.json"):
        for category, ids in json.loads((data / name).read_text("utf-8"))["categories"].items():
            earlier.setdefault(category, set()).update(ids)
    recorded = json.loads((data / "bfcl_pool_sample_15.json").read_text(encoding="utf-8"))
    assert recorded["seed"] == 15
    assert recorded["exclude"] == {k: sorted(earlier[k]) for k in recorded["sizes"]}
    assert recorded == bfcl.draw_pool_sample(recorded["sizes"], 15, recorded["exclude"])
    for category, ids in recorded["categories"].items():
        parts = bfcl.split()[category]
        assert len(ids) == len(set(ids)) == recorded["sizes"][category]
        assert set(ids) <= set(bfcl.pool_ids(category))
        assert not set(ids) & (set(parts["tune"]) | set(parts["holdout"]) | earlier[category])
