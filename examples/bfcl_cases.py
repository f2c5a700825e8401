"""Score a model on a few BFCL cases, and see why each failing call failed.

    python examples/bfcl_cases.py                      # the ground-truth model: all pass
    python examples/bfcl_cases.py local multiple 5     # the embedded model, 5 cases

Needs the bfcl-eval package (pip install --no-deps 'bfcl-eval==2026.3.23'). Each case
offers its functions as tools; the model gets one turn; BFCL's AST checker scores the
call it made (irrelevance cases: right when it calls nothing).
"""

from __future__ import annotations

import asyncio
import sys

from pilothouse.evals import run_eval
from pilothouse_suites import bfcl


def main() -> int:
    model = sys.argv[1] if len(sys.argv) > 1 else "bfcl:oracle"
    category = sys.argv[2] if len(sys.argv) > 2 else "simple_python"
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    if not bfcl.available():
        print(bfcl.INSTALL_HINT, file=sys.stderr)
        return 2
    suite = bfcl.bfcl_suite(category, part="tune" if category not in bfcl.LIVE else "holdout")
    suite.scenarios = suite.scenarios[:count]
    log = asyncio.run(run_eval(suite, [model], epochs=1, concurrency=1))
    for sample in log.samples:
        case = bfcl.load_category(category)[sample.scenario]
        verdict = "pass" if sample.ok else f"FAIL {sample.message}"
        print(f"{sample.scenario}: {case.question[:70]!r} -> {verdict}")
    passed = sum(s.ok for s in log.samples)
    print(f"{category} on {model}: {passed}/{len(log.samples)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
