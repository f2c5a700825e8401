"""The console shows a team's child runs live, in a real Chromium: a specialist's steps
appear while the customer's turn is still running, not when it ends.

The team's model is scripted and held at two gates (threading events the test opens):
triage transfers to orders; the orders specialist's first model call waits at gate A;
then it verifies the customer and cancels the order (``cancel_order`` is irreversible:
on disk before it runs and after), and its last call, the answer, waits at gate B.
While gate B is closed the turn cannot end and the root run writes nothing (it waits
in its handoff), so the console can only show the specialist's calls through the
desk's store listener (`Desk.watch`). Every wait is on an event or on the page (Playwright's
``expect``), never a sleep.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from desk_site import CONSOLE_TOKEN
from team_world import agent_of, make_team_desk

from pilothouse.exceptions import ModelError
from pilothouse.messages import ToolCall
from pilothouse.models.base import ModelRequest, ModelResponse
from pilothouse.models.scripted import ScriptedModel
from pilothouse_desk.server.app import create_app
from pilothouse_desk.server.live import LiveServer

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the browser test needs the 'playwright' package (dev extra)"
)
GATE_SECONDS = 120.0  # a gate the test never opens fails the run instead of hanging


DEV = {"email": "dev.kowalski@example.com", "zip": "37062"}  # A1007 is dev's, pending
LINE = "dev.kowalski@example.com, zip 37062. Please cancel order A1007."


def script(agent: str, request: ModelRequest, n: int) -> Any:
    """Triage transfers to orders; orders verifies, cancels, then answers."""
    done = [m.name for m in request.messages if m.role == "tool"]
    if agent == "triage" and "transfer_to_orders" not in done:
        payload = {"request": "cancel A1007"}
        return ToolCall(f"t{n}", "transfer_to_orders", {"reason": "order", "payload": payload})
    if agent == "orders" and "verify_identity" not in done:
        return ToolCall(f"v{n}", "verify_identity", DEV)
    if agent == "orders" and "cancel_order" not in done:
        return ToolCall(f"c{n}", "cancel_order", {"order_id": "A1007"})
    return "Order A1007 is cancelled."


class GatedModel(ScriptedModel):
    """`script`'s model, whose `gates[(agent, n)]` hold that agent's n-th call until set."""

    def __init__(self, gates: dict[tuple[str, int], threading.Event]) -> None:
        counter = itertools.count()
        super().__init__(lambda r: script(agent_of(r), r, next(counter)), record=False)
        self.gates = gates
        self.calls: Counter[str] = Counter()

    async def generate(self, request: ModelRequest) -> ModelResponse:
        agent = agent_of(request)
        gate = self.gates.get((agent, self.calls[agent]))
        self.calls[agent] += 1
        if gate is not None and not await asyncio.to_thread(gate.wait, GATE_SECONDS):
            raise ModelError(f"the test never opened the gate of {agent}'s call")
        return await super().generate(request)


def test_the_console_shows_a_specialists_steps_while_the_turn_runs(
    tmp_path: Path, browser: Any
) -> None:
    expect = sync_api.expect
    gate_a, gate_b = threading.Event(), threading.Event()
    desk = make_team_desk(
        tmp_path, GatedModel({("orders", 0): gate_a, ("orders", 2): gate_b}), route=False
    )
    app = create_app(desk, console_token=CONSOLE_TOKEN, store=desk.store)
    replies: list[httpx.Response] = []
    try:
        with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
            r = client.post("/api/conversations", json={})
            assert r.status_code == 201, r.text
            conv_id, token = r.json()["conversation"]["id"], r.json()["token"]

            console = browser.new_context().new_page()
            console.set_default_timeout(20_000)
            errors: list[str] = []
            console.on("pageerror", lambda exc: errors.append(str(exc)))
            console.goto(server.url + "/console")
            console.fill("#token", CONSOLE_TOKEN)
            console.fill("#human", "Robin")
            console.click("#login")
            console.fill("#open-id", conv_id)
            console.locator("#open-form button").click()
            expect(console.locator("#conv-id")).to_have_text(conv_id)

            def say() -> None:
                with httpx.Client(base_url=server.url, timeout=GATE_SECONDS) as own:
                    replies.append(
                        own.post(
                            f"/api/conversations/{conv_id}/messages",
                            json={"text": LINE},
                            headers={"Authorization": f"Bearer {token}"},
                        )
                    )

            sending = threading.Thread(target=say, daemon=True)
            sending.start()
            children = console.locator("#steps .run-children")
            # The specialist's run is shown while it waits for its first model call.
            expect(children.locator(".run-head").first).to_contain_text("orders")
            expect(children.locator(".run-head").first).to_contain_text("running")
            expect(children).not_to_contain_text("cancel_order(")
            gate_a.set()
            # Its cancellation is shown live: the turn cannot end (gate B is shut) and the
            # root run writes nothing meanwhile.
            expect(children).to_contain_text("cancel_order(")
            assert sending.is_alive() and not replies
            expect(children.locator(".run-head").first).to_contain_text("running")
            gate_b.set()
            sending.join(GATE_SECONDS)
            assert [reply.status_code for reply in replies] == [200]
            expect(children.locator(".run-head").first).to_contain_text("final")
            expect(console.locator("#messages")).to_contain_text("Order A1007 is cancelled.")
            assert errors == []
    finally:
        gate_a.set()
        gate_b.set()
        desk.shutdown()
        desk.store.close()
