"""Chat-template tokens leaked into a reply (issue #15, round 11a): the vocabulary derived
from llama.cpp's real templates, its matcher, and what the gate and the formats make of it.

Real examples are parse corpus session 15 `tune15` entries, by id (the `holdout11` half is
not read here). Controls: answers that show a token in backticks or a code fence, markdown
tables, BBCode, legal citations, HTML strike-through, stay answers as written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pilothouse.actions import get_format
from pilothouse.actions.markup import call_markup
from pilothouse.actions.template_tokens import (
    leaked_token,
    strip_thought_channel,
    strip_trailing_end_tokens,
)
from pilothouse.actions.template_vocabulary import SOURCE, TOKENS
from pilothouse.models.base import ToolSpec
from script_module import load_script

ROOT = Path(__file__).resolve().parents[2]
SESSION15 = ROOT / "benchmarks" / "data" / "parse_corpus" / "session15.jsonl"
bench = load_script("parse_recovery_t15", ROOT / "benchmarks" / "parse_recovery.py")
TOOLS = [ToolSpec("get_weather", "Weather for a city.", {"type": "object", "properties": {}})]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _tune15(entry_id: str) -> dict[str, Any]:
    for line in SESSION15.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry["id"] == entry_id:
            assert entry["split"] == "tune15", "held-out entries are not used here"
            return entry
    raise KeyError(entry_id)


def _parse(entry: dict[str, Any]) -> dict[str, Any]:
    tools = [
        ToolSpec(t["name"], t.get("description", ""), t["parameters"])
        for t in bench.offered_tools(entry)
    ]
    result: dict[str, Any] = get_format(bench.format_of(entry)).parse(entry["raw"], tools).to_dict()
    return result


# --- the vocabulary: derived, with its origin, token strings only -----------------------


def test_the_vocabulary_comes_from_real_templates_with_each_tokens_origin() -> None:
    assert SOURCE.startswith("llama_cpp_python-")
    assert len(TOKENS) > 150
    kinds = {kind for _, kind, _ in TOKENS}
    assert kinds <= {"end", "reasoning", "media", "tool", "role", "other"}
    for token, _, origins in TOKENS:
        assert origins and all(isinstance(o, str) and o for o in origins), token
        assert 2 < len(token) <= 45 and "\n" not in token, token  # a token, not template text
    known = {token: kind for token, kind, _ in TOKENS}
    for token in ("<|im_start|>", "[INST]", "<start_of_turn>", "<|start_header_id|>"):
        assert known[token] == "role"
    for token in ("<|tool_call>", "<tool_call|>", "<seed:tool_call>", "<minimax:tool_call>"):
        assert known[token] == "tool"
    for token in ("[TOOL_CALLS]", "<|START_ACTION|>", "<\uff5ctool\u2581calls\u2581begin\uff5c>"):
        assert known[token] == "tool"
    for token in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<eos>", "<turn|>"):
        assert known[token] == "end"
    assert "]<]minimax[>[" in known


def test_the_vocabulary_module_is_what_the_sdist_gives() -> None:
    script = load_script("template_vocabulary_t15", ROOT / "benchmarks" / "template_vocabulary.py")
    if not script.DEFAULT_SDIST.exists():
        pytest.skip(f"the llama-cpp-python sdist is not at {script.DEFAULT_SDIST}")
    rendered = script.render(*script.extract(script.DEFAULT_SDIST))
    assert rendered == script.OUT.read_text(encoding="utf-8")


# --- whole tokens, fragments, role headers ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "seen"),
    [
        ("Sure.\n<start_of_turn>user\nAnd now?", "<start_of_turn>user"),
        ("Paris.<|eot_id|><|start_header_id|>assistant<|end_header_id|>", "<|start_header_id|>"),
        ("[INST] What else? [/INST]", "[INST]"),
        ("<|turn>model\nHello", "<|turn>model"),
        ("]<]minimax[>[<tool_call>...", "]<]minimax[>["),
        ("<seed:bos>assistant", "<seed:bos>"),
        ("[SYSTEM_PROMPT]You are helpful.", "[SYSTEM_PROMPT]"),
    ],
)
def test_whole_tokens_and_role_headers_are_named(text: str, seen: str) -> None:
    got = leaked_token(text)
    assert got is not None and got.startswith(seen)


def test_a_role_header_names_the_turn_the_model_wrote_itself() -> None:
    got = leaked_token("Done.<|start_header_id|>assistant<|end_header_id|>\n\nMore.")
    assert got == "<|start_header_id|>assistant"


@pytest.mark.parametrize(
    "text",
    [
        "The answer is 42.<|im_sta",  # cut off at the end of the reply
        "The answer is 42.\n<\uff5ctool\u2581",  # DeepSeek's, cut off
        "The answer is 42.|im_start|>user",  # the opening angle lost
        "The answer is 42.<|im_start|user",  # the closing angle lost
        "The answer is 42.\nim_start|>user",  # the opening angle and bar lost
        "The answer is 42.<|im_start\nuser",  # the bar and angle lost
        "春风轻拂绿意新\uff0c|assistant|助时光荏苒。",  # ChatGLM's |assistant| mid-line
    ],
)
def test_fragments_of_a_token_are_markup(text: str) -> None:
    assert leaked_token(text) is not None
    assert call_markup(text) is not None


@pytest.mark.parametrize(
    "text",
    [
        "Use `<|im_start|>` to open a turn and `<|im_end|>` to close it.",
        "Gemma marks turns with `<start_of_turn>` and `<end_of_turn>`.",
        "The template:\n```\n[INST] {prompt} [/INST]\n<start_of_turn>user\n```\nThat is all.",
        "| role | token |\n|user|admin|\n|---|---|",  # a table row's cells
        "[IMG]https://example.com/cat.png[/IMG]",  # BBCode
        "See R v Smith [2020] UKSC 1, [45].",  # a legal citation
        "Prices: <s>old price</s> new price.",  # HTML strike-through
        "The pipe a|b|c splits fields; x || y is or.",
        "Write the value in <angle> brackets, or as [TODO] for later.",
        "The answer is 42.<|im_end|>",  # an end token: the formats strip it
        "<think>plan</think>The answer is 42.",
    ],
)
def test_prose_code_and_end_tokens_are_not_leaked_structure(text: str) -> None:
    assert leaked_token(text) is None


def test_trailing_end_tokens_are_stripped_and_inner_ones_kept() -> None:
    assert strip_trailing_end_tokens("Hey! What's up?<end_of_turn>\n") == "Hey! What's up?"
    assert strip_trailing_end_tokens("apple<eos>") == "apple"
    assert strip_trailing_end_tokens("The total is 42<|return|>") == "The total is 42"
    assert strip_trailing_end_tokens("Done.<turn|>\n<eos>") == "Done."
    inner = "A turn ends with <end_of_turn> in Gemma."
    assert strip_trailing_end_tokens(inner) == inner
    assert strip_trailing_end_tokens("Plain answer.") == "Plain answer."


def test_a_leading_gemma4_thought_channel_is_reasoning() -> None:
    assert strip_thought_channel("<|channel>thought\nplan<channel|>Paris.") == ("Paris.", True)
    assert strip_thought_channel("<|channel>thought\nnever closed")[1] is False
    assert strip_thought_channel("Answer first <|channel>thought x<channel|>")[1] is False


# --- real replies (parse corpus session 15, tune15) --------------------------------------


@pytest.mark.parametrize(
    "entry_id",
    [
        "gemma-cpp-276-end-of-turn-after-answer",  # <end_of_turn> after the answer
        "cuga-558-harmony-return-after-answer",  # <|return|> after the answer
        "gpt4all-2271-phi3-end-after-answer",  # <|end|> after the answer
        "phicookbook-45-phi3-end-then-invented-user-turn",  # <|end|> then <|user|>...
        "sillytavern-5403-gemma4-empty-thought-channel",  # empty thought, then the answer
        "cotabby-205-greptile-mentions-s-tokens",  # `</s>` in backticks stays
        "vllm-3136-chatglm3-bare-assistant-markers-in-poem",  # bare |assistant|: refused
        "pwilkin-llamacpp-9-qwen3coder-cut-after-function",  # cut inside the envelope
        "metagpt-1427-llama31-eom-only",  # only <|eom_id|>
        "ogx-245-llama32-only-end-of-text",  # only <|end_of_text|>
        "vllm-16214-llama4-python-start-json",  # Llama 4's <|python_start|> call
        "lmstudio-873-gpt-oss-commentary-constrain-json",
    ],
)
def test_tune15_replies_are_read_as_the_thread_says(entry_id: str) -> None:
    entry = _tune15(entry_id)
    result = _parse(entry)
    assert bench.matches(result, entry), result
    assert not (result["kind"] == "final_answer" and entry["expected"]["kind"] != "final_answer")


# --- properties: never raises, bounded work, markup never an answer, answers stay -------

TOKEN_LIST = [token for token, kind, _ in TOKENS if kind in {"role", "tool", "other"}]
PROSE = st.text(alphabet="abcdefghij klmnop.,!?\n", max_size=40)


@SETTINGS
@given(st.text(max_size=300))
def test_never_raises_on_any_text(text: str) -> None:
    leaked_token(text)
    strip_trailing_end_tokens(text)
    strip_thought_channel(text)


@SETTINGS
@given(PROSE, st.sampled_from(TOKEN_LIST), PROSE, st.sampled_from(["json", "react", "xml"]))
def test_a_leaked_structure_token_is_never_a_final_answer(
    before: str, token: str, after: str, fmt: str
) -> None:
    """Either the reply is refused (or read as a call), or a format read the token as
    its own frame (Cohere's turn tokens, Harmony's channels) and the answer it gives
    holds no leaked token: the user never sees one."""
    text = f"{before} {token} {after}".strip()
    assert leaked_token(text) is not None
    result = get_format(fmt).parse(text, TOOLS)
    if result.kind == "final_answer":
        assert leaked_token(result.answer) is None and token not in result.answer, result


@SETTINGS
@given(PROSE, st.sampled_from(TOKEN_LIST), PROSE)
def test_a_token_shown_in_backticks_or_a_fence_is_not_leaked(
    before: str, token: str, after: str
) -> None:
    assert leaked_token(f"{before} `{token}` {after}") is None
    assert leaked_token(f"{before}\n```\n{token}\n```\n{after}") is None


@SETTINGS
@given(PROSE.filter(lambda s: s.strip()))
def test_plain_answers_stay_answers(text: str) -> None:
    assert leaked_token(text) is None
    result = get_format("json").parse(text, TOOLS)
    assert result.kind == "final_answer" and result.answer == text.strip()


def test_bounded_work_on_long_text_full_of_brackets() -> None:
    """The scan stops after a fixed number of candidate brackets, and the trailing-token
    strip looks at the last 512 characters only: work does not grow past those bounds
    (a real token after 300 candidates is not looked for)."""
    assert leaked_token("<x> " * 300 + "<|im_start|>user") is None
    assert leaked_token("<x> " * 10 + "<|im_start|>user") == "<|im_start|>user"
    many = "Done." + "<eos>" * 200
    assert strip_trailing_end_tokens(many) == "Done." + "<eos>" * 98  # 102 in the window
