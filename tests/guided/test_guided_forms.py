"""Values in the form their parameter asks for (`guided.forms`), and a request that
plainly asks for a tool is given a tool only (`relevance.asked_for`)."""

from __future__ import annotations

from test_guided_model import Log
from tool_specs import spec

from pilothouse.guided import GuidedModel
from pilothouse.guided.arguments import grounded_parameters, settle
from pilothouse.guided.forms import (
    currency_codes,
    currency_parameter,
    described_pairs,
    described_value,
)
from pilothouse.guided.relevance import asked_for
from pilothouse.messages import Message
from pilothouse.models.base import ModelRequest
from pilothouse.models.scripted import ScriptedModel

CONVERTER = spec(
    "currency_converter",
    "Calculates the current cost in target currency given the amount in base currency.",
    base_currency={"type": "string", "description": "The currency to convert from."},
    target_currency={"type": "string", "description": "The currency to convert to."},
    amount={"type": "number"},
)
MELODY = spec(
    "compose_melody",
    "Compose a melody using the specified chord progression for a number of measures.",
    progression={"type": "array", "items": {"type": "string"}},
    measures={"type": "integer", "description": "The number of measures of the melody."},
)
WEATHER = spec(
    "weather.get",
    "Get the current weather of a city.",
    city={"type": "string"},
    unit={
        "type": "string",
        "description": "The unit: 'c' for Celsius, 'f' for Fahrenheit.",
        "required": False,
    },
)


# ---------------------------------------------------------------- currencies


def test_currency_names_become_codes_in_the_order_said() -> None:
    said = "Calculate the cost in British Pounds if I need to convert 200 US dollars."
    assert currency_codes(said) == ["GBP", "USD"]
    assert currency_codes("How many Canadian dollars for 500 dollars?") == ["CAD", "USD"]
    assert currency_codes("I have 100 euro. How much is it in USD?") == ["EUR", "USD"]
    assert currency_codes("Convert 150 Euros to Japanese yen") == ["EUR", "JPY"]
    assert currency_codes("Book a room for two nights") == []
    assert currency_codes("The ABC of it, in CAT form") == []  # not codes


def test_only_a_free_string_named_for_a_currency_is_a_currency_parameter() -> None:
    assert currency_parameter("from_currency", {"type": "string"})
    assert not currency_parameter("amount", {"type": "string"})
    assert not currency_parameter("currency", {"type": "string", "enum": ["USD"]})
    assert not currency_parameter("currency", {"type": "number"})


def test_a_currency_argument_is_held_to_the_codes_the_request_names() -> None:
    held = grounded_parameters(CONVERTER, "Convert 200 US dollars to British Pounds.")
    assert held is not None
    assert held["properties"]["base_currency"]["enum"] == ["USD", "GBP"]
    assert held["properties"]["amount"]["enum"] == [200]


def test_a_currency_name_written_as_an_argument_becomes_its_code() -> None:
    said = "Convert 200 US dollars to British Pounds."
    written = {"base_currency": "US dollars", "target_currency": "GBP", "amount": 200}
    settled, changes = settle(written, CONVERTER, said)
    assert settled["base_currency"] == "USD" and settled["target_currency"] == "GBP"
    assert len(changes) == 1


# ---------------------------------------------------------------- a description's mapping


def test_a_description_maps_values_to_phrases() -> None:
    assert described_pairs("The unit: 'c' for Celsius, 'f' for Fahrenheit.") == [
        ("c", "Celsius"),
        ("f", "Fahrenheit"),
    ]
    assert described_pairs("The key of the melody. E.g., 'C' for C major.") == [("C", "C major")]
    assert described_pairs("The name of the city.") == []


def test_the_mapped_value_is_taken_only_when_one_phrase_is_said() -> None:
    unit = WEATHER.parameters["properties"]["unit"]
    assert described_value(unit, "Weather in Tokyo in celsius?") == "c"
    assert described_value(unit, "Weather in Tokyo, celsius and fahrenheit") is None
    assert described_value(unit, "Weather in Tokyo?") is None
    assert (
        described_value(
            {"type": "string", "enum": ["c"], "description": "'c' for Celsius"}, "celsius"
        )
        is None
    )


