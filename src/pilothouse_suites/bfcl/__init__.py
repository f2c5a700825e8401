"""The Berkeley Function Calling Leaderboard (BFCL v4) in `pilothouse.evals`.

- `bfcl_suite(category, naive=..., part=...)`: one scenario per case, one model turn,
  the case's functions as tools, scored by BFCL's own AST checker; ``pilothouse eval
  bfcl-simple_python`` (``-multiple``, ``-parallel``, ``-irrelevance``, ``-live_simple``,
  ...; ``bfcl-<category>-naive`` for the naive JSON baseline) names them, on the fixed
  sample in split.json (``$PILOTHOUSE_BFCL_CASES``: sample, tune, holdout, all);
  ``bfcl-livelike`` (and ``-naive``): the live-like set of published user tools
  (`livelike`), to tune on instead of BFCL's held-out live categories;
- `oracle_model()` (``bfcl:oracle``): makes each case's ground-truth call;
- `check(case, calls)`: BFCL's verdict on calls; `to_parameters`: a BFCL function doc
  as JSON Schema.

Needs the ``bfcl-eval`` package (`data.INSTALL_HINT`); without it, building a suite
raises a `ConfigurationError` naming it. See docs/bfcl.md.
"""

from __future__ import annotations

from pilothouse.exceptions import UnknownModelError
from pilothouse.models.base import Model
from pilothouse.models.registry import register_model
from pilothouse_suites.bfcl.checker import Verdict, check
from pilothouse_suites.bfcl.data import (
    CATEGORIES,
    INSTALL_HINT,
    LIVE,
    Case,
    available,
    draw_pool_sample,
    load_category,
    pool_ids,
    require_bfcl,
    sample_ids,
    split,
    to_parameters,
)
from pilothouse_suites.bfcl.livelike import (
    LIVELIKE_CATEGORIES,
    livelike_cases,
    livelike_file,
    livelike_ids,
    livelike_part,
)
from pilothouse_suites.bfcl.oracle import oracle_model, truth_calls
from pilothouse_suites.bfcl.suite import (
    BUDGET,
    NOT_EXECUTED,
    BFCLTool,
    bfcl_scenarios,
    bfcl_suite,
    bfcl_tool,
    bfcl_tools,
    case_ids,
    irrelevance_naive_suite,
    irrelevance_suite,
    live_irrelevance_naive_suite,
    live_irrelevance_suite,
    live_multiple_naive_suite,
    live_multiple_suite,
    live_simple_naive_suite,
    live_simple_suite,
    livelike_naive_suite,
    livelike_suite,
    multiple_naive_suite,
    multiple_suite,
    parallel_multiple_naive_suite,
    parallel_multiple_suite,
    parallel_naive_suite,
    parallel_suite,
    simple_python_naive_suite,
    simple_python_suite,
)

__all__ = [
    "BUDGET",
    "CATEGORIES",
    "INSTALL_HINT",
    "LIVE",
    "LIVELIKE_CATEGORIES",
    "NOT_EXECUTED",
    "BFCLTool",
    "Case",
    "Verdict",
    "available",
    "bfcl_scenarios",
    "bfcl_suite",
    "bfcl_tool",
    "bfcl_tools",
    "case_ids",
    "check",
    "draw_pool_sample",
    "irrelevance_naive_suite",
    "irrelevance_suite",
    "live_irrelevance_naive_suite",
    "live_irrelevance_suite",
    "live_multiple_naive_suite",
    "live_multiple_suite",
    "live_simple_naive_suite",
    "live_simple_suite",
    "livelike_cases",
    "livelike_file",
    "livelike_ids",
    "livelike_naive_suite",
    "livelike_part",
    "livelike_suite",
    "load_category",
    "multiple_naive_suite",
    "multiple_suite",
    "oracle_model",
    "parallel_multiple_naive_suite",
    "parallel_multiple_suite",
    "parallel_naive_suite",
    "parallel_suite",
    "pool_ids",
    "require_bfcl",
    "sample_ids",
    "simple_python_naive_suite",
    "simple_python_suite",
    "split",
    "to_parameters",
    "truth_calls",
]


def _resolve(rest: str) -> Model:
    if rest != "oracle":
        raise UnknownModelError(f"'bfcl:{rest}' is not a model: use bfcl:oracle")
    return oracle_model()


register_model("bfcl", _resolve)
