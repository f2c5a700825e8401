"""Sixth-round argument rules (`guided.arguments.settle`, `guided.forms.percent_fraction`),
each on requests and tools taken from BFCL's tune pool (docs/bfcl.md, sixth round), with
the cases each rule must leave alone."""

from __future__ import annotations

from tool_specs import spec

from pilothouse.guided.arguments import repeated_values, said_choices, settle, stray_value
from pilothouse.guided.forms import percent_fraction, quoted_choices

FLOAT = " This is a float type value."


# ---------------------------------------------------------------- a percentage as a fraction


def test_a_percentage_is_a_fraction_in_a_float_parameter() -> None:
    # simple_python_152
    fund = spec(
        "calculate_mutual_fund_balance",
        investment_amount={"type": "integer"},
        annual_yield={"type": "number", "description": "The annual yield rate." + FLOAT},
        years={"type": "integer"},
    )
    text = (
        "Calculate the balance of a mutual fund given a total investment of $50000 "
        "with a 5% annual yield after 3 years."
    )
    out, changes = settle({"investment_amount": 50000, "annual_yield": 5, "years": 3}, fund, text)
    assert out == {"investment_amount": 50000, "annual_yield": 0.05, "years": 3}
    assert changes == ["annual_yield: 0.05, the request's percentage as a fraction"]


def test_a_percentage_held_as_its_fraction_fills_no_other_number() -> None:
    # simple_python_154 (tune pool; seventh round): the 5 of "5%" is the rate's 0.05,
    # not the optional compounds_per_year
    future = spec(
        "calculate_future_value",
        present_value={"type": "integer"},
        annual_interest_rate={
            "type": "number",
            "description": "The annual interest rate in decimal form. Example, 5% is 0.05.",
        },
        years={"type": "integer"},
        compounds_per_year={
            "type": "integer",
            "description": "The number of times the interest is compounded per year.",
            "required": False,
        },
    )
    text = (
        "Calculate the Future Value of a $5000 investment made today for a term of 10 "
        "years at an annual interest rate of 5% compounded per year"
    )
    given = {"present_value": 5000, "annual_interest_rate": 0.05, "years": 10}
    out, changes = settle(dict(given), future, text)
    assert out == given and changes == []


def test_a_description_asking_for_a_decimal_takes_the_fraction() -> None:
    # simple_python_131: "Enter as a decimal. E.g, 5% is 0.05"
    prop = {
        "type": "number",
        "description": "The annual interest rate. Enter as a decimal. E.g, 5% is 0.05" + FLOAT,
    }
    assert percent_fraction(prop, 5, "with an annual interest rate of 5% for 10 years") == 0.05


def test_a_percentage_stays_a_number_where_it_should() -> None:
    text = "the interest rate for a year of 5% over 10 years"
    percentage = {
        "type": "number",
        "description": "The interest rate for a year as a percentage." + FLOAT,
    }
    assert percent_fraction(percentage, 5, text) is None  # simple_python_136: 5 is right
    integer = {"type": "integer", "description": "Screen brightness level."}
    assert percent_fraction(integer, 70, "set the brightness to 70%") is None
    rate = {"type": "number", "description": "The yearly interest rate." + FLOAT}
    assert percent_fraction(rate, 5, "at 5% for 5 years") is None  # which 5 is which?
    assert (
        percent_fraction(rate, 3, "at 5% for 3 years") is None
    )  # 3 is not written as a percentage
    assert percent_fraction(rate, True, "at 1%") is None
    assert percent_fraction(rate, 2.5, "at 2.5 percent a year") == 0.025


# ---------------------------------------------------------------- stray optional strings


def test_an_optional_string_that_is_part_of_another_value_is_left_out() -> None:
    # simple_python_309
    record = spec(
        "nfl_data.player_record",
        player_name={"type": "string"},
        season_year={"type": "integer"},
        team={"type": "string", "required": False},
    )
    text = "Find me the record of Tom Brady in the 2020 NFL season."
    out, changes = settle(
        {"player_name": "Tom Brady", "season_year": 2020, "team": "Brady"}, record, text
    )
    assert out == {"player_name": "Tom Brady", "season_year": 2020}
    assert changes == ["team left out: 'Brady' is only part of player_name's value"]


def test_an_optional_string_of_the_tools_name_or_another_parameters_name_is_left_out() -> None:
    water = spec(  # simple_python_198
        "calculate_daily_water_intake",
        weight={"type": "integer"},
        activity_level={"type": "string", "required": False},
        climate={"type": "string", "required": False},
    )
    text = "Calculate the required water daily intake for a person with weight 70 kg."
    out, _ = settle({"weight": 70, "activity_level": "water"}, water, text)
    assert out == {"weight": 70}
    games = spec(  # multiple_86
        "BoardGameGeek.recommend",
        numPlayers={"type": "integer"},
        category={"type": "string"},
        difficulty={"type": "string", "required": False},
    )
    assert (
        stray_value("difficulty", "BoardGameGeek", {"numPlayers": 2, "category": "strategy"}, games)
        == "only words of the tool's name"
    )
    lawsuits = spec(  # simple_python_180
        "lawsuits_search",
        company_name={"type": "string"},
        location={"type": "string"},
        year={"type": "integer"},
        case_type={"type": "string", "required": False},
    )
    arguments = {
        "company_name": "Google",
        "location": "California",
        "year": 2020,
        "case_type": "company",
    }
    assert (
        stray_value("case_type", "company", arguments, lawsuits) == "only the name of company_name"
    )


