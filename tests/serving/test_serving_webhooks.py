"""Webhooks: a served run that waits for a person is announced, signed, at least once.

The endpoint is the real one on a loopback uvicorn with a real SQLite journal; the
receiver is a Starlette app on another loopback uvicorn that answers each POST with the
status the test scripts; events are checked with the Standard Webhooks reference
library (`standardwebhooks`) and with an HMAC computed here, independently. Attacks on
the receiver's side (a forged or altered event, a replay with an old timestamp) are
refused by the verification; the endpoint's side is tried with receivers that fail,
refuse, redirect, hang or are not there.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from serving_world import SECRET as SERVER_SECRET
from serving_world import World, client
from webhook_receiver import SECRET, Receiver, hook, verified

from example_runs import run_example
from pilothouse import Agent, ScriptedModel, tool
from pilothouse.exceptions import ConfigurationError
from pilothouse.messages import ToolCall
from pilothouse.models.base import ModelRequest
from pilothouse.serving import (
    BackgroundServer,
    Webhook,
    create_app,
    new_webhook_secret,
    served_agents,
)
from pilothouse.serving.notify import Notifier, message_id

standardwebhooks = pytest.importorskip("standardwebhooks")

ALICE, CAROL = "alice-client-key-0001", "carol-approver-key-01"
CLIENTS, APPROVERS = {ALICE: "alice"}, {CAROL: "carol"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    with made.server:
        yield made


@contextmanager
def serving(app: Any) -> Iterator[tuple[BackgroundServer, Notifier]]:
    """`app` on loopback, and its notifier; stopping it waits for its deliveries."""
    with BackgroundServer(app) as server:
        yield server, app.state.endpoint.notifier


def pay(server: BackgroundServer, amount: int) -> dict[str, Any]:
    answer = client(server, ALICE).chat.completions.create(
        model="echo", messages=[{"role": "user", "content": f"pay {amount}"}]
    )
    extra: dict[str, Any] = answer.model_extra["pilothouse"]
    assert extra["outcome"] == "paused"
    return extra


def approve(server: BackgroundServer, run_id: str, key: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/runs/{run_id}/approvals",
        json={"decisions": {key: True}},
        headers={"authorization": f"Bearer {CAROL}"},
        timeout=60,
    )


def test_a_waiting_run_is_announced_once_signed_without_its_details(
    world: World, receiver: Receiver
) -> None:
    app = create_app(
        world.agents, api_keys=CLIENTS, approvers=APPROVERS, webhooks=[hook(receiver.url)]
    )
    with serving(app) as (server, _):
        first = pay(server, 300)
        [request] = receiver.wait(1)
        event = verified(request)
        assert event["type"] == "run.waiting" and event["timestamp"].endswith("Z")
        data = event["data"]
        assert data["id"] == first["run_id"] and data["model"] == "echo"
        assert data["status"] == "paused" and data["url"] == f"/v1/runs/{first['run_id']}"
        assert data["pending"] == first["pending"]  # key, kind and tool only
        assert not {"acts_for", "input"} & data.keys()
        assert "arguments" not in data["pending"][0] and "reason" not in data["pending"][0]
        headers, body = request
        keys = [p["key"] for p in first["pending"]]
        assert headers["webhook-id"] == message_id(first["run_id"], keys)
        # the signature, computed here without the library: HMAC-SHA256 of id.timestamp.body
        raw = base64.b64decode(SECRET.removeprefix("whsec_"))
        signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
        digest = base64.b64encode(hmac.new(raw, signed, hashlib.sha256).digest()).decode()
        assert headers["webhook-signature"] == f"v1,{digest}"
        # the approver decides; the run ends, nothing more is announced for it
        decided = approve(server, first["run_id"], keys[0])
        assert decided.status_code == 200 and decided.json()["outcome"] == "final"
        second = pay(server, 5)
    # stopped: every delivery ended. One event per wait, and one when the decision ended
    # the first run: who decided, and (without details) not the client's answer
    events = [verified(r) for r in receiver.got]
    assert [(e["type"], e["data"]["id"]) for e in events] == [
        ("run.waiting", first["run_id"]),
        ("run.decided", first["run_id"]),
        ("run.waiting", second["run_id"]),
    ]
    closed = events[1]["data"]
    assert closed["status"] == "final" and closed["decided_by"] == "carol"
    assert "answer" not in closed and "pending" not in closed


def test_a_forged_altered_or_replayed_event_is_refused_by_the_receiver(
    world: World, receiver: Receiver
) -> None:
    app = create_app(world.agents, api_keys=CLIENTS, webhooks=[hook(receiver.url)])
    with serving(app) as (server, _):
        pay(server, 10)
        [(headers, body)] = receiver.wait(1)
    refuse = standardwebhooks.WebhookVerificationError
    other = standardwebhooks.Webhook(new_webhook_secret())
    with pytest.raises(refuse):
        other.verify(body, headers)  # signed with another secret
    with pytest.raises(refuse):  # one byte of the body changed
        verified((headers, body.replace(b'"paused"', b'"PAUSED"')))
    with pytest.raises(refuse):  # the id changed: the signature covers it
        verified(({**headers, "webhook-id": "msg_" + "0" * 32}, body))
    old = str(int(headers["webhook-timestamp"]) - 3600)  # replayed an hour later
    with pytest.raises(refuse):
        verified(({**headers, "webhook-timestamp": old}, body))
    with pytest.raises(refuse):
        verified(({k: v for k, v in headers.items() if k != "webhook-signature"}, body))


def test_details_put_the_call_and_whom_it_acts_for_in_the_event(
    world: World, receiver: Receiver
) -> None:
    app = create_app(world.agents, api_keys=CLIENTS, webhooks=[hook(receiver.url, details=True)])
    with serving(app) as (server, _):
        pay(server, 300)
        [request] = receiver.wait(1)
    data = verified(request)["data"]
    assert data["acts_for"] == "alice" and data["input"] == "pay 300"
    [waiting] = data["pending"]
    assert waiting["tool"] == "send_money" and waiting["arguments"] == {"amount": 300}
    assert waiting["reason"]


def ask_all(server: BackgroundServer) -> tuple[str, str]:
    """A run that fails (its model raises, with a secret in the error's text), one stopped
    by its step budget, and one that answers; the first two runs' ids."""
    import openai

    with pytest.raises(openai.InternalServerError) as caught:
        client(server, ALICE).chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "explode"}]
        )
    stopped = client(server, ALICE).chat.completions.create(
        model="stuck", messages=[{"role": "user", "content": "look it up"}]
    )
    fine = client(server, ALICE).chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "hello"}]
    )
    assert fine.model_extra["pilothouse"]["outcome"] == "final"
    assert stopped.model_extra["pilothouse"]["outcome"] == "budget_stop"
    return caught.value.response.headers["x-pilothouse-run"], stopped.model_extra["pilothouse"][
        "run_id"
    ]


