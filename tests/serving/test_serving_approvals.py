"""Approvals over HTTP: a served run that waits for a person is decided by an approver.

Keyed endpoint: clients alice and bob; approvers carol and alice (alice holds an
approver key of her own, distinct from her client key). The run is a real agent's on a
real SQLite journal behind a loopback uvicorn; the client is the official `openai`
package, the approvers use httpx. Every boundary of `pilothouse.serving.approvals` is
tried as an attack: a client's key, no key, a forged owner header, self-approval, a key
the run does not wait for, a wrong value type, an oversized body, a second decision,
two approvers at once.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from serving_world import World, client, post_decision

from example_runs import run_example
from pilothouse import Agent, ScriptedModel, tool
from pilothouse.events import ApprovalGiven, ToolReturned
from pilothouse.exceptions import ConfigurationError
from pilothouse.messages import ToolCall
from pilothouse.models.base import ModelRequest
from pilothouse.serving import BackgroundServer, create_app
from pilothouse.tools import ask_human

ALICE, BOB = "alice-client-key-0001", "bob-client-key-00002"
CAROL, ALICE_APPROVER = "carol-approver-key-01", "alice-approver-key-01"
CLIENTS = {ALICE: "alice", BOB: "bob"}
APPROVERS = {CAROL: "carol", ALICE_APPROVER: "alice"}


def ask_to_pay(server: BackgroundServer, amount: int, key: str = ALICE) -> dict[str, Any]:
    answer = client(server, key).chat.completions.create(
        model="echo", messages=[{"role": "user", "content": f"pay {amount}"}]
    )
    extra: dict[str, Any] = answer.model_extra["pilothouse"]
    assert extra["outcome"] == "paused"
    return extra


def get(server: BackgroundServer, run_id: str, key: str | None, **headers: str) -> httpx.Response:
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    return httpx.get(f"{server.url}/v1/runs/{run_id}", headers=headers, timeout=30)


def post(server: BackgroundServer, run_id: str, key: str | None, body: Any) -> httpx.Response:
    return post_decision(server, run_id, "approvals", key, body)


def sent(world: World, run_id: str) -> list[str]:
    """What the payment tool returned, from the journal (a payment made is 'sent N')."""
    return [
        e.result.content
        for e in world.store.events(run_id)
        if isinstance(e, ToolReturned) and e.result.content.startswith("sent")
    ]


def given(world: World, run_id: str) -> list[tuple[bool, str]]:
    return [(e.approved, e.by) for e in world.store.events(run_id) if isinstance(e, ApprovalGiven)]


def test_an_approver_reads_the_waiting_call_and_approves_it_once(world: World) -> None:
    with world.serve(api_keys=CLIENTS, approvers=APPROVERS) as server:
        extra = ask_to_pay(server, 300)
        run_id, [pending] = extra["run_id"], extra["pending"]
        seen = get(server, run_id, CAROL).json()
        assert seen["status"] == "paused" and seen["acts_for"] == "alice"
        assert seen["input"] == "pay 300"
        [waiting] = seen["pending"]
        assert waiting["key"] == pending["key"] and waiting["arguments"] == {"amount": 300}
        assert waiting["tool"] == "send_money" and waiting["reason"] and waiting["agent"] == "echo"
        # the client who asked sees its run, without the arguments or the policy's reason
        mine = get(server, run_id, ALICE).json()
        assert mine["status"] == "paused" and mine["pending"][0]["tool"] == "send_money"
        assert "arguments" not in mine["pending"][0] and "acts_for" not in mine
        assert "agent" not in mine["pending"][0]
        decided = post(server, run_id, CAROL, {"decisions": {pending["key"]: True}})
        assert decided.status_code == 200, decided.text
        assert decided.json()["outcome"] == "final" and decided.json()["answer"] == "paid"
        assert get(server, run_id, ALICE).json()["answer"] == "paid"
        again = post(server, run_id, CAROL, {"decisions": {pending["key"]: True}})
        assert again.status_code == 409 and again.json()["error"]["code"] == "not_waiting"
    assert sent(world, run_id) == ["sent 300"]  # once
    assert given(world, run_id) == [(True, "approver:carol")]


def test_a_declined_payment_is_never_made(world: World) -> None:
    with world.serve(api_keys=CLIENTS, approvers=APPROVERS) as server:
        extra = ask_to_pay(server, 50)
        key = extra["pending"][0]["key"]
        decided = post(server, extra["run_id"], CAROL, {"decisions": {key: False}})
        assert decided.status_code == 200 and decided.json()["outcome"] == "final"
    assert sent(world, extra["run_id"]) == []
    assert given(world, extra["run_id"]) == [(False, "approver:carol")]


def test_nobody_but_an_approver_decides_and_a_refusal_decides_nothing(world: World) -> None:
    with world.serve(api_keys=CLIENTS, approvers=APPROVERS) as server:
        extra = ask_to_pay(server, 900)
        run_id, key = extra["run_id"], extra["pending"][0]["key"]
        body = {"decisions": {key: True}}
        # the requester's own client key, another client's, none, a made-up one
        assert post(server, run_id, ALICE, body).status_code == 403
        assert post(server, run_id, BOB, body).status_code == 403
        assert post(server, run_id, None, body).status_code == 401
        assert post(server, run_id, "x" * 24, body).status_code == 401
        # alice as an approver may not decide a run that acts for alice
        own = post(server, run_id, ALICE_APPROVER, body)
        assert own.status_code == 403 and own.json()["error"]["code"] == "self_approval"
        # a key the run does not wait for, a value of the wrong type, nothing to decide
        wrong_key = post(server, run_id, CAROL, {"decisions": {key + "0": True}})
        assert wrong_key.status_code == 400 and wrong_key.json()["error"]["code"] == "not_waiting"
        assert post(server, run_id, CAROL, {"decisions": {key: "yes"}}).status_code == 400
        assert post(server, run_id, CAROL, {"decisions": {}}).status_code == 400
        assert post(server, run_id, CAROL, {"approve": [key]}).status_code == 400
        # a body too deep or too large, and not JSON at all
        deep: Any = True
        for _ in range(200):
            deep = {"d": deep}
        assert post(server, run_id, CAROL, {"decisions": {key: deep}}).status_code == 400
        assert post(server, run_id, CAROL, b"x" * (2 * 1024 * 1024)).status_code == 413
        assert post(server, run_id, CAROL, b"{not json").status_code == 400
        # a run that does not exist, and someone else's run read by a client
        assert post(server, "nope", CAROL, body).status_code == 404
        assert get(server, run_id, BOB).status_code == 404
        assert get(server, run_id, BOB, **{"x-pilothouse-owner": "alice"}).status_code == 404
        assert get(server, run_id, None).status_code == 401
        # after all of it, the run still waits, undecided, and nothing was paid
        assert get(server, run_id, CAROL).json()["status"] == "paused"
    assert given(world, run_id) == [] and sent(world, run_id) == []


def test_two_approvers_at_once_decide_the_run_once(world: World) -> None:
    with world.serve(api_keys=CLIENTS, approvers=APPROVERS) as server:
        extra = ask_to_pay(server, 120, key=BOB)  # alice's approver key may decide bob's run
        run_id, key = extra["run_id"], extra["pending"][0]["key"]
        codes: list[int] = []
        start = threading.Barrier(2)

        def decide(approver: str) -> None:
            start.wait()
            codes.append(post(server, run_id, approver, {"decisions": {key: True}}).status_code)

        threads = [threading.Thread(target=decide, args=(k,)) for k in (CAROL, ALICE_APPROVER)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(codes) == [200, 409]
    assert sent(world, run_id) == ["sent 120"]
    assert len(given(world, run_id)) == 1


def test_without_approver_keys_there_are_no_approval_routes(world: World) -> None:
    with world.serve(api_keys=CLIENTS) as server:
        extra = ask_to_pay(server, 10)
        assert get(server, extra["run_id"], ALICE).status_code == 404
        assert post(server, extra["run_id"], ALICE, {"decisions": {}}).status_code == 404


def test_a_key_that_is_both_a_clients_and_an_approvers_is_refused_at_start(
    world: World,
) -> None:
    with pytest.raises(ConfigurationError, match="approvers need keys of their own"):
        create_app(world.agents, api_keys=CLIENTS, approvers={ALICE: "alice"})


def test_open_endpoint_approvals_and_the_answer_joining_the_session(world: World) -> None:
    # An open endpoint (no client keys): only approvers read runs; a paused turn of a
    # session gets its answer into the session once decided, for the client's next turn.
    with world.serve(approvers=APPROVERS) as server:
        api = client(server)
        first = api.chat.completions.with_raw_response.create(
            model="echo",
            messages=[{"role": "user", "content": "pay 70"}],
            extra_headers={"x-pilothouse-session": "new"},
        )
        session = first.headers["x-pilothouse-session"]
        extra = first.parse().model_extra["pilothouse"]
        assert get(server, extra["run_id"], None).status_code == 404  # open: not a reader
        key = extra["pending"][0]["key"]
        assert post(server, extra["run_id"], CAROL, {"decisions": {key: True}}).status_code == 200
        later = api.chat.completions.create(
            model="echo",
            messages=[{"role": "user", "content": "thanks"}],
            extra_headers={"x-pilothouse-session": session},
        )
    assert later.choices[0].message.content == "echo: thanks [2 earlier]"
    assert sent(world, extra["run_id"]) == ["sent 70"]


def test_the_approvers_queue_lists_the_runs_waiting_newest_first(world: World) -> None:
    with world.serve(api_keys=CLIENTS, approvers=APPROVERS) as server:
        first = ask_to_pay(server, 11)
        second = ask_to_pay(server, 22, key=BOB)
        decided = ask_to_pay(server, 33)
        key = decided["pending"][0]["key"]
        assert post(server, decided["run_id"], CAROL, {"decisions": {key: True}}).is_success
        client(server, ALICE).chat.completions.create(  # a run that never waited
            model="echo", messages=[{"role": "user", "content": "hello"}]
        )

        def queue(key: str | None, query: str = "") -> httpx.Response:
            headers = {"authorization": f"Bearer {key}"} if key else {}
            return httpx.get(f"{server.url}/v1/runs{query}", headers=headers, timeout=30)

        listed = queue(CAROL).json()["data"]
        assert [r["id"] for r in listed] == [second["run_id"], first["run_id"]]
        assert [r["acts_for"] for r in listed] == ["bob", "alice"]
        assert listed[0]["pending"][0]["arguments"] == {"amount": 22}
        assert [r["id"] for r in queue(CAROL, "?limit=1").json()["data"]] == [second["run_id"]]
        # clients cannot read the queue; bad parameters are named
        assert queue(ALICE).status_code == 403
        assert queue(None).status_code == 401
        for bad in ("?limit=0", "?limit=101", "?limit=abc", "?limit=1e3", "?limit=0050"):
            assert queue(CAROL, bad).status_code == 400, bad
        assert queue(CAROL, "?status=final").status_code == 400


def test_the_approvals_example_runs_as_written(tmp_path: Path) -> None:
    result = run_example("serve_approvals.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "client reads: This request is waiting for a person to approve refund" in out
    assert "approver's queue: 1 run waiting, for ann: refund(" in out
    assert "approved: the run is final: Done: refunded 49.90 for A1001." in out
    assert "client reads its run: final, Done: refunded 49.90 for A1001." in out
    assert "approving again: 409 not_waiting" in out
    assert "refunds made: ['A1001']" in out


def test_a_question_for_a_person_is_answered_with_text(world: World) -> None:
    def reply(request: ModelRequest) -> Any:
        told = [m.content for m in request.messages if m.role == "tool"]
        return (
            f"Painting it {told[0]}."
            if told
            else ToolCall("q1", "ask_human", {"question": "Which colour?"})
        )

    painter = Agent(
        ScriptedModel(reply, record=False), tools=[ask_human], name="painter", store=world.store
    )
    app = create_app([painter], api_keys=CLIENTS, approvers=APPROVERS)
    with BackgroundServer(app) as server:
        answer = client(server, ALICE).chat.completions.create(
            model="painter", messages=[{"role": "user", "content": "paint the fence"}]
        )
        extra = answer.model_extra["pilothouse"]
        run_id, [pending] = extra["run_id"], extra["pending"]
        assert pending["kind"] == "question"
        key = pending["key"]
        for bad in (True, "", "   ", "x" * 10_001):
            assert post(server, run_id, CAROL, {"decisions": {key: bad}}).status_code == 400
        decided = post(server, run_id, CAROL, {"decisions": {key: "blue"}})
        assert decided.status_code == 200, decided.text
        assert decided.json()["answer"] == "Painting it blue."


def test_other_agents_paused_runs_do_not_crowd_the_queue(world: World) -> None:
    # A store shared with an agent the endpoint does not serve: its newer paused runs
    # are not listed, and do not push the served agent's run out of a small window.
    @tool(requires_approval=True, effect="side_effect")
    def wire(amount: int) -> str:
        """Wire money (a person approves)."""
        return "wired"

    with world.serve(api_keys=CLIENTS, approvers=APPROVERS) as server:
        served = ask_to_pay(server, 5)
        other = Agent(
            ScriptedModel([ToolCall("w", "wire", {"amount": 1})] * 3, record=False),
            tools=[wire],
            name="back-office",
            store=world.store,
        )
        hidden = [other.run_sync("wire 1") for _ in range(3)]
        assert all(h.outcome == "paused" for h in hidden)
        response = httpx.get(
            f"{server.url}/v1/runs?limit=1",
            headers={"authorization": f"Bearer {CAROL}"},
            timeout=30,
        )
    assert [r["id"] for r in response.json()["data"]] == [served["run_id"]]