def test_values_that_are_not_strays_are_kept() -> None:
    tool = spec(
        "calculate_derivative",
        function={"type": "string"},
        value={"type": "integer"},
        variable={"type": "string", "required": False},
        team={"type": "string", "required": False},
    )
    arguments = {"function": "3x**2 + 2x - 1", "value": 5}
    assert stray_value("variable", "x", arguments, tool) == ""  # one letter: no content word
    assert stray_value("team", "Tampa Bay Buccaneers", arguments, tool) == ""
    assert stray_value("team", "team 7", arguments, tool) == ""  # holds a digit
    required = spec("nfl", player_name={"type": "string"}, team={"type": "string"})
    out, _ = settle({"player_name": "Tom Brady", "team": "Brady"}, required, "Tom Brady")
    assert out["team"] == "Brady"  # a required argument is never dropped


# ---------------------------------------------------------------- a span running into another value


def test_a_string_loses_the_required_value_it_runs_into() -> None:
    air = spec("air_quality", location={"type": "string"}, date={"type": "string"})  # multiple_144
    text = "What is the air quality index in London 2022/08/16?"
    out, changes = settle({"location": "London 2022/08/16", "date": "2022/08/16"}, air, text)
    assert out == {"location": "London", "date": "2022/08/16"}
    assert changes == ["location: 'London', without date's value"]
    translate = spec(  # multiple_67
        "translate",
        text={"type": "string"},
        source_language={"type": "string"},
        target_language={"type": "string"},
    )
    request = "Translate Hello, how are you? from English to French."
    written = {
        "text": "Hello, how are you? from English",
        "source_language": "English",
        "target_language": "French",
    }
    out, _ = settle(written, translate, request)
    assert out["text"] == "Hello, how are you?"


def test_a_value_that_only_ends_like_another_is_kept() -> None:
    census = spec("database.get_population", area={"type": "string"}, type={"type": "string"})
    text = "Fetch the population of New York City, NY from US Census Database"
    out, _ = settle({"area": "New York City", "type": "city"}, census, text)  # parallel_8
    assert out["area"] == "New York City"  # no function word joins them, no digit
    integral = spec(
        "calculate_integral", func={"type": "string"}, a={"type": "integer"}, b={"type": "integer"}
    )
    out, _ = settle({"func": "3x^2", "a": 1, "b": 2}, integral, "f(x) = 3x^2 from 1 to 2")
    assert out["func"] == "3x^2"  # multiple_33: "2" is not a word of its own there
    clock = spec("get_current_time", location={"type": "string"}, timezone={"type": "string"})
    out, _ = settle({"location": "Tokyo", "timezone": "Asia/Tokyo"}, clock, "Tokyo in 'Asia/Tokyo'")
    assert out["timezone"] == "Asia/Tokyo"


# ---------------------------------------------------------------- a number written into a string


def test_a_free_string_holding_a_numeric_arguments_number_is_asked_again() -> None:
    sculpture = spec(  # multiple_20: material comes before size in the schema
        "sculpture_price.calculate",
        material={"type": "string"},
        size={"type": "integer"},
        complexity={"type": "string", "required": False},
    )
    assert repeated_values({"material": "3", "size": 3}, sculpture) == ["material"]
    assert repeated_values({"material": "marble", "size": 3}, sculpture) == []
    codes = spec("lookup", case_number={"type": "string"}, year={"type": "integer"})
    assert repeated_values({"case_number": "12345", "year": 2020}, codes) == []


# ---------------------------------------------------------------- a choice said in another form


def test_a_choice_the_request_says_by_its_stem() -> None:
    crimes = spec(  # simple_python_161: an enum member said as "in detail"
        "crime_statute_lookup",
        jurisdiction={"type": "string"},
        crime={"type": "string"},
        detail_level={"type": "string", "enum": ["basic", "detailed"], "required": False},
    )
    text = "Find out the possible punishments for the crime of theft in California in detail."
    out, _ = settle({"jurisdiction": "California", "crime": "theft"}, crimes, text)
    assert out["detail_level"] == "detailed"
    stocks = spec(  # simple_python_212: a free string whose description lists its values
        "get_stock_info",
        company_name={"type": "string"},
        detail_level={
            "type": "string",
            "description": "Level of detail for stock information. Can be 'summary' or 'detailed'.",
        },
    )
    written = {"company_name": "Apple Inc", "detail_level": "detail information"}
    out, _ = settle(written, stocks, "Give me detail information about stocks of Apple Inc.")
    assert out["detail_level"] == "detailed"
    assert said_choices("in detail", ["basic", "detailed"]) == ["detailed"]
    assert said_choices("a summary in detail", ["summary", "detailed"]) == ["summary"]


def test_quoted_examples_are_not_choices() -> None:
    assert quoted_choices("Can be 'summary' or 'detailed'.") == ["summary", "detailed"]
    assert quoted_choices("The root of the scale, e.g., 'C', 'F#', 'Ab'.") == []
    assert quoted_choices("Supports 'teaspoon', 'tablespoon', 'cup', etc.") == []
    assert quoted_choices("Default is 'NASDAQ'") == []
    key = spec(  # simple_python_298: a value already among the choices is kept
        "music_theory.key_signature",
        key={"type": "string", "description": "The root of the scale: 'C' or 'C#'"},
    )
    out, _ = settle({"key": "C#"}, key, "What key signature does C# major have?")
    assert out["key"] == "C#"
