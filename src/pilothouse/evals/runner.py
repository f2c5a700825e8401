"""The runner: scenarios x models x epochs, concurrent, with per-sample budgets.

    log = await run_eval(suite, ["local", "openai:gpt-4o-mini"], epochs=20)

Each sample runs its scenario once on a fresh agent (the suite's agent factory, the
model under evaluation, the per-sample `Budget`) whose journal goes to the
evaluation's store (one SQLite file next to the log, or in memory). The sample's
events are then copied into the `EvalLog`, classified, and summed up per cell
(scenario, model): success rate, pass@k, pass^k, tokens, cost, latency.

Failure kinds, first match wins:

- ``model_error``: the model raised a `ModelError` (except `ModelOutputError`), or a
  run ended with an ``error`` event the scenario did not catch;
- ``policy_block``: a run stopped by the policy (outcome ``policy_stop``) or paused
  for a person's approval (outcome ``paused``: no person answers during an
  evaluation), or the scenario failed after a tool call was denied (a ``deny``
  decision on a ``tool_call`` event or a ``policy_decision`` event);
- ``budget_stop``: a budget or the loop detector stopped a run;
- ``parse_failure``: the model's reply was unusable (`ModelOutputError`: cut off,
  not the promised JSON), the final answer never validated (``output_invalid``), or
  the scenario failed after a reply could not be parsed (``parse_failed`` events,
  tool calls with a ``parse_error``);
- ``assertion``: the scenario's own check failed;
- ``error``: anything else (a bug in the scenario or a tool).
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pilothouse.evals.scenario import AgentFactory, EvalContext, Scenario, usage_of
from pilothouse.events import Outcome
from pilothouse.exceptions import (
    ConfigurationError,
    ModelError,
    ModelOutputError,
    RunStopped,
    UnknownModelError,
)
from pilothouse.models.base import Model
from pilothouse.models.registry import register_model, resolve_model
from pilothouse.runtime.budget import Budget
from pilothouse.runtime.journal import MemoryStore, SQLiteStore, Store

FAILURE_KINDS = (
    "assertion",
    "parse_failure",
    "budget_stop",
    "model_error",
    "policy_block",
    "error",
)
LOG_VERSION = 1


def default_agent_factory(scenario: Scenario, model: Model, budget: Budget, store: Store) -> Any:
    """The plain construction: the scenario's tools, instructions and policy on the model."""
    from pilothouse.agent import Agent

    return Agent(
        model,
        scenario.instructions,
        scenario.tools,
        name=scenario.name,
        budget=budget,
        store=store,
        policy=scenario.policy,
    )


@dataclass(slots=True)
class Suite:
    """A named list of scenarios plus how to build their agent and the default budget."""

    name: str
    scenarios: list[Scenario]
    agent_factory: AgentFactory = default_agent_factory
    budget: Budget = field(default_factory=lambda: Budget(max_steps=6, max_seconds=120))
    description: str = ""

    def __post_init__(self) -> None:
        names = [s.name for s in self.scenarios]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigurationError(f"suite {self.name!r}: duplicate scenario names {duplicates}")


@dataclass(slots=True)
class SampleRecord:
    """One scenario run on one model in one epoch, with its journal events."""

    scenario: str
    model: str
    epoch: int
    ok: bool
    failure: str | None = None  # one of FAILURE_KINDS
    message: str = ""
    output: Any = None
    run_ids: list[str] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None
    latency: float = 0.0
    events: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "model": self.model,
            "epoch": self.epoch,
            "ok": self.ok,
            "failure": self.failure,
            "message": self.message,
            "output": self.output,
            "run_ids": self.run_ids,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost": self.cost,
            "latency": self.latency,
            "events": self.events,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SampleRecord:
        return cls(
            d["scenario"],
            d["model"],
            int(d["epoch"]),
            bool(d["ok"]),
            d.get("failure"),
            d.get("message", ""),
            d.get("output"),
            list(d.get("run_ids", [])),
            int(d.get("input_tokens", 0)),
            int(d.get("output_tokens", 0)),
            d.get("cost"),
            float(d.get("latency", 0.0)),
            list(d.get("events", [])),
        )


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples (drawn from n with c correct) passes."""
    if k > n:
        raise ValueError(f"k={k} is larger than the number of samples n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float:
    """pass^k for one task: probability that all of k samples pass, C(c,k)/C(n,k)."""
    if k > n:
        raise ValueError(f"k={k} is larger than the number of samples n={n}")
    return math.comb(c, k) / math.comb(n, k)


def mean_pass_hat_k(counts: Sequence[tuple[int, int]], k: int) -> float:
    """pass^k over tasks: the mean of C(c,k)/C(n,k) over (n, c) pairs."""
    if not counts:
        return 0.0
    return sum(pass_hat_k(n, c, k) for n, c in counts) / len(counts)


def k_values(n: int) -> list[int]:
    """The k reported for n samples per task: 1, 2, 5, 10, 20 and n, up to n."""
    return sorted({k for k in (1, 2, 5, 10, 20, n) if 1 <= k <= n})


@dataclass(slots=True)
class Cell:
    """Aggregates of one (scenario, model) pair, or of a model's Total row."""

    n: int
    passed: int
    pass_hat: dict[int, float]
    pass_at: dict[int, float]
    input_tokens: int
    output_tokens: int
    cost: float | None
    latency_mean: float
    latency_p50: float
    failures: dict[str, int]

    @property
    def rate(self) -> float:
        return self.passed / self.n if self.n else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "passed": self.passed,
            "rate": self.rate,
            "pass_hat_k": {str(k): v for k, v in self.pass_hat.items()},
            "pass_at_k": {str(k): v for k, v in self.pass_at.items()},
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost": self.cost,
            "latency_mean": self.latency_mean,
            "latency_p50": self.latency_p50,
            "failures": self.failures,
        }


