"""The support tools over the real shop database: results, refusals, idempotency."""

from __future__ import annotations

from typing import Any

from pilothouse.apps.support.shop import Shop
from pilothouse.apps.support.tools import make_tools
from pilothouse.messages import ToolCall, ToolResult
from pilothouse.tools.tool import Tool, ToolContext


def tools(shop: Shop) -> dict[str, Tool]:
    return {t.name: t for t in make_tools(shop)}


async def call(t: Tool, step: int = 1, **arguments: Any) -> ToolResult:
    return await t.execute(ToolCall(f"c{step}", t.name, arguments), ToolContext("run", step, 0))


def refunds(shop: Shop, order_id: str) -> int:
    sql = "SELECT COUNT(*) FROM payments WHERE order_id = ? AND kind = 'refund'"
    return int(shop.db.execute(sql, (order_id,)).fetchone()[0])


async def test_effects_are_declared(shop: Shop) -> None:
    effects = {name: t.effect for name, t in tools(shop).items()}
    assert effects["verify_identity"] == effects["order_status"] == "read_only"
    assert effects["search_help"] == effects["find_customer"] == "read_only"
    assert effects["cancel_order"] == effects["refund"] == "irreversible"
    for name in ("return_items", "exchange_items", "change_address", "transfer_to_human"):
        assert effects[name] == "side_effect"


async def test_find_and_verify(shop: Shop) -> None:
    t = tools(shop)
    found = await call(t["find_customer"], email="ben.adler@example.com")
    assert not found.is_error and "C002" in found.content
    found = await call(t["find_customer"], first_name="Ben", last_name="Adler", zip="97301")
    assert not found.is_error and "C002" in found.content
    ok = await call(t["verify_identity"], email="ben.adler@example.com", zip="97301")
    assert not ok.is_error and ok.content.startswith("Verified: customer C002")
    assert "A1091 (processed)" in ok.content
    bad = await call(t["verify_identity"], email="ben.adler@example.com", zip="12345")
    assert bad.is_error and "do not match" in bad.content
    shape = await call(t["verify_identity"], email="ben.adler@example.com", zip="1234")
    assert shape.is_error and "zip" in shape.content  # the schema's pattern


async def test_order_status(shop: Shop) -> None:
    t = tools(shop)
    r = await call(t["order_status"], order_id="A1091")
    assert not r.is_error and "processed" in r.content and "A1091-2 Smart watch" in r.content
    missing = await call(t["order_status"], order_id="A9999")
    assert missing.is_error and "no order A9999" in missing.content


async def test_cancel_is_idempotent_per_key(shop: Shop) -> None:
    t = tools(shop)
    first = await call(t["cancel_order"], order_id="A1007")
    again = await call(t["cancel_order"], order_id="A1007")  # same run:step:index key
    assert not first.is_error and first.content == again.content
    assert refunds(shop, "A1007") == 1
    other_key = await call(t["cancel_order"], step=2, order_id="A1007")
    assert other_key.is_error and "cancelled" in other_key.content
    order = shop.order("A1007")
    assert order is not None and order["status"] == "cancelled"
    assert order["refunded"] == order["paid"]


async def test_cancel_refuses_a_processed_order(shop: Shop) -> None:
    r = await call(tools(shop)["cancel_order"], order_id="A1101")
    assert r.is_error and "only pending orders" in r.content


async def test_return_exchange_refund_address(shop: Shop) -> None:
    t = tools(shop)
    r = await call(t["return_items"], order_id="A1052", item_ids=["A1052-1"])
    assert not r.is_error and "Return started" in r.content
    twice = await call(t["return_items"], step=2, order_id="A1052", item_ids=["A1052-1"])
    assert twice.is_error and "already returned" in twice.content
    late = await call(t["return_items"], step=3, order_id="A1003", item_ids=["A1003-1"])
    assert late.is_error and "more than 30 days" in late.content

    r = await call(
        t["exchange_items"], step=4, order_id="A1012", item_id="A1012-1", new_variant="grey"
    )
    assert not r.is_error and "green for grey" in r.content
    bad = await call(
        t["exchange_items"], step=5, order_id="A1139", item_id="A1139-1", new_variant="gold"
    )
    assert bad.is_error and "purple, teal" in bad.content

    r = await call(t["refund"], step=6, order_id="A1010", amount=49.5)
    assert not r.is_error and "Refunded $49.50" in r.content
    too_much = await call(t["refund"], step=7, order_id="A1010", amount=5000)
    assert too_much.is_error and "between" in too_much.content

    r = await call(
        t["change_address"], step=8, order_id="A1080", address="12 River Road, Salem 97301"
    )
    assert not r.is_error
    reused = await call(
        t["change_address"], step=1, order_id="A1080", address="1 Other Road, X 11111"
    )
    assert reused.is_error and "already used by return_items" in reused.content
    order = shop.order("A1080")
    assert order is not None and order["address"] == "12 River Road, Salem 97301"


async def test_search_help_cites_the_article(shop: Shop) -> None:
    r = await call(tools(shop)["search_help"], query="how long do refunds take")
    assert not r.is_error and "[refunds]" in r.content and "Refund timing" in r.content
    none = await call(tools(shop)["search_help"], query="the and of")
    assert none.is_error and "human" in none.content


async def test_in_doubt_calls_reconcile_from_the_shop(shop: Shop) -> None:
    t = tools(shop)
    context = ToolContext("run", 1, 0)
    assert t["cancel_order"].on_doubt == "reconcile"
    assert t["cancel_order"].reconcile is not None
    assert t["cancel_order"].reconcile(context, {"order_id": "A1007"}) is None  # not done
    await t["cancel_order"].execute(ToolCall("c", "cancel_order", {"order_id": "A1007"}), context)
    done = t["cancel_order"].reconcile(context, {"order_id": "A1007"})
    assert isinstance(done, str) and "cancelled" in done
