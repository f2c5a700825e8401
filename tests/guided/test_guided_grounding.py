"""The deterministic gates between guided stages: relevance, request spans, settled
arguments, cut-off answers; and how `GuidedModel` uses them (scripted inner model)."""

from __future__ import annotations

from test_guided_model import Log
from tool_specs import spec

from pilothouse.guided import GuidedModel
from pilothouse.guided.arguments import settle, spans
from pilothouse.guided.model import partial_answer
from pilothouse.guided.relevance import fits, relevant_tools
from pilothouse.messages import Message
from pilothouse.models.base import ModelRequest, ModelResponse, ToolSpec
from pilothouse.models.scripted import ScriptedModel

BLUES = spec(
    "music_theory.get_blues_scale",
    "Generates the blues scale in a given key.",
    key={"type": "string", "description": "The root note of the scale."},
)
LAWYER = spec(
    "lawyer_finder",
    "Locate lawyers near you based on their specialization.",
    location={"type": "string"},
    specialization={"type": "array", "items": {"type": "string"}},
)
CAR = spec(
    "car_rental", "Rent a car near you based on your preference.", location={"type": "string"}
)
CALCULATOR = spec("calculator", "Evaluate an arithmetic expression.", expression={"type": "string"})
NOTES = spec("lookup", "Search the notes.", query={"type": "string"})
CONCERT = spec(
    "concert.search",
    "Locate a concert based on criteria like genre, location, and date.",
    genre={"type": "string"},
    location={"type": "string"},
    price_range={
        "type": "string",
        "enum": ["free", "cheap", "moderate", "expensive", "any"],
        "required": False,
    },
    seats={"type": "integer", "required": False},
    vip={"type": "boolean", "required": False},
    note={"type": "string", "required": False},
)


# ---------------------------------------------------------------- relevance


def test_no_tool_fits_a_request_that_shares_no_word_with_it() -> None:
    assert relevant_tools("Who was the composer of Moonlight Sonata?", [BLUES]) == []


def test_only_the_fitting_tools_are_kept_in_order() -> None:
    asked = "Find lawyers specializing in criminal law near me in New York."
    assert relevant_tools(asked, [CAR, LAWYER]) == [LAWYER]


def test_prefixes_meet_and_generic_verbs_are_no_evidence() -> None:
    invention = spec("science_history.get_invention", "Retrieve the inventor.")
    assert fits("Who invented the theory of relativity?", invention)
    sunrise = spec("calculate_sunrise", "Calculate the time of sunrise for a date.")
    assert not fits("When will be sunset in Beijing today?", sunrise)
    # "calculate" and "get" are shared, but every tool says them
    assert not fits("Calculate and get the sunset", sunrise)


def test_a_request_without_content_words_keeps_every_tool() -> None:
    assert relevant_tools("What is 37 * 48 + 125?", [CALCULATOR]) == [CALCULATOR]
    assert relevant_tools("What is seven plus eight?", [CALCULATOR]) == [CALCULATOR]


def test_a_tool_the_instructions_name_fits_and_a_search_tool_fits_anything() -> None:
    asked = "A train covers 150 km in 2.5 hours. What is its speed?"
    assert not fits(asked, CALCULATOR)
    assert fits(asked, CALCULATOR, "Call calculator with the expression.")
    # a name inside another name is not a mention
    assert not fits(asked, CALCULATOR, "Call scientific_calculator_v2 instead.")
    assert fits("When does the Harbor shop open?", NOTES)


def test_description_words_need_two() -> None:
    profit = spec(
        "investment_analysis.calculate_profit",
        "Calculates the net profit given the total revenue and total cost.",
    )
    assert not fits("What is the revenue of Apple?", profit)
    assert fits("The rate of return with $15000 revenue and $22000 cost?", profit)


# ---------------------------------------------------------------- spans and settling


def test_spans_keep_the_users_own_form() -> None:
    text = (
        "What's the power rating for the Weapon 'Guardian Sword+' in the game "
        "'Legend of Zelda: Breath of the Wild'?"
    )
    found = spans(text)
    assert found[:2] == ["Guardian Sword+", "Legend of Zelda: Breath of the Wild"]
    assert "power rating" in found
    assert "of the Wild" not in found and "the game" not in found
    assert "May 12, 2022" in spans("Book a room for 3 days starting from May 12, 2022.")
    assert spans("   ") == []


