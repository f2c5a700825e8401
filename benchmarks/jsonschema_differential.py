"""Differential check of `pilothouse.jsonschema_check` against the `jsonschema` library.

Run in a throwaway venv with `jsonschema` installed (it is not a dependency):
`PYTHONPATH=src /tmp/venv/bin/python benchmarks/jsonschema_differential.py`.
Random schemas of the supported subset (nested up to two levels, seed 7) are checked
with both validators (lenient mode, Draft 2020-12) on a fixed set of values; it
prints the number of schema/value pairs and of disagreements (the first five shown).
Values avoid the documented differences (``1.0`` as an integer, tuples).
"""

from __future__ import annotations

import random
from typing import Any

import jsonschema  # type: ignore[import-untyped,unused-ignore]

from pilothouse.jsonschema_check import compile_schema

VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 2.5, 100, "", "a", "AB1234", "hello world",
    [], [1], [1, "a"], ["x", "y", "z"], {}, {"a": 1}, {"a": "x", "b": 2}, {"city": "Oslo"},
    [2.5, 2.5], [True, 1], [1, 2, 1], ["a", "a"], [{"a": 2.5}, {"a": 2.5}], [[1], [True]],
    [0, False, None, ""],
]  # fmt: skip
SCALAR = ["type", "enum", "const", "pattern", "minimum", "maximum", "exclusiveMinimum"]
SCALAR += ["exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems"]
SCALAR += ["uniqueItems"]
NESTED = ["items", "not", "properties", "anyOf", "allOf", "oneOf", "additionalProperties"]
NESTED += ["required", "contains"]
TYPES: list[Any] = ["string", "integer", "number", "boolean", "array", "object", "null"]


def schema(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    kinds = SCALAR + (NESTED if depth < 2 else [])
    s: dict[str, Any] = {}
    for k in rng.sample(kinds, rng.randint(1, 3)):
        if k == "type":
            s[k] = rng.choice([*TYPES, ["string", "null"]])
        elif k == "enum":
            s[k] = rng.sample(VALUES[:14], 2)
        elif k == "const":
            s[k] = rng.choice(VALUES[:14])
        elif k == "pattern":
            s[k] = rng.choice(["^a", "\\d", "^[A-Z]{2}\\d{4}$", "o"])
        elif k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            s[k] = rng.choice([0, 1, 2.5, 100])
        elif k in ("minLength", "maxLength", "minItems", "maxItems"):
            s[k] = rng.choice([0, 1, 2])
        elif k == "uniqueItems":
            s[k] = rng.choice([True, False])
        elif k == "contains":
            s[k] = schema(rng, depth + 1)
            for bound in ("minContains", "maxContains"):
                if rng.random() < 0.4:
                    s[bound] = rng.choice([0, 1, 2])
        elif k in ("items", "not", "additionalProperties"):
            s[k] = schema(rng, depth + 1)
        elif k == "properties":
            s[k] = {"a": schema(rng, depth + 1), "city": schema(rng, depth + 1)}
        elif k == "required":
            s[k] = rng.sample(["a", "b", "city"], 1)
        else:
            s[k] = [schema(rng, depth + 1) for _ in range(2)]
    return s


def main() -> None:
    rng = random.Random(7)
    pairs = disagreements = 0
    for _ in range(3000):
        s = schema(rng)
        ours, theirs = compile_schema(s), jsonschema.Draft202012Validator(s)
        for v in VALUES:
            pairs += 1
            if (ours(v) is None) != theirs.is_valid(v):
                disagreements += 1
                if disagreements <= 5:
                    print(
                        "disagree:", s, repr(v), "ours:", ours(v), "jsonschema:", theirs.is_valid(v)
                    )
    print(f"{pairs} schema/value pairs, {disagreements} disagreements")


if __name__ == "__main__":
    main()
