"""Tools that hang: a timeout per tool, and what the run does after one.

    python examples/tool_timeouts.py

Two upstream services stop answering. The order lookup only reads, so its timeout is an
error the model reads, and the model answers without it. The payment changes the world,
so once its call is stopped nobody knows whether the money moved: the tool's
`reconcile` asks the payment provider by the call's idempotency key, and the run goes on
with what really happened, never paying twice. The model is scripted and the services
are simulated so the example runs offline in a second.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pilothouse import Agent, MemoryStore, ScriptedModel, call, tool
from pilothouse.events import ToolReturned
from pilothouse.policy import Policy, Rule
from pilothouse.tools import ToolContext

PROVIDER: dict[str, str] = {}  # the payment provider's records, by idempotency key


@tool(timeout=0.2)
async def lookup_order(order_id: str) -> str:
    """Look an order up in the order service."""
    await asyncio.sleep(3600)  # the service hangs
    return "shipped"


def find_payment(context: ToolContext, arguments: dict[str, Any]) -> str | None:
    """Ask the provider whether the payment with this call's key went through."""
    return PROVIDER.get(context.idempotency_key)


@tool(effect="side_effect", reconcile=find_payment, timeout=0.2)
async def pay_refund(order_id: str, amount: float, ctx: ToolContext) -> str:
    """Pay a refund through the payment provider."""
    PROVIDER[ctx.idempotency_key] = f"refund of {amount:.2f} paid for {order_id}"
    await asyncio.sleep(3600)  # the money moved, but the answer never comes back
    return PROVIDER[ctx.idempotency_key]


def main() -> None:
    store = MemoryStore()
    model = ScriptedModel(
        [
            call("lookup_order", order_id="A1001"),
            call("pay_refund", order_id="A1001", amount=25.0),
            "The order service is down, but your refund of 25.00 is paid.",
        ]
    )
    agent = Agent(
        model,
        "You help customers.",
        [lookup_order, pay_refund],
        store=store,
        policy=Policy([Rule("pay_refund", "allow")]),
    )
    result = agent.run_sync("Where is A1001? Refund me 25 if it is late.", run_id="case-1")
    for event in store.events("case-1"):
        if isinstance(event, ToolReturned):
            status = "error" if event.result.is_error else "ok"
            print(f"{event.result.name}: {status}: {event.result.content}")
    print("answer:", result.output)
    print("payments at the provider:", len(PROVIDER))


if __name__ == "__main__":
    main()
