"""A small suite for the CLI tests, loaded as `eval_suite:suite` (PYTHONPATH=tests).

It registers the model strings ``evaltest:good`` (answers 4) and ``evaltest:bad``
(answers 5), real ScriptedModels resolved through the model registry.
"""

from __future__ import annotations

from pilothouse.evals import EvalContext, Suite, expect_number, scenario
from pilothouse.models import ScriptedModel, register_model


@scenario(input="What is 2 + 2?")
async def two_plus_two(ctx: EvalContext) -> None:
    """Answers 4."""
    expect_number(await ctx.run("What is 2 + 2?"), 4)


@scenario(input="Say a number.")
async def any_number(ctx: EvalContext) -> None:
    """Any answer with a number passes."""
    result = await ctx.run("Say a number.")
    assert any(ch.isdigit() for ch in str(result.output)), "no number in the answer"


suite = Suite("cli-test", [two_plus_two, any_number])


def _model(rest: str) -> ScriptedModel:
    answer = {"good": "It is 4.", "bad": "It is 5."}[rest]
    return ScriptedModel(lambda request: answer, name=f"evaltest:{rest}")


register_model("evaltest", _model)
