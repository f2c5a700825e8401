"""Round 4 of issue #15: the readers and repairs added for the new `tune` misses, each
tested with the real output it was written for (the peer's test or thread is named
beside it), and the refusals that keep them from guessing."""

from __future__ import annotations

import envelopes
import pytest
from envelopes import FORMATS, calls, spec

from pilothouse.actions import get_format, repair
from pilothouse.actions.degenerate import degenerate
from pilothouse.actions.markup import call_markup
from pilothouse.models.base import ToolSpec


def refused(text: str, tools: list[ToolSpec], fmt: str = "auto") -> str:
    reason = envelopes.refused(text, tools, fmt)
    assert reason
    return reason


# ------------------------------------------------------------------- Kimi K3 (XTML)

K3_TOOLS = [ToolSpec("python", "", {"type": "object", "properties": {"code": {"type": "string"}}})]


def k3_call(tool: str, args: dict[str, tuple[str, str]]) -> str:
    """SGLang's `_call_block` helper (test_kimik3_detector.py), as the model writes it."""
    parts = [f'<|open|>call tool="{tool}" index="1"<|sep|>']
    for key, (kind, value) in args.items():
        parts.append(
            f'<|open|>argument key="{key}" type="{kind}"<|sep|>{value}<|close|>argument<|sep|>'
        )
    return "".join(parts) + "<|close|>call<|sep|>"


@pytest.mark.parametrize("fmt", FORMATS)
def test_kimi_k3_call_with_typed_arguments(fmt: str) -> None:
    text = (
        "<|open|>response<|sep|>Let me run it.<|close|>response<|sep|><|open|>tools<|sep|>"
        + k3_call("python", {"code": ("string", "print(1)"), "opts": ("object", '{"a": 1}')})
        + "<|close|>tools<|sep|>"
    )
    assert calls(text, K3_TOOLS, fmt) == [("python", {"code": "print(1)", "opts": {"a": 1}})]


def test_kimi_k3_non_json_typed_value_stays_text() -> None:
    body = k3_call("python", {"n": ("number", "42"), "bad": ("object", "{not json")})
    text = "<|open|>tools<|sep|>" + body  # the tools section never closes
    assert calls(text, K3_TOOLS) == [("python", {"n": 42, "bad": "{not json"})]


@pytest.mark.parametrize("fmt", FORMATS)
def test_kimi_k3_cut_off_call_is_refused(fmt: str) -> None:
    refused('<|open|>tools<|sep|><|open|>call tool="python" index="1"<|sep|>', K3_TOOLS, fmt)
    refused('weighing <|open|>call tool="pyt', K3_TOOLS, fmt)
    refused("done<|open|>tool", K3_TOOLS, fmt)  # a tools section begun, then nothing


@pytest.mark.parametrize("fmt", FORMATS)
def test_kimi_k3_channels_give_the_answer(fmt: str) -> None:
    for text, answer in [
        ("<|open|>response<|sep|>hi there<|close|>response<|sep|><|close|>message<|sep|>", "hi"),
        ("trace<|close|>think<|sep|><|open|>response<|sep|>answer<|close|>response<|sep|>", "an"),
        ("deliberating<|close|>think<|sep|>visible", "visible"),
    ]:
        result = get_format(fmt).parse(text, K3_TOOLS)
        assert result.kind == "final_answer" and result.answer.startswith(answer), result
    # only reasoning, cut off: nothing said to the user
    refused("<|open|>think<|sep|>cut off mid-thought", K3_TOOLS, fmt)


# ------------------------------------------------- invoke XML under a vendor prefix

