"""Each action format and each repair, on small outputs written the way real models write."""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse.actions import (
    AutoFormat,
    JsonFormat,
    NativeFormat,
    ParsedCall,
    ReactFormat,
    XmlFormat,
    get_format,
    repair,
)
from pilothouse.exceptions import ConfigurationError
from pilothouse.models.base import ToolSpec


def spec(name: str, **props: str) -> ToolSpec:
    return ToolSpec(
        name,
        f"The {name} tool.",
        {
            "type": "object",
            "properties": {k: {"type": v} for k, v in props.items()},
            "required": list(props),
        },
    )


SEARCH = spec("web_search", query="string")
WEATHER = spec("get_weather", city="string")
NOW = spec("current_date")
TOOLS = [SEARCH, WEATHER, NOW]


def calls(text: str, fmt: str = "auto", tools: list[ToolSpec] = TOOLS) -> list[tuple[str, Any]]:
    result = get_format(fmt).parse(text, tools)
    assert result.kind == "tool_call", result
    return [(c.tool, c.args) for c in result.calls]


def kind(text: str, fmt: str = "auto", tools: list[ToolSpec] = TOOLS) -> str:
    return get_format(fmt).parse(text, tools).kind


# ------------------------------------------------------------------ the formats


def test_json_bare_and_fenced() -> None:
    assert calls('{"action": "web_search", "action_input": {"query": "x"}}', "json") == [
        ("web_search", {"query": "x"})
    ]
    fenced = '```json\n{"action": "get_weather", "action_input": {"city": "Oslo"}}\n```'
    assert calls(fenced, "json") == [("get_weather", {"city": "Oslo"})]


def test_json_final_answer_forms() -> None:
    r = JsonFormat().parse('{"action": "Final Answer", "action_input": "42"}', TOOLS)
    assert (r.kind, r.answer) == ("final_answer", "42")
    r = JsonFormat().parse("Just prose, no JSON.", TOOLS)
    assert (r.kind, r.answer) == ("final_answer", "Just prose, no JSON.")


def test_react_action_and_final() -> None:
    text = 'Thought: look\nAction: web_search\nAction Input: {"query": "tides"}'
    assert calls(text, "react") == [("web_search", {"query": "tides"})]
    r = ReactFormat().parse("Thought: done\nFinal Answer: It is 4 pm.", TOOLS)
    assert (r.kind, r.answer) == ("final_answer", "It is 4 pm.")


def test_xml_hermes_and_qwen_coder() -> None:
    hermes = '<tool_call>\n{"name": "web_search", "arguments": {"query": "q"}}\n</tool_call>'
    assert calls(hermes, "xml") == [("web_search", {"query": "q"})]
    qwen = (
        "<tool_call>\n<function=get_weather>\n<parameter=city>\nTokyo, Japan\n</parameter>\n"
        "</function>\n</tool_call>"
    )
    assert calls(qwen, "xml") == [("get_weather", {"city": "Tokyo, Japan"})]
    r = XmlFormat().parse("The answer is 7.", TOOLS)
    assert (r.kind, r.answer) == ("final_answer", "The answer is 7.")


def test_native_repairs_an_arguments_string() -> None:
    r = NativeFormat().parse("{'query': 'a',}", [SEARCH])
    assert [(c.tool, c.args) for c in r.calls] == [("web_search", {"query": "a"})]
    assert NativeFormat().parse("{}", [SEARCH, WEATHER]).kind == "unrecoverable"


def test_native_envelope_and_raw_text_for_one_parameter() -> None:
    r = NativeFormat().parse('{"name": "web_search", "arguments": {"query": "z"}}', [SEARCH])
    assert r.calls[0].args == {"query": "z"}
    r = NativeFormat().parse("len(df['a'])", [SEARCH])
    assert r.calls[0].args == {"query": "len(df['a'])"}
    assert NativeFormat().parse("not json", [spec("two", a="string", b="string")]).kind == (
        "unrecoverable"
    )


