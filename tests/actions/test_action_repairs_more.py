"""JSON repairs for the ways real models break JSON (issue 15): each with a real-looking
example and where that shape is written. Strict parsing runs first, so none of these
touches valid JSON."""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse.actions import get_format, repair
from pilothouse.models.base import ToolSpec


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


TOOLS = [spec("web_search", query="string"), spec("get_weather", city="string")]

CASES: list[tuple[str, str, str, list[tuple[str, Any]], str]] = [
    (
        # Llama 3.1 8B / Qwen2.5 7B under a JSON prompt drop the outer brace
        "one_brace_missing",
        "json",
        '{"action": "web_search", "action_input": {"query": "tide times Brest"}',
        [("web_search", {"query": "tide times Brest"})],
        "closed_missing_bracket",
    ),
    (
        # the same, fenced, then a closing sentence
        "one_brace_missing_then_prose",
        "json",
        '```json\n{"name": "get_weather", "arguments": {"city": "Lyon"}\n```\nLet me know!',
        [("get_weather", {"city": "Lyon"})],
        "closed_missing_bracket",
    ),
    (
        # Mistral 7B JSON mode: members on separate lines, no comma
        "missing_comma",
        "json",
        '{\n  "action": "get_weather"\n  "action_input": {"city": "Oslo"}\n}',
        [("get_weather", {"city": "Oslo"})],
        "missing_comma",
    ),
    (
        # small Ollama models write JavaScript object literals
        "unquoted_keys_and_values",
        "json",
        "{action: get_weather, action_input: {city: Porto Alegre}}",
        [("get_weather", {"city": "Porto Alegre"})],
        "unquoted_value",
    ),
    (
        # a title quoted inside the value with plain ASCII quotes (LangChain JSON agent issues)
        "bare_quotes_in_value",
        "json",
        '{"action": "web_search", "action_input": {"query": "reviews of "The Bear" season 3"}}',
        [("web_search", {"query": 'reviews of "The Bear" season 3'})],
        "quote_in_string",
    ),
    (
        # double-escaped layout: the model wrote \n as two characters between tokens
        "literal_newline_escapes",
        "json",
        '{\\n  "action": "web_search",\\n  "action_input": {"query": "q3 revenue"}\\n}',
        [("web_search", {"query": "q3 revenue"})],
        "literal_newline_escape",
    ),
    (
        # DeepSeek and GPT-3.5 annotate their JSON with comments, then explain it
        "comments_and_trailing_prose",
        "json",
        '{\n  "action": "get_weather", // the weather tool\n  /* one city */\n'
        '  "action_input": {"city": "Quito"}\n}\nThis will fetch the current weather.',
        [("get_weather", {"city": "Quito"})],
        "comment",
    ),
    (
        # LlamaIndex ReAct with Python-trained models: a dict literal with a # comment
        "python_dict_with_comment",
        "react",
        "Thought: search it\nAction: web_search\n"
        "Action Input: {'query': 'python 3.13 release',  # the exact version\n}",
        [("web_search", {"query": "python 3.13 release"})],
        "",
    ),
]


@pytest.mark.parametrize(
    ("fmt", "text", "expected", "named"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_json_repair(fmt: str, text: str, expected: list[tuple[str, Any]], named: str) -> None:
    result = get_format(fmt).parse(text, TOOLS)
    assert result.kind == "tool_call", result
    assert [(c.tool, c.args) for c in result.calls] == expected
    if named:
        assert named in result.repairs


@pytest.mark.parametrize(
    "text",
    [
        '{"action": "web_search", "action_input": {"query": "cut off mid-str',  # truncated
        '{"action": "web_search", "action_input": {"query": "x"',  # two brackets missing
        '{"action": "web_search", "action_input": {"query": None or "x"}}',  # an expression
        '{"action": "delete_all", "action_input": {path: /}}',  # repaired, but not offered
    ],
)
def test_repairs_refuse_what_they_cannot_mean(text: str) -> None:
    assert get_format("json").parse(text, TOOLS).kind == "unrecoverable"


def test_valid_json_is_never_rewritten() -> None:
    # a // inside a string, a '#' and a quote-like apostrophe are data
    text = '{"action": "web_search", "action_input": {"query": "http://a.b/#c it\'s"}}'
    result = get_format("json").parse(text, TOOLS)
    assert result.calls[0].args == {"query": "http://a.b/#c it's"}
    assert result.repairs == ()


def test_a_number_running_into_text_is_one_value() -> None:
    assert repair.loads('{"date": 2024-05-01, "n": 3}') is not None
    assert repair.loads('{"date": 2024-05-01, "n": 3}').value == {  # type: ignore[union-attr]
        "date": "2024-05-01",
        "n": 3,
    }


def test_close_one_is_bounded_and_exact() -> None:
    assert repair.close_one('{"a": [1, 2]') is not None
    assert repair.close_one('{"a": [1, 2') is None  # two missing
    assert repair.close_one("{" * 300) is None
    assert repair.close_one('{"a": "b') is None
    assert repair.close_one("x" * (repair.REPAIR_MAX_CHARS + 1)) is None


def test_python_call_arguments_are_never_bytes() -> None:
    from pilothouse.actions import repair as _repair

    # bytes are read as the UTF-8 text they spell, or refused: never passed on as bytes
    assert _repair.python_call_args("path=b'/tmp/x'") == {"path": "/tmp/x"}
    assert _repair.python_call_args("paths=[b'a', 'b']") == {"paths": ["a", "b"]}
    assert _repair.python_call_args("m={b'k': (b'v',)}") == {"m": {"k": ["v"]}}
    assert _repair.python_call_args("path=b'\\xff'") is None
    assert _repair.python_call_args("paths=['a', [b'\\xc3']]") is None
    assert _repair.python_calls("[read(path=b'\\xff')]") is None
    assert _repair.python_call_args("path='/tmp/x'") == {"path": "/tmp/x"}


def test_python_call_arguments_read_json_literals_and_sets() -> None:
    from pilothouse.actions import repair as _repair

    assert _repair.python_call_args("dry_run=true, force=false, limit=null") == {
        "dry_run": True,
        "force": False,
        "limit": None,
    }
    assert _repair.python_call_args("labels={'p1', 'infra'}") == {"labels": ["p1", "infra"]}


def test_python_calls_undo_raw_newlines_in_strings_and_leading_zeros() -> None:
    from pilothouse.actions import repair as _repair

    src = "[write_file(path='notes.md', text='# Notes\n- buy milk\n')]"
    assert _repair.python_calls(src) == [
        ("write_file", {"path": "notes.md", "text": "# Notes\n- buy milk\n"})
    ]
    assert _repair.python_calls("[book(hour=09, minute=00, note='room 007')]") == [
        ("book", {"hour": 9, "minute": 0, "note": "room 007"})
    ]
    # a quote that ends a string early is still not guessed at
    assert _repair.python_calls("[f(a='x 'y')]") is None


def test_native_arguments_cut_off_are_refused_unless_they_fit() -> None:
    write = ToolSpec(
        "write_file",
        "",
        {
            "type": "object",
            "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
            "required": ["path", "content"],
        },
    )
    # a max-tokens stop after the first argument: closing it would be the wrong call
    cut = get_format("native").parse('{"path": "notes/todo.md"', [write])
    assert cut.kind == "unrecoverable" and "cut off" in cut.reason
    # only the last brace missing, every parameter there: read
    whole = get_format("native").parse('{"path": "a.md", "content": "hi"', [write])
    assert [(c.tool, c.args) for c in whole.calls] == [
        ("write_file", {"path": "a.md", "content": "hi"})
    ]