def stuck_agent(tmp_path: Path) -> Agent[None, str]:
    """An agent that looks the same key up until its one step is spent."""

    @tool
    def lookup(key: str) -> str:
        """Look a key up."""
        return key

    model = ScriptedModel(lambda request: ToolCall("c", "lookup", {"key": "again"}))
    return Agent(model, "", [lookup], name="stuck", max_steps=1, store=str(tmp_path / "s.db"))


@pytest.mark.parametrize("details", [False, True])
def test_a_run_that_ends_without_an_answer_is_announced_as_failed(
    world: World, receiver: Receiver, tmp_path: Path, details: bool
) -> None:
    agents = {**world.agents, "stuck": stuck_agent(tmp_path)}
    app = create_app(agents, api_keys=CLIENTS, webhooks=[hook(receiver.url, details=details)])
    with serving(app) as (server, _):
        failed, stopped = ask_all(server)
        receiver.wait(2)
    events = {verified(r)["data"]["id"]: verified(r) for r in receiver.got}
    assert set(events) == {failed, stopped}  # the run that answered is not announced
    assert {e["type"] for e in events.values()} == {"run.failed"}
    error, stop = events[failed]["data"], events[stopped]["data"]
    assert (error["status"], error["model"], error["url"]) == (
        "error",
        "echo",
        f"/v1/runs/{failed}",
    )
    assert error["ended"]["reason"] == "error" and error["ended"]["kind"] == "RuntimeError"
    assert (stop["status"], stop["ended"]["reason"]) == ("budget_stop", "steps")
    if details:  # the operator asked for it: what went wrong, in the journal's words
        assert "cannot open" in error["ended"]["message"] and stop["ended"]["message"]
        assert error["input"] == "explode" and error["acts_for"] == "alice"
    else:  # by default, no text of the run: an error's message may hold anything
        assert "message" not in error["ended"] and "message" not in stop["ended"]
        assert all(SERVER_SECRET not in body.decode() for _, body in receiver.got)
    assert receiver.got[0][0]["webhook-id"] in {
        message_id(failed, ["failed"]),
        message_id(stopped, ["failed"]),
    }


