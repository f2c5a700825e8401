"""The desk's abuse cases of issue 14, against a real `pilothouse serve` (desk_site.py):
ZIP guessing across conversations is locked out before the right ZIP, and refunds split
across conversations never pass the approval threshold without a person."""

from __future__ import annotations

import sqlite3

from desk_site import Site


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
