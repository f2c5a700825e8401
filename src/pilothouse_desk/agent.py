"""The support agent: ten tools, the shop's policy, budgets, and a router for small models.

`build_support_agent()` returns an ordinary `Agent[SupportDeps, str]`: its tools are the
ten support tools, its policy `policy.yaml`, its journal the given store; each run is
given a `SupportDeps` (the shop and the conversation's verified customer). With a
capable model (``model="openai:..."``) the model chooses among all ten tools itself.

The embedded model (SmolLM2-135M) cannot choose among ten tools, so by default the
agent gets a `SupportRouter` as its step hook (``prepare_step``). Before each model
call the router reads the conversation and the run's deps and decides *which* step
comes next, deterministically:

- the customer asks for a person, or is angry         -> ``transfer_to_human``
- an order action or question with an order number      -> ``verify_identity`` first when
  the conversation is not verified (``deps.verified``; email and ZIP in the
  conversation), then the one tool the customer asked for (cancel, return, exchange,
  refund, address, status)
- a question without an order number that the help articles answer -> ``search_help``
  (the help articles' knowledge base, `help.help_tool`); its reply is an `Answer`
  quoting the best passage with a citation (`help.answer_from`), checked like every
  reply after a help search (`help.check_help_reply`)
- after a tool's result, or when something is missing -> a reply to the customer,
  with a one-line hint of what to say or ask

It returns that decision as the step's `StepOptions`: the one tool offered, with
``tool_choice="required"``; the step's prompt and a worked example as instructions;
the last few turns and the current one as the messages sent; the tool's parameters
narrowed as ``schemas``, where id-like arguments (order and item ids, email, ZIP,
amount, address, size or color) become an ``enum`` of the values the customer
actually wrote, so under the grammar the model can pick among them but not invent
one; and a token cap as settings. The model's part is filling the arguments. The
policy still decides every call: the router only narrows what the model sees, it
authorises nothing. The model is the plain model, and the loop journals each step
as the hook shaped it (``model_request``: tools, instructions, view, schemas,
settings), so the trace, `render_prompt` and replay show what the model received.

Replies to the customer are, by default (``replies="facts"``), the last tool
result's own sentence (tool results are written for customers; a refusal becomes
"I'm sorry, I can't do that. <why>") or a fixed line for the hint ("what are the
email address and the ZIP code of your account?"): the hook answers the step itself
(`StepOptions.answer`), journaled as the step's response from model
``"prepare_step"``, with no model call. We measured SmolLM2-135M writing the
replies itself (``replies="model"``: a reply step then sends `REPLY_PROMPT` and the
facts as instructions, with no tools): on the batch it answered "Ben Adler, 97301,
is a product from Ben Adler, a company that ..." to an order-status question and
"I'm sorry for your loss" to a cancellation, and when asked to choose between the
result's sentence and an offer of a human (an ``enum``) it chose the offer nearly
every time. A capable model (``route=False``) writes its own replies and chooses
its own tools.

Measured on the shipped batch (``python -m pilothouse_desk``); see the
support desk section of the README for the figures.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from pilothouse import (
    Agent,
    Budget,
    ConfigurationError,
    Message,
    Model,
    ModelSettings,
    Policy,
    StepContext,
    StepOptions,
)
from pilothouse.runtime.journal import Store

from .deps import SupportDeps
from .help import (
    ANSWER_FORMAT,
    HelpBase,
    answer_from,
    check_help_reply,
    help_base,
    help_tool,
    session_reply,
)
from .shop import PRODUCTS
from .tools import TOOLS, support_policy

INSTRUCTIONS = (
    """\
You are the customer support assistant of an online shop. Be brief and polite. \
Verify the customer (email and ZIP code) before discussing or changing an order. \
Use the tools; never invent order details. \
Transfer to a human when the customer asks for one or when you cannot help. """
    + ANSWER_FORMAT
)

ORDER_RE = re.compile(r"\bA[0-9]{4}\b")
EMAIL_RE = re.compile(r"\b[a-z0-9.]+@[a-z0-9.]+\.[a-z]+\b")
ZIP_RE = re.compile(r"\b[0-9]{5}\b")
ITEM_RE = re.compile(r"\bA[0-9]{4}-[0-9]\b")
AMOUNT_RE = re.compile(r"\$\s?([0-9]+(?:\.[0-9]{1,2})?)")
ADDRESS_RE = re.compile(r"\b[0-9]{1,5} [A-Za-z][A-Za-z .]+, [A-Za-z][A-Za-z .]+ [0-9]{5}\b")
VARIANTS = sorted({v for _, variants, _ in PRODUCTS for v in variants}, key=len, reverse=True)

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
# What a reply may say, per hint, when replies are the facts (see `SupportRouter`).
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


def requested_intent(messages: Sequence[Message]) -> str | None:
    """The request the conversation is about: the current message's intent, or, when it
    only answers our question (an email, a ZIP code, an order number, an address), the
    latest earlier message's order request."""
    users = [m.content for m in messages if m.role == "user"]
    if not users:
        return None
    text = users[-1]
    intent = classify(text)
    answers = (
        EMAIL_RE.search(text.lower())
        or ZIP_RE.search(text)
        or ORDER_RE.search(text)
        or ADDRESS_RE.search(text)
    )
    if answers and intent not in ORDER_INTENTS:
        for earlier in reversed(users[:-1]):
            if classify(earlier) in ORDER_INTENTS:
                return classify(earlier)
    return intent


