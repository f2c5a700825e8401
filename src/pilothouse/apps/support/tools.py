"""The support agent's tools, bound to one `Shop`, and the policy predicates over it.

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

import re
from typing import Annotated, Any

from pydantic import Field

from pilothouse.exceptions import ToolError
from pilothouse.messages import ToolCall
from pilothouse.policy.engine import Policy, Predicate, RunContext
from pilothouse.tools.tool import Tool, ToolContext, tool

from .shop import Shop, ShopError

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
VERIFIED = re.compile(r"Verified: customer (C[0-9]{3})\b")


def make_tools(shop: Shop) -> list[Tool]:
    """The ten support tools over `shop` (a fresh set of closures per shop)."""

    def reconcile(context: ToolContext, arguments: dict[str, Any]) -> Any:
        return shop.action_done(context.idempotency_key)

    def shop_call(fn: Any, *args: Any) -> str:
        try:
            return str(fn(*args))
        except ShopError as exc:
            raise ToolError(f"Not done: {exc}") from None

    @tool
    def find_customer(
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
        email: Annotated[str, Field(pattern=EMAIL)], zip: Annotated[str, Field(pattern=ZIP)]
    ) -> str:
        """Verify the customer: the email and the ZIP code of their account must match.

        Args:
            email: the email address the customer gave
            zip: the ZIP code the customer gave (5 digits)
        """
        c = shop.customer_by_email(email)
        if c is None or c["zip"] != zip.strip():
            raise ToolError(
                "Not done: The email and ZIP code do not match an account. "
                "Ask the customer to check them."
            )
        orders = ", ".join(f"{o['id']} ({o['status']})" for o in shop.orders_of(c["id"]))
        return (
            f"Verified: customer {c['id']}, {c['first_name']} {c['last_name']}. "
            f"Orders: {orders or 'none'}."
        )

    @tool
    def order_status(order_id: OrderId) -> str:
        """Look up the status and items of one of the customer's orders.

        Args:
            order_id: the order number, a letter A and four digits (for example A1234)
        """
        o = shop.order(order_id)
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
        return (
            f"Order {o['id']} is {o['status']}: it {when}. Items: {items}. Total ${o['paid']:.2f}."
        )

    @tool(effect="irreversible", on_doubt="reconcile", reconcile=reconcile)
    def cancel_order(order_id: OrderId, context: ToolContext) -> str:
        """Cancel a pending order and refund it in full.

        Args:
            order_id: the order number (A and four digits)
        """
        return shop_call(shop.cancel, order_id, context.idempotency_key)

    @tool(effect="side_effect", on_doubt="reconcile", reconcile=reconcile)
    def return_items(
        order_id: OrderId,
        item_ids: Annotated[list[ItemId], Field(min_length=1, max_length=5)],
        context: ToolContext,
    ) -> str:
        """Start a return of delivered items; they are refunded when they arrive.

        Args:
            order_id: the order number (A and four digits)
            item_ids: the item numbers to return (the order number, a dash, a digit: A1234-1)
        """
        return shop_call(shop.return_items, order_id, item_ids, context.idempotency_key)

    @tool(effect="side_effect", on_doubt="reconcile", reconcile=reconcile)
    def exchange_items(
        order_id: OrderId,
        item_id: ItemId,
        new_variant: str,
        context: ToolContext,
    ) -> str:
        """Exchange a delivered item for another size or color of the same product.

        Args:
            order_id: the order number (A and four digits)
            item_id: the item number (A1234-1)
            new_variant: the size or color the customer wants instead
        """
        return shop_call(shop.exchange, order_id, item_id, new_variant, context.idempotency_key)

    @tool(effect="irreversible", on_doubt="reconcile", reconcile=reconcile)
    def refund(
        order_id: OrderId,
        amount: Annotated[float, Field(gt=0, le=10000)],
        context: ToolContext,
        payment_method_id: Annotated[str, Field(pattern=r"^PM[0-9]{3}$")] | None = None,
    ) -> str:
        """Refund money for an order to the payment method it was paid with.

        Args:
            order_id: the order number (A and four digits)
            amount: the amount in dollars
            payment_method_id: leave out to use the order's own payment method
        """
        return shop_call(shop.refund, order_id, amount, payment_method_id, context.idempotency_key)

    @tool(effect="side_effect", on_doubt="reconcile", reconcile=reconcile)
    def change_address(
        order_id: OrderId,
        address: str,
        context: ToolContext,
    ) -> str:
        """Change the delivery address of a pending order.

        Args:
            order_id: the order number (A and four digits)
            address: the new address: street, city and ZIP code
        """
        return shop_call(shop.change_address, order_id, address, context.idempotency_key)

    @tool
    def search_help(query: str) -> str:
        """Search the shop's help articles (returns, refunds, shipping, warranty, ...).

        Args:
            query: a few words describing the customer's question
        """
        hits = shop.search(query[:200], limit=1)
        if not hits:
            raise ToolError(
                "Not done: No help article matches; offer to transfer the customer to a human."
            )
        a = hits[0]
        return f"{a.snippet.strip('. ')} (see the help article '{a.title}' [{a.id}])."

    @tool(effect="side_effect", on_doubt="retry")
    def transfer_to_human(summary: str) -> str:
        """Hand the conversation to a human agent, with a short summary of the case.

        Args:
            summary: what the customer wants and what has been done so far
        """
        if not summary.strip():
            raise ToolError("Not done: Write a one-line summary of the case for the human agent.")
        return "Transferred: a human agent will take over this conversation shortly."

    return [
        find_customer,
        verify_identity,
        order_status,
        cancel_order,
        return_items,
        exchange_items,
        refund,
        change_address,
        search_help,
        transfer_to_human,
    ]


# --------------------------------------------------------------------------- policy


def verified_customer(ctx: RunContext) -> str | None:
    """The customer this conversation verified: in this run, else from the principal.

    The desk puts a customer verified in an earlier turn into the run's principal
    (``user`` with attribute ``verified``), because a run's policy context only sees
    its own calls.
    """
    for r in reversed(ctx.history):
        if r.name == "verify_identity" and r.ok and r.result:
            m = VERIFIED.search(r.result)
            if m:
                return m.group(1)
    if ctx.principal.attributes.get("verified") and ctx.principal.user:
        return str(ctx.principal.user)
    return None


def make_predicates(shop: Shop) -> dict[str, Predicate]:
    """The predicates `policy.yaml` names, reading the live shop database."""

    def order_of(call: ToolCall) -> dict[str, Any] | None:
        oid = call.arguments.get("order_id")
        return shop.order(oid) if isinstance(oid, str) else None

    def verified(call: ToolCall, ctx: RunContext) -> bool:
        """A customer's identity has been verified in this conversation."""
        return verified_customer(ctx) is not None

    def own_order(call: ToolCall, ctx: RunContext) -> bool:
        """The order exists and belongs to the verified customer."""
        o = order_of(call)
        return o is not None and o["customer_id"] == verified_customer(ctx)

    def order_pending(call: ToolCall, ctx: RunContext) -> bool:
        o = order_of(call)
        return o is not None and o["status"] == "pending"

    def order_delivered(call: ToolCall, ctx: RunContext) -> bool:
        o = order_of(call)
        return o is not None and o["status"] == "delivered"

    def refund_to_order_payment(call: ToolCall, ctx: RunContext) -> bool:
        """No payment method named (the order's own is used), or one the order was paid with."""
        method = call.arguments.get("payment_method_id")
        o = order_of(call)
        if o is None:
            return False
        return method is None or method in {p["payment_method_id"] for p in o["payments"]}

    return {
        f.__name__: f
        for f in (verified, own_order, order_pending, order_delivered, refund_to_order_payment)
    }


def support_policy(shop: Shop) -> Policy:
    """The shipped `policy.yaml`, with its predicates bound to `shop`."""
    from importlib import resources

    text = (resources.files("pilothouse.apps.support") / "policy.yaml").read_text("utf-8")
    return Policy.from_yaml(text, predicates=make_predicates(shop), source="support/policy.yaml")