def test_a_failing_receiver_gets_the_same_event_again_until_it_takes_it(world: World) -> None:
    receiver = Receiver([503, 429, 500])
    app = create_app(world.agents, api_keys=CLIENTS, webhooks=[hook(receiver.url)])
    with receiver.server, serving(app) as (server, notifier):
        extra = pay(server, 20)
        requests = receiver.wait(4)
    assert len(receiver.got) == 4  # taken at the fourth attempt: no more after it
    assert len({r[0]["webhook-id"] for r in requests}) == 1
    assert all(verified(r)["data"]["id"] == extra["run_id"] for r in requests)
    [delivery] = notifier.delivered
    assert delivery.delivered and delivery.attempts == 4 and delivery.status == 204


@pytest.mark.parametrize("status", [400, 404, 302])
def test_a_refusing_or_redirecting_receiver_is_not_retried(world: World, status: int) -> None:
    receiver = Receiver([status])
    app = create_app(world.agents, api_keys=CLIENTS, webhooks=[hook(receiver.url)])
    with receiver.server, serving(app) as (server, notifier):
        pay(server, 30)
        receiver.wait(1)
    assert len(receiver.got) == 1  # the redirect is not followed either
    [delivery] = notifier.delivered
    assert not delivery.delivered and delivery.attempts == 1 and delivery.status == status


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: nothing listens there


def test_an_unreachable_receiver_costs_the_client_nothing(world: World) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/hook"
    app = create_app(world.agents, api_keys=CLIENTS, webhooks=[hook(url, attempts=3)])
    with serving(app) as (server, notifier):
        extra = pay(server, 40)
        assert extra["pending"][0]["tool"] == "send_money"
    [delivery] = notifier.delivered
    assert not delivery.delivered and delivery.attempts == 3 and delivery.status is None
    assert delivery.error.startswith("ConnectError")


def test_a_receiver_that_hangs_does_not_hold_the_answer_back(world: World) -> None:
    hold = threading.Event()
    receiver = Receiver(hold=hold)
    app = create_app(world.agents, api_keys=CLIENTS, webhooks=[hook(receiver.url)])
    try:
        with receiver.server, serving(app) as (server, notifier):
            assert pay(server, 50)["outcome"] == "paused"  # answered, the event still held
            receiver.wait(1)
            assert not hold.is_set() and notifier.delivered == []
            hold.set()
    finally:
        hold.set()
    assert [d.delivered for d in notifier.delivered] == [True]


def test_a_run_waiting_when_the_endpoint_starts_is_announced_again_with_its_id(
    world: World, receiver: Receiver
) -> None:
    with world.serve(api_keys=CLIENTS) as server:  # no webhooks: nobody was told
        before = pay(server, 60)
    webhooks = [hook(receiver.url)]
    for round_ in (1, 2):  # each start announces it; the id lets a receiver drop repeats
        app = create_app(world.agents, api_keys=CLIENTS, webhooks=webhooks)
        with serving(app):
            receiver.wait(round_)
    ids = {r[0]["webhook-id"] for r in receiver.got}
    assert len(receiver.got) == 2 and ids == {
        message_id(before["run_id"], [p["key"] for p in before["pending"]])
    }


