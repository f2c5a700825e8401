"""Markup is never an answer: call envelopes that do not parse become failures, prose stays."""

from __future__ import annotations

import pytest

from pilothouse.actions import get_format
from pilothouse.actions.markup import call_markup
from pilothouse.models.base import ToolSpec

TEXT_FORMATS = ["json", "react", "xml", "auto"]
TOOLS = [
    ToolSpec(
        "get_weather",
        "Current weather for a city.",
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    ),
    ToolSpec(
        "search",
        "Web search.",
        {
            "type": "object",
            "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
            "required": ["query"],
        },
    ),
]

# Real-looking leaks, each naming a tool that is not offered (or in an envelope no
# format reads), that used to come back as the final answer.
LEAKS = {
    "claude_invoke": (
        "I'll look up the forecast.\n<function_calls>\n"
        '<invoke name="lookup_forecast">\n<parameter name="city">Paris</parameter>\n'
        "</invoke>\n</function_calls>"
    ),
    "claude_invoke_bare": (
        '<invoke name="get_forecast"><parameter name="location">Paris</parameter></invoke>'
    ),
    "lfm_tool_call_start": '<|tool_call_start|>[get_forecast(city="Paris")]<|tool_call_end|>',
    "harmony_analysis": (
        "<|channel|>analysis<|message|>The user wants the weather in Paris. "
        "We should call the weather tool.<|end|>"
    ),
    "harmony_commentary": (
        "<|start|>assistant<|channel|>commentary to=functions.lookup json"
        '<|message|>{"location": "Paris"}<|call|>'
    ),
    "llama_python_tag": '<|python_tag|>brave_search.call(query="weather Paris")<|eom_id|>',
    "mistral_tool_calls": '[TOOL_CALLS] [{"name": "forecast", "arguments": {"city": "Paris"}}]',
    "hermes_unknown_tool": (
        '<tool_call>\n{"name": "forecast", "arguments": {"city": "Paris"}}\n</tool_call>'
    ),
    "json_unknown_tool": (
        'Sure, let me do that:\n{"name": "forecast", "parameters": {"city": "Paris"}}'
    ),
    "qwen_im_start": "<|im_start|>assistant\n<function=forecast>\n<parameter=city>\nParis\n",
    "gemma_call": "call:forecast{city:<escape>Paris<escape>}",
    "action_input_json": '{"action": "forecast", "action_input": {"city": "Paris"}}',
}


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
@pytest.mark.parametrize("name", sorted(LEAKS))
def test_call_markup_is_never_a_final_answer(name: str, fmt: str) -> None:
    result = get_format(fmt).parse(LEAKS[name], TOOLS)
    assert result.kind == "unrecoverable", (name, fmt, result)
    # a reason the model can act on: what was wrong and which tools exist
    assert result.reason
    assert "get_weather" in result.reason or "tool" in result.reason


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_the_reason_names_the_markup_seen(fmt: str) -> None:
    result = get_format(fmt).parse(LEAKS["harmony_analysis"], TOOLS)
    assert "<|channel|>" in result.reason and "get_weather, search" in result.reason
    result = get_format(fmt).parse(LEAKS["claude_invoke_bare"], TOOLS)
    assert "<invoke" in result.reason


PROSE = [
    "Paris is sunny today, 21°C.",
    "A function is a reusable block of code. When the model makes a tool call, the "
    "runtime runs the function and sends the result back.",
    'Here is the record:\n```json\n{"name": "Alice", "age": 3}\n```\nIt holds a name and an age.',
    'The config is {"name": "prod", "region": "eu-west-1", "replicas": 3}.',
    'Use this:\n```python\ndef greet(name):\n    return f"Hello {name}"\n```',
    'The list is [1, 2, 3] and the map is {"a": 1}.',
    "Call the function with two arguments: first the name, then the parameters.",
    "In HTML, write <b>bold</b> and <i>italic</i>; a <function> tag does not exist.",
]


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
@pytest.mark.parametrize("text", PROSE)
def test_prose_and_ordinary_data_stay_final_answers(text: str, fmt: str) -> None:
    result = get_format(fmt).parse(text, TOOLS)
    assert result.kind == "final_answer", (fmt, result)
    assert result.answer == text.strip()


def test_action_lines_of_prose_are_not_react_markup() -> None:
    # json, react and auto read "Action:" lines as ReAct steps on their own; xml asks
    # for plain-text answers, and minutes with action items are one
    text = "Meeting notes\nAction: Bob sends the report by Friday.\nAction: Ann books the room."
    result = get_format("xml").parse(text, TOOLS)
    assert result.kind == "final_answer" and result.answer == text
    leak = "Thought: I need the forecast\nAction: lookup_forecast\nAction Input: Paris"
    assert get_format("xml").parse(leak, TOOLS).kind == "unrecoverable"


@pytest.mark.parametrize("fmt", ["react", "auto"])
def test_explicit_final_answer_of_prose_is_kept(fmt: str) -> None:
    result = get_format(fmt).parse("Thought: done\nFinal Answer: the function returns 3", TOOLS)
    assert result.kind == "final_answer" and result.answer == "the function returns 3"


