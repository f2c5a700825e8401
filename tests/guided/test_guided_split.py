"""A request that asks for several calls, split into its sub-requests (`guided.split`).

The requests are BFCL tune-pool cases (non-live, outside split.json's holdout ids),
with their tools as BFCL gives them; the controls are single-call tune-pool cases that
must stay whole.
"""

from __future__ import annotations

import json

from pilothouse.guided import GuidedModel
from pilothouse.guided.split import clauses, joined_calls, parts_of, sub_request, sub_requests
from pilothouse.messages import Message, ToolCall
from pilothouse.models.base import ModelRequest, Stage, ToolSpec
from pilothouse.models.scripted import ScriptedModel


def _spec(name: str, description: str, **properties: str) -> ToolSpec:
    return ToolSpec(
        name,
        description,
        {
            "type": "object",
            "properties": {
                k: {"type": v, "description": f"The {k}."} for k, v in properties.items()
            },
            "required": list(properties),
        },
    )


RECTANGLE = _spec(
    "area_rectangle.calculate",
    "Calculate the area of a rectangle given the length and breadth.",
    length="number",
    breadth="number",
)
CIRCLE = _spec(
    "area_circle.calculate", "Calculate the area of a circle given the radius.", radius="number"
)
CYLINDER = _spec(
    "volume_cylinder.calculate",
    "Calculate the volume of a cylinder given the radius and the height.",
    radius="number",
    height="number",
)
SALES_TAX = _spec(
    "calculate_sales_tax",
    "Calculate the sales tax for a given purchase amount in a specific city and state.",
    purchase_amount="number",
    city="string",
    state="string",
)
INVEST = _spec(
    "investment.invest",
    "Invest a specific amount in a company's stock.",
    company="string",
    amount="number",
)
WITHDRAW = _spec(
    "investment.withdraw",
    "Withdraw a specific amount from a company's stock.",
    company="string",
    amount="number",
)
REGRESSION = ToolSpec(
    "run_linear_regression",
    "Build a linear regression model using given predictor variables and a target variable.",
    {
        "type": "object",
        "properties": {
            "predictors": {"type": "array", "items": {"type": "string"}},
            "target": {"type": "string"},
            "standardize": {"type": "boolean"},
        },
        "required": ["predictors", "target"],
    },
)
DISCOVERY = ToolSpec(
    "science_history.get_discovery_details",
    "Retrieve the details of a scientific discovery based on the discovery name.",
    {
        "type": "object",
        "properties": {
            "discovery": {
                "type": "string",
                "description": "The name of the discovery, e.g. Gravity",
            },
            "method_used": {"type": "string", "description": "The method used for the discovery."},
        },
        "required": ["discovery"],
    },
)
DISPLACEMENT = _spec(
    "kinematics.calculate_displacement",
    "Calculate displacement based on initial speed, acceleration, and time interval.",
    initial_speed="integer",
    acceleration="integer",
    time="integer",
)
PRESENT_VALUE = _spec(
    "calculate_present_value",
    "Calculate the present value of an investment.",
    payment="number",
    rate="number",
    years="integer",
)


def test_sentences_opened_by_also_are_sub_requests() -> None:
    # parallel_multiple_1: two shapes, two tools
    text = (
        "Find the area of a rectangle with length 7 and breadth 3. "
        "Also, calculate the area of a circle with radius 5."
    )
    assert sub_requests(text, [CYLINDER, RECTANGLE, CIRCLE]) == [
        "Find the area of a rectangle with length 7 and breadth 3.",
        "calculate the area of a circle with radius 5.",
    ]


def test_and_before_a_word_of_a_tools_name_starts_a_clause() -> None:
    # parallel_multiple_24
    text = "Invest $2000 in Google and withdraw $1000 from Apple."
    assert sub_requests(text, [WITHDRAW, INVEST]) == [
        "Invest $2000 in Google",
        "withdraw $1000 from Apple.",
    ]


