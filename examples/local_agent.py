"""A tool-using agent on the embedded model (SmolLM2-135M, in-process), traced live.

    python examples/local_agent.py                     # "Where is my order A1234?"
    python examples/local_agent.py "Has order B7788 shipped?"

The agent has one tool, `get_order_status`. Every journal event is printed as it
happens: the model request, the model's reply (a tool call), the tool's result,
the final answer. The run is recorded in ``.pilothouse/journal.db``, so
``pilothouse trace show <run id>`` prints it again.

A 135M-parameter model is weak at deciding what to do, so the agent is built to
make the decision easy. The grammar (see `pilothouse.guided`) already
guarantees a well-formed call of a real tool; on top of that:

- one tool with a plain description, whose argument states the shop's order-id
  format as a pattern (a letter and four digits). The pattern becomes part of the
  grammar, so the model cannot drop the letter ("4455" for "C4455"), run on, or
  copy an id from the examples; on a set of ten questions the right id went from
  7/10 (a length cap only) to 10/10;
- the tool answers in a sentence the model can repeat, not in nested JSON;
- the instructions include two worked examples of the whole exchange (question,
  call, result, answer). Without them the model calls the tool again after the
  result instead of answering (0/24 answers); with them it answers with the
  result (29-30/30). Their ids are words (ORDER-ONE), which the pattern forbids,
  so they cannot be copied into a call.

Exit status: 0 when the agent called the tool and its final answer states the
order's status; 1 (with the reason) otherwise.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

from pydantic import Field
from rich.console import Console
from rich.markup import escape

from pilothouse import Agent, ToolError, tool
from pilothouse.events import FinalOutput, ToolReturned
from pilothouse.models.base import TextDelta
from pilothouse.models.local import LocalModel
from pilothouse.trace import describe

ORDERS: dict[str, dict[str, str]] = {
    "A1234": {"status": "shipped", "detail": "has shipped with DHL and should arrive on March 14"},
    "B7788": {"status": "processing", "detail": "is still processing and should ship tomorrow"},
    "C4455": {"status": "delivered", "detail": "was delivered on February 27"},
}


@tool
def get_order_status(order_id: Annotated[str, Field(pattern=r"^[A-Z][0-9]{4}$")]) -> str:
    """Look up the shipping status of a customer's order.

    Args:
        order_id: the order id exactly as the customer wrote it (a letter and four digits)
    """
    order = ORDERS.get(order_id)
    if order is None:
        raise ToolError(f"There is no order {order_id}. Ask the customer to check the order id.")
    return f"Order {order_id} {order['detail']}."


INSTRUCTIONS = """\
You are an order-status assistant. First call get_order_status with the customer's order id. \
When you get the result, answer the customer with it.

Example 1:
user: Where is my order ORDER-ONE?
assistant: {"tool": "get_order_status", "arguments": {"order_id": "ORDER-ONE"}}
user: Result of get_order_status: Order ORDER-ONE is in transit.
assistant: {"answer": "Your order ORDER-ONE is in transit."}

Example 2:
user: status of order ORDER-TWO please
assistant: {"tool": "get_order_status", "arguments": {"order_id": "ORDER-TWO"}}
user: Result of get_order_status: Order ORDER-TWO was cancelled.
assistant: {"answer": "Your order ORDER-TWO was cancelled."}"""


def build_agent(store: str = ".pilothouse/journal.db") -> Agent[None, str]:
    """The order-status agent on the embedded model (shared by the tests)."""
    return Agent(
        model=LocalModel(),
        instructions=INSTRUCTIONS,
        tools=[get_order_status],
        name="order-status",
        max_steps=4,
        store=store,
    )


async def main(question: str) -> int:
    console = Console(highlight=False, soft_wrap=True)
    agent = build_agent()
    looked_up: list[str] = []  # the order ids the tool answered for
    answer: str | None = None
    run_id = ""
    try:
        async for item in agent.stream(question):
            if isinstance(item, TextDelta):
                continue  # with a tool on offer the local model streams no deltas
            console.print(f"[dim]step {item.step}[/] {escape(describe(item))}")
            run_id = item.run_id
            if isinstance(item, ToolReturned) and not item.result.is_error:
                looked_up.extend(k for k in ORDERS if k in item.result.content)
            if isinstance(item, FinalOutput):
                answer = str(item.output)
    except Exception as exc:  # the error event was printed above
        console.print(f"[bold red]FAILED[/]: the run raised {type(exc).__name__}: {exc}")
        return 1
    if answer is None:
        console.print("[bold red]FAILED[/]: the agent stopped without a final answer.")
        return 1
    if not looked_up:
        console.print(
            "[bold red]FAILED[/]: the agent answered without having found an order "
            "with get_order_status (see the tool results above)."
        )
        return 1
    status = ORDERS[looked_up[-1]]["status"]
    if status not in answer.lower():
        console.print(
            f"[bold red]FAILED[/]: the final answer does not state the status "
            f"{status!r} that get_order_status returned."
        )
        return 1
    console.print(
        f"[bold green]OK[/]: the agent looked up {looked_up[-1]} and answered with "
        f"its status. Its trace: [bold].venv/bin/pilothouse trace show {run_id}[/]"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(" ".join(sys.argv[1:]) or "Where is my order A1234?")))
