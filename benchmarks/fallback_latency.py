"""How long until a `FallbackModel` asks the next model, per kind of failure.

Two OpenAI-compatible endpoints on loopback: the first fails every request in one way
(HTTP 503 without Retry-After, 429 with ``Retry-After: 1``, 429 with ``Retry-After:
20`` as OpenAI sends it, connection refused), the second answers. For each case,
`--repeats` requests through `FallbackModel([first, second])` with its defaults
(``retries=2``, ``backoff=0.5``, ``max_retry_after=10``, ``patience=1.5``); printed:
wall seconds from the
request to the fallback (median and max), and, for comparison, the same with the
adapter's own retries left on (what a fallback wrapper that does not switch them off
waits: ``OpenAIModel``'s default ``max_retries=3``, honouring Retry-After up to 30 s).
The issue's target: the first fallback within 2 s of a 429 or 5xx.

    python benchmarks/fallback_latency.py [--repeats 5] [--skip-naive]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GOOD = {
    "object": "chat.completion",
    "model": "backup",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1},
}  # fmt: skip


def serve(code: int, body: dict[str, Any], headers: dict[str, str]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            payload = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def url_of(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/v1"


def refused() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


class Clock:
    """A `ModelLog` noting when the fallback happened."""

    def __init__(self) -> None:
        self.at: float | None = None

    def fell_back(self, *args: Any) -> None:
        self.at = self.at or time.perf_counter()

    def routed(self, *args: Any) -> None:
        pass


async def time_to_fallback(first: str, second: str, naive: bool) -> float:
    from pilothouse.messages import Message
    from pilothouse.models import FallbackModel, ModelRequest, OpenAIModel

    a, b = OpenAIModel("primary", base_url=first), OpenAIModel("backup", base_url=second)
    request = ModelRequest([Message.user("hi")])
    t0 = time.perf_counter()
    if naive:  # the adapter retries as it would alone, then the next model is asked
        with contextlib.suppress(Exception):
            await a.generate(request)
        elapsed = time.perf_counter() - t0
        await b.generate(request)
        return elapsed
    clock = Clock()
    await FallbackModel([a, b]).generate_logged(request, clock)
    assert clock.at is not None
    return clock.at - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-naive", action="store_true", help="skip the slow comparison")
    args = parser.parse_args()
    error = {"error": {"message": "overloaded", "type": "server_error", "code": None}}
    limit = {"error": {"message": "Rate limit reached", "type": "requests",
                       "code": "rate_limit_exceeded"}}  # fmt: skip
    good = serve(200, GOOD, {})
    cases = {
        "HTTP 503, no Retry-After": serve(503, error, {}),
        "HTTP 429, Retry-After: 1": serve(429, limit, {"retry-after": "1"}),
        "HTTP 429, Retry-After: 20": serve(429, limit, {"retry-after": "20"}),
    }
    urls = {name: url_of(s) for name, s in cases.items()} | {"connection refused": refused()}
    print(f"seconds from the request to the fallback, {args.repeats} requests a case")
    for name, first in urls.items():
        ours = [
            asyncio.run(time_to_fallback(first, url_of(good), False)) for _ in range(args.repeats)
        ]
        middle = statistics.median(ours)
        line = f"  {name:<28} FallbackModel median {middle:5.2f}  max {max(ours):5.2f}"
        if not args.skip_naive:
            theirs = asyncio.run(time_to_fallback(first, url_of(good), True))
            line += f"   adapter retries on: {theirs:5.2f}"
        print(line)
    for s in [good, *cases.values()]:
        s.shutdown()


if __name__ == "__main__":
    main()
