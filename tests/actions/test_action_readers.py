"""The named readers (actions/readers.py): one real-looking reply per syntax, written
from each format's public documentation, and the refusals where a reading would guess."""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse.actions import get_format
from pilothouse.actions.readers import READERS
from pilothouse.models.base import ToolSpec

FORMATS = ["json", "react", "xml", "auto"]


def spec(name: str, **props: str) -> ToolSpec:
    return ToolSpec(
        name,
        "",
        {
            "type": "object",
            "properties": {k: {"type": v} for k, v in props.items()},
            "required": list(props),
        },
    )


TOOLS = [
    spec("get_weather", location="string"),
    spec("get_stock_price", symbol="string", days="integer"),
    spec("get_time"),
    spec("click_element", index="integer"),
    spec("google", query="string"),
]

READS: dict[str, tuple[str, list[tuple[str, Any]]]] = {
    # OpenAI Harmony (gpt-oss), as in the openai/harmony README: recipient in the channel
    "harmony_channel_recipient": (
        "<|channel|>analysis<|message|>Need to use function get_weather.<|end|>"
        "<|start|>assistant<|channel|>commentary to=functions.get_weather "
        '<|constrain|>json<|message|>{"location":"San Francisco"}<|call|>',
        [("get_weather", {"location": "San Francisco"})],
    ),
    # Harmony with the recipient in the role header
    "harmony_header_recipient": (
        "<|start|>assistant to=functions.get_stock_price<|channel|>commentary json"
        '<|message|>{"symbol": "GOOG", "days": 5}<|call|>',
        [("get_stock_price", {"symbol": "GOOG", "days": 5})],
    ),
    # Anthropic function-calling XML leaked as text through an OpenAI-compatible proxy
    "claude_invoke": (
        "I'll check that for you.\n<function_calls>\n"
        '<invoke name="get_stock_price">\n<parameter name="symbol">AAPL</parameter>\n'
        '<parameter name="days">30</parameter>\n</invoke>\n</function_calls>',
        [("get_stock_price", {"symbol": "AAPL", "days": 30})],
    ),
    # Liquid AI LFM2 (its model card's tool-use example)
    "lfm_pythonic": (
        '<|tool_call_start|>[get_weather(location="Boston")]<|tool_call_end|>'
        "Checking the weather in Boston.",
        [("get_weather", {"location": "Boston"})],
    ),
    # Google FunctionGemma (ai.google.dev formatting guide): strings inside <escape>
    "functiongemma": (
        "<start_function_call>call:get_stock_price{symbol:<escape>GOOG<escape>,days:7}"
        "<end_function_call>",
        [("get_stock_price", {"symbol": "GOOG", "days": 7})],
    ),
    # Gemma 3 prompt-based function calling (ai.google.dev): a tool_code fence
    "gemma3_tool_code": (
        '```tool_code\nget_weather(location="Kyoto")\n```',
        [("get_weather", {"location": "Kyoto"})],
    ),
    # Meta Llama 3.1 custom tool calling (llama-models prompt format docs)
    "llama31_function_eq": (
        '<function=get_weather>{"location": "Nairobi"}</function>',
        [("get_weather", {"location": "Nairobi"})],
    ),
    # the same with the '>' lost (small Llama 3.2 fine-tunes)
    "function_eq_eq": (
        '<function=get_weather={"location": "Lima"}</function>',
        [("get_weather", {"location": "Lima"})],
    ),
    # <function>NAME</function> then the arguments (small models imitating Llama tags)
    "function_name_tag": (
        '<function>get_stock_price</function>\n{"symbol": "MSFT", "days": 1}',
        [("get_stock_price", {"symbol": "MSFT", "days": 1})],
    ),
    "function_name_tag_arguments": (
        '<function>get_weather</function><arguments>{"location": "Oslo"}</arguments>',
        [("get_weather", {"location": "Oslo"})],
    ),
    # Hermes envelope with the name in the tag attribute
    "tool_call_name_attr": (
        '<tool_call name="get_weather">{"location": "Cairo"}</tool_call>',
        [("get_weather", {"location": "Cairo"})],
    ),
    # Qwen2.5 / Hermes 3 calling a no-argument tool with just its name
    "tool_call_bare_name": ("<tool_call>get_time</tool_call>", [("get_time", {})]),
    # GLM-4.5: name, then arg_key/arg_value pairs (zai-org GLM-4.5 chat template)
    "glm45_arg_pairs": (
        "<tool_call>get_stock_price\n<arg_key>symbol</arg_key>\n<arg_value>NVDA</arg_value>\n"
        "<arg_key>days</arg_key>\n<arg_value>3</arg_value>\n</tool_call>",
        [("get_stock_price", {"symbol": "NVDA", "days": 3})],
    ),
    # browser-use AgentOutput: an action list keyed by tool name
    "browser_use_action_list": (
        '{"current_state": {"evaluation_previous_goal": "Success", "memory": "", '
        '"next_goal": "Open the first result"}, "action": [{"click_element": {"index": 14}}]}',
        [("click_element", {"index": 14})],
    ),
    "keyed_action_list_bare": (
        '[{"click_element": {"index": 3}}, {"get_time": {}}]',
        [("click_element", {"index": 3}), ("get_time", {})],
    ),
    # AutoGPT classic: thoughts, then a command with name and args
    "autogpt_command": (
        '{"thoughts": {"text": "search", "reasoning": "need data", "plan": "- search", '
        '"criticism": "", "speak": "Searching."}, '
        '"command": {"name": "google", "args": {"query": "AutoGPT releases"}}}',
        [("google", {"query": "AutoGPT releases"})],
    ),
    # Gemma 4: <|"|> string tokens, the close token <turn|> or missing, a fragmented open
    "gemma4_call": (
        '<|tool_call>call:get_stock_price{symbol:<|"|>AMZN<|"|>,days:2}<tool_call|>',
        [("get_stock_price", {"symbol": "AMZN", "days": 2})],
    ),
    "gemma4_turn_close": (
        '<|tool_call>call:get_weather{location:<|"|>Lyon<|"|>}<turn|>',
        [("get_weather", {"location": "Lyon"})],
    ),
    "gemma4_fragmented_open": (
        '<call>get_weather{location:<|"|>Porto<|"|>}',
        [("get_weather", {"location": "Porto"})],
    ),
    # Mistral tokenizer v11+: [TOOL_CALLS]NAME{json}, one token per call
    "mistral_v11_calls": (
        '[TOOL_CALLS]get_weather{"location": "Nice"}[TOOL_CALLS]get_time{}',
        [("get_weather", {"location": "Nice"}), ("get_time", {})],
    ),
    # Moonshot Kimi K2 sections; the first call's closing brace is lost before its end token
    "kimi_k2_calls": (
        "Checking both.<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0"
        '<|tool_call_argument_begin|>{"location": "Turin"<|tool_call_end|>'
        "<|tool_call_begin|>functions.get_time:1<|tool_call_argument_begin|>{}"
        "<|tool_call_end|><|tool_calls_section_end|>",
        [("get_weather", {"location": "Turin"}), ("get_time", {})],
    ),
    # LangChain XML agent (XMLAgentOutputParser), input escaped as XML
    "langchain_xml_tool": (
        "<tool>get_weather</tool><tool_input>Rio de Janeiro &amp; Niter&#243;i</tool_input>",
        [("get_weather", {"location": "Rio de Janeiro & Niterói"})],
    ),
    "langchain_xml_json_input": (
        'I need a quote.\n<tool>get_stock_price</tool>\n<tool_input>{"symbol": "IBM", '
        '"days": 2}</tool_input>',
        [("get_stock_price", {"symbol": "IBM", "days": 2})],
    ),
    # MiniCPM bare dialect: name in the <function> attribute, <param> children
    "function_name_attr": (
        '<function name="get_stock_price"><param name="symbol">TSLA</param>'
        '<param name="days">4</param></function>',
        [("get_stock_price", {"symbol": "TSLA", "days": 4})],
    ),
    # DeepSeek-V3.2 invoke XML: string="true" keeps digits as text
    "dsv32_invoke_string_flag": (
        '<tool_calls><invoke name="get_weather"><parameter name="location" string="true">'
        "10001</parameter></invoke></tool_calls>",
        [("get_weather", {"location": "10001"})],
    ),
    "dsv32_invoke_json_flag": (
        '<tool_calls><invoke name="get_stock_price"><parameter name="symbol" string="true">'
        'AMD</parameter><parameter name="days" string="false">9</parameter></invoke>'
        "</tool_calls>",
        [("get_stock_price", {"symbol": "AMD", "days": 9})],
    ),
    # browser-use logging one action as an object keyed by the tool name
    "keyed_action_single": ('{"click_element": {"index": 7}}', [("click_element", {"index": 7})]),
    # Llama 4 pythonic: a tagged list, a no-argument call beside a keyword call
    "llama4_pythonic_tagged": (
        "<|python_start|>[get_stock_price(symbol='NVDA', days=3), get_time()]<|python_end|>",
        [("get_stock_price", {"symbol": "NVDA", "days": 3}), ("get_time", {})],
    ),
    # Phi-4-mini: JSON calls in its functools[...] list
    "phi4_functools": (
        'functools[{"name": "get_weather", "arguments": {"location": "Lyon"}}, '
        '{"name": "get_time", "arguments": {}}]',
        [("get_weather", {"location": "Lyon"}), ("get_time", {})],
    ),
    # Granite: a JSON call list after its token
    "granite_tool_call": (
        '<|tool_call|>[{"name": "get_stock_price", "arguments": {"symbol": "IBM", "days": 5}}]',
        [("get_stock_price", {"symbol": "IBM", "days": 5})],
    ),
    # Jamba: a JSON call list inside <tool_calls>
    "jamba_tool_calls": (
        'Checking both.\n<tool_calls>[{"name": "get_weather", "arguments": {"location": "Bern"}},'
        ' {"name": "get_time", "arguments": {}}]</tool_calls>',
        [("get_weather", {"location": "Bern"}), ("get_time", {})],
    ),
    # OLMo 3: one Python call a line, JSON literals and escaped quotes read as meant
    "olmo_function_calls": (
        "<function_calls>get_weather(location='Côte d\\'Azur')\n"
        "get_stock_price(symbol='AAPL', days=null)</function_calls>",
        [
            ("get_weather", {"location": "Côte d'Azur"}),
            ("get_stock_price", {"symbol": "AAPL", "days": None}),
        ],
    ),
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", sorted(READS))
def test_reader(name: str, fmt: str) -> None:
    text, expected = READS[name]
    result = get_format(fmt).parse(text, TOOLS)
    assert result.kind == "tool_call", (name, fmt, result)
    assert [(c.tool, c.args) for c in result.calls] == expected


def test_every_reader_documents_its_origin() -> None:
    for reader in READERS:
        assert reader.origin and reader.marker and reader.read.__doc__, reader.name


REFUSALS = {
    # a name that is not offered, in each envelope
    "harmony_not_offered": (
        '<|channel|>commentary to=functions.browser.search<|message|>{"q": "x"}<|call|>'
    ),
    "invoke_not_offered": '<invoke name="rm"><parameter name="path">/</parameter></invoke>',
    "gemma_not_offered": "call:delete_file{path:<escape>/etc<escape>}",
    "function_tag_not_offered": '<function>shell</function>{"cmd": "ls"}',
    "tool_call_attr_not_offered": '<tool_call name="shell">{"cmd": "ls"}</tool_call>',
    # an action list item naming no offered tool
    "action_list_not_offered": '{"action": [{"scroll_down": {}}]}',
    # an action list item that lacks the tool's required keys
    "action_list_missing_required": '{"action": [{"click_element": {"text": "OK"}}]}',
    # unreadable inside a recognised envelope
    "gemma_unclosed_escape": "call:get_weather{location:<escape>Paris}",
    "lfm_not_python": "<|tool_call_start|>get weather please<|tool_call_end|>",
    "function_eq_broken_json": '<function=get_weather>{"location": </function>',
    "kimi_args_not_json": (
        "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0"
        "<|tool_call_argument_begin|>location is Turin<|tool_call_end|>"
        "<|tool_calls_section_end|>"
    ),
    # LangChain XML: two names for one input, an input with no name
    "langchain_xml_two_names": (
        "<tool>get_weather</tool><tool>google</tool><tool_input>Oslo</tool_input>"
    ),
    "langchain_xml_input_only": "<tool_input>weather in Oslo</tool_input>",
    # Python calls that cannot be read: bytes that are not UTF-8, brackets that do not match,
    # a quote that ends a string early; no call of the list is guessed
    "pythonic_bytes": "[get_weather(location=b'\\xff'), get_time()]",
    "pythonic_mismatched": "[get_time(]), get_weather(location='Oslo')]",
    "pythonic_bad_quote": "[get_time(), get_weather(location='St 'Moritz')]",
    # Llama 4 pythonic: brackets out of order, a call cut off mid-arguments
    "llama4_mismatched": "<|python_start|>[get_time(zone=2])]<|python_end|>",
    "llama4_cut_off": "<|python_start|>[get_weather(location='Os",
    # Phi-4-mini: prose or nothing in the call list
    "phi4_prose_in_list": "functools[ I will look up the weather now ]",
    "phi4_empty_list": "functools[]",
    # OLMo 3: a call to a tool that is not offered, a line that is not a call
    "olmo_not_offered": "<function_calls>send_email(to='a@b.c')</function_calls>",
    "olmo_prose": "<function_calls>\nlet me check the weather\n</function_calls>",
    # Granite and Jamba: an empty list, prose where the list belongs
    "granite_empty_list": "<|tool_call|>[]",
    "jamba_prose": "<tool_calls>I will look that up.</tool_calls>",
    # a broken pythonic call list among prose: markup, not an answer
    "pythonic_fragments": "sure[get_time(zone=\t)get_time(zone=,\t",
    # filler run together with no spaces
    "filler_run_together": "ababababababababababababababab",
    # an argument envelope with the name lost
    "parameters_without_name": '{"parameters": {"location": "Oslo"}}',
    # filler: one word repeated where a call or an answer should be
    "filler_repetition": "\n".join(["tool"] * 12 + ["tools"]),
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_reader_refuses(name: str, fmt: str) -> None:
    result = get_format(fmt).parse(REFUSALS[name], TOOLS)
    assert result.kind == "unrecoverable", (name, fmt, result)
    assert result.reason


# ------------------------------------------------------------ the name the model wrote


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_written_name_decides_over_the_arguments_shape(fmt: str) -> None:
    # Harmony: the body looks like get_weather's arguments, the recipient is the stock tool
    text = '<|channel|>commentary to=functions.get_stock_price<|message|>{"symbol": "X"}<|call|>'
    result = get_format(fmt).parse(text, TOOLS)
    assert [(c.tool, c.args) for c in result.calls] == [("get_stock_price", {"symbol": "X"})]
    # <function>NAME</function>: the name decides even where the args fit another tool
    result = get_format(fmt).parse('<function>google</function>{"query": "x"}', TOOLS)
    assert [c.tool for c in result.calls] == ["google"]


@pytest.mark.parametrize("fmt", ["json", "auto"])
def test_quoted_arguments_never_become_a_second_call(fmt: str) -> None:
    # the model quotes the arguments it used before, then makes its call
    text = (
        'Last time I searched with {"query": "old news"}. Now:\n'
        '{"action": "get_weather", "action_input": {"location": "Riga"}}'
    )
    result = get_format(fmt).parse(text, TOOLS)
    assert [(c.tool, c.args) for c in result.calls] == [("get_weather", {"location": "Riga"})]


def test_bare_arguments_are_a_last_resort_for_exactly_one_fit() -> None:
    one = get_format("json").parse('{"location": "Bern"}', TOOLS)
    assert [(c.tool, c.args) for c in one.calls] == [("get_weather", {"location": "Bern"})]
    two = [spec("get_weather", location="string"), spec("get_forecast", location="string")]
    assert get_format("json").parse('{"location": "Bern"}', two).kind != "tool_call"
    # two unnamed argument objects: which is the call? refuse
    text = 'Either {"location": "Bern"} or {"location": "Basel"}'
    assert get_format("json").parse(text, TOOLS).kind == "unrecoverable"


def test_a_reader_marker_inside_a_json_argument_is_data() -> None:
    # the argument holds Harmony markup; the JSON call around it is the call
    text = (
        '{"action": "google", "action_input": '
        '{"query": "what does to=functions.get_weather<|message|> mean"}}'
    )
    result = get_format("json").parse(text, TOOLS)
    assert [c.tool for c in result.calls] == ["google"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_langchain_xml_final_answer_is_unescaped(fmt: str) -> None:
    text = "<final_answer>Use x &lt; 3 &amp;&amp; y &gt; 1.</final_answer>"
    result = get_format(fmt).parse(text, TOOLS)
    assert result.kind == "final_answer", result
    assert result.answer == "Use x < 3 && y > 1."


def test_a_short_repeated_answer_is_still_an_answer() -> None:
    result = get_format("react").parse("Final Answer: yes yes yes", TOOLS)
    assert result.kind == "final_answer" and result.answer == "yes yes yes"


@pytest.mark.parametrize("fmt", ["xml", "auto"])
def test_a_python_call_inside_tool_call_tags(fmt: str) -> None:
    # SGLang's multi-format detector: a pythonic call in Hermes tags, JSON literals
    text = "<tool_call>get_stock_price(symbol='ARM', days=null)</tool_call>"
    result = get_format(fmt).parse(text, TOOLS)
    assert result.kind == "tool_call", result
    assert [(c.tool, c.args) for c in result.calls] == [
        ("get_stock_price", {"symbol": "ARM", "days": None})
    ]


def test_a_utf8_bytes_literal_reads_as_its_text() -> None:
    result = get_format("auto").parse("[get_weather(location=b'Oslo'), get_time()]", TOOLS)
    assert result.kind == "tool_call"
    assert [c.args for c in result.calls] == [{"location": "Oslo"}, {}]


def test_arg_value_written_as_a_json_string_is_that_string() -> None:
    # HyperCLOVAX SEED Think JSON-encodes each <arg_value> (vLLM's parser tests)
    tools = [
        ToolSpec(
            "get_current_weather",
            "",
            {"type": "object", "properties": {"location": {"type": "string"}}},
        )
    ]
    text = (
        "thinking aloud</think>\n\nokay, calling:<tool_call>get_current_weather\n"
        '<arg_key>location</arg_key>\n<arg_value>"Seoul"</arg_value>\n</tool_call>'
    )
    result = get_format("xml").parse(text, tools)
    assert result.kind == "tool_call", result
    assert result.calls[0].args == {"location": "Seoul"}
    # GLM writes strings bare; quotes that do not make one JSON string stay
    for raw, want in (("Seoul", "Seoul"), ('"a" or "b"', '"a" or "b"'), ('"', '"')):
        text = (
            "<tool_call>get_current_weather<arg_key>location</arg_key>"
            f"<arg_value>{raw}</arg_value></tool_call>"
        )
        result = get_format("xml").parse(text, tools)
        assert result.kind == "tool_call", (raw, result)
        assert result.calls[0].args == {"location": want}
