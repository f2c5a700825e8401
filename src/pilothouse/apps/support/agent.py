"""The support agent: ten tools, the shop's policy, budgets, and a router for small models.

`build_support_agent(shop)` returns an ordinary `Agent[SupportDeps, str]`: its tools are the ten
support tools, its policy `policy.yaml`, its journal the given store. With a capable
model (``model="openai:..."``) the model chooses among all ten tools itself.

The embedded model (SmolLM2-135M) cannot choose among ten tools, so by default the
agent's model is a `RoutedModel` around it. Before each model call the router reads
the conversation and decides *which* step comes next, deterministically:

- the customer asks for a person, or is angry         -> ``transfer_to_human``
- an order action or question with an order number      -> ``verify_identity`` first when
  the conversation is not verified (email and ZIP in the conversation), then the one
  tool the customer asked for (cancel, return, exchange, refund, address, status)
- a question without an order number that the help articles answer -> ``search_help``
- after a tool's result, or when something is missing -> a reply to the customer,
  with a one-line hint of what to say or ask

and offers the model only that one tool, with ``tool_choice="required"``. The model's
part is filling the arguments under the grammar, where id-like arguments (order and
item ids, email, ZIP, amount, address, size or color) are narrowed to an ``enum`` of
the values the customer actually wrote, so it can pick among them but not invent
one. The policy still decides every call: the router only narrows what the model
sees, it authorises nothing. What the model was actually sent is visible with
`RoutedModel.render`; the journal records the agent's own request (all tools).

Replies to the customer are, by default (``replies="facts"``), the last tool
result's own sentence (tool results are written for customers; a refusal becomes
"I'm sorry, I can't do that. <why>") or a fixed line for the hint ("what are the
email address and the ZIP code of your account?"), recorded in the journal as the
response of model ``support-router:facts``. We measured SmolLM2-135M writing the
replies itself (``replies="model"``, the facts in its prompt): on the batch it
answered "Ben Adler, 97301, is a product from Ben Adler, a company that ..." to an
order-status question and "I'm sorry for your loss" to a cancellation, and when
asked to choose between the result's sentence and an offer of a human (an
``enum``) it chose the offer nearly every time. A capable model (`route=False`)
writes its own replies and chooses its own tools.

Measured on the shipped batch (``python -m pilothouse.apps.support``); see the
support desk section of the README for the figures.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from pilothouse.agent import Agent
from pilothouse.exceptions import ConfigurationError
from pilothouse.messages import Message, Usage
from pilothouse.models.base import (
    Capabilities,
    Model,
    ModelRequest,
    ModelResponse,
    ModelSettings,
    StreamItem,
    TextDelta,
    ToolSpec,
)
from pilothouse.policy.engine import Policy
from pilothouse.runtime.budget import Budget
from pilothouse.runtime.journal import Store

from .deps import SupportDeps
from .shop import PRODUCTS, Shop
from .tools import TOOLS, support_policy

_log = logging.getLogger("pilothouse.apps.support")

INSTRUCTIONS = """\
You are the customer support assistant of an online shop. Be brief and polite. \
Verify the customer (email and ZIP code) before discussing or changing an order. \
Use the tools; never invent order details. Cite the help article you used. \
Transfer to a human when the customer asks for one or when you cannot help."""

ORDER_RE = re.compile(r"\bA[0-9]{4}\b")
EMAIL_RE = re.compile(r"\b[a-z0-9.]+@[a-z0-9.]+\.[a-z]+\b")
ZIP_RE = re.compile(r"\b[0-9]{5}\b")
ITEM_RE = re.compile(r"\bA[0-9]{4}-[0-9]\b")
AMOUNT_RE = re.compile(r"\$\s?([0-9]+(?:\.[0-9]{1,2})?)")
ADDRESS_RE = re.compile(r"\b[0-9]{1,5} [A-Za-z][A-Za-z .]+, [A-Za-z][A-Za-z .]+ [0-9]{5}\b")
VARIANTS = sorted({v for _, variants, _ in PRODUCTS for v in variants}, key=len, reverse=True)
VERIFIED_RE = re.compile(r"Verified: customer C[0-9]{3}")

# intent -> (tool, words that ask for it); checked in this order
INTENTS: list[tuple[str, re.Pattern[str]]] = [
    (
        "transfer_to_human",
        re.compile(
            r"\b(human|real person|a person|manager|supervisor|representative|"
            r"unacceptable|ridiculous|furious|worst|fed up)\b"
        ),
    ),
    ("cancel_order", re.compile(r"\bcancel")),
    ("refund", re.compile(r"\b(refund|money back|reimburse)")),
    ("exchange_items", re.compile(r"\b(exchange|swap|another size|other size|different size)")),
    ("return_items", re.compile(r"\breturn")),
    ("change_address", re.compile(r"\b(address|ship it to|deliver it to|moved)\b")),
    ("order_status", re.compile(r"\b(where|status|track|shipped|arrive|deliver|late)")),
]
ORDER_INTENTS = {
    "cancel_order",
    "refund",
    "exchange_items",
    "return_items",
    "change_address",
    "order_status",
}

# One worked example per tool step (ids are words, which the patterns forbid, so
# they cannot be copied into a call; see examples/local_agent.py for why examples).
EXAMPLES = {
    "verify_identity": (
        "user: hi, I am sam.example@example.com, zip ZIPCODE, where is order ORDER-ONE?",
        '{"tool": "verify_identity", "arguments": {"email": "sam.example@example.com", '
        '"zip": "ZIPCODE"}}',
    ),
    "order_status": (
        "user: where is my order ORDER-ONE?",
        '{"tool": "order_status", "arguments": {"order_id": "ORDER-ONE"}}',
    ),
    "cancel_order": (
        "user: please cancel order ORDER-ONE",
        '{"tool": "cancel_order", "arguments": {"order_id": "ORDER-ONE"}}',
    ),
    "return_items": (
        "user: I want to return item ORDER-ONE-1 from order ORDER-ONE",
        '{"tool": "return_items", "arguments": {"order_id": "ORDER-ONE", '
        '"item_ids": ["ORDER-ONE-1"]}}',
    ),
    "exchange_items": (
        "user: can I exchange item ORDER-ONE-2 of order ORDER-ONE for size XXL?",
        '{"tool": "exchange_items", "arguments": {"order_id": "ORDER-ONE", '
        '"item_id": "ORDER-ONE-2", "new_variant": "XXL"}}',
    ),
    "refund": (
        "user: please refund $12.50 for order ORDER-ONE",
        '{"tool": "refund", "arguments": {"order_id": "ORDER-ONE", "amount": 12.5}}',
    ),
    "change_address": (
        "user: send order ORDER-ONE to 1 Main Street, Townsville 00000 instead",
        '{"tool": "change_address", "arguments": {"order_id": "ORDER-ONE", '
        '"address": "1 Main Street, Townsville 00000"}}',
    ),
    "search_help": (
        "user: how do I clean my widget?",
        '{"tool": "search_help", "arguments": {"query": "how do I clean my widget"}}',
    ),
    "transfer_to_human": (
        "user: I want to talk to a person about my lost parcel!",
        '{"tool": "transfer_to_human", "arguments": {"summary": "Customer asks for a '
        'human about a lost parcel."}}',
    ),
}

STEP_PROMPT = """\
You are the support assistant of an online shop. {task}

