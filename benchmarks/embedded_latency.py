"""Where an embedded-model sample's time goes: prompt tokens evaluated vs reused, per stage.

Run: ``PYTHONPATH=src .venv/bin/python benchmarks/embedded_latency.py [--suite builtin]
[--epochs 1] [--stages]`` (needs the ``local`` extra). A/B against another source tree
(e.g. ``git archive <rev> src | tar -x -C /tmp/base``), interleaved, each run in a fresh
process: ``benchmarks/embedded_latency.py --ab /tmp/base/src --rounds 3``.

The suite runs as ``pilothouse eval <suite> -m local --concurrency 1`` does (one sample
at a time, temperature 0). Every generation of the embedded model is instrumented
from outside (llama-cpp-python's ``Llama.eval`` and `LocalModel`'s generation are
wrapped, so an older source tree is measured the same way): its prompt tokens, how many
of them were reused from the KV cache (where the generation's first ``eval`` starts),
hence how many were evaluated, the tokens generated, the time until the whole prompt
was evaluated (the first token) and the whole generation.

The token counts are deterministic (the same code and requests give the same figures
on any machine state); wall times are not (2 shared cores): compare them only as
interleaved A/B ratios on the same machine state, with ``uptime`` noted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

SUITES = {
    "builtin": "pilothouse_suites.builtin:suite",
    "heldout": "pilothouse_suites.heldout:suite",
}


@dataclass
class Gen:
    """One generation of the embedded model."""

    scenario: str
    prompt_tokens: int = 0
    evaluated: int = 0
    generated: int = 0
    first_token_s: float = 0.0
    total_s: float = 0.0

    @property
    def reused(self) -> int:
        return self.prompt_tokens - self.evaluated


@dataclass
class Sample:
    scenario: str
    ok: bool
    latency: float
    gens: list[Gen] = field(default_factory=list)
    epoch: int = 0
    restored: int = 0  # prompts started from a KV snapshot (`LocalModel.counters`)


def instrument(current: list[str], gens: list[Gen]) -> None:
    """Wrap `LocalModel._generate_blocking` and the loaded model's ``eval``."""
    from pilothouse.models import local

    original = local.LocalModel._generate_blocking

    def generate_blocking(
        self: Any, prepared: Any, settings: Any, on_text: Any, cancel: Any
    ) -> Any:
        llm = self._loaded().llm
        gen = Gen(current[0])
        calls: list[tuple[int, int, float]] = []  # (cache position before, after, time)
        began = time.perf_counter()
        if "eval" not in vars(llm):
            plain = llm.eval

            def evaluate(tokens: Any) -> None:
                before = llm.n_tokens
                plain(tokens)
                record = llm.__dict__.get("_bench_record")
                if record is not None:
                    record(before, llm.n_tokens)

            llm.eval = evaluate

        def record(before: int, after: int) -> None:
            calls.append((before, after, time.perf_counter() - began))

        llm._bench_record = record
        try:
            out = original(self, prepared, settings, on_text, cancel)
        finally:
            llm._bench_record = None
        gen.total_s = time.perf_counter() - began
        gen.prompt_tokens = out.prompt_tokens
        gen.generated = out.completion_tokens
        # the prompt: from where the first evaluation started (what was reused) to its end
        reused = calls[0][0] if calls else out.prompt_tokens
        gen.evaluated = out.prompt_tokens - reused
        gen.first_token_s = next(
            (t for _, after, t in calls if after >= out.prompt_tokens), gen.total_s
        )
        gens.append(gen)
        return out

    local.LocalModel._generate_blocking = generate_blocking  # type: ignore[method-assign]


async def run(suite_name: str, epochs: int, max_seconds: float) -> list[Sample]:
    from pilothouse.evals.runner import load_suite, run_eval

    suite = load_suite(SUITES.get(suite_name, suite_name))
    current = [""]
    gens: list[Gen] = []
    instrument(current, gens)
    samples: list[Sample] = []
    # warm-up: load the model (not timed)
    from pilothouse.models.local import LocalModel

    LocalModel()._loaded()

    def restored() -> int:
        return LocalModel().counters.get("restored", 0) if hasattr(LocalModel, "counters") else 0

    for epoch in range(epochs):
        for scenario in suite.scenarios:
            current[0] = scenario.name
            start = len(gens)
            restored_before = restored()
            log = await run_eval(
                suite,
                ["local"],
                epochs=1,
                concurrency=1,
                scenarios=[scenario.name],
                budget=replace(suite.budget, max_seconds=max_seconds),
            )
            for record in log.samples:
                if record.scenario != scenario.name:
                    continue
                samples.append(
                    Sample(
                        scenario.name,
                        record.ok,
                        record.latency,
                        gens[start:],
                        epoch,
                        restored() - restored_before,
                    )
                )
    return samples


