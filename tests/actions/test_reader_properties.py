"""Hypothesis and hostile inputs over the named readers and the JSON repairs: never
raise, never call a tool that was not offered, and do bounded work."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pilothouse.actions import anchored, get_format, repair
from pilothouse.actions.readers import READERS
from pilothouse.models.base import ToolSpec

TOOLS = [
    ToolSpec(
        "search",
        "",
        {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    ),
    ToolSpec("now", "", {"type": "object", "properties": {}}),
]
PIECES = [r.marker for r in READERS] + [
    "<|message|>",
    "<|call|>",
    "<|end|>",
    "<|channel|>analysis",
    "</invoke>",
    '<parameter name="query">',
    "</parameter>",
    "<escape>",
    "<end_function_call>",
    "</function>",
    "</tool_call>",
    "<arg_key>",
    "<arg_value>",
    "search",
    "now",
    "Action:",
    "Action Input:",
    "Observation",
    "Answer:",
    "(",
    ")",
    '{"query": "x"}',
    "{",
    "}",
    "[",
    "]",
    '"',
    "'",
    "\\n",
    "//",
    "/*",
    "#",
    ":",
    ",",
    "\n",
    " ",
    # round 4
    '<|open|>call tool="search"<|sep|>',
    '<|open|>argument key="query" type="string"<|sep|>',
    "<|close|>argument<|sep|>",
    "<|close|>call<|sep|>",
    "<|open|>response<|sep|>",
    "<|close|>think<|sep|>",
    '<steptml:invoke name="search">',
    "<|END_THINKING|>",
    "<|START_TEXT|>",
    "Action: ```json",
    '"name": search"',
    # round 5 (session 10)
    "<ifm|tool_call>",
    "</ifm|tool_call>",
    "<ifm|arg_key>",
    "<ifm|arg_type>string</ifm|arg_type>",
    "<ifm|think_fast>",
    "<|tool_call:start|>",
    "<|tool_arg:start|>",
    "<|tool_arg:value|>",
    "<|tool_arg:end|>",
    "<|tool_call:end|>",
    "<tool_response>",
    "{bad json}",
    '{"name": "search", "arguments": {"query": "x"}}\n',
    # round 6 (session 11)
    "[Calling tool: search with arguments: ",
    "[Calling tool: search]",
    "<parameter name=\u201cquery\u201d>",
    "\u201c",
    "<search>",
    "</search>",
    "<query>",
    "</query>",
    "&gt;",
    "{type:now}",
    "search<arg_key>",
    "<\uff5c\uff5cDSML\uff5c\uff5cinvoke name=",
    "<think>",
    "</think>",
    "\\_",
    # round 7 (session 11, second round)
    "The user asks ",
    "So I need to output XML",
    " the search tool.",
    "you",
    "\U0001f4da Fetching ",
    "\u2026",
    "...",
    "Action Input: ** ",
    # round 8 (session 12)
    "@search(call_1): ",
    "@now: ",
    "```",
    "<|tool_call_begin|>call_3<|tool_call_argument_begin|>",
    "<|tool_call_begin|>0<|tool_call_argument_begin|>",
]
SOUPS = st.lists(st.sampled_from(PIECES) | st.text(max_size=8), max_size=60).map("".join)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=SOUPS, fmt=st.sampled_from(["json", "react", "xml", "auto"]))
def test_reader_soup_never_raises_and_calls_only_offered_tools(text: str, fmt: str) -> None:
    result = get_format(fmt).parse(text, TOOLS)
    assert result.kind in ("tool_call", "final_answer", "unrecoverable")
    assert all(c.tool in ("search", "now") for c in result.calls)


@settings(max_examples=400, deadline=None)
@given(
    text=SOUPS
    | st.text(alphabet=st.sampled_from(list("{}[]\"':,# /*\\nTrueNoneab1-")), max_size=300)
)
def test_repairs_never_raise(text: str) -> None:
    for fn in (repair.loads, repair.close_one, repair.first_value):
        fn(text)  # a value or None, never an exception


HOSTILE = [
    "call:a{" * 30_000,
    "call:search{query:" + "{k:" * 5_000,
    "call:search{query:<escape>" + "x" * 200_000,
    "to=functions.search" * 30_000,
    "to=functions.search<|message|>" * 20_000,
    "<|channel|>analysis<|message|>" * 20_000,
    '<invoke name="search">' * 20_000,
    '<invoke name="search"><parameter name="query">' * 15_000,
    "<|tool_call_start|>[" * 20_000,
    "<function=search>" * 30_000,
    "<function=search={" * 30_000,
    "<function>search</function>" * 20_000,
    '<tool_call name="search">' * 20_000,
    "<tool_call>search\n<arg_key>" * 20_000,
    "```tool_code\n" + "search(" * 20_000,
    '{"action": [' + '{"search": {"query": "x"}},' * 20_000 + "]}",
    '{"query": "' + '"' * 200_000 + "}",
    "{" + "a: b " * 40_000 + "}",
    "{" + "// c\n" * 40_000 + "}",
    "{" + "\\n" * 100_000 + '"query": "x"',
    '{"a": ' + "[" * 150 + "1" + "]" * 149,
    "Action:\n" * 30_000 + "Action Input: x",
    "Action: search\nAction Input: " + "(" * 50_000,
    "Action: search\nAction Input: x" + "\nObs" * 50_000,
    # round 4
    '<|open|>call tool="search"<|sep|>' * 20_000,
    '<|open|>call tool="search"<|sep|>' + '<|open|>argument key="q" type="x"<|sep|>' * 15_000,
    '<steptml:invoke name="search"><steptml:parameter name="query">' * 15_000,
    '<invoke name="search">' + '<parameter name="query">x</parameter>' * 20_000,
    "<|START_TEXT|><|END_THINKING|>" * 20_000,
    "trace<|close|>think<|sep|>" * 20_000,
    "Action: ```json\n" * 20_000,
    '{"name": search"' * 20_000,
    "Correct.\nI'll execute.\n" * 50_000,
    # round 5 (session 10)
    "<ifm|tool_call>search<ifm|arg_key>" * 20_000,
    "<ifm|x|y|tool_call>" * 20_000,
    "<|tool_call:start|>search\n" + "<|tool_arg:start|>q<|tool_arg:value|>" * 20_000,
    "<|tool_call:start|>search\n<|tool_call:end|>" * 20_000,
    "<tool_calls>\n" + '{"name": "search", "arguments": {"query": "x"}}\n' * 20_000,
    '{"name": "search", "arguments": {"query": "x"}}\n{bad}\n' * 20_000,
    "<tool_response>" * 30_000,
    '<tool_call>{"name": "search"}</tool_call>' * 20_000,
    "<tool_calls><tool_call>search<tool_sep>" * 20_000,
    # round 6 (session 11)
    "[Calling tool: search with arguments: " * 30_000,
    "[Calling tool: search with arguments: {" * 30_000,
    "[Calling tool: search]" + '<parameter name="query">' * 30_000,
    "<search>" * 50_000,
    "<search>" + "<query>" * 50_000 + "</search>",
    "<search>" + "<q>x</q>" * 30_000 + "</search>",
    "<search></search>" * 30_000,
    "search<arg_key>" + "<arg_key>q</arg_key><arg_value>" * 20_000,
    "{type:" + "now" * 50_000 + "}",
    "<think>" + "<tool_call>" * 30_000 + "</think>",
    "search\n" * 50_000,
    '{"q": "' + "\\_" * 100_000 + '"',
    # round 7 (session 11, second round)
    "The user asks " + "so I need to output the tool " * 30_000,
    "The user asks x. I need to output " + "x" * 3_900 + " tool.",
    "\U0001f4da Fetching " + "x" * 200_000 + "\u2026",
    "\U0001f4da Fetching " + "... " * 80 + "\u2026",
    "\U0001f4da Fetching " + "is " * 50_000,
    "Action: search\nAction Input: " + "*" * 100_000 + " {",
    # round 8 (session 12)
    '@search: {"query": "x"}\n' * 40_000,
    "@search: {\n" * 50_000,
    "```\n@search: {}\n" * 30_000,
    "@search(" + "x" * 100 + "): {" + '"query": "x", ' * 50_000,
    "\n@a: " * 60_000 + "{",
    '@search: {"query": "' + "x" * 900_000,
    "<|tool_calls_section_begin|>"
    + '<|tool_call_begin|>call_1<|tool_call_argument_begin|>{"query": "x"}<|tool_call_end|>'
    * 10_000,
    "<|tool_call_begin|>0<|tool_call_argument_begin|>" + "{" * 50_000,
    # round 9 (session 13): end tokens, invented turns, forged results, tag mentions, loops
    "<|im_end|>" * 100_000,
    "a" + " " * 400_000 + "<|im_end|>\n<|im_start|>user",
    "Sunny.<|im_end|>" + "\n<|im_start|>user\nx<|im_end|>" * 20_000,
    "Observation: 391\n" * 50_000,
    "with <tool_call> tags " * 30_000,
    '{"action_input": "' + "x" * 500_000,
    " ".join(f"word{i % 7} again" for i in range(100_000)),
    # round 10 (session 14): schema anchors, invented user turns, Gemma quotes
    "<tool_call>\n<parameter=search>" + "<parameter=query>x</parameter>" * 40_000 + "</function>",
    "<name>search" + "</parameter>\n" * 50_000 + "<parameter=query>x</parameter></function>",
    'search[ARGS]{"query": "x"}' * 30_000,
    "search[ARGS]" + "{" * 50_000,
    "USER: thanks\n" * 60_000,
    "user:" * 100_000,
    "x" * 20 + ":" * 200_000,
    "call:search{query:'x'<|\"|>" * 20_000,
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
@pytest.mark.parametrize("fmt", ["json", "react", "xml", "auto"])
def test_readers_and_repairs_are_bounded(text: str, fmt: str) -> None:
    began = time.thread_time()  # CPU time: a loaded machine does not inflate it
    result = get_format(fmt).parse(text, TOOLS)
    assert result.kind in ("tool_call", "final_answer", "unrecoverable")
    assert time.thread_time() - began < 5, fmt


@pytest.mark.parametrize("size", [10_000, 80_000])
def test_repair_work_grows_linearly(size: int) -> None:
    # pathological quotes and unquoted members: one pass, no backtracking
    text = "{" + ", ".join(f'k{i}: "a "b" c"' for i in range(size // 12)) + "}"
    began = time.thread_time()
    repair.loads(text)
    repair.close_one(text[:-1])
    assert time.thread_time() - began < 2


@pytest.mark.parametrize("size", [10_000, 80_000])
def test_keyed_object_work_grows_linearly(size: int) -> None:
    # many parameters, each anchor searched once: no rescans per key
    keys = [f"k{i}" for i in range(size // 20)]
    text = "{" + ", ".join(f'"{k}": "a "b" c"' for k in keys) + "}"
    began = time.thread_time()
    anchored.keyed_object(text, keys[:64])
    assert time.thread_time() - began < 2
