"""A webhook receiver for the endpoint tests: a Starlette app on a loopback uvicorn
that records each POST and answers with the status the test scripts; `verified`
checks an event with the Standard Webhooks reference library."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from pilothouse.serving import BackgroundServer, Webhook, new_webhook_secret

SECRET = new_webhook_secret()


class Receiver:
    """A webhook receiver on loopback: each POST is recorded, then answered with the
    next scripted status (204 once the script is used up); `hold` keeps answers back
    until the test sets it."""

    def __init__(self, statuses: list[int] | None = None, hold: threading.Event | None = None):
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import Response
        from starlette.routing import Route

        self.statuses = list(statuses or [])
        self.hold = hold
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.arrived = threading.Condition()

        async def hook(request: Request) -> Response:
            body = await request.body()
            with self.arrived:
                self.got.append((dict(request.headers), body))
                self.arrived.notify_all()
            if self.hold is not None:
                await asyncio.to_thread(self.hold.wait, 60)
            status = self.statuses.pop(0) if self.statuses else 204
            headers = {"retry-after": "0"} if status == 429 else {}
            if 300 <= status < 400:
                headers["location"] = "http://127.0.0.1:9/elsewhere"
            return Response(status_code=status, headers=headers)

        self.server = BackgroundServer(Starlette(routes=[Route("/hook", hook, methods=["POST"])]))
        self.url = self.server.url + "/hook"

    def wait(self, count: int) -> list[tuple[dict[str, str], bytes]]:
        """The first `count` requests, once they arrived (a bound, not a timing check)."""
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.got) >= count, timeout=60), self.got
            return list(self.got[:count])


def hook(url: str, **options: Any) -> Webhook:
    options.setdefault("first_delay", 0.0)  # retries at once: the tests wait for none
    return Webhook(url, SECRET, **options)


def verified(request: tuple[dict[str, str], bytes]) -> dict[str, Any]:
    """The event of a received request, its signature checked (raises if forged)."""
    import standardwebhooks

    headers, body = request
    event: dict[str, Any] = standardwebhooks.Webhook(SECRET).verify(body, headers)
    return event