def test_json_final_answer_is_not_markup() -> None:
    text = '```json\n{"action": "Final Answer", "action_input": "It is sunny in Paris."}\n```'
    result = get_format("json").parse(text, TOOLS)
    assert result.kind == "final_answer" and result.answer == "It is sunny in Paris."


def test_markup_inside_a_final_answer_is_refused() -> None:
    text = 'Final Answer: <tool_call>{"name": "forecast", "arguments": {}}</tool_call>'
    assert get_format("react").parse(text, TOOLS).kind == "unrecoverable"


def test_offered_calls_in_an_envelope_still_parse() -> None:
    text = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    for fmt in TEXT_FORMATS:
        result = get_format(fmt).parse(text, TOOLS)
        assert result.kind == "tool_call", (fmt, result)
        assert result.calls[0].args == {"city": "Paris"}


@pytest.mark.parametrize(
    ("text", "seen"),
    [
        ('{"name": "f", "arguments": {}}', '{"name": ..., "arguments": ...}'),
        ('x {"name": "f", "input": "q"} y', '{"name": ..., "input": ...}'),
        ('[{"name": "f", "args": {}}]', '{"name": ..., "args": ...}'),
        ('{"tool": "f"}', '{"tool": ...}'),
        ('{"function": {"name": "f"}}', '{"function": ...}'),
        ('{"command": {"name": "f", "args": {}}}', '{"command": {"name": ...}}'),
        ('{"action": "f", "action_input": 1}', '{"action": ..., "action_input": ...}'),
        ("Thought: go\nAction: f", "Action:"),
        ("Action: `lookup_forecast`", "Action:"),
        ("Action 1: lookup(city='Paris')", "Action 1:"),
        ('Action: lookup {"city": "Paris"}', "Action:"),
        ("Thought: x\nAction Input: Paris", "Action Input:"),
        ('["{"name": "f", "arguments": ""}', '"name": "f", "arguments":'),
        ('x {"action": "f", "action_input": {"a": [}', '"action": "f", "action_input":'),
        ("<|tool_call_start|>", "<|tool_call_start|>"),
        ("text [TOOL_CALLS] x", "[TOOL_CALLS]"),
        ("<|start|>assistant", "<|start|>"),
        ("to=functions.f", "to=functions."),
    ],
)
def test_call_markup_names_what_it_saw(text: str, seen: str) -> None:
    assert call_markup(text) == seen


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "Alice"}',
        '{"name": "Alice", "age": 3}',
        '{"action": "jump"}',
        "function call arguments parameters tool",
        "the <|endoftext|> token",
        "Reaction: positive",
        "Action: Bob sends the report by Friday.",
        "Action items: none",
        "",
    ],
)
def test_call_markup_ignores_data_and_prose(text: str) -> None:
    assert call_markup(text) is None


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_harmony_final_channel_is_the_answer(fmt: str) -> None:
    # the analysis channel is reasoning, the final channel's message is the reply
    text = (
        "<|channel|>analysis<|message|>User asks the weather; I know it.<|end|>"
        "<|start|>assistant<|channel|>final<|message|>It is sunny in Paris.<|return|>"
    )
    result = get_format(fmt).parse(text, TOOLS)
    assert result.kind == "final_answer", result
    assert result.answer == "It is sunny in Paris."
    assert "harmony_final_channel" in result.repairs
    # a final channel that itself leaks a call is still markup
    leak = '<|channel|>final<|message|><tool_call>{"name": "forecast", "arguments": {}}'
    assert get_format(fmt).parse(leak, TOOLS).kind == "unrecoverable"


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_reasoning_alone_is_not_an_empty_answer(fmt: str) -> None:
    # found by hypothesis: markup before a stray </think> went into the thought and
    # left an empty final answer
    for text in ("<function=</function></think>", "<think>call the tool</think>  "):
        result = get_format(fmt).parse(text, TOOLS)
        assert result.kind == "unrecoverable", (text, result)


def test_the_structured_answers_own_keys_are_not_markup() -> None:
    text = '{"name": "Alice", "input": "hello"}'
    assert call_markup(text) is not None
    assert call_markup(text, answer_keys={"name", "input"}) is None
    # a key outside the answer's: still a call's shape
    assert call_markup('{"name": "x", "arguments": {}}', answer_keys={"name", "input"})


@pytest.mark.parametrize(
    "text",
    [
        "<start_function_call>call:lookup{q:<escape>x<escape>}<end_function_call>",
        "```tool_code\nlookup(q='x')\n```",
        "<|tool_calls_section_begin|><|tool_call_begin|>functions.lookup:0",
        '<function name="lookup"><param name="q">x</param></function>',
        "<tool_call>lookup<arg_key>q</arg_key><arg_value>x</arg_value></tool_call>",
        "<|python_start|>[lookup(q='x')]<|python_end|>",
        'functools[{"name": "lookup", "arguments": {"q": "x"}}]',
        "<function_calls>lookup(q='x')</function_calls>",
        '<|tool_call|>[{"name": "lookup", "arguments": {"q": "x"}}]',
        '<tool_calls>[{"name": "lookup", "arguments": {"q": "x"}}]</tool_calls>',
        "see [lookup(q=",
    ],
)
def test_the_readers_envelopes_are_markup_too(text: str) -> None:
    # a reply in one of these that reads as no offered tool must be re-asked
    assert call_markup(text) is not None


