"""The YAML form: same semantics as Python, malformed files rejected with line and reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pilothouse.exceptions import PolicyError
from pilothouse.messages import ToolCall
from pilothouse.policy import Policy, Rule, RunContext
from pilothouse.policy.lint import lint

POLICY = """\
version: 1
name: shop
defaults: {read_only: allow, side_effect: deny, irreversible: deny}
tools:
  get_order: {effect: read_only, args: [order_id]}
  refund: {effect: irreversible, args: [order_id, amount]}
rules:
  - id: small-refunds
    tools: refund
    effect: allow
    when:
      args: {amount: {maximum: 100}}
      after: [{tool: get_order, args: {order_id: $args.order_id}}]
      confirmed: true
    fallback: {message: "Refunds need a looked-up order, a yes and at most 100 ({reason})"}
"""


def python_form() -> Policy:
    return Policy(
        [
            Rule(
                "refund",
                "allow",
                id="small-refunds",
                when={
                    "args": {"amount": {"maximum": 100}},
                    "after": [{"tool": "get_order", "args": {"order_id": "$args.order_id"}}],
                    "confirmed": True,
                },
            )
        ]
    )


CASES: list[tuple[list[str], list[tuple[str, dict[str, Any], str]], str, dict[str, Any]]] = [
    (["refund 5"], [], "refund", {"order_id": "A", "amount": 5}),
    (["yes"], [], "refund", {"order_id": "A", "amount": 5}),
    (["yes"], [("get_order", {"order_id": "A"}, "{}")], "refund", {"order_id": "A", "amount": 5}),
    (["yes"], [("get_order", {"order_id": "A"}, "{}")], "refund", {"order_id": "A", "amount": 500}),
    (["yes"], [("get_order", {"order_id": "B"}, "{}")], "refund", {"order_id": "A", "amount": 5}),
    (["no"], [("get_order", {"order_id": "A"}, "{}")], "refund", {"order_id": "A", "amount": 5}),
]


@pytest.mark.parametrize(("user", "history", "tool", "args"), CASES)
def test_yaml_and_python_forms_decide_alike(
    user: list[str], history: list[tuple[str, dict[str, Any], str]], tool: str, args: dict[str, Any]
) -> None:
    y = Policy.from_yaml(POLICY)
    p = python_form()
    ctx = RunContext(user_messages=user)
    for name, a, result in history:
        ctx.record(name, a, result, effect="read_only")
    call = ToolCall("1", tool, args)
    dy, dp = y.check(call, ctx), p.check(call, ctx, effect="irreversible")
    assert (dy.effect, dy.rule) == (dp.effect, dp.rule)
    assert y.tools["refund"].effect == "irreversible"  # effect looked up from the declaration


def test_load_from_file(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(POLICY)
    assert Policy.load(f).name == "shop"
    with pytest.raises(PolicyError, match="cannot read"):
        Policy.load(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("rules:\n  - tools: x\n    effect: permit\n", 3, "effect must be allow, deny or ask"),
        ("rules:\n  - tools: x\n    when:\n      args:\n        a: {maxi: 3}\n", 5, "maxi"),
        ("rules:\n  - tools: x\n    whenn: {}\n", 3, "unknown key"),
        ("rules:\n  - effect: allow\n", 2, "needs `tools`"),
        ("rules:\n  - tools: x\n    tools: y\n", 3, "duplicate key 'tools'"),
        ("rules:\n  - tools: [x\n", 3, "invalid YAML"),
        ("defaults: {read_only: maybe}\n", 1, "must be allow, deny or ask"),
        (
            "rules:\n  - tools: x\n    when:\n      predicates: [is_owner]\n",
            4,
            "unknown predicate 'is_owner'",
        ),
        ("rules:\n  - tools: x\n    when: {after: [{tool: y, args: {a: $nope}}]}\n", 3, "$args"),
        ("rules:\n  - {tools: x, priority: high}\n", 2, "priority must be an integer"),
        ("version: 2\n", 1, "unsupported version"),
        ("rules:\n  - {tools: x, id: a}\n  - {tools: y, id: a}\n", 3, "two rules have the id"),
    ],
)
def test_malformed_files_name_line_and_reason(text: str, line: int, reason: str) -> None:
    with pytest.raises(PolicyError) as info:
        Policy.from_yaml(text, source="bad.yaml")
    message = str(info.value)
    assert message.startswith("bad.yaml: ")
    assert f"line {line}:" in message, message
    assert reason in message


def test_empty_file_is_rejected() -> None:
    with pytest.raises(PolicyError, match="empty"):
        Policy.from_yaml("", source="e.yaml")


def test_lint_reports_unknown_tools_args_shadowing_conflicts() -> None:
    p = Policy.from_yaml(
        """
tools:
  refund: {effect: irreversible, args: [order_id, amount]}
  get_order: {effect: read_only, args: [order_id]}
rules:
  - {id: typo, tools: refnud}
  - {id: bad-arg, tools: refund, when: {args: {amout: {maximum: 3}}}}
  - {id: all-denied, tools: "*", effect: deny, priority: 5}
  - {id: shadowed, tools: get_order, priority: 1}
  - {id: a, tools: refund, priority: 0, when: {args: {amount: {maximum: 9}}}}
  - {id: d, tools: refund, effect: deny, priority: 0, when: {args: {order_id: {const: X}}}}
"""
    )
    found = [str(f) for f in lint(p)]
    assert any("'typo'" in f and "'refnud' matches no known tool" in f for f in found)
    assert any("'bad-arg'" in f and "'amout' is not a parameter of 'refund'" in f for f in found)
    assert any("'shadowed'" in f and "never decides" in f for f in found)
    assert any("'a'" in f and "conflicts with rule 'd'" in f for f in found)
    clean = Policy.from_yaml(POLICY)
    assert lint(clean) == []


_KEYS = st.sampled_from(
    [
        "rules",
        "tools",
        "effect",
        "when",
        "args",
        "priority",
        "fallback",
        "after",
        "id",
        "x",
        "defaults",
    ]
)
_yamlish = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.sampled_from(["allow", "deny", "*", "$args.x", "["]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(data=_yamlish)
def test_any_document_is_a_policy_or_a_policy_error(data: object) -> None:
    text = yaml.safe_dump(data)
    try:
        p = Policy.from_yaml(text, source="fuzz.yaml")
    except PolicyError as exc:
        assert str(exc).startswith("fuzz.yaml: ")
        return
    # whatever loaded checks without raising, and never allows an undeclared irreversible call
    d = p.check(ToolCall("1", "zz_undeclared", {"x": 1}), RunContext(), effect="irreversible")
    assert d.effect in ("allow", "deny", "ask")


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=80))
@example(text="=")  # an unknown tag fails while building values, not while parsing
def test_random_text_never_crashes_the_loader(text: str) -> None:
    try:
        policy = Policy.from_yaml(text, source="t.yaml")
    except PolicyError as exc:
        assert str(exc).startswith("t.yaml: ")
        return
    assert isinstance(policy, Policy)


def test_recursive_and_exploding_aliases_are_rejected() -> None:
    with pytest.raises(PolicyError, match="too large or too deeply nested"):
        Policy.from_yaml("a: &x [*x]\n", source="r.yaml")
    laughs = "a: &a [1,1,1,1,1,1,1,1,1]\n" + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcde", "bcdef", strict=True)
    )
    with pytest.raises(PolicyError, match="too large"):
        Policy.from_yaml(laughs, source="l.yaml")
