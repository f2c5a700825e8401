"""The guided construction on a fixed handful of BFCL tune cases, through recorded cassettes.

``bfcl_cassettes/<case>.jsonl`` were recorded on the embedded SmolLM2-135M by
``tests/suites/bfcl_record.py`` (the cases and what each one pins are listed there).
Replaying a cassette runs the whole guided construction again (relevance gate, choice,
arguments, the checks between stages) over the recorded stage replies, so the test is
fast and deterministic, needs no model, and fails with a ``stage`` divergence when the
construction changes what a stage sends. The calls of the replayed run are then
scored by BFCL's own checker. Skipped without the ``bfcl-eval`` package.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from pilothouse.events import StageRequested, ToolCalled
from pilothouse.guided.brevity import EARLY_ANSWER_TOKENS
from pilothouse.guided.relevance import asked_for
from pilothouse.testing import assert_replays
from pilothouse_suites import bfcl
from script_module import load_script

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.skipif(not bfcl.available(), reason=bfcl.INSTALL_HINT)


recorder = load_script("bfcl_record", HERE / "bfcl_record.py")

# case -> (stages replayed, BFCL verdict of the replayed calls: error type, "" = right)
EXPECTED: dict[str, tuple[list[str], str]] = {
    "irrelevance_175": (["answer"], ""),
    "multiple_59": (["arguments", "distinct"], "value_error:list/tuple"),
    "multiple_162": (["arguments"], ""),
    "multiple_166": (["arguments"], ""),
    "multiple_26": (["choose", "arguments"], ""),
    "simple_python_104": (["arguments"], ""),
    "simple_python_344": (["choose", "arguments", "distinct"], "value_error:string"),
    "simple_python_292": (["arguments"], ""),
    "simple_python_389": (["choose", "arguments"], ""),
    "simple_python_291": (["arguments"], ""),
    "simple_python_319": (["arguments", "distinct"], ""),
    "multiple_88": (["arguments"], ""),
    "parallel_188": (["arguments", "arguments", "arguments"], ""),
    "parallel_multiple_134": (["arguments", "arguments"], ""),
}


def test_every_recorded_case_has_an_expectation() -> None:
    assert sorted(EXPECTED) == sorted(recorder.CASES)


def test_the_pinned_cases_are_tune_cases_only() -> None:
    for case_id in recorder.CASES:
        category = case_id.rsplit("_", 1)[0]
        assert category not in bfcl.LIVE
        assert case_id in bfcl.sample_ids(category, "tune")
        assert (recorder.CASSETTES / f"{case_id}.jsonl").is_file()


@pytest.mark.parametrize("case_id", sorted(EXPECTED))
def test_a_recorded_case_replays_through_the_construction(case_id: str) -> None:
    agent, case = recorder.case_agent(case_id)
    report = assert_replays(agent, recorder.CASSETTES / f"{case_id}.jsonl")
    stages = [e.stage for e in report.events if isinstance(e, StageRequested)]
    calls = [e.call for e in report.events if isinstance(e, ToolCalled)]
    verdict = bfcl.check(case, calls)
    want_stages, want_error = EXPECTED[case_id]
    assert stages == want_stages
    assert (verdict.error_type or "") == want_error, verdict.error
    if case_id == "irrelevance_175":
        (stage,) = [e for e in report.events if isinstance(e, StageRequested)]
        assert stage.tools == [] and "no offered tool fits" in stage.note
    if case_id == "multiple_166":
        assert calls[0].arguments["price_range"] == "cheap"  # the member the user named
    requested = [e for e in report.events if isinstance(e, StageRequested)]
    if case_id != "irrelevance_175":
        # the arguments stage is held to the request's own values from the start
        held = [e for e in requested if e.stage == "arguments"]
        assert held and all(e.schemas and "request's own" in e.note for e in held)
        assert len(held) == 1 or case_id.startswith("parallel")
        # before any tool ran, the choice (or an answer) is asked in a few tokens; a
        # request that plainly asks for the one tool offered has no choice to make
        if case_id.startswith("parallel"):
            # split into sub-requests (eighth round): each stage says which it serves
            # and shows the one tool that fits it, so none asks for a choice
            assert all("(guided.split)" in e.note for e in requested)
            assert all(len(e.tools) == 1 for e in requested)
            assert len(calls) == len(case.ground_truth)
        elif requested[0].stage == "choose":
            assert (requested[0].settings or {}).get("max_tokens") == EARLY_ANSWER_TOKENS
        else:
            assert requested[0].stage == "arguments"
            specs = [t.spec() for t in bfcl.bfcl_tools(case)]
            assert any(asked_for(case.question, s) for s in specs)
    if "distinct" in stages:
        # a free string that repeated another argument's value (or only named its own
        # parameter: simple_python_319's league "League"), asked again
        distinct = requested[-1]
        assert distinct.schemas
        assert "another argument holds" in distinct.note or "own name" in distinct.note
    if case_id == "multiple_59":
        assert calls[0].arguments["specialization"] == ["lawyers", "criminal law"]
    if case_id == "multiple_162":
        assert calls[0].arguments["mode"] == "dynamic"  # the described value the user said
    if case_id == "simple_python_104":
        assert "unit" not in calls[0].arguments  # '10', height's value as text: left out
    if case_id == "simple_python_389":  # the codes of the currencies the user named
        assert calls[0].arguments["base_currency"] == "USD"
        assert calls[0].arguments["target_currency"] == "GBP"
    if case_id == "simple_python_291":
        assert calls[0].arguments["key"] == "C"  # "'C' for C major", its description says
    if case_id == "simple_python_319":
        assert calls[0].arguments["league"] == "Premier League"


@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason="LocalModel needs llama-cpp-python"
)
def test_turning_the_relevance_gate_off_is_a_divergence() -> None:
    from pilothouse.guided import GuidedModel
    from pilothouse.models.local import LocalModel
    from pilothouse.testing import replay

    agent, _ = recorder.case_agent("irrelevance_175", GuidedModel(LocalModel(), relevance=False))
    report = replay(agent, recorder.CASSETTES / "irrelevance_175.jsonl")
    d = report.divergence
    assert d is not None and d.kind == "stage" and d.step == 1
