"""BFCL categories as `pilothouse.evals` suites: one model turn per case.

Each case becomes a scenario: the case's functions become tools (`bfcl_tools`), the
agent (the suite's construction on the model under test) runs once on the case's
request, and the calls it made (read back from the run's journal) are scored by
BFCL's AST checker (`checker.check`); an irrelevance case passes when no call was made.

One turn: BFCL scores the first response only, so a suite's budget is
``max_steps=1``. A tool is never executed for real: its function records nothing and
returns `NOT_EXECUTED` (the call itself is already in the journal as a ``tool_call``
event), and the run then stops on its step budget. A run that ends that way is the
expected end of a one-turn case, not a budget failure, so the scenario runs the agent
itself and keeps such a run out of the context's results (its journal is still the
sample's: its run id is recorded). Any other stop (out of time or tokens, a policy)
goes to the results, so the runner classifies the sample as usual (``budget_stop``,
...), and so does a run that raises (a model error, output that could not be parsed).

The cases are the fixed sample in split.json (tune and holdout; see `data.sample_ids`)
unless ``part`` (or ``$PILOTHOUSE_BFCL_CASES``: sample, tune, holdout, all) says
otherwise. The scenario's tag is its part.
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any

from pilothouse.agent import new_run_id
from pilothouse.evals.runner import Suite, default_agent_factory
from pilothouse.evals.scenario import EvalContext, Scenario
from pilothouse.runtime.budget import Budget
from pilothouse.tools.tool import Tool
from pilothouse_suites.baselines import naive_agent
from pilothouse_suites.bfcl.checker import check
from pilothouse_suites.bfcl.data import Case, load_category, sample_ids, split, to_parameters
from pilothouse_suites.bfcl.livelike import (
    LIVELIKE_CATEGORIES,
    livelike_cases,
    livelike_ids,
    livelike_part,
)

NOT_EXECUTED = "(not executed: a BFCL case is scored on the call itself, in one turn)"
BUDGET = Budget(max_steps=1, max_seconds=120)


def _not_executed() -> str:
    return NOT_EXECUTED


class BFCLTool(Tool):
    """A BFCL function offered to the model: its name, description and schema; calling
    it runs nothing (see the module docstring). Any arguments are accepted, since the
    checker judges them as the model wrote them."""

    __slots__ = ()

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        return {}


def bfcl_tool(function: dict[str, Any]) -> BFCLTool:
    """One BFCL function doc as a tool (schema converted by `data.to_parameters`)."""
    tool = BFCLTool(
        _not_executed,
        name=str(function["name"]),
        description=str(function.get("description", "")),
    )
    tool.parameters = to_parameters(function)
    return tool


def bfcl_tools(case: Case) -> list[Tool]:
    """The functions a case offers, as tools."""
    return [bfcl_tool(f) for f in case.functions]


def _scenario(case: Case, tag: str) -> Scenario:
    async def run_case(ctx: EvalContext) -> None:
        agent = ctx.agent()
        run_id = new_run_id()
        ctx.run_ids.append(run_id)  # the journal is the sample's, whatever happens
        result = await agent.run(case.question, run_id=run_id)
        if not (result.ok or (result.stop is not None and result.stop.reason == "steps")):
            ctx.results.append(result)  # out of time, tokens, policy...: the runner's kind
            raise AssertionError(f"[{result.outcome}] the run stopped before its turn ended")
        verdict = check(case, ctx.steps(run_id).calls)
        if not verdict.valid:
            raise AssertionError(f"[{verdict.error_type}] {verdict.error}")

    return Scenario(
        case.id,
        run_case,
        list(bfcl_tools(case)),
        case.system,
        f"BFCL {case.category}",
        case.question,
        (tag,),
    )


def _part_of(category: str, case_id: str) -> str:
    if category in LIVELIKE_CATEGORIES:
        return livelike_part(case_id)
    parts = split().get(category, {})
    return next((p for p, ids in parts.items() if case_id in ids), "unsampled")


def case_ids(category: str, part: str = "sample") -> list[str]:
    """The case ids of `category`'s `part`: BFCL's (`data.sample_ids`) or the live-like
    set's (`livelike.livelike_ids`, categories ``livelike_simple``/``_irrelevance``)."""
    if category in LIVELIKE_CATEGORIES:
        return livelike_ids(category, part)
    return sample_ids(category, part)


def _cases(category: str) -> dict[str, Case]:
    if category in LIVELIKE_CATEGORIES:
        return livelike_cases(category)
    return load_category(category)


def bfcl_scenarios(category: str, part: str | None = None) -> list[Scenario]:
    """The scenarios of `category`'s `part` (default ``$PILOTHOUSE_BFCL_CASES`` or
    sample), tagged tune, holdout or unsampled. ``livelike`` is both live-like
    categories (`livelike`)."""
    part = part or os.environ.get("PILOTHOUSE_BFCL_CASES") or "sample"
    if category == "livelike":
        return [s for c in LIVELIKE_CATEGORIES for s in bfcl_scenarios(c, part)]
    cases = _cases(category)
    return [_scenario(cases[i], _part_of(category, i)) for i in case_ids(category, part)]


def bfcl_suite(category: str, *, naive: bool = False, part: str | None = None) -> Suite:
    """BFCL `category` with the default construction, or the naive JSON baseline
    (``livelike``, ``livelike_simple``, ``livelike_irrelevance``: the live-like set)."""
    source = "BFCL live-like set" if category.startswith("livelike") else "BFCL v4"
    return Suite(
        f"bfcl-{category}" + ("-naive" if naive else ""),
        bfcl_scenarios(category, part),
        naive_agent if naive else default_agent_factory,
        BUDGET,
        f"{source} {category}, one turn per case, BFCL's AST checker"
        + (" (naive JSON construction)" if naive else ""),
    )


simple_python_suite = partial(bfcl_suite, "simple_python")
multiple_suite = partial(bfcl_suite, "multiple")
parallel_suite = partial(bfcl_suite, "parallel")
parallel_multiple_suite = partial(bfcl_suite, "parallel_multiple")
irrelevance_suite = partial(bfcl_suite, "irrelevance")
live_simple_suite = partial(bfcl_suite, "live_simple")
live_multiple_suite = partial(bfcl_suite, "live_multiple")
live_irrelevance_suite = partial(bfcl_suite, "live_irrelevance")
simple_python_naive_suite = partial(bfcl_suite, "simple_python", naive=True)
multiple_naive_suite = partial(bfcl_suite, "multiple", naive=True)
parallel_naive_suite = partial(bfcl_suite, "parallel", naive=True)
parallel_multiple_naive_suite = partial(bfcl_suite, "parallel_multiple", naive=True)
irrelevance_naive_suite = partial(bfcl_suite, "irrelevance", naive=True)
live_simple_naive_suite = partial(bfcl_suite, "live_simple", naive=True)
live_multiple_naive_suite = partial(bfcl_suite, "live_multiple", naive=True)
live_irrelevance_naive_suite = partial(bfcl_suite, "live_irrelevance", naive=True)
livelike_suite = partial(bfcl_suite, "livelike")
livelike_naive_suite = partial(bfcl_suite, "livelike", naive=True)
