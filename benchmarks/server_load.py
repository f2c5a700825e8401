"""The support desk's server under concurrent conversations, on loopback.

    python benchmarks/server_load.py [--conversations 50] [--messages 5] [--timeout 120]

Starts `pilothouse serve`'s app in a child process (its own interpreter, so the
load generator does not share its GIL) with a `Desk` whose agent runs on an
instant scripted model, over a SQLite journal and shop in a temporary directory.
Then N customers each open a conversation and send M messages one after another,
all N at once, through the real HTTP API. Because the model answers instantly,
a message's end-to-end latency is what Pilothouse adds: HTTP, JSON, the desk, the
agent loop, the policy and the journal's commits.

Prints messages per second, p50/p90/p99 latency, the HTTP round trip of an empty
request for comparison, and checks that no message was lost: every transcript
must hold each customer message and its answer, in order. Exits 1 if any was lost
or a request failed. Bounded: the whole load must finish within --timeout seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _build_desk(directory: str) -> Any:
    """A Desk over a fresh shop and journal whose agent echoes each message instantly."""
    from pilothouse.models.scripted import ScriptedModel
    from pilothouse.runtime.journal import SQLiteStore
    from pilothouse_desk.desk import Desk

    def reply(request: Any) -> str:
        last = next(m for m in reversed(request.messages) if m.role == "user")
        return f"echo: {last.content}"

    store = SQLiteStore(Path(directory) / "journal.db")
    return Desk(Path(directory) / "shop.db", store, model=ScriptedModel(reply, record=False))


def _serve(directory: str, ready: Any) -> None:
    """Child process: serve the desk on a free loopback port and report the port."""
    import logging
    import socket

    import uvicorn

    from pilothouse_desk.server.app import create_app

    logging.disable(logging.WARNING)
    # One client sends everything here: the per-client rate limits would measure themselves.
    app = create_app(
        _build_desk(directory), console_token="bench-token", open_limit=None, message_limit=None
    )
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on accepted sockets that report it
    # (uvicorn issue #3149); without it each keep-alive request waits ~40 ms on Nagle.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    ready.send(sock.getsockname()[1])
    config = uvicorn.Config(app, log_level="error", access_log=False, server_header=False)
    uvicorn.Server(config).run(sockets=[sock])


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def _load(url: str, conversations: int, messages: int, limit: float) -> int:
    import httpx

    limits = httpx.Limits(
        max_connections=conversations + 4, max_keepalive_connections=conversations
    )
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=limit) as client:
        # Baseline: the HTTP round trip of a request that does nothing.
        for _ in range(20):
            await client.get("/healthz")
        rtt = []
        for _ in range(200):
            start = time.perf_counter()
            (await client.get("/healthz")).raise_for_status()
            rtt.append(time.perf_counter() - start)

        latencies: list[float] = []
        failures: list[str] = []
        sessions: list[tuple[str, str, list[str]]] = []

        async def customer(n: int) -> None:
            r = await client.post("/api/conversations", json={})
            r.raise_for_status()
            conv_id, token = r.json()["conversation"]["id"], r.json()["token"]
            sent: list[str] = []
            sessions.append((conv_id, token, sent))
            headers = {"Authorization": f"Bearer {token}"}
            for i in range(messages):
                text = f"customer {n} message {i}"
                start = time.perf_counter()
                r = await client.post(
                    f"/api/conversations/{conv_id}/messages", json={"text": text}, headers=headers
                )
                latencies.append(time.perf_counter() - start)
                if r.status_code != 200:
                    failures.append(f"{conv_id} message {i}: HTTP {r.status_code} {r.text[:200]}")
                    continue
                if r.json()["reply"]["text"] != f"echo: {text}":
                    failures.append(f"{conv_id} message {i}: wrong reply {r.json()['reply']}")
                sent.append(text)

        start = time.perf_counter()
        async with asyncio.timeout(limit):
            await asyncio.gather(*(customer(n) for n in range(conversations)))
        elapsed = time.perf_counter() - start

        lost = 0
        for conv_id, token, sent in sessions:
            r = await client.get(
                f"/api/conversations/{conv_id}", headers={"Authorization": f"Bearer {token}"}
            )
            entries = [(e["author"], e["text"]) for e in r.json()["transcript"]]
            expected = [
                pair for text in sent for pair in (("customer", text), ("agent", f"echo: {text}"))
            ]
            said = [e for e in entries if e[0] in ("customer", "agent")]
            if said != expected:
                lost += 1
                failures.append(f"{conv_id}: transcript {said[:4]}... != expected")

    total = len(latencies)
    print(f"server load: {conversations} conversations x {messages} messages = {total} messages")
    print(f"  wall time            {elapsed:8.2f} s")
    print(f"  throughput           {total / elapsed:8.1f} messages/s")
    print(
        f"  latency p50/p90/p99  {_percentile(latencies, 0.5) * 1e3:8.1f} / "
        f"{_percentile(latencies, 0.9) * 1e3:.1f} / {_percentile(latencies, 0.99) * 1e3:.1f} ms"
    )
    print(f"  mean latency         {statistics.fmean(latencies) * 1e3:8.1f} ms")
    print(f"  HTTP round trip p50  {_percentile(rtt, 0.5) * 1e3:8.2f} ms (GET /healthz, no load)")
    print(
        f"  transcripts complete {len(sessions) - lost}/{conversations}; "
        f"failed requests or lost messages: {len(failures)}"
    )
    for failure in failures[:10]:
        print("   ", failure)
    return 1 if failures or len(sessions) != conversations else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--messages", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=120.0, help="bound on the whole load")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pilothouse-bench-") as directory:
        ctx = multiprocessing.get_context("spawn")
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_serve, args=(directory, send), daemon=True)
        child.start()
        try:
            if not receive.poll(60):
                print("the server did not start", file=sys.stderr)
                return 1
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
            return asyncio.run(_load(url, args.conversations, args.messages, args.timeout))
        finally:
            child.terminate()
            child.join(10)


if __name__ == "__main__":
    sys.exit(main())
