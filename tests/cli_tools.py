"""Tools the CLI tests load with `--tools cli_tools:tools`."""

from pilothouse import tool


@tool
def get_order_status(order_id: str) -> str:
    """Get the shipping status of an order by its id."""
    return f"Order {order_id} was shipped on Monday and arrives Thursday."


tools = [get_order_status]
