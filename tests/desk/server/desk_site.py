"""The server tests' world: a real Desk on a real uvicorn server on loopback.

The desk runs the real support agent (its ten tools, its policy, a SQLite shop and
journal in the test's temporary directory); only the model is scripted, by
`customer_model`, which reacts to the customer's last message like a model would:

- "human" in it                 -> calls transfer_to_human, then tells the customer
- "refund" in it                -> verifies the customer, then asks for a refund (the
                                   policy asks a human to approve refunds over $200)
- "where is order A1234"        -> looks the order up without verifying the customer (the
                                   policy blocks it), then asks for the email and ZIP
- "explode" in it               -> the model fails (ModelError) mid-conversation
- anything else                 -> answers "echo: <message>"
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from pilothouse.exceptions import ModelError
from pilothouse.messages import ToolCall
from pilothouse.models.base import ModelRequest
from pilothouse.models.scripted import ScriptedModel
from pilothouse.runtime.journal import SQLiteStore

CONSOLE_TOKEN = "console-secret-for-tests"
ORDER_RE = re.compile(r"where is order (A\d{4})")
REFUND_RE = re.compile(r"refund (\d+(?:\.\d+)?) for order (A\d{4}), I am (\S+@\S+) zip (\d{5})")


def turn_model(act: Callable[[str, list[str], int], Any]) -> ScriptedModel:
    """A scripted model reacting to the customer's last message: `act(text, done, n)`
    answers each call, given that message, the tools called since it, and a counter
    (for unique call ids)."""
    counter = iter(range(1_000_000))

    def reply(request: ModelRequest) -> Any:
        last_user = max(i for i, m in enumerate(request.messages) if m.role == "user")
        text = request.messages[last_user].content
        done = [m.name or "" for m in request.messages[last_user + 1 :] if m.role == "tool"]
        return act(text, done, next(counter))

    return ScriptedModel(reply, record=False)


def customer_model() -> ScriptedModel:
    """A scripted model that behaves per the module docstring."""

    def reply(text: str, done: list[str], n: int) -> Any:
        if "explode" in text:
            raise ModelError("the model endpoint is down (scripted failure)")
        if "human" in text.lower():
            if "transfer_to_human" in done:
                return "I have asked a colleague to take over; they will answer here."
            summary = f"Customer asks for a human: {text[:80]}"
            return ToolCall(f"t{n}", "transfer_to_human", {"summary": summary})
        lookup = ORDER_RE.search(text)
        if lookup:
            if not done:
                return ToolCall(f"o{n}", "order_status", {"order_id": lookup.group(1)})
            return "Please give me the email address and ZIP code of your account first."
        refund = REFUND_RE.search(text)
        if refund:
            amount, order, email, zip_code = refund.groups()
            if not done:
                return ToolCall(f"v{n}", "verify_identity", {"email": email, "zip": zip_code})
            if done == ["verify_identity"]:
                return ToolCall(f"r{n}", "refund", {"order_id": order, "amount": float(amount)})
            return "Your refund has been handled."
        return f"echo: {text}"

    return turn_model(reply)


@dataclass
class Site:
    """A running server and what a test needs to talk to it."""

    url: str
    desk: Any
    store: SQLiteStore
    shop_path: Path
    client: httpx.Client

    def console(self, token: str = CONSOLE_TOKEN) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def open(self, **body: Any) -> tuple[str, str]:
        """Open a conversation as a customer: (id, customer token)."""
        r = self.client.post("/api/conversations", json=body)
        assert r.status_code == 201, r.text
        data = r.json()
        return data["conversation"]["id"], data["token"]

    def say(self, conv_id: str, token: str, text: str) -> httpx.Response:
        return self.client.post(
            f"/api/conversations/{conv_id}/messages",
            json={"text": text},
            headers={"Authorization": f"Bearer {token}"},
        )

    def read(self, conv_id: str, token: str) -> dict[str, Any]:
        r = self.client.get(
            f"/api/conversations/{conv_id}", headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()
        return result

    def big_order(self, minimum: float = 250.0) -> tuple[str, str, str, float]:
        """A delivered seeded order paid more than `minimum`: (order id, email, zip, paid)."""
        db = sqlite3.connect(self.shop_path)
        try:
            row = db.execute(
                "SELECT o.id, c.email, c.zip, SUM(p.amount) AS paid FROM orders o "
                "JOIN customers c ON c.id = o.customer_id "
                "JOIN payments p ON p.order_id = o.id AND p.kind = 'payment' "
                "WHERE o.status = 'delivered' GROUP BY o.id HAVING paid > ? ORDER BY o.id LIMIT 1",
                (minimum,),
            ).fetchone()
        finally:
            db.close()
        assert row is not None, "the seeded shop has no order that large"
        return row[0], row[1], row[2], float(row[3])


def make_desk(directory: Path, model: Any = None) -> tuple[Any, SQLiteStore, Path]:
    from pilothouse_desk.desk import Desk

    store = SQLiteStore(directory / "journal.db")
    shop_path = directory / "shop.db"
    desk = Desk(shop_path, store, model=model if model is not None else customer_model())
    return desk, store, shop_path


@contextmanager
def serving(desk: Any, store: Any, shop_path: Path) -> Iterator[Site]:
    """`desk` served on a loopback port (the real app and uvicorn) for the block; the
    desk and its store are closed after it."""
    from pilothouse_desk.server.app import create_app
    from pilothouse_desk.server.live import LiveServer

    app = create_app(desk, console_token=CONSOLE_TOKEN, store=store)
    try:
        with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
            yield Site(server.url, desk, store, shop_path, client)
    finally:
        desk.shutdown()
        store.close()