def test_spans_of_a_language_without_spaces_are_its_words_inside_runs() -> None:
    # livelike_simple_19 (tune): the only span was the whole request, and the city
    # became 帮我查一下北京市的天气
    found = spans("帮我查一下北京市的天气")
    assert "北京市" in found and "天气" in found
    assert not any("的" in s or "我" in s for s in found[1:])  # particles break runs
    assert all(2 <= len(s) <= 8 for s in found[1:])
    assert "東京" in spans("東京の天気を教えて")  # hiragana ends a run
    assert "서울" in spans("서울 날씨 알려줘")
    long_run = "人" * 200
    assert len(spans(long_run)) <= 8 * 200  # bounded: 2-8 letters from each start


def test_an_enum_member_the_request_names_is_taken() -> None:
    asked = "Find me a classical concert this weekend in Los Angeles with cheap tickets."
    out, changes = settle({"genre": "classical", "location": "Los Angeles"}, CONCERT, asked)
    assert out["price_range"] == "cheap" and "price_range" in changes[0]
    out, _ = settle({"genre": "x", "location": "y", "price_range": "any"}, CONCERT, asked)
    assert out["price_range"] == "cheap"


def test_optionals_the_request_does_not_support_are_left_out() -> None:
    asked = "Find a jazz concert in Paris for 2 seats."
    written = {
        "genre": "jazz",
        "location": "Paris",
        "price_range": "moderate",  # not said
        "seats": 2,  # said
        "vip": True,  # not said
        "note": "front row please",  # not said
    }
    out, changes = settle(written, CONCERT, asked)
    assert out == {"genre": "jazz", "location": "Paris", "seats": 2}
    assert len(changes) == 3
    # a flag whose name the request says is kept; required values are never touched
    out, _ = settle({"genre": "rock", "location": "Rome", "vip": True}, CONCERT, "VIP seats")
    assert out == {"genre": "rock", "location": "Rome", "vip": True}


def test_settling_what_the_request_supports_changes_nothing() -> None:
    asked = "A cheap jazz concert in Paris, 3 seats, with a note: front row"
    written = {"genre": "jazz", "location": "Paris", "price_range": "cheap", "seats": 3}
    written["note"] = "front row"
    assert settle(written, CONCERT, asked) == (written, [])


# ---------------------------------------------------------------- cut-off answers


def test_a_cut_off_answer_keeps_its_complete_sentences() -> None:
    raw = ModelResponse(
        '{"answer": "The field is 0.2 \\"T\\". It is 2mA * 2 = 4mA * 2 = 8mA',
        finish_reason="length",
    )
    salvaged = partial_answer(raw)
    assert salvaged is not None
    assert salvaged.text == 'The field is 0.2 "T". ...'
    assert salvaged.finish_reason == "length"
    assert partial_answer(ModelResponse('{"tool": "x"', finish_reason="length")) is None


# ---------------------------------------------------------------- GuidedModel


def ModelCutOff(text: str) -> ModelResponse:
    """A reply the inner model stopped at its token limit."""
    return ModelResponse(text, finish_reason="length")


def _request(text: str, *tools: ToolSpec) -> ModelRequest:
    return ModelRequest([Message.system("Help."), Message.user(text)], list(tools))


async def test_when_no_tool_fits_the_step_is_an_answer_without_tools() -> None:
    inner = ScriptedModel(["Beethoven composed it."])
    log = Log()
    guided = GuidedModel(inner)
    request = _request("Who was the composer of Moonlight Sonata?", BLUES)
    response = await guided.staged(request, log)
    assert response.text == "Beethoven composed it." and not response.tool_calls
    (stage,) = log.stages
    assert stage.name == "answer" and stage.tools == [] and "no offered tool fits" in stage.note
    assert "## Tools" not in inner.requests[0].messages[0].content
    assert guided.first_stage(request).name == "answer"  # what render shows
    # without the gate the model is asked to choose
    off = GuidedModel(ScriptedModel(['{"answer": "Beethoven"}']), relevance=False)
    assert off.first_stage(request).name == "choose"


async def test_only_fitting_tools_are_offered_and_the_call_is_settled() -> None:
    # the request names the whole of the tool's name ("concert"): it is plainly asked
    # for (`relevance.asked_for`), so the first stage writes its arguments
    inner = ScriptedModel(
        [
            '{"tool": "concert.search", "arguments": {"genre": "classical", '
            '"location": "Los Angeles", "seats": 4}}',
        ]
    )
    log = Log()
    asked = "Find me a classical concert this weekend in Los Angeles with cheap tickets."
    response = await GuidedModel(inner).staged(_request(asked, BLUES, CONCERT), log)
    assert log.stages[0].name == "arguments" and log.stages[0].tools == ["concert.search"]
    (call,) = response.tool_calls
    assert call.arguments == {
        "genre": "classical",
        "location": "Los Angeles",
        "price_range": "cheap",
    }