def decide(messages: Sequence[Message], has_help: Callable[[str], bool], verified: bool) -> Route:
    """The next step for this conversation (see the module docs); pure and deterministic.

    `verified`: whether the conversation's customer is verified (the run's
    ``deps.verified``, never read from the messages' text).
    """
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
    if last_user < 0:
        return Route(None, "unknown")
    text = messages[last_user].content
    done = [m for m in messages[last_user + 1 :] if m.role == "tool"]
    done_names = [m.name for m in done]
    said = " ".join(m.content for m in messages if m.role == "user")
    intent = requested_intent(messages)
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


class SupportRouter:
    """The step hook that lets a small model run the support agent (see the module docs).

    Give it as ``Agent(..., prepare_step=SupportRouter())`` (`build_support_agent` does
    for the embedded model); it reads the run's `SupportDeps`. `history_turns` bounds
    how many earlier conversation messages the model sees (a small model reads a short
    prompt faster and better). `replies` is "facts" (replies are the results' own
    sentences, given as the step's answer without a model call) or "model" (the model
    writes them from the facts, at most `reply_tokens` long); `call_tokens` caps a
    tool call's length. `settings` are the agent's sampling settings, which the caps
    apply to (a hook's settings replace the agent's for its step). `base` is the help
    articles' knowledge base whose matches make a question a help question (default:
    the shipped articles).
    """

    def __init__(
        self,
        *,
        base: HelpBase | None = None,
        history_turns: int = 4,
        reply_tokens: int = 64,
        call_tokens: int = 96,
        replies: Literal["facts", "model"] = "facts",
        settings: ModelSettings | None = None,
    ) -> None:
        if replies not in ("facts", "model"):
            raise ConfigurationError(f"replies must be 'facts' or 'model', not {replies!r}")
        self.replies = replies
        self.base = base or help_base()
        self.call_tokens = call_tokens
        self.history_turns = history_turns
        self.reply_tokens = reply_tokens
        self.settings = settings or ModelSettings()

    def route(self, ctx: StepContext[SupportDeps]) -> Route:
        """The step the router chooses for this point of the run."""
        convo = [m for m in ctx.messages if m.role != "system"]
        return decide(convo, self.base.has_help, ctx.deps.verified is not None)

    def __call__(self, ctx: StepContext[SupportDeps]) -> StepOptions:
        """The step's options: one tool with its grounded schema, or a reply."""
        convo = [m for m in ctx.messages if m.role != "system"]
        route = self.route(ctx)
        # the current run: from the last customer message on; before it, a few turns
        last_user = max((i for i, m in enumerate(convo) if m.role == "user"), default=0)
        earlier = [m for m in convo[:last_user] if m.role in ("user", "assistant") and m.content]
        kept = earlier[-self.history_turns :] if self.history_turns else []
        if route.tool is not None and route.tool in ctx.tools:
            user, call = EXAMPLES[route.tool]
            said = " ".join(m.content for m in convo if m.role == "user")
            parameters = ctx.tools[route.tool].spec().parameters
            return StepOptions(
                tools=[route.tool],
                instructions=STEP_PROMPT.format(
                    task=TASKS[route.tool], example_user=user, example_call=call
                ),
                tool_choice="required",
                messages=[*kept, *convo[last_user:]],
                schemas={route.tool: grounded(parameters, said, convo[last_user].content)},
                settings=self._capped(self.call_tokens),
            )
        if route.tool is not None:  # a tool this agent does not have
            route = Route(None, "unknown")
        results = [m for m in convo[last_user + 1 :] if m.role == "tool"]
        if route.hint == "search_help" and results:  # quoted and cited, in either mode
            answer = answer_from(convo[last_user].content, convo)
            return StepOptions(tools=[], answer=answer.model_dump_json())
        if self.replies == "facts":
            return StepOptions(tools=[], answer=saying(route, results, ctx.deps))
        # A reply sees the results as facts, not as tool-call turns: shown its own calls,
        # a small model goes on writing calls as text instead of answering.
        system = REPLY_PROMPT.format(hint=REPLY_HINTS.get(route.hint, ""))
        if results:
            system += "\n\nFacts:\n" + "\n".join(f"- {m.content}" for m in results)
        return StepOptions(
            tools=[],
            instructions=system,
            tool_choice="auto",
            messages=[*kept, convo[last_user]] if convo else [],
            settings=self._capped(self.reply_tokens),
        )

    def _capped(self, tokens: int) -> ModelSettings:
        settings = self.settings
        if settings.max_tokens is None or settings.max_tokens > tokens:
            settings = replace(settings, max_tokens=tokens)
        return settings


