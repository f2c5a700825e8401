"""The naive JSON-action baseline construction, and one short run on the embedded model."""

from __future__ import annotations

import importlib.util

import pytest

from pilothouse import ScriptedModel
from pilothouse.evals import run_eval
from pilothouse.models.base import ModelRequest
from pilothouse_suites import builtin
from pilothouse_suites.baselines import NaiveJSONModel, parse_action


def test_parse_action() -> None:
    specs = [builtin.calculator.spec(), builtin.get_api_spec.spec()]
    text = 'Sure.\n```json\n{"action": "calculator", "action_input": "2 + 2"}\n```'
    assert parse_action(text, specs) == ("calculator", "2 + 2")
    assert parse_action('{"action": "Final Answer", "action_input": "4"}', specs) == (None, "4")
    assert parse_action("It is 4.", specs) == (None, "It is 4.")
    assert parse_action('{"action": "nosuch", "action_input": "x"}', specs) == (None, "x")


async def test_naive_construction_runs_tools_through_free_text() -> None:
    replies = iter(
        [
            '```json\n{"action": "calculator", "action_input": "37 * 48 + 125"}\n```',
            '```json\n{"action": "Final Answer", "action_input": "It is 1901."}\n```',
        ]
    )
    seen: list[ModelRequest] = []

    def reply(request: ModelRequest) -> str:
        seen.append(request)
        return next(replies)

    log = await run_eval(
        builtin.naive_suite,
        [ScriptedModel(reply, name="inner")],
        epochs=1,
        scenarios=["arithmetic"],
    )
    sample = log.samples[0]
    assert sample.ok, sample.message
    assert sample.events[0]["model"] == "naive-json(inner)"
    calls = [e["call"] for e in sample.events if e["type"] == "tool_call"]
    assert calls[0]["arguments"] == {"expression": "37 * 48 + 125"}
    # The inner model got no tools and no schema: everything is in the text.
    first, second = seen
    assert first.tools == [] and first.output_schema is None
    system = first.messages[0].content
    assert "> calculator:" in system and '"action": "Final Answer"' in system
    assert "Example:" not in system  # the baseline gets no worked example
    assert "TOOL RESPONSE:" in second.messages[-1].content
    assert "1901" in second.messages[-1].content


async def test_the_ablation_keeps_the_worked_examples() -> None:
    seen: list[ModelRequest] = []

    def reply(request: ModelRequest) -> str:
        seen.append(request)
        return '{"action": "Final Answer", "action_input": "It is 60."}'

    log = await run_eval(
        builtin.naive_examples_suite,
        [ScriptedModel(reply, name="inner")],
        epochs=1,
        scenarios=["velocity"],
    )
    assert log.samples[0].ok, log.samples[0].message
    system = seen[0].messages[0].content
    assert system.startswith(builtin.velocity.instructions)  # the example included
    assert "Example:" in system and "> calculator:" in system


def test_render_shows_the_naive_prompt() -> None:
    from pilothouse.messages import Message

    model = NaiveJSONModel(ScriptedModel(["x"]))

    request = ModelRequest([Message.user("hi")], [builtin.calculator.spec()])
    assert "RESPONSE FORMAT INSTRUCTIONS" in model.render(request)


@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed"
)
async def test_embedded_model_sample_is_recorded_and_classified() -> None:
    """One short run of SmolLM2-135M (one step): whatever it does is logged and classified."""
    from pilothouse import Budget

    log = await run_eval(
        builtin.suite, ["local"], epochs=1, scenarios=["facts/capital"], budget=Budget(max_steps=1)
    )
    (sample,) = log.samples
    assert sample.model == "local"
    assert sample.events[0]["type"] == "run_started"
    assert sample.events[0]["model"] == "local:smollm2-135m"
    assert sample.input_tokens > 0
    if sample.ok:
        assert "canberra" in str(sample.output).lower()
    else:
        assert sample.failure in ("assertion", "budget_stop", "parse_failure"), sample.message


async def test_the_bare_ablation_drops_the_worked_examples() -> None:
    seen: list[ModelRequest] = []

    def reply(request: ModelRequest) -> str:
        seen.append(request)
        return "It is 60."

    log = await run_eval(
        builtin.bare_suite, [ScriptedModel(reply, name="m")], epochs=1, scenarios=["velocity"]
    )
    assert log.samples[0].ok, log.samples[0].message
    system = seen[0].messages[0].content
    assert system.startswith("You answer arithmetic questions.") and "Example:" not in system
