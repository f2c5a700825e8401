"""Build the live-like set: ``python benchmarks/data/bfcl_livelike/build.py``.

Writes ``livelike.jsonl`` beside this file: one case a line, in BFCL's own form
(``question`` as [[messages]], ``function`` as BFCL function docs in Gorilla's
dialect, ``ground_truth`` as possible answers), plus ``part`` (tune or holdout),
``tool`` (the key in `tools.TOOLS`) and ``source`` (repo:path@commit).

A second batch (seventh round: `tools_r7`, `cases_r7`) is written the same way to
``livelike_r7.jsonl`` with its own seed and ``r7_`` ids: a new file, drawn once, so
the first file and its split stay exactly as they were tuned on.

The split is drawn once, seeded, over the *tools* (a tool's call and irrelevance
cases share its part), so the holdout part's tools are tools nobody tuned on, as
BFCL's live functions are. Rerunning this script rewrites the same file (tests check
that the committed file is this draw).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import cases  # noqa: E402
import cases_r7  # noqa: E402
import tools  # noqa: E402
import tools_r7  # noqa: E402

TOOLS = tools.TOOLS
OUT = HERE / "livelike.jsonl"
SEED = "bfcl-livelike:12"
# file name -> (tools, calls, irrelevant requests, split seed, id infix)
SETS: dict[str, tuple[dict[str, Any], list[Any], list[Any], str, str]] = {
    "livelike.jsonl": (tools.TOOLS, cases.CALLS, cases.IRRELEVANT, SEED, ""),
    "livelike_r7.jsonl": (
        tools_r7.TOOLS,
        cases_r7.CALLS,
        cases_r7.IRRELEVANT,
        "bfcl-livelike-r7:13",
        "r7_",
    ),
}

# JSON Schema (and the dialects people publish) -> BFCL's Gorilla dialect, as BFCL's
# live function docs are written ("dict", "float", "integer", "array", ...).
_TYPES = {
    "object": "dict",
    "number": "float",
    "int": "integer",
    "integer": "integer",
    "string": "string",
    "boolean": "boolean",
    "array": "array",
}


def _gorilla(schema: dict[str, Any]) -> dict[str, Any]:
    out = dict(schema)
    kind = str(schema.get("type", "string"))
    if kind.lower().startswith("tuple("):  # "Tuple(int, int, int)": a list of ints
        out["type"] = "array"
        out["items"] = {"type": "integer"}
    else:
        out["type"] = _TYPES.get(kind.lower(), "string")
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {k: _gorilla(v) for k, v in schema["properties"].items()}
    if isinstance(schema.get("items"), dict):
        out["items"] = _gorilla(schema["items"])
    return out


def function_doc(key: str, table: dict[str, Any] = TOOLS) -> dict[str, Any]:
    """The tool `key` of `table` as a BFCL function doc."""
    tool = table[key]
    parameters = tool["parameters"] or {"type": "object", "properties": {}}
    params = _gorilla(parameters)
    params["type"] = "dict"
    params["required"] = list(parameters.get("required") or [])
    params.setdefault("properties", {})
    return {"name": tool["name"], "description": tool["description"], "parameters": params}


def _answer(
    key: str, accepted: dict[str, list[Any]], table: dict[str, Any] = TOOLS
) -> dict[str, dict[str, list[Any]]]:
    doc = function_doc(key, table)
    properties = doc["parameters"]["properties"]
    unknown = set(accepted) - set(properties)
    if unknown:
        raise ValueError(f"{key}: {sorted(unknown)} are not parameters of {doc['name']}")
    missing = [r for r in doc["parameters"]["required"] if r not in accepted or "" in accepted[r]]
    if missing:
        raise ValueError(f"{key}: required {missing} must have a value")
    full = {name: accepted.get(name, [""]) for name in properties}
    return {doc["name"]: full}


def _messages(question: str, system: str) -> list[list[dict[str, str]]]:
    turn = [{"role": "system", "content": system}] if system else []
    return [[*turn, {"role": "user", "content": question}]]


def parts(table: dict[str, Any] = TOOLS, seed: str = SEED) -> dict[str, str]:
    """{tool key: part}: the seeded draw, half of the tools tune, half holdout."""
    keys = sorted(table)
    random.Random(seed).shuffle(keys)
    cut = len(keys) // 2
    return {k: ("tune" if i < cut else "holdout") for i, k in enumerate(keys)}


def build(name: str = "livelike.jsonl") -> list[dict[str, Any]]:
    """Every case of the set `name`, in a fixed order: the calls, then the irrelevant
    requests."""
    table, calls_, irrelevant_, seed, infix = SETS[name]
    part = parts(table, seed)

    def row(
        category: str, n: int, key: str, question: str, system: str, truth: list[Any]
    ) -> dict[str, Any]:
        return {
            "id": f"{category}_{infix}{n}",
            "category": category,
            "part": part[key],
            "tool": key,
            "source": table[key]["source"],
            "question": _messages(question, system),
            "function": [function_doc(key, table)],
            "ground_truth": truth,
        }

    calls = [
        row("livelike_simple", n, key, question, system, [_answer(key, accepted, table)])
        for n, (key, question, accepted, system) in enumerate(calls_)
    ]
    irrelevant = [
        row("livelike_irrelevance", n, key, question, system, [])
        for n, (key, question, system) in enumerate(irrelevant_)
    ]
    return calls + irrelevant


def main() -> int:
    for name, (table, *_) in SETS.items():
        rows = build(name)
        out = HERE / name
        out.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
        )
        counts: dict[tuple[str, str], int] = {}
        for r in rows:
            counts[(r["category"], r["part"])] = counts.get((r["category"], r["part"]), 0) + 1
        for (category, p), n in sorted(counts.items()):
            print(f"{name}: {category} {p}: {n}")
        print(f"{name}: tools: {len(table)}; written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
