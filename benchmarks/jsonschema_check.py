"""Per-check cost of the shared JSON-schema validator, against the `jsonschema` library.

Run: `.venv/bin/python benchmarks/jsonschema_check.py` (the comparison columns appear
when `jsonschema` is importable, e.g. in a throwaway venv: it is not a dependency).

Cases are what the three users check: policy argument conditions (one bound, an
enum, a pattern, a two-keyword schema), a dataset answer object and a tool-arguments
object as the guided layer would check. Each validator is built once; the figure is
the median over 7 rounds of the mean of 20,000 checks of a valid value (the policy's
common case), in microseconds. Import cost: median of 5 fresh interpreters of
`-X importtime`, the module's cumulative time.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from pilothouse.jsonschema_check import compile_schema

CASES: list[tuple[str, dict[str, Any], Any]] = [
    ("policy: maximum", {"maximum": 100}, 42),
    ("policy: enum", {"enum": ["EUR", "USD", "GBP"]}, "USD"),
    ("policy: pattern", {"pattern": r"^[A-Z]{2}\d{4}$"}, "AB1234"),
    ("policy: min+max", {"minimum": 0, "maximum": 1000}, 250),
    (
        "dataset: answer object",
        {
            "type": "object",
            "required": ["city"],
            "properties": {"city": {"type": "string"}, "n": {"type": "integer", "minimum": 0}},
            "additionalProperties": False,
        },
        {"city": "Oslo", "n": 2},
    ),
    (
        "guided: tool arguments",
        {
            "type": "object",
            "properties": {
                "order_id": {"type": "string", "pattern": r"^#W\d{7}$"},
                "item_ids": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "reason": {"enum": ["no longer needed", "ordered by mistake"]},
                "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            },
            "required": ["order_id", "item_ids", "reason"],
            "additionalProperties": False,
        },
        {"order_id": "#W1234567", "item_ids": ["1", "2"], "reason": "ordered by mistake"},
    ),
]


def per_check(fn: Callable[[Any], Any], value: Any, n: int = 20_000) -> float:
    rounds = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(n):
            fn(value)
        rounds.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(rounds)


def import_ms(module: str) -> float | None:
    times = []
    for _ in range(5):
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            return None
        line = [x for x in out.stderr.splitlines() if x.rstrip().endswith(f"| {module}")][-1]
        times.append(int(line.split("|")[1]) / 1000)
    return statistics.median(times)


def main() -> None:
    try:
        import jsonschema  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        jsonschema = None
    print(f"{'case':26} {'compiled µs':>12} {'jsonschema µs':>14}")
    for name, schema, value in CASES:
        ours = compile_schema(schema, strict=name.startswith("policy"))
        assert ours(value) is None, (name, ours(value))
        theirs = "-"
        if jsonschema is not None:
            v = jsonschema.validators.validator_for(schema)(schema)
            theirs = f"{per_check(v.is_valid, value):14.2f}"
        print(f"{name:26} {per_check(ours, value):12.2f} {theirs:>14}")
    print(f"import pilothouse.jsonschema_check: {import_ms('pilothouse.jsonschema_check')} ms")
    if jsonschema is not None:
        print(f"import jsonschema: {import_ms('jsonschema')} ms")


if __name__ == "__main__":
    main()
