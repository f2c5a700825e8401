"""What OpenTelemetry costs per agent step, and what it costs when it is off.

The workload of `benchmarks/overhead.py` (an instant `ScriptedModel`, one sync tool,
10 steps a run, the in-memory journal), run sequentially in one process:

- off: no subscriber (what every run pays: nothing of `pilothouse.telemetry` loads);
- on: a `Telemetry` subscriber with its own SDK provider and `BatchSpanProcessor`,
  exporting to a do-nothing exporter (the span work in the loop, not a network);
- on + content: the same, recording message text, tool arguments and results;
- on + OTLP: the OTLP/HTTP exporter posting to a receiver on loopback (its thread does
  the posting: what the loop pays is still the span work and a queue put).

Printed: CPU microseconds per step, best and median of the batches (process time,
so other work on a busy machine counts far less), and the difference from off.

    python benchmarks/telemetry_overhead.py [--runs 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import overhead

STEPS = overhead.STEPS_PER_RUN


def per_step(subscribers: list[Any], runs: int, repeats: int = 5) -> tuple[float, float]:
    from pilothouse import MemoryStore

    agent: Any = overhead.make_agent(MemoryStore())

    async def batch(n: int) -> float:
        t0 = time.process_time()
        for _ in range(n):
            result = await agent.run("go", subscribers=subscribers)
        elapsed = time.process_time() - t0
        assert result.steps == STEPS
        return elapsed / (n * STEPS) * 1e6

    async def main() -> list[float]:
        await batch(max(20, runs // 10))
        return [await batch(max(1, runs // repeats)) for _ in range(repeats)]

    samples = asyncio.run(main())
    return min(samples), statistics.median(samples)


class _Null:
    """A span exporter that accepts everything and sends nothing."""

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def _receiver() -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="runs per measurement")
    args = parser.parse_args()
    from pilothouse.telemetry import Telemetry
    from pilothouse.telemetry.setup import otlp_exporter

    server = _receiver()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    cases: list[tuple[str, Any]] = [
        ("off", None),
        ("on", lambda: Telemetry(exporter=_Null())),  # type: ignore[arg-type]
        ("on + content", lambda: Telemetry(exporter=_Null(), content=True)),  # type: ignore[arg-type]
        ("on + OTLP", lambda: Telemetry(exporter=otlp_exporter(url))),
    ]
    base = None
    print(f"per step, {STEPS} steps a run, {args.runs} runs a case (CPU time)")
    for name, make in cases:
        telemetry = make() if make is not None else None
        best, median = per_step([] if telemetry is None else [telemetry], args.runs)
        if telemetry is not None:
            telemetry.shutdown()
        base = best if base is None else base
        extra = "" if name == "off" else f"   +{best - base:5.1f} µs"
        print(f"  {name:<14} best {best:6.1f} µs   median {median:6.1f} µs{extra}")
    server.shutdown()


if __name__ == "__main__":
    main()