def test_a_run_that_waits_again_after_a_decision_is_announced_again(
    world: World, receiver: Receiver
) -> None:
    @tool(requires_approval=True, effect="side_effect")
    def pay_invoice(number: int) -> str:
        """Pay an invoice (a person approves each)."""
        return f"paid invoice {number}"

    def reply(request: ModelRequest) -> Any:
        done = sum(1 for m in request.messages if m.role == "tool")
        if done < 2:
            return ToolCall(f"c{done}", "pay_invoice", {"number": done + 1})
        return "both paid"

    clerk = Agent(
        ScriptedModel(reply, record=False), tools=[pay_invoice], name="clerk", store=world.store
    )
    app = create_app([clerk], api_keys=CLIENTS, approvers=APPROVERS, webhooks=[hook(receiver.url)])
    with serving(app) as (server, _):
        answer = client(server, ALICE).chat.completions.create(
            model="clerk", messages=[{"role": "user", "content": "pay both invoices"}]
        )
        run_id = answer.model_extra["pilothouse"]["run_id"]
        for round_ in (1, 2):
            [*_, request] = receiver.wait(round_)
            data = verified(request)["data"]
            key = data["pending"][0]["key"]
            decided = approve(server, run_id, key)
            assert decided.status_code == 200
        assert decided.json()["answer"] == "both paid"
    # a wait, the next wait after the first decision, then the end after the second
    kinds = [(verified(r)["type"], r[0]["webhook-id"]) for r in receiver.got]
    assert [kind for kind, _ in kinds] == ["run.waiting", "run.waiting", "run.decided"]
    assert len({msg_id for _, msg_id in kinds}) == 3


async def test_one_process_announces_one_wait_once(world: World, receiver: Receiver) -> None:
    waiting = await world.agents["echo"].run("pay 80")
    assert waiting.outcome == "paused"
    notifier = Notifier([hook(receiver.url)], served_agents(world.agents))
    notifier.announce(waiting.run_id)
    assert notifier.announce_waiting() == 0  # the same wait: already announced
    notifier.announce(waiting.run_id)
    await notifier.idle()
    await notifier.close(0)
    assert len(receiver.got) == 1 and [d.delivered for d in notifier.delivered] == [True]
    notifier.announce("no-such-run")  # nothing to announce, nothing raised
    assert len(notifier.delivered) == 1


def test_a_webhook_is_checked_when_it_is_made() -> None:
    for url in ("ftp://example.com/hook", "hook", "http:///hook", "https://u:p@example.com/"):
        with pytest.raises(ConfigurationError):
            Webhook(url, SECRET)
    short = "whsec_" + base64.b64encode(b"x" * 8).decode()
    for secret in ("", "not-a-secret", "whsec_%%%", short):
        with pytest.raises(ConfigurationError):
            Webhook("https://example.com/hook", secret)
    with pytest.raises(ConfigurationError):
        Webhook("https://example.com/hook", SECRET, attempts=0)
    assert SECRET not in repr(Webhook("https://example.com/hook", SECRET))


def test_retries_back_off_doubling_and_honour_retry_after_within_the_cap() -> None:
    webhook = Webhook("https://example.com/hook", SECRET, first_delay=1, max_delay=60)
    assert [webhook.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 32, 60]
    assert webhook.delay(1, "30") == 30 and webhook.delay(5, "3") == 16
    assert webhook.delay(1, "86400") == 60  # a receiver cannot park a delivery for a day
    for odd in ("soon", "-5", "1.5", "²", "Wed, 21 Oct 2026 07:28:00 GMT"):
        assert webhook.delay(1, odd) == 1
    assert webhook.delay(10_000) == 60  # no overflow however many attempts


