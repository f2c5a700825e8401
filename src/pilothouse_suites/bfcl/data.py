"""BFCL's cases, answers and function docs, read from the installed `bfcl-eval` package.

The data files (``bfcl_eval/data/BFCL_v4_<category>.json`` and
``possible_answer/BFCL_v4_<category>.json``, one JSON object a line) are the
package's own; nothing is copied into Pilothouse but the ids of the sampled cases
(`split.json`). A BFCL function doc is Gorilla's dialect of JSON Schema (types such
as ``dict``, ``float``, ``tuple``, ``any``); `to_parameters` converts it to the JSON
Schema a Pilothouse tool declares, as BFCL converts it for the function-calling
models it evaluates (`bfcl_eval.model_handler.utils.convert_to_tool`).
"""

from __future__ import annotations

import copy
import importlib.util
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from pilothouse.exceptions import ConfigurationError

VERSION = "2026.3.23"
CATEGORIES = (
    "simple_python",
    "multiple",
    "parallel",
    "parallel_multiple",
    "irrelevance",
    "live_simple",
    "live_multiple",
    "live_irrelevance",
)
# The live categories are user-contributed functions: another distribution, held out
# as a whole (issue #22's held-out discipline).
LIVE = frozenset(c for c in CATEGORIES if c.startswith("live_"))
INSTALL_HINT = (
    f"the BFCL suites need the bfcl-eval package ({VERSION}): "
    f"pip install 'pilothouse[bfcl]', or, without its heavy dependencies (torch, model "
    f"clients) which the suites do not use, pip install --no-deps 'bfcl-eval=={VERSION}'"
)


def available() -> bool:
    """Whether `bfcl_eval` can be found (without importing it)."""
    return importlib.util.find_spec("bfcl_eval") is not None


def require_bfcl() -> None:
    """Raise a `ConfigurationError` naming the package when it is not installed."""
    if not available():
        raise ConfigurationError(INSTALL_HINT)


@dataclass(frozen=True, slots=True)
class Case:
    """One single-turn BFCL case: the request, the functions offered, the answers."""

    id: str
    category: str
    system: str  # system messages of the case, joined (live cases carry some)
    question: str  # the user's request
    functions: tuple[dict[str, Any], ...]  # BFCL's function docs, as published
    ground_truth: tuple[dict[str, dict[str, list[Any]]], ...]  # () for irrelevance

    @property
    def irrelevant(self) -> bool:
        """Whether the right answer is to call nothing."""
        return "irrelevance" in self.category


def _data_dir() -> Path:
    require_bfcl()
    return Path(str(resources.files("bfcl_eval") / "data"))


def _lines(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _messages(case_id: str, question: Any) -> tuple[str, str]:
    """(system text, user request) of a single-turn case; others are unsupported."""
    turns = question if isinstance(question, list) else []
    if len(turns) != 1 or not isinstance(turns[0], list):
        raise ConfigurationError(f"BFCL case {case_id}: not a single-turn case")
    system = [m["content"] for m in turns[0] if m.get("role") == "system"]
    others = [m for m in turns[0] if m.get("role") != "system"]
    if len(others) != 1 or others[0].get("role") != "user":
        raise ConfigurationError(f"BFCL case {case_id}: not a single user message")
    return "\n\n".join(system), str(others[0]["content"])


@cache
def load_category(category: str) -> dict[str, Case]:
    """Every single-turn case of `category` (by id), with its possible answers."""
    if category not in CATEGORIES:
        raise ConfigurationError(
            f"BFCL category {category!r} is not one of {', '.join(CATEGORIES)}"
        )
    data = _data_dir()
    answers: dict[str, list[Any]] = {}
    answer_file = data / "possible_answer" / f"BFCL_v4_{category}.json"
    if answer_file.exists():
        answers = {a["id"]: a["ground_truth"] for a in _lines(answer_file)}
    cases: dict[str, Case] = {}
    for record in _lines(data / f"BFCL_v4_{category}.json"):
        try:
            system, question = _messages(record["id"], record["question"])
        except ConfigurationError:
            continue  # multi-message cases are outside a one-turn harness
        truth = answers.get(record["id"], [])
        if "irrelevance" not in category and not truth:
            raise ConfigurationError(f"BFCL case {record['id']}: no possible answer")
        cases[record["id"]] = Case(
            record["id"],
            category,
            system,
            question,
            tuple(record["function"]),
            tuple(truth),
        )
    return cases


# ---------------------------------------------------------------------------
# Function docs -> JSON Schema (BFCL's GORILLA_TO_OPENAPI mapping, applied at every
# depth: BFCL's own converter stops at lists of lists; the types it maps are the same).

_TYPES = {
    "integer": "integer",
    "number": "number",
    "float": "number",
    "string": "string",
    "boolean": "boolean",
    "bool": "boolean",
    "array": "array",
    "list": "array",
    "dict": "object",
    "object": "object",
    "tuple": "array",
    "any": "string",
}
FLOAT_NOTE = " This is a float type value."  # what BFCL tells FC models of a float


def _convert(schema: dict[str, Any]) -> dict[str, Any]:
    out = dict(schema)
    kind = schema.get("type")
    if kind == "float":
        out["format"] = "float"
        out["description"] = str(schema.get("description", "")) + FLOAT_NOTE
    out["type"] = _TYPES.get(kind, "string") if isinstance(kind, str) else "string"
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {k: _convert(v) for k, v in schema["properties"].items()}
    if isinstance(schema.get("items"), dict):
        out["items"] = _convert(schema["items"])
    return out


def to_parameters(function: dict[str, Any]) -> dict[str, Any]:
    """A BFCL function doc's ``parameters`` as the JSON Schema of a tool's arguments."""
    params = copy.deepcopy(function.get("parameters") or {})
    properties = params.get("properties") or {}
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {k: _convert(v) for k, v in properties.items()},
    }
    required = [r for r in params.get("required") or [] if r in properties]
    if required:
        schema["required"] = required
    return schema


