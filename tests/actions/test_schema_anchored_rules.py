"""Round 10 (session 14): the rules written from `tune14`, outputs quoted in public issue
threads (parse corpus session14.jsonl), each read here by id from the `tune14` half, and
the neighbours each rule must leave alone.

- `anchored`: the offered tools' names and parameter names as anchors: a Qwen3-Coder
  call whose opener is garbled, Mistral ``NAME[ARGS]`` calls whose first
  ``[TOOL_CALLS]`` was consumed, and an arguments object split at its parameter keys
  when its strings hold unescaped quotes.
- `narration`: a leaked plan that ends the reply by promising to relay the answer.
- `forged`: a reply that writes the user's turns itself, in a loop.
- `readers.gemma`: a Gemma string opened by a plain quote and closed by its token.
"""

from __future__ import annotations

import pytest
from envelopes import answered, calls, refused, spec, tune_raw
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pilothouse.actions import anchored, get_format
from pilothouse.actions.base import Resolver
from pilothouse.actions.forged import forged_user_turns
from pilothouse.actions.narration import leaked_plan

FILE = "session14.jsonl"
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def raw(entry_id: str) -> str:
    return tune_raw(FILE, "tune14", entry_id)


# ---------------------------------------------------------------- garbled Qwen opener


def test_qwen_call_opened_with_the_tool_name_as_a_parameter_tag_is_read() -> None:
    tools = [spec("bash", command="string"), spec("read", path="string")]
    text = raw("ds4-1050-qwen-opener-misspelled-as-parameter")
    assert calls(text, tools) == [("bash", {"command": "ls"})]


def test_qwen_call_whose_opener_is_a_name_tag_and_a_stray_close_is_read() -> None:
    tools = [spec("task", description="string", prompt="string", subagent_type="string")]
    text = raw("q27-24-qwen-coder-call-missing-function-opener")
    assert calls(text, tools) == [
        (
            "task",
            {
                "description": "Add timestamp comment to hello.py",
                "prompt": "...",
                "subagent_type": "general",
            },
        )
    ]


def test_garbled_opener_needs_every_parameter_to_be_the_named_tools() -> None:
    r = Resolver([spec("bash", command="string")])
    text = "<tool_call>\n<parameter=bash>\n<parameter=path>\n/tmp\n</parameter>\n</function>"
    assert anchored.garbled_qwen_call(text, r) is None  # `path` is not bash's


def test_garbled_opener_needs_exactly_one_offered_name() -> None:
    r = Resolver([spec("bash", command="string"), spec("read", command="string")])
    two = "<tool_call>\n<read> <bash>\n<parameter=command>\nls\n</parameter>\n</function>"
    assert anchored.garbled_qwen_call(two, r) is None
    unknown = "<tool_call>\n<parameter=shell>\n<parameter=command>\nls\n</parameter>\n</function>"
    assert anchored.garbled_qwen_call(unknown, r) is None


def test_garbled_opener_with_a_parameter_that_never_closes_is_refused() -> None:
    tools = [spec("bash", command="string")]
    text = "<tool_call>\n<parameter=bash>\n<parameter=command>\nrm -rf /tm</function>"
    assert "never closes" in refused(text, tools)


def test_prose_mentioning_the_tags_is_not_a_garbled_call() -> None:
    tools = [spec("bash", command="string")]
    text = (
        "Qwen3-Coder writes each argument as <parameter=command>ls</parameter> inside a "
        "bash block that ends with </function>; the bash tool reads it."
    )
    assert anchored.garbled_qwen_call(text, Resolver(tools)) is None


# ---------------------------------------------------------------- Mistral [ARGS] calls


def test_mistral_calls_whose_first_token_was_consumed_are_all_read() -> None:
    tools = [spec("get_weather", city="string")]
    text = raw("mlxlm-1448-mistral-args-two-calls-joined")
    assert calls(text, tools) == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Tokyo"}),
    ]