def summarize(samples: Sequence[SampleRecord]) -> Cell:
    """Aggregate samples; pass@k / pass^k are means over the scenarios they cover."""
    by_task: dict[str, list[SampleRecord]] = {}
    for s in samples:
        by_task.setdefault(s.scenario, []).append(s)
    counts = [(len(v), sum(x.ok for x in v)) for v in by_task.values()]
    smallest = min((n for n, _ in counts), default=0)
    ks = k_values(smallest) if smallest else []
    costs = [s.cost for s in samples if s.cost is not None]
    latencies = [s.latency for s in samples]
    failures: dict[str, int] = {}
    for s in samples:
        if s.failure:
            failures[s.failure] = failures.get(s.failure, 0) + 1
    return Cell(
        len(samples),
        sum(s.ok for s in samples),
        {k: mean_pass_hat_k(counts, k) for k in ks},
        {k: sum(pass_at_k(n, c, k) for n, c in counts) / len(counts) for k in ks},
        sum(s.input_tokens for s in samples),
        sum(s.output_tokens for s in samples),
        sum(costs) if costs else None,
        statistics.fmean(latencies) if latencies else 0.0,
        statistics.median(latencies) if latencies else 0.0,
        failures,
    )


@dataclass(slots=True)
class EvalLog:
    """Everything one evaluation produced; `to_dict`/`from_dict` is the JSON log."""

    suite: str
    models: list[str]
    scenarios: list[str]
    epochs: int
    samples: list[SampleRecord]
    created: float = 0.0
    finished: float = 0.0
    eval_id: str = ""
    config: dict[str, Any] = field(default_factory=dict)

    def cell(self, scenario: str, model: str) -> Cell:
        return summarize([s for s in self.samples if s.scenario == scenario and s.model == model])

    def total(self, model: str) -> Cell:
        return summarize([s for s in self.samples if s.model == model])

    def failures(self) -> list[SampleRecord]:
        return [s for s in self.samples if not s.ok]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": LOG_VERSION,
            "eval_id": self.eval_id,
            "suite": self.suite,
            "models": self.models,
            "scenarios": self.scenarios,
            "epochs": self.epochs,
            "created": self.created,
            "finished": self.finished,
            "config": self.config,
            "summary": {
                m: {
                    "total": self.total(m).to_dict(),
                    "scenarios": {sc: self.cell(sc, m).to_dict() for sc in self.scenarios},
                }
                for m in self.models
            },
            "samples": [s.to_dict() for s in self.samples],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalLog:
        if d.get("version") != LOG_VERSION:
            raise ConfigurationError(
                f"evaluation log version {d.get('version')!r} is not {LOG_VERSION}"
            )
        return cls(
            d["suite"],
            list(d["models"]),
            list(d["scenarios"]),
            int(d["epochs"]),
            [SampleRecord.from_dict(s) for s in d["samples"]],
            float(d.get("created", 0.0)),
            float(d.get("finished", 0.0)),
            d.get("eval_id", ""),
            dict(d.get("config", {})),
        )


def _denied(events: Sequence[dict[str, Any]]) -> bool:
    for e in events:
        if e.get("type") == "tool_call" and (e.get("decision") or {}).get("effect") == "deny":
            return True
        if e.get("type") == "policy_decision" and (
            e.get("effect") == "deny" or (e.get("decision") or {}).get("effect") == "deny"
        ):
            return True
    return False