def test_serve_agent_needs_the_secret_with_the_webhook(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("not-a-secret\n")
    runs = [
        ["--webhook", "https://example.com/hook"],
        ["--webhook", "https://example.com/hook", "--webhook-secret-file", str(secret_file)],
        ["--webhook", "https://example.com/hook", "--webhook-secret-file", str(tmp_path / "no")],
    ]
    expected = ["go together", "starts with 'whsec_'", "cannot read the webhook secret"]
    examples = str(Path(__file__).resolve().parents[2] / "examples")
    for args, message in zip(runs, expected, strict=True):
        done = subprocess.run(
            [sys.executable, "-m", "pilothouse.cli", "serve-agent", "serve_agent:agents", *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=_env_with(examples),
            timeout=120,
        )
        assert done.returncode != 0 and message in " ".join(done.stderr.split()), done.stderr


def _env_with(path: str) -> dict[str, str]:
    import os

    env = {**os.environ, "COLUMNS": "250"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (path, env.get("PYTHONPATH", "")) if p)
    env.pop("PILOTHOUSE_STORE", None)
    return env


def test_the_event_body_is_compact_json_of_the_run(world: World, receiver: Receiver) -> None:
    app = create_app(world.agents, api_keys=CLIENTS, webhooks=[hook(receiver.url)])
    with serving(app) as (server, _):
        pay(server, 70)
        [(headers, body)] = receiver.wait(1)
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == verified((headers, body))
    assert b": " not in body and headers["user-agent"] == "pilothouse-webhooks"


def test_the_webhooks_example_runs_as_written(tmp_path: Path) -> None:
    result = run_example("serve_webhooks.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "a forged event: 401" in out
    assert "bot told: run.waiting refund({'order_id': 'A1001', 'amount': 49.9})" in out
    assert "bot approved: final: Done: refunded 49.90 for A1001." in out
    assert "bot told: run.decided by carol" in out
    assert "bot left it for a person: 420.00 is over 100.00" in out
    assert "refunds made: ['A1001']" in out


def test_a_receiver_that_answers_without_end_is_not_read(world: World) -> None:
    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    async def endless() -> AsyncIterator[bytes]:
        while True:  # a body that never ends: the endpoint must not try to read it
            yield b"x" * 65536
            await asyncio.sleep(0)

    async def answer(request: Any) -> StreamingResponse:
        await request.body()
        return StreamingResponse(endless(), status_code=200)

    app_of_receiver = Starlette(routes=[Route("/hook", answer, methods=["POST"])])
    with BackgroundServer(app_of_receiver) as receiving:
        app = create_app(world.agents, api_keys=CLIENTS, webhooks=[hook(receiving.url + "/hook")])
        with serving(app) as (server, notifier):
            pay(server, 90)
    [delivery] = notifier.delivered
    assert delivery.delivered and delivery.status == 200 and delivery.attempts == 1


def test_a_run_paused_outside_the_endpoint_is_announced_by_the_watch(
    world: World, receiver: Receiver
) -> None:
    app = create_app(
        world.agents, api_keys=CLIENTS, webhooks=[hook(receiver.url)], watch_seconds=0.05
    )
    with serving(app):
        # a worker (here: this thread) runs the served agent on the same store; it pauses
        outside = world.agents["echo"].run_sync("pay 70")
        assert outside.outcome == "paused"
        [request] = receiver.wait(1)  # found by a later look, not by any request
        other = world.agents["echo"].run_sync("pay 71")
        receiver.wait(2)
    assert [verified(r)["data"]["id"] for r in receiver.got] == [outside.run_id, other.run_id]
    assert verified(request)["type"] == "run.waiting"  # each wait once, however many looks


def test_watch_seconds_cannot_be_negative(world: World) -> None:
    with pytest.raises(ValueError, match="watch_seconds"):
        create_app(world.agents, webhooks=[hook("http://127.0.0.1:9/hook")], watch_seconds=-1)
