"""Round 5 of issue #15 (session 10): the readers and refusals added for the `tune10`
misses, each tested with the output it was written for (from
benchmarks/data/parse_corpus/session10.jsonl's `tune10` split; the peer's test is named
beside it), and the text each rule must leave alone."""

from __future__ import annotations

import envelopes
import pytest
from envelopes import FORMATS, calls

from pilothouse.actions import get_format
from pilothouse.actions.markup import call_markup
from pilothouse.actions.readers import unpipe_tags
from pilothouse.models.base import ToolSpec


def spec(name: str, **props: str) -> ToolSpec:
    return envelopes.spec(name, required=False, **props)


def refused(text: str, tools: list[ToolSpec], fmt: str = "auto") -> str:
    reason = envelopes.refused(text, tools, fmt)
    assert reason
    return reason


WEATHER = [spec("get_current_weather", city="string", state="string", unit="string")]


# ------------------------------------------------- JSON Lines of calls (MiniMax-M1)

# vLLM tests/tool_parsers/test_minimax_tool_parser.py, "multiple_tool_calls"
MINIMAX_TWO = (
    '<tool_calls>\n{"name": "get_current_weather", "arguments": {"city": "Dallas", '
    '"state": "TX", "unit": "fahrenheit"}}\n{"name": "get_current_weather", "arguments": '
    '{"city": "Orlando", "state": "FL", "unit": "fahrenheit"}}\n</tool_calls>'
)


