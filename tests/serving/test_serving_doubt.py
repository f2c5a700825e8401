"""A served run in doubt: the client is told plainly, an approver settles it over HTTP.

The world's `transfer_money` hands the money to the bank and never gets an answer: its
timeout stops the call, and since the tool has no `reconcile`, the run stops
``in_doubt``. The client (the official `openai` package) gets a clear 409 naming the
run, never internals. An approver finds the run in the queue, reads the call, and
settles it with what the bank's records say; the run then ends with the model reading
that result, and the money was sent once. Every boundary is tried as an attack: a
client's key, another client, self-settlement, a key not in doubt, wrong values, a
second settlement, approving a run in doubt and settling a paused run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from serving_world import World, client, post_decision
from webhook_receiver import Receiver, hook, verified

from pilothouse.events import DoubtSettled, ToolReturned
from pilothouse.serving import BackgroundServer, create_app
from pilothouse.serving.notify import message_id

ALICE, BOB = "alice-client-key-0001", "bob-client-key-00002"
CAROL, ALICE_APPROVER = "carol-approver-key-01", "alice-approver-key-01"
CLIENTS = {ALICE: "alice", BOB: "bob"}
APPROVERS = {CAROL: "carol", ALICE_APPROVER: "alice"}


def ask(server: BackgroundServer, text: str, key: str = ALICE) -> Any:
    return client(server, key).chat.completions.create(
        model="echo", messages=[{"role": "user", "content": text}]
    )


def transfer_in_doubt(server: BackgroundServer, amount: int) -> str:
    """Alice asks for a transfer; the run stops in doubt. Returns the run id."""
    with pytest.raises(openai.ConflictError) as err:
        ask(server, f"transfer {amount}")
    body = err.value.body
    assert isinstance(body, dict) and body["code"] == "run_in_doubt", body
    run_id = err.value.response.headers["x-pilothouse-run"]
    message = body["message"]
    assert "could not confirm whether transfer_money took effect" in message
    assert run_id in message and "Nothing is done again until a person checks" in message
    assert "ToolCallInDoubtError" not in message and "idempotency" not in message
    assert err.value.response.headers["x-should-retry"] == "false"
    return run_id


def get(server: BackgroundServer, path: str, key: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.get(f"{server.url}{path}", headers=headers, timeout=30)


def post(
    server: BackgroundServer, run_id: str, key: str | None, body: Any, route: str = "settlements"
) -> httpx.Response:
    return post_decision(server, run_id, route, key, body)


def settled(world: World, run_id: str) -> list[tuple[bool, str | None, str]]:
    return [
        (e.happened, e.result, e.by)
        for e in world.store.events(run_id)
        if isinstance(e, DoubtSettled)
    ]


def test_an_approver_settles_a_transfer_in_doubt_and_it_is_never_sent_twice(
    world: World,
) -> None:
    with world.serve(api_keys=CLIENTS, approvers=APPROVERS) as server:
        run_id = transfer_in_doubt(server, 70)
        queue = get(server, "/v1/runs?status=in_doubt", CAROL).json()["data"]
        assert [r["id"] for r in queue] == [run_id]
        [doubt] = queue[0]["in_doubt"]
        assert doubt["tool"] == "transfer_money" and doubt["arguments"] == {"amount": 70}
        assert queue[0]["status"] == "in_doubt" and queue[0]["acts_for"] == "alice"
        mine = get(server, f"/v1/runs/{run_id}", ALICE).json()
        assert mine["status"] == "in_doubt" and mine["in_doubt"][0]["tool"] == "transfer_money"
        assert "arguments" not in mine["in_doubt"][0] and "acts_for" not in mine
        done = post(server, run_id, CAROL, {"settle": {doubt["key"]: "transferred 70, ref B-9"}})
        assert done.status_code == 200, done.text
        assert done.json()["outcome"] == "final" and done.json()["status"] == "final"
        assert done.json()["answer"] == "transfer: transferred 70, ref B-9"
        assert "in_doubt" not in done.json()
        assert get(server, f"/v1/runs/{run_id}", ALICE).json()["answer"].endswith("ref B-9")
        again = post(server, run_id, CAROL, {"settle": {doubt["key"]: True}})
        assert again.status_code == 409 and again.json()["error"]["code"] == "not_in_doubt"
        assert get(server, "/v1/runs?status=in_doubt", CAROL).json()["data"] == []
    assert world.gate.transfers == [70]  # the bank was asked once
    assert settled(world, run_id) == [(True, "transferred 70, ref B-9", "approver:carol")]


def test_a_transfer_that_did_not_happen_is_told_to_the_model(world: World) -> None:
    with world.serve(api_keys=CLIENTS, approvers=APPROVERS) as server:
        run_id = transfer_in_doubt(server, 20)
        key = get(server, f"/v1/runs/{run_id}", CAROL).json()["in_doubt"][0]["key"]
        done = post(server, run_id, CAROL, {"settle": {key: False}})
        assert done.status_code == 200, done.text
        assert "did not take effect" in done.json()["answer"]
    results = [e.result for e in world.store.events(run_id) if isinstance(e, ToolReturned)]
    assert len(results) == 1 and results[0].is_error
    assert world.gate.transfers == [20] and settled(world, run_id) == [
        (False, None, "approver:carol")
    ]


def test_nobody_but_another_approver_settles_and_a_refusal_settles_nothing(
    world: World,
) -> None:
    with world.serve(api_keys=CLIENTS, approvers=APPROVERS) as server:
        run_id = transfer_in_doubt(server, 90)
        key = get(server, f"/v1/runs/{run_id}", CAROL).json()["in_doubt"][0]["key"]
        refusals = [
            (post(server, run_id, ALICE, {"settle": {key: True}}), 403, "not_an_approver"),
            (post(server, run_id, None, {"settle": {key: True}}), 401, "invalid_api_key"),
            (post(server, run_id, ALICE_APPROVER, {"settle": {key: True}}), 403, "self_approval"),
            (post(server, run_id, CAROL, {"settle": {f"{run_id}:9:0": True}}), 400, "not_in_doubt"),
            (post(server, "no-such-run", CAROL, {"settle": {key: True}}), 404, "run_not_found"),
            (
                post(server, run_id, CAROL, {"decisions": {key: True}}, "approvals"),
                409,
                "not_waiting",
            ),
        ]
        for response, status, code in refusals:
            assert response.status_code == status, response.text
            assert response.json()["error"]["code"] == code, response.text
        for body in (
            {"settle": {}},
            {"settle": {key: 5}},
            {"settle": {key: " "}},
            {"settle": [key]},
        ):
            response = post(server, run_id, CAROL, body)
            assert response.status_code == 400, (body, response.text)
        big = post(server, run_id, CAROL, {"settle": {key: "x" * 10_001}})
        assert big.status_code in (400, 413), big.text
        assert get(server, f"/v1/runs/{run_id}", BOB).status_code == 404  # not bob's run
        assert get(server, "/v1/runs?status=in_doubt", ALICE).status_code == 403
        assert get(server, "/v1/runs?status=final", CAROL).status_code == 400
        assert get(server, f"/v1/runs/{run_id}", CAROL).json()["status"] == "in_doubt"
        # a paused run is approved, not settled
        paused = ask(server, "pay 5").model_extra["pilothouse"]
        wrong = post(
            server, paused["run_id"], CAROL, {"settle": {paused["pending"][0]["key"]: True}}
        )
        assert wrong.status_code == 409 and wrong.json()["error"]["code"] == "not_in_doubt"
    assert settled(world, run_id) == [] and world.gate.transfers == [90]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    with made.server:
        yield made


def test_a_run_in_doubt_is_announced_and_its_settlement_closes_it(
    world: World, receiver: Receiver
) -> None:
    pytest.importorskip("standardwebhooks")
    app = create_app(
        world.agents, api_keys=CLIENTS, approvers=APPROVERS, webhooks=[hook(receiver.url)]
    )
    with BackgroundServer(app) as server:
        run_id = transfer_in_doubt(server, 40)
        [(headers, _)] = receiver.wait(1)
        key = get(server, f"/v1/runs/{run_id}", CAROL).json()["in_doubt"][0]["key"]
        done = post(server, run_id, CAROL, {"settle": {key: "transferred 40"}})
        assert done.status_code == 200, done.text
        receiver.wait(2)
    events = [verified(r) for r in receiver.got]
    assert [(e["type"], e["data"]["id"]) for e in events] == [
        ("run.in_doubt", run_id),
        ("run.decided", run_id),
    ]
    doubt = events[0]["data"]
    assert doubt["status"] == "in_doubt" and doubt["url"] == f"/v1/runs/{run_id}"
    assert doubt["in_doubt"] == [{"key": key, "tool": "transfer_money"}]  # no arguments
    assert "acts_for" not in doubt and "input" not in doubt
    assert events[1]["data"]["decided_by"] == "carol"
    # a restart announces a run still in doubt again, with the same id: none is left here
    again = create_app(world.agents, approvers=APPROVERS, webhooks=[hook(receiver.url)])
    assert again.state.endpoint.notifier.announce_waiting() == 0
    assert headers["webhook-id"] == message_id(run_id, ["in_doubt", key])
