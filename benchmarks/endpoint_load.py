"""The OpenAI-compatible endpoint's added latency under concurrent clients, on loopback.

    python benchmarks/endpoint_load.py [--clients 50] [--requests 10] [--timeout 180] [--memory]

A child process (its own interpreter, so the load generator does not share its GIL)
holds an agent on an instant scripted model (one tool call, then an answer: two model
steps, one read-only tool, a SQLite journal in a temporary directory). It first measures
the same run **in process**: N concurrent tasks each calling `agent.run` M times. Then
it serves the agent with `pilothouse.serving` and N concurrent HTTP clients each send M
chat requests one after another: whole answers, then streamed ones. Since the model
answers instantly, the in-process latency is the framework's (loop, policy, journal),
and the endpoint's minus it is what serving adds: HTTP, JSON, the request checks, the
run's task and the response or the SSE stream.

Prints, for each mode, p50/p99 latency and throughput, and the added latency at p50
and p99 (the endpoint's percentile minus the in-process one at the same concurrency);
one client's 50 requests alone, the per-request cost without queueing; and the app
alone at the same concurrency, requests handed to it in process through httpx's ASGI
transport (no uvicorn, no sockets, no load-generating process on the same cores). At 50
clients the endpoint is saturated (each client sends its next request at once), so
the added latency there is mostly queueing: N clients times the per-request cost,
divided by the cores the server gets.
Checks each answer; exits 1 if one is wrong or a request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _agent(directory: str, memory: bool = False) -> Any:
    from pilothouse import Agent, tool
    from pilothouse.messages import ToolCall
    from pilothouse.models.scripted import ScriptedModel
    from pilothouse.runtime.journal import MemoryStore, SQLiteStore

    @tool
    def lookup(key: str) -> str:
        """Look a key up."""
        return f"value of {key}"

    def reply(request: Any) -> Any:
        last = max(i for i, m in enumerate(request.messages) if m.role == "user")
        results = [m.content for m in request.messages[last + 1 :] if m.role == "tool"]
        if not results:
            return ToolCall("c1", "lookup", {"key": request.messages[last].content})
        return f"answer: {results[0]}"

    store = MemoryStore() if memory else SQLiteStore(Path(directory) / "journal.db")
    return Agent(ScriptedModel(reply, record=False), "", [lookup], name="bench", store=store)


async def _in_process(agent: Any, clients: int, requests: int) -> list[float]:
    latencies: list[float] = []

    async def client(n: int) -> None:
        for i in range(requests):
            start = time.perf_counter()
            result = await agent.run(f"k{n}-{i}")
            latencies.append(time.perf_counter() - start)
            assert result.output == f"answer: value of k{n}-{i}"

    await asyncio.gather(*(client(n) for n in range(clients)))
    return latencies


def _serve(directory: str, clients: int, requests: int, memory: bool, pipe: Any) -> None:
    """Child process: measure the in-process baseline, then serve on a loopback port."""
    import logging
    import threading

    from pilothouse.serving import BackgroundServer, create_app

    logging.disable(logging.WARNING)
    agent = _agent(directory, memory)
    asyncio.run(_in_process(agent, 5, 4))  # warm up (imports, first commits)
    pipe.send(asyncio.run(_in_process(agent, clients, requests)))
    app = create_app({"bench": agent})
    # the app alone: requests handed to it in process (httpx's ASGI transport), no
    # uvicorn, no sockets, no other process: what the endpoint's own code adds
    alone = asyncio.run(_load("http://app", clients, requests, False, 180.0, app=app))
    pipe.send((alone[0], alone[3], alone[2]))
    server = BackgroundServer(app, log_level="error").start()
    pipe.send(server.port)
    threading.Event().wait()  # serve until the parent terminates this process


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def _load(
    url: str, clients: int, requests: int, stream: bool, limit: float, app: Any = None
) -> Any:
    import httpx

    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients)
    transport = httpx.ASGITransport(app) if app is not None else None
    latencies: list[float] = []
    first_bytes: list[float] = []
    failures: list[str] = []
    async with httpx.AsyncClient(
        base_url=url, limits=limits, timeout=limit, transport=transport
    ) as http:

        async def one(n: int, i: int) -> None:
            body = {
                "model": "bench",
                "messages": [{"role": "user", "content": f"k{n}-{i}"}],
                "stream": stream,
            }
            want = f"answer: value of k{n}-{i}"
            start = time.perf_counter()
            if not stream:
                r = await http.post("/v1/chat/completions", json=body)
                latencies.append(time.perf_counter() - start)
                if r.status_code != 200 or r.json()["choices"][0]["message"]["content"] != want:
                    failures.append(f"{n}/{i}: HTTP {r.status_code} {r.text[:200]}")
                return
            text, first = "", None
            async with http.stream("POST", "/v1/chat/completions", json=body) as r:
                async for line in r.aiter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    data = json.loads(line[6:])
                    for choice in data.get("choices", ()):
                        piece = choice["delta"].get("content") or ""
                        if piece and first is None:
                            first = time.perf_counter() - start
                        text += piece
            latencies.append(time.perf_counter() - start)
            first_bytes.append(first or 0.0)
            if r.status_code != 200 or text != want:
                failures.append(f"{n}/{i}: HTTP {r.status_code} {text[:200]!r}")

        async def client(n: int) -> None:
            for i in range(requests):
                try:
                    await one(n, i)
                except httpx.TransportError as exc:  # counted, not fatal: an overloaded box
                    failures.append(f"{n}/{i}: {type(exc).__name__} {exc}")

        for _ in range(10):  # warm up the connections
            await http.get("/healthz")
        start = time.perf_counter()
        async with asyncio.timeout(limit):
            await asyncio.gather(*(client(n) for n in range(clients)))
        elapsed = time.perf_counter() - start
    return latencies, first_bytes, failures, elapsed


async def _round_trip(url: str) -> list[float]:
    """The HTTP round trip of a request that does nothing (GET /healthz), unloaded."""
    import httpx

    times = []
    async with httpx.AsyncClient(base_url=url) as http:
        for i in range(220):
            start = time.perf_counter()
            (await http.get("/healthz")).raise_for_status()
            if i >= 20:
                times.append(time.perf_counter() - start)
    return times


def _line(name: str, values: list[float], base: list[float] | None = None) -> str:
    p50, p99 = _percentile(values, 0.5) * 1e3, _percentile(values, 0.99) * 1e3
    text = f"  {name:<24} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms"
    if base is not None:
        b50, b99 = _percentile(base, 0.5) * 1e3, _percentile(base, 0.99) * 1e3
        text += f"   added: p50 {p50 - b50:+7.2f} ms, p99 {p99 - b99:+7.2f} ms"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=10, help="per client, one after another")
    parser.add_argument("--timeout", type=float, default=180.0, help="bound on each load")
    parser.add_argument(
        "--memory", action="store_true", help="journal in memory (default: a SQLite file)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pilothouse-bench-") as directory:
        ctx = multiprocessing.get_context("spawn")
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(
            target=_serve,
            args=(directory, args.clients, args.requests, args.memory, send),
            daemon=True,
        )
        child.start()
        try:
            if not receive.poll(args.timeout):
                print("the baseline did not finish", file=sys.stderr)
                return 1
            base: list[float] = receive.recv()
            if not receive.poll(args.timeout):
                print("the in-process load did not finish", file=sys.stderr)
                return 1
            asgi: tuple[list[float], float, list[str]] = receive.recv()
            port = receive.recv()
            url = f"http://127.0.0.1:{port}"
            import httpx

            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(url + "/healthz", timeout=1).raise_for_status()
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        print("the server did not answer", file=sys.stderr)
                        return 1
                    time.sleep(0.05)
            rtt = asyncio.run(_round_trip(url))
            alone = asyncio.run(_load(url, 1, 50, False, args.timeout))
            whole = asyncio.run(_load(url, args.clients, args.requests, False, args.timeout))
            streamed = asyncio.run(_load(url, args.clients, args.requests, True, args.timeout))
        finally:
            child.terminate()
            child.join(10)
    total = args.clients * args.requests
    print(
        f"endpoint load: {args.clients} concurrent clients x {args.requests} requests = "
        f"{total} runs per mode (instant scripted model: a tool call, then the answer)"
    )
    print(_line("in process (agent.run)", base))
    print(
        _line("app alone (ASGI)", asgi[0], base)
        + f"   ({total / asgi[1]:.0f} req/s: no uvicorn, sockets or client process)"
    )
    print(_line("HTTP round trip", rtt) + "   (GET /healthz, one client: the machine's floor)")
    print(_line("endpoint, one client", alone[0]) + "   (no queueing: the per-request cost)")
    print(_line("endpoint, whole answer", whole[0], base))
    print(_line("endpoint, streamed", streamed[0], base))
    print(_line("  first content chunk", streamed[1]))
    print(
        f"  throughput: whole {total / whole[3]:.0f} req/s, streamed {total / streamed[3]:.0f} "
        "req/s"
    )
    failures = asgi[2] + alone[2] + whole[2] + streamed[2]
    print(f"  failed requests or wrong answers: {len(failures)}")
    for failure in failures[:10]:
        print("   ", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
