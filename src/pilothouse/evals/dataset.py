"""Datasets, solvers and scorers: the second way to write scenarios.

A dataset is a list of samples (an input and a target, from JSONL or YAML); the
solver is the agent a suite builds for the model under evaluation; scorers decide
whether one answer is acceptable. `dataset_scenarios` turns each sample into a
`Scenario` that runs the agent on the input and fails (AssertionError) when any
scorer rejects the answer, so both forms share one runner and one report::

    samples = load_dataset("questions.jsonl")       # {"input": ..., "target": ...} per line
    scenarios = dataset_scenarios("facts", samples, [contains(), trajectory(["search"])],
                                  tools=[search], instructions="Answer from the search tool.")

Scorers: `exact`, `contains`, `numeric`, `regex`, `json_schema`, `trajectory`,
`custom` (any function) and `llm_judge` (another Pilothouse model grades the answer).
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pilothouse.evals.scenario import (
    EvalContext,
    NumberRule,
    Oracle,
    Scenario,
    Steps,
    normalize_answer,
    number_matches,
    output_text,
)
from pilothouse.exceptions import ConfigurationError
from pilothouse.jsonschema_check import compile_schema
from pilothouse.models.base import Model
from pilothouse.prompts import Prompts
from pilothouse.runtime.loop import RunResult
from pilothouse.tools.tool import Tool, ToolFunction


@dataclass(slots=True)
class Sample:
    """One dataset row: what the agent is asked and what a good answer is."""

    input: str
    target: Any = None
    id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Score:
    """A scorer's verdict on one answer; `explanation` says why when it fails."""

    ok: bool
    value: float = 0.0
    explanation: str = ""

    @classmethod
    def of(cls, ok: bool, explanation: str = "") -> Score:
        return cls(ok, 1.0 if ok else 0.0, explanation)


@dataclass(slots=True)
class Answer:
    """What a scorer looks at: the sample, the answer text, the run and its journal."""

    sample: Sample
    text: str
    result: RunResult[Any]
    steps: Steps


Scorer = Callable[[Answer], "Score | Awaitable[Score]"]