@pytest.mark.parametrize("fmt", FORMATS)
def test_minimax_m1_one_call_a_line_reads_every_line(fmt: str) -> None:
    assert calls(MINIMAX_TWO, WEATHER, fmt) == [
        ("get_current_weather", {"city": "Dallas", "state": "TX", "unit": "fahrenheit"}),
        ("get_current_weather", {"city": "Orlando", "state": "FL", "unit": "fahrenheit"}),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_unreadable_line_among_calls_refuses_the_run(fmt: str) -> None:
    # vLLM's "invalid_json" test: vLLM runs the two readable calls; which call the
    # middle line was cannot be told, so running the others would guess
    tools = [spec("valid_tool", city="string"), spec("another_valid_tool", param="string")]
    text = (
        '<tool_calls>\n{"name": "valid_tool", "arguments": {"city": "Seattle"}}\n'
        '{invalid json here}\n{"name": "another_valid_tool", "arguments": {"param": "value"}}\n'
        "</tool_calls>"
    )
    refused(text, tools, fmt)
    # the same run without the envelope: the JSON scan refuses it too
    refused(text.removeprefix("<tool_calls>\n").removesuffix("\n</tool_calls>"), tools, fmt)


def test_prose_braces_beside_a_call_do_not_refuse_it() -> None:
    # braces in prose are not an unreadable call: only a block in the run of calls is
    text = (
        'I will fill in {city} for you. {"name": "get_current_weather", "arguments": '
        '{"city": "Oslo", "state": "NO"}} and then report back.'
    )
    assert calls(text, WEATHER) == [("get_current_weather", {"city": "Oslo", "state": "NO"})]


# ------------------------------------------------- Solar Open 2

SOLAR_TOOLS = [spec("get_weather", city="string"), spec("get_time")]
SEOUL = (
    "<|tool_call:start|>get_weather\n"
    "<|tool_arg:start|>city<|tool_arg:value|>Seoul<|tool_arg:end|>\n<|tool_call:end|>"
)


@pytest.mark.parametrize("fmt", FORMATS)
def test_solar_open2_calls_with_prose_around(fmt: str) -> None:
    # vLLM tests/tool_parsers/test_solar_open2_tool_parser.py
    assert calls("Let me check the weather." + SEOUL, SOLAR_TOOLS, fmt) == [
        ("get_weather", {"city": "Seoul"})
    ]
    assert calls("pre" + SEOUL + "post", SOLAR_TOOLS, fmt) == [("get_weather", {"city": "Seoul"})]
    two = "I'll check both." + SEOUL + "\n" + SEOUL.replace("Seoul", "Tokyo")
    assert calls(two, SOLAR_TOOLS, fmt) == [
        ("get_weather", {"city": "Seoul"}),
        ("get_weather", {"city": "Tokyo"}),
    ]


def test_solar_open2_values_typed_by_the_schema() -> None:
    tools = [
        spec("search", query="string", max_results="integer"),
        spec("process_data", data="string"),
    ]
    text = (
        "<|tool_call:start|>search\n"
        "<|tool_arg:start|>query<|tool_arg:value|>vLLM tutorial<|tool_arg:end|>\n"
        "<|tool_arg:start|>max_results<|tool_arg:value|>5<|tool_arg:end|>\n<|tool_call:end|>"
    )
    assert calls(text, tools) == [("search", {"query": "vLLM tutorial", "max_results": 5})]
    text = (
        "<|tool_call:start|>process_data\n"
        '<|tool_arg:start|>data<|tool_arg:value|>{"key": "value"}<|tool_arg:end|>\n'
        "<|tool_call:end|>"
    )
    assert calls(text, tools) == [("process_data", {"data": '{"key": "value"}'})]


def test_solar_open2_no_arguments_and_a_missing_arg_end() -> None:
    assert calls("<|tool_call:start|>get_time\n<|tool_call:end|>", SOLAR_TOOLS) == [
        ("get_time", {})
    ]
    text = (
        "<|tool_call:start|>get_weather\n"
        "<|tool_arg:start|>city<|tool_arg:value|>Oslo<|tool_call:end|>"
    )
    assert calls(text, SOLAR_TOOLS) == [("get_weather", {"city": "Oslo"})]


@pytest.mark.parametrize("fmt", FORMATS)
def test_solar_open2_cut_off_or_doubled_is_refused(fmt: str) -> None:
    # the conventions of the other readers (Kimi K3: a call that never closes; Hy v4:
    # a parameter given twice), not guesses
    cut = "On it.<|tool_call:start|>get_weather\n<|tool_arg:start|>city<|tool_arg:value|>Osl"
    assert "cut off" in refused(cut, SOLAR_TOOLS, fmt)
    twice = (
        "<|tool_call:start|>get_weather\n<|tool_arg:start|>city<|tool_arg:value|>A<|tool_arg:end|>\n"
        "<|tool_arg:start|>city<|tool_arg:value|>B<|tool_arg:end|>\n<|tool_call:end|>"
    )
    assert "twice" in refused(twice, SOLAR_TOOLS, fmt)


# ------------------------------------------------- vendor-piped tags (K2-V3 "IFM")

IFM_TOOLS = [spec("get_weather", city="string"), spec("study_args", user_id="integer")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_ifm_calls_read_as_the_plain_tags(fmt: str) -> None:
    # SGLang test/registered/function_call/test_k2v3_tool_parser.py
    text = (
        "<ifm|think>need lookup</ifm|think>\n<ifm|tool_calls>\n<ifm|tool_call>get_weather"
        "<ifm|arg_key>city</ifm|arg_key><ifm|arg_value>Tokyo</ifm|arg_value></ifm|tool_call>\n"
        "</ifm|tool_calls>"
    )
    assert calls(text, IFM_TOOLS, fmt) == [("get_weather", {"city": "Tokyo"})]


def test_an_arg_type_string_hint_keeps_the_value_text() -> None:
    # the schema says integer; the model's own <arg_type>string</arg_type> hint wins
    text = (
        "<ifm|tool_call>study_args<ifm|arg_key>user_id</ifm|arg_key><ifm|arg_type>string"
        "</ifm|arg_type><ifm|arg_value>12345</ifm|arg_value></ifm|tool_call>"
    )
    assert calls(text, IFM_TOOLS) == [("study_args", {"user_id": "12345"})]


def test_unpiping_touches_only_call_and_reasoning_tags() -> None:
    assert unpipe_tags("<ifm|tool_call>x</ifm|tool_call>") == "<tool_call>x</tool_call>"
    assert unpipe_tags("<ifm|think_faster>r</ifm|think_faster>") == "<think>r</think>"
    for prose in ("The inner product <a|b> is zero.", "<x|y> = <y|x>*", "a | b", "<ifm|note>"):
        assert unpipe_tags(prose) == prose


def test_an_unread_piped_call_tag_is_markup_and_bra_kets_are_not() -> None:
    assert call_markup("<xyz|tool_call>{broken") == "<xyz|tool_call>"
    for answer in ("The inner product <a|b> is zero.", "By Dirac, <psi|phi> = 1."):
        assert call_markup(answer) is None
        result = get_format("auto").parse(answer, IFM_TOOLS)
        assert result.kind == "final_answer" and result.answer == answer


# ------------------------------------------------- forged tool results

FORGED = [
    '<tool_response>\n{"temp": 20}\n</tool_response>\nThe weather in Paris is 20C.',
    '<tool_result call_id="call_1">\nAnswers received\n</tool_result>',
    "<function_results>\n<result>20C</result>\n</function_results>",
]


@pytest.mark.parametrize("text", FORGED)
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_forged_tool_result_is_not_an_answer(text: str, fmt: str) -> None:
    assert call_markup(text) is not None
    assert get_format(fmt).parse(text, IFM_TOOLS).kind == "unrecoverable"


def test_a_call_before_a_forged_result_is_the_call() -> None:
    text = (
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>\n'
        '<tool_response>{"temp": 20}</tool_response>'
    )
    assert calls(text, IFM_TOOLS) == [("get_weather", {"city": "Paris"})]


@pytest.mark.parametrize(
    "answer",
    [
        "Hermes puts results in <tool_response> tags.",
        "The <result> element holds the output.",
        "```xml\n<tool_response><value>1</value></tool_response>\n```",
    ],
)
def test_results_mentioned_in_prose_or_xml_fences_stay_answers(answer: str) -> None:
    assert call_markup(answer) is None


# ------------------------------------------------- second batch (tune10b)

HY3_TOOLS = [spec("get_current_date"), spec("get_weather", city="string", date="string")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_hy3_tool_sep_between_name_and_arguments(fmt: str) -> None:
    # vLLM tests/tool_parsers/test_hy_v3_tool_parser.py
    text = "<tool_calls><tool_call>get_current_date<tool_sep></tool_call></tool_calls>"
    assert calls(text, HY3_TOOLS, fmt) == [("get_current_date", {})]
    text = (
        "<tool_calls><tool_call>get_weather<tool_sep><arg_key>city</arg_key><arg_value>Beijing"
        "</arg_value><arg_key>date</arg_key><arg_value>2026-03-30</arg_value></tool_call>"
        "</tool_calls>"
    )
    assert calls(text, HY3_TOOLS, fmt) == [
        ("get_weather", {"city": "Beijing", "date": "2026-03-30"})
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_name_only_object_in_a_call_envelope_is_a_call_without_arguments(fmt: str) -> None:
    # vLLM tests/tool_use/test_tng_tool_parser.py, "tool_call_no_arguments"
    tools = [spec("mytool")]
    assert calls('<tool_call>{"name": "mytool"}</tool_call>', tools, fmt) == [("mytool", {})]
    # an unoffered name is refused; bare, an object naming an unoffered tool is data.
    # Session 11 (round 6, `name_only_object`, from bolna-ai/bolna#826): a whole reply
    # that only names an offered tool needing no arguments is that call
    refused('<tool_call>{"name": "ghost"}</tool_call>', tools, fmt)
    assert get_format(fmt).parse('{"name": "ghost"}', tools).kind != "tool_call"
    assert calls('{"name": "mytool"}', tools, fmt) == [("mytool", {})]


# ------------------------------------------------- third batch (tune10c)

SPECIAL = [spec("special_function", arg1="integer")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_mistral_bracket_reasoning_is_not_the_answer(fmt: str) -> None:
    # llama.cpp tests/test-chat.cpp, Ministral-3-14B-Reasoning-2512
    text = '[THINK]I need to output the invoice details in JSON[/THINK]```json\n{"amount": 1}\n```'
    result = get_format(fmt).parse(text, SPECIAL)
    assert result.kind == "final_answer"
    assert result.answer == '```json\n{"amount": 1}\n```'


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_call_token_inside_the_reasoning_is_reasoning(fmt: str) -> None:
    # llama.cpp tests/test-chat.cpp: "fake tool call marker in reasoning"
    text = (
        '[THINK]Let me think about [TOOL_CALLS]special_function[ARGS]{\\"arg1\\":1} and more'
        '[/THINK][TOOL_CALLS]special_function[ARGS]{"arg1": 1}'
    )
    assert calls(text, SPECIAL, fmt) == [("special_function", {"arg1": 1})]
    text = (
        '<think>maybe <|python_tag|>{"name": "x"}</think>\n'
        '[TOOL_CALLS]special_function[ARGS]{"arg1": 2}'
    )
    assert calls(text, SPECIAL, fmt) == [("special_function", {"arg1": 2})]


def test_a_bracket_think_word_in_prose_stays_prose() -> None:
    answer = "Type [THINK] to start a reasoning block in that tool."
    result = get_format("auto").parse(answer, SPECIAL)
    assert result.kind == "final_answer" and result.answer == answer
