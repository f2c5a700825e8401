# ruff: noqa: RUF001  (real Russian and Greek text)
"""The relevance gate on user tools, seventh round (issue #22): requests in a spaced
non-Latin alphabet judged by the words they share with a tool described in it, a
question about what exists against a tool that only creates, and `asked_for` taking a
misspelt name word and a name's "Tool" filler. Pure functions, no model; the requests
are the live-like tune set's (`benchmarks/data/bfcl_livelike/cases_r7.py`)."""

from __future__ import annotations

from tool_specs import spec as _tool

from pilothouse.guided.relevance import asked_for, conflicting_action, fits, script_words
from pilothouse.models.base import ToolSpec


def _weather_ru() -> ToolSpec:
    return _tool(
        "weatherTool",
        "Получает текущую погоду в указанном городе.",
        city={"type": "string", "description": "Название города, например, Москва"},
    )


def test_script_words_are_the_spaced_non_latin_words_of_four_letters_or_more() -> None:
    assert script_words("Какая сейчас погода в Казани?") == {"какая", "сейчас", "погода", "казани"}
    assert script_words("Τι καιρό κάνει στην Αθήνα;") == {"καιρό", "κάνει", "στην", "αθήνα"}
    assert not script_words("What is the weather in Kazan?")
    assert not script_words("杭州今天天气怎么样？")  # CJK has its own pairs


def test_a_russian_request_is_judged_against_a_tool_described_in_russian() -> None:
    weather = _weather_ru()
    # "погода" and "погоду" share their first five letters (a case ending)
    assert fits("Какая сейчас погода в Казани?", weather)
    assert asked_for("Какая сейчас погода в Казани?", weather)
    assert not fits("Сколько будет 17 умножить на 23?", weather)
    # a tool described in English: nothing to judge a Russian request by, kept as before
    english = _tool("get_weather", "Get the current weather", city={"type": "string"})
    assert fits("Сколько будет 17 умножить на 23?", english)


def test_a_question_about_what_exists_does_not_fit_a_tool_that_only_creates() -> None:
    reminder = _tool("add_reminder", "", text={"type": "string"})
    task = _tool(
        "add_vikunja_task",
        "Add a task to Vikunja with project_id, title, description.",
        project_id={"type": "integer"},
        title={"type": "string"},
    )
    assert conflicting_action("What reminders do I have for today?", reminder)
    assert not fits("What reminders do I have for today?", reminder)
    assert not fits("How many tasks are overdue in project 7?", task)
    assert conflicting_action("Do I have any new emails from HR?", _tool("send_email", ""))
    assert conflicting_action("Did Marco reply to my email yet?", _tool("send_email", ""))
    # a reading tool serves such a question; a request to create is not one
    assert not conflicting_action("How many tasks are overdue?", _tool("list_tasks", ""))
    assert not conflicting_action("Add a reminder to call mom", reminder)
    assert fits("Create a task 'Renew passport' in project 12.", task)
    # "Do I need an umbrella?" asks nothing that exists in the tool's store
    assert not conflicting_action("Do I need an umbrella in Paris?", reminder)


def test_asked_for_takes_a_misspelt_name_word_and_a_tool_filler_word() -> None:
    weather = _tool("get_weather", "Get the current weather for a city", city={"type": "string"})
    assert asked_for("hey! quick one, hows the wether in lisbon rn?", weather)
    assert asked_for("What's the weather like in Novosibirsk?", _weather_ru())
    # a name word of its own is still needed: "cell" alone is not get_cell_function
    cell = _tool("get_cell_function", "Get the function of a cell part.", part={"type": "string"})
    assert not asked_for("Identify the number of the mitochondria in a cell.", cell)
    assert not asked_for("hows the wxaeher in lisbon?", weather)