def load_dataset(path: str | Path) -> list[Sample]:
    """Read samples from a ``.jsonl`` file or a ``.yaml``/``.yml`` list of mappings.

    Each record needs ``input``; ``target``, ``id`` and ``metadata`` are optional
    (ids default to the row number).
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    records: list[Any]
    if path.suffix in (".yaml", ".yml"):
        import yaml  # type: ignore[import-untyped,unused-ignore]

        loaded = yaml.safe_load(text)
        records = loaded if isinstance(loaded, list) else (loaded or {}).get("samples", [])
    elif path.suffix in (".jsonl", ".ndjson"):
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ConfigurationError(f"{path}:{number}: not JSON ({exc})") from None
    else:
        raise ConfigurationError(f"dataset {path}: use a .jsonl or .yaml file")
    return samples_from_records(records, str(path))


def samples_from_records(records: Iterable[Any], source: str = "dataset") -> list[Sample]:
    """Validate plain mappings into samples."""
    samples = []
    for index, r in enumerate(records, 1):
        if not isinstance(r, dict) or not isinstance(r.get("input"), str):
            raise ConfigurationError(f"{source}: record {index} needs a string 'input'")
        samples.append(
            Sample(r["input"], r.get("target"), str(r.get("id") or index), r.get("metadata") or {})
        )
    return samples


def _targets(answer: Answer, target: Any) -> list[Any]:
    value = answer.sample.target if target is None else target
    return list(value) if isinstance(value, (list, tuple)) else [value]


def exact(target: Any = None) -> Scorer:
    """The answer equals the target (or one of a list), ignoring case, commas, spaces."""

    def score(answer: Answer) -> Score:
        wanted = _targets(answer, target)
        ok = any(
            normalize_answer(answer.text).strip(" .") == normalize_answer(str(t)).strip(" .")
            for t in wanted
        )
        return Score.of(ok, "" if ok else f"expected exactly one of {wanted}")

    return score


def contains(target: Any = None, *, all_of: bool = True) -> Scorer:
    """The answer contains the target text (every item of a list, or any with all_of=False)."""

    def score(answer: Answer) -> Score:
        wanted = [str(t) for t in _targets(answer, target)]
        found = [t for t in wanted if normalize_answer(t) in normalize_answer(answer.text)]
        ok = len(found) == len(wanted) if all_of else bool(found)
        missing = [t for t in wanted if t not in found]
        return Score.of(ok, "" if ok else f"the answer does not contain {missing}")

    return score


def numeric(
    target: float | None = None,
    *,
    rel_tol: float = 1e-6,
    abs_tol: float = 1e-9,
    which: NumberRule = "last",
) -> Scorer:
    """The answer's last number (``which="any"``: some number) equals the target within
    the tolerances (see `number_matches`)."""

    def score(answer: Answer) -> Score:
        value = float(answer.sample.target if target is None else target)
        ok = number_matches(answer.text, value, rel_tol=rel_tol, abs_tol=abs_tol, which=which)
        return Score.of(ok, "" if ok else f"no number within tolerance of {value} ({which})")

    return score


def regex(pattern: str | None = None, flags: int = re.IGNORECASE) -> Scorer:
    """The answer matches the pattern (default: the sample's target as a pattern)."""

    def score(answer: Answer) -> Score:
        wanted = str(answer.sample.target) if pattern is None else pattern
        ok = re.search(wanted, answer.text, flags) is not None
        return Score.of(ok, "" if ok else f"the answer does not match /{wanted}/")

    return score


def json_schema(schema: dict[str, Any]) -> Scorer:
    """The answer is JSON valid against a JSON schema (`pilothouse.jsonschema_check`).

    The schema is compiled once, when the scorer is made: a malformed one raises
    `SchemaError` there rather than failing every sample.
    """
    check = compile_schema(schema)

    def score(answer: Answer) -> Score:
        try:
            value = json.loads(answer.text)
        except json.JSONDecodeError as exc:
            return Score.of(False, f"the answer is not JSON: {exc}")
        problem = check(value)
        return Score.of(problem is None, problem or "")

    return score


def trajectory(
    tools: Sequence[str | tuple[str, dict[str, Any]]], *, mode: str = "in_order"
) -> Scorer:
    """The run's tool calls match: ``exact`` (the same sequence), ``in_order`` (these
    calls as a subsequence) or ``any_order`` (each present). An item may be a name or
    (name, arguments) where the given arguments must match."""
    if mode not in ("exact", "in_order", "any_order"):
        raise ConfigurationError("trajectory mode must be 'exact', 'in_order' or 'any_order'")
    wanted = [(t, {}) if isinstance(t, str) else t for t in tools]

    def matches(call_name: str, args: dict[str, Any], want: tuple[str, dict[str, Any]]) -> bool:
        name, expected = want
        return call_name == name and all(args.get(k) == v for k, v in expected.items())

    def score(answer: Answer) -> Score:
        calls = [(c.name, c.arguments) for c in answer.steps.calls]
        if mode == "exact":
            ok = len(calls) == len(wanted) and all(
                matches(n, a, w) for (n, a), w in zip(calls, wanted, strict=True)
            )
        elif mode == "any_order":
            ok = all(any(matches(n, a, w) for n, a in calls) for w in wanted)
        else:
            i = 0
            for n, a in calls:
                if i < len(wanted) and matches(n, a, wanted[i]):
                    i += 1
            ok = i == len(wanted)
        seen = [n for n, _ in calls]
        return Score.of(ok, "" if ok else f"expected calls {wanted} ({mode}); got {seen}")

    return score


def custom(function: Callable[[Answer], Any]) -> Scorer:
    """Any function of the `Answer`: its truthiness (or a returned `Score`) decides."""

    async def score(answer: Answer) -> Score:
        value = function(answer)
        if inspect.isawaitable(value):
            value = await value
        if isinstance(value, Score):
            return value
        name = getattr(function, "__name__", "custom scorer")
        return Score.of(bool(value), "" if value else f"{name} rejected the answer")

    return score


def llm_judge(
    model: Model | str, *, rubric: str | None = None, prompts: Prompts | None = None
) -> Scorer:
    """Another model grades the answer: its reply must start with PASS or FAIL.

    The judge's instructions are `rubric` (default: the ``judge_rubric`` prompt) and
    what it is asked is the ``judge_question`` prompt, both from `prompts` (default:
    `Prompts.default()`, i.e. ``prompts.toml``).

    The judge is an ordinary Pilothouse agent (no tools), so its runs are journaled
    like any other; test it with a `ScriptedModel`.
    """
    from pilothouse.agent import Agent

    texts = prompts or Prompts.default()
    instructions = texts.text("judge_rubric") if rubric is None else rubric

    async def score(answer: Answer) -> Score:
        judge = Agent(model, instructions, name="judge", max_steps=2, store=":memory:")
        prompt = texts.render(
            "judge_question",
            question=answer.sample.input,
            reference=answer.sample.target,
            answer=answer.text,
        )
        result = await judge.run(prompt)
        verdict = output_text(result).strip()
        head = verdict.lstrip("*# ").upper()
        if head.startswith("PASS"):
            return Score(True, 1.0, verdict)
        if head.startswith("FAIL"):
            return Score(False, 0.0, f"judge: {verdict}")
        return Score(False, 0.0, f"judge gave no PASS/FAIL verdict: {verdict[:200]!r}")

    return score


def dataset_scenarios(
    name: str,
    samples: Sequence[Sample],
    scorers: Sequence[Scorer],
    *,
    tools: Iterable[Tool | ToolFunction] = (),
    instructions: str = "",
    tags: Iterable[str] = (),
    oracles: dict[str, Oracle] | None = None,
) -> list[Scenario]:
    """One `Scenario` per sample (named ``name/id``): run the agent, apply every scorer."""
    if not scorers:
        raise ConfigurationError(f"dataset {name!r} needs at least one scorer")
    tool_list = list(tools)

    def make(sample: Sample) -> Scenario:
        async def solve(ctx: EvalContext) -> None:
            result = await ctx.run(sample.input)
            text = output_text(result)  # raises RunStopped when the run did not finish
            answer = Answer(sample, text, result, ctx.steps(result))
            failures = []
            for scorer in scorers:
                verdict = scorer(answer)
                if inspect.isawaitable(verdict):
                    verdict = await verdict
                assert isinstance(verdict, Score)
                if not verdict.ok:
                    failures.append(verdict.explanation or "rejected")
            if failures:
                raise AssertionError("; ".join(failures) + f" (answer: {text[:200]!r})")

        return Scenario(
            f"{name}/{sample.id}",
            solve,
            tool_list,
            instructions,
            sample.input[:80],
            sample.input,
            tuple(tags),
            (oracles or {}).get(sample.id),
        )

    return [make(s) for s in samples]
