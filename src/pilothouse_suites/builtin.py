"""The built-in suite: ten offline scenarios with known answers.

    pilothouse eval builtin --model local --epochs 20

Modelled on the article that ran ten scenarios twenty times per model: arithmetic,
the 3n+1 sequence, a coin-toss probability, a velocity problem, a time-zone
question (the system tz database through `zoneinfo`), an OpenAPI spec read through
a tool that takes no input, and four fact questions answered through a local
knowledge tool. Everything runs offline; the Python runner is a subprocess of this
interpreter in isolated mode with a timeout (a separate process, not a sandbox), so it
is declared ``irreversible`` and the scenarios using it carry an explicit policy rule
allowing it (`PYTHON_POLICY`).

Two reference models are registered as model strings when this module is imported
(``pilothouse eval builtin`` imports it through the ``pilothouse.suites`` entry
point): ``builtin:oracle`` solves every scenario the intended way (calls the tools,
answers from their results) and ``builtin:null`` always answers "I don't know.";
the harness's self-tests expect 100% and 0%.
"""

from __future__ import annotations

import ast
import difflib
import json
import math
import operator
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import Field

from pilothouse import Budget, ModelRequest, Policy, Rule, ToolCall, ToolError, tool
from pilothouse.evals.dataset import (
    contains,
    dataset_scenarios,
    numeric,
    regex,
    samples_from_records,
)
from pilothouse.evals.dataset import trajectory as trajectory_scorer
from pilothouse.evals.runner import Suite, register_reference_models
from pilothouse.evals.scenario import (
    EvalContext,
    Oracle,
    Scenario,
    expect_called,
    expect_contains,
    expect_number,
    expect_regex,
    scenario,
)
from pilothouse.models.scripted import Reply, ScriptedModel, call

PYTHON_TIMEOUT = 10.0

# Argument types carry what is known about valid values: a pattern or a length cap
# becomes part of a grammar-constrained model's decoding (see pilothouse.models.local),
# so a small model cannot put "150 km / 2.5 hours = 60" into an expression or run on.
Expression = Annotated[str, Field(pattern=r"^[0-9][0-9.+*/() -]{0,39}$")]
LocalTime = Annotated[str, Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}$")]
# A city ("New York") or an IANA zone ("America/New_York"): capitalised words.
Place = Annotated[str, Field(pattern=r"^[A-Z][A-Za-z_]+([ /][A-Z][A-Za-z_]+){0,2}$")]
Query = Annotated[str, Field(min_length=3, max_length=40)]

# --------------------------------------------------------------------------- tools

# The examples in the tools' docstrings are deliberately not the scenarios' answers: a
# construction that shows a tool's declared examples to the model (the local model's
# default does) would otherwise be handed the expression or zone names it is tested on.

