"""A required string chosen by a narrow question, measured against main's construction.

    # main's construction first, its eval logs kept (one process at a time, nice -n 5)
    python benchmarks/bfcl.py --pool benchmarks/data/bfcl_pool_sample.json \\
        --categories simple_python multiple --constructions default --log-dir L12
    # then the questions, on the same cases, against those logs
    python benchmarks/bfcl_extract.py --logs L12 --jsonl extract.jsonl

Issue #22, eighth round, step 1 (docs/bfcl.md, "Eighth round"). The arguments stage
writes a tool's whole JSON object with each free string held to the request's spans
(`guided.arguments.grounded_parameters`), and SmolLM2-135M often picks the wrong span.
This script asks instead one narrow question per required free string, a single chat
turn such as::

    Request: Find a lawyer in constitutional law in New York.
    The field of law (The field of law the lawyer specializes in.) is:

whose reply is held to the same candidate spans (a JSON string enum, as every guided
stage is held), and counts how often that choice is acceptable (BFCL's possible
answers, compared the way BFCL's ``string_checker`` compares) against how often main's
construction's final call held an acceptable value (read from the eval logs of a run of
main's construction: the ``tool_call`` events).

An *item* is one required free string (`arguments.free_strings`, a plain string: no
enum, format or pattern, not an array) of a case's right call whose acceptable value is
one of the candidate spans the arguments stage is held to: only there can either
method be right. Items are counted per case id; a case whose log holds no call of the
right function still counts (main did not get the value), and is also reported apart,
since the question assumes the right function.

Variants (``--variants``): ``name`` (the parameter's words, then its description in
brackets), ``desc`` (the description first, then the parameter's words), ``others``
(``name`` with the other arguments main's call already holds, when it holds any), and
``typed`` (``name`` with the candidates limited by type fit: spans that are only a
number or only the parameter's own words left out, as `distinct` does). ``short``
(``desc``'s wording, the ``typed`` candidates of at most four words) was added after
the first four were measured (docs/bfcl.md, eighth round: the question picked whole
clauses), so it is exploratory, not under the round's rule; so is ``keyed`` (``short``
with the reply a JSON object whose one key is the parameter's name, ``{"field_of_law":
"..."}``: whether writing the parameter's name first, as the arguments stage does,
avoids copying the request from its first word), and ``tooled`` (``keyed`` with a first
line "Tool: <name>: <description>", the context the arguments stage has).

Tune data only: it refuses logs that hold a held-out case (split.json's holdout ids,
any live id, a live-like holdout id), since it prints each item.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VARIANTS = ("name", "desc", "others", "typed", "short", "keyed", "tooled")
_SHORT_WORDS = 4
_FLOAT_NOTE = " This is a float type value."
_BFCL_PUNCT = re.compile(r"[ \,\.\/\-\_\*\^]")


def standardized(value: str) -> str:
    """A string as BFCL's ``string_checker`` compares it (spaces and ",./-_*^" removed,
    lower case, single quotes as double): "New York" and "new-york" are one answer."""
    return _BFCL_PUNCT.sub("", value).lower().replace("'", '"')


def acceptable(value: Any, answers: Sequence[Any]) -> bool:
    """Whether `value` is one of a parameter's possible answers (strings only)."""
    if not isinstance(value, str):
        return False
    return standardized(value) in {standardized(a) for a in answers if isinstance(a, str)}


def parameter_words(name: str) -> str:
    """A parameter's name as words: ``field_of_law`` "field of law", ``roomType``
    "room type", ``team.name`` "team name"."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return " ".join(re.sub(r"[_.\-]+", " ", spaced).lower().split())


def description_of(prop: dict[str, Any]) -> str:
    """A parameter's description without BFCL's float note, on one line."""
    text = str(prop.get("description") or "").replace(_FLOAT_NOTE, "")
    return " ".join(text.split())


def question_text(
    query: str,
    name: str,
    prop: dict[str, Any],
    variant: str = "name",
    others: dict[str, Any] | None = None,
    tool: str = "",
) -> str:
    """The one user turn asking for `name`'s value in `query` (see the module doc);
    `tool` (``tooled``): the tool's name and description, shown first."""
    words = parameter_words(name)
    description = description_of(prop)
    lines = [f"Tool: {tool}"] if variant == "tooled" and tool else []
    lines.append(f"Request: {query.strip()}")
    if variant == "others" and others:
        known = ", ".join(f"{parameter_words(k)} = {json.dumps(v)}" for k, v in others.items())
        lines.append(f"Known: {known}")
    if variant in ("desc", "short", "keyed", "tooled"):
        lines.append(f"{description} The {words} is:" if description else f"The {words} is:")
    else:
        lines.append(f"The {words} ({description}) is:" if description else f"The {words} is:")
    return "\n".join(lines)


