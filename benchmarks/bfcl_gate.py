"""The relevance gate on BFCL cases, without the model: which tools it lets through.

    python benchmarks/bfcl_gate.py                       # the table (counts only)
    python benchmarks/bfcl_gate.py --show livelike_simple  # tune cases it drops (tune only)

For every case, the guided layer's first decision is computed with no generation
(`guided.relevance.relevant_tools` on the request, the case's tools and its system
text, as `GuidedModel` calls it): *kept* means the right function passes the gate
(call cases), *answered* that no tool passes (irrelevance cases: the right answer),
*asked* that the right function is "plainly asked for" (`relevance.asked_for`).

Sets: the live-like set's tune part (`livelike_simple`, `livelike_irrelevance`; both
batches, and the seventh round's batch alone as ``tune r7``) and BFCL's non-live pool
outside split.json's holdout ids (every case of the category but those). For an
irrelevance set the last column counts the cases whose kept tool is asked for (a
tool-only first stage: want low). The live-like holdout part, BFCL's holdout ids and
the live categories are counted only with ``--held-out`` (counts, never rows). ``--show`` prints the
request and tools of the tune cases the gate gets wrong (livelike tune, or the
non-live pool), to study; it refuses holdout and live sets.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable

from pilothouse.guided.relevance import asked_for, relevant_tools
from pilothouse.models.base import ToolSpec
from pilothouse_suites import bfcl

POOL = ["simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance"]
LIVELIKE = ["livelike_simple", "livelike_irrelevance"]


def _specs(case: bfcl.Case) -> list[ToolSpec]:
    return [t.spec() for t in bfcl.bfcl_tools(case)]


def _right(case: bfcl.Case) -> set[str]:
    return {name for entry in case.ground_truth for name in entry}


def verdict(case: bfcl.Case) -> tuple[bool, bool]:
    """(right decision at the gate, the right function asked for): for a call case,
    every right function kept; for irrelevance, no tool kept."""
    specs = _specs(case)
    kept = {t.name for t in relevant_tools(case.question, specs, case.system)}
    if case.irrelevant:
        return not kept, any(asked_for(case.question, s) for s in specs if s.name in kept)
    right = _right(case)
    asked = all(any(asked_for(case.question, s) for s in specs if s.name == name) for name in right)
    return right <= kept, asked


def _cases(category: str, part: str) -> list[bfcl.Case]:
    """The cases of a set: livelike tune/holdout; a BFCL category's "pool" (all but
    split.json's holdout ids) or its "holdout" ids; a live category's sample."""
    if category in LIVELIKE:
        cases = bfcl.livelike_cases(category)
        batch = part.endswith(" r7")
        ids = bfcl.livelike_ids(category, part.removesuffix(" r7"))
        return [cases[i] for i in ids if not batch or "_r7_" in i]
    cases = bfcl.load_category(category)
    if part == "pool":
        held = set(bfcl.sample_ids(category, "holdout"))
        return [c for i, c in cases.items() if i not in held]
    return [cases[i] for i in bfcl.sample_ids(category, part)]


def _count(cases: Iterable[bfcl.Case]) -> tuple[int, int, int]:
    right = asked = total = 0
    for case in cases:
        ok, plain = verdict(case)
        right += ok
        asked += plain
        total += 1
    return right, asked, total


def table(held_out: bool) -> str:
    sets = [(c, p) for c in LIVELIKE for p in ("tune", "tune r7")]
    sets += [(c, "pool") for c in POOL]
    if held_out:
        sets += [(c, p) for c in LIVELIKE for p in ("holdout", "holdout r7")]
        sets += [(c, "holdout") for c in POOL if c != "parallel_multiple"]
        sets += [("live_simple", "holdout"), ("live_irrelevance", "holdout")]
    lines = [
        "| set | part | right at the gate | right function asked for (irrelevance: a kept tool) |",
        "| --- | --- | ---: | ---: |",
    ]
    for category, part in sets:
        right, asked, total = _count(_cases(category, part))
        what = "answered" if "irrelevance" in category else "kept"
        shown = f"{asked}/{total}"
        lines.append(f"| {category} | {part} | {what} {right}/{total} | {shown} |")
    return "\n".join(lines)


def show(category: str) -> str:
    """The tune cases of `category` the gate gets wrong, to study (tune only)."""
    part = "tune" if category in LIVELIKE else "pool"
    if category.startswith("live_"):
        raise SystemExit("live categories are held out: counts only")
    out = []
    for case in _cases(category, part):
        ok, _ = verdict(case)
        if ok:
            continue
        tools = "; ".join(f"{f['name']}: {f.get('description', '')[:90]}" for f in case.functions)
        out.append(f"{case.id}\n  request: {case.question[:160]!r}\n  tools: {tools}")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held-out", action="store_true", help="also count held-out sets")
    parser.add_argument("--show", choices=[*LIVELIKE, *POOL], help="tune cases gotten wrong")
    args = parser.parse_args()
    if not bfcl.available():
        print(bfcl.INSTALL_HINT, file=sys.stderr)
        return 2
    print(show(args.show) if args.show else table(args.held_out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