Example:
{example_user}
assistant: {example_call}"""

REPLY_PROMPT = """\
You are the support assistant of an online shop. Answer the customer in one or two \
short sentences, using only the facts below. {hint}"""

REPLY_HINTS = {
    "verify_identity": "Tell the customer whether the verification worked.",
    "search_help": "Answer with the help article's text and name the article.",
    "transfer_to_human": "Tell the customer that a human agent will take over.",
    "need_identity": "Ask for the email address and the ZIP code of their account.",
    "need_address": "Ask for the new delivery address: street, city and ZIP code.",
    "need_order": "Ask for the order number (a letter A and four digits).",
    "unknown": "If you cannot help, offer to transfer them to a human agent.",
    "already_verified": "Say the customer is verified and ask how you can help.",
    "thanks": "Say you are glad to help and ask if there is anything else.",
}
# What a reply may say, per hint, when replies are grounded (see `RoutedModel`).
SAYINGS = {
    "transfer_to_human": "I have passed your case to a human agent, who will take over here "
    "shortly.",
    "need_identity": "I can help with that. First, what are the email address and the ZIP "
    "code of your account?",
    "need_address": "What is the new delivery address (street, city and ZIP code)?",
    "need_order": "Which order is it about? Please give the order number (like A1234).",
    "unknown": "I'm not sure I can help with that. Would you like me to transfer you to a "
    "human agent?",
    "already_verified": "You are already verified. How can I help you?",
    "thanks": "You're welcome! Is there anything else I can help you with?",
}
FACTS_MODEL = "support-router:facts"  # ModelResponse.model of a reply written from results
OFFER_HUMAN = "I'm sorry, something went wrong on my side. Shall I transfer you to a human agent?"
TASKS = {
    "verify_identity": "Verify the customer with the email and ZIP code they gave.",
    "order_status": "Look up the order the customer asks about.",
    "cancel_order": "Cancel the order the customer names.",
    "return_items": "Start the return of the items the customer names.",
    "exchange_items": "Exchange the item for the size or color the customer wants.",
    "refund": "Refund the amount the customer asks for, for the order they name.",
    "change_address": "Change the order's delivery address to the one the customer gives.",
    "search_help": "Search the help articles for the customer's question.",
    "transfer_to_human": "Transfer the customer to a human agent with a one-line summary.",
}


DEFAULT_BUDGET = Budget(max_steps=6, max_seconds=180.0, max_repeats=2)


@dataclass(frozen=True, slots=True)
class Route:
    """What the next model call is for: one tool to call, or a reply with a hint."""

    tool: str | None
    hint: str = "unknown"  # a key of REPLY_HINTS: what the reply should do


def classify(text: str) -> str | None:
    """The intent (a tool name) a customer's message asks for, or None."""
    low = text.lower()
    for name, pattern in INTENTS:
        if pattern.search(low):
            return name
    return None