def typed_candidates(name: str, candidates: Sequence[str]) -> list[str]:
    """Candidates a string parameter's value can be: not only a number ("2022/08/16" is
    kept: a date is a string), not only the parameter's own words ("law" for
    ``field_of_law``). The full list when that would leave none."""
    own = set(parameter_words(name).split())
    kept = [
        c
        for c in candidates
        if not re.fullmatch(r"[\d.,]+", c) and not set(c.lower().split()) <= own
    ]
    return kept or list(candidates)


def short_candidates(name: str, candidates: Sequence[str]) -> list[str]:
    """`typed_candidates` of at most four words: a required string is a name or a
    phrase, not a clause (the narrow question picked the whole request as a value in
    over half its misses with the clauses offered). The full list when none is left."""
    short = [c for c in candidates if len(c.split()) <= _SHORT_WORDS]
    return typed_candidates(name, short) if short else list(candidates)


def question_schema(candidates: Sequence[str], key: str | None = None) -> dict[str, Any]:
    """The reply's schema: one of the candidate spans, as a JSON string, or (`key`) as
    the one property of a JSON object named by the parameter."""
    held = {"type": "string", "enum": list(dict.fromkeys(candidates))}
    if key is None:
        return held
    return {
        "type": "object",
        "properties": {key: held},
        "required": [key],
        "additionalProperties": False,
    }


@dataclass(frozen=True, slots=True)
class Item:
    """One required free string of a right call, its candidates and acceptable values."""

    case_id: str
    function: str
    name: str
    prop: dict[str, Any]
    answers: tuple[Any, ...]
    candidates: tuple[str, ...]


def items_of(case: Any) -> list[Item]:
    """The items of one case (see the module doc): its right call's first function."""
    from pilothouse.guided.arguments import free_strings, grounded_parameters
    from pilothouse.models.base import ToolSpec
    from pilothouse_suites.bfcl import to_parameters

    if case.irrelevant or not case.ground_truth:
        return []
    functions = {f["name"]: f for f in case.functions}
    (fname, truth), *_ = case.ground_truth[0].items()
    function = functions.get(fname)
    if function is None:
        return []
    spec = ToolSpec(fname, str(function.get("description", "")), to_parameters(function))
    parameters = spec.parameters or {}
    required = set(parameters.get("required") or ())
    held = grounded_parameters(spec, case.question)
    if held is None:
        return []
    out = []
    for name in free_strings(spec):
        prop = parameters["properties"][name]
        candidates = held["properties"][name].get("enum")
        if name not in required or prop.get("type") != "string" or not candidates:
            continue
        answers = tuple(truth.get(name) or ())
        if not any(acceptable(c, answers) for c in candidates):
            continue
        out.append(Item(case.id, fname, name, prop, answers, tuple(candidates)))
    return out


def _case(case_id: str) -> Any:
    from pilothouse_suites.bfcl import LIVELIKE_CATEGORIES, livelike_cases, load_category

    for category in LIVELIKE_CATEGORIES:
        cases = livelike_cases(category)
        if case_id in cases:
            return cases[case_id]
    return load_category(case_id.rsplit("_", 1)[0])[case_id]


def _held_out(case_id: str) -> bool:
    from pilothouse_suites.bfcl import LIVE, livelike_ids, split

    if any(case_id in parts.get("holdout", ()) for parts in split().values()):
        return True
    if case_id.startswith("live_") or any(case_id.startswith(c) for c in LIVE):
        return True
    return any(
        case_id in livelike_ids(c, "holdout") for c in ("livelike_simple", "livelike_irrelevance")
    )


def logged_calls(log_dir: Path) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """{case id: [(function, arguments), ...]} of each sample in the eval logs."""
    out: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for path in sorted(log_dir.glob("*.json")):
        for sample in json.loads(path.read_text())["samples"]:
            case_id = sample["scenario"]
            if _held_out(case_id):
                raise SystemExit(f"{path}: holds a held-out case; not read")
            out[case_id] = [
                (e["call"]["name"], e["call"]["arguments"])
                for e in sample["events"]
                if e.get("type") == "tool_call"
            ]
    return out


