"""The router that lets a small model run the support agent: routing decisions and the
requests the inner model receives (a recording ScriptedModel as the inner model)."""

from __future__ import annotations

from pilothouse.apps.support.agent import (
    FACTS_MODEL,
    RoutedModel,
    build_support_agent,
    classify,
    decide,
)
from pilothouse.apps.support.deps import SupportDeps
from pilothouse.apps.support.shop import Shop
from pilothouse.messages import Message
from pilothouse.models.scripted import ScriptedModel, call
from pilothouse.runtime.journal import MemoryStore


def route(*turns: tuple[str, str]) -> str | None:
    """Route a conversation; a tool result's tool is named by its first word."""
    messages = [
        Message(role, text, (), None, TOOL_OF.get(text.split(":")[0].split()[0]))  # type: ignore[arg-type]
        if role == "tool"
        else Message(role, text)  # type: ignore[arg-type]
        for role, text in turns
    ]
    return decide(messages, lambda q: "refund" in q or "ship" in q).tool


TOOL_OF = {"Verified": "verify_identity", "Order": "order_status"}


def test_classify() -> None:
    assert classify("I want to talk to a real person") == "transfer_to_human"
    assert classify("please cancel A1007") == "cancel_order"
    assert classify("can I exchange A1012-1 for grey") == "exchange_items"
    assert classify("I'd like to return A1052-1") == "return_items"
    assert classify("where is my parcel") == "order_status"
    assert classify("hello") is None


def test_decide_routes_one_step_at_a_time() -> None:
    ask = ("user", "I'm ben.adler@example.com, zip 97301. Where is A1091?")
    assert route(ask) == "verify_identity"
    verified = ("tool", "Verified: customer C002, Ben Adler. Orders: A1091 (processed).")
    assert route(ask, ("assistant", ""), verified) == "order_status"
    status = ("tool", "Order A1091 is processed.")
    assert route(ask, ("assistant", ""), verified, ("assistant", ""), status) is None  # reply
    # no identity yet: ask for it (a reply), then verify and act on the earlier request
    first = ("user", "cancel my order A1007")
    assert route(first) is None
    assert route(first, ("assistant", "email and zip?"), ("user", "dev@example.com 37062")) == (
        "verify_identity"
    )
    # verified in an earlier turn (the desk's note): straight to the action
    note = ("assistant", "Verified: customer C007, Dev Kowalski.")
    assert route(note, ("user", "cancel A1007")) == "cancel_order"
    # a question about refunds without an order is for the help articles
    assert route(("user", "How long does a refund take?")) == "search_help"
    assert route(("user", "I want a real person now")) == "transfer_to_human"
    assert route(("user", "blorp")) is None
    # thanks after an answer is not the earlier request again
    assert (
        route(ask, ("assistant", "Order A1091 is processed."), ("user", "Great, thanks!")) is None
    )
    # an order number answering "which order?" carries the earlier request
    which = ("assistant", "Which order?")
    assert route(note, ("user", "please cancel my order"), which, ("user", "A1007")) == (
        "cancel_order"
    )


async def test_the_inner_model_sees_one_tool_with_grounded_arguments(shop: Shop) -> None:
    inner = ScriptedModel(
        [
            call("verify_identity", email="ben.adler@example.com", zip="97301"),
            call("order_status", order_id="A1091"),
        ]
    )
    agent = build_support_agent(shop, model=RoutedModel(inner, shop), store=MemoryStore())
    result = await agent.run(
        "I'm ben.adler@example.com, zip 97301. Where is my order A1091?", deps=SupportDeps(shop)
    )
    assert result.output.startswith("Order A1091 is processed: it was placed on 2026-11-17")
    first, second = inner.requests  # the reply was written from the result, not by the model
    assert [t.name for t in first.tools] == ["verify_identity"]
    assert first.tool_choice == "required"
    props = first.tools[0].parameters["properties"]
    assert props["email"] == {"enum": ["ben.adler@example.com"]}
    assert props["zip"] == {"enum": ["97301"]}
    assert [t.name for t in second.tools] == ["order_status"]
    assert second.tools[0].parameters["properties"]["order_id"] == {"enum": ["A1091"]}
    replies = [
        e.response.model  # type: ignore[attr-defined]
        for e in agent.store.events(result.run_id)
        if e.type == "model_response"
    ]
    assert replies == ["scripted", "scripted", FACTS_MODEL]  # the journal says who wrote what
    assert len(agent.tools) == 10  # the agent itself offers every tool


async def test_refusals_and_missing_facts_become_customer_lines(shop: Shop) -> None:
    inner = ScriptedModel(
        [
            call("verify_identity", email="ben.adler@example.com", zip="97301"),
            call("cancel_order", order_id="A1007"),  # Dev's order, not Ben's
        ]
    )
    agent = build_support_agent(shop, model=RoutedModel(inner, shop), store=MemoryStore())
    first = await agent.run("cancel my order A1007", deps=SupportDeps(shop))  # ask for it
    assert "email address and the ZIP code" in first.output
    second = await agent.run(
        "ben.adler@example.com 97301",
        history=[Message.user("cancel my order A1007")],
        deps=SupportDeps(shop),
    )
    assert second.output == (
        "I'm sorry, I can't do that. That order is not on the verified customer's account."
    )


async def test_free_model_replies_are_an_option(shop: Shop) -> None:
    inner = ScriptedModel(["How can I help?"])
    agent = build_support_agent(
        shop, model=RoutedModel(inner, shop, replies="model"), store=MemoryStore()
    )
    result = await agent.run("blorp", deps=SupportDeps(shop))
    assert result.output == "How can I help?"
    assert inner.requests[0].tools == []