def _parse_failed(events: Sequence[dict[str, Any]]) -> bool:
    for e in events:
        if e.get("type") == "parse_failed":
            return True
        if e.get("type") == "tool_call" and (e.get("call") or {}).get("parse_error"):
            return True
    return False


def classify(
    exc: BaseException | None, outcomes: Sequence[Outcome], events: Sequence[dict[str, Any]]
) -> str | None:
    """The failure kind of a sample (None when it passed); see the module docstring."""
    if exc is None and all(o == "final" for o in outcomes):
        return None
    if isinstance(exc, ModelOutputError):
        return "parse_failure"
    if isinstance(exc, ModelError):
        return "model_error"
    stop_outcome = exc.outcome if isinstance(exc, RunStopped) else None
    stops = [o for o in [*outcomes, stop_outcome] if o and o != "final"]
    if "policy_stop" in stops or "paused" in stops or (exc is not None and _denied(events)):
        return "policy_block"
    if any(o in ("budget_stop", "loop_stop") for o in stops):
        return "budget_stop"
    if "output_invalid" in stops or (exc is not None and _parse_failed(events)):
        return "parse_failure"
    if isinstance(exc, AssertionError):
        return "assertion"
    if exc is None:  # a stopped run the scenario tolerated: not a failure
        return None
    if any(e.get("type") == "error" for e in events):
        return "model_error"
    return "error"


ModelSpec = str | Model | Callable[[], Model]


def _model_label(spec: ModelSpec) -> str:
    if isinstance(spec, str):
        return spec
    if isinstance(spec, Model):
        return spec.name
    return spec().name  # a factory: its models' name


def _model_maker(spec: ModelSpec) -> Callable[[], Model]:
    """A fresh model per sample for strings and factories (scripted models keep state)."""
    if isinstance(spec, str):
        resolve_model(spec)  # fail early on a bad string
        return lambda: resolve_model(spec)
    if isinstance(spec, Model):
        return lambda: spec
    return spec


ProgressCallback = Callable[[SampleRecord], None]


async def run_eval(
    suite: Suite,
    models: Sequence[ModelSpec],
    *,
    epochs: int = 20,
    concurrency: int = 4,
    budget: Budget | None = None,
    store: Store | str | None = None,
    scenarios: Sequence[str] | None = None,
    on_sample: ProgressCallback | None = None,
    temperature: float | None = None,
) -> EvalLog:
    """Run every scenario of `suite` on every model `epochs` times; return the log.

    `store` is where the samples' journals go (a `Store`, a SQLite path, or None
    for memory). `scenarios` filters by name (substring match). `on_sample` is
    called after each sample (the CLI drives its progress bar with it).
    `temperature`, when given, samples every model call at that temperature with
    the epoch number as seed (at temperature 0 a local model's epochs are identical).
    """
    if epochs < 1:
        raise ConfigurationError("epochs must be at least 1")
    if concurrency < 1:
        raise ConfigurationError("concurrency must be at least 1")
    if not models:
        raise ConfigurationError("give at least one model")
    chosen = [s for s in suite.scenarios if not scenarios or any(f in s.name for f in scenarios)]
    if not chosen:
        raise ConfigurationError(f"no scenario of suite {suite.name!r} matches {scenarios}")
    labels = [_model_label(m) for m in models]
    if len(set(labels)) != len(labels):
        raise ConfigurationError(f"models must be distinct: {labels}")
    makers = [_model_maker(m) for m in models]
    journal: Store
    if store is None:
        journal = MemoryStore()
    elif isinstance(store, str):
        journal = SQLiteStore(store)
    else:
        journal = store
    sample_budget = budget or suite.budget
    gate = asyncio.Semaphore(concurrency)
    created = time.time()

    async def one(sc: Scenario, label: str, make: Callable[[], Model], epoch: int) -> SampleRecord:
        async with gate:
            ctx = EvalContext(
                sc,
                make(),
                budget=sample_budget,
                store=journal,
                agent_factory=suite.agent_factory,
                epoch=epoch,
                temperature=temperature,
            )
            began = time.perf_counter()
            error: BaseException | None = None
            try:
                await sc.fn(ctx)
            except Exception as exc:
                error = exc
            latency = time.perf_counter() - began
        events: list[dict[str, Any]] = []
        for run_id in ctx.run_ids:
            try:
                events.extend(e.to_dict() for e in ctx.events(run_id))
            except Exception:  # a run that failed before its first commit
                continue
        outcomes = [r.outcome for r in ctx.results]
        failure = classify(error, outcomes, events)
        usage = usage_of(events)
        output = ctx.results[-1]._output if ctx.results and ctx.results[-1].ok else None
        if output is not None and not isinstance(output, (str, int, float, bool, list, dict)):
            output = str(output)
        message = ""
        if error is not None:
            message = str(error) or type(error).__name__
            if not isinstance(error, AssertionError):
                message = f"{type(error).__name__}: {message}"
        elif failure is None and any(o != "final" for o in outcomes):
            message = "a run stopped early but the scenario accepted it"
        record = SampleRecord(
            sc.name,
            label,
            epoch,
            failure is None,
            failure,
            message,
            output,
            list(ctx.run_ids),
            usage.input_tokens,
            usage.output_tokens,
            usage.cost,
            latency,
            events,
        )
        if on_sample is not None:
            on_sample(record)
        return record

    jobs = [
        one(sc, label, make, epoch)
        for epoch in range(epochs)
        for sc in chosen
        for label, make in zip(labels, makers, strict=True)
    ]
    samples = list(await asyncio.gather(*jobs))
    samples.sort(key=lambda s: (labels.index(s.model), s.scenario, s.epoch))
    return EvalLog(
        suite.name,
        labels,
        [s.name for s in chosen],
        epochs,
        samples,
        created,
        time.time(),
        config={
            "concurrency": concurrency,
            "temperature": temperature,
            "agent_factory": getattr(suite.agent_factory, "__name__", "custom"),
            "budget": {
                "max_steps": sample_budget.max_steps,
                "max_tokens": sample_budget.max_tokens,
                "max_seconds": sample_budget.max_seconds,
                "max_cost": sample_budget.max_cost,
                "max_repeats": sample_budget.max_repeats,
            },
            "store": getattr(journal, "path", "memory"),
        },
    )


