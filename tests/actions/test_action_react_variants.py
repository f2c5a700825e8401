"""ReAct layout variants real models write (issue 15), each with where it is seen."""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse.actions import get_format
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


TOOLS = [spec("search", query="string"), spec("get_weather", city="string")]

VARIANTS: dict[str, tuple[str, list[tuple[str, Any]]]] = {
    # Mistral 7B / Zephyr in LangChain's ReAct agent: the name below "Action:"
    "name_on_next_line": (
        "Thought: I should look it up.\nAction:\nsearch\nAction Input: tallest building",
        [("search", {"query": "tallest building"})],
    ),
    # GPT-3.5 in LangChain issue threads: a note in parentheses after the tool name
    "parenthetical": (
        "Thought: web\nAction: search (web)\nAction Input: rust 1.80 release date",
        [("search", {"query": "rust 1.80 release date"})],
    ),
    # Python-trained models wrap the input in a call to the tool
    "constructor_call": (
        'Action: search\nAction Input: search(query="llama 3 context length")',
        [("search", {"query": "llama 3 context length"})],
    ),
    "json_in_parentheses": (
        'Action: get_weather\nAction Input: ({"city": "Hanoi"})',
        [("get_weather", {"city": "Hanoi"})],
    ),
    # the model writes "Observation" itself; the stop sequence needed the colon
    "observation_leak_same_line": (
        "Action: search\nAction Input: population of Lagos Observation: about 15 million",
        [("search", {"query": "population of Lagos"})],
    ),
    "observation_fragment_cut_by_stop": (
        "Action: get_weather\nAction Input: Montreal\nObserv",
        [("get_weather", {"city": "Montreal"})],
    ),
}


@pytest.mark.parametrize("fmt", ["react", "auto", "json"])
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_react_variant(name: str, fmt: str) -> None:
    text, expected = VARIANTS[name]
    result = get_format(fmt).parse(text, TOOLS)
    assert result.kind == "tool_call", (name, result)
    assert [(c.tool, c.args) for c in result.calls] == expected


@pytest.mark.parametrize("fmt", ["react", "auto"])
def test_answer_without_final(fmt: str) -> None:
    # Llama 2 chat and Mistral 7B end ReAct runs with "Answer:"
    text = "Thought: I know it now.\nAnswer: The Burj Khalifa, 828 m."
    result = get_format(fmt).parse(text, TOOLS)
    assert (result.kind, result.answer) == ("final_answer", "The Burj Khalifa, 828 m.")


@pytest.mark.parametrize(
    "text",
    [
        # the constructor names another offered tool: which one was meant?
        'Action: search\nAction Input: get_weather(city="Oslo")',
        # the name below "Action:" is not offered
        "Action:\nbrowse\nAction Input: x",
        # the parenthetical does not save a name that is not offered
        "Action: browse (web)\nAction Input: x",
    ],
)
def test_react_variants_refuse_when_ambiguous(text: str) -> None:
    assert get_format("react").parse(text, TOOLS).kind == "unrecoverable"


def test_code_input_is_not_unwrapped() -> None:
    # LangChain's pandas agent: the input is code, a call whose keys are not parameters
    tools = [spec("python_repl_ast", query="string")]
    for code in ('print("hi")', "len(df)", "df.plot(x=1)"):
        result = get_format("react").parse(f"Action: python_repl_ast\nAction Input: {code}", tools)
        assert result.calls[0].args == {"query": code}
    # a word "Observation" that is data stays
    result = get_format("react").parse("Action: search\nAction Input: Observation deck", TOOLS)
    assert result.calls[0].args == {"query": "Observation deck"}
