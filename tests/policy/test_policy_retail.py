"""The tau-retail policy (examples/retail_policy.*) on all 635 tasks' gold sequences."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from script_module import load_script

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    return load_script("retail_policy", ROOT / "examples" / "retail_policy.py")


retail = _load()
pytestmark = pytest.mark.skipif(
    not (retail.data_dir() / "tasks_test.json").exists(),
    reason=f"tau-retail data not found at {retail.data_dir()} (set TAU_RETAIL_DIR)",
)


@pytest.fixture(scope="module")
def measured() -> dict[str, object]:
    return retail.measure(retail.load_policy(), retail.load_tasks())  # type: ignore[no-any-return]


def test_policy_lints_clean_against_the_tools() -> None:
    from pilothouse.policy.lint import lint, tools_from_openai_json

    tools = tools_from_openai_json((retail.data_dir() / "tools.json").read_text())
    assert lint(retail.load_policy(), tools) == []


def test_gold_sequences_are_never_blocked(measured: dict[str, object]) -> None:
    assert measured["tasks"] == 635
    assert measured["false_blocks"] == []
    # the only denied gold calls are the ones the reference shop refused as well
    assert measured["refused_by_shop"] == 12


def test_every_violation_is_blocked_for_its_reason(measured: dict[str, object]) -> None:
    total = measured["violations"]
    assert isinstance(total, dict)
    assert set(total) == set(retail.EXPECTED)
    assert all(n > 100 for n in total.values())
    assert measured["blocked"] == total and measured["missed"] == []


def test_without_the_policy_the_violations_would_run() -> None:
    """The measurement can fail: a permissive policy lets the violations through."""
    from pilothouse.policy import Policy

    task = retail.load_tasks()[0]
    allowed = 0
    for _kind, script, at in retail.violations(task):
        decisions = {r.line - 1: r for r in retail.check(Policy.allow_all(), script)}
        allowed += decisions[at].decision.allowed
    assert allowed >= 4


def test_confirmation_is_spent_by_a_refused_call() -> None:
    policy = retail.load_policy()
    task = next(t for t in retail.load_tasks() if t["id"] == "retail-test-13")
    gold = retail.gold_script(task)
    refused = next(
        i for i, s in enumerate(gold) if s.get("is_error") and s["tool"] in retail.CONSEQUENTIAL
    )
    later = next(
        i for i, s in enumerate(gold) if i > refused and s.get("tool") in retail.CONSEQUENTIAL
    )
    script = [s for i, s in enumerate(gold[: later + 1]) if i != later - 1]  # drop the later "yes"
    d = {r.line - 1: r.decision for r in retail.check(policy, script)}
    assert not d[len(script) - 1].allowed and "already used" in d[len(script) - 1].reason
