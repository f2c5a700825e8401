"""The support tools over the real shop database: results, refusals, idempotency, and the
verified customer they record in the run's deps."""

from __future__ import annotations

import json
from typing import Any

from pilothouse.messages import ToolCall, ToolResult
from pilothouse.tools.tool import ToolContext
from pilothouse_desk.deps import SupportDeps
from pilothouse_desk.help import help_base, help_tool
from pilothouse_desk.shop import Shop
from pilothouse_desk.tools import TOOLS

TOOL = {t.name: t for t in (*TOOLS, help_tool(help_base()))}


async def call(name: str, deps: SupportDeps, step: int = 1, **arguments: Any) -> ToolResult:
    """One call of a support tool, as step `step` of run "run", with the run's `deps`."""
    t = TOOL[name]
    return await t.execute(ToolCall(f"c{step}", name, arguments), ToolContext("run", step, 0, deps))


def refunds(shop: Shop, order_id: str) -> int:
    sql = "SELECT COUNT(*) FROM payments WHERE order_id = ? AND kind = 'refund'"
    return int(shop.db.execute(sql, (order_id,)).fetchone()[0])


async def test_effects_are_declared(shop: Shop) -> None:
    effects = {name: t.effect for name, t in TOOL.items()}
    assert effects["verify_identity"] == effects["order_status"] == "read_only"
    assert effects["search_help"] == effects["find_customer"] == "read_only"
    assert effects["cancel_order"] == effects["refund"] == "irreversible"
    for name in ("return_items", "exchange_items", "change_address", "transfer_to_human"):
        assert effects[name] == "side_effect"


async def test_find_and_verify(shop: Shop) -> None:
    deps = SupportDeps(shop)
    found = await call("find_customer", deps, email="ben.adler@example.com")
    assert not found.is_error and "C002" in found.content
    found = await call("find_customer", deps, first_name="Ben", last_name="Adler", zip="97301")
    assert not found.is_error and "C002" in found.content
    assert deps.verified is None  # finding a customer verifies nobody
    ok = await call("verify_identity", deps, email="ben.adler@example.com", zip="97301")
    assert not ok.is_error and json.loads(ok.content)["customer_id"] == "C002"
    assert json.loads(ok.content)["message"].startswith("Verified: customer C002")
    assert "A1091 (processed)" in ok.content
    assert deps.verified == "C002"  # typed state in the run's deps, not read back from text
    bad = await call("verify_identity", deps, email="dev.kowalski@example.com", zip="12345")
    assert bad.is_error and "do not match" in bad.content
    assert deps.verified == "C002"  # a failed attempt verifies nobody else
    shape = await call("verify_identity", deps, email="ben.adler@example.com", zip="1234")
    assert shape.is_error and "zip" in shape.content  # the schema's pattern


async def test_order_status(shop: Shop) -> None:
    deps = SupportDeps(shop)
    r = await call("order_status", deps, order_id="A1091")
    assert not r.is_error and "processed" in r.content and "A1091-2 Smart watch" in r.content
    missing = await call("order_status", deps, order_id="A9999")
    assert missing.is_error and "no order A9999" in missing.content


async def test_cancel_is_idempotent_per_key(shop: Shop) -> None:
    deps = SupportDeps(shop)
    first = await call("cancel_order", deps, order_id="A1007")
    again = await call("cancel_order", deps, order_id="A1007")  # same run:step:index key
    assert not first.is_error and first.content == again.content
    assert refunds(shop, "A1007") == 1
    other_key = await call("cancel_order", deps, step=2, order_id="A1007")
    assert other_key.is_error and "cancelled" in other_key.content
    order = shop.order("A1007")
    assert order is not None and order["status"] == "cancelled"
    assert order["refunded"] == order["paid"]


async def test_cancel_refuses_a_processed_order(shop: Shop) -> None:
    r = await call("cancel_order", SupportDeps(shop), order_id="A1101")
    assert r.is_error and "only pending orders" in r.content


async def test_return_exchange_refund_address(shop: Shop) -> None:
    deps = SupportDeps(shop)
    r = await call("return_items", deps, order_id="A1052", item_ids=["A1052-1"])
    assert not r.is_error and "Return started" in r.content
    twice = await call("return_items", deps, step=2, order_id="A1052", item_ids=["A1052-1"])
    assert twice.is_error and "already returned" in twice.content
    late = await call("return_items", deps, step=3, order_id="A1003", item_ids=["A1003-1"])
    assert late.is_error and "more than 30 days" in late.content

    r = await call(
        "exchange_items", deps, step=4, order_id="A1012", item_id="A1012-1", new_variant="grey"
    )
    assert not r.is_error and "green for grey" in r.content
    bad = await call(
        "exchange_items", deps, step=5, order_id="A1139", item_id="A1139-1", new_variant="gold"
    )
    assert bad.is_error and "purple, teal" in bad.content

    r = await call("refund", deps, step=6, order_id="A1010", amount=49.5)
    assert not r.is_error and "Refunded $49.50" in r.content
    too_much = await call("refund", deps, step=7, order_id="A1010", amount=5000)
    assert too_much.is_error and "between" in too_much.content

    r = await call(
        "change_address", deps, step=8, order_id="A1080", address="12 River Road, Salem 97301"
    )
    assert not r.is_error
    reused = await call(
        "change_address", deps, step=1, order_id="A1080", address="1 Other Road, X 11111"
    )
    assert reused.is_error and "already used by return_items" in reused.content
    order = shop.order("A1080")
    assert order is not None and order["address"] == "12 River Road, Salem 97301"


async def test_search_help_is_the_knowledge_base_search_with_chunk_ids(shop: Shop) -> None:
    deps = SupportDeps(shop)
    r = await call("search_help", deps, query="how long do refunds take")
    assert not r.is_error
    heads = [line for line in r.content.splitlines() if line.startswith("[chunk c")]
    assert 1 <= len(heads) <= 3  # each passage with the chunk id to cite
    assert any("refunds.md" in h and "(Refund timing)" in h for h in heads)
    none = await call("search_help", deps, query="the and of")
    assert not none.is_error and none.content == "No passages found."


async def test_in_doubt_calls_reconcile_from_the_shop(shop: Shop) -> None:
    cancel = TOOL["cancel_order"]
    ctx = ToolContext("run", 1, 0, SupportDeps(shop))
    assert cancel.on_doubt == "reconcile"
    assert cancel.reconcile is not None
    assert cancel.reconcile(ctx, {"order_id": "A1007"}) is None  # not done
    await cancel.execute(ToolCall("c", "cancel_order", {"order_id": "A1007"}), ctx)
    done = cancel.reconcile(ctx, {"order_id": "A1007"})
    assert isinstance(done, str) and "cancelled" in done
