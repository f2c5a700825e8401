"""Tools the CLI tests load with `--tools cli_tools:tools`."""

from typing import Any

from pilothouse import ScriptedModel, tool
from pilothouse.models import register_model
from pilothouse.models.base import ModelRequest
from pilothouse.models.scripted import call


@tool
def get_order_status(order_id: str) -> str:
    """Get the shipping status of an order by its id."""
    return f"Order {order_id} was shipped on Monday and arrives Thursday."


tools = [get_order_status]


@tool(effect="side_effect", requires_approval=True)
def issue_refund(order_id: str) -> str:
    """Refund an order in full."""
    return f"Refund issued for order {order_id}."


refund_tools = [get_order_status, issue_refund]


def _refund_model(rest: str) -> ScriptedModel:
    """`--model refund-script`: asks for the status, then the refund, then answers."""

    def reply(request: ModelRequest) -> Any:
        turn = sum(1 for m in request.messages if m.role == "assistant")
        script: list[Any] = [
            call("get_order_status", order_id="A1"),
            call("issue_refund", order_id="A1"),
            "Refunded.",
        ]
        return script[turn]

    return ScriptedModel(reply)


register_model("refund-script", _refund_model)


@tool(effect="side_effect", requires_approval=True)
def pay_invoice(invoice: str) -> str:
    """Pay an invoice. The first payment (no ledger yet) kills the process after paying,
    before its result is recorded, as a crash would: the call is then in doubt."""
    import os
    from pathlib import Path

    ledger = Path(os.environ["CLI_TOOLS_LEDGER"])
    first = not ledger.exists()
    with ledger.open("a") as out:
        out.write(f"paid invoice {invoice}\n")
    if first:
        os._exit(9)
    return f"Invoice {invoice} paid."


pay_tools = [pay_invoice]


def _pay_model(rest: str) -> ScriptedModel:
    """`--model pay-script`: pays invoice 7, then answers."""

    def reply(request: ModelRequest) -> Any:
        turn = sum(1 for m in request.messages if m.role == "assistant")
        return [call("pay_invoice", invoice="7"), "Paid."][turn]

    return ScriptedModel(reply)


register_model("pay-script", _pay_model)