async def ask(
    model: Any, text: str, candidates: Sequence[str], key: str | None = None
) -> tuple[str | None, int]:
    """The model's reply to one question held to `candidates` (None: cut off), and the
    tokens it generated; `key`: the reply is the object `question_schema` makes."""
    from pilothouse.exceptions import ModelOutputError
    from pilothouse.messages import Message
    from pilothouse.models.base import ModelRequest, ModelSettings

    request = ModelRequest(
        [Message("user", text)],
        output_schema=question_schema(candidates, key),
        settings=ModelSettings(temperature=0.0, max_tokens=160),
    )
    try:
        response = await model.generate(request)
    except ModelOutputError:
        return None, 0
    value = json.loads(response.text)
    if key is not None and isinstance(value, dict):
        value = value.get(key)
    return (value if isinstance(value, str) else None), response.usage.output_tokens


async def measure(
    log_dirs: Sequence[Path],
    variants: Sequence[str],
    jsonl: Path | None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """One row per item and variant: main's value, the question's, each acceptable."""
    from pilothouse.models.local import LocalModel

    model = LocalModel()
    rows = []
    for log_dir in log_dirs:
        calls = logged_calls(log_dir)
        for case_id in sorted(calls)[:limit]:
            case = _case(case_id)
            for item in items_of(case):
                made = [a for n, a in calls[case_id] if n == item.function]
                main_value = made[0].get(item.name) if made else None
                others = {k: v for k, v in (made[0] if made else {}).items() if k != item.name}
                for variant in variants:
                    candidates = list(item.candidates)
                    if variant == "typed":
                        candidates = typed_candidates(item.name, candidates)
                    elif variant in ("short", "keyed", "tooled"):
                        candidates = short_candidates(item.name, candidates)
                    function = next(f for f in case.functions if f["name"] == item.function)
                    tool = (
                        f"{item.function}: {' '.join(str(function.get('description', '')).split())}"
                    )
                    text = question_text(case.question, item.name, item.prop, variant, others, tool)
                    began = time.perf_counter()
                    key = item.name if variant in ("keyed", "tooled") else None
                    chosen, tokens = await ask(model, text, candidates, key)
                    row = {
                        "set": log_dir.name,
                        "case": case_id,
                        "parameter": item.name,
                        "variant": variant,
                        "right_function": bool(made),
                        "main": main_value,
                        "main_ok": acceptable(main_value, item.answers),
                        "question": chosen,
                        "question_ok": acceptable(chosen, item.answers),
                        "answers": [a for a in item.answers if isinstance(a, str)],
                        "candidates": len(candidates),
                        "seconds": round(time.perf_counter() - began, 3),
                        "tokens": tokens,
                        "load": round(os.getloadavg()[0], 2),
                    }
                    rows.append(row)
                    if jsonl is not None:
                        with jsonl.open("a", encoding="utf-8") as out:
                            out.write(json.dumps(row) + "\n")
                    print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def summary(rows: Sequence[dict[str, Any]]) -> str:
    """Per set and variant: items, main right, question right, both ways they differ."""
    cells: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        cells[(r["set"], r["variant"])].append(r)
    lines = [
        "| set | variant | items | main right | question right | question only | main only "
        "| on the right function: items, main, question | mean s a question | load |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for (name, variant), got in sorted(cells.items()):
        n = len(got)
        main = sum(r["main_ok"] for r in got)
        question = sum(r["question_ok"] for r in got)
        gained = sum(r["question_ok"] and not r["main_ok"] for r in got)
        lost = sum(r["main_ok"] and not r["question_ok"] for r in got)
        on = [r for r in got if r["right_function"]]
        on_cell = f"{len(on)}, {sum(r['main_ok'] for r in on)}, {sum(r['question_ok'] for r in on)}"
        seconds = sum(r["seconds"] for r in got) / n
        loads = [r["load"] for r in got]
        lines.append(
            f"| {name} | {variant} | {n} | {main} | {question} | {gained} | {lost} | {on_cell} "
            f"| {seconds:.2f} | {min(loads):.1f}-{max(loads):.1f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", nargs="+", type=Path, default=[])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--jsonl", type=Path, help="append each row here as it finishes")
    parser.add_argument("--report", nargs="+", type=Path, help="the table from such files")
    parser.add_argument("--limit", type=int, help="the first N cases of each log directory")
    parser.add_argument("--count", action="store_true", help="only count the items")
    args = parser.parse_args()
    if args.report:
        rows = [json.loads(x) for f in args.report for x in f.read_text().splitlines() if x]
        print(summary(rows))
        return 0
    if args.count:
        for log_dir in args.logs:
            calls = logged_calls(log_dir)
            found = Counter(i.case_id.rsplit("_", 1)[0] for c in calls for i in items_of(_case(c)))
            print(f"{log_dir}: {len(calls)} cases, items {dict(found)}")
        return 0
    rows = asyncio.run(measure(args.logs, args.variants, args.jsonl, args.limit))
    print(summary(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
