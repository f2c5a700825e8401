"""Held-out variants of the built-in scenarios: same tools and instructions, new questions.

    pilothouse eval pilothouse_suites.heldout:suite --model local --epochs 3

The default construction for small models was tuned while watching the built-in
suite (`pilothouse_suites.builtin`): its worked examples, its tools and the model
layer's checks were changed until those ten questions passed. A score on the
questions one tuned against says little about questions one did not see, so each
scenario here asks a different question of the same kind (other numbers, places,
facts and API operations), with the same tools and the same instructions, worked
examples included. Nothing in the package was changed to make these pass; the
figures in docs/evaluation.md are what they scored the first time they ran.

``naive_suite`` runs them under the naive baseline construction, like
`pilothouse_suites.builtin.naive_suite`. ``heldout:oracle`` and ``heldout:null`` are
the harness's self-test models for this suite.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pilothouse import ScriptedModel, call
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
from pilothouse.tools.tool import Tool, ToolFunction, as_tool
from pilothouse_suites import builtin

Check = Callable[[Any], object]
"""Raises AssertionError when the run's result (a `RunResult`) is unacceptable."""


def _variant(
    name: str,
    like: Scenario,
    question: str,
    check: Check,
    oracle: Oracle,
    tools: list[Tool | ToolFunction] | None = None,
) -> Scenario:
    """A scenario asking `question` with the tools and instructions of `like`."""

    async def run(ctx: EvalContext) -> None:
        result = await ctx.run(question)
        check(result)
        if tools:
            for t in tools:
                expect_called(ctx.steps(), as_tool(t).name)

    run.__doc__ = f"Held-out variant of {like.name}: {question}"
    return scenario(
        name=name,
        tools=like.tools,
        instructions=like.instructions,
        input=question,
        tags=like.tags,
        oracle=oracle,
        policy=like.policy,
    )(run)


def _passage(results: list[str]) -> str:
    return results[-1]


ARITHMETIC_Q = "What is 56 * 23 - 180?"
COLLATZ_Q = (
    "Start the 3n+1 sequence at 27: if n is even the next number is n/2, otherwise 3n+1. "
    "Counting 27 as the first number, what is the fifth number?"
)
COLLATZ_CODE = (
    "n = 27\nseq = [n]\nwhile len(seq) < 5:\n    n = n // 2 if n % 2 == 0 else 3 * n + 1\n"
    "    seq.append(n)\nprint(seq[-1])"
)
COINS_Q = (
    "A fair coin is tossed 8 times. What is the probability of getting strictly fewer "
    "than 2 heads? Answer with a decimal number."
)
COINS_CODE = "from math import comb\nprint(sum(comb(8, k) for k in range(2)) / 2 ** 8)"
VELOCITY_Q = "A car travels 225 km in 2.5 hours at constant speed. What is its speed in km/h?"
TIMEZONE_Q = "It is 14:00 on 2024-07-01 in London. What time is it at that moment in New York?"
OPENAPI_Q = (
    "According to the shop's API specification, which HTTP method and path change an "
    "order's address?"
)


def _operation(operation_id: str) -> Callable[[list[str]], str]:
    def answer(results: list[str]) -> str:
        spec = json.loads(results[-1])
        for path, operations in spec["paths"].items():
            for method, op in operations.items():
                if op.get("operationId") == operation_id:
                    return f"{method.upper()} {path}"
        return "I could not find it."

    return answer


def _fact(name: str, question: str, query: str, check: Check, *, made_up: bool = False) -> Scenario:
    """A knowledge-tool question; only a made-up fact requires the tool to be called."""
    like = next(s for s in builtin.SCENARIOS if s.name == "facts/lighthouse")
    return _variant(
        f"facts/{name}",
        like,
        question,
        check,
        Oracle([call("search_knowledge", query=query)], _passage),
        [builtin.search_knowledge] if made_up else None,
    )


SCENARIOS: list[Scenario] = [
    _variant(
        "arithmetic",
        builtin.arithmetic,
        ARITHMETIC_Q,
        lambda out: expect_number(out, 1108),
        Oracle([call("calculator", expression="56 * 23 - 180")], lambda r: f"It is {r[-1]}."),
    ),
    _variant(
        "collatz",
        builtin.collatz,
        COLLATZ_Q,
        lambda out: expect_number(out, 62),  # 27, 82, 41, 124, 62
        Oracle([call("run_python", code=COLLATZ_CODE)], lambda r: f"It is {r[-1]}."),
    ),
    _variant(
        "coin_tosses",
        builtin.coin_tosses,
        COINS_Q,
        lambda out: expect_number(out, 9 / 256, rel_tol=1e-3),  # (1 + 8) / 256
        Oracle([call("run_python", code=COINS_CODE)], lambda r: f"It is {r[-1]}."),
    ),
    _variant(
        "velocity",
        builtin.velocity,
        VELOCITY_Q,
        lambda out: expect_number(out, 90),
        Oracle([call("calculator", expression="225 / 2.5")], lambda r: f"{r[-1]} km/h."),
    ),
    _variant(
        "timezone",
        builtin.timezone,
        TIMEZONE_Q,
        # 14:00 BST (UTC+1) is 09:00 EDT (UTC-4).
        lambda out: expect_regex(out, r"\b0?9[:.]00\b|\b9(:00)?\s*a\.?m\b"),
        Oracle(
            [
                call(
                    "convert_time",
                    time="2024-07-01 14:00",
                    from_place="London",
                    to_place="New York",
                )
            ],
            lambda r: f"It is {r[-1]}.",
        ),
    ),
    _variant(
        "openapi_spec",
        builtin.openapi_spec,
        OPENAPI_Q,
        lambda out: expect_contains(out, "patch", "/orders/{orderId}"),
        Oracle([call("get_api_spec")], _operation("updateOrder")),
        [builtin.get_api_spec],
    ),
    _fact(
        "atomic_number",
        "What is the atomic number of tungsten?",
        "tungsten atomic number",
        lambda out: expect_number(out, 74),
    ),
    _fact(
        "mountain",
        "What is the highest mountain of mainland Australia?",
        "highest mountain Australia",
        lambda out: expect_contains(out, "Kosciuszko"),
    ),
    _fact(
        "lighthouse_year",
        "In which year did the Kestrel Point lighthouse first shine?",
        "Kestrel Point lighthouse first shone",
        lambda out: expect_number(out, 1887),
        made_up=True,
    ),
    _fact(
        "moon_crew",
        "Who landed on the Moon with Neil Armstrong on Apollo 11?",
        "Apollo 11 Neil Armstrong",
        lambda out: expect_contains(out, "Aldrin"),
    ),
]

suite = Suite(
    "builtin-heldout",
    SCENARIOS,
    budget=builtin.suite.budget,
    description="The built-in scenarios' kinds of task with questions nobody tuned against.",
)

naive_suite = Suite(
    "builtin-heldout",
    SCENARIOS,
    agent_factory=builtin.naive_suite.agent_factory,
    budget=builtin.suite.budget,
    description="The held-out scenarios under the naive JSON-action baseline construction.",
)


def oracle_model() -> ScriptedModel:
    """Solves the held-out scenarios the intended way (checks their expected answers)."""
    return ScriptedModel(builtin.oracle_reply(SCENARIOS), name="heldout:oracle", record=False)


register_reference_models("heldout", oracle_model, builtin.null_model)
