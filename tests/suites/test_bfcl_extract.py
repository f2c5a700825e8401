"""The narrow question of benchmarks/bfcl_extract.py (issue #22, eighth round): its text,
its schema, the items it counts and how it judges a value, without the model."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from pilothouse.messages import Usage
from pilothouse.models.base import ModelRequest, ModelResponse
from pilothouse_suites.bfcl import Case
from script_module import load_script

ROOT = Path(__file__).resolve().parents[2]


bench = load_script("bfcl_extract", ROOT / "benchmarks" / "bfcl_extract.py")

LAWYER = {
    "name": "lawyer.find",
    "description": "Find lawyers by specialty and city.",
    "parameters": {
        "type": "dict",
        "properties": {
            "field_of_law": {"type": "string", "description": "The field of law."},
            "city": {"type": "string", "description": "The city."},
            "years": {"type": "integer", "description": "Minimum years of practice."},
            "note": {"type": "string", "description": "Anything else."},
            "level": {"type": "string", "enum": ["junior", "senior"], "description": "Level."},
        },
        "required": ["field_of_law", "city", "years", "level"],
    },
}
QUESTION = "Find a lawyer in constitutional law in Boston with 5 years of practice."


def _case(truth: dict[str, list[Any]], question: str = QUESTION) -> Case:
    return Case(
        "simple_python_9999", "simple_python", "", question, (LAWYER,), ({LAWYER["name"]: truth},)
    )


def test_parameter_words() -> None:
    assert bench.parameter_words("field_of_law") == "field of law"
    assert bench.parameter_words("roomType") == "room type"
    assert bench.parameter_words("team.name") == "team name"


def test_question_text_variants() -> None:
    prop = {"type": "string", "description": "The field of law. This is a float type value."}
    name = bench.question_text("Find a lawyer. ", "field_of_law", prop, "name")
    assert name == "Request: Find a lawyer.\nThe field of law (The field of law.) is:"
    desc = bench.question_text("Find a lawyer.", "field_of_law", prop, "desc")
    assert desc == "Request: Find a lawyer.\nThe field of law. The field of law is:"
    others = bench.question_text(
        "Find a lawyer.", "field_of_law", prop, "others", {"city": "Boston", "years": 5}
    )
    assert others.splitlines()[1] == 'Known: city = "Boston", years = 5'
    # no other argument known: the same as the name variant
    assert bench.question_text("Find a lawyer.", "field_of_law", prop, "others", {}) == name
    assert bench.question_text("Q", "x", {"type": "string"}) == "Request: Q\nThe x is:"


def test_typed_candidates_leave_out_numbers_and_the_parameter_words() -> None:
    got = bench.typed_candidates("field_of_law", ["5", "law", "constitutional law", "2022/08/16"])
    assert got == ["constitutional law", "2022/08/16"]
    assert bench.typed_candidates("field_of_law", ["5", "law"]) == ["5", "law"]


def test_question_schema_is_a_string_among_the_candidates() -> None:
    assert bench.question_schema(["a", "b", "a"]) == {"type": "string", "enum": ["a", "b"]}


def test_acceptable_compares_as_bfcl_does() -> None:
    assert bench.acceptable("New-York", ["new york"])
    assert bench.acceptable("it's", ['it"s'])
    assert not bench.acceptable("New York", ["New York, NY"])
    assert not bench.acceptable("Boston", ["New York"])
    assert not bench.acceptable(None, ["New York"])
    assert not bench.acceptable(5, ["5"])


def test_items_are_required_free_strings_whose_answer_is_a_span() -> None:
    truth = {
        "field_of_law": ["constitutional law", "constitutional"],
        "city": ["Boston"],
        "years": [5],
        "note": [""],
        "level": ["senior"],
    }
    items = bench.items_of(_case(truth))
    # years is a number, note optional, level an enum: only the two free strings
    assert [i.name for i in items] == ["field_of_law", "city"]
    assert all("constitutional law" in i.candidates for i in items)
    assert items[1].answers == ("Boston",)


def test_an_answer_no_span_holds_is_not_an_item() -> None:
    truth = {"field_of_law": ["civil rights law"], "city": ["Boston, MA"], "years": [5]}
    assert bench.items_of(_case(truth)) == []


class _Replies:
    """A model whose replies are given in order; it keeps the requests it got."""

    name = "replies"

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)
        self.requests: list[ModelRequest] = []

    async def generate(self, request: ModelRequest) -> ModelResponse:
        self.requests.append(request)
        return ModelResponse(self.texts.pop(0), usage=Usage(output_tokens=3))


def test_ask_holds_the_reply_to_the_candidates() -> None:
    model = _Replies('"constitutional law"')
    chosen, tokens = asyncio.run(
        bench.ask(model, "Request: Q\nThe x is:", ["a", "constitutional law"])
    )
    assert (chosen, tokens) == ("constitutional law", 3)
    (request,) = model.requests
    assert request.output_schema == {"type": "string", "enum": ["a", "constitutional law"]}
    assert [m.content for m in request.messages] == ["Request: Q\nThe x is:"]
    assert request.settings.temperature == 0.0


def test_logs_holding_a_held_out_case_are_refused(tmp_path: Path) -> None:
    pytest.importorskip("bfcl_eval")
    from pilothouse_suites.bfcl import split

    held = split()["simple_python"]["holdout"][0]
    log = {"samples": [{"scenario": held, "events": []}]}
    (tmp_path / "a.json").write_text(json.dumps(log))
    with pytest.raises(SystemExit, match="held-out"):
        bench.logged_calls(tmp_path)
    tune = split()["simple_python"]["tune"][0]
    call = {"type": "tool_call", "call": {"name": "f", "arguments": {"a": 1}}}
    (tmp_path / "a.json").write_text(
        json.dumps({"samples": [{"scenario": tune, "events": [call]}]})
    )
    assert bench.logged_calls(tmp_path) == {tune: [("f", {"a": 1})]}


def test_short_candidates_are_typed_phrases_of_at_most_four_words() -> None:
    clause = "Get me the top 10 landmark cases in constitutional law"
    got = bench.short_candidates("field_of_law", [clause, "10", "law", "constitutional law"])
    assert got == ["constitutional law"]
    assert bench.short_candidates("field_of_law", [clause]) == [clause]
    prop = {"type": "string", "description": "The field."}
    short = bench.question_text("Q", "field_of_law", prop, "short")
    assert short == bench.question_text("Q", "field_of_law", prop, "desc")


def test_keyed_question_replies_with_the_parameter_as_its_one_key() -> None:
    schema = bench.question_schema(["a", "b"], "city")
    assert schema == {
        "type": "object",
        "properties": {"city": {"type": "string", "enum": ["a", "b"]}},
        "required": ["city"],
        "additionalProperties": False,
    }
    model = _Replies('{"city": "b"}')
    assert asyncio.run(bench.ask(model, "Q", ["a", "b"], "city")) == ("b", 3)
    assert model.requests[0].output_schema == schema


def test_tooled_question_shows_the_tool_first() -> None:
    prop = {"type": "string", "description": "The city."}
    text = bench.question_text("Q", "city", prop, "tooled", None, "hotel.book: Book a hotel.")
    assert text == "Tool: hotel.book: Book a hotel.\nRequest: Q\nThe city. The city is:"
    # only the tooled variant shows it
    assert bench.question_text("Q", "city", prop, "keyed", None, "hotel.book: Book a hotel.") == (
        "Request: Q\nThe city. The city is:"
    )


def test_acceptable_agrees_with_bfcls_checker() -> None:
    pytest.importorskip("bfcl_eval")
    from pilothouse.messages import ToolCall
    from pilothouse_suites.bfcl import check

    answers = ["New York, NY", "it's", "2022/08/16"]
    for value in ["new york ny", "New-York,NY", 'it"s', "2022-08-16", "New York", "its"]:
        truth = {"city": answers, "field_of_law": ["tax"], "years": [5], "level": ["senior"]}
        arguments = {"city": value, "field_of_law": "tax", "years": 5, "level": "senior"}
        verdict = check(_case(truth), [ToolCall("c", LAWYER["name"], arguments)])
        assert verdict.valid == bench.acceptable(value, answers), value