STEP_TOOLS = [spec("get_weather", city="string"), spec("get_time", timezone="string")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_step3_steptml_invoke(fmt: str) -> None:
    # vLLM tests/tool_parsers/test_step3_tool_parser.py, parallel_tool_calls_output
    text = (
        "<\uff5ctool_calls_begin\uff5c><\uff5ctool_call_begin\uff5c>"
        '<steptml:invoke name="get_weather">'
        '<steptml:parameter name="city">Tokyo</steptml:parameter>'
        "</steptml:invoke><\uff5ctool_call_end\uff5c><\uff5ctool_sep\uff5c>"
        '<\uff5ctool_call_begin\uff5c><steptml:invoke name="get_time">'
        '<steptml:parameter name="timezone">Asia/Tokyo</steptml:parameter>'
        "</steptml:invoke><\uff5ctool_call_end\uff5c><\uff5ctool_calls_end\uff5c>"
    )
    assert calls(text, STEP_TOOLS, fmt) == [
        ("get_weather", {"city": "Tokyo"}),
        ("get_time", {"timezone": "Asia/Tokyo"}),
    ]


def test_inline_parameter_whitespace_is_data_and_layout_is_not() -> None:
    tools = [spec("edit_file", old_string="string", indent="integer")]
    # vLLM's Step3 whitespace test: a value written inline keeps its spaces
    inline = (
        '<steptml:invoke name="edit_file"><steptml:parameter name="old_string">    if x:'
        '</steptml:parameter><steptml:parameter name="indent"> 4 </steptml:parameter>'
        "</steptml:invoke>"
    )
    assert calls(inline, tools) == [("edit_file", {"old_string": "    if x:", "indent": 4})]
    # a value laid out on its own lines loses the layout
    laid_out = (
        '<invoke name="edit_file">\n<parameter name="old_string">\n  return 1\n</parameter>\n'
        '<parameter name="indent">2</parameter>\n</invoke>'
    )
    assert calls(laid_out, tools) == [("edit_file", {"old_string": "return 1", "indent": 2})]


def test_dsml_invoke_with_a_non_json_string_false_value() -> None:
    # SGLang test_deepseekv32_detector.py: string="false" holding prose is that prose
    tools = [ToolSpec("write_note", "", {"type": "object", "properties": {"payload": {}}})]
    bar = "\uff5c"
    text = (
        f'<{bar}DSML{bar}function_calls>\n<{bar}DSML{bar}invoke name="write_note">\n'
        f'<{bar}DSML{bar}parameter name="payload" string="false">Здравствуйте, мир! Это тест'
        f"</{bar}DSML{bar}parameter>\n</{bar}DSML{bar}invoke>\n</{bar}DSML{bar}function_calls>"
    )
    assert calls(text, tools) == [("write_note", {"payload": "Здравствуйте, мир! Это тест"})]


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_invoke_that_never_closes_is_refused(fmt: str) -> None:
    # SGLang test_minimax_m2_detector.py: the stream ends inside the invoke
    tools = [spec("context_info", metadata_only="boolean")]
    text = (
        'Normal text before<minimax:tool_call><invoke name="context_info">'
        '<parameter name="metadata_only">false</parameter>'
    )
    assert "cut off" in refused(text, tools, fmt)
    # with its </invoke> the same call is complete, the wrapper's close may be missing
    assert calls(text + "</invoke>", tools, fmt) == [("context_info", {"metadata_only": False})]


def test_a_value_holding_its_own_closing_tag() -> None:
    # SGLang test_minimax_m2_detector.py: the last </parameter> before </invoke> ends it
    text = (
        '<minimax:tool_call><invoke name="test_func"><parameter name="content">This text '
        "contains </parameter> in it</parameter></invoke></minimax:tool_call>"
    )
    got = calls(text, [spec("test_func", content="string")])
    assert got == [("test_func", {"content": "This text contains </parameter> in it"})]


# ------------------------------------------------------------------ Cohere Command


def test_cohere2_text_block_and_command_r_plus_turn_tokens_are_answers() -> None:
    tools = [spec("special_function", arg1="integer")]
    # llama.cpp tests/test-chat.cpp: Cohere2 MoE (opener in the prompt) and Command R+
    for text in (
        "I'm\nthinking<|END_THINKING|><|START_TEXT|>Hello, world!\nWhat's up?<|END_TEXT|>",
        "<|CHATBOT_TOKEN|>Hello, world!\nWhat's up?<|END_OF_TURN_TOKEN|>",
    ):
        result = get_format("auto").parse(text, tools)
        assert result.kind == "final_answer", result
        assert result.answer == "Hello, world!\nWhat's up?"


@pytest.mark.parametrize("fmt", FORMATS)
def test_command_r_fenced_action_list(fmt: str) -> None:
    # Ollama model/parsers/commandr_test.go: TestCommandRParser_MultipleToolCalls
    tools = [spec("get_weather", location="string"), spec("get_time", timezone="string")]
    text = (
        "Action: ```json\n"
        '[\n    {\n        "tool_name": "get_weather",\n        "parameters": {"location": '
        '"New York"}\n    },\n    {\n        "tool_name": "get_time",\n        "parameters": '
        '{"timezone": "EST"}\n    }\n]\n```'
    )
    assert calls(text, tools, fmt) == [
        ("get_weather", {"location": "New York"}),
        ("get_time", {"timezone": "EST"}),
    ]
    # the fence never closes: the list is complete all the same
    unclosed = 'Action: ```json\n[{"tool_name": "get_time", "parameters": {"timezone": "UTC"}}]'
    assert calls(unclosed, tools, fmt) == [("get_time", {"timezone": "UTC"})]
    # a fence that holds no call names no tool
    refused("Action: ```json\nnot a call\n```", tools, fmt)


# ------------------------------------------------------------------ repairs


def test_a_parameter_name_in_another_case_is_the_schemas() -> None:
    # SGLang test_minicpm4_xml_detector.py: <param name="City"> for the schema's `city`
    tools = [spec("get_weather", city="string")]
    text = '<function name="get_weather"><param name="City">北京</param></function>\n'
    assert calls(text, tools, "xml") == [("get_weather", {"city": "北京"})]
    # both spellings given: nothing is renamed over a value the model wrote
    both = '{"name": "get_weather", "arguments": {"city": "Oslo", "City": "Bern"}}'
    assert calls(both, tools, "json") == [("get_weather", {"city": "Oslo", "City": "Bern"})]


@pytest.mark.parametrize("fmt", ["json", "auto"])
def test_a_tool_name_that_lost_its_opening_quote(fmt: str) -> None:
    # smolagents tests/test_agents.py: test_toolcalling_agent_api_misformatted_output
    tools = [spec("weather_api", location="string", date="string")]
    text = '{"name": weather_api", "arguments": {"location": "Paris", "date": "today"}}'
    assert calls(text, tools, fmt) == [("weather_api", {"location": "Paris", "date": "today"})]


def test_an_argument_value_that_lost_its_quote_is_not_guessed() -> None:
    # NousResearch/hermes-agent: a misspelt enum value, its opening quote lost; only a
    # name (checked against the offered tools) is repaired that way
    assert repair.loads('{"action": listt_apps"}') is None
    assert repair.loads('{"name": weather_api"}') is not None


# ------------------------------------------------------------------ markup and filler


@pytest.mark.parametrize("fmt", FORMATS)
def test_prose_that_mentions_a_function_tag_is_an_answer(fmt: str) -> None:
    # Ollama model/parsers/qwen3coder_bare_test.go
    tools = [spec("exec_command", cmd="string")]
    prose = "the tag <function=foo is documented here"
    result = get_format(fmt).parse(prose, tools)
    assert result.kind == "final_answer" and result.answer == prose
    assert call_markup(prose) is None
    # a real tag, or garbage in one, is markup and never the answer
    refused("<function=<<not xml>></function>", tools, fmt)
    assert call_markup("<function=exec_command>") == "<function=exec_command>"
    for cut in ("<function=", "<function=exec_comm", "I will run it: <function=exec_command\n"):
        assert call_markup(cut) is not None, cut  # the reply ends inside the tag
        refused(cut, tools, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_loop_of_a_few_lines_is_refused(fmt: str) -> None:
    # google-gemini/gemini-cli#15877: "One detail: X. Correct. I'll execute." over and over
    words = ["Wait.", "Done.", "Output.", "Finish.", "End.", "Bye.", "Hello.", "World.", "Go."]
    salad = "\n\n  ".join(f"One detail: {w}\n  Correct.\n\n  I'll execute." for w in words)
    assert degenerate(salad)
    assert "repeats itself" in refused(salad, [spec("google", query="string")], fmt)


def test_answers_that_list_things_are_not_loops() -> None:
    numbered = "\n".join(f"{i}. Step {i}: check the valve" for i in range(1, 30))
    table = "\n".join(["| a | b |", "|---|---|"] + [f"| {i} | {i * i} |" for i in range(20)])
    checklist = "\n".join(f"- item {i}\n  ok" for i in range(7))  # "ok" 7 times of 14
    for text in (numbered, table, checklist):
        assert not degenerate(text), text


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_tag_named_for_an_offered_tool_is_never_an_answer(fmt: str) -> None:
    # Cline-style calls, `<TOOL><param>value</param></TOOL>`: since session 11 the
    # `tool_name_tags` reader reads them (round 6); one cut off before its closing tag
    # is still refused, never the answer
    tools = [spec("read_file", path="string"), spec("google", query="string")]
    text = "I'll read it.\n<read_file>\n<path>src/main.js</path>\n</read_file>"
    assert calls(text, tools, fmt) == [("read_file", {"path": "src/main.js"})]
    assert "<read_file>" in refused(text.removesuffix("</read_file>"), tools, fmt)
    # tags that name no offered tool are prose (HTML in an answer)
    prose = "Use <b>bold</b> and <path> placeholders, e.g. <search> in the docs."
    result = get_format(fmt).parse(prose, tools)
    assert result.kind == "final_answer" and result.answer == prose


PY_TOOLS = [spec("get_weather", location="string"), spec("search", query="string")]


def test_pythonic_call_lists_among_prose() -> None:
    # SGLang test_function_call_parser.py, TestPythonicDetector
    assert calls("[get_weather(location='Tokyo')] Here's the forecast:", PY_TOOLS) == [
        ("get_weather", {"location": "Tokyo"})
    ]
    assert calls("Here's a tool call: [get_weather(location='Paris')]", PY_TOOLS) == [
        ("get_weather", {"location": "Paris"})
    ]
    two = "[get_weather(location='Berlin')] and [search(query='restaurants')]"
    assert calls(two, PY_TOOLS) == [
        ("get_weather", {"location": "Berlin"}),
        ("search", {"query": "restaurants"}),
    ]


def test_a_cut_off_pythonic_list_among_prose_is_refused() -> None:
    refused("[get_weather(location='Berlin')] and [search(query='rest", PY_TOOLS)
    refused("Let me check the weather: [get_weather(location=", PY_TOOLS)
    refused("[get_weather(location='Oslo')] then [delete_all()]", PY_TOOLS)  # not offered


def test_a_pythonic_list_inside_a_json_string_is_data() -> None:
    text = '{"action": "search", "action_input": "[get_weather(location=\'Oslo\')]"}'
    assert calls(text, PY_TOOLS) == [("search", {"query": "[get_weather(location='Oslo')]"})]
