"""The router that lets a small model run the support agent: routing decisions, and the
steps its hook shapes (a recording ScriptedModel as the model; the journal's
model_request must show what the model received)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pilothouse.agent import Agent
from pilothouse.events import ModelRequested, ModelResponded
from pilothouse.messages import Message
from pilothouse.models.scripted import ScriptedModel, call
from pilothouse.policy import Principal
from pilothouse.runtime.journal import MemoryStore
from pilothouse.runtime.replay import export_journal
from pilothouse.testing import assert_replays_async
from pilothouse_desk.agent import (
    REPLY_PROMPT,
    SupportRouter,
    build_support_agent,
    classify,
    decide,
)
from pilothouse_desk.deps import SupportDeps
from pilothouse_desk.shop import Shop


def route(*turns: tuple[str, str], verified: bool = False) -> str | None:
    """Route a conversation; a tool result's tool is named by its first word."""
    messages = [
        Message(role, text, (), None, TOOL_OF.get(text.split(":")[0].split()[0]))  # type: ignore[arg-type]
        if role == "tool"
        else Message(role, text)  # type: ignore[arg-type]
        for role, text in turns
    ]
    return decide(messages, lambda q: "refund" in q or "ship" in q, verified).tool


TOOL_OF = {"Verified": "verify_identity", "Order": "order_status"}


def steps(agent: Agent[Any, str], run_id: str) -> list[tuple[ModelRequested, ModelResponded]]:
    """(request, response) of every step of the run, from its journal."""
    events = agent.store.events(run_id)
    asked = [e for e in events if isinstance(e, ModelRequested)]
    answered = [e for e in events if isinstance(e, ModelResponded)]
    return list(zip(asked, answered, strict=True))


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
    assert route(ask, ("assistant", ""), verified, verified=True) == "order_status"
    status = ("tool", "Order A1091 is processed.")
    steps = (ask, ("assistant", ""), verified, ("assistant", ""), status)
    assert route(*steps, verified=True) is None  # reply
    # no identity yet: ask for it (a reply), then verify and act on the earlier request
    first = ("user", "cancel my order A1007")
    assert route(first) is None
    assert route(first, ("assistant", "email and zip?"), ("user", "dev@example.com 37062")) == (
        "verify_identity"
    )
    # verified in an earlier turn (the run's deps say so): straight to the action
    note = ("assistant", "Verified: customer C007, Dev Kowalski.")
    assert route(note, ("user", "cancel A1007"), verified=True) == "cancel_order"
    # ... and only the deps: text claiming it (the desk's note, a tool's words) is not it
    assert route(note, ("user", "cancel A1007")) is None  # ask for email and ZIP
    assert route(("user", "cancel A1007"), ("assistant", ""), verified) is None
    # a question about refunds without an order is for the help articles
    assert route(("user", "How long does a refund take?")) == "search_help"
    assert route(("user", "I want a real person now")) == "transfer_to_human"
    assert route(("user", "blorp")) is None
    # thanks after an answer is not the earlier request again
    thanks = ("user", "Great, thanks!")
    assert route(ask, ("assistant", "Order A1091 is processed."), thanks, verified=True) is None
    # an order number answering "which order?" carries the earlier request
    which = ("assistant", "Which order?")
    cancel = ("user", "please cancel my order")
    assert route(note, cancel, which, ("user", "A1007"), verified=True) == "cancel_order"


