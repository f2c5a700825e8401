"""Round 9 (session 13): the rules written from `tune13`, the embedded SmolLM2-135M's
real replies (benchmarks/record_smollm2_outputs.py, parse corpus session13.jsonl), each
read here by id from the `tune13` half, and the neighbours each rule must leave alone.

- `turn_end`: a reply ends at the model's own end-of-turn token; the turns it invents
  after it (a server that ignored the end token) are not the reply.
- `forged`: a reply that writes the tool's turn itself (`<tool_response>...`,
  `Observation: ...` twice) is refused, not shown.
- `markup`: LangChain's `action_input` key makes an object a call even when its name
  is lost; `<tool_call>` mentioned inside a sentence is prose; a loop that varies (few
  distinct words in few orders) is filler.
"""

from __future__ import annotations

import json

import pytest
from envelopes import CORPUS, FORMATS, answered, calls, refused, spec, tune_raw
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pilothouse.actions import get_format
from pilothouse.actions.base import ParsedCall
from pilothouse.actions.degenerate import degenerate
from pilothouse.actions.forged import forged_tool_turn
from pilothouse.actions.markup import call_markup, tag_mentions_only
from pilothouse.actions.turn_end import cut_invented_turns, end_of_turn

TOOLS = [
    spec("get_weather", city="string"),
    spec("search", query="string"),
    spec("calculator", expression="string"),
]
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INVENTED = [
    "<|im_end|>\n<|im_start|>user\nWhat about Rome?<|im_end|>\n<|im_start|>assistant\nSunny.",
    "<|im_end|>\n<|im_end|><|im_start|>system\n<|im_end|>\n<|im_start|>user\nHi",
    "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnd tomorrow?<|eot_id|>",
    "<end_of_turn>\n<start_of_turn>user\nThanks!<end_of_turn>",
    "<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|USER_TOKEN|>More?",
    "<|im_end|>\n\nQuestion: What is 2+2?\nThought: easy",
]


def tune13(entry_id: str) -> str:
    """The raw output of a `tune13` entry (never a held-out one)."""
    return tune_raw("session13.jsonl", "tune13", entry_id)


def _tune13_entries() -> list[dict]:
    lines = (CORPUS / "session13.jsonl").read_text(encoding="utf-8").splitlines()
    return [e for e in map(json.loads, lines) if e["split"] == "tune13"]


# --- turn_end: the reply ends where the model's turn ended ------------------------


@pytest.mark.parametrize(
    ("entry_id", "fmt", "answer"),
    [
        ("smollm2-langchain-react-math-t1-greedy-eos", "react", "17 * 23 = 347"),
        ("smollm2-langchain-react-math-t1-t12-seed7-eos", "react", "346"),
        (
            "smollm2-langchain-react-weather-t1-t12-seed7-eos",
            "react",
            "The weather in Paris right now is hot and sunny!",
        ),
        ("smollm2-hermes-tool-call-math-t2-t08-seed1-eos", "xml", "It is 23 times 391."),
        (
            "smollm2-smolagents-action-weather-t1-t08-seed1-eos",
            "json",
            "It is currently Friday 27 August 2022, 8:37pm EST (2202-08-27) in Paris, France.",
        ),
    ],
)
def test_an_answer_before_invented_turns_is_that_answer(entry_id: str, fmt: str, answer: str):
    result = get_format(fmt).parse(tune13(entry_id), TOOLS)
    assert result.kind == "final_answer" and result.answer == answer, result
    assert "invented_turns_cut" in result.repairs


@pytest.mark.parametrize("fmt", ["json", "auto"])
def test_a_call_before_invented_turns_is_that_call(fmt: str) -> None:
    raw = tune13("smollm2-smolagents-action-weather-t2-greedy-eos")
    assert calls(raw, TOOLS, fmt) == [("get_weather", {"city": "Paris"})]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_forged_result_before_invented_turns_is_still_refused(fmt: str) -> None:
    refused(tune13("smollm2-hermes-tool-call-math-t2-greedy-eos"), TOOLS, fmt)


def test_what_is_not_cut() -> None:
    assert end_of_turn("Sunny, 21 degrees.<|im_end|>") is None  # trailing: the formats strip it
    assert end_of_turn("Sunny.<|im_end|>\n<|im_end|>\n") is None
    assert end_of_turn("<|im_end|>\n<|im_start|>user\nHi") is None  # nothing before it
    # the model goes on as itself: read whole, as before
    assert end_of_turn("Let me look.<|im_end|>\n<|im_start|>assistant\n<tool_call>") is None
    # Harmony's message end and Llama's end of message are not the end of the turn
    harmony = "<|channel|>analysis<|message|>x<|end|><|start|>assistant<|channel|>final"
    assert end_of_turn(harmony) is None
    assert end_of_turn('<|python_tag|>{"name": "f"}<|eom_id|>more') is None
    assert cut_invented_turns("plain text, no tokens") == ("plain text, no tokens", False)


