"""A team behind the OpenAI-compatible endpoint: a handoff, a person's approval, one id.

    python examples/serve_team.py

Triage hands a refund to the refunds agent (`examples/team_handoff.py`'s team); refunds
above 50 EUR need a person. Served as the model ``desk``, the team is called with the
official `openai` client. The refunds agent's run waits, yet the client holds only the
root run's id, and that id is all the approver needs: the queue lists it, the decision
goes to it, and the answer comes back on it. The models are scripted so the example runs
offline; the journal is a temporary SQLite file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx
from pydantic import BaseModel

from pilothouse import Agent, ScriptedModel, SQLiteStore, call, tool
from pilothouse.policy import Policy, Rule
from pilothouse.teams import Handoff, Team

CLIENT_KEY = "bo-client-key-0000001"  # `serve-agent --api-keys FILE`
APPROVER_KEY = "ann-approver-key-0001"  # `serve-agent --approver-keys FILE`


class Refund(BaseModel):
    order_id: str
    amount_eur: float


@tool(effect="side_effect")
def issue_refund(order_id: str, amount_eur: float) -> str:
    """Refund an order."""
    return f"refunded {amount_eur} EUR on {order_id}"


def support_team(store: SQLiteStore) -> Team:
    """Triage and refunds, with big refunds asked of a person."""
    refunds = Agent(
        ScriptedModel([call("issue_refund", order_id="A-7", amount_eur=80.0), "Refunded 80 EUR."]),
        "You refund orders.",
        [issue_refund],
        name="refunds",
        store=store,
        policy=Policy(
            [
                Rule(
                    "issue_refund", "ask", when={"args": {"amount_eur": {"exclusiveMinimum": 50}}}
                ),
                Rule("issue_refund", "allow"),
            ]
        ),
    )
    transfer = call(
        "transfer_to_refunds",
        reason="a refund",
        payload={"order_id": "A-7", "amount_eur": 80.0},
        summary="Bo's lamp A-7 arrived broken; wants the 80 EUR back.",
    )
    triage = Agent(ScriptedModel([transfer]), "You triage.", name="triage", store=store)
    refund_case = Handoff(refunds, "Refund requests.", context="summary", payload=Refund)
    return Team(triage, handoffs={"triage": [refund_case]}, name="desk")


def main() -> None:
    import openai

    from pilothouse.serving import BackgroundServer, create_app

    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "journal.db")
        app = create_app(
            [support_team(store)], api_keys={CLIENT_KEY: "bo"}, approvers={APPROVER_KEY: "ann"}
        )
        with BackgroundServer(app) as server:
            client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=CLIENT_KEY)
            answer = client.chat.completions.create(
                model="desk", messages=[{"role": "user", "content": "My lamp A-7 broke: 80 EUR"}]
            )
            root = answer.model_extra["pilothouse"]["run_id"] if answer.model_extra else ""
            print("client reads:", answer.choices[0].message.content.split(" (run")[0])
            ann = httpx.Client(
                base_url=server.url, headers={"authorization": f"Bearer {APPROVER_KEY}"}
            )
            [waiting_run] = ann.get("/v1/runs", params={"status": "paused"}).json()["data"]
            [call_] = waiting_run["pending"]
            which = "the client's root run" if waiting_run["id"] == root else "another run"
            print(f"queue: {which} waits for {call_['tool']}({call_['arguments']})")
            decided = ann.post(
                f"/v1/runs/{root}/approvals", json={"decisions": {call_["key"]: True}}
            ).json()
            print(f"approved: {decided['status']}: {decided['answer']}")
        for info in [store.get_run(root), *store.children(root)]:
            print(
                f"  {'root' if info.run_id == root else 'child'} run of {info.agent}: {info.status}"
            )
        store.close()


if __name__ == "__main__":
    main()
