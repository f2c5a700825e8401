"""Evaluation: scenarios x models x epochs, success tables, pass^k, reports.

Two ways to write a scenario: an async function of an `EvalContext` that raises
`AssertionError` (with helpers asserting on the output and on the journal's
steps), or a dataset of inputs and targets plus scorers (`dataset_scenarios`).
`run_eval` runs a `Suite` on models for a number of epochs; `pilothouse.evals.report`
turns the resulting `EvalLog` into a terminal table, a JSON log and an HTML page.

This package is the harness only; suites are content that uses it (the project's own
are in `pilothouse_suites`, named through the ``pilothouse.suites`` entry points).
"""

from __future__ import annotations

from pilothouse.evals.dataset import (
    Answer,
    Sample,
    Score,
    Scorer,
    contains,
    custom,
    dataset_scenarios,
    exact,
    json_schema,
    llm_judge,
    load_dataset,
    numeric,
    regex,
    samples_from_records,
    trajectory,
)
from pilothouse.evals.runner import (
    FAILURE_KINDS,
    Cell,
    EvalLog,
    SampleRecord,
    Suite,
    classify,
    load_suite,
    mean_pass_hat_k,
    pass_at_k,
    pass_hat_k,
    run_eval,
    summarize,
)
from pilothouse.evals.scenario import (
    EvalContext,
    Oracle,
    Scenario,
    Steps,
    expect_called,
    expect_contains,
    expect_equals,
    expect_not_called,
    expect_number,
    expect_order,
    expect_regex,
    numbers_in,
    output_text,
    scenario,
)

__all__ = [
    "FAILURE_KINDS",
    "Answer",
    "Cell",
    "EvalContext",
    "EvalLog",
    "Oracle",
    "Sample",
    "SampleRecord",
    "Scenario",
    "Score",
    "Scorer",
    "Steps",
    "Suite",
    "classify",
    "contains",
    "custom",
    "dataset_scenarios",
    "exact",
    "expect_called",
    "expect_contains",
    "expect_equals",
    "expect_not_called",
    "expect_number",
    "expect_order",
    "expect_regex",
    "json_schema",
    "llm_judge",
    "load_dataset",
    "load_suite",
    "mean_pass_hat_k",
    "numbers_in",
    "numeric",
    "output_text",
    "pass_at_k",
    "pass_hat_k",
    "regex",
    "run_eval",
    "samples_from_records",
    "scenario",
    "summarize",
    "trajectory",
]