# ---------------------------------------------------------------------------
# The fixed sample and its tune/holdout split (drawn once by `draw_split`, kept in
# split.json next to this module; never redrawn).

SPLIT_FILE = Path(__file__).with_name("split.json")


@cache
def split() -> dict[str, dict[str, list[str]]]:
    """{category: {"tune": [ids], "holdout": [ids]}} from split.json."""
    data: dict[str, Any] = json.loads(SPLIT_FILE.read_text(encoding="utf-8"))
    return {k: v for k, v in data["categories"].items()}


def sample_ids(category: str, part: str = "sample") -> list[str]:
    """The case ids of `part`: sample (tune + holdout), tune, holdout, or all."""
    if part == "all":
        return list(load_category(category))
    parts = split().get(category)
    if parts is None:
        raise ConfigurationError(f"BFCL category {category!r} has no recorded sample")
    if part == "sample":
        return [*parts["tune"], *parts["holdout"]]
    if part not in ("tune", "holdout"):
        raise ConfigurationError(f"BFCL part {part!r}: use sample, tune, holdout or all")
    return list(parts[part])


def draw_split(size: int = 40, seed: int = 22) -> dict[str, Any]:
    """The split as first drawn (seeded): `size` cases per category, half tune, half
    holdout; a live category's all holdout. Kept for the record; split.json is truth."""
    import random

    categories: dict[str, dict[str, list[str]]] = {}
    for category in CATEGORIES:
        ids = sorted(load_category(category))
        chosen = random.Random(f"{seed}:{category}").sample(ids, min(size, len(ids)))
        cut = 0 if category in LIVE else len(chosen) // 2
        categories[category] = {"tune": chosen[:cut], "holdout": chosen[cut:]}
    return {"bfcl_eval": VERSION, "seed": seed, "size": size, "categories": categories}


# ---------------------------------------------------------------------------
# The tune pool: every non-live case outside the holdout ids. Rules are counted on it
# without the model; a fixed sample of it (drawn once by `draw_pool_sample`, kept in
# benchmarks/data/) is run with the model, so a rule is judged on more than 20 cases.


def pool_ids(category: str) -> list[str]:
    """The tune pool of a non-live `category`: its ids outside split.json's holdout."""
    if category in LIVE:
        raise ConfigurationError(f"BFCL category {category!r} is held out as a whole")
    holdout = set(split().get(category, {}).get("holdout", ()))
    return [i for i in load_category(category) if i not in holdout]


def draw_pool_sample(
    sizes: dict[str, int], seed: int = 12, exclude: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """A seeded sample of each category's tune pool, without its 20 tune ids (those are
    run and read already): `sizes` ids per category, drawn from the sorted pool. A later
    sample gives the earlier samples' ids as `exclude`, so it is fresh too (a rule fitted
    to one sample is judged on the other)."""
    import random

    categories: dict[str, list[str]] = {}
    for category, size in sizes.items():
        seen = set(split().get(category, {}).get("tune", ()))
        seen |= set((exclude or {}).get(category, ()))
        ids = sorted(i for i in pool_ids(category) if i not in seen)
        categories[category] = random.Random(f"pool:{seed}:{category}").sample(
            ids, min(size, len(ids))
        )
    drawn: dict[str, Any] = {
        "bfcl_eval": VERSION,
        "seed": seed,
        "rule": "pool = non-live ids outside split.json's holdout and tune; "
        "random.Random(f'pool:{seed}:{category}').sample(sorted(pool), size)",
        "sizes": sizes,
        "categories": categories,
    }
    if exclude:
        drawn["rule"] = drawn["rule"].replace("and tune;", "and tune and `exclude`;")
        drawn["exclude"] = exclude
    return drawn
