"""`SupportDeps`: what one run of the support agent works with (the run's typed deps).

The shop is the data the tools read and change; `verified` is the conversation's
typed state: the id of the customer whose identity the conversation verified. The
tool `verify_identity` sets it (``ctx.deps.verified``); the policy's predicates and
the router read it there. Nothing reads verification back from tool-result text.

Deps are live objects, never journaled, so whoever runs the agent keeps the state
that outlives a run. The desk stores the verified customer on the conversation
(``desk_conversations.customer_id``): each turn's deps start from it, and after the
run the desk writes ``deps.verified`` back. A resumed run gets its deps again from
the desk; its recorded calls are not run again, so `verified_in` reads from the
run's journal a verification that ran before the stop (the verify_identity calls
the journal shows allowed and successful, checked again against the shop from
their arguments).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pilothouse.events import Event, ToolCalled, ToolReturned

from .shop import Shop


@dataclass(slots=True)
class SupportDeps:
    """The shop, and the conversation's typed state, for one run (see the module docs)."""

    shop: Shop
    verified: str | None = None  # the verified customer's id (C001, ...), once verified


def identified(shop: Shop, email: str, zip: str) -> dict[str, Any] | None:
    """The customer whose account has this email and ZIP code (verification's check)."""
    customer = shop.customer_by_email(email)
    if customer is None or customer["zip"] != zip.strip():
        return None
    return customer


def verified_in(events: Iterable[Event], shop: Shop) -> str | None:
    """The customer the last successful ``verify_identity`` call of a journal verified.

    For a resumed run: its recorded calls are reused, not run again, so they do not
    set the deps; the call's arguments (email, ZIP) are checked again against the
    shop, never the result's text.
    """
    called: dict[tuple[int, int], ToolCalled] = {}
    found: str | None = None
    for e in events:
        if isinstance(e, ToolCalled):
            called[(e.step, e.index)] = e
        elif isinstance(e, ToolReturned) and e.result.name == "verify_identity":
            call = called.get((e.step, e.index))
            if call is None or e.result.is_error:
                continue
            if call.decision is not None and call.decision.effect == "deny":
                continue
            customer = _identified(shop, call.call.arguments)
            if customer is not None:
                found = str(customer["id"])
    return found


def _identified(shop: Shop, arguments: Mapping[str, Any]) -> dict[str, Any] | None:
    email, zip_code = arguments.get("email"), arguments.get("zip")
    if not isinstance(email, str) or not isinstance(zip_code, str):
        return None
    return identified(shop, email, zip_code)