def test_groups_of_values_take_the_words_before_the_first_group() -> None:
    # parallel_6: three purchases, one tool
    text = (
        "Calculate the amount of sales tax to be added on a purchase amount of $30.45 in "
        "Chicago, Illinois, $52.33 in Sacramento, California and $11.23 in Portland, Oregon."
    )
    head = "Calculate the amount of sales tax to be added on a purchase amount of"
    assert sub_requests(text, [SALES_TAX]) == [
        f"{head} $30.45 in Chicago, Illinois",
        f"{head} $52.33 in Sacramento, California",
        f"{head} $11.23 in Portland, Oregon.",
    ]


def test_single_call_requests_stay_whole() -> None:
    # simple_python_108: "and" inside a list of quoted names, "Also" with nothing of its own
    regression = (
        "Run a linear regression model with predictor variables 'Age', 'Income' and "
        "'Education' and a target variable 'Purchase_Amount'. Also apply standardization."
    )
    assert sub_requests(regression, [REGRESSION]) == []
    # simple_python_246: the second question names no value of its own
    assert sub_requests("Who discovered Gravity and what was the method used?", [DISCOVERY]) == []
    # multiple_4: "and then" before a word that is no request's verb
    motion = (
        "Can you calculate the displacement of a car moving at an initial speed of 20 m/s "
        "and then accelerates at 10 m/s^2 for 5 seconds? (assuming a straight line motion)"
    )
    assert sub_requests(motion, [DISPLACEMENT]) == []
    # an enumeration of values is `parallel.expanded`'s, not a split
    value = (
        "Calculate the Present Value of an investment paying $1000 per year, with an "
        "interest rate of 5%, for 10, 20 and 30 years."
    )
    assert sub_requests(value, [PRESENT_VALUE]) == []
    # brackets hold one value
    assert clauses("Compare group A [3, 4, 5] and group B [7, 8, 9].", [REGRESSION]) == [
        "Compare group A [3, 4, 5] and group B [7, 8, 9]."
    ]


def test_a_clause_that_fits_no_tool_stays_with_the_one_before() -> None:
    text = (
        "Find the area of a rectangle with length 7 and breadth 3. "
        "Also, sing me a song about Paris."
    )
    assert sub_requests(text, [RECTANGLE, CIRCLE]) == []


def test_only_a_first_decision_after_the_users_message_is_split() -> None:
    text = "Invest $2000 in Google and withdraw $1000 from Apple."
    request = ModelRequest([Message.user(text)], [WITHDRAW, INVEST])
    assert len(parts_of(request)) == 2
    call = ToolCall("c1", "investment.invest", {"company": "Google", "amount": 2000})
    after = ModelRequest([Message.user(text), Message.assistant("", (call,))], [WITHDRAW, INVEST])
    assert parts_of(after) == []
    assert (
        parts_of(ModelRequest([Message.user(text)], [WITHDRAW, INVEST], {"type": "string"})) == []
    )
    sub = sub_request(request, "withdraw $1000 from Apple.")
    assert (
        sub.messages[-1].content == "withdraw $1000 from Apple." and sub.tool_choice == "required"
    )
    # only the tools that fit the sub-request are offered to it
    assert [t.name for t in sub.tools] == ["investment.withdraw"]


def test_identical_calls_are_joined_once() -> None:
    a = ToolCall("c1", "f", {"x": 1})
    b = ToolCall("c2", "f", {"x": 1})
    c = ToolCall("c3", "f", {"x": 2})
    assert joined_calls([a, b, c]) == (a, c)


class _Log:
    def __init__(self) -> None:
        self.stages: list[Stage] = []

    def requested(self, stage: Stage) -> None:
        self.stages.append(stage)

    def responded(
        self, stage: Stage, response: object, duration: float, error: str | None = None
    ) -> None:
        del stage, response, duration, error