def test_auto_special_tokens() -> None:
    deepseek = (
        "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>web_search\n"  # noqa: RUF001
        '```json\n{"query": "q"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>'  # noqa: RUF001
    )
    assert calls(deepseek) == [("web_search", {"query": "q"})]
    tag = '<|python_tag|>{"type": "function", "name": "get_weather", "parameters": {"city": "x"}}'
    assert calls(tag + "<|eom_id|>") == [("get_weather", {"city": "x"})]
    assert calls('<|python_tag|>web_search.call(query="gold")<|eom_id|>') == [
        ("web_search", {"query": "gold"})
    ]
    assert calls('[TOOL_CALLS]web_search[ARGS]{"query": "news"}') == [
        ("web_search", {"query": "news"})
    ]
    degenerate = "<｜tool▁calls▁begin｜>" * 30 + "M" * 500  # noqa: RUF001
    assert kind(degenerate) == "unrecoverable"


def test_special_token_inside_an_argument_does_not_drop_calls() -> None:
    # found by hypothesis: the token in the second call's argument made `_special`
    # read only what followed it (the third call) and drop the first two
    tools = [spec(n, a="string") for n in ("first", "second", "third")]
    form = JsonFormat()
    parsed = [
        ParsedCall("first", {"a": "x"}),
        ParsedCall("second", {"a": "[TOOL_CALLS]"}),
        ParsedCall("third", {"a": "y"}),
    ]
    result = form.parse(form.render_calls(parsed), tools)
    assert result.calls == tuple(parsed)


def test_tool_call_tag_inside_an_argument_keeps_the_block_whole() -> None:
    # found by hypothesis: the lenient split let the "<tool_call>" in the argument
    # string end the block, so the call's JSON read as cut off
    form = XmlFormat()
    parsed = [ParsedCall("a", {"a": ["<tool_call>"]}), ParsedCall("b", {"a": "x</tool_call>"})]
    result = form.parse(form.render_calls(parsed), [spec("a", a="array"), spec("b", a="string")])
    assert result.calls == tuple(parsed)
    # a missing closing tag is still read (the next opening tag ends the block)
    text = (
        '<tool_call>{"name": "a", "arguments": {"a": [1]}}\n'
        '<tool_call>{"name": "b", "arguments": {"a": "y"}}</tool_call>'
    )
    assert len(form.parse(text, [spec("a", a="array"), spec("b", a="string")]).calls) == 2


def test_auto_reads_a_json_call_whose_argument_holds_a_tool_call_tag() -> None:
    # found by hypothesis: the tag sent auto to the xml reader, which found no call
    form = AutoFormat()
    call = ParsedCall("a", {"a": ["<tool_call>"]})
    assert form.parse(form.render_calls([call]), [spec("a", a="array")]).calls == (call,)


def test_auto_pythonic_parallel_calls() -> None:
    assert calls('[get_weather(city="A"), get_weather(city="B")]<|eot|>') == [
        ("get_weather", {"city": "A"}),
        ("get_weather", {"city": "B"}),
    ]


def test_unknown_format_name() -> None:
    with pytest.raises(ConfigurationError, match="unknown action format"):
        get_format("yaml")


def test_templates_are_visible_and_overridable() -> None:
    assert "$tools" in JsonFormat().template
    text = ReactFormat().instructions(TOOLS)
    assert "web_search" in text and "Action Input" in text
    custom = ReactFormat(template="Tools: $tool_names. Go.")
    assert custom.instructions(TOOLS) == "Tools: web_search, get_weather, current_date. Go."


# ------------------------------------------------------------------ each repair

