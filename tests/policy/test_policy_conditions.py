"""The condition registry: one compiler per kind; a new kind is one registered function."""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse.exceptions import PolicyError
from pilothouse.messages import ToolCall
from pilothouse.policy import Policy, Rule, RunContext
from pilothouse.policy.conditions import (
    CONDITION_KEYS,
    CONDITIONS,
    CompiledConditions,
    ConditionEnv,
    condition,
)
from pilothouse.policy.document import Path


def test_every_builtin_kind_is_registered_in_the_documented_order() -> None:
    assert CONDITION_KEYS == (
        "args",
        "predicates",
        "after",
        "not_after",
        "max_calls",
        "rate",
        "confirmed",
        "trusted",
        "trusted_entities",
        "lookup",
        "total",
        "principal",
        "not",
        "any",
    )
    assert tuple(CONDITIONS)[: len(CONDITION_KEYS)] == CONDITION_KEYS


def test_an_unknown_kind_lists_the_known_ones_and_names_the_line() -> None:
    with pytest.raises(PolicyError) as info:
        Policy([Rule("refund", when={"afterwards": ["get_order"]})])
    message = str(info.value)
    assert "rules.0.when.afterwards: unknown condition 'afterwards'" in message
    assert all(k in message for k in CONDITION_KEYS)
    yaml = "rules:\n  - tools: refund\n    when:\n      afterwards: [get_order]\n"
    with pytest.raises(PolicyError, match=r"line 4: .*unknown condition 'afterwards'"):
        Policy.from_yaml(yaml)


def test_a_new_kind_is_one_registered_function() -> None:
    @condition("weekday_only")
    def _weekday(spec: Any, at: Path, env: ConditionEnv, out: CompiledConditions) -> None:
        if not isinstance(spec, bool):
            raise env.error(at, "weekday_only must be true or false")
        out.stateful = True

        def check(call: ToolCall, ctx: RunContext) -> str | None:
            day = ctx.principal.get("day")
            return None if not spec or day not in ("sat", "sun") else "not on weekends"

        out.checks.append(check)

    try:
        with pytest.raises(ValueError, match="already registered"):
            condition("weekday_only")(_weekday)
        policy = Policy([Rule("refund", when={"weekday_only": True})])
        assert policy.stateful
        ctx = RunContext()
        ctx.principal.attributes["day"] = "mon"
        assert policy.check(ToolCall("1", "refund", {}), ctx).allowed
        ctx.principal.attributes["day"] = "sun"
        decision = policy.check(ToolCall("1", "refund", {}), ctx)
        assert not decision.allowed and "not on weekends" in decision.reason
        with pytest.raises(PolicyError, match="weekday_only must be true or false"):
            Policy([Rule("refund", when={"weekday_only": "yes"})])
    finally:
        del CONDITIONS["weekday_only"]


def test_old_import_paths_still_work() -> None:
    from pilothouse.policy import decision as old_decision
    from pilothouse.policy import engine

    assert engine.Principal is __import__("pilothouse.policy", fromlist=["Principal"]).Principal
    assert engine.compile_schema is __import__("pilothouse.policy", fromlist=["x"]).compile_schema
    assert old_decision.Decision is __import__("pilothouse.decision", fromlist=["x"]).Decision
    from pilothouse.models.base import ModelResponse

    assert ModelResponse is __import__("pilothouse.messages", fromlist=["x"]).ModelResponse


def test_value_conditions_are_the_shared_validator_strict_with_lines() -> None:
    policy = Policy(
        [
            Rule(
                "order",
                when={
                    "args": {
                        "lines": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["sku"],
                                "properties": {"qty": {"maximum": 5}},
                            },
                        }
                    }
                },
            )
        ],
        defaults={"unknown": "deny"},
    )
    ok = ToolCall("1", "order", {"lines": [{"sku": "A", "qty": 2}]})
    assert policy.check(ok, RunContext()).allowed
    bad = ToolCall("2", "order", {"lines": [{"sku": "A", "qty": 9}]})
    decision = policy.check(bad, RunContext())
    assert not decision.allowed
    assert "argument lines: item 0: property 'qty': 9 is not <= 5" in decision.reason
    yaml = (
        "rules:\n"
        "  - tools: order\n"
        "    when:\n"
        "      args:\n"
        "        lines:\n"
        "          items:\n"
        "            maxi: 3\n"
    )
    with pytest.raises(PolicyError) as info:
        Policy.from_yaml(yaml, source="p.yaml")
    assert str(info.value).startswith(
        "p.yaml: line 7: rules.0.when.args.lines.items.maxi: unknown keyword 'maxi'"
    )
