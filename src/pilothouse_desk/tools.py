"""The support agent's shop tools and the policy predicates, over the run's `SupportDeps`.

The tenth tool, ``search_help``, is the help articles' knowledge-base search
(`help.help_tool`), the same one the team's help specialist uses.

The tools are plain module-level functions: each reads the shop (and the
conversation's verified customer) from ``ctx.deps``, a `SupportDeps` the run is
given (`Agent.run(..., deps=...)`), so one set of tools serves every shop and
every conversation. `verify_identity` records the verified customer in
``ctx.deps.verified``; the policy's predicates read it there.

Each tool returns a sentence the customer could read (a small model repeats
results better than it summarises JSON), and refuses with a `ToolError` that
starts with "Not done:" and says what to do next. Order ids, item ids, emails
and ZIP codes carry their format as a ``pattern``: with a grammar-constrained
model the pattern is part of the grammar, so the model can only write an id of the
right shape.

Effects: lookups and search are read-only; returns, exchanges, address changes and
the hand-over are side effects; cancelling and refunding move money and are
irreversible. Every tool that writes passes its `ToolContext.idempotency_key` to
the shop (which records it with the change), and reconciles an in-doubt call from
that record, so a resumed run never acts twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field

from pilothouse import ConfigurationError, Tool, ToolCall, ToolContext, ToolError, tool
from pilothouse.policy import Lookup, Policy, Predicate, RunContext

from .deps import SupportDeps, identified
from .shop import ShopError

# Patterns become grammar rules for a grammar-constrained model: bounded repetitions
# ({1,40}, max_length) expand into nested rules that make sampling much slower, so
# lengths are checked by the tools (and the shop) instead.
ORDER_ID = r"^A[0-9]{4}$"
ITEM_ID = r"^A[0-9]{4}-[0-9]$"
EMAIL = r"^[a-z0-9.]+@[a-z0-9.]+$"
ZIP = r"^[0-9]{5}$"

OrderId = Annotated[str, Field(pattern=ORDER_ID)]
ItemId = Annotated[str, Field(pattern=ITEM_ID)]

CONSEQUENTIAL = ("cancel_order", "return_items", "exchange_items", "refund", "change_address")
ORDER_TOOLS = ("order_status", *CONSEQUENTIAL)


def _reconcile(ctx: ToolContext[Any], arguments: dict[str, Any]) -> Any:
    """An in-doubt change: the shop's record of the call's idempotency key, else None.

    (`ToolContext[Any]`: `tool(reconcile=...)` is typed for the context without deps.)
    """
    deps: SupportDeps = ctx.deps
    return deps.shop.action_done(ctx.idempotency_key)


def _shop_call(fn: Callable[..., Any], *args: Any) -> str:
    try:
        return str(fn(*args))
    except ShopError as exc:
        raise ToolError(f"Not done: {exc}") from None


@tool
def find_customer(
    ctx: ToolContext[SupportDeps],
    email: Annotated[str, Field(pattern=EMAIL)] | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    zip: Annotated[str, Field(pattern=ZIP)] | None = None,
) -> str:
    """Find a customer's id by email, or by first name, last name and ZIP code.

    Args:
        email: the customer's email address
        first_name: the customer's first name (with last_name and zip)
        last_name: the customer's last name
        zip: the ZIP code of the customer's address
    """
    shop = ctx.deps.shop
    if email:
        found = shop.customer_by_email(email)
        matches = [found] if found else []
    elif first_name and last_name and zip:
        matches = shop.customers_by_name_zip(first_name, last_name, zip)
    else:
        raise ToolError("Not done: Give an email, or a first name, last name and ZIP code.")
    if len(matches) != 1:
        raise ToolError(
            "Not done: No single customer matches; ask the customer for their account email."
        )
    c = matches[0]
    return (
        f"Found customer {c['id']} ({c['first_name']} {c['last_name'][0]}.). "
        "Verify their identity with verify_identity before discussing orders."
    )


@tool
def verify_identity(
    ctx: ToolContext[SupportDeps],
    email: Annotated[str, Field(pattern=EMAIL)],
    zip: Annotated[str, Field(pattern=ZIP)],
) -> dict[str, str]:
    """Verify the customer: the email and the ZIP code of their account must match.

    Args:
        email: the email address the customer gave
        zip: the ZIP code the customer gave (5 digits)
    """
    shop = ctx.deps.shop
    c = identified(shop, email, zip)
    shop.record_verification(email, c is not None)  # the attempt limit reads this log
    if c is None:
        raise ToolError(
            "Not done: The email and ZIP code do not match an account. "
            "Ask the customer to check them."
        )
    ctx.deps.verified = str(c["id"])
    orders = ", ".join(f"{o['id']} ({o['status']})" for o in shop.orders_of(c["id"]))
    # The result is structured: `customer_id` is the field the policy's `claims:` reads
    # (the verified claim), `message` the sentence a person or a model reads.
    return {
        "message": (
            f"Verified: customer {c['id']}, {c['first_name']} {c['last_name']}. "
            f"Orders: {orders or 'none'}."
        ),
        "customer_id": str(c["id"]),
    }


@tool
def order_status(ctx: ToolContext[SupportDeps], order_id: OrderId) -> str:
    """Look up the status and items of one of the customer's orders.

    Args:
        order_id: the order number, a letter A and four digits (for example A1234)
    """
    o = ctx.deps.shop.order(order_id)
    if o is None:
        raise ToolError(
            f"Not done: There is no order {order_id}. Ask the customer to check the number."
        )
    items = "; ".join(
        f"{i['id']} {i['product']} ({i['variant']}, {i['status']})" for i in o["items"]
    )
    when = {
        "pending": f"was placed on {o['placed']} and has not shipped yet",
        "processed": f"was placed on {o['placed']} and is on its way",
        "delivered": f"was delivered on {o['delivered']}",
        "cancelled": "was cancelled",
    }[o["status"]]
    return f"Order {o['id']} is {o['status']}: it {when}. Items: {items}. Total ${o['paid']:.2f}."


@tool(effect="irreversible", on_doubt="reconcile", reconcile=_reconcile)
def cancel_order(ctx: ToolContext[SupportDeps], order_id: OrderId) -> str:
    """Cancel a pending order and refund it in full.

    Args:
        order_id: the order number (A and four digits)
    """
    return _shop_call(ctx.deps.shop.cancel, order_id, ctx.idempotency_key)


@tool(effect="side_effect", on_doubt="reconcile", reconcile=_reconcile)
def return_items(
    ctx: ToolContext[SupportDeps],
    order_id: OrderId,
    item_ids: Annotated[list[ItemId], Field(min_length=1, max_length=5)],
) -> str:
    """Start a return of delivered items; they are refunded when they arrive.

    Args:
        order_id: the order number (A and four digits)
        item_ids: the item numbers to return (the order number, a dash, a digit: A1234-1)
    """
    return _shop_call(ctx.deps.shop.return_items, order_id, item_ids, ctx.idempotency_key)


@tool(effect="side_effect", on_doubt="reconcile", reconcile=_reconcile)
def exchange_items(
    ctx: ToolContext[SupportDeps], order_id: OrderId, item_id: ItemId, new_variant: str
) -> str:
    """Exchange a delivered item for another size or color of the same product.

    Args:
        order_id: the order number (A and four digits)
        item_id: the item number (A1234-1)
        new_variant: the size or color the customer wants instead
    """
    shop = ctx.deps.shop
    return _shop_call(shop.exchange, order_id, item_id, new_variant, ctx.idempotency_key)


@tool(effect="irreversible", on_doubt="reconcile", reconcile=_reconcile)
def refund(
    ctx: ToolContext[SupportDeps],
    order_id: OrderId,
    amount: Annotated[float, Field(gt=0, le=10000)],
    payment_method_id: Annotated[str, Field(pattern=r"^PM[0-9]{3}$")] | None = None,
) -> str:
    """Refund money for an order to the payment method it was paid with.

    Args:
        order_id: the order number (A and four digits)
        amount: the amount in dollars
        payment_method_id: leave out to use the order's own payment method
    """
    shop = ctx.deps.shop
    return _shop_call(shop.refund, order_id, amount, payment_method_id, ctx.idempotency_key)


@tool(effect="side_effect", on_doubt="reconcile", reconcile=_reconcile)
def change_address(ctx: ToolContext[SupportDeps], order_id: OrderId, address: str) -> str:
    """Change the delivery address of a pending order.

    Args:
        order_id: the order number (A and four digits)
        address: the new address: street, city and ZIP code
    """
    return _shop_call(ctx.deps.shop.change_address, order_id, address, ctx.idempotency_key)


@tool(effect="side_effect", on_doubt="retry")
def transfer_to_human(summary: str) -> str:
    """Hand the conversation to a human agent, with a short summary of the case.

    Args:
        summary: what the customer wants and what has been done so far
    """
    if not summary.strip():
        raise ToolError("Not done: Write a one-line summary of the case for the human agent.")
    return "Transferred: a human agent will take over this conversation shortly."


TOOLS: tuple[Tool, ...] = (
    find_customer,
    verify_identity,
    order_status,
    cancel_order,
    return_items,
    exchange_items,
    refund,
    change_address,
    transfer_to_human,
)
"""The nine shop tools (the agent adds the help search, `help.help_tool`)."""


# --------------------------------------------------------------------------- policy


def support_deps(ctx: RunContext) -> SupportDeps:
    """The run's `SupportDeps`, as the predicates read them (a clear error without them)."""
    deps = ctx.deps
    if not isinstance(deps, SupportDeps):
        raise ConfigurationError(
            "the support policy reads the run's SupportDeps: run the agent with "
            f"deps=SupportDeps(shop), not {type(deps).__name__}"
        )
    return deps


