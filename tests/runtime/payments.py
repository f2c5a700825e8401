"""A paying agent and a store whose writes fail on demand, for the hardening tests.

`make_payer` builds an agent that makes three payments (a non-idempotent side effect
protected by `reconcile`, which looks the payment up in a ledger outside the
journal) and then answers. `FlakyStore` wraps a real store and fails chosen writes
the way a full disk or a dropped connection does: the failed write reaches nothing.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from pilothouse import Agent, Policy, ScriptedModel, tool
from pilothouse.events import Event
from pilothouse.exceptions import StoreError
from pilothouse.messages import ToolCall
from pilothouse.models.base import ModelRequest
from pilothouse.runtime.journal import RunInfo, Store
from pilothouse.tools import ToolContext

PAYMENTS = 3
REPLIES: list[Any] = [
    *(ToolCall(f"c{i}", "pay", {"amount": 10 * (i + 1)}) for i in range(PAYMENTS)),
    "paid",
]


class Ledger:
    """Payments made, in a SQLite file of their own: the world outside the journal."""

    def __init__(self, path: str) -> None:
        self.path = path
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE IF NOT EXISTS paid (key TEXT, amount INTEGER)")

    def pay(self, key: str, amount: int) -> None:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("INSERT INTO paid VALUES (?, ?)", (key, amount))
        finally:
            db.close()

    def find(self, key: str) -> int | None:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            row = db.execute("SELECT amount FROM paid WHERE key=?", (key,)).fetchone()
        finally:
            db.close()
        return None if row is None else int(row[0])

    def counts(self) -> Counter[str]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            return Counter(key for (key,) in db.execute("SELECT key FROM paid"))
        finally:
            db.close()


def make_payer(
    store: Store | str,
    ledger: Ledger,
    *,
    gate: asyncio.Event | None = None,
    on_pay: Callable[[ToolContext], None] | None = None,
) -> Agent[None, str]:
    """The paying agent. With `gate`, every model call waits for it (a slow model);
    `on_pay` runs right after each payment (to break the store at that moment)."""

    def paid(ctx: ToolContext, args: dict[str, Any]) -> str | None:
        amount = ledger.find(ctx.idempotency_key)
        return None if amount is None else f"paid {amount}"

    @tool(effect="side_effect", reconcile=paid)
    def pay(amount: int, ctx: ToolContext) -> str:
        """Pay `amount` (happens exactly once per call, or money is lost)."""
        ledger.pay(ctx.idempotency_key, amount)
        if on_pay is not None:
            on_pay(ctx)
        return f"paid {amount}"

    def reply(request: ModelRequest) -> Any:
        return REPLIES[sum(1 for m in request.messages if m.role == "assistant")]

    model = ScriptedModel(reply)
    if gate is not None:
        answer = model.generate

        async def slow(request: ModelRequest) -> Any:
            await gate.wait()
            return await answer(request)

        model.generate = slow  # type: ignore[method-assign]
    return Agent(model, tools=[pay], store=store, policy=Policy.allow_all(), name="payer")


class FlakyStore:
    """A real store whose writes fail while `failing(write_number, events)` says so.

    Writes are numbered from 1; a failing write raises `StoreError` before anything
    reaches the wrapped store. Everything else goes to the wrapped store.
    """

    def __init__(self, inner: Store, failing: Callable[[int, Sequence[Event]], bool]) -> None:
        self.inner = inner
        self.failing = failing
        self.writes = 0
        self.failed = 0

    def write(self, events: Sequence[Event], run: RunInfo | None = None, **lease: Any) -> None:
        self.writes += 1
        if self.failing(self.writes, events):
            self.failed += 1
            raise StoreError("cannot write to journal store: database or disk is full (injected)")
        self.inner.write(events, run, **lease)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def assert_whole_journal(store: Store, run_id: str) -> list[Event]:
    """The run's events, checked to be numbered 0, 1, 2... with no gap."""
    events = store.events(run_id)
    assert [e.seq for e in events] == list(range(len(events))), "the journal has a gap"
    return events
