"""Prompts as data: the defaults file, overrides and their checks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pilothouse.exceptions import ConfigurationError
from pilothouse.prompts import Prompts


def test_every_default_uses_exactly_its_declared_fields() -> None:
    prompts = Prompts.default()
    assert len(prompts) >= 10
    for name, template in prompts.items():
        values = {f: f"<{f}>" for f in template.fields | template.optional}
        text = template.render(**values)
        for field in template.fields:
            assert f"<{field}>" in text, (name, field)
        # no placeholder left unfilled ("$1", a plan's reference to task 1, is text)
        assert not re.search(r"\$(?![0-9])", text.replace("$$", "")), name
    assert prompts.overrides == {}


def test_render_fills_fields() -> None:
    text = Prompts.default().render("parse_retry", reason="no JSON", format="json")
    assert text == (
        "Your last reply could not be read as an action (no JSON). Reply again in the json "
        "format described in the instructions: one tool call, or your final answer."
    )


def test_override_replaces_one_prompt_and_is_recorded() -> None:
    prompts = Prompts.of({"parse_retry": "Unreadable ($reason). Use $format."})
    assert prompts.render("parse_retry", reason="x", format="react") == "Unreadable (x). Use react."
    assert prompts.overrides == {"parse_retry": "Unreadable ($reason). Use $format."}
    assert prompts.text("output_retry") == Prompts.default().text("output_retry")
    assert prompts != Prompts.default()
    # the defaults are untouched
    assert "Unreadable" not in Prompts.default().text("parse_retry")


def test_override_missing_a_required_field_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"leaves out \$reason"):
        Prompts.of({"parse_retry": "Try again in $format."})


def test_override_with_an_unknown_field_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"uses \$why.*fills: \$format, \$reason"):
        Prompts.of({"parse_retry": "$reason $format $why"})


def test_optional_fields_may_be_used_or_not() -> None:
    prompts = Prompts.of({"react_format": "Tools:\n$tools"})
    assert prompts.render("react_format", tools="a, b", tool_names="a") == "Tools:\na, b"
    prompts = Prompts.of({"react_format": "$tools ($tool_names)"})
    assert prompts.render("react_format", tools="T", tool_names="a") == "T (a)"


def test_a_lone_dollar_is_refused_and_a_double_one_is_literal() -> None:
    with pytest.raises(ConfigurationError, match=r"write \$\$ for a literal"):
        Prompts.of({"output_retry": "costs 5$ $problems"})
    prompts = Prompts.of({"output_retry": "costs 5$$: $problems"})
    assert prompts.render("output_retry", problems="p") == "costs 5$: p"


def test_unknown_prompt_name_and_wrong_types_are_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"no prompt named 'parse_rety'.*parse_retry"):
        Prompts.of({"parse_rety": "$reason $format"})
    with pytest.raises(ConfigurationError, match="must be a string"):
        Prompts.of({"parse_retry": 3})  # type: ignore[dict-item]
    with pytest.raises(ConfigurationError, match="mapping of prompt name"):
        Prompts.of(["parse_retry"])  # type: ignore[arg-type]


def test_rendering_without_a_field_names_it() -> None:
    with pytest.raises(ConfigurationError, match="'format'"):
        Prompts.default().render("parse_retry", reason="x")


def test_load_reads_both_toml_shapes(tmp_path: Path) -> None:
    path = tmp_path / "prompts.toml"
    path.write_text(
        'question_unanswered = "No answer came."\n[output_retry]\ntext = "Fix it: $problems"\n',
        encoding="utf-8",
    )
    prompts = Prompts.load(path)
    assert prompts.render("question_unanswered") == "No answer came."
    assert prompts.render("output_retry", problems="p") == "Fix it: p"
    assert set(prompts.overrides) == {"question_unanswered", "output_retry"}


def test_load_reports_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read prompts"):
        Prompts.load(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[output_retry]\ndoc = 'no text'\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="needs a text"):
        Prompts.load(bad)


def test_format_templates_come_from_the_prompts_and_overrides_are_checked() -> None:
    from pilothouse.actions.formats import JsonFormat, ReactFormat

    assert ReactFormat().template == Prompts.default().text("react_format")
    assert JsonFormat().observation_template == Prompts.default().text("json_observation")
    with pytest.raises(ConfigurationError, match=r"uses \$tool_name,"):
        ReactFormat(template="Tools: $tool_name")


# ------------------------------------------------------------------ an agent's prompts


def _lookup(key: str) -> str:
    """Look a key up."""
    return f"value of {key}"


def test_an_agents_overrides_reach_the_model_and_change_its_definition() -> None:
    from pydantic import BaseModel

    from pilothouse import Agent
    from pilothouse.models.scripted import ScriptedModel

    class Answer(BaseModel):
        n: int

    model = ScriptedModel(['{"n": "many"}', '{"n": 3}'])
    agent = Agent(
        model,
        "Count.",
        output_type=Answer,
        store=":memory:",
        prompts={
            "output_instructions": "Answer as JSON: $schema",
            "output_retry": "Wrong shape ($problems), again.",
        },
    )
    result = agent.run_sync("how many?")
    assert result.output == Answer(n=3)
    system = model.requests[0].messages[0].content
    assert system.startswith("Count.\n\nAnswer as JSON: {")
    retry = model.requests[1].messages[-1].content
    assert retry.startswith("Wrong shape (n: ") and retry.endswith("), again.")
    plain = Agent(ScriptedModel(["x"]), "Count.", output_type=Answer, store=":memory:")
    assert plain.run_spec().definition_hash != agent.run_spec().definition_hash
    default = Agent(
        ScriptedModel(["x"]), "Count.", output_type=Answer, store=":memory:", prompts={}
    )
    assert default.run_spec().definition_hash == plain.run_spec().definition_hash


def test_an_agents_format_prompts_and_parse_retry_are_its_own() -> None:
    from pilothouse import Agent
    from pilothouse.models.scripted import ScriptedModel

    model = ScriptedModel(['Action: _lookup\nAction Input: {"key": ', "Final Answer: done"])
    agent = Agent(
        model,
        "Help.",
        tools=[_lookup],
        store=":memory:",
        action_format="react",
        prompts={
            "react_format": "Tools: $tool_names. Use Action: / Final Answer:.",
            "parse_retry": "Unreadable: $reason. Use $format.",
        },
    )
    result = agent.run_sync("go")
    assert result.output == "done"
    assert model.requests[0].messages[0].content == (
        "Help.\n\nTools: _lookup. Use Action: / Final Answer:."
    )
    assert model.requests[1].messages[-1].content.startswith("Unreadable: ")
    assert model.requests[1].messages[-1].content.endswith(". Use react.")
    # the format object shared by other agents is untouched
    from pilothouse.actions.formats import ReactFormat, get_format

    assert get_format("react").template == ReactFormat().template


def test_a_bad_override_is_refused_when_the_agent_is_made() -> None:
    from pilothouse import Agent
    from pilothouse.models.scripted import ScriptedModel

    with pytest.raises(ConfigurationError, match=r"leaves out \$problems"):
        Agent(ScriptedModel(["x"]), prompts={"output_retry": "Try again."})


def test_the_guided_layers_prompts_come_from_the_file_and_are_checked() -> None:
    from pilothouse.guided import GuidedModel
    from pilothouse.guided.render import TOOL_PROMPT, TOOL_RESULT_PROMPT
    from pilothouse.models.scripted import ScriptedModel

    assert Prompts.default().text("guided_tools") == TOOL_PROMPT
    assert Prompts.default().text("guided_tool_result") == TOOL_RESULT_PROMPT
    with pytest.raises(ConfigurationError, match=r"leaves out \$forms"):
        GuidedModel(ScriptedModel(["x"]), tool_prompt="Tools: $tools")
    custom = GuidedModel(ScriptedModel(["x"]), tool_result_prompt="[$content]")
    assert custom.tool_result_prompt == "[$content]"