REPAIRS: list[tuple[str, str, str, list[tuple[str, Any]]]] = [
    (
        "newline_in_string",
        "json",
        '{"action": "web_search", "action_input": {"query": "line one\nline two"}}',
        [("web_search", {"query": "line one\nline two"})],
    ),
    (
        "control_char_in_string",
        "json",
        '{"action": "web_search", "action_input": {"query": "tab\there"}}',
        [("web_search", {"query": "tab\there"})],
    ),
    (
        "single_quotes",
        "react",
        "Action: web_search\nAction Input: {'query': 'it's raining'}",
        [("web_search", {"query": "it's raining"})],
    ),
    (
        "apostrophe_in_valid_json",
        "xml",
        '<tool_call>{"name": "web_search", "arguments": {"query": "what\'s up"}}</tool_call>',
        [("web_search", {"query": "what's up"})],
    ),
    (
        "trailing_comma",
        "json",
        '{"action": "web_search", "action_input": {"query": "a",},}',
        [("web_search", {"query": "a"})],
    ),
    (
        "unclosed_fence",
        "json",
        'Action:\n```json\n{"action": "web_search", "action_input": {"query": "u"}}\n',
        [("web_search", {"query": "u"})],
    ),
    (
        "nested_fence",
        "json",
        '````\n```json\n{"action": "web_search", "action_input": {"query": "n"}}\n```\n````',
        [("web_search", {"query": "n"})],
    ),
    (
        "prose_around",
        "json",
        'Sure! Here you go:\n{"action": "web_search", "action_input": {"query": "p"}}\nHope so.',
        [("web_search", {"query": "p"})],
    ),
    (
        "inline_args",
        "react",
        'Action: web_search(query="inline")',
        [("web_search", {"query": "inline"})],
    ),
    (
        "inline_json_args",
        "react",
        'Action: web_search {"query": "inline"}',
        [("web_search", {"query": "inline"})],
    ),
    ("missing_input", "react", "Thought: t\nAction: current_date", [("current_date", {})]),
    (
        "several_actions",
        "react",
        'Action: web_search\nAction Input: {"query": "1"}\n'
        'Action: get_weather\nAction Input: {"city": "2"}',
        [("web_search", {"query": "1"}), ("get_weather", {"city": "2"})],
    ),
    (
        "text_after_action",
        "react",
        'Action: web_search\nAction Input: {"query": "t"} and then I will wait.',
        [("web_search", {"query": "t"})],
    ),
    (
        "hallucinated_observation",
        "react",
        'Action: web_search\nAction Input: {"query": "h"}\nObservation: made up\n'
        'Action: get_weather\nAction Input: {"city": "never"}',
        [("web_search", {"query": "h"})],
    ),
    (
        "action_and_final_answer",
        "react",
        'Action: web_search\nAction Input: {"query": "f"}\nFinal Answer: guessed',
        [("web_search", {"query": "f"})],
    ),
    (
        "tool_name_case_and_spacing",
        "react",
        'Action: Web Search\nAction Input: {"query": "c"}',
        [("web_search", {"query": "c"})],
    ),
    (
        "python_true",
        "react",
        'Action: web_search\nAction Input: {"query": "x", "exact": True}',
        [("web_search", {"query": "x", "exact": True})],
    ),
    (
        "schema_echo_for_no_parameter_tool",
        "react",
        "Action: current_date\nAction Input: {'type': 'object'}",
        [("current_date", {})],
    ),
    (
        "double_encoded",
        "json",
        '"{\\"action\\": \\"web_search\\", \\"action_input\\": {\\"query\\": \\"d\\"}}"',
        [("web_search", {"query": "d"})],
    ),
]


@pytest.mark.parametrize(
    ("fmt", "text", "expected"), [r[1:] for r in REPAIRS], ids=[r[0] for r in REPAIRS]
)
def test_repair(fmt: str, text: str, expected: list[tuple[str, Any]]) -> None:
    assert calls(text, fmt) == expected


def test_empty_action_then_final_answer_is_the_answer() -> None:
    r = ReactFormat().parse(
        "Thought: I know\nAction: None\nAction Input: None\nFinal Answer: 42", TOOLS
    )
    assert (r.kind, r.answer) == ("final_answer", "42")
    assert kind("Action: None\nAction Input: None", "react") == "unrecoverable"


def test_valid_input_needs_no_repair() -> None:
    r = XmlFormat().parse(
        '<tool_call>{"name": "web_search", "arguments": {"query": "it\'s"}}</tool_call>', TOOLS
    )
    assert r.repairs == ()


