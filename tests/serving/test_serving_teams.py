"""A team behind the endpoint: handoffs, a member that waits for a person, sessions.

The team is `examples/team_handoff.py`'s shape with reactive scripted models: triage
hands a refund to the refunds agent (context ``summary``, a typed payload); refunds
over 50 EUR need a person (policy ``ask``). Served on a loopback uvicorn with a real
SQLite journal, called with the official `openai` client; the approver decides over
HTTP and a webhook receiver is told. What a team adds to a served agent is checked: the
waiting run is a member's (a child of the root, which stops ``interrupted``) yet the
client, the queue, the run's page, the decision and the webhook all speak of the root
run the client was given.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel
from serving_world import client
from webhook_receiver import Receiver, hook, verified

from example_runs import run_example
from pilothouse import Agent, ScriptedModel, tool
from pilothouse.exceptions import ConfigurationError
from pilothouse.messages import ToolCall
from pilothouse.models.base import ModelRequest
from pilothouse.policy import Policy, Rule
from pilothouse.runtime.journal import SQLiteStore
from pilothouse.serving import BackgroundServer, create_app
from pilothouse.teams import Handoff, Supervisor, Team

ALICE, CAROL = "alice-client-key-0001", "carol-approver-key-01"
CLIENTS, APPROVERS = {ALICE: "alice"}, {CAROL: "carol"}


class Refund(BaseModel):
    order_id: str
    amount_eur: float


def triage_model() -> ScriptedModel:
    def reply(request: ModelRequest) -> Any:
        last = max(i for i, m in enumerate(request.messages) if m.role == "user")
        text = request.messages[last].content
        asked = re.search(r"refund (A-\d+) (\d+)", text)
        if asked is None:
            earlier = sum(1 for m in request.messages[:last] if m.role in ("user", "assistant"))
            return f"triage: {text} [{earlier} earlier]"
        return ToolCall(
            "t1",
            "transfer_to_refunds",
            {
                "reason": "a refund",
                "payload": {"order_id": asked[1], "amount_eur": float(asked[2])},
                "summary": f"wants {asked[2]} EUR back for {asked[1]}",
            },
        )

    return ScriptedModel(reply, record=False)


def refunds_model() -> ScriptedModel:
    def reply(request: ModelRequest) -> Any:
        done = [m.content for m in request.messages if m.role == "tool"]
        if done:
            return f"Done: {done[-1]}." if done[-1].startswith("refunded") else "Not refunded."
        text = " ".join(str(m.content) for m in request.messages)
        order = re.search(r'"order_id": ?"(A-\d+)"', text)
        amount = re.search(r'"amount_eur": ?([\d.]+)', text)
        assert order is not None and amount is not None, text
        return ToolCall(
            "r1", "issue_refund", {"order_id": order[1], "amount_eur": float(amount[1])}
        )

    return ScriptedModel(reply, record=False)


def make_team(store: SQLiteStore, made: list[str], *, bank_hangs: bool = False) -> Team:
    @tool(effect="side_effect", timeout=0.2)
    async def issue_refund(order_id: str, amount_eur: float) -> str:
        """Refund an order."""
        made.append(order_id)
        if bank_hangs:  # the refund went out; the bank's answer never comes back
            await asyncio.sleep(3600)
        return f"refunded {amount_eur} EUR on {order_id}"

    policy = Policy(
        [
            Rule("issue_refund", "ask", when={"args": {"amount_eur": {"exclusiveMinimum": 50}}}),
            Rule("issue_refund", "allow"),
        ]
    )
    refunds = Agent(
        refunds_model(), "You refund.", [issue_refund], name="refunds", store=store, policy=policy
    )
    triage = Agent(triage_model(), "You triage.", name="triage", store=store)
    handoff = Handoff(refunds, "Refund requests.", context="summary", payload=Refund)
    return Team(triage, handoffs={"triage": [handoff]}, name="desk")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "journal.db")
    yield opened
    opened.close()


def ask(server: BackgroundServer, text: str, **options: Any) -> Any:
    return client(server, ALICE).chat.completions.create(
        model="desk", messages=[{"role": "user", "content": text}], **options
    )


def as_approver(server: BackgroundServer, path: str, body: Any = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {CAROL}"}
    if body is None:
        return httpx.get(server.url + path, headers=headers, timeout=60)
    return httpx.post(server.url + path, json=body, headers=headers, timeout=60)


def test_a_team_member_that_waits_is_decided_through_the_root_run(store: SQLiteStore) -> None:
    made: list[str] = []
    team = make_team(store, made)
    receiver = Receiver()
    app = create_app(
        {"desk": team}, api_keys=CLIENTS, approvers=APPROVERS, webhooks=[hook(receiver.url)]
    )
    with receiver.server, BackgroundServer(app) as server:
        answer = ask(server, "please refund A-7 80")
        extra = answer.model_extra["pilothouse"]
        root = extra["run_id"]
        assert extra["outcome"] == "paused" and extra["pending"][0]["tool"] == "issue_refund"
        assert "waiting for a person to approve issue_refund" in answer.choices[0].message.content
        # in the store: the member's run waits, the root stopped until the decision
        [member] = store.children(root)
        assert (member.agent, member.status) == ("refunds", "paused")
        assert store.get_run(root).status == "interrupted"
        # the approver reads the root run: the member's call in full
        seen = as_approver(server, f"/v1/runs/{root}").json()
        assert seen["status"] == "paused" and seen["acts_for"] == "alice"
        [waiting] = seen["pending"]
        assert waiting["arguments"] == {"order_id": "A-7", "amount_eur": 80.0}
        assert waiting["agent"] == "refunds"  # the member whose run waits
        assert waiting["key"] == extra["pending"][0]["key"]
        # the queue lists the root once, not the member's run
        queue = as_approver(server, "/v1/runs?status=paused").json()["data"]
        assert [r["id"] for r in queue] == [root]
        # the webhook names the root run too
        [event] = receiver.wait(1)
        assert verified(event)["data"]["id"] == root
        assert as_approver(server, f"/v1/runs/{member.run_id}").status_code == 404
        decided = as_approver(
            server, f"/v1/runs/{root}/approvals", {"decisions": {waiting["key"]: True}}
        )
        assert decided.status_code == 200, decided.text
        assert decided.json()["answer"] == "Done: refunded 80.0 EUR on A-7."
        again = as_approver(
            server, f"/v1/runs/{root}/approvals", {"decisions": {waiting["key"]: True}}
        )
        assert again.status_code == 409
        mine = httpx.get(
            f"{server.url}/v1/runs/{root}",
            headers={"authorization": f"Bearer {ALICE}"},
            timeout=60,
        ).json()
        assert mine["status"] == "final" and mine["answer"] == decided.json()["answer"]
        assert as_approver(server, "/v1/runs?status=paused").json()["data"] == []
    assert made == ["A-7"]  # once
    assert store.get_run(root).status == "final"
    assert [verified(r)["type"] for r in receiver.got] == ["run.waiting", "run.decided"]


def test_a_small_refund_needs_nobody_and_a_team_keeps_its_session(store: SQLiteStore) -> None:
    made: list[str] = []
    app = create_app({"desk": make_team(store, made)}, api_keys=CLIENTS)
    with BackgroundServer(app) as server:
        small = ask(server, "please refund A-8 20")
        assert small.choices[0].message.content == "Done: refunded 20.0 EUR on A-8."
        turns = [
            ask(server, text, extra_headers={"x-pilothouse-session": "chat"})
            for text in ("hello", "still there?")
        ]
        assert turns[0].choices[0].message.content == "triage: hello [0 earlier]"
        assert turns[1].choices[0].message.content == "triage: still there? [2 earlier]"
        streamed = ask(server, "hi", stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
        assert text == "triage: hi [0 earlier]"
        steps = ask(server, "refund A-9 10", stream=True, stream_options={"include_steps": True})
        notes = [c.model_extra["pilothouse"].get("event") for c in steps if c.model_extra]
        assert {"type": "child_run", "step": 1, "agent": "refunds"} in notes
    assert made == ["A-8", "A-9"]


def test_a_team_and_its_entry_agent_on_one_store_are_refused(store: SQLiteStore) -> None:
    team = make_team(store, [])
    triage = team.members["triage"].agent
    with pytest.raises(ConfigurationError, match="could not be told apart"):
        create_app({"desk": team, "triage": triage})
    assert list(create_app([team]).state.endpoint.agents) == ["desk"]  # the team's name
    unnamed = Team(Agent(triage_model(), name="front", store=store))
    with pytest.raises(ConfigurationError, match="serve a dict"):
        create_app([unnamed])  # its default name, "team:front", is no model name
    create_app({"desk": team, "refunds": team.members["refunds"].agent})  # not a root agent


def test_a_team_whose_member_needs_deps_is_refused(store: SQLiteStore) -> None:
    needy = Agent(refunds_model(), name="needy", store=store, deps_type=dict)
    team = Team(
        Agent(triage_model(), name="front", store=store),
        handoffs={"front": [Handoff(needy)]},
    )
    with pytest.raises(ConfigurationError, match="'needy' of model 'desk' declares deps_type"):
        create_app({"desk": team})


def test_the_served_team_example_runs_as_written(tmp_path: Path) -> None:
    result = run_example("serve_team.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "client reads: This request is waiting for a person to approve issue_refund" in out
    assert "queue: the client's root run waits for issue_refund({'order_id': 'A-7'" in out
    assert "approved: final: Refunded 80 EUR." in out
    assert "root run of triage: final" in out and "child run of refunds: final" in out


def test_a_supervisor_whose_member_waits_is_served_the_same_way(store: SQLiteStore) -> None:
    paid: list[int] = []

    @tool(effect="side_effect", requires_approval=True)
    def pay(amount: int) -> str:
        """Pay (a person approves each payment)."""
        paid.append(amount)
        return f"paid {amount}"

    def boss_reply(request: ModelRequest) -> Any:
        done = [m.content for m in request.messages if m.role == "tool"]
        return f"Boss: {done[0]}" if done else ToolCall("b1", "ask_payer", {"task": "pay 30"})

    def payer_reply(request: ModelRequest) -> Any:
        done = [m.content for m in request.messages if m.role == "tool"]
        return done[0] if done else ToolCall("p1", "pay", {"amount": 30})

    payer = Agent(ScriptedModel(payer_reply, record=False), tools=[pay], name="payer", store=store)
    boss = Agent(ScriptedModel(boss_reply, record=False), name="boss", store=store)
    app = create_app({"office": Supervisor(boss, [payer])}, api_keys=CLIENTS, approvers=APPROVERS)
    with BackgroundServer(app) as server:
        extra = (
            client(server, ALICE)
            .chat.completions.create(
                model="office", messages=[{"role": "user", "content": "pay the bill"}]
            )
            .model_extra["pilothouse"]
        )
        root = extra["run_id"]
        [waiting] = as_approver(server, f"/v1/runs/{root}").json()["pending"]
        assert (waiting["tool"], waiting["agent"], waiting["arguments"]) == (
            "pay",
            "payer",
            {"amount": 30},
        )
        decided = as_approver(
            server, f"/v1/runs/{root}/approvals", {"decisions": {waiting["key"]: True}}
        )
        assert decided.json()["answer"] == "Boss: paid 30"
    assert paid == [30]


def test_a_team_member_in_doubt_is_settled_through_the_root_run(store: SQLiteStore) -> None:
    made: list[str] = []
    receiver = Receiver()
    app = create_app(
        {"desk": make_team(store, made, bank_hangs=True)},
        api_keys=CLIENTS,
        approvers=APPROVERS,
        webhooks=[hook(receiver.url)],
        watch_seconds=0,  # only the request's own announcement can tell the receiver
    )
    with receiver.server, BackgroundServer(app) as server:
        with pytest.raises(openai.ConflictError) as err:
            ask(server, "please refund A-5 30")
        root = err.value.response.headers["x-pilothouse-run"]
        assert err.value.code == "run_in_doubt" and root in err.value.message
        [member] = store.children(root)
        assert {store.get_run(root).status, member.status} == {"in_doubt"}  # both stopped
        queue = as_approver(server, "/v1/runs?status=in_doubt").json()["data"]
        assert [r["id"] for r in queue] == [root]  # the root, not the member's run
        [doubt] = queue[0]["in_doubt"]
        assert doubt["tool"] == "issue_refund" and doubt["agent"] == "refunds"
        assert doubt["arguments"] == {"order_id": "A-5", "amount_eur": 30.0}
        assert doubt["key"].startswith(member.run_id + ":")
        [told] = receiver.wait(1)  # at once, naming the root (the member's run is not served)
        assert (verified(told)["type"], verified(told)["data"]["id"]) == ("run.in_doubt", root)
        done = as_approver(
            server,
            f"/v1/runs/{root}/settlements",
            {"settle": {doubt["key"]: "refunded 30.0 EUR on A-5, ref R-2"}},
        )
        assert done.status_code == 200, done.text
        assert done.json()["answer"] == "Done: refunded 30.0 EUR on A-5, ref R-2."
        assert as_approver(server, "/v1/runs?status=in_doubt").json()["data"] == []
    assert made == ["A-5"]  # the bank was asked once
    assert {store.get_run(root).status, store.get_run(member.run_id).status} == {"final"}
