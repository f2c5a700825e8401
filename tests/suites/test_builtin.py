"""The built-in and held-out suites (pilothouse_suites): known answers, tools, reference
models, and run_python's honest effect kind with the suites' explicit policy rule."""

from __future__ import annotations

import dataclasses
import json

import pytest

from pilothouse.evals import Suite, run_eval
from pilothouse.exceptions import ToolError
from pilothouse_suites import builtin, heldout


def test_builtin_known_answers_and_tools() -> None:
    assert len(builtin.SCENARIOS) == 10
    assert builtin.run_python.function(code=builtin.COLLATZ_CODE) == "196"
    assert float(builtin.run_python.function(code=builtin.COINS_CODE)) == 56 / 1024 == 0.0546875
    assert builtin.calculator.function(expression="37 * 48 + 125") == "1901"
    assert builtin.calculator.function(expression="150 / 2.5") == "60"
    converted = builtin.convert_time.function(
        time="2024-03-15 09:00", from_place="America/New_York", to_place="Asia/Tokyo"
    )
    assert converted.startswith("2024-03-15 22:00")
    assert "Maren Holt" in builtin.search_knowledge.function(query="Kestrel lighthouse keeper")
    assert json.loads(builtin.get_api_spec.function())["paths"]["/orders/{orderId}/cancel"]


def test_time_zones_are_found_by_city_or_iana_name() -> None:

    assert builtin.find_zone("New York").key == "America/New_York"
    assert builtin.find_zone("tokyo").key == "Asia/Tokyo"
    assert builtin.find_zone("America/Argentina/Buenos_Aires").key.endswith("Buenos_Aires")
    # A wrong region in front of a known city: the city decides (the result names the zone).
    assert builtin.find_zone("Europe/Tokyo").key == "Asia/Tokyo"
    with pytest.raises(ToolError, match="unknown time zone or city 'Tokio'; the closest are"):
        builtin.find_zone("Tokio")
    with pytest.raises(ToolError, match="unknown time zone or city 'Atlantis'"):
        builtin.find_zone("Atlantis")
    by_city = builtin.convert_time.function(
        time="2024-07-01 14:00", from_place="London", to_place="New York"
    )
    assert by_city == "2024-07-01 09:00 in America/New_York (UTC-0400)"


async def test_heldout_oracle_scores_100_and_null_0() -> None:
    log = await run_eval(heldout.suite, [heldout.oracle_model, builtin.null_model], epochs=1)
    oracle, null = log.models
    assert log.total(oracle).rate == 1.0, [s.message for s in log.failures() if s.model == oracle]
    assert log.total(null).rate == 0.0
    # Same tools and instructions as the built-in scenario of the same name, new questions.
    by_name = {s.name: s for s in builtin.SCENARIOS}
    for s in heldout.SCENARIOS:
        like = by_name.get(s.name) or by_name["facts/lighthouse"]
        assert s.instructions == like.instructions and s.tools == like.tools
        assert s.input not in {b.input for b in builtin.SCENARIOS}


def test_python_runner_timeout_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:

    with monkeypatch.context() as short:  # only the endless program meets the short limit
        short.setattr(builtin, "PYTHON_TIMEOUT", 0.5)
        with pytest.raises(ToolError, match="longer than"):
            builtin.run_python.function(code="while True: pass")
    with pytest.raises(ToolError, match="ZeroDivisionError"):
        builtin.run_python.function(code="print(1/0)")
    with pytest.raises(ToolError, match="printed nothing"):
        builtin.run_python.function(code="x = 1")


async def test_builtin_oracle_scores_100_and_null_0() -> None:
    log = await run_eval(
        builtin.suite, [builtin.oracle_model, builtin.null_model], epochs=2, concurrency=8
    )
    oracle, null = log.models
    assert log.total(oracle).rate == 1.0, [s.message for s in log.failures() if s.model == oracle]
    assert log.total(null).rate == 0.0
    assert log.total(null).failures == {"assertion": 20}
    # The oracle used the tools: every sample made at least one tool call.
    for s in log.samples:
        if s.model == oracle:
            assert any(e["type"] == "tool_result" for e in s.events), s.scenario


async def test_a_broken_tool_fails_the_oracle(monkeypatch: pytest.MonkeyPatch) -> None:
    """The oracle's answers come from the tools: break one and its scenario fails."""
    monkeypatch.setattr(
        builtin, "KNOWLEDGE", [k.replace("Maren", "Mary") for k in builtin.KNOWLEDGE]
    )
    log = await run_eval(builtin.suite, [builtin.oracle_model], epochs=1, scenarios=["lighthouse"])
    assert log.samples[0].failure == "assertion"


# --------------------------------------------------------------------------- run_python


def test_run_python_says_it_runs_model_written_code() -> None:
    # Not read_only: the program can do whatever this user can, and nothing undoes it.
    assert builtin.run_python.effect == "irreversible"
    assert builtin.run_python.on_doubt == "ask"  # a cut-off call is not run again blindly


def test_scenarios_that_run_code_carry_the_explicit_rule() -> None:
    runs_code = [
        s
        for s in [*builtin.SCENARIOS, *heldout.SCENARIOS]
        if any(getattr(t, "name", "") == "run_python" for t in s.tools)
    ]
    assert {s.name for s in runs_code} == {"collatz", "coin_tosses"}
    assert len(runs_code) == 4  # built-in and held-out
    for s in runs_code:
        assert s.policy is builtin.PYTHON_POLICY, s.name


async def test_the_default_policy_blocks_run_python_and_the_suite_rule_allows_it() -> None:
    collatz = next(s for s in builtin.SCENARIOS if s.name == "collatz")
    without = dataclasses.replace(collatz, policy=None)
    log = await run_eval(
        Suite("python", [collatz]), [builtin.oracle_model], epochs=1, concurrency=1
    )
    assert log.samples[0].ok, log.samples[0].message
    decisions = [e["decision"] for e in log.samples[0].events if e["type"] == "tool_call"]
    assert [d["rule"] for d in decisions] == ["builtin-runs-model-code"]
    log = await run_eval(
        Suite("python", [without]), [builtin.oracle_model], epochs=1, concurrency=1
    )
    assert log.samples[0].failure == "policy_block", log.samples[0].message