def test_settle_puts_a_described_value_in_its_form_and_fills_it_when_left_out() -> None:
    said = "What is the weather in Tokyo in celsius?"
    settled, _ = settle({"city": "Tokyo", "unit": "celsius"}, WEATHER, said)
    assert settled == {"city": "Tokyo", "unit": "c"}
    settled, _ = settle({"city": "Tokyo"}, WEATHER, said)
    assert settled == {"city": "Tokyo", "unit": "c"}
    settled, _ = settle({"city": "Tokyo"}, WEATHER, "What is the weather in Tokyo?")
    assert settled == {"city": "Tokyo"}


# ---------------------------------------------------------------- a tool plainly asked for


def test_a_request_plainly_asks_for_a_tool_by_its_name_and_description() -> None:
    asked = "Compose a simple piano melody with a progression of C, F and G for 4 measures."
    assert asked_for(asked, MELODY)
    assert not asked_for("Tell me about piano melodies.", MELODY)  # one name word only
    assert not asked_for("Compose a melody with a progression of chords.", MELODY)  # no number
    assert not asked_for("Where is my order A1234?", WEATHER)


async def test_a_tool_plainly_asked_for_is_called_without_a_choice() -> None:
    asked = "Compose a simple piano melody with a progression of C, F and G for 4 measures."
    inner = ScriptedModel(
        ['{"tool": "compose_melody", "arguments": {"progression": ["C", "F", "G"], "measures": 4}}']
    )
    log = Log()
    guided = GuidedModel(inner)
    request = ModelRequest([Message.user(asked)], [MELODY])
    response = await guided.staged(request, log)
    assert [s.name for s in log.stages] == ["arguments"]
    assert "plainly asks for compose_melody" in log.stages[0].note  # why no choose stage
    assert response.tool_calls[0].arguments == {"progression": ["C", "F", "G"], "measures": 4}
    assert guided.first_stage(request).name == "arguments"  # what render shows


async def test_among_several_tools_the_choice_offers_no_answer() -> None:
    asked = "Compose a simple piano melody with a progression of C, F and G for 4 measures."
    inner = ScriptedModel(
        [
            '{"tool": "compose_melody"}',
            '{"tool": "compose_melody", "arguments": {"progression": ["C"], "measures": 4}}',
        ]
    )
    log = Log()
    other = spec("melody.analyse", "Analyse a melody's key.", notes={"type": "string"})
    await GuidedModel(inner).staged(ModelRequest([Message.user(asked)], [MELODY, other]), log)
    choose = log.stages[0]
    assert choose.name == "choose" and "plainly asks for compose_melody" in choose.note
    assert "answer" not in str(choose.request.output_schema)


async def test_with_the_gate_off_or_an_output_schema_an_answer_stays_possible() -> None:
    asked = "Compose a simple piano melody with a progression of C, F and G for 4 measures."
    request = ModelRequest([Message.user(asked)], [MELODY])
    off = GuidedModel(ScriptedModel([]), relevance=False)
    assert off.first_stage(request).name == "choose"
    schema = {"type": "object", "properties": {"x": {"type": "string"}}}
    structured = ModelRequest([Message.user(asked)], [MELODY], output_schema=schema)
    assert GuidedModel(ScriptedModel([])).first_stage(structured).name == "choose"


# ---------------------------------------------------------------- the gate: kinds of value

EXCHANGE = spec(
    "currency_exchange.convert",
    "Convert an amount from one currency to another.",
    base_currency={"type": "string"},
    target_currency={"type": "string"},
    amount={"type": "integer"},
)
EVENT_DATE = spec(
    "get_event_date", "Retrieve the date of a historical event.", event={"type": "string"}
)


def test_a_named_currency_is_evidence_for_a_tool_with_a_currency_parameter() -> None:
    from pilothouse.guided.relevance import fits

    assert fits("How many Canadian dollars can I get for 500 US dollars?", EXCHANGE)
    assert not fits("How many apples can I get for 500 seeds?", EXCHANGE)


def test_a_when_question_is_evidence_for_a_tool_named_for_a_date() -> None:
    from pilothouse.guided.relevance import fits

    assert fits("When was the signing of the Treaty of Lisbon?", EVENT_DATE)
    assert not fits("Who signed the Treaty of Lisbon?", EVENT_DATE)
