"""A person approves a served agent's refund over HTTP.

    python examples/serve_approvals.py

The agent behind the OpenAI-compatible endpoint may refund an order only with a
person's approval (the tool says ``requires_approval``). A client (the official
`openai` package, key of owner ``ann``) asks for a refund: the run pauses and the
client is told what waits. An approver (key of ``carol``, a key of its own) reads the
queue of waiting runs, sees the call in full and approves it; the run continues on the
server, the refund is made once, and the client reads its run's answer. The model is
scripted so the example runs offline; the journal is a temporary SQLite file.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import httpx

from pilothouse import Agent, tool
from pilothouse.messages import ToolCall
from pilothouse.models.base import ModelRequest
from pilothouse.models.scripted import ScriptedModel

CLIENT_KEY = "ann-client-key-000001"  # in production: `serve-agent --api-keys FILE`
APPROVER_KEY = "carol-approver-key-01"  # `serve-agent --approver-keys FILE`
REFUNDS: list[str] = []


@tool(effect="irreversible", requires_approval=True)
def refund(order_id: str, amount: float) -> str:
    """Refund an order (a person approves each refund)."""
    REFUNDS.append(order_id)
    return f"refunded {amount:.2f} for {order_id}"


def scripted(request: ModelRequest) -> Any:
    """What a model would do: ask for the refund, then say what the tool answered."""
    last = max(i for i, m in enumerate(request.messages) if m.role == "user")
    done = [m.content for m in request.messages[last + 1 :] if m.role == "tool"]
    if done:
        return f"Done: {done[0]}." if done[0].startswith("refunded") else "Not refunded."
    asked = re.search(r"(A\d{4}).*?(\d+(?:\.\d+)?)", request.messages[last].content)
    if asked is None:
        return "Which order, and how much?"
    return ToolCall("r1", "refund", {"order_id": asked[1], "amount": float(asked[2])})


def refund_agent(store: str) -> Agent:
    """The served agent: refunds, each one approved by a person."""
    return Agent(
        ScriptedModel(scripted, record=False),
        "You refund orders.",
        [refund],
        name="refunds",
        store=store,
    )


def main() -> None:
    import openai

    from pilothouse.serving import BackgroundServer, create_app

    with tempfile.TemporaryDirectory() as tmp:
        agent = refund_agent(str(Path(tmp) / "journal.db"))
        app = create_app([agent], api_keys={CLIENT_KEY: "ann"}, approvers={APPROVER_KEY: "carol"})
        with BackgroundServer(app) as server:
            client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=CLIENT_KEY)
            answer = client.chat.completions.create(
                model="refunds",
                messages=[{"role": "user", "content": "Please refund A1001, 49.90"}],
            )
            extra = answer.model_extra["pilothouse"] if answer.model_extra else {}
            print("client reads:", answer.choices[0].message.content)
            run_id = extra["run_id"]

            carol = httpx.Client(
                base_url=server.url, headers={"authorization": f"Bearer {APPROVER_KEY}"}
            )
            queue = carol.get("/v1/runs", params={"status": "paused"}).json()["data"]
            [waiting] = queue[0]["pending"]
            print(
                f"approver's queue: {len(queue)} run waiting, for {queue[0]['acts_for']}: "
                f"{waiting['tool']}({waiting['arguments']})"
            )
            decided = carol.post(
                f"/v1/runs/{run_id}/approvals", json={"decisions": {waiting["key"]: True}}
            ).json()
            print(f"approved: the run is {decided['status']}: {decided['answer']}")

            mine = httpx.get(
                f"{server.url}/v1/runs/{run_id}",
                headers={"authorization": f"Bearer {CLIENT_KEY}"},
            ).json()
            print(f"client reads its run: {mine['status']}, {mine['answer']}")
            again = carol.post(
                f"/v1/runs/{run_id}/approvals", json={"decisions": {waiting["key"]: True}}
            )
            print(f"approving again: {again.status_code} {again.json()['error']['code']}")
    print(f"refunds made: {REFUNDS}")


if __name__ == "__main__":
    main()