def saying(route: Route, results: Sequence[Message], deps: SupportDeps) -> str:
    """The reply written from the facts: the last result's sentence, or the hint's line."""
    if not results:
        return SAYINGS.get(route.hint, SAYINGS["unknown"])
    last = results[-1]
    text = last.content
    if last.name == "transfer_to_human" and text.startswith("Transferred"):
        return SAYINGS["transfer_to_human"]
    if last.name == "verify_identity" and not last.is_error and deps.verified is not None:
        customer = deps.shop.customer(deps.verified)
        if customer is not None:
            return f"Thank you, {customer['first_name']}, you are verified. How can I help?"
    if text.startswith(("Invalid arguments", "Could not parse", "Tool '")):
        return OFFER_HUMAN  # our own failure: never show the customer a stack of it
    refused = _refusal(text)
    if refused is not None:
        return f"I'm sorry, I can't do that. {refused}"
    return text


def grounded(parameters: dict[str, Any], said: str, text: str) -> dict[str, Any]:
    """A tool's parameters with id-like arguments limited to values the customer wrote.

    Each such argument becomes an ``enum`` of the candidates found in the customer's
    messages (`said`; the current message `text` first), so the grammar lets the model
    pick one of them but not invent one; free-text arguments (a summary) stay free.
    The tool itself still validates against its own schema.
    """
    props = dict(parameters.get("properties", {}))
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
    narrowed = dict(parameters, properties=props)
    if "required" in narrowed:
        narrowed["required"] = [r for r in narrowed["required"] if r in props]
    return narrowed


def build_support_agent(
    *,
    model: Model | str | None = None,
    store: Store | str | None = None,
    policy: Policy | None = None,
    route: bool | SupportRouter | None = None,
    budget: Budget | None = None,
    base: HelpBase | None = None,
) -> Agent[SupportDeps, str]:
    """The support agent; each run takes its `SupportDeps` (``deps=``: shop, verified).

    `model` defaults to the embedded local model. `route` gives the agent a
    `SupportRouter` as its step hook (True: the default one; or one of your own); by
    default only the embedded model (or any ``local:`` model) is routed. `policy`
    defaults to the shipped `policy.yaml`. `budget` defaults to `DEFAULT_BUDGET`: six
    steps (verify, act, reply and room for one retry) and three minutes of wall time
    per customer message. `base` is the help articles' knowledge base it searches
    (default: the shipped articles, in memory).
    """
    base = base or help_base()
    if model is None or isinstance(model, str):
        from pilothouse import resolve_model

        resolved: Model = resolve_model(model)
    else:
        resolved = model
    if route is None:
        route = resolved.name.startswith("local:")
    router = (
        route if isinstance(route, SupportRouter) else SupportRouter(base=base) if route else None
    )
    agent: Agent[SupportDeps, str] = Agent(
        model=resolved,
        instructions=INSTRUCTIONS,
        tools=[*TOOLS, help_tool(base)],
        name="support",
        budget=budget or DEFAULT_BUDGET,
        store=store,
        policy=policy if policy is not None else support_policy(),
        deps_type=SupportDeps,
        prepare_step=router if router is not None else verified_note,
        session_text=session_reply(base),
    )
    agent.output_validator(check_help_reply)
    return agent


def verified_note(ctx: StepContext[SupportDeps]) -> StepOptions | None:
    """For a model that chooses its own steps: say in the instructions who is verified.

    The conversation's messages (its session) hold what was said, not the desk's state;
    the policy and tools read the verification from the deps, and this step hook tells
    the model, on the record (the step's `model_request` carries the instructions).
    """
    customer = ctx.deps.verified
    if customer is None:
        return None
    row = ctx.deps.shop.customer(customer) or {}
    name = f"{row.get('first_name', '')} {row.get('last_name', '')}".strip()
    return StepOptions(
        instructions=f"{INSTRUCTIONS}\nThe customer is verified: customer {customer}, {name}."
    )
