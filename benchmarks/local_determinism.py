"""What the temperature-0 promise of `LocalModel` costs: prompt reuse in whole chunks.

Run: `.venv/bin/python benchmarks/local_determinism.py [--runs N]` (needs the
``local`` extra: llama-cpp-python and the embedded SmolLM2-135M).

`LocalModel` evaluates prompts in chunks of `PROMPT_CHUNK` tokens from position 0 and
reuses from llama.cpp's KV cache only whole chunks of earlier prompts
(`LocalModel._reused_prefix`), so a reply does not depend on what earlier requests
left in the cache. Three ways to start a generation are timed on the same workload, in
one process, interleaved (each repetition runs every mode once), by replacing
`_reused_prefix`:

- ``chunks``: what `LocalModel` does;
- ``fresh``: no reuse at all, every prompt from its first token (the simplest way to
  keep the promise);
- ``any``: llama-cpp-python's own reuse, what `LocalModel` did before: the longest
  cached prefix, generated tokens included, and the last prompt token evaluated
  alone when the whole prompt was cached. Its replies can depend on the requests
  before them.

Workloads:
- one run of the order-status agent of ``examples/local_agent.py`` ("Where is my
  order A1234?"): its real sequence of guided generations (tool choice, arguments,
  then the answer from the tool's result);
- that agent's first request alone, again and again (the whole prompt is cached);
- a plain chat request without tools (24 tokens).

Printed: the median over ``--runs`` repetitions (after one warm-up each), in
milliseconds, and each mode's replies when they differ from ``chunks``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODES = ("chunks", "fresh", "any")


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("local_agent", ROOT / "examples/local_agent.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def starts(llm: Any) -> dict[str, Callable[[list[int], list[int], list[int]], int]]:
    """For each mode, the replacement of `LocalModel._reused_prefix`."""
    from pilothouse.models.local import LocalModel

    def any_prefix(chunked: list[int], tokens: list[int], plan: list[int]) -> int:
        same = 0
        for cached, token in zip(llm.input_ids[: llm.n_tokens].tolist(), tokens, strict=False):
            if cached != token:
                break
            same += 1
        return same - 1 if same == len(tokens) else same

    return {
        "chunks": LocalModel._reused_prefix,
        "fresh": lambda chunked, tokens, plan: 0,
        "any": any_prefix,
    }


async def main(runs: int) -> None:
    from pilothouse.guided import GuidedModel
    from pilothouse.messages import Message, ToolResult
    from pilothouse.models.base import ModelRequest, ModelSettings
    from pilothouse.models.local import PROMPT_CHUNK, LocalModel

    example = load_example()
    local = LocalModel()
    model = GuidedModel.of(local, local.guidance)  # what an Agent on LocalModel uses
    spec = example.get_order_status.spec()
    system = Message.system(example.INSTRUCTIONS)
    question = Message.user("Where is my order A1234?")
    first = ModelRequest([system, question], [spec])

    async def agent_run() -> list[str]:
        """The agent's requests in order: call, then answer from the result."""
        call = (await model.generate(first)).tool_calls[0]
        result = example.get_order_status.function(**call.arguments)
        then = ModelRequest(
            [
                system,
                question,
                Message.assistant("", (call,)),
                Message.tool(ToolResult(call.id, call.name, result)),
            ],
            [spec],
        )
        answer = await model.generate(then)
        return [f"{call.name}({call.arguments})", answer.text]

    async def first_step() -> str:
        response = await model.generate(first)
        return repr([(c.name, c.arguments) for c in response.tool_calls] or response.text)

    chat = ModelRequest(
        [Message.system("You are a helpful assistant."), Message.user("Say hello in French.")],
        settings=ModelSettings(max_tokens=24),
    )

    async def plain() -> str:
        return (await model.generate(chat)).text

    llm = local._loaded().llm
    for name, request in (("agent's first prompt", first), ("chat prompt", chat)):
        prompt = local.build(
            model.first_stage(request).request if request.tools else request
        ).prompt
        count = len(llm.tokenize(prompt.encode(), add_bos=False, special=True))
        print(f"{name}: {count} tokens (guided stages build similar prompts of their own)")
    print(f"PROMPT_CHUNK = {PROMPT_CHUNK}")

    modes = starts(llm)
    workloads: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("agent run (3 generations)", agent_run),
        ("agent's first request again", first_step),
        ("plain chat, 24 tokens", plain),
    ]
    original = LocalModel._reused_prefix
    print(f"\nmedian of {runs} runs, ms      " + "".join(f"{m:>9}" for m in MODES))
    try:
        for label, work in workloads:
            times: dict[str, list[float]] = {m: [] for m in MODES}
            replies: dict[str, set[str]] = {m: set() for m in MODES}
            for i in range(runs + 1):
                for mode in MODES[i % 3 :] + MODES[: i % 3]:  # rotate: load drifts
                    LocalModel._reused_prefix = staticmethod(modes[mode])  # type: ignore[method-assign]
                    began = time.perf_counter()
                    replies[mode].add(repr(await work()))
                    if i:  # the first round warms up
                        times[mode].append((time.perf_counter() - began) * 1000)
            medians = "".join(f"{statistics.median(times[m]):>9.0f}" for m in MODES)
            print(f"{label:<30} {medians}")
            for mode in MODES:
                if replies[mode] != replies["chunks"] or len(replies[mode]) > 1:
                    print(f"    {mode} replied: {sorted(replies[mode])}")
    finally:
        LocalModel._reused_prefix = original  # type: ignore[method-assign]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed repetitions per figure")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.runs)))
