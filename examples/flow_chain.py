"""A chain of typed steps: a function, a model call from a prompt template, a function.

Runs offline as written (a scripted model stands in for a real one):

    python examples/flow_chain.py

What it shows:
- each step's input and output types (from annotations, or declared for the model
  call), and the value validated between steps;
- `prompt_step`: a template as data (``$field`` of the input model), checked against
  the input's fields when the chain is built; the model's reply validated as `Quote`;
- a step that returns the wrong shape fails with an error naming the step;
- `mermaid()`: the chain as a diagram.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel

from pilothouse import MemoryStore, ScriptedModel
from pilothouse.exceptions import StepValidationError
from pilothouse.flows import Chain, prompt_step, step


class Order(BaseModel):
    item: str
    quantity: int


class Quote(BaseModel):
    item: str
    total: float


def parse(text: str) -> Order:
    item, _, quantity = text.partition(" x")
    return Order(item=item.strip(), quantity=int(quantity))


def describe(quote: Quote) -> str:
    return f"{quote.item}: {quote.total:.2f} EUR"


def broken(order: Order) -> Quote:
    return {"item": order.item}  # type: ignore[return-value]  # forgot the total


async def main() -> None:
    model = ScriptedModel(['{"item": "lamp", "total": 59.8}'])
    estimate = prompt_step(
        "estimate",
        "Price $quantity x $item in EUR. Reply as JSON with item and total.",
        model=model,
        input=Order,
        output=Quote,
    )
    chain: Chain[str] = Chain([parse, estimate, describe], name="quote")
    print(chain.mermaid())
    store = MemoryStore()
    result = await chain.run("lamp x2", store=store)
    print(f"output: {result.output}")
    print(f"prompt sent: {model.requests[0].messages[-1].content}")
    try:
        await Chain([parse, step(broken, name="price"), describe], name="bad").run(
            "lamp x2", store=store
        )
    except StepValidationError as exc:
        print(f"refused: {exc}")


if __name__ == "__main__":
    asyncio.run(main())