def test_title_alias_only_for_offered_tools() -> None:
    r = ReactFormat().parse(
        'Action: Weather Lookup\nAction Input: {"city": "x"}',
        TOOLS,
        {"Weather Lookup": "get_weather"},
    )
    assert [c.tool for c in r.calls] == ["get_weather"]
    r = ReactFormat().parse(
        'Action: Weather Lookup\nAction Input: {"city": "x"}', TOOLS, {"Weather Lookup": "absent"}
    )
    assert r.kind == "unrecoverable"


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("react", "Action: None\n\nAction Input: None"),
        ("react", "Action: delete_everything\nAction Input: {}"),
        ("react", "Thought: The current language of the user is: en. I need"),
        ("react", "Action: web_search\nAction Input: {'type': 'object', 'properties': {}}"),
        ("json", '{"action": "rm_rf", "action_input": {}}'),
        ("json", '{"action": "web_search", "action_input": {"query": "unterminated'),
        ("xml", "<tool_call>\n{broken</tool_call>"),
        ("auto", "<｜tool▁calls▁begin｜>MMMM"),  # noqa: RUF001
        ("auto", ""),
        ("react", "Action: web_search\nAction Input: {'query': None or 'x'}"),
    ],
)
def test_refusals(fmt: str, text: str) -> None:
    result = get_format(fmt).parse(text, TOOLS)
    assert result.kind == "unrecoverable"
    assert result.reason


def test_ambiguous_normalized_names_match_nothing() -> None:
    tools = [spec("web_search", query="string"), spec("WebSearch", query="string")]
    assert kind('Action: web search\nAction Input: {"query": "x"}', "react", tools) == (
        "unrecoverable"
    )


def test_never_invents_a_tool_from_bare_arguments_when_ambiguous() -> None:
    tools = [spec("a", query="string"), spec("b", query="string")]
    assert kind('{"query": "x"}', "json", tools) != "tool_call"
    assert calls('{"query": "x"}', "json", [spec("a", query="string")]) == [("a", {"query": "x"})]


# ------------------------------------------------------------------ bounded work


@pytest.mark.parametrize(
    "text",
    [
        "{" * 200_000,
        "[" * 200_000 + "]" * 200_000,
        '{"a":' * 3000 + "1" + "}" * 3000,
        "Action" + " " * 200_000 + "x",
        "<think>" * 50_000,
        "\x00\xff\ud7ff" * 10_000,
        "[" + "f(a=1)," * 50_000 + "]",
    ],
)
@pytest.mark.parametrize("fmt", ["json", "react", "xml", "auto", "native"])
def test_bounded_on_hostile_input(text: str, fmt: str) -> None:
    import time

    began = time.thread_time()  # CPU time: a loaded machine does not inflate it
    result = get_format(fmt).parse(text, [SEARCH])
    assert result.kind in ("tool_call", "final_answer", "unrecoverable")
    assert time.thread_time() - began < 5


def test_too_long_is_refused() -> None:
    assert kind("x" * (repair.MAX_CHARS + 1)) == "unrecoverable"


def test_render_calls_shape() -> None:
    call = ParsedCall("web_search", {"query": "q"})
    assert "<tool_call>" in XmlFormat().render_calls([call])
    assert ReactFormat().render_calls([call]).startswith("Action: web_search\n")
    assert AutoFormat().parse(JsonFormat().render_calls([call]), TOOLS).calls == (call,)


@pytest.mark.parametrize("fmt", ["json", "auto"])
def test_think_markup_inside_an_argument_is_data(fmt: str) -> None:
    text = (
        '[{"action": "web_search", "action_input": {"query": "a"}}, '
        '{"action": "web_search", "action_input": {"query": "</think>"}}]'
    )
    assert calls(text, fmt) == [
        ("web_search", {"query": "a"}),
        ("web_search", {"query": "</think>"}),
    ]
    # A real reasoning block before the action is still cut.
    assert calls(
        '<think>maybe get_weather?</think>{"action": "get_weather", '
        '"action_input": {"city": "Oslo"}}',
        fmt,
    ) == [("get_weather", {"city": "Oslo"})]