async def test_a_string_nobody_said_is_asked_again_among_the_requests_spans() -> None:
    game = spec(
        "game_rewards.get",
        "Retrieve rewards for a game.",
        game={"type": "string"},
        platform={"type": "string", "description": "The platform e.g. Xbox, Playstation"},
    )
    inner = ScriptedModel(
        [
            '{"tool": "game_rewards.get", "arguments": {"game": "Fortnite", "platform": "Xbox"}}',
            '{"tool": "game_rewards.get", "arguments": {"game": "Fortnite", '
            '"platform": "Playstation"}}',
        ]
    )
    log = Log()
    asked = "Find out the rewards for playing Fortnite on Playstation platform"
    response = await GuidedModel(inner).staged(_request(asked, game), log)
    # the request plainly asks for the one tool (relevance.asked_for): no choose stage
    assert [s.name for s in log.stages] == ["arguments", "narrow"]
    narrowed = log.stages[1].schemas
    assert narrowed is not None
    assert "Playstation platform" in narrowed["game_rewards.get"]["properties"]["platform"]["enum"]
    assert response.tool_calls[0].arguments["platform"] == "Playstation"


async def test_arguments_cut_off_are_asked_again_held_to_spans() -> None:
    inner = ScriptedModel(
        [
            ModelCutOff('{"tool": "lawyer_finder", "arguments": {"location": "New York New York'),
            '{"tool": "lawyer_finder", "arguments": {"location": "New York", '
            '"specialization": ["criminal law"]}}',
        ]
    )
    log = Log()
    asked = "Find lawyers specializing in criminal law near me in New York."
    response = await GuidedModel(inner).staged(_request(asked, LAWYER), log)
    assert [s.name for s in log.stages] == ["arguments", "narrow"]  # asked for: no choose
    assert "cut off" in log.stages[1].note
    (call,) = response.tool_calls
    assert call.parse_error is None and call.arguments["location"] == "New York"


async def test_a_cut_off_answer_ends_the_step_as_an_answer() -> None:
    inner = ScriptedModel([ModelCutOff('{"answer": "Beethoven wrote it. He was deaf and the son')])
    response = await GuidedModel(inner, relevance=False).staged(
        _request("Who was the composer of Moonlight Sonata?", BLUES), Log()
    )
    assert response.text == "Beethoven wrote it. ..." and not response.tool_calls


# ---------------------------------------------------------------- second round (#22)

HEAT = spec(
    "calculate_heat",
    "Calculate the heat required to raise the temperature of a mass.",
    mass={"type": "number"},
    specific_heat={"type": "number"},
    change_in_temp={"type": "number"},
)
CASE = spec(
    "legal_case.fetch",
    "Fetch detailed legal case information from database.",
    case_id={"type": "string"},
    details={"type": "boolean"},
)
GROCERY = spec(
    "grocery_store.find_best",
    "Find the closest high-rated grocery stores based on certain product availability.",
    my_location={"type": "string"},
    rating={"type": "number", "required": False},
    products={"type": "array", "items": {"type": "string"}},
)
NEWS = spec(
    "get_news",
    "Fetch the latest news on a specific topic.",
    topic={"type": "string"},
    quantity={"type": "integer"},
    region={"type": "string", "required": False},
)


def test_a_tool_the_request_cannot_fill_with_numbers_does_not_fit() -> None:
    from pilothouse.guided.relevance import fillable, request_numbers

    asked = "What energy heats 3 kg of water by 4 degrees Celsius?"
    assert request_numbers(asked) == ["3", "4"]
    assert not fillable(asked, HEAT) and not fits(asked, HEAT)
    more = "The heat for 3 kg of water, specific heat 4.18, by 4 degrees?"
    assert fillable(more, HEAT) and fits(more, HEAT)
    assert request_numbers("two dice, 6:30 PM, at -74.0060") == ["6", "30", "-74.0060", "two"]


def test_an_answer_that_repeats_the_request_is_no_answer() -> None:
    from pilothouse.guided.relevance import echoes

    asked = "Calculate the cost in British Pounds to convert 200 US dollars."
    assert echoes("200 US dollars", asked)
    assert not echoes("About 158 British Pounds.", asked)
    assert not echoes("", asked)


