"""The split into sub-requests (`guided.split`) on BFCL cases, without the model.

    python benchmarks/bfcl_split.py                  # the table (counts only)
    python benchmarks/bfcl_split.py --show parallel  # tune pool cases split wrongly

For every case of the tune pool (the non-live cases outside split.json's holdout ids)
and of the live-like set's tune part, the request is split as `GuidedModel` splits it
(`split.sub_requests` on the request, the case's tools and its system text). A
single-call case (simple_python, multiple, irrelevance, live-like) must stay unsplit.
A parallel case asks for as many calls as its ground truth holds: the table counts
the splits into as many sub-requests (``as many as calls``), fewer and more. A
sub-request may still come to several calls over an enumeration it holds ("in Boston
and San Francisco"), which `parallel.expanded` writes after its call: the last column
counts the splits whose sub-requests, each counted as its longest enumeration's items
(1 without one), come to as many calls (a rough count: `expanded` only repeats over an
enumeration that holds the call's own value). Held-out ids are counted only with
``--held-out`` (counts, never rows); ``--show`` prints tune pool cases only.
"""

from __future__ import annotations

import argparse
import sys

from pilothouse.guided.parallel import enumerations
from pilothouse.guided.split import sub_requests
from pilothouse_suites import bfcl

POOL = ["simple_python", "multiple", "irrelevance", "parallel", "parallel_multiple"]
LIVELIKE = ["livelike_simple", "livelike_irrelevance"]


def _cases(category: str, part: str) -> list[bfcl.Case]:
    if category in LIVELIKE:
        cases = bfcl.livelike_cases(category)
        return [cases[i] for i in bfcl.livelike_ids(category, part)]
    cases = bfcl.load_category(category)
    if part == "pool":
        held = set(bfcl.sample_ids(category, "holdout"))
        return [c for i, c in cases.items() if i not in held]
    return [cases[i] for i in bfcl.sample_ids(category, part)]


def split_of(case: bfcl.Case) -> list[str]:
    """The case's sub-requests as the guided layer cuts them ([]: not split)."""
    specs = [t.spec() for t in bfcl.bfcl_tools(case)]
    return sub_requests(case.question, specs, case.system)


def listed(part: str) -> int:
    """The calls a sub-request may come to once `parallel.expanded` repeats its call
    over an enumeration it holds: the longest one's items (1 without one)."""
    return max((len(items) for items in enumerations(part)), default=1)


def counts(cases: list[bfcl.Case]) -> dict[str, int]:
    """unsplit / split into as many sub-requests as calls / fewer / more; and the
    splits that come to as many calls with the enumerations they hold (``+ lists``)."""
    out = {"cases": 0, "unsplit": 0, "split": 0, "right n": 0, "fewer": 0, "more": 0}
    out["with lists"] = 0
    for case in cases:
        parts = split_of(case)
        n = len(parts)
        calls = len(case.ground_truth)
        out["cases"] += 1
        if n == 0:
            out["unsplit"] += 1
            continue
        out["split"] += 1
        out["right n" if n == calls else "fewer" if n < calls else "more"] += 1
        out["with lists"] += sum(listed(p) for p in parts) == calls
    return out


def table(held_out: bool) -> str:
    sets = [(c, "pool") for c in POOL] + [(c, "tune") for c in LIVELIKE]
    if held_out:
        sets += [(c, "holdout") for c in POOL + LIVELIKE]
    lines = [
        "| set | part | cases | unsplit | split | as many as calls | fewer | more "
        "| as many with their lists |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for category, part in sets:
        c = counts(_cases(category, part))
        lines.append(
            f"| {category} | {part} | {c['cases']} | {c['unsplit']} | {c['split']} | "
            f"{c['right n']} | {c['fewer']} | {c['more']} | {c['with lists']} |"
        )
    return "\n".join(lines)


def show(category: str, which: str) -> str:
    """Tune pool cases of `category`: split ones (single-call sets) or wrongly split ones."""
    out = []
    for case in _cases(category, "tune" if category in LIVELIKE else "pool"):
        subs = split_of(case)
        calls = len(case.ground_truth)
        wrong = bool(subs) if case.irrelevant or calls == 1 else len(subs) != calls
        if which == "wrong" and not wrong:
            continue
        if which == "split" and not subs:
            continue
        names = [next(iter(g)) for g in case.ground_truth]
        out.append(f"{case.id} calls={calls} {names}\n  request: {case.question[:300]!r}")
        out += [f"    - {s!r}" for s in subs]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held-out", action="store_true", help="also count held-out ids")
    parser.add_argument("--show", choices=POOL + LIVELIKE, help="tune pool cases split wrongly")
    parser.add_argument("--which", choices=["wrong", "split", "all"], default="wrong")
    args = parser.parse_args()
    if not bfcl.available():
        print(bfcl.INSTALL_HINT, file=sys.stderr)
        return 2
    print(show(args.show, args.which) if args.show else table(args.held_out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