def summary(samples: list[Sample]) -> dict[str, Any]:
    gens = [g for s in samples for g in s.gens]
    n = len(samples) or 1
    return {
        "samples": len(samples),
        "passed": sum(s.ok for s in samples),
        "generations_per_sample": len(gens) / n,
        "prompt_tokens_per_sample": sum(g.prompt_tokens for g in gens) / n,
        "evaluated_per_sample": sum(g.evaluated for g in gens) / n,
        "reused_per_sample": sum(g.reused for g in gens) / n,
        "generated_per_sample": sum(g.generated for g in gens) / n,
        "restored_per_sample": sum(s.restored for s in samples) / n,
        "mean_latency_s": statistics.fmean(s.latency for s in samples) if samples else 0.0,
        "prompt_eval_s_per_sample": sum(g.first_token_s for g in gens) / n,
        "generation_s_per_sample": sum(g.total_s for g in gens) / n,
    }


def load() -> str:
    """The machine's load averages (1, 5, 15 min), printed beside every wall time."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def report(samples: list[Sample], stages: bool) -> None:
    print(f"{'scenario':<22} ok  gens  prompt  eval'd  reused  gen'd  1st-tok  total  latency")
    for s in samples:
        g = s.gens
        print(
            f"{s.scenario:<22} {'y' if s.ok else 'n'}  {len(g):>4}  "
            f"{sum(x.prompt_tokens for x in g):>6}  {sum(x.evaluated for x in g):>6}  "
            f"{sum(x.reused for x in g):>6}  {sum(x.generated for x in g):>5}  "
            f"{sum(x.first_token_s for x in g):>6.2f}s {sum(x.total_s for x in g):>5.2f}s  "
            f"{s.latency:>6.2f}s"
        )
        if stages:
            for x in g:
                print(
                    f"    prompt {x.prompt_tokens:>4}  evaluated {x.evaluated:>4}  "
                    f"reused {x.reused:>4}  generated {x.generated:>3}  "
                    f"first token {x.first_token_s:.2f}s  total {x.total_s:.2f}s"
                )
    total = summary(samples)
    epochs = sorted({s.epoch for s in samples})
    if len(epochs) > 1:
        total["by_epoch"] = {
            str(e): {
                k: v
                for k, v in summary([s for s in samples if s.epoch == e]).items()
                if k in ("passed", "evaluated_per_sample", "reused_per_sample", "mean_latency_s")
            }
            for e in epochs
        }
    print(json.dumps(total, indent=1))


def ab(other_src: str, rounds: int, suite: str, epochs: int, max_seconds: float) -> None:
    """Interleaved runs of this tree (B) and `other_src` (A), each in a fresh process."""
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    trees = {"A (base)": other_src, "B (this)": here}
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in trees}
    for r in range(rounds):
        order = list(trees.items()) if r % 2 == 0 else list(reversed(trees.items()))
        for label, src in order:
            env = dict(os.environ, PYTHONPATH=os.path.abspath(src))
            load = os.getloadavg()[0]
            out = subprocess.run(
                [
                    *(sys.executable, __file__, "--suite", suite, "--epochs", str(epochs)),
                    *("--max-seconds", str(max_seconds), "--json"),
                ],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            figures["load_before"] = load
            results[label].append(figures)
            print(
                f"round {r} {label}: latency {figures['mean_latency_s']:.2f}s "
                f"passed {figures['passed']}/{figures['samples']} "
                f"evaluated {figures['evaluated_per_sample']:.0f} "
                f"reused {figures['reused_per_sample']:.0f} (load {load:.2f})",
                flush=True,
            )
    a = [f["mean_latency_s"] for f in results["A (base)"]]
    b = [f["mean_latency_s"] for f in results["B (this)"]]
    ratios = [y / x for x, y in zip(a, b, strict=True)]
    print(
        f"mean latency A {statistics.fmean(a):.2f}s  B {statistics.fmean(b):.2f}s  "
        f"B/A per round {', '.join(f'{x:.2f}' for x in ratios)}  "
        f"median {statistics.median(ratios):.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="builtin", help="builtin, heldout or module:attr")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--stages", action="store_true", help="one line per generation")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON only")
    parser.add_argument("--ab", metavar="SRC", help="A/B against another source tree's src/")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--max-seconds", type=float, default=600.0, help="per-sample budget (a busy machine)"
    )
    parser.add_argument(
        "--prefix-cache", type=int, default=None, help="MB of LocalModel's KV snapshots (0: off)"
    )
    args = parser.parse_args()
    if args.prefix_cache is not None:
        from pilothouse.models import local

        local.PREFIX_CACHE_MB = args.prefix_cache  # read by every LocalModel made after this
    if args.ab:
        ab(args.ab, args.rounds, args.suite, args.epochs, args.max_seconds)
        return
    began = load()
    samples = asyncio.run(run(args.suite, args.epochs, args.max_seconds))
    if args.json:
        figures = summary(samples)
        figures["load_before_after"] = [began, load()]
        figures["generations"] = [asdict(g) for s in samples for g in s.gens]
        print(json.dumps(figures))
    else:
        report(samples, args.stages)
        print(f"load average before: {began}  after: {load()}")


if __name__ == "__main__":
    main()
