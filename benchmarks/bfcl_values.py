"""BFCL argument rules counted without the model: right calls kept right, model calls fixed.

    python benchmarks/bfcl_values.py                       # the tune pool, every rule on
    python benchmarks/bfcl_values.py --off strays          # one rule switched off
    python benchmarks/bfcl_values.py --off dates scales lists floats names  # the ninth round's
                                                           # value forms (guided.value_forms)
    python benchmarks/bfcl_values.py --logs DIR            # also re-settle the calls of
                                                           # eval logs (bfcl.py --log-dir)

A rule of `guided.arguments.settle` acts on a call after the model wrote it, so it can
be judged without the model two ways:

- on the *right* calls of the tune pool (every non-live case outside split.json's
  holdout ids: simple 380, multiple 180, parallel 180, parallel_multiple 180): each
  possible answer written out (``first``: each argument's first accepted value, an
  optional one whose first is "" left out; ``given``: each argument's first non-empty
  value) is settled against the request and scored by BFCL's checker. A rule that turns
  a right call wrong shows here;
- on the model's own calls (``--logs``: eval logs of tune or pool cases written by
  ``benchmarks/bfcl.py --log-dir``): each sample's calls settled again and scored, so
  the cases a rule fixes or breaks show without running the model again.

Never give it held-out logs: it prints the cases that change.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

RULES = ("fractions", "others", "strays", "choices", "dates", "scales", "lists", "floats", "names")
POOL_CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple")


def switch_off(names: list[str]) -> None:
    """Turn rules of this round off in this process (measurement only)."""
    from pilothouse.guided import arguments

    if "fractions" in names:
        arguments._as_fractions = lambda out, properties, text, changes: None  # type: ignore[assignment]
    if "others" in names:
        arguments._without_others = lambda out, spec, required, changes: None  # type: ignore[assignment]
    if "choices" in names:
        arguments.quoted_choices = lambda description: []  # type: ignore[assignment]
        arguments.said_choices = lambda text, choices: [  # type: ignore[assignment]
            c for c in choices if arguments._mentions(text, c)
        ]
    for form in arguments.VALUE_FORMS:  # ninth round
        if form in names:
            arguments._VALUE_FORMS_ON.discard(form)
    if "strays" in names:
        arguments._strays_left_out = lambda out, spec, required, changes: None  # type: ignore[assignment]


def _written(answer: dict[str, list[Any]], form: str) -> dict[str, Any]:
    """One possible answer's arguments as a model would write them."""
    out: dict[str, Any] = {}
    for name, accepted in answer.items():
        values = [v for v in accepted if v != ""] if form == "given" else list(accepted)
        if values and values[0] != "":
            out[name] = values[0]
    return out


def _settled_calls(case: Any, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    from pilothouse.guided.arguments import settle
    from pilothouse.messages import ToolCall
    from pilothouse.models.base import ToolSpec
    from pilothouse_suites.bfcl import to_parameters

    functions = {f["name"]: f for f in case.functions}
    out = []
    for i, (name, arguments) in enumerate(calls):
        function = functions.get(name)
        if function is not None:
            spec = ToolSpec(name, function.get("description", ""), to_parameters(function))
            arguments, _ = settle(arguments, spec, case.question)
        out.append(ToolCall(f"c{i}", name, arguments))
    return out


def truth_counts() -> dict[str, tuple[int, int]]:
    """{category/form: (right calls still right after settle, cases)} over the pool."""
    from pilothouse_suites.bfcl import check, load_category, pool_ids

    out: dict[str, tuple[int, int]] = {}
    for category in POOL_CATEGORIES:
        cases = load_category(category)
        for form in ("first", "given"):
            kept = 0
            ids = pool_ids(category)
            for case_id in ids:
                case = cases[case_id]
                calls = [
                    (n, _written(a, form)) for call in case.ground_truth for n, a in call.items()
                ]
                kept += check(case, _settled_calls(case, calls)).valid
            out[f"{category}/{form}"] = (kept, len(ids))
    return out


def log_changes(log_dir: Path) -> tuple[Counter[str], list[str]]:
    """Re-settle each logged sample's calls: how many pass before and after, and the
    cases that changed (tune/pool logs only)."""
    from pilothouse_suites.bfcl import check, load_category, split

    holdout = {i for parts in split().values() for i in parts.get("holdout", ())}
    counts: Counter[str] = Counter()
    changed = []
    for path in sorted(log_dir.glob("*.json")):
        for sample in json.loads(path.read_text())["samples"]:
            case_id = sample["scenario"]
            if case_id in holdout:
                raise SystemExit(f"{path}: holds a held-out case ({case_id}); not read")
            case = load_category(case_id.rsplit("_", 1)[0])[case_id]
            calls = [
                (e["call"]["name"], e["call"]["arguments"])
                for e in sample["events"]
                if e.get("type") == "tool_call"
            ]
            before = bool(sample["ok"])
            if case.irrelevant or not calls:
                after = before
            else:
                after = check(case, _settled_calls(case, calls)).valid
            counts[f"before {before}"] += 1
            counts[f"after {after}"] += 1
            if before != after:
                changed.append(f"{case_id}: {before} -> {after}")
    return counts, changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--off", nargs="+", default=[], choices=RULES)
    parser.add_argument("--logs", nargs="+", type=Path, default=[])
    parser.add_argument("--no-truth", action="store_true", help="only the logs")
    args = parser.parse_args()
    switch_off(args.off)
    print(f"rules off: {', '.join(args.off) or 'none'}")
    if not args.no_truth:
        for key, (kept, total) in truth_counts().items():
            print(f"right calls kept right, {key}: {kept}/{total}")
    for log_dir in args.logs:
        counts, changed = log_changes(log_dir)
        print(f"{log_dir}: pass {counts['before True']} -> {counts['after True']}")
        for line in changed:
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