async def test_each_sub_request_is_its_own_journaled_stage_and_the_calls_are_joined() -> None:
    inner = ScriptedModel(
        [
            json.dumps(
                {"tool": "investment.invest", "arguments": {"company": "Google", "amount": 2000}}
            ),
            json.dumps(
                {"tool": "investment.withdraw", "arguments": {"company": "Apple", "amount": 1000}}
            ),
        ]
    )
    text = "Invest $2000 in Google and withdraw $1000 from Apple."
    log = _Log()
    model = GuidedModel(inner)
    response = await model.staged(ModelRequest([Message.user(text)], [WITHDRAW, INVEST]), log)
    assert [(c.name, c.arguments) for c in response.tool_calls] == [
        ("investment.invest", {"company": "Google", "amount": 2000}),
        ("investment.withdraw", {"company": "Apple", "amount": 1000}),
    ]
    assert response.usage.requests == 2
    # each stage showed its sub-request alone, and says which it serves
    shown = [s.request.messages[-1].content for s in log.stages]
    assert shown == ["Invest $2000 in Google", "withdraw $1000 from Apple."]
    assert all("(guided.split)" in s.note for s in log.stages)
    assert [(s.name, s.tools) for s in log.stages] == [
        ("arguments", ["investment.invest"]),
        ("arguments", ["investment.withdraw"]),
    ]
    first = model.first_stage(ModelRequest([Message.user(text)], [WITHDRAW, INVEST]))
    assert first.digest() == log.stages[0].digest()


async def test_without_the_split_the_request_is_one_call() -> None:
    invest = {"tool": "investment.invest", "arguments": {"company": "Google", "amount": 2000}}
    inner = ScriptedModel([json.dumps({"tool": "investment.invest"}), json.dumps(invest)])
    text = "Invest $2000 in Google and withdraw $1000 from Apple."
    model = GuidedModel(inner, split_requests=False)
    response = await model.staged(ModelRequest([Message.user(text)], [WITHDRAW, INVEST]))
    assert len(response.tool_calls) == 1


HOUSE_PRICE = _spec(
    "ml.predict_house_price",
    "Predict house price using Machine Learning model given the house size and location",
    location="string",
    size="integer",
)
LAWSUITS = _spec(
    "lawsuit_search",
    "Retrieve all lawsuits involving a particular entity from specified jurisdiction.",
    entity="string",
    county="string",
    state="string",
)


def test_an_abbreviation_does_not_end_a_group() -> None:
    # parallel_11: "sq ft." is no sentence end
    text = (
        "Predict house price for a house of size 3000 sq ft. in location New York and "
        "4000 sq ft. in Los Angeles using Machine Learning Model."
    )
    assert sub_requests(text, [HOUSE_PRICE]) == [
        "Predict house price for a house of size 3000 sq ft. in location New York",
        "Predict house price for a house of size 4000 sq ft. in Los Angeles using Machine "
        "Learning Model.",
    ]


def test_do_the_same_for_is_a_group_of_other_values() -> None:
    # parallel_198
    text = (
        "Can you use the lawsuit_search function to retrieve all lawsuits involving the "
        'entity "Google" from the county of "Santa Clara" and then do the same for the '
        'entity "Facebook" in the county of "San Mateo", both in the state of California?'
    )
    parts = sub_requests(text, [LAWSUITS])
    assert len(parts) == 2
    assert '"Google"' in parts[0] and '"Facebook"' not in parts[0]
    assert (
        parts[1].startswith("Can you use the lawsuit_search function") and '"Facebook"' in parts[1]
    )


def test_sentences_opened_by_second_and_lastly_are_sub_requests() -> None:
    text = (
        "Can you help me with two things? First, find the area of a rectangle with length 7 "
        "and breadth 3. Second, calculate the area of a circle with radius 5. Lastly, "
        "calculate the volume of a cylinder with radius 2 and height 9."
    )
    assert len(sub_requests(text, [RECTANGLE, CIRCLE, CYLINDER])) == 3
