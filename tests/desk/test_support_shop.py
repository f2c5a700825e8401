"""The shop: deterministic generation, reopening, and FTS5 help search."""

from __future__ import annotations

from pathlib import Path

from pilothouse_desk.shop import N_CUSTOMERS, N_ORDERS, Shop, open_shop


def test_generation_is_deterministic(tmp_path: Path) -> None:
    a, b = open_shop(tmp_path / "a.db"), open_shop(tmp_path / "b.db")
    try:
        assert a.snapshot() == b.snapshot()
    finally:
        a.close()
        b.close()


def test_shop_has_the_promised_shape(shop: Shop) -> None:
    count = shop.db.execute
    assert count("SELECT COUNT(*) FROM customers").fetchone()[0] == N_CUSTOMERS
    assert count("SELECT COUNT(*) FROM orders").fetchone()[0] == N_ORDERS
    statuses = {r[0] for r in count("SELECT DISTINCT status FROM orders")}
    assert statuses == {"pending", "processed", "delivered", "cancelled"}
    # every order has items and a payment equal to the items' total
    for o in count("SELECT id FROM orders").fetchall():
        order = shop.order(o[0])
        assert order is not None and order["items"]
        assert order["paid"] == round(sum(i["price"] for i in order["items"]), 2)
    assert count("SELECT COUNT(*) FROM articles").fetchone()[0] == 10


def test_reopening_does_not_reseed(shop_path: Path) -> None:
    s = open_shop(shop_path)
    s.cancel("A1007", "key-1")  # a pending order in the seeded data
    s.close()
    again = open_shop(shop_path)
    try:
        assert again.db.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == N_ORDERS
        order = again.order("A1007")
        assert order is not None and order["status"] == "cancelled"
    finally:
        again.close()


def test_search_finds_the_right_article(shop: Shop) -> None:
    cases = {
        "How long does a refund take to show up on my card?": "refunds",
        "Do you have express shipping, and what does it cost?": "shipping",
        "My headphones stopped working, is that covered by the warranty?": "warranty",
        "can I change the delivery address": "address",
        "my parcel arrived damaged": "damaged",
        "what payment methods do you accept, PayPal?": "payment",
    }
    for question, article in cases.items():
        hits = shop.search(question)
        assert hits, question
        assert hits[0].id == article, (question, [h.id for h in hits])
        assert hits[0].title and hits[0].snippet


def test_search_survives_fts_syntax_and_empty_queries(shop: Shop) -> None:
    assert shop.search('refund" OR (NEAR AND *') != []  # punctuation is not FTS syntax here
    assert shop.search("the and of?") == []
    assert shop.search("") == []