QUESTION_RE = re.compile(r"\?|^\s*(how|what|when|can|do|does|is|are|which|why)\b", re.I)


THANKS_RE = re.compile(r"\b(thanks|thank you|bye|great|perfect)\b")


def _written(text: str) -> ModelResponse:
    """A reply the router wrote from the facts (named as such in the journal)."""
    return ModelResponse(text=text, usage=Usage(), model=FACTS_MODEL, finish_reason="stop")


def _refusal(text: str) -> str | None:
    """The customer-facing part of a refused call's result (policy or tool), else None."""
    m = re.match(r"Policy denied the call to '[\w]+': (.*)", text, re.S)
    if m:
        return m.group(1)
    return text[len("Not done: ") :] if text.startswith("Not done: ") else None


def _uniq(values: list[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


def _is_question(text: str) -> bool:
    return bool(QUESTION_RE.search(text))


def decide(messages: list[Message], has_help: Callable[[str], bool]) -> Route:
    """The next step for this conversation (see the module docs); pure and deterministic."""
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
    if last_user < 0:
        return Route(None, "unknown")
    text = messages[last_user].content
    done = [m for m in messages[last_user + 1 :] if m.role == "tool"]
    done_names = [m.name for m in done]
    said = " ".join(m.content for m in messages if m.role == "user")
    verified = any(VERIFIED_RE.search(m.content) for m in messages if m.role != "user")
    intent = classify(text)
    answers = (
        EMAIL_RE.search(text.lower())
        or ZIP_RE.search(text)
        or ORDER_RE.search(text)
        or ADDRESS_RE.search(text)
    )
    if answers and intent not in ORDER_INTENTS:
        # an answer to our question (an email, an order number): the request is earlier
        for m in reversed(messages[:last_user]):
            if m.role == "user" and classify(m.content) in ORDER_INTENTS:
                intent = classify(m.content)
                break
    if intent == "transfer_to_human":
        if "transfer_to_human" in done_names:
            return Route(None, "transfer_to_human")
        return Route("transfer_to_human")
    if intent is None and ORDER_RE.search(text):
        intent = "order_status"
    if intent is None and EMAIL_RE.search(text.lower()) and not verified:
        intent = "verify_identity"
    if intent in ORDER_INTENTS and not ORDER_RE.search(said) and _is_question(text):
        intent = None  # "how long does a refund take?": a question for the help articles
    if intent in ORDER_INTENTS or intent == "verify_identity":
        if done:  # one action per customer message; then report it
            last = done[-1]
            if last.name == "verify_identity" and verified and intent != "verify_identity":
                if not ORDER_RE.search(said):
                    return Route(None, "need_order")
                if intent == "change_address" and not ADDRESS_RE.search(text):
                    return Route(None, "need_address")
                return Route(intent)
            return Route(None, last.name or "unknown")
        if not verified:
            if EMAIL_RE.search(said.lower()) and ZIP_RE.search(said):
                return Route("verify_identity")
            return Route(None, "need_identity")
        if intent == "verify_identity":
            return Route(None, "already_verified")
        if not ORDER_RE.search(said):
            return Route(None, "need_order")
        if intent == "change_address" and not ADDRESS_RE.search(text):
            return Route(None, "need_address")
        return Route(intent)
    if "search_help" in done_names:
        return Route(None, "search_help")
    if done:
        return Route(None, "unknown")
    if THANKS_RE.search(text.lower()) and len(text) < 60:
        return Route(None, "thanks")
    if has_help(text):
        return Route("search_help")
    return Route(None, "unknown")


class RoutedModel:
    """A model wrapper that offers the inner model one step at a time (see the module docs).

    `history_turns` bounds how many earlier conversation messages the inner model
    sees (a small model reads a short prompt faster and better). `replies` is "facts"
    (replies are the results' own sentences, written without a model call) or "model"
    (the inner model writes them from the facts, at most `reply_tokens` long);
    `call_tokens` caps a tool call's length.
    """

    def __init__(
        self,
        inner: Model,
        shop: Shop,
        *,
        history_turns: int = 4,
        reply_tokens: int = 64,
        call_tokens: int = 96,
        replies: Literal["facts", "model"] = "facts",
    ) -> None:
        if replies not in ("facts", "model"):
            raise ConfigurationError(f"replies must be 'facts' or 'model', not {replies!r}")
        self.replies = replies
        self.call_tokens = call_tokens
        self.inner = inner
        self.shop = shop
        self.history_turns = history_turns
        self.reply_tokens = reply_tokens

    @property
    def name(self) -> str:
        return f"support-router({self.inner.name})"

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    def route(self, request: ModelRequest) -> tuple[Route, ModelRequest]:
        """The step the router chose and the request the inner model gets for it."""
        convo = [m for m in request.messages if m.role != "system"]
        route = decide(convo, lambda q: bool(self.shop.search(q, limit=1)))
        # the current run: from the last customer message on; before it, a few turns
        last_user = max((i for i, m in enumerate(convo) if m.role == "user"), default=0)
        earlier = [m for m in convo[:last_user] if m.role in ("user", "assistant") and m.content]
        kept = earlier[-self.history_turns :] if self.history_turns else []
        messages = [*kept, *convo[last_user:]]
        if route.tool is not None:
            user, call = EXAMPLES[route.tool]
            system = STEP_PROMPT.format(
                task=TASKS[route.tool], example_user=user, example_call=call
            )
            said = " ".join(m.content for m in convo if m.role == "user")
            tools = [
                self._grounded(t, said, convo[last_user].content)
                for t in request.tools
                if t.name == route.tool
            ]
            if tools:
                return route, replace(
                    request,
                    messages=[Message.system(system), *messages],
                    tools=tools,
                    tool_choice="required",
                    settings=self._capped(request, self.call_tokens),
                )
            route = Route(None, "unknown")
        # A reply sees the results as facts, not as tool-call turns: shown its own calls,
        # a small model goes on writing calls as text instead of answering.
        results = [m for m in convo[last_user + 1 :] if m.role == "tool"]
        facts = [m.content for m in results]
        system = REPLY_PROMPT.format(hint=REPLY_HINTS.get(route.hint, ""))
        if facts:
            system += "\n\nFacts:\n" + "\n".join(f"- {f}" for f in facts)
        messages = [*kept, convo[last_user]] if convo else []
        settings = self._capped(request, self.reply_tokens)
        return route, replace(
            request,
            messages=[Message.system(system), *messages],
            tools=[],
            tool_choice="auto",
            settings=settings,
        )

    def reply(self, request: ModelRequest) -> str | None:
        """The customer-facing reply when replies are "facts" and this step is a reply."""
        if self.replies != "facts":
            return None
        route, routed = self.route(request)
        if routed.tools:
            return None
        convo = [m for m in request.messages if m.role != "system"]
        last_user = max((i for i, m in enumerate(convo) if m.role == "user"), default=0)
        results = [m for m in convo[last_user + 1 :] if m.role == "tool"]
        return self._sayings(route, results)[0]

    @staticmethod
    def _sayings(route: Route, results: list[Message]) -> list[str]:
        """The reply written from the facts: the last result's sentence, or the hint's line."""
        if not results:
            return [SAYINGS.get(route.hint, SAYINGS["unknown"])]
        last = results[-1]
        text = last.content
        if last.name == "transfer_to_human" and text.startswith("Transferred"):
            return [SAYINGS["transfer_to_human"]]
        if last.name == "verify_identity":
            m = re.search(r"customer C[0-9]{3}, (\w+)", text)
            if m:
                return [f"Thank you, {m.group(1)}, you are verified. How can I help?"]
        if text.startswith(("Invalid arguments", "Could not parse", "Tool '")):
            return [OFFER_HUMAN]  # our own failure: never show the customer a stack of it
        refused = _refusal(text)
        if refused is not None:
            return [f"I'm sorry, I can't do that. {refused}"]
        return [text]

    def _grounded(self, spec: ToolSpec, said: str, text: str) -> ToolSpec:
        """The tool's schema with id-like arguments limited to values the customer wrote.

        Each such argument becomes an ``enum`` of the candidates found in the
        customer's messages (latest first), so the grammar lets the model pick one
        of them but not invent one; free-text arguments (a summary) stay free. The
        tool itself still validates against its own schema.
        """
        props = dict(spec.parameters.get("properties", {}))
        found: dict[str, list[Any]] = {
            "order_id": _uniq(ORDER_RE.findall(text) + ORDER_RE.findall(said)),
            "email": _uniq(EMAIL_RE.findall(said.lower())),
            "zip": _uniq(ZIP_RE.findall(said)),
            "item_id": _uniq(ITEM_RE.findall(text) + ITEM_RE.findall(said)),
            "amount": _uniq([float(a) for a in AMOUNT_RE.findall(text)]),
            "address": _uniq(ADDRESS_RE.findall(text)),
            "new_variant": _uniq([v for v in VARIANTS if v.lower() in text.lower()]),
            "query": [text.strip()[:200]],
        }
        for name, values in found.items():
            if name in props and values:
                props[name] = {"enum": values}
        if "item_ids" in props and found["item_id"]:
            props["item_ids"] = {
                "type": "array",
                "items": {"enum": found["item_id"]},
                "minItems": 1,
                "maxItems": len(found["item_id"]),  # else a small model repeats the id
            }
        props.pop("payment_method_id", None)  # the order's own method; the model cannot know ids
        parameters = dict(spec.parameters, properties=props)
        if "required" in parameters:
            parameters["required"] = [r for r in parameters["required"] if r in props]
        return ToolSpec(spec.name, spec.description, parameters)

    @staticmethod
    def _capped(request: ModelRequest, tokens: int) -> ModelSettings:
        settings = request.settings
        if settings.max_tokens is None or settings.max_tokens > tokens:
            settings = replace(settings, max_tokens=tokens)
        return settings

    async def generate(self, request: ModelRequest) -> ModelResponse:
        routed = self.route(request)[1]
        started = time.perf_counter()
        text = self.reply(request)
        if text is not None:
            return _written(text)
        response = await self.inner.generate(routed)
        _log.debug(
            "step %s took %.2fs",
            routed.tools and routed.tools[0].name,
            time.perf_counter() - started,
        )
        return response

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]:
        text = self.reply(request)
        if text is not None:
            yield TextDelta(text)
            yield _written(text)
            return
        async for item in self.inner.stream(self.route(request)[1]):
            yield item

    def render(self, request: ModelRequest) -> str:
        return self.inner.render(self.route(request)[1])


def build_support_agent(
    shop: Shop,
    *,
    model: Model | str | None = None,
    store: Store | str | None = None,
    policy: Policy | None = None,
    route: bool | None = None,
    budget: Budget | None = None,
) -> Agent[SupportDeps, str]:
    """The support agent over `shop`; each run takes its `SupportDeps` (``deps=``).

    `model` defaults to the embedded local model. `route` wraps the model in a
    `RoutedModel`; by default only the embedded model (or any ``local:`` model) is
    routed. `policy` defaults to the shipped `policy.yaml`. `budget`
    defaults to `DEFAULT_BUDGET`: six steps (verify, act, reply and room for one
    retry) and three minutes of wall time per customer message.
    """
    if model is None or isinstance(model, str):
        from pilothouse.models.registry import resolve_model

        resolved: Model = resolve_model(model)
    else:
        resolved = model
    if route is None:
        route = resolved.name.startswith("local:")
    if route:
        resolved = RoutedModel(resolved, shop)
    return Agent(
        model=resolved,
        instructions=INSTRUCTIONS,
        tools=TOOLS,
        name="support",
        budget=budget or DEFAULT_BUDGET,
        store=store,
        policy=policy if policy is not None else support_policy(),
        deps_type=SupportDeps,
    )
