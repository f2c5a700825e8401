"""Hypothesis: render(call) then parse gives the call back, and nothing makes a parser raise."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pilothouse.actions import FORMATS, ParsedCall, get_format
from pilothouse.models.base import ToolSpec

NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
KEYS = st.from_regex(r"[a-z][a-zA-Z0-9_]{0,11}", fullmatch=True)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.text(max_size=40)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)
ARGS = st.dictionaries(KEYS, VALUES, min_size=1, max_size=5)


def tool_for(name: str, args: dict[str, Any]) -> ToolSpec:
    return ToolSpec(
        name,
        "",
        {"type": "object", "properties": {k: {} for k in args}, "required": list(args)},
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=NAMES, args=ARGS, fmt=st.sampled_from(["json", "react", "xml", "auto", "native"]))
def test_render_then_parse_round_trips(name: str, args: dict[str, Any], fmt: str) -> None:
    tools = [tool_for(name, args)]
    form = get_format(fmt)
    call = ParsedCall(name, args)
    result = form.parse(form.render_calls([call]), tools)
    assert result.kind == "tool_call", result
    assert result.calls == (call,)


@settings(max_examples=60, deadline=None)
@given(
    calls=st.lists(st.tuples(NAMES, ARGS), min_size=2, max_size=4, unique_by=lambda c: c[0]),
    fmt=st.sampled_from(["json", "react", "xml"]),
)
def test_several_calls_round_trip(calls: list[tuple[str, dict[str, Any]]], fmt: str) -> None:
    tools = [tool_for(n, a) for n, a in calls]
    parsed = [ParsedCall(n, a) for n, a in calls]
    form = get_format(fmt)
    result = form.parse(form.render_calls(parsed), tools)
    assert result.calls == tuple(parsed)


TEXTY = st.text(
    alphabet=st.sampled_from(list("{}[]()\"':,\\`\n <>|_=ActionInput:FinalObservation.TrueNone"))
    | st.characters(),
    max_size=400,
)


@settings(max_examples=400, deadline=None)
@given(
    text=TEXTY | st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
    fmt=st.sampled_from(list(FORMATS)),
)
def test_no_input_makes_a_parser_raise(text: str, fmt: str) -> None:
    tools = [tool_for("search", {"query": 1}), tool_for("other", {"a": 1, "b": 2})]
    result = get_format(fmt).parse(text, tools[:1] if fmt == "native" else tools)
    assert result.kind in ("tool_call", "final_answer", "unrecoverable")
    for c in result.calls:  # never a tool that was not offered
        assert c.tool in ("search", "other")


@settings(max_examples=100, deadline=None)
@given(value=VALUES, fmt=st.sampled_from(list(FORMATS)))
def test_arbitrary_json_never_raises(value: Any, fmt: str) -> None:
    import json

    text = json.dumps(value)
    result = get_format(fmt).parse(text, [tool_for("search", {"query": 1})])
    assert result.kind in ("tool_call", "final_answer", "unrecoverable")


ENVELOPES = st.sampled_from(
    [
        ("<tool_call>", "</tool_call>"),
        ("<function=", "</function>"),
        ("<function_calls>", "</function_calls>"),
        ('<invoke name="', '"></invoke>'),
        ("<|tool_call_start|>", "<|tool_call_end|>"),
        ("<|python_tag|>", "<|eom_id|>"),
        ("[TOOL_CALLS]", ""),
        ("<|channel|>analysis<|message|>", "<|end|>"),
        ("<|start|>assistant<|channel|>commentary to=functions.", "<|call|>"),
        ("<|im_start|>assistant\n", "<|im_end|>"),
        ("call:lookup{", "}"),
        ('{"name": "lookup", "arguments": ', "}"),
        ('{"action": "lookup", "action_input": ', "}"),
        ('{"tool": "lookup", "x": ', "}"),
        ('{"function": "lookup", "x": ', "}"),
        ('{"command": {"name": "lookup", "x": ', "}}"),
        ("Action: lookup\nAction Input: ", ""),
        # round 3: envelopes no reader knows, caught by their class
        ("<|action_start|><|plugin|>", "<|action_end|>"),
        ("<|START_ACTION|>", "<|END_ACTION|>"),
        ("<longcat_tool_call>", "</longcat_tool_call>"),
        ("<minimax:tool_call>", "</minimax:tool_call>"),
        ("<toolcall>", "</toolcall>"),
        ("<\uff5cGCML\uff5ctool_calls>", "</\uff5cGCML\uff5ctool_calls>"),
        # round 4: Kimi K3, vendor-prefixed invoke XML, Command R, upper-case tags,
        # Apertus, Cohere2, cut-off openers
        ('<|open|>tools<|sep|><|open|>call tool="lookup" index="1"<|sep|>', "<|close|>call"),
        ('<|open|>call tool="', ""),
        ('<steptml:invoke name="lookup"><steptml:parameter name="q">', ""),
        ('<\uff5cDSML\uff5cinvoke name="lookup">', "</\uff5cDSML\uff5cinvoke>"),
        ('<invoke name="search"><parameter name="query">', ""),
        ("\nAction: ```json\n", "\n```"),
        ("<TOOLCALL>", "</TOOLCALL>"),
        ("<|tools_prefix|>[", "]<|tools_suffix|>"),
        ("<|END_THINKING|><|START_ACTION|>", "<|END_ACTION|>"),
        ("<function=lookup>", ""),  # a tag; "<function=foo is ..." in prose is not one
        ("<search>", "</search>"),  # a tag named for an offered tool (Cline-style calls)
        ("<other>\n<a>", "</a>\n</other>"),
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    before=TEXTY,
    inner=TEXTY,
    after=TEXTY,
    envelope=ENVELOPES,
    fmt=st.sampled_from(["json", "react", "xml", "auto"]),
)
def test_markup_is_never_a_final_answer(
    before: str, inner: str, after: str, envelope: tuple[str, str], fmt: str
) -> None:
    import json

    opener, closer = envelope
    if opener.endswith(": "):  # keep JSON-shaped envelopes JSON: the inner text as a string
        inner = json.dumps(inner)
    text = before + opener + inner + closer + after
    tools = [tool_for("search", {"query": 1}), tool_for("other", {"a": 1, "b": 2})]
    result = get_format(fmt).parse(text, tools)  # never raises
    assert result.kind in ("tool_call", "unrecoverable"), (text, result)
    for c in result.calls:
        assert c.tool in ("search", "other")
