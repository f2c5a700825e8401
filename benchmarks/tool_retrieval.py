"""Tool retrieval at scale: recall@5 of the right tool and time per query, 100-1,000 tools.

Run: `python benchmarks/tool_retrieval.py [--no-embeddings] [--tune-only]` (offline; about
20 seconds).

The tools are generated from public API descriptions shipped in installed packages
(the `openai` and `anthropic` SDKs' resources, `playwright`'s sync API: see
`benchmarks/data/tools/generate.py`; 987 tools). The queries are written by hand in a
user's words (`benchmarks/data/tools/queries.tsv`, 104 queries, and a second batch
`queries2.tsv`, 50 queries, each on its own tool sets; each query names the one tool
that answers it), split once by a hash of the query into `tune` (what any tuning looked
at) and `holdout` (reported separately, never tuned on).

For each size (100, 300, 1,000 tools) the tool set is every query's target plus other
tools drawn with a fixed seed, so a query's answer is always present and the
distractors grow (set 1's 104 targets make its smallest set 104 tools). Retrieval is
`ToolIndex.search` (BM25 over name, description and
parameters, `pilothouse.tools.select`), the ranking `pilothouse.memory.ToolRetrieval`'s
`prepare_step` hook offers each step and its `find_tools` searches. With the
`embeddings` extra installed, also embeddings alone and hybrid (BM25 and embeddings fused
by reciprocal rank, then the top 20 re-ranked by how much of the query the tool's name
covers; `ToolIndex(..., embedder=WordLlama())`). Time per query is the median
of 5 passes over all queries, cache off (for embeddings it includes embedding the query),
with the p50 and p99 of the single queries of those passes (wall clock), and the p99 of
their CPU time (this thread's: what a query costs, without the waits a loaded machine
adds). `--tune-only` hides the holdout column (what tuning runs use).
Sockets: every measurement runs with `socket.socket` refusing to be made.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import socket
import statistics
import time
from pathlib import Path
from typing import Any

from pilothouse.knowledge import WordLlama, embeddings_available
from pilothouse.memory import ToolRetrieval
from pilothouse.messages import Message, ToolCall, Usage
from pilothouse.models.base import ToolSpec
from pilothouse.runtime.step import StepContext
from pilothouse.tools.select import Embedder, ToolIndex, ToolRanking
from pilothouse.tools.tool import Tool

DATA = Path(__file__).parent / "data" / "tools"


def split(query: str) -> str:
    """`tune` or `holdout`, fixed by the query text (about one in three is holdout)."""
    return "holdout" if hashlib.sha256(query.encode()).digest()[0] % 3 == 0 else "tune"


QUERY_SETS = {"set 1": "queries.tsv", "set 2": "queries2.tsv"}
"""Two batches of queries, each measured on its own tool sets (its targets plus seeded
distractors): set 1 (104 queries) is the one earlier figures used; set 2 (50) was
written later, before any ranking ran on it, to give tuning more than 64 queries."""


def read_queries(name: str = "queries.tsv") -> list[tuple[str, str]]:
    queries = []
    for line in (DATA / name).read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            query, target = line.split("\t")
            queries.append((query, target))
    return queries


def load() -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    tools = json.loads((DATA / "sdk_tools.json").read_text(encoding="utf-8"))
    return tools, read_queries()


def as_spec(entry: dict[str, Any]) -> ToolSpec:
    """A generated tool as the model (and the index) sees it."""
    return ToolSpec(entry["name"], entry["description"], entry["parameters"])


def tool_set(tools: list[dict[str, Any]], targets: set[str], size: int) -> list[dict[str, Any]]:
    """Every target, plus seeded distractors up to `size`."""
    rng = random.Random(size)
    chosen = [t for t in tools if t["name"] in targets]
    rest = [t for t in tools if t["name"] not in targets]
    chosen += rng.sample(rest, max(0, min(size, len(tools)) - len(chosen)))
    rng.shuffle(chosen)
    return chosen


def measure(
    size: int,
    tools: list[dict[str, Any]],
    queries: list[tuple[str, str]],
    embedder: Embedder | None = None,
    ranking: ToolRanking = "bm25",
) -> dict:
    chosen = tool_set(tools, {q[1] for q in queries}, size)
    began = time.perf_counter()
    index = ToolIndex([as_spec(t) for t in chosen], embedder=embedder, ranking=ranking)
    built = time.perf_counter() - began
    results: dict[str, list[int]] = {"tune": [], "holdout": []}
    reciprocal: list[float] = []  # tune only: 1/rank of the target in the top 20 (else 0)
    misses: list[tuple[str, str, list[str]]] = []
    for query, target in queries:
        ranked = [s.name for s, _ in index.search(query, 20)]
        top = ranked[:5]
        hit = target in top
        results[split(query)].append(int(hit))
        if split(query) == "tune":
            reciprocal.append(1 / (ranked.index(target) + 1) if target in ranked else 0.0)
        if not hit and split(query) == "tune":
            misses.append((query, target, top[:3]))
    passes, each, cpu = [], [], []
    for _ in range(5):
        began = time.perf_counter()
        for query, _ in queries:
            one, own = time.perf_counter(), time.thread_time()
            index.search(query, 5)
            each.append(time.perf_counter() - one)
            cpu.append(time.thread_time() - own)
        passes.append((time.perf_counter() - began) / len(queries))
    return {
        "p50": _quantile(each, 0.5) * 1000,
        "p99": _quantile(each, 0.99) * 1000,
        "cpu99": _quantile(cpu, 0.99) * 1000,
        "built_ms": built * 1000,
        "size": len(index),
        "recall": {k: (sum(v) / len(v), len(v)) for k, v in results.items()},
        "mrr": sum(reciprocal) / len(reciprocal) if reciprocal else 0.0,
        "ms": statistics.median(passes) * 1000,
        "misses": misses,
    }


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round((len(ordered) - 1) * q))]


class _NoSocket(socket.socket):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("tool retrieval opened a socket")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-embeddings", action="store_true", help="BM25 only")
    parser.add_argument(
        "--tune-only", action="store_true", help="print no holdout figure (for tuning)"
    )
    args = parser.parse_args()
    socket.socket = _NoSocket  # type: ignore[misc]  # any socket made from here fails
    tools, queries = load()
    sets = {name: read_queries(file) for name, file in QUERY_SETS.items()}
    embedder = None if args.no_embeddings or not embeddings_available() else WordLlama()
    rankings: list[ToolRanking] = ["bm25", "vector", "hybrid"] if embedder else ["bm25"]
    counted = ", ".join(f"{name}: {len(qs)}" for name, qs in sets.items())
    print(f"{len(tools)} tools generated; queries {counted}; sockets refused")
    for ranking in rankings:
        for name, chosen in sets.items():
            print(f"\n{ranking}, {name}:")
            print(
                f"{'tools':>6} {'recall@5 tune':>15} {'MRR tune':>8} {'recall@5 holdout':>18} "
                f"{'ms/query':>9} "
                f"{'p50 ms':>7} {'p99 ms':>7} {'p99 cpu':>7} {'index built ms':>15}"
            )
            report = []
            for size in (100, 300, 1_000):
                vectors = embedder if ranking != "bm25" else None
                r = measure(size, tools, chosen, vectors, ranking)
                report.append(r)
                (tr, tn), (hr, hn) = r["recall"]["tune"], r["recall"]["holdout"]
                held = "hidden" if args.tune_only else f"{hr:.1%} ({hn:>2})"
                print(
                    f"{r['size']:>6} {tr:>9.1%} ({tn:>2}) {r['mrr']:>8.3f} {held:>18} "
                    f"{r['ms']:>9.3f} "
                    f"{r['p50']:>7.3f} {r['p99']:>7.3f} {r['cpu99']:>7.3f} {r['built_ms']:>15.0f}"
                )
            for query, target, top in report[-1]["misses"]:
                print(f"  tune miss: {query!r} -> {target} (got {', '.join(top)})")
    print(f"\nhook per step, {len(tools)} tools, BM25: {hook_cost(tools, queries):.1f} µs")
    if embedder:
        cost = hook_cost(tools, queries, embedder)
        print(f"hook per step, {len(tools)} tools, hybrid: {cost:.1f} µs")


def hook_cost(
    tools: list[dict[str, Any]], queries: list[tuple[str, str]], embedder: Embedder | None = None
) -> float:
    """Microseconds of one `ToolRetrieval` step on a 40-message conversation of 10 user
    turns (its caches warm, as from the second step of a run on): what every step pays."""
    retrieval = ToolRetrieval([_tool(t) for t in tools], embedder=embedder)
    messages: list[Message] = [Message.system("You are helpful.")]
    for query, target in queries[:10]:
        call = ToolCall(f"c{len(messages)}", target, {})
        messages += [
            Message.user(query),
            Message.assistant("", (call,)),
            Message("tool", "done", (), call.id, target),
            Message.assistant("ok"),
        ]
    ctx = StepContext("run", 1, messages, Usage(), None, {})
    retrieval(ctx)
    passes = []
    for _ in range(5):
        began = time.perf_counter()
        for _ in range(200):
            retrieval(ctx)
        passes.append((time.perf_counter() - began) / 200)
    return statistics.median(passes) * 1e6


def _tool(entry: dict[str, Any]) -> Tool:
    """A tool with a generated name and description (never called here)."""
    return Tool(lambda: "done", name=entry["name"], description=entry["description"])


if __name__ == "__main__":
    main()
