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
