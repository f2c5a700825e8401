"""The desk's abuse cases of issue 14, against a real `pilothouse serve` (desk_site.py):
ZIP guessing across conversations is locked out before the right ZIP, refunds split
across conversations never pass the approval threshold without a person, and an order
is never refunded twice through a refund and a return (in either order)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from desk_site import REFUND_RE, Site, make_desk, serving, turn_model

from pilothouse.messages import ToolCall
from pilothouse.models.scripted import ScriptedModel
from pilothouse_desk.shop import RETURN_DAYS, TODAY


def refunds(site: Site, order: str) -> list[float]:
    db = sqlite3.connect(site.shop_path)
    try:
        rows = db.execute(
            "SELECT amount FROM payments WHERE order_id=? AND kind='refund' ORDER BY id", (order,)
        ).fetchall()
    finally:
        db.close()
    return [float(r[0]) for r in rows]


def zips(site: Site, other_than: str) -> list[str]:
    db = sqlite3.connect(site.shop_path)
    try:
        rows = db.execute("SELECT DISTINCT zip FROM customers ORDER BY zip").fetchall()
    finally:
        db.close()
    return [r[0] for r in rows if r[0] != other_than]


def test_zip_guessing_is_locked_out_before_the_right_zip(site: Site) -> None:
    order, email, zip_code, _paid = site.big_order(250.0)
    for wrong in zips(site, zip_code)[:3]:  # three conversations, one wrong guess each
        conv, token = site.open(customer_email=email)
        r = site.say(conv, token, f"refund 10 for order {order}, I am {email} zip {wrong}")
        assert r.status_code == 200, r.text
    conv, token = site.open(customer_email=email)
    r = site.say(conv, token, f"refund 10 for order {order}, I am {email} zip {zip_code}")
    assert r.status_code == 200, r.text
    assert r.json()["conversation"]["status"] != "paused"
    assert refunds(site, order) == []  # the right ZIP came too late: nothing was refunded
    detail = site.client.get(f"/api/console/conversations/{conv}", headers=site.console())
    assert "verification-attempt-limit" in detail.text


def test_refunds_split_across_conversations_need_a_person(site: Site) -> None:
    order, email, zip_code, paid = site.big_order(250.0)
    conv, token = site.open(customer_email=email)
    r = site.say(conv, token, f"refund 150 for order {order}, I am {email} zip {zip_code}")
    assert r.json()["conversation"]["status"] != "paused"
    assert refunds(site, order) == [150.0]
    # the rest, in a new conversation: below $200 on its own, but the order was refunded
    conv2, token2 = site.open(customer_email=email)
    rest = round(paid - 150.0, 2)
    r = site.say(conv2, token2, f"refund {rest} for order {order}, I am {email} zip {zip_code}")
    assert r.json()["conversation"]["status"] == "paused"
    pending = site.client.get("/api/console/approvals", headers=site.console()).json()["approvals"]
    assert [(p["tool"], p["arguments"]["amount"]) for p in pending] == [("refund", rest)]
    assert refunds(site, order) == [150.0]  # nothing more without a person


# --------------------------------------------------------------------------- refund after return

RETURN_RE = re.compile(r"return (A\d{4}-\d) of order (A\d{4}), I am (\S+@\S+) zip (\d{5})")


def returns_model() -> ScriptedModel:
    """Verifies, then returns an item or refunds an amount (the last message says which)."""

    def reply(text: str, done: list[str], n: int) -> Any:
        wanted = RETURN_RE.search(text) or REFUND_RE.search(text)
        if wanted is None or len(done) > 1:
            return "Done."
        first, order, email, zip_code = wanted.groups()
        if not done:
            return ToolCall(f"v{n}", "verify_identity", {"email": email, "zip": zip_code})
        if wanted.re is RETURN_RE:
            return ToolCall(f"x{n}", "return_items", {"order_id": order, "item_ids": [first]})
        return ToolCall(f"r{n}", "refund", {"order_id": order, "amount": float(first)})

    return turn_model(reply)


@pytest.fixture
def returns_site(tmp_path: Path) -> Iterator[Site]:
    with serving(*make_desk(tmp_path, model=returns_model())) as served:
        yield served


def small_returnable_orders(site: Site) -> list[tuple[str, str, str, float, str]]:
    """Delivered one-item orders in the return window, paid at most $200 (no approval):
    (order, email, zip, paid, item)."""
    db = sqlite3.connect(site.shop_path)
    try:
        rows = db.execute(
            "SELECT o.id, c.email, c.zip, SUM(p.amount), MIN(i.id) FROM orders o "
            "JOIN customers c ON c.id = o.customer_id "
            "JOIN payments p ON p.order_id = o.id AND p.kind = 'payment' "
            "JOIN items i ON i.order_id = o.id "
            "WHERE o.status = 'delivered' AND o.delivered >= ? "
            "GROUP BY o.id HAVING COUNT(DISTINCT i.id) = 1 AND SUM(p.amount) <= 200 "
            "ORDER BY o.id",
            ((TODAY - timedelta(days=RETURN_DAYS)).isoformat(),),
        ).fetchall()
    finally:
        db.close()
    assert len(rows) >= 2, "the seeded shop has too few small returnable orders"
    return [(r[0], r[1], r[2], round(float(r[3]), 2), r[4]) for r in rows]


def item_status(site: Site, item: str) -> str:
    db = sqlite3.connect(site.shop_path)
    try:
        return str(db.execute("SELECT status FROM items WHERE id=?", (item,)).fetchone()[0])
    finally:
        db.close()


def test_a_fully_refunded_order_cannot_be_returned_for_a_second_refund(returns_site: Site) -> None:
    site = returns_site
    order, email, zip_code, paid, item = small_returnable_orders(site)[0]
    conv, token = site.open(customer_email=email)
    r = site.say(conv, token, f"refund {paid} for order {order}, I am {email} zip {zip_code}")
    assert r.status_code == 200, r.text
    assert refunds(site, order) == [paid]
    # a new conversation: return the item, to be refunded again when it arrives
    conv2, token2 = site.open(customer_email=email)
    r = site.say(conv2, token2, f"return {item} of order {order}, I am {email} zip {zip_code}")
    assert r.status_code == 200, r.text
    assert item_status(site, item) == "ordered"  # no return was started
    assert refunds(site, order) == [paid]
    detail = site.client.get(f"/api/console/conversations/{conv2}", headers=site.console())
    assert "would refund more than was paid" in detail.text


def test_a_returned_order_cannot_be_refunded_again(returns_site: Site) -> None:
    site = returns_site
    order, email, zip_code, paid, item = small_returnable_orders(site)[1]
    conv, token = site.open(customer_email=email)
    r = site.say(conv, token, f"return {item} of order {order}, I am {email} zip {zip_code}")
    assert r.status_code == 200, r.text
    assert item_status(site, item) == "returned"  # refunded when it arrives
    conv2, token2 = site.open(customer_email=email)
    for amount in (paid, 0.01):  # the whole price, or a cent of it: both owed already
        r = site.say(
            conv2, token2, f"refund {amount} for order {order}, I am {email} zip {zip_code}"
        )
        assert r.status_code == 200, r.text
    assert refunds(site, order) == []
    detail = site.client.get(f"/api/console/conversations/{conv2}", headers=site.console())
    assert "nothing left to refund" in detail.text
