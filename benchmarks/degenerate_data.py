"""Score the parser's degenerate test on real loops and real answers (issue #15, session 15).

    python benchmarks/degenerate_data.py [--tune-only] [--misses] [--src /work/main/src]

Reads benchmarks/data/degenerate/data.jsonl (README there: sources, labels, the split) and
prints, per split, the loops caught and the answers falsely refused, by kind. `--misses`
lists the ids of the `tune` half's misses only: the `holdout` half is counted, never
listed, so the detector is never fitted to it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data" / "degenerate" / "data.jsonl"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tune-only", action="store_true", help="leave the holdout half out")
    parser.add_argument("--misses", action="store_true", help="list the tune half's misses")
    parser.add_argument(
        "--src", type=Path, default=ROOT / "src", help="the checkout whose test is scored"
    )
    options = parser.parse_args()
    sys.path.insert(0, str(options.src))
    try:
        from pilothouse.actions.degenerate import degenerate
    except ImportError:  # before session 15 the test lived in markup.py
        from pilothouse.actions.markup import degenerate  # type: ignore[attr-defined,no-redef]

    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    for split in ("tune",) if options.tune_only else ("tune", "holdout"):
        part = [r for r in rows if r["split"] == split]
        loops = [r for r in part if r["label"] == "loop"]
        answers = [r for r in part if r["label"] == "answer"]
        caught = [r for r in loops if degenerate(r["text"])]
        refused = [r for r in answers if degenerate(r["text"])]
        print(
            f"{split:8} loops caught {len(caught)}/{len(loops)}   "
            f"answers refused {len(refused)}/{len(answers)}"
        )
        by_kind = Counter(r["kind"] for r in answers)
        bad_kind = Counter(r["kind"] for r in refused)
        print(
            "         refused by kind: "
            + ", ".join(f"{k} {bad_kind[k]}/{n}" for k, n in sorted(by_kind.items()))
        )
        loop_kind = Counter(r["kind"] for r in loops)
        got_kind = Counter(r["kind"] for r in caught)
        print(
            "         caught by kind:  "
            + ", ".join(f"{k} {got_kind[k]}/{n}" for k, n in sorted(loop_kind.items()))
        )
        if options.misses and split == "tune":
            for r in loops:
                if r not in caught:
                    print("  missed loop:", r["id"])
            for r in refused:
                print("  refused answer:", r["id"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
