"""The compiled fast paths decide exactly as the plain forms they replace."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pilothouse.exceptions import PolicyCheckFailed
from pilothouse.messages import ToolCall
from pilothouse.policy import Policy, Rule, RunContext, compile_schema
from pilothouse.policy.conditions import call_pattern

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(-5, 5),
    st.just(float("nan")),
    st.sampled_from(["A1", "B2", "ok", ""]),
    st.lists(st.integers(0, 2), max_size=2),
)
BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(BOUNDS), st.integers(-3, 3) | st.floats(-3, 3), VALUES)
def test_numeric_bounds_match_their_definition(key: str, bound: Any, value: Any) -> None:
    ops = {
        "minimum": (lambda v, b: v >= b, ">="),
        "maximum": (lambda v, b: v <= b, "<="),
        "exclusiveMinimum": (lambda v, b: v > b, ">"),
        "exclusiveMaximum": (lambda v, b: v < b, "<"),
    }
    op, sym = ops[key]
    is_num = isinstance(value, int | float) and not isinstance(value, bool)
    expected = None if is_num and op(value, bound) else f"{value!r} is not {sym} {bound}"
    assert compile_schema({key: bound})(value) == expected


@settings(max_examples=200, deadline=None)
@given(VALUES)
def test_two_and_more_keywords_report_the_first_failure_in_order(value: Any) -> None:
    schema = {"minimum": 0, "maximum": 3, "enum": [0, 1, 2, "A1"], "not": {"const": 2}}
    checks = [compile_schema({k: v}) for k, v in schema.items()]
    expected = next((w for f in checks if (w := f(value)) is not None), None)
    assert compile_schema(schema)(value) == expected
    two = {"minimum": 0, "maximum": 3}
    expected2 = next((w for f in checks[:2] if (w := f(value)) is not None), None)
    assert compile_schema(two)(value) == expected2


RECORD = st.tuples(
    st.sampled_from(["lookup", "lookup_v2", "auth"]),
    st.dictionaries(st.sampled_from(["ref", "n"]), VALUES, max_size=2),
    st.sampled_from([None, "ok", "no"]),
    st.booleans(),
)
PATTERNS = [
    {"tool": "lookup", "args": {"ref": "$args.ref"}},
    {"tool": "lookup*", "args": {"ref": {"pattern": "^A"}}, "ok": None},
    {"tool": "auth"},
    {"tool": "look?p", "ok": False, "result": {"const": "ok"}},
    {"tool": "lookup", "args": {"n": 1, "ref": "$args.ref"}, "result": {"pattern": "o"}},
]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(range(len(PATTERNS))),
    st.lists(RECORD, max_size=6),
    st.dictionaries(st.sampled_from(["ref", "x"]), VALUES, max_size=2),
)
def test_seen_matches_bind_over_candidates(
    which: int, records: list[tuple[str, dict[str, Any], str | None, bool]], args: dict[str, Any]
) -> None:
    pattern = call_pattern(PATTERNS[which], (), None)
    ctx = RunContext()
    for name, rec_args, result, ok in records:
        ctx.record(name, rec_args, result, ok=ok)
    call = ToolCall("c", "pay", args)
    try:
        m = pattern.bind(call, ctx)
        expected: Any = any(m(r) for r in pattern.candidates(ctx))
    except PolicyCheckFailed as exc:
        expected = str(exc)
    try:
        got: Any = pattern.seen(call, ctx)
    except PolicyCheckFailed as exc:
        got = str(exc)
    assert got == expected


def test_missing_reference_fails_closed_even_without_history() -> None:
    p = Policy(
        [Rule("pay", "allow", when={"not_after": [{"tool": "freeze", "args": {"r": "$args.r"}}]})]
    )
    d = p.check(ToolCall("c", "pay", {}), RunContext(), effect="side_effect")
    assert d.effect == "deny" and d.rule == "rule0" and "lacks" in d.reason


def test_rule_decisions_are_built_once_and_shared() -> None:
    p = Policy([Rule("pay", "deny", id="no-pay", fallback={"action": "abort", "message": "m"})])
    a = p.check(ToolCall("c", "pay", {}), RunContext())
    b = p.check(ToolCall("d", "pay", {"x": 1}), RunContext())
    assert a is b
    assert (a.effect, a.rule, a.reason, a.fallback, a.message) == (
        "deny",
        "no-pay",
        "rule 'no-pay' denies it",
        "abort",
        "m",
    )
