"""Round 7 (session 11, second round): the `tune11b` miss and the two `tune11` misses.

Each rule was written for tune outputs read here by id (session11b.jsonl's `tune11b`
half; session11.jsonl's `tune11` half), and each has neighbours it must leave alone.
"""

from __future__ import annotations

import pytest
from envelopes import FORMATS, spec, tune_raw

from pilothouse.actions import get_format
from pilothouse.actions.narration import leaked_plan, narrated_call, progress_line

SEARCH = [spec("search", input="string")]


# --- Action Input: asterisks after a space are the input's own text -----------------


def test_starred_plain_text_input_is_kept_as_written() -> None:
    # CrewAI's parser tests: `** plain text` stays; only `** ` before JSON is a stray marker
    raw = tune_raw("session11b.jsonl", "tune11b", "crewai11b-starred-plain-text-input")
    result = get_format("react").parse(raw, SEARCH)
    assert result.kind == "tool_call"
    assert result.calls[0].args == {"input": "** plain text"}


def test_starred_json_input_still_loses_the_marker() -> None:
    raw = tune_raw("corpus.jsonl", "tune", "crewai-test-indented-starred-json-input")
    query = [spec("query", task="string", context="string", coworker="string")]
    result = get_format("react").parse(raw, query)
    assert result.kind == "tool_call"
    assert result.calls[0].args["coworker"] == "Senior Researcher"
    assert "bold_marker_before_input" in result.repairs


@pytest.mark.parametrize(
    ("line", "want"),
    [
        ("**Action Input:** weather in Paris", "weather in Paris"),  # a bold label
        ("Action Input:** weather in Paris", "weather in Paris"),  # its closing half
        ("Action Input: **weather** in Paris", "**weather** in Paris"),  # the input's own
        ("Action Input: ** [1, 2]", None),  # a list after a stray marker: JSON
    ],
)
def test_asterisks_belong_to_the_label_only_right_after_the_colon(
    line: str, want: str | None
) -> None:
    result = get_format("react").parse(f"Thought: look it up\nAction: search\n{line}", SEARCH)
    assert result.kind == "tool_call", result
    if want is not None:
        assert result.calls[0].args == {"input": want}
    else:
        assert "bold_marker_before_input" in result.repairs


# --- a leaked plan is not an answer ---------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_leaked_analysis_channel_is_refused(fmt: str) -> None:
    # gpt-oss-120b through mlx-lm (ml-explore/mlx-lm#875): the analysis channel as the reply
    raw = tune_raw("session11.jsonl", "tune11", "mlx-lm-875-gpt-oss-analysis-leak")
    for tools in ([spec("unrelated_tool", input="string")], [spec("post_tweet", text="string")]):
        result = get_format(fmt).parse(raw, tools)
        assert result.kind == "unrecoverable", (fmt, result)
        assert "plans a tool call" in result.reason


@pytest.mark.parametrize(
    "text",
    [
        "The user guide covers the search tool in chapter 3.",
        "The user asked about Paris. It is 21 degrees and sunny.",
        "The user reported a bug in the search tool; I need to escalate it to on-call.",
        'The user wants the report in JSON, so here it is for you: {"total": 3}',
        "You asked me to use the weather tool; I need to output the result: 21 degrees.",
    ],
)
def test_answers_about_users_and_tools_are_not_plans(text: str) -> None:
    assert not leaked_plan(text, ["search", "get_weather"])
    for fmt in FORMATS:
        result = get_format(fmt).parse(text, [spec("search", query="string")])
        assert result.kind == "final_answer", (fmt, text, result)


# --- an imitated progress line is not an answer ----------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_imitated_progress_line_is_refused(fmt: str) -> None:
    # a memory agent's eval (BYK/loreai#409): the recall tool's progress marker, no call
    raw = tune_raw("session11.jsonl", "tune11", "loreai-409-narrated-recall-no-call")
    result = get_format(fmt).parse(raw, [spec("recall", query="string")])
    assert result.kind == "unrecoverable", (fmt, result)
    assert "progress line" in result.reason


@pytest.mark.parametrize(
    "text",
    [
        "Fetching details for t:e8a949d7 and t:36d96080…",  # no icon: left as it is
        "📚 Fetching data is easy: use requests.get(url)...",  # a finite verb
        "🔍 Searching found 3 results: a, b, c.",  # no ellipsis
        "🎉 Done! Your tweet is posted...",  # no action in progress
        "📚 Fetching details…\nHere they are: t:e8a949d7 is the test file.",  # two lines
    ],
)
def test_progress_neighbours_stay_answers(text: str) -> None:
    assert not progress_line(text)
    assert narrated_call(text) is None
    result = get_format("auto").parse(text, [spec("recall", query="string")])
    assert result.kind == "final_answer", (text, result)