_OPS: dict[type, Callable[..., Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def evaluate_arithmetic(node: ast.AST) -> float:
    """The value of a parsed arithmetic expression: numbers and + - * / // % ** only."""
    if isinstance(node, ast.Expression):
        return evaluate_arithmetic(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = evaluate_arithmetic(node.left), evaluate_arithmetic(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 100:
            raise ToolError("exponent too large")
        return float(_OPS[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return float(_OPS[type(node.op)](evaluate_arithmetic(node.operand)))
    raise ToolError("only numbers and + - * / // % ** and parentheses are allowed")


def _number_text(value: float) -> str:
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


@tool
def calculator(expression: Expression) -> str:
    """Evaluate an arithmetic expression and return the number.

    Args:
        expression: an arithmetic expression such as 12 * (3 + 4) or 90 / 1.5
    """
    try:
        tree = ast.parse(expression.replace("^", "**").replace("\u00d7", "*"), mode="eval")
    except SyntaxError:
        raise ToolError(f"{expression!r} is not an arithmetic expression") from None
    try:
        return _number_text(evaluate_arithmetic(tree))
    except ZeroDivisionError:
        raise ToolError("division by zero") from None


# Model-written code can do anything this user can (write or delete files, reach the
# network, start processes that outlive the timeout) and nothing undoes it, so the tool
# says so: irreversible. A default policy denies it; the scenarios that need it carry
# PYTHON_POLICY, which allows it explicitly. A call cut off by a crash is in doubt and
# not run again blindly (on_doubt "ask", the default).
@tool(effect="irreversible", blocking=True)
def run_python(code: str) -> str:
    """Run a Python program and return what it prints. Use print() to show the answer.

    Args:
        code: a complete Python program; it must print its result
    """
    with tempfile.TemporaryDirectory() as workdir:
        try:
            done = subprocess.run(
                [sys.executable, "-I", "-c", code],
                capture_output=True,
                text=True,
                timeout=PYTHON_TIMEOUT,
                cwd=workdir,
                env={"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"},
            )
        except subprocess.TimeoutExpired:
            raise ToolError(
                f"the program ran longer than {PYTHON_TIMEOUT:g} s and was stopped"
            ) from None
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-3:]
        raise ToolError("the program failed: " + " | ".join(tail))
    out = done.stdout.strip()
    if not out:
        raise ToolError("the program printed nothing; print() the result")
    return out[:2000]


@cache
def _zones_by_place() -> dict[str, str]:
    """Every zone of the system tz database by its lower-case key and by its city."""
    places: dict[str, str] = {}
    for key in sorted(available_timezones()):
        places.setdefault(key.lower(), key)
        city = key.rsplit("/", 1)[-1].replace("_", " ").lower()
        places.setdefault(city, key)
    return places


def find_zone(place: str) -> ZoneInfo:
    """The zone of an IANA name or of a city that names one ("New York", "tokyo").

    A tool that takes the words people use is easier to call right than one that
    wants "America/New_York" (a small model writes "Europe/Tokyo"); what it cannot
    resolve comes back as an error that names the closest zones.
    """
    places = _zones_by_place()
    wanted = " ".join(place.replace("_", " ").split()).lower()
    key = places.get(place.strip().lower()) or places.get(wanted.rsplit("/", 1)[-1])
    if key is None:
        close = difflib.get_close_matches(wanted.rsplit("/", 1)[-1], list(places), n=3)
        hint = f"; the closest are {', '.join(places[c] for c in close)}" if close else ""
        raise ToolError(f"unknown time zone or city {place!r}{hint}")
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError) as exc:  # listed but unreadable: a broken tzdata
        raise ToolError(f"time zone {key!r} cannot be read: {exc}") from None


@tool
def convert_time(time: LocalTime, from_place: Place, to_place: Place) -> str:
    """Convert a date and time from one place's time zone to another's (system tz database).

    Args:
        time: the local date and time, as YYYY-MM-DD HH:MM, e.g. 2024-01-10 12:00
        from_place: the city or IANA time zone of that time, e.g. London or Europe/London
        to_place: the city or IANA time zone to convert to, e.g. Paris or Europe/Paris
    """
    source, target = find_zone(from_place), find_zone(to_place)
    try:
        local = datetime.strptime(time.strip(), "%Y-%m-%d %H:%M").replace(tzinfo=source)
    except ValueError:
        raise ToolError(f"time {time!r} must look like 2024-03-15 09:00") from None
    converted = local.astimezone(target)
    return f"{converted:%Y-%m-%d %H:%M} in {target.key} (UTC{converted:%z})"


SHOP_API: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Harbor Shop API", "version": "2.4.0"},
    "servers": [{"url": "https://api.harbor-shop.example/v2"}],
    "paths": {
        "/orders": {
            "get": {"operationId": "listOrders", "summary": "List the customer's orders"},
            "post": {"operationId": "createOrder", "summary": "Place a new order"},
        },
        "/orders/{orderId}": {
            "get": {"operationId": "getOrder", "summary": "Get one order by id"},
            "patch": {"operationId": "updateOrder", "summary": "Change an order's address"},
        },
        "/orders/{orderId}/cancel": {
            "post": {"operationId": "cancelOrder", "summary": "Cancel an order"}
        },
        "/products": {"get": {"operationId": "listProducts", "summary": "List products"}},
    },
}


@tool
def get_api_spec() -> str:
    """Return the OpenAPI specification of the shop's HTTP API (JSON)."""
    return json.dumps(SHOP_API)


KNOWLEDGE = [
    "Canberra is the capital city of Australia; Sydney is its largest city.",
    "Apollo 11 landed on the Moon on 20 July 1969, with Neil Armstrong and Buzz Aldrin.",
    "The Kestrel Point lighthouse first shone in 1887; its first keeper was Maren Holt.",
    "Tungsten is a chemical element with the symbol W and atomic number 74.",
    "The Harbor Shop opens at 08:30 and closes at 18:00 on weekdays.",
    "Mount Kosciuszko is the highest mountain of mainland Australia.",
]
_STOP = {"the", "a", "an", "of", "is", "what", "who", "which", "in", "on", "did", "was", "its"}


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP}


@tool
def search_knowledge(query: Query) -> str:
    """Search the local knowledge base and return the most relevant passage.

    Args:
        query: a few keywords describing what to look up, e.g. Harbor Shop opens
    """
    asked = _words(query)
    documents = [_words(d) for d in KNOWLEDGE]
    rarity = {
        w: math.log((1 + len(KNOWLEDGE)) / (1 + sum(w in d for d in documents))) + 1 for w in asked
    }
    scored = [(sum(rarity[w] for w in asked & d), i) for i, d in enumerate(documents)]
    best, index = max(scored)
    if best <= 0:
        return "No passage matches that query."
    return KNOWLEDGE[index]


# --------------------------------------------------------------------------- scenarios

_EXAMPLE = """

Example:
user: {question}
assistant: {{"tool": "{tool}", "arguments": {arguments}}}
user: Result of {tool}: {result}
assistant: {{"answer": "{answer}"}}"""


def _instructions(
    task: str, question: str, tool_name: str, arguments: dict[str, Any], result: str, answer: str
) -> str:
    """Instructions with one worked example of the whole exchange (what small models need)."""
    return task + _EXAMPLE.format(
        question=question,
        tool=tool_name,
        arguments=json.dumps(arguments),
        result=result,
        answer=answer,
    )


ARITHMETIC_Q = "What is 37 * 48 + 125?"


@scenario(
    tools=[calculator],
    input=ARITHMETIC_Q,
    tags=("single_tool",),
    instructions=_instructions(
        "You answer arithmetic questions. Call calculator with the expression, then answer "
        "with its result.",
        "What is 12 * 11 - 7?",
        "calculator",
        {"expression": "12 * 11 - 7"},
        "125",
        "12 * 11 - 7 = 125",
    ),
    oracle=Oracle(
        [call("calculator", expression="37 * 48 + 125")], lambda r: f"37 * 48 + 125 = {r[-1]}"
    ),
)
async def arithmetic(ctx: EvalContext) -> None:
    """Simple arithmetic: 37 * 48 + 125 = 1901."""
    expect_number(await ctx.run(ARITHMETIC_Q), 1901)


# Why running model-written code is acceptable in this suite, and what limits it: the
# suite is offline content run by a developer on their own machine, its questions need
# a few lines of arithmetic, and `run_python` runs the program in a separate interpreter
# in isolated mode (-I: no user site-packages, no PYTHON* variables, no script folder
# on sys.path), in an empty temporary directory, with an environment of PATH only (no
# API keys), for at most PYTHON_TIMEOUT seconds, and returns at most 2,000 characters.
# It is not a sandbox: evaluate a model you do not trust in a container or VM.
PYTHON_POLICY = Policy(
    [
        Rule(
            "run_python",
            "allow",
            id="builtin-runs-model-code",
            description="The built-in suite runs model-written programs (see PYTHON_POLICY).",
        )
    ],
    name="builtin-python",
)
"""The policy of the scenarios that run code: the default plus an allow for `run_python`."""

PYTHON_TASK = (
    "You solve problems by writing a short Python program for run_python that prints "
    "the answer, then you answer with what it printed."
)

COLLATZ_Q = (
    "Start the 3n+1 sequence at 43: if n is even the next number is n/2, otherwise 3n+1. "
    "Counting 43 as the first number, what is the fourth number?"
)
COLLATZ_CODE = (
    "n = 43\nseq = [n]\nwhile len(seq) < 4:\n    n = n // 2 if n % 2 == 0 else 3 * n + 1\n"
    "    seq.append(n)\nprint(seq[3])"
)


@scenario(
    tools=[run_python],
    policy=PYTHON_POLICY,
    input=COLLATZ_Q,
    tags=("single_tool",),
    instructions=_instructions(
        PYTHON_TASK,
        "Start the 3n+1 sequence at 7: if n is even the next number is n/2, otherwise 3n+1. "
        "Counting 7 as the first number, what is the sixth number?",
        "run_python",
        {
            "code": "n = 7\nsequence = [n]\nwhile len(sequence) < 6:  # the sixth number\n"
            "    n = n // 2 if n % 2 == 0 else 3 * n + 1\n    sequence.append(n)\n"
            "print(sequence[-1])"
        },
        "52",
        "The sixth number is 52.",
    ),
    oracle=Oracle(
        [call("run_python", code=COLLATZ_CODE)], lambda r: f"The fourth number is {r[-1]}."
    ),
)
async def collatz(ctx: EvalContext) -> None:
    """The fourth number of the 3n+1 sequence from 43 (43, 130, 65, 196) is 196."""
    expect_number(await ctx.run(COLLATZ_Q), 196)


COINS_Q = (
    "A fair coin is tossed 10 times. What is the probability of getting strictly fewer "
    "than 3 heads? Answer with a decimal number."
)
COINS_CODE = "from math import comb\nprint(sum(comb(10, k) for k in range(3)) / 2 ** 10)"


@scenario(
    tools=[run_python],
    policy=PYTHON_POLICY,
    input=COINS_Q,
    tags=("single_tool",),
    instructions=_instructions(
        PYTHON_TASK,
        "A fair coin is tossed 6 times. What is the probability of getting strictly fewer "
        "than 2 heads?",
        "run_python",
        {
            "code": "from math import comb\ntosses, fewer_than = 6, 2\n"
            "ways = sum(comb(tosses, k) for k in range(fewer_than))\nprint(ways / 2 ** tosses)"
        },
        "0.109375",
        "The probability is 0.109375.",
    ),
    oracle=Oracle([call("run_python", code=COINS_CODE)], lambda r: f"The probability is {r[-1]}."),
)
async def coin_tosses(ctx: EvalContext) -> None:
    """P(fewer than 3 heads in 10 fair tosses) = 56/1024 = 0.0546875."""
    expect_number(await ctx.run(COINS_Q), 56 / 1024, rel_tol=1e-3)


VELOCITY_Q = "A train covers 150 km in 2.5 hours at constant speed. What is its speed in km/h?"


@scenario(
    tools=[calculator],
    input=VELOCITY_Q,
    tags=("single_tool",),
    instructions=_instructions(
        "You answer arithmetic questions. Call calculator with the expression, then answer "
        "with its result.",
        "A cyclist rides 36 km in 1.5 hours at constant speed. What is her speed in km/h?",
        "calculator",
        {"expression": "36 / 1.5"},
        "24",
        "Her speed is 24 km/h.",
    ),
    oracle=Oracle(
        [call("calculator", expression="150 / 2.5")], lambda r: f"Its speed is {r[-1]} km/h."
    ),
)
async def velocity(ctx: EvalContext) -> None:
    """Speed = distance / time = 150 km / 2.5 h = 60 km/h."""
    expect_number(await ctx.run(VELOCITY_Q), 60)


TIMEZONE_Q = "It is 09:00 on 2024-03-15 in New York. What time is it at that moment in Tokyo?"


@scenario(
    tools=[convert_time],
    input=TIMEZONE_Q,
    tags=("single_tool",),
    instructions=_instructions(
        "You answer time-zone questions. Call convert_time with the date and time and the "
        "two places, then answer with its result.",
        "It is 12:00 on 2024-01-10 in London. What time is it in Paris?",
        "convert_time",
        {"time": "2024-01-10 12:00", "from_place": "London", "to_place": "Paris"},
        "2024-01-10 13:00 in Europe/Paris (UTC+0100)",
        "It is 13:00 in Paris.",
    ),
    oracle=Oracle(
        [
            call(
                "convert_time",
                time="2024-03-15 09:00",
                from_place="America/New_York",
                to_place="Asia/Tokyo",
            )
        ],
        lambda r: f"It is {r[-1]}.",
    ),
)
async def timezone(ctx: EvalContext) -> None:
    """09:00 EDT (UTC-4, DST began 10 March 2024) is 22:00 JST the same day."""
    expect_regex(await ctx.run(TIMEZONE_Q), r"\b22[:.]00\b|\b10(:00)?\s*p\.?m\b")


OPENAPI_Q = "According to the shop's API specification, which HTTP method and path cancel an order?"


def _cancel_operation(results: list[str]) -> str:
    spec = json.loads(results[-1])
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            if op.get("operationId") == "cancelOrder":
                return f"{method.upper()} {path}"
    return "I could not find it."


@scenario(
    tools=[get_api_spec],
    input=OPENAPI_Q,
    tags=("single_tool",),
    instructions=_instructions(
        "You answer questions about the shop's HTTP API. Call get_api_spec (it takes no "
        "arguments) and answer from the specification it returns.",
        "Which HTTP method and path list the products?",
        "get_api_spec",
        {},
        '{"paths": {"/products": {"get": {"operationId": "listProducts"}}}}',
        "GET /products",
    ),
    oracle=Oracle([call("get_api_spec")], _cancel_operation),
)
async def openapi_spec(ctx: EvalContext) -> None:
    """Read an OpenAPI spec from a no-input tool: POST /orders/{orderId}/cancel."""
    result = await ctx.run(OPENAPI_Q)
    expect_contains(result, "post", "/orders/{orderId}/cancel")
    expect_called(ctx.steps(), "get_api_spec")


FACTS = samples_from_records(
    [
        {"id": "capital", "input": "What is the capital of Australia?", "target": "Canberra"},
        {
            "id": "moon_landing",
            "input": "In which year did Apollo 11 land on the Moon?",
            "target": 1969,
        },
        {
            "id": "lighthouse",
            "input": "Who was the first keeper of the Kestrel Point lighthouse?",
            "target": "Maren Holt",
        },
        {"id": "tungsten", "input": "What is the chemical symbol of tungsten?", "target": "W"},
    ],
    "builtin facts",
)
FACTS_INSTRUCTIONS = _instructions(
    "You answer questions from the knowledge base. Call search_knowledge with a few "
    "keywords, then answer from the passage it returns.",
    "When does the Harbor Shop open?",
    "search_knowledge",
    {"query": "Harbor Shop opens"},
    "The Harbor Shop opens at 08:30 and closes at 18:00 on weekdays.",
    "It opens at 08:30.",
)
_FACT_QUERIES = {
    "capital": "capital Australia",
    "moon_landing": "Apollo 11 Moon landing year",
    "lighthouse": "Kestrel Point lighthouse first keeper",
    "tungsten": "tungsten chemical symbol",
}


def _fact_scorers() -> dict[str, list[Any]]:
    return {
        "capital": [contains()],
        "moon_landing": [numeric()],
        # Made up: only the knowledge tool can know it.
        "lighthouse": [contains(), trajectory_scorer(["search_knowledge"])],
        "tungsten": [regex(r"\bW\b", flags=0)],
    }


def _fact_scenarios() -> list[Scenario]:
    scenarios: list[Scenario] = []
    for sample in FACTS:
        oracle = Oracle([call("search_knowledge", query=_FACT_QUERIES[sample.id])], lambda r: r[-1])
        scenarios += dataset_scenarios(
            "facts",
            [sample],
            _fact_scorers()[sample.id],
            tools=[search_knowledge],
            instructions=FACTS_INSTRUCTIONS,
            tags=("single_tool",),
            oracles={sample.id: oracle},
        )
    return scenarios


SCENARIOS: list[Scenario] = [
    arithmetic,
    collatz,
    coin_tosses,
    velocity,
    timezone,
    openapi_spec,
    *_fact_scenarios(),
]

suite = Suite(
    "builtin",
    SCENARIOS,
    budget=Budget(max_steps=4, max_seconds=120),
    description="Ten offline scenarios with known answers.",
)


# --------------------------------------------------------------------------- reference models


def oracle_reply(scenarios: list[Scenario]) -> Callable[[ModelRequest], Reply]:
    """A reply function that solves each scenario with its `Oracle` (found by its input)."""
    by_input = {s.input: s.oracle for s in scenarios if s.oracle is not None and s.input}

    def reply(request: ModelRequest) -> Reply:
        question = next((m.content for m in request.messages if m.role == "user"), "")
        oracle = by_input.get(question)
        if oracle is None:
            return "I have no oracle for this question."
        step = sum(1 for m in request.messages if m.role == "assistant")
        if step < len(oracle.calls):
            planned = oracle.calls[step]
            batch = planned if isinstance(planned, list) else [planned]
            return [
                ToolCall(f"oracle_{step}_{i}", c.name, dict(c.arguments))
                for i, c in enumerate(batch)
            ]
        results = [m.content for m in request.messages if m.role == "tool"]
        return oracle.answer(results)

    return reply


def oracle_model(scenarios: list[Scenario] | None = None) -> ScriptedModel:
    """A model that solves the built-in scenarios the intended way."""
    return ScriptedModel(oracle_reply(scenarios or SCENARIOS), name="builtin:oracle", record=False)


def null_model() -> ScriptedModel:
    """A model that never uses a tool and never knows the answer."""
    return ScriptedModel(lambda request: "I don't know.", name="builtin:null", record=False)


register_reference_models("builtin", oracle_model, null_model)


def _naive_factory(scenario: Scenario, model: Any, budget: Budget, store: Any) -> Any:
    from pilothouse_suites.baselines import naive_agent

    return naive_agent(scenario, model, budget, store)


naive_suite = Suite(
    "builtin",
    SCENARIOS,
    agent_factory=_naive_factory,
    budget=suite.budget,
    description="The built-in scenarios under the naive JSON-action baseline construction.",
)
"""The same scenarios built the naive way (`pilothouse_suites.baselines`), to compare."""


def _naive_examples_factory(scenario: Scenario, model: Any, budget: Budget, store: Any) -> Any:
    from pilothouse_suites.baselines import naive_agent

    return naive_agent(scenario, model, budget, store, examples=True)


naive_examples_suite = Suite(
    "builtin",
    SCENARIOS,
    agent_factory=_naive_examples_factory,
    budget=suite.budget,
    description="The naive baseline given the default's worked examples (an ablation).",
)
"""The naive construction with the worked examples kept: what the examples alone give."""


def _bare_factory(scenario: Scenario, model: Any, budget: Budget, store: Any) -> Any:
    from dataclasses import replace

    from pilothouse.evals.runner import default_agent_factory
    from pilothouse_suites.baselines import task_only

    task = task_only(scenario.instructions)
    return default_agent_factory(replace(scenario, instructions=task), model, budget, store)


bare_suite = Suite(
    "builtin",
    SCENARIOS,
    agent_factory=_bare_factory,
    budget=suite.budget,
    description="The default construction without the worked examples (an ablation).",
)
"""The default decoding given only the task description, as the naive baseline is."""