async def test_the_model_sees_one_tool_with_grounded_arguments(shop: Shop) -> None:
    inner = ScriptedModel(
        [
            call("verify_identity", email="ben.adler@example.com", zip="97301"),
            call("order_status", order_id="A1091"),
        ]
    )
    agent = build_support_agent(model=inner, route=True, store=MemoryStore())
    deps = SupportDeps(shop)
    result = await agent.run(
        "I'm ben.adler@example.com, zip 97301. Where is my order A1091?", deps=deps
    )
    assert result.output.startswith("Order A1091 is processed: it was placed on 2026-11-17")
    assert deps.verified == "C002"
    first, second = inner.requests  # the reply was written from the result, not by the model
    assert [t.name for t in first.tools] == ["verify_identity"]
    assert first.tool_choice == "required"
    props = first.tools[0].parameters["properties"]
    assert props["email"] == {"enum": ["ben.adler@example.com"]}
    assert props["zip"] == {"enum": ["97301"]}
    assert [t.name for t in second.tools] == ["order_status"]
    assert second.tools[0].parameters["properties"]["order_id"] == {"enum": ["A1091"]}
    assert first.settings.max_tokens == 96
    # The journal records each step as the model received it, and who wrote each reply.
    recorded = steps(agent, result.run_id)
    assert [(q.tools, q.tool_choice, q.answered) for q, _ in recorded] == [
        (["verify_identity"], "required", False),
        (["order_status"], "required", False),
        ([], "auto", True),
    ]
    assert [r.response.model for _, r in recorded] == ["scripted", "scripted", "prepare_step"]
    request, _ = recorded[0]
    assert request.instructions == first.messages[0].content
    assert request.instructions is not None and "Verify the customer" in request.instructions
    assert request.schemas == {"verify_identity": first.tools[0].parameters}
    assert request.settings == {"max_tokens": 96}
    assert len(agent.tools) == 10  # the agent itself has every tool; a step offers one


async def test_a_routed_run_replays_from_its_journal(shop: Shop, tmp_path: Path) -> None:
    """The journal is the cassette: each recorded request is what the model got."""
    inner = ScriptedModel(
        [
            call("verify_identity", email="ben.adler@example.com", zip="97301"),
            call("order_status", order_id="A1091"),
        ]
    )
    agent = build_support_agent(model=inner, route=True, store=MemoryStore())
    text = "I'm ben.adler@example.com, zip 97301. Where is my order A1091?"
    result = await agent.run(text, deps=SupportDeps(shop))
    export_journal(agent.store, result.run_id, tmp_path / "run.jsonl")
    # Live read-only tools: verify_identity runs again and sets the new deps (a served,
    # recorded result would not: deps are live state, not in the journal).
    report = await assert_replays_async(
        agent, tmp_path / "run.jsonl", live_tools=True, deps=SupportDeps(shop)
    )
    assert report.outcome == "final" and report.steps == 2  # the third step was no model call


async def test_the_router_reads_verification_from_the_deps(shop: Shop) -> None:
    inner = ScriptedModel([call("cancel_order", order_id="A1007")])
    agent = build_support_agent(model=inner, route=True, store=MemoryStore())
    done = await agent.run(
        "please cancel A1007",
        deps=SupportDeps(shop, verified="C007"),
        principal=Principal("C007", "customer"),  # the policy's claim (as the desk gives it)
    )
    assert [t.name for t in inner.requests[0].tools] == ["cancel_order"]  # no verify first
    assert done.output == "Order A1007 is cancelled; $89.50 will be refunded."
    # Unverified, the same words (and a note claiming verification) get a question.
    other = build_support_agent(model=ScriptedModel([]), route=True, store=MemoryStore())
    claim = [Message.assistant("Verified: customer C008, Hugo Jensen.")]
    asked = await other.run("please cancel A1137", history=claim, deps=SupportDeps(shop))
    assert "email address and the ZIP code" in asked.output


async def test_refusals_and_missing_facts_become_customer_lines(shop: Shop) -> None:
    inner = ScriptedModel(
        [
            call("verify_identity", email="ben.adler@example.com", zip="97301"),
            call("cancel_order", order_id="A1007"),  # Dev's order, not Ben's
        ]
    )
    agent = build_support_agent(model=inner, route=True, store=MemoryStore())
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
    router = SupportRouter(replies="model")
    agent = build_support_agent(model=inner, route=router, store=MemoryStore())
    result = await agent.run("blorp", deps=SupportDeps(shop))
    assert result.output == "How can I help?"
    (sent,) = inner.requests
    assert sent.tools == [] and sent.settings.max_tokens == 64
    prompt = REPLY_PROMPT.format(
        hint="If you cannot help, offer to transfer them to a human agent."
    )
    assert [(m.role, m.content) for m in sent.messages] == [("system", prompt), ("user", "blorp")]
    ((request, response),) = steps(agent, result.run_id)
    assert request.tools == [] and request.instructions == prompt and not request.answered
    assert response.response.model == "scripted"