def test_args_call_anchored_only_on_an_offered_name() -> None:
    r = Resolver([spec("get_weather", city="string")])
    assert anchored.args_calls('lookup[ARGS]{"city": "Paris"}', r) is None
    assert anchored.args_calls('get_weather[ARGS]{"city": "Par', r) is None  # cut off
    got = anchored.args_calls('get_weather[ARGS]{"city": "Paris"}\n\nDone.', r)
    assert got is not None and got[0] == [("get_weather", {"city": "Paris"})]


# ---------------------------------------------------------------- keyed objects


def test_arguments_with_unescaped_quotes_split_at_the_parameter_keys() -> None:
    tools = [spec("write_file", path="string", content="string")]
    text = raw("hermes-36271-write-file-args-unescaped-inner-quotes")
    result = get_format("native").parse(text, tools)
    assert result.kind == "tool_call", result
    assert result.calls[0].args == {"path": "a.py", "content": 'env.get("KEY", "default")'}
    assert "keyed_object" in result.repairs


def test_keyed_object_refuses_to_guess() -> None:
    keys = ("path", "content")
    assert anchored.keyed_object('{"path": "a", "path": "b"}', keys) is None  # twice
    assert anchored.keyed_object('{"mode": 1, "path": "a"}', keys) is None  # not a param
    assert anchored.keyed_object('{"path": "a" "content": "b"}', keys) is None  # no comma
    assert anchored.keyed_object('{"path": a b c}', keys) is None  # neither JSON nor quoted
    assert anchored.keyed_object('{"path": "a", "content": 3}', keys) == {
        "path": "a",
        "content": 3,
    }


@given(st.text(max_size=40))
@SETTINGS
def test_keyed_object_returns_the_value_a_valid_object_holds(value: str) -> None:
    import json

    text = json.dumps({"path": "p", "content": value})
    assert anchored.keyed_object(text, ("path", "content")) == {"path": "p", "content": value}


# ---------------------------------------------------------------- leaked relay plan


def test_a_plan_to_relay_the_answer_with_no_answer_is_refused() -> None:
    tools = [spec("search", query="string")]
    text = raw("langchain-13065-structured-chat-thought-no-blob")
    assert "plans" in refused(text, tools, "json")


@pytest.mark.parametrize(
    "text",
    [
        # the answer follows the plan: an answer
        "The human is asking for the default port. The tool has provided the information. "
        "I will now relay this information to the human: the default port is 8080.",
        # spoken to the reader: an answer
        "The user asked for the port, and the tool says 8080; I will now give you the answer.",
        # no third-person opener: an answer
        "The tool has provided the information. I will now relay this information.",
    ],
)
def test_relay_plan_neighbours_stay_answers(text: str) -> None:
    assert not leaked_plan(text, ["search"])
    assert answered(text, [spec("search", query="string")], "json")


# ---------------------------------------------------------------- invented user turns


def test_a_loop_of_invented_user_turns_is_refused() -> None:
    text = raw("aider-864-degenerate-invented-user-turns")
    assert forged_user_turns(text)
    assert "user's turns" in refused(text, [spec("search", query="string")])


def test_a_dialogue_the_user_asked_for_stays_an_answer() -> None:
    text = (
        "Here is a short dialogue:\n\nUser: Can I return these shoes?\nAgent: Yes, within "
        "30 days.\nUser: Do I need the receipt?\nAgent: A receipt or the order number."
    )
    assert not forged_user_turns(text)
    assert answered(text, [spec("search", query="string")]) == text


# ---------------------------------------------------------------- Gemma quotes


def test_gemma_string_opened_by_a_plain_quote_is_what_the_quotes_enclose() -> None:
    tools = [spec("grep", include="string", output_mode="string", path="string", pattern="string")]
    text = raw("ollama-15315-gemma4-grep-pattern-single-quoted")
    ((tool, args),) = calls(text, tools)
    assert tool == "grep" and args["pattern"] == ":\\s*\\w+" and args["include"] == "*.py"


def test_gemma_bare_words_and_delimited_strings_are_unchanged() -> None:
    tools = [spec("grep", pattern="string", limit="integer")]
    text = 'call:grep{pattern:<|"|>it\'s<|"|>,limit:3}'
    assert calls(text, tools) == [("grep", {"pattern": "it's", "limit": 3})]