def load_suite(spec: str) -> Suite:
    """Resolve a suite's name or ``package.module:attr`` (a Suite, or a function returning one).

    Names are the suites installed packages register under the ``pilothouse.suites``
    entry point group (``builtin``, ``heldout``, ``tau-retail`` from
    ``pilothouse_suites``); the harness itself ships none.
    """
    import importlib
    import sys

    from pilothouse import plugins

    module_name, sep, attr = spec.partition(":")
    if not sep:
        named = plugins.entry_points(plugins.SUITES)
        ep = named.get(spec)
        if ep is None:
            known = ", ".join(sorted(named)) or "none installed"
            raise ConfigurationError(
                f"suite {spec!r} is neither a named suite ({known}) nor 'package.module:attribute'"
            )
        return _as_suite(spec, plugins.load(ep, f"suite {spec!r}"))
    if not module_name or not attr:
        raise ConfigurationError(
            f"suite {spec!r} must be a suite's name or 'package.module:attribute'"
        )
    sys.path.insert(0, ".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"suite {spec!r}: cannot import {module_name!r} ({exc})") from None
    finally:
        sys.path.pop(0)
    value = getattr(module, attr, None)
    if value is None:
        raise ConfigurationError(f"suite {spec!r}: {module_name!r} has no attribute {attr!r}")
    return _as_suite(spec, value)


def _as_suite(spec: str, value: Any) -> Suite:
    if callable(value) and not isinstance(value, Suite):
        value = value()
    if not isinstance(value, Suite):
        raise ConfigurationError(f"suite {spec!r} is a {type(value).__name__}, not a Suite")
    return value


def eval_paths(log_dir: str | Path, suite: str) -> tuple[Path, Path, Path]:
    """(log JSON, journal SQLite, HTML report) paths for a new evaluation."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    base = Path(log_dir) / f"{stamp}_{suite.replace('/', '_')}"
    n = 0
    candidate = base
    while candidate.with_suffix(".json").exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return (
        candidate.with_suffix(".json"),
        candidate.with_suffix(".journal.db"),
        candidate.with_suffix(".html"),
    )


def register_reference_models(
    prefix: str, oracle: Callable[[], Model], null: Callable[[], Model]
) -> None:
    """Make ``<prefix>:oracle`` and ``<prefix>:null`` model strings: a suite's self-tests.

    The oracle should score 100% and the null model 0%; `pilothouse eval SUITE -m
    <prefix>:oracle -m <prefix>:null` checks the harness itself.
    """

    def resolve(rest: str) -> Model:
        if rest == "oracle":
            return oracle()
        if rest == "null":
            return null()
        raise UnknownModelError(
            f"'{prefix}:{rest}' is not a model: use '{prefix}:oracle' or '{prefix}:null'"
        )

    register_model(prefix, resolve)
