"""An approver bot told by a webhook when a served agent's refund waits for it.

    python examples/serve_webhooks.py

The refund agent of `serve_approvals.py` is served with a webhook: each time one of its
runs waits for a person, the endpoint POSTs a signed event (Standard Webhooks) to the
bot's URL. The bot verifies the signature with the specification's reference library
(`standardwebhooks`), reads the waiting call over the approval API with an approver key,
and approves refunds up to 100 (a person would decide the rest); a ``run.decided`` event
then tells it the run ended, so it can close what it posted. The model is scripted
so the example runs offline; the journal is a temporary SQLite file.
"""

from __future__ import annotations

import queue
import tempfile
from pathlib import Path
from typing import Any

import httpx
from serve_approvals import APPROVER_KEY, CLIENT_KEY, REFUNDS, refund_agent

LIMIT = 100.0


def bot_app(secret: str, events: queue.Queue[dict[str, Any]]) -> Any:
    """The bot's receiver: verify each event, queue it, answer 204 (401 if forged)."""
    from standardwebhooks import Webhook, WebhookVerificationError
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    verifier = Webhook(secret)

    async def receive(request: Request) -> Response:
        try:
            event = verifier.verify(await request.body(), dict(request.headers))
        except WebhookVerificationError:
            return Response(status_code=401)
        events.put(event)
        return Response(status_code=204)

    return Starlette(routes=[Route("/events", receive, methods=["POST"])])


def main() -> None:
    import openai

    from pilothouse.serving import BackgroundServer, Webhook, create_app, new_webhook_secret

    secret = new_webhook_secret()  # in production: `serve-agent --webhook-secret-file FILE`
    events: queue.Queue[dict[str, Any]] = queue.Queue()
    with tempfile.TemporaryDirectory() as tmp, BackgroundServer(bot_app(secret, events)) as bot:
        agent = refund_agent(str(Path(tmp) / "journal.db"))
        app = create_app(
            [agent],
            api_keys={CLIENT_KEY: "ann"},
            approvers={APPROVER_KEY: "carol"},
            webhooks=[Webhook(f"{bot.url}/events", secret)],
        )
        with BackgroundServer(app) as server:
            client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=CLIENT_KEY)
            approver = httpx.Client(
                base_url=server.url, headers={"authorization": f"Bearer {APPROVER_KEY}"}
            )
            forged = httpx.post(f"{bot.url}/events", json={"type": "run.waiting", "data": {}})
            print(f"a forged event: {forged.status_code}")
            for text in ("Please refund A1001, 49.90", "Please refund A1002, 420.00"):
                answer = client.chat.completions.create(
                    model="refunds", messages=[{"role": "user", "content": text}]
                )
                print("client reads:", answer.choices[0].message.content)
                event = events.get(timeout=60)  # the bot's inbox
                run = approver.get(event["data"]["url"]).json()  # the call in full
                [waiting] = run["pending"]
                amount = waiting["arguments"]["amount"]
                print(f"bot told: {event['type']} {waiting['tool']}({waiting['arguments']})")
                if amount <= LIMIT:
                    decided = approver.post(
                        f"/v1/runs/{run['id']}/approvals",
                        json={"decisions": {waiting["key"]: True}},
                    ).json()
                    print(f"bot approved: {decided['status']}: {decided['answer']}")
                    closed = events.get(timeout=60)  # the endpoint says the run ended
                    print(f"bot told: {closed['type']} by {closed['data']['decided_by']}")
                else:
                    print(f"bot left it for a person: {amount:.2f} is over {LIMIT:.2f}")
    print(f"refunds made: {REFUNDS}")


if __name__ == "__main__":
    main()