def _order(call: ToolCall, ctx: RunContext) -> dict[str, Any] | None:
    oid = call.arguments.get("order_id")
    return support_deps(ctx).shop.order(oid) if isinstance(oid, str) else None


def verified(call: ToolCall, ctx: RunContext) -> bool:
    """A customer's identity has been verified in this conversation."""
    return support_deps(ctx).verified is not None


def own_order(call: ToolCall, ctx: RunContext) -> bool:
    """The order exists and belongs to the verified customer."""
    o = _order(call, ctx)
    return o is not None and o["customer_id"] == support_deps(ctx).verified


def order_pending(call: ToolCall, ctx: RunContext) -> bool:
    o = _order(call, ctx)
    return o is not None and o["status"] == "pending"


def order_delivered(call: ToolCall, ctx: RunContext) -> bool:
    o = _order(call, ctx)
    return o is not None and o["status"] == "delivered"


def refund_to_order_payment(call: ToolCall, ctx: RunContext) -> bool:
    """No payment method named (the order's own is used), or one the order was paid with."""
    method = call.arguments.get("payment_method_id")
    o = _order(call, ctx)
    if o is None:
        return False
    return method is None or method in {p["payment_method_id"] for p in o["payments"]}


def order(context: RunContext, order_id: str) -> dict[str, Any] | None:
    """Lookup `order`: the order as the shop has it now (status, paid, refunded, payments),
    whatever earlier conversations did to it."""
    return support_deps(context).shop.order(order_id)


def verification_failures(context: RunContext, email: str) -> int:
    """Lookup `verification_failures`: failed identity checks of `email` in the last hour,
    in every conversation (the shop's verification log)."""
    return support_deps(context).shop.failed_verifications(email)


LOOKUPS: dict[str, Lookup] = {f.__name__: f for f in (order, verification_failures)}
"""The lookups `policy.yaml` names: the shop's state across conversations."""


PREDICATES: dict[str, Predicate] = {
    f.__name__: f
    for f in (verified, own_order, order_pending, order_delivered, refund_to_order_payment)
}
"""The predicates `policy.yaml` names; they read the shop and the verified customer from
the run's deps."""


def support_policy() -> Policy:
    """The shipped `policy.yaml` with its predicates (which read the run's `SupportDeps`)."""
    from importlib import resources

    text = (resources.files("pilothouse_desk") / "policy.yaml").read_text("utf-8")
    return Policy.from_yaml(
        text, predicates=PREDICATES, lookups=LOOKUPS, source="support/policy.yaml"
    )
