"""A client that disconnects mid-run: the run is cancelled or finishes, as configured;
a shutdown interrupts runs in flight, and an interrupted run resumes from its journal.

No timing: the test knows the tool is running (`gate.entered`), that the server saw the
disconnect (its log line, or the tool's cancellation), and it reads the journal after
the server stopped (the shutdown waits for runs in flight)."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import openai
import pytest
from serving_world import World, client

from pilothouse.runtime.session import Session


@contextmanager
def disconnect_seen() -> Iterator[threading.Event]:
    """Set when the endpoint logs that a client disconnected."""
    seen = threading.Event()

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "client disconnected" in record.getMessage():
                seen.set()

    logger = logging.getLogger("pilothouse.serving")
    handler, level = Handler(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield seen
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_a_stream_closed_mid_run_cancels_the_run(world: World) -> None:
    with world.serve(on_disconnect="cancel") as server:
        stream = client(server).chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "gate"}], stream=True
        )
        first = next(iter(stream))  # the role chunk: the run has begun
        assert world.gate.entered.wait(30)
        stream.close()
        assert world.gate.cancelled.wait(30)  # the tool call itself was cancelled
    run_id = first.id.removeprefix("chatcmpl-")
    info = world.store.get_run(run_id)
    assert info.status == "interrupted"  # journaled, resumable
    assert [e.type for e in world.store.events(run_id)][-1] != "final"


def test_a_whole_answer_request_closed_mid_run_cancels_the_run(world: World) -> None:
    body = json.dumps({"model": "echo", "messages": [{"role": "user", "content": "gate"}]})
    with world.serve(on_disconnect="cancel") as server:
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: test\r\n"
            b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
        )
        assert world.gate.entered.wait(30)
        sock.close()
        assert world.gate.cancelled.wait(30)
    [run] = world.store.list_runs()
    assert run.status == "interrupted"


def test_with_finish_a_disconnected_clients_run_finishes_into_its_session(world: World) -> None:
    with disconnect_seen() as seen, world.serve(on_disconnect="finish") as server:
        api = client(server)
        raw = api.chat.completions.with_raw_response.create(
            model="echo",
            messages=[{"role": "user", "content": "hello"}],
            extra_headers={"X-Pilothouse-Session": "new"},
        )
        name = raw.headers["x-pilothouse-session"]
        stream = api.chat.completions.create(
            model="echo",
            messages=[{"role": "user", "content": "gate"}],
            stream=True,
            extra_headers={"X-Pilothouse-Session": name},
        )
        first = next(iter(stream))
        assert world.gate.entered.wait(30)
        stream.close()
        assert seen.wait(30)  # the server knows the client left...
        world.gate.release.set()  # ...and the run goes on
        # (leaving the block stops the server, which waits for the run)
    assert not world.gate.cancelled.is_set()
    assert world.store.get_run(first.id.removeprefix("chatcmpl-")).status == "final"
    history = Session.open(world.store, f"openai:-:{name}").history()
    assert [m.content for m in history][-2:] == ["gate", "gate opened"]


def test_a_shutdown_interrupts_runs_in_flight_and_they_resume(world: World) -> None:
    with world.serve(on_disconnect="finish", grace_seconds=0) as server:
        stream = client(server).chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "gate"}], stream=True
        )
        first = next(iter(stream))
        assert world.gate.entered.wait(30)
        server.stop()  # the grace period is 0: the run is cancelled at once
        assert world.gate.cancelled.is_set()
        with pytest.raises(openai.APIError) as caught:  # the client is told, in the stream
            list(stream)
        assert "shutting down" in str(caught.value)
    run_id = first.id.removeprefix("chatcmpl-")
    assert world.store.get_run(run_id).status == "interrupted"
    world.gate.release.set()
    result = world.agents["echo"].resume_sync(run_id)
    assert (result.outcome, result.output) == ("final", "gate opened")


def test_while_draining_new_requests_get_503_and_runs_in_flight_finish(world: World) -> None:
    with world.serve(grace_seconds=60) as server:
        api = client(server)
        stream = api.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "gate"}], stream=True
        )
        first = next(iter(stream))
        assert world.gate.entered.wait(30)
        server.server.should_exit = True  # shutdown begins: the drain waits for the run
        with httpx.Client(base_url=server.url, timeout=60) as http:
            while not http.get("/healthz").json()["draining"]:  # waiting for a state
                time.sleep(0.01)
        with pytest.raises(openai.APIStatusError) as caught:
            api.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}])
        assert caught.value.status_code == 503 and caught.value.code == "shutting_down"
        assert caught.value.response.headers["retry-after"] == "2"
        world.gate.release.set()
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "gate opened"
    assert world.store.get_run(first.id.removeprefix("chatcmpl-")).status == "final"


def test_a_client_gone_halfway_through_its_body_runs_nothing_and_is_no_error(
    world: World,
) -> None:
    records: list[logging.LogRecord] = []
    read = threading.Event()

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)
            if "before its request was read" in record.getMessage():
                read.set()

    logger = logging.getLogger("pilothouse.serving")
    handler, level = Handler(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with world.serve() as server:
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                b'{"model": "echo", "mess'
            )
            sock.close()
            assert read.wait(30)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert [r for r in records if r.levelno >= logging.WARNING] == []
    assert world.store.list_runs() == []
