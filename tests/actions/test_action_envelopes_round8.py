"""Round 8 (session 12): the `tune12` misses, each read here by id from
session12.jsonl's `tune12` half, and the neighbours each rule must leave alone.

- A Kimi K2 call whose id names no function (a bare counter, a client's `call_3` or
  `toolu_...` id) is the one offered tool its arguments fit, per call; when none or
  several fit, the reply is refused (SGLang's Kimi K2 detector tests).
- gptme's tool format, `@NAME(CALL_ID): {json}` at the start of a line, is read by the
  name written; a cut-off object is refused, never closed by a guess; lines inside
  ``` fences are documentation examples and stay part of the answer (gptme's
  tests/test_tool_use.py and PR #1472).
"""

from __future__ import annotations

import pytest
from envelopes import FORMATS, spec, tune_raw

from pilothouse.actions import get_format
from pilothouse.actions.markup import call_markup

K = "<|tool_calls_section_begin|>{}<|tool_calls_section_end|>"


def tune12(entry_id: str) -> str:
    """The raw output of a `tune12` entry (never a held-out one)."""
    return tune_raw("session12.jsonl", "tune12", entry_id)


READ_AND_WEATHER = [spec("ReadFile", path="string"), spec("get_weather", city="string")]


def kimi_call(call_id: str, args: str) -> str:
    return f"<|tool_call_begin|>{call_id}<|tool_call_argument_begin|>{args}<|tool_call_end|>"


# --- Kimi K2: ids that name no function -------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_client_ids_are_the_one_tool_each_call_fits(fmt: str) -> None:
    raw = tune12("kimik2s12-client-id-two-calls")
    result = get_format(fmt).parse(raw, READ_AND_WEATHER)
    assert result.kind == "tool_call", result
    assert [(c.tool, c.args) for c in result.calls] == [
        ("ReadFile", {"path": "/a.py"}),
        ("get_weather", {"city": "Tokyo"}),
    ]


@pytest.mark.parametrize(
    "call_id",
    ["7", "call_3", "toolu_01AkmjoowNgNx2qNfJzc8z2F", "0b3d1c2e-4f5a-6b7c-8d9e-0f1a2b3c4d5e"],
)
def test_each_nameless_id_shape_is_inferred_with_a_named_call_beside_it(call_id: str) -> None:
    raw = K.format(
        kimi_call(call_id, '{"city": "Oslo"}') + kimi_call("functions.ReadFile:1", '{"path": "/b"}')
    )
    result = get_format("auto").parse(raw, READ_AND_WEATHER)
    assert [c.tool for c in result.calls] == ["get_weather", "ReadFile"], result


def test_a_nameless_id_whose_arguments_fit_two_tools_is_refused() -> None:
    tools = [spec("lookup", q="string"), spec("search", q="string")]
    result = get_format("auto").parse(K.format(kimi_call("call_3", '{"q": "x"}')), tools)
    assert result.kind == "unrecoverable"
    assert "names no function" in result.reason


def test_a_nameless_id_whose_arguments_fit_no_tool_is_refused() -> None:
    raw = tune12("kimik2s12-bare-counter-unknown-key")
    result = get_format("auto").parse(raw, READ_AND_WEATHER)
    assert result.kind == "unrecoverable"


def test_a_nameless_id_with_repaired_arguments_is_refused() -> None:
    # the inference is a last resort: it needs the arguments exactly as written
    raw = K.format(kimi_call("call_3", '{"city": "Oslo",}'))
    result = get_format("auto").parse(raw, READ_AND_WEATHER)
    assert result.kind == "unrecoverable"


def test_an_id_naming_an_offered_tool_is_that_tool_even_if_it_looks_like_a_client_id() -> None:
    tools = [spec("call_3", city="string"), spec("get_weather", city="string")]
    result = get_format("auto").parse(K.format(kimi_call("call_3", '{"city": "x"}')), tools)
    assert [c.tool for c in result.calls] == ["call_3"]


def test_a_written_name_that_is_not_offered_is_still_refused() -> None:
    raw = K.format(kimi_call("functions.get_time:0", '{"city": "Oslo"}'))
    assert get_format("auto").parse(raw, READ_AND_WEATHER).kind == "unrecoverable"


# --- gptme's tool format -------------------------------------------------------------

SHELL = [spec("shell", cmd="string"), spec("save", path="string", content="string")]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "entry_id", ["gptme12-incomplete-open-brace", "gptme12-unclosed-nested-object"]
)
def test_a_cut_off_at_call_is_refused_in_every_format(entry_id: str, fmt: str) -> None:
    raw = tune12(entry_id)
    assert call_markup(raw) is not None
    for tools in (SHELL, [spec("tool", unclosed="object")]):
        result = get_format(fmt).parse(raw, tools)
        assert result.kind == "unrecoverable", (fmt, result)
        assert "@tool" in result.reason


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "entry_id",
    [
        "gptme12-example-in-fence-only",
        "gptme12-example-in-tagged-fence",
        "gptme12-inline-mention-after-text",
    ],
)
def test_examples_and_mentions_stay_answers(entry_id: str, fmt: str) -> None:
    raw = tune12(entry_id)
    result = get_format(fmt).parse(raw, [spec("unrelated_tool", q="string")])
    assert result.kind == "final_answer", result
    assert result.answer == raw.strip()
    assert call_markup(raw) is None


@pytest.mark.parametrize("fmt", FORMATS)
def test_at_calls_are_read_by_the_name_written(fmt: str) -> None:
    raw = (
        'Let me look.\n@shell(call_1): {"cmd": "ls"}\n@save(call_2): {"path": "a", "content": "b"}'
    )
    result = get_format(fmt).parse(raw, SHELL)
    assert [(c.tool, c.args) for c in result.calls] == [
        ("shell", {"cmd": "ls"}),
        ("save", {"path": "a", "content": "b"}),
    ]


def test_an_at_call_of_a_tool_not_offered_is_refused_not_answered() -> None:
    result = get_format("auto").parse('@browse(c1): {"url": "x"}', SHELL)
    assert result.kind == "unrecoverable"


def test_an_at_call_after_a_closed_fence_is_read() -> None:
    raw = '```\n@shell(uid1): {"cmd": "example"}\n```\n@shell(uid2): {"cmd": "real"}'
    result = get_format("auto").parse(raw, SHELL)
    assert [(c.tool, c.args) for c in result.calls] == [("shell", {"cmd": "real"})]


@pytest.mark.parametrize(
    "text",
    [
        "Ask @team: {urgent} items first.",
        "mail @bob: {see below}",
        "Mentions like @alice are fine.\nEmail: someone@example.test",
        "@alice: thanks, that fixed it.",
    ],
)
def test_mentions_are_not_call_lines(text: str) -> None:
    assert call_markup(text) is None
    assert get_format("auto").parse(text, SHELL).kind == "final_answer"