# Round 3 (tune misses): envelopes no reader knows are still markup, by their class.
UNREAD_ENVELOPES = [
    # InternLM2's action tokens around text that is not a call
    "<|action_start|><|plugin|>not json<|action_end|>",
    '<|action_start|>{"name": "func"}',
    # LongCat's call tag after prose, never closed
    "Some text with <longcat_tool_call>invalid json",
    # GigaChat 3.5's fullwidth-bar tags
    "<｜GCML｜tool_calls></｜GCML｜tool_calls>",  # noqa: RUF001
    '<｜GCML｜tool_calls><｜GCML｜invoke name="broken">',  # noqa: RUF001
    # call tags under other vendors' prefixes and suffixes
    "<minimax:tool_call>\n</minimax:tool_call>",
    "<tool_calls:opensource>\n<tool_call:opensource>lookup",
    " <toolcall> not json </toolcall>",
    "I will call it now. <function_call>lookup</function_call>",
]


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
@pytest.mark.parametrize("text", UNREAD_ENVELOPES)
def test_unread_envelopes_are_never_answers(text: str, fmt: str) -> None:
    result = get_format(fmt).parse(text, TOOLS)
    assert result.kind == "unrecoverable", (fmt, result)
    assert result.reason


@pytest.mark.parametrize(
    "text",
    [
        "<|action_start|>",
        "<|START_ACTION|>",
        "<｜GCML｜parameter>",  # noqa: RUF001
        "<longcat_tool_call>",
        "</seed:tool_call>",
        "<toolcall>",
    ],
)
def test_template_tokens_and_call_tags_are_markup(text: str) -> None:
    assert call_markup(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "the <|endoftext|> token ends a document; <|eot_id|> ends a turn",
        "In Haskell, <|> is the Alternative operator.",
        "Wrap it in <call-to-action> and <toolbar> tags.",
        "The recall <b>rate</b> went up.",
        "ordinary <tool_calling> marker.",
        "See <function_caller> and <toolcaller> in the docs.",
        "a|b and <x|y> are not tokens",
    ],
)
def test_prose_with_angle_brackets_is_not_markup(text: str) -> None:
    assert call_markup(text) is None


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_end_of_reply_tokens_do_not_make_an_answer_markup(fmt: str) -> None:
    for end in ("<|end_of_text|>", "<\uff5cend\u2581of\u2581sentence\uff5c>", "<|eot_id|>"):
        result = get_format(fmt).parse("Paris is sunny today." + end, TOOLS)
        assert result.kind == "final_answer", (end, result)
        assert result.answer == "Paris is sunny today."


# Cohere Command's envelopes (vLLM's cohere_command tool parser tests)
COHERE_ANSWER = (
    "<|START_THINKING|>This is a rainbow <co>emoji: \U0001f308</co: 0:[1]><|END_THINKING|>\n"
    "<|START_RESPONSE|>foo <co>bar</co: 0:[1,2],1:[3,4]><|END_RESPONSE|>"
)
COHERE_CALLS = (
    "<|START_THINKING|>first I think about foo<|END_THINKING|><|START_ACTION|>\n[\n"
    '    {"tool_call_id": "0", "tool_name": "get_weather", "parameters": {"city": "Oslo"}},\n'
    '    {"tool_call_id": "1", "tool_name": "search", "parameters": {"query": "x"}}\n'
    "]\n<|END_ACTION|>"
)


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_cohere_response_is_the_answer_and_its_actions_are_calls(fmt: str) -> None:
    result = get_format(fmt).parse(COHERE_ANSWER, TOOLS)
    assert result.kind == "final_answer", result
    assert result.answer == "foo <co>bar</co: 0:[1,2],1:[3,4]>"
    result = get_format(fmt).parse(COHERE_CALLS, TOOLS)
    assert result.kind == "tool_call", result
    assert [(c.tool, c.args) for c in result.calls] == [
        ("get_weather", {"city": "Oslo"}),
        ("search", {"query": "x"}),
    ]
    # thinking and nothing else: nothing was said to the user
    only = "<|START_THINKING|>just think, no response<|END_THINKING|>"
    assert get_format(fmt).parse(only, TOOLS).kind == "unrecoverable"
    # an action block naming no offered tool is markup, not an answer
    bad = '<|START_ACTION|>[{"tool_call_id": "0", "tool_name": "nope", "parameters": {}}]'
    assert get_format(fmt).parse(bad, TOOLS).kind == "unrecoverable"


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_a_word_that_begins_like_a_tag_stays_prose(fmt: str) -> None:
    # Ollama's qwen3.8 parser tests: control-like text after the reasoning is content
    result = get_format(fmt).parse("Plan</think>ordinary <tool_calling> marker.", TOOLS)
    assert result.kind == "final_answer", result
    assert result.answer == "ordinary <tool_calling> marker."
