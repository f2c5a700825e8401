"""A payment nobody can vouch for: the run stops in doubt, a person settles it.

    python examples/settle_in_doubt.py

The payment provider takes the money but its answer never comes back (the tool's
timeout stops the call). The tool has no `reconcile` function, so Pilothouse will not
guess: the run stops `in_doubt` and raises `ToolCallInDoubtError` with the call's key.
A person looks the key up in the provider's back office and resumes the run with what
they found (`settle=`): the model reads that result, the payment is never sent twice,
and the journal says who settled it. The model is scripted and the provider simulated,
so the example runs offline in a second.
"""

from __future__ import annotations

import asyncio

from pilothouse import Agent, MemoryStore, ScriptedModel, call, tool
from pilothouse.exceptions import ToolCallInDoubtError
from pilothouse.policy import Policy, Rule
from pilothouse.tools import ToolContext
from pilothouse.trace import describe

PROVIDER: dict[str, str] = {}  # the provider's back office: payments by idempotency key


@tool(effect="side_effect", timeout=0.2)
async def pay_refund(order_id: str, amount: float, ctx: ToolContext) -> str:
    """Pay a refund through the payment provider."""
    PROVIDER[ctx.idempotency_key] = f"refund of {amount:.2f} paid for {order_id} (ref PX-881)"
    await asyncio.sleep(3600)  # the money moved, but the answer never comes back
    return PROVIDER[ctx.idempotency_key]


def support_agent(store: MemoryStore) -> Agent[None, str]:
    model = ScriptedModel(
        lambda request: (
            call("pay_refund", order_id="A1001", amount=25.0)
            if not any(m.role == "tool" for m in request.messages)
            else "Your refund of 25.00 is paid (ref PX-881)."
        )
    )
    policy = Policy([Rule("pay_refund", "allow")])
    return Agent(model, "You help customers.", [pay_refund], store=store, policy=policy)


def main() -> None:
    store = MemoryStore()
    try:
        support_agent(store).run_sync("Refund me 25 for A1001.", run_id="case-7")
    except ToolCallInDoubtError as doubt:
        print("status:", store.get_run("case-7").status)
        print("in doubt:", doubt.tool, doubt.idempotency_key)
        found = PROVIDER.get(doubt.idempotency_key)  # a person checks the back office
        print("the provider says:", found)
        settlement = {doubt.idempotency_key: found if found is not None else False}
        result = support_agent(store).resume_sync("case-7", settle=settlement, approved_by="dana")
        print("answer:", result.output)
    print("payments at the provider:", len(PROVIDER))
    for event in store.events("case-7"):
        if event.type in ("tool_call", "doubt_settled", "tool_result", "final"):
            print(" ", describe(event))


if __name__ == "__main__":
    main()
