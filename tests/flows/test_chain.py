"""Chains: typed steps in order, validation between them naming the step, model calls
from prompt templates (child runs), tools under a policy, agents as steps."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from pilothouse import Agent, Policy, ScriptedModel
from pilothouse.events import NodeFailed, NodeFinished
from pilothouse.exceptions import FlowDefinitionError, FlowError, StepValidationError
from pilothouse.flows import Chain, agent_step, prompt_step, step, tool_step
from pilothouse.runtime.journal import MemoryStore
from pilothouse.tools import tool


class Order(BaseModel):
    item: str
    quantity: int


class Quote(BaseModel):
    item: str
    total: float


def parse(text: str) -> Order:
    item, _, quantity = text.partition(" x")
    return Order(item=item.strip(), quantity=int(quantity))


def price(order: Order) -> Quote:
    return Quote(item=order.item, total=2.5 * order.quantity)


def describe(quote: Quote) -> str:
    return f"{quote.item}: {quote.total:.2f}"


async def test_a_chain_feeds_each_output_to_the_next_step() -> None:
    chain: Chain[str] = Chain([parse, price, describe], name="quote")
    store = MemoryStore()
    result = await chain.run("lamp x4", store=store, run_id="c")
    assert result.output == "lamp: 10.00"
    finished = [e for e in store.events("c") if isinstance(e, NodeFinished)]
    assert [e.node for e in finished] == ["parse", "price", "describe"]
    assert finished[1].updates == [{"value": {"item": "lamp", "total": 10.0}}]


async def test_a_value_that_does_not_fit_the_next_step_names_the_step() -> None:
    def broken_price(order: Order) -> Quote:
        return {"item": order.item}  # type: ignore[return-value]

    chain: Chain[str] = Chain([parse, step(broken_price, name="price"), describe], name="q")
    store = MemoryStore()
    with pytest.raises(StepValidationError) as caught:
        await chain.run("lamp x4", store=store, run_id="bad")
    message = str(caught.value)
    assert (
        "step 2 'price': its output must be Quote" in message and "total: Field required" in message
    )
    assert caught.value.node == "price" and caught.value.key == "price-0"
    failed = [e for e in store.events("bad") if isinstance(e, NodeFailed)]
    assert failed[0].kind == "StepValidationError" and "total" in failed[0].message

    def shout(text: str) -> str:
        return text.upper()

    loose: Chain[str] = Chain([step(lambda t: t, name="echo", input=str, output=Any), price])
    with pytest.raises(StepValidationError, match="step 2 'price': its input must be Order"):
        await loose.run("not an order", store=MemoryStore())
    with pytest.raises(
        StepValidationError, match="step 1 'shout': its input must be str, and the chain's input"
    ):
        await Chain([shout]).run(42, store=MemoryStore())  # type: ignore[arg-type]


class Other(BaseModel):
    sku: str


def needs_other(x: Other) -> str:
    return x.sku


def test_incompatible_models_between_steps_are_refused_at_build() -> None:
    with pytest.raises(FlowDefinitionError, match="outputs Order, which lacks sku"):
        Chain([parse, needs_other])
    with pytest.raises(FlowDefinitionError, match="two steps are named parse"):
        Chain([parse, parse])
    with pytest.raises(FlowDefinitionError, match="has no steps"):
        Chain([])


async def test_a_prompt_step_renders_its_template_and_validates_the_reply() -> None:
    model = ScriptedModel(['{"item": "lamp", "total": 9.5}'])
    chain: Chain[str] = Chain(
        [
            parse,
            prompt_step(
                "estimate",
                "Price $quantity of $item. Reply as JSON.",
                model=model,
                input=Order,
                output=Quote,
            ),
            describe,
        ],
        name="priced",
    )
    store = MemoryStore()
    result = await chain.run("lamp x2", store=store, run_id="p")
    assert result.output == "lamp: 9.50"
    assert model.requests[0].messages[-1].content == "Price 2 of lamp. Reply as JSON."
    assert store.get_run("p.2.0.estimate-0").status == "final"  # a child run, on the record
    assert result.usage.total_tokens > 0


def test_a_prompt_template_naming_an_unknown_field_is_refused() -> None:
    with pytest.raises(FlowDefinitionError, match=r"uses \$colour, which its input does not have"):
        prompt_step("p", "Paint $item $colour", model=ScriptedModel([]), input=Order)
    with pytest.raises(FlowDefinitionError, match="starts no field"):
        prompt_step("p", "costs $", model=ScriptedModel([]))


async def test_a_tool_step_passes_the_policy() -> None:
    @tool(effect="side_effect")
    def place(item: str, quantity: int) -> dict[str, Any]:
        """Place an order."""
        return {"item": item, "total": quantity * 1.5}

    steps = [parse, tool_step(place, output=Quote), describe]
    with pytest.raises(FlowError, match="the policy refused tool step 'place'"):
        await Chain(steps, name="denied").run("mug x2", store=MemoryStore())
    allowed: Chain[str] = Chain(steps, name="allowed", policy=Policy.allow_all())
    assert (await allowed.run("mug x2", store=MemoryStore())).output == "mug: 3.00"


async def test_an_agent_step_runs_the_agent_as_a_child() -> None:
    model = ScriptedModel(["Four lamps, ten euros."])
    writer = Agent(model, "Write a sentence.", name="writer")
    chain: Chain[str] = Chain(
        [parse, price, agent_step("write", writer, input=Quote, prompt="Say: $item costs $total")]
    )
    store = MemoryStore()
    result = await chain.run("lamp x4", store=store, run_id="a")
    assert result.output == "Four lamps, ten euros."
    assert model.requests[0].messages[-1].content == "Say: lamp costs 10.0"
    assert [c.run_id for c in store.children("a")] == ["a.3.0.write-0"]


async def test_a_chain_resumes_without_running_finished_steps() -> None:
    ran: list[str] = []

    def one(x: str) -> str:
        ran.append("one")
        return x + "1"

    def two(x: str) -> str:
        ran.append("two")
        return x + "2"

    chain: Chain[str] = Chain([one, two], name="resumable")
    source = MemoryStore()
    await chain.run("x", store=source, run_id="r")
    events = source.events("r")
    cut = next(i for i, e in enumerate(events) if e.type == "node_finished") + 1
    store = MemoryStore()
    import dataclasses

    store.write(events[:cut], dataclasses.replace(source.get_run("r"), status="running"))
    ran.clear()
    result = await chain.resume("r", store=store)
    assert result.output == "x12" and ran == ["two"]


async def test_an_agent_step_in_doubt_is_settled_through_the_chain() -> None:
    """A chain whose agent step's send was cut off stands in doubt; the chain's resume
    takes the person's word (what they found), and nothing is sent twice."""
    from hanging_mailer import hanging_mailer

    from pilothouse.exceptions import ApprovalError, ToolCallInDoubtError

    sent: list[str] = []
    store = MemoryStore()
    mailer = hanging_mailer(sent, store)
    chain: Chain[str] = Chain([agent_step("mail", mailer, prompt="send $input")], name="mail")
    with pytest.raises(ToolCallInDoubtError) as err:
        await chain.run("hi", store=store, run_id="c")
    key = err.value.idempotency_key
    with pytest.raises(ApprovalError):
        await chain.resume("c", store=store, settle={key: 7})  # type: ignore[dict-item]
    result = await chain.resume("c", store=store, settle={key: "sent, id 9"}, approved_by="ops")
    assert result.output == "done: sent, id 9" and sent == ["send hi"]