def test_a_flag_the_request_names_is_true_unless_negated() -> None:
    from pilothouse.guided.arguments import flag_said

    asked = "How to obtain the detailed case information of the 'R vs Adams' legal case?"
    out, changes = settle({"case_id": "R vs Adams", "details": False}, CASE, asked)
    assert out["details"] is True and "details" in changes[0]
    assert flag_said("details", "the case without details") is False
    assert flag_said("include_description", "proteins of the plasma membrane") is None
    assert flag_said("want_year", "Who invented it and in which year?") is True


def test_quoted_words_repeats_parameter_names_and_a_number_left_over() -> None:
    item = spec("stats", "Item stats.", game={"type": "string"}, item={"type": "string"})
    asked = "The power of the Weapon 'Guardian Sword+' in the game 'Legend of Zelda'?"
    out, _ = settle({"game": "Legend of Zelda", "item": "Weapon Guardian Sword"}, item, asked)
    assert out == {"game": "Legend of Zelda", "item": "Guardian Sword+"}
    asked = "Find the grocery store closest to Berkeley with a 4.5 star rating, selling tomatoes."
    written = {"my_location": "Berkeley", "products": ["tomatoes", "tomatoes", "my_location"]}
    out, _ = settle(written, GROCERY, asked)
    assert out == {"my_location": "Berkeley", "products": ["tomatoes"], "rating": 4.5}
    # no number left over: nothing is filled
    out, _ = settle({"my_location": "Berkeley", "products": ["x"]}, GROCERY, "Berkeley, 4 stars")
    assert "rating" not in out


def test_an_optional_string_repeating_another_value_is_left_out() -> None:
    asked = "Get 5 latest news on Bitcoin in US"
    written = {"topic": "Bitcoin", "quantity": 5, "region": "Bitcoin"}
    assert settle(written, NEWS, asked)[0] == {"topic": "Bitcoin", "quantity": 5}
    written["region"] = "US"
    assert settle(written, NEWS, asked) == (written, [])


def test_grounded_parameters_hold_values_to_the_request() -> None:
    from pilothouse.guided.arguments import grounded_parameters

    asked = "Get 5 latest news on Bitcoin in US"
    held = grounded_parameters(NEWS, asked)
    assert held is not None
    props = held["properties"]
    assert props["quantity"]["enum"] == [5]
    assert "Bitcoin" in props["topic"]["enum"] and "US" in props["region"]["enum"]
    assert all(not s.startswith("on ") for s in props["topic"]["enum"])
    floors = spec(
        "analyze", "Analyze floors.", floors={"type": "array", "items": {"type": "integer"}}
    )
    held = grounded_parameters(floors, "Building B1004, 2nd, 3rd and 4th floors")
    assert held is not None
    assert held["properties"]["floors"]["items"]["enum"] == [2, 3, 4]  # B1004 is an id
    # composed text and schemas already held stay as they are; nothing held: None
    assert grounded_parameters(CALCULATOR, "What is 37 * 48?") is None
    held = grounded_parameters(CONCERT, "A cheap jazz concert in Paris for 2 seats")
    assert held is not None
    props = held["properties"]
    assert props["price_range"] == CONCERT.parameters["properties"]["price_range"]
    assert props["vip"] == {"type": "boolean"} and props["seats"]["enum"] == [2]


def test_a_clause_holding_a_double_quote_is_not_offered() -> None:
    # BFCL parallel_198: a clause ending inside a quote made a grammar llama.cpp rejects
    from pilothouse.guided.arguments import grounded_parameters

    spec = ToolSpec(
        "lawsuit_search",
        "",
        {"type": "object", "properties": {"entity": {"type": "string"}}},
    )
    text = (
        'Retrieve all lawsuits involving the entity "Google" from the county of "Santa '
        'Clara" and then the same for the entity "Facebook" in the county of "San Mateo", '
        "both in the state of California?"
    )
    held = grounded_parameters(spec, text)
    assert held is not None
    choices = held["properties"]["entity"]["enum"]
    assert "Google" in choices and "San Mateo" in choices
    assert not any('"' in c for c in choices)


def test_a_comma_between_numbers_is_a_thousands_group_only_before_three_digits() -> None:
    from pilothouse.guided.relevance import request_numbers

    assert request_numbers("the factorial of 5,10 and 15") == ["5", "10", "15"]
    assert request_numbers("a budget of 1,000,000 and 4.5 stars") == ["1,000,000", "4.5"]