@pytest.mark.parametrize("tail", INVENTED)
@pytest.mark.parametrize("fmt", FORMATS)
def test_each_template_family_is_cut_at_its_end_token(tail: str, fmt: str) -> None:
    assert answered("Paris is sunny today." + tail, TOOLS, fmt) == "Paris is sunny today."
    got = calls('{"name": "search", "arguments": {"query": "Rome"}}' + tail, TOOLS, fmt)
    assert got == [("search", {"query": "Rome"})]


ANSWERS = st.sampled_from(
    [
        "The forecast for Paris is sunny, 21 degrees.",
        "| city | temp |\n|---|---|\n| Paris | 21 |",
        '```python\nprint("hi")\n```',
        "17 * 23 = 391",
        "Use x < 10 and y > 5 in the filter.",
    ]
)


@SETTINGS
@given(answer=ANSWERS, tail=st.sampled_from(INVENTED), fmt=st.sampled_from(FORMATS))
def test_answers_stay_answers_whatever_turns_follow(answer: str, tail: str, fmt: str) -> None:
    assert answered(answer + tail, TOOLS, fmt) == answer


# --- forged: the model writes the tool's turn -------------------------------------


@pytest.mark.parametrize(
    "entry_id",
    [
        "smollm2-hermes-tool-call-math-t2-greedy-rp11",
        "smollm2-hermes-tool-call-population-t2-greedy",
        "smollm2-hermes-tool-call-search-t2-greedy",
        "smollm2-smolagents-action-search-t2-t08-seed1",
    ],
)
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_forged_tool_result_is_refused(entry_id: str, fmt: str) -> None:
    refused(tune13(entry_id), TOOLS, fmt)


@pytest.mark.parametrize(
    "answer",
    [
        "The tool returned 391, so 17 times 23 is 391.",
        "My notes.\nObservation: it rained twice this week.\nConclusion: bring an umbrella.",
        "A <tool_response> tag wraps what the tool sends back.",
    ],
)
@pytest.mark.parametrize("fmt", ["json", "xml"])  # ReAct (and auto) read Observation lines
def test_prose_about_a_result_stays_an_answer(answer: str, fmt: str) -> None:
    assert forged_tool_turn(answer) is None
    assert answered(answer, TOOLS, fmt) == answer


def test_what_counts_as_a_forged_turn() -> None:
    assert forged_tool_turn("\n<tool_response>\n391") == "<tool_response>"
    assert forged_tool_turn("Observation: 391") == "Observation:"
    assert forged_tool_turn("In context,\nObservation: a\n\nAgain,\nObservation: b") is not None
    assert forged_tool_turn("Sunny.\nObservation: one line in an answer") is None


@SETTINGS
@given(
    opener=st.sampled_from(["<tool_response>", "<tool_result>", "[TOOL_RESULTS]", "Observation:"]),
    body=st.text(alphabet="abcdefghij 0123456789.,\n", max_size=60),
    fmt=st.sampled_from(FORMATS),
)
def test_a_reply_opening_with_a_tool_turn_is_never_an_answer(opener: str, body: str, fmt: str):
    result = get_format(fmt).parse(" \n" + opener + body, TOOLS)
    assert result.kind != "final_answer", result


# --- markup: action_input, tag mentions, loops that vary -------------------------


def test_an_action_input_with_its_name_lost_is_refused() -> None:
    raw = tune13("smollm2-plain-json-weather-t2-t08-seed1")
    for fmt in FORMATS:
        refused(raw, TOOLS, fmt)
    assert call_markup('{"action_input": "Paris"}') is not None
    # LangChain's own final answer is still an answer
    final = '{"action": "Final Answer", "action_input": "It is sunny."}'
    assert answered(final, TOOLS, "json") == "It is sunny."


def test_a_tag_mentioned_in_a_sentence_stays_prose() -> None:
    raw = tune13("smollm2-hermes-tool-call-weather-t1-t12-seed7")
    assert tag_mentions_only(raw)
    for fmt in FORMATS:
        assert answered(raw, TOOLS, fmt) == raw.strip()
    # openings of calls are not mentions
    for text in (
        'Let me check. <tool_call> get_weather {"city": "Oslo"}',
        "<tool_call>search<arg_key>query</arg_key><arg_value>x</arg_value>",
        'Sure <tool_call>\n{"name": "search", "arguments": {"query": "x"}}',
        "one with <tool_call> tags</tool_call>",
    ):
        assert not tag_mentions_only(text), text


@pytest.mark.parametrize(
    ("file", "split", "entry_id"),
    [
        ("session13.jsonl", "tune13", "smollm2-langchain-react-population-t2-t08-seed1"),
        ("corpus.jsonl", "tune", "geminicli-word-salad-i-will-execute"),
        ("corpus.jsonl", "tune", "glmfreeapi-degenerate-tool-exchange-loop"),
    ],
)
def test_loops_that_vary_are_filler(file: str, split: str, entry_id: str) -> None:
    assert degenerate(tune_raw(file, split, entry_id))


def test_every_tune13_answer_is_not_filler() -> None:
    answers = [e for e in _tune13_entries() if e["expected"]["kind"] == "final_answer"]
    assert len(answers) >= 20
    for e in answers:
        assert not degenerate(e["expected"]["answer"]), e["id"]


