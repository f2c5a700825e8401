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

- ``--forms`` (ninth round, `guided.value_forms`): each right value of the pool that
  the request writes in another form (a date, a number before "million", a list of more
  than three, a capitalised name's last word standing for it) put through its rule:
  how many come out accepted ("fixed"), how many an accepted written form the rule
  turns unaccepted ("broken"), how many stay unaccepted.

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


def _accepted(accepted: list[Any], value: Any) -> bool:
    return any(
        value == a or (isinstance(a, str) and isinstance(value, str) and a.lower() == value.lower())
        for a in accepted
    )


def form_counts() -> Counter[tuple[str, str]]:
    """{(rule, written accepted -> formed accepted): values} over the pool's right calls,
    the request's own form of each value put through the ninth round's rules."""
    from pilothouse.guided import value_forms as vf
    from pilothouse.guided.arguments import other_words
    from pilothouse_suites.bfcl import load_category, pool_ids, to_parameters

    counts: Counter[tuple[str, str]] = Counter()

    def count(rule: str, written: Any, formed: Any, accepted: list[Any]) -> None:
        before, after = _accepted(accepted, written), _accepted(accepted, formed)
        counts[
            (
                rule,
                {(False, True): "fixed", (True, False): "broken"}.get(
                    (before, after), f"{'right' if after else 'wrong'} both"
                ),
            )
        ] += 1

    for category in POOL_CATEGORIES:
        cases = load_category(category)
        for case_id in pool_ids(category):
            case = cases[case_id]
            text = str(case.question)
            functions = {f["name"]: f for f in case.functions}
            for call in case.ground_truth:
                for name, answer in call.items():
                    properties = to_parameters(functions[name]).get("properties", {})
                    for param, accepted in answer.items():
                        prop = properties.get(param, {})
                        kind = prop.get("type")
                        description = str(prop.get("description") or "")
                        if kind == "string":
                            for start, end, day in vf.request_dates(text):
                                written = text[start:end]
                                if any(
                                    isinstance(a, str)
                                    and [d for _, _, d in vf.request_dates(a)] == [day]
                                    for a in accepted
                                ):
                                    formed = vf.formed_date(
                                        written, description, text, prop.get("format")
                                    )
                                    count("dates", written, formed or written, accepted)
                            first = accepted[0] if accepted else None
                            if isinstance(first, str) and len(first.split()) > 1 and first in text:
                                last = first.split()[-1]
                                firsts = {k: (v[0] if v else "") for k, v in answer.items()}
                                formed = vf.whole_name(last, text, other_words(param, firsts, name))
                                if formed is not None:
                                    count("names", last, formed, accepted)
                        if kind in ("integer", "number"):
                            for m in vf._SCALED.finditer(text):
                                number = float(m.group(1).replace(",", ""))
                                written = int(number) if number.is_integer() else number
                                formed = vf.scaled_number(written, kind, text)
                                if formed is not None and (
                                    _accepted(accepted, written) or _accepted(accepted, formed)
                                ):
                                    count("scales", written, formed, accepted)
                        if (
                            kind == "array"
                            and accepted
                            and isinstance(accepted[0], list)
                            and len(accepted[0]) > 3
                        ):
                            items = prop.get("items") or {}
                            cut = accepted[0][:3]
                            formed = vf.whole_list(cut, items.get("type"), text)
                            formed = vf.as_floats(formed, items) or formed
                            count("lists", cut, formed or cut, accepted)
    return counts


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
    parser.add_argument("--forms", action="store_true", help="the value forms' pool counts")
    args = parser.parse_args()
    switch_off(args.off)
    print(f"rules off: {', '.join(args.off) or 'none'}")
    if not args.no_truth:
        for key, (kept, total) in truth_counts().items():
            print(f"right calls kept right, {key}: {kept}/{total}")
    if args.forms:
        for (rule, outcome), n in sorted(form_counts().items()):
            print(f"{rule}: {outcome} {n}")
    for log_dir in args.logs:
        counts, changed = log_changes(log_dir)
        print(f"{log_dir}: pass {counts['before True']} -> {counts['after True']}")
        for line in changed:
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