_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_SKY = ["sunny", "cloudy", "light rain", "showers", "overcast", "clear", "windy"]
LONG_ANSWERS = [
    # a fortnight's forecast: every line the same shape, the values varying
    "\n".join(
        f"- {_DAYS[i % 7]} {i + 1}: {_SKY[(i * 3) % 7]}, high {14 + i % 9}, low {5 + i % 6}, "
        f"wind {8 + (i * 5) % 17} km/h"
        for i in range(14)
    ),
    # a table of ticks and crosses
    "| feature | a | b | c |\n|---|---|---|---|\n"
    + "\n".join(f"| feature {i} | yes | yes | no |" for i in range(20)),
    # code whose keyword arguments repeat
    "```python\ndef run(\n"
    + "".join(f"    arg{i}: int | None = None,\n" for i in range(40))
    + "):\n    pass\n```",
    # repeated bullet structure with varied content
    "\n".join(
        f"- {name} report ({dept}): sent to {who} on {day} May, {pages} pages."
        for name, dept, who, day, pages in [
            ("Q1", "finance", "Ann", 3, 12),
            ("Hiring", "people", "Bo", 4, 7),
            ("Outage", "ops", "Cy", 6, 21),
            ("Roadmap", "product", "Di", 9, 15),
            ("Audit", "legal", "Ed", 11, 40),
            ("Churn", "sales", "Flo", 12, 9),
            ("Security", "infra", "Gus", 15, 18),
            ("Budget", "finance", "Hal", 18, 26),
        ]
    ),
    # long prose
    "The project began in March with a small team of four, and its first goal was to "
    "replace the nightly batch job that had grown too slow to finish before the morning "
    "shift. By May the new pipeline ran in under an hour, but it exposed two problems the "
    "old job had hidden: duplicate customer records, and invoices dated in the wrong time "
    "zone. Fixing the duplicates took most of June, because every merge had to be checked "
    "against the billing history by hand. The time-zone bug was simpler once found; a "
    "single library call assumed local time. In July the team added monitoring, wrote a "
    "runbook for the on-call engineer, and handed the service to operations. Costs fell by "
    "a third, and the morning shift now starts with fresh numbers.",
]


@pytest.mark.parametrize("answer", LONG_ANSWERS, ids=range(len(LONG_ANSWERS)))
@pytest.mark.parametrize("fmt", FORMATS)
def test_lists_tables_code_and_prose_stay_answers(answer: str, fmt: str) -> None:
    assert not degenerate(answer)
    assert answered(answer, TOOLS, fmt) == answer.strip()


def test_the_rule_s_known_limit_a_list_where_only_a_counter_changes() -> None:
    # the GLM loop's shape (a call id counting up, the rest copied): a list of 30 items
    # that differ only by their number is judged a loop too, as documented
    text = "\n".join(
        f"{i}. Step {i}: open the file, check the totals, then save it." for i in range(30)
    )
    assert degenerate(text)


PHRASES = st.lists(st.from_regex(r"[a-z]{2,8}", fullmatch=True), min_size=4, max_size=10)


@SETTINGS
@given(
    phrase=PHRASES,
    swaps=st.lists(st.tuples(st.integers(0, 9), st.sampled_from(["x", "y", "z"])), min_size=8),
    fmt=st.sampled_from(FORMATS),
)
def test_a_phrase_copied_with_small_changes_is_never_an_answer(
    phrase: list[str], swaps: list[tuple[int, str]], fmt: str
) -> None:
    # a loop that varies: one phrase copied over and over, one word changed in each copy
    copies = []
    for at, word in swaps[:40]:
        copy = list(phrase)
        copy[at % len(copy)] = word
        copies.append(" ".join(copy))
    text = "Let me think. " + ". ".join(copies)
    if len(text.split()) < 60:
        text += ". " + ". ".join(copies) + ". " + ". ".join(copies)
    result = get_format(fmt).parse(text, TOOLS)
    assert result.kind != "final_answer", result


@pytest.mark.parametrize("fmt", ["json", "react", "xml"])
def test_end_tokens_inside_arguments_or_prose_are_not_cut_at(fmt: str) -> None:
    # the whole argument is read, its tokens as written (a JSON string value's tokens
    # are its text: tests/actions/test_tokens_in_arguments.py): nothing is cut after them
    for value, read in (
        ("a<|im_end|>b", "a<|im_end|>b"),
        ("x</s>y", "x</s>y"),
        ("[EOT] then more", "[EOT] then more"),
        ("<EOT>\n<|im_start|>user", "<EOT>\n<|im_start|>user"),
    ):
        form = get_format(fmt)
        result = form.parse(form.render_calls([ParsedCall("search", {"query": value})]), TOOLS)
        assert result.calls == (ParsedCall("search", {"query": read}),), (value, result)
    html = "Use <s>old</s> new prices: 3 EUR instead of 4."
    assert end_of_turn(html) is None
    assert end_of_turn("Done.</s><|im_start|>user\nmore") == len("Done.")
