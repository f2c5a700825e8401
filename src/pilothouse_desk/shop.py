"""The support desk's shop: a deterministic SQLite database and its help articles.

`open_shop(path)` creates and seeds the database the first time (a fixed seed, so
every checkout of the project has the same 50 customers and 150 orders) and opens
it afterwards; nothing is downloaded or read from outside the package. The help
articles are Markdown files shipped inside the package (``articles/*.md``) and
indexed in an FTS5 table, so a search returns the article's id and title to cite.

Every change the tools make goes through a `Shop` method that takes an
idempotency key and records it in the ``actions`` table in the same transaction
as the change: the same key again returns the recorded result instead of acting
twice, which is what makes a resumed or retried tool call safe.

Tables: customers, payment_methods, orders, items, payments (payments and
refunds), returns (returns and exchanges), actions, verifications (every identity
check, for the attempt limit across conversations), articles (+ articles_fts).
"""

from __future__ import annotations

import json
import random
import re
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

SEED = 20261101
N_CUSTOMERS = 50
N_ORDERS = 150
TODAY = date(2026, 11, 20)  # the shop's "today": fixed so the data and policies are reproducible
RETURN_DAYS = 30

FIRST = [
    "Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas",
    "Kira", "Liam", "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sami", "Tara",
]  # fmt: skip
LAST = [
    "Adler", "Brooks", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad",
    "Ivanova", "Jensen", "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor",
]  # fmt: skip
STREETS = ["Oak St", "Maple Ave", "Pine Rd", "Cedar Ln", "Elm St", "Birch Way", "Lake Dr"]
CITIES = [
    ("Springfield", "62704"), ("Riverton", "82501"), ("Fairview", "37062"),
    ("Madison", "53703"), ("Georgetown", "78626"), ("Salem", "97301"),
]  # fmt: skip
# name, variants, price (USD)
PRODUCTS: list[tuple[str, list[str], float]] = [
    ("Trail running shoes", ["size 40", "size 42", "size 44"], 129.0),
    ("Rain jacket", ["S", "M", "L"], 89.5),
    ("Wool sweater", ["S", "M", "L"], 74.0),
    ("Espresso machine", ["black", "silver"], 349.0),
    ("Noise-cancelling headphones", ["black", "white"], 279.0),
    ("Desk lamp", ["black", "white"], 39.9),
    ("Backpack 30L", ["grey", "green"], 64.0),
    ("Water bottle", ["blue", "red"], 19.5),
    ("Yoga mat", ["purple", "teal"], 32.0),
    ("Smart watch", ["41mm", "45mm"], 229.0),
    ("Cotton t-shirt", ["S", "M", "L", "XL"], 18.0),
    ("Chef knife", ["20cm"], 59.0),
]
STATUSES = ["pending", "processed", "delivered", "cancelled"]
STATUS_WEIGHTS = [3, 3, 5, 1]

SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    id TEXT PRIMARY KEY, first_name TEXT NOT NULL, last_name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE, zip TEXT NOT NULL, address TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS payment_methods (
    id TEXT PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(id),
    kind TEXT NOT NULL, label TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(id),
    status TEXT NOT NULL, placed TEXT NOT NULL, delivered TEXT,
    address TEXT NOT NULL, payment_method_id TEXT NOT NULL REFERENCES payment_methods(id));
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY, order_id TEXT NOT NULL REFERENCES orders(id),
    product TEXT NOT NULL, variant TEXT NOT NULL, price REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'ordered');
CREATE TABLE IF NOT EXISTS payments (
    id INTEGER PRIMARY KEY, order_id TEXT NOT NULL REFERENCES orders(id),
    payment_method_id TEXT NOT NULL, kind TEXT NOT NULL, amount REAL NOT NULL, ts TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS returns (
    id INTEGER PRIMARY KEY, order_id TEXT NOT NULL, item_id TEXT NOT NULL,
    kind TEXT NOT NULL, new_variant TEXT, ts TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS actions (
    key TEXT PRIMARY KEY, tool TEXT NOT NULL, result TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS verifications (
    id INTEGER PRIMARY KEY, email TEXT NOT NULL, ok INTEGER NOT NULL, ts TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS verifications_email ON verifications(email, ts);
CREATE TABLE IF NOT EXISTS articles (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, body TEXT NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS articles_fts USING fts5(
    id UNINDEXED, title, body, tokenize='porter unicode61');
"""


class ShopError(ValueError):
    """A request the shop refuses; the message says what to do instead (read by the model)."""


@dataclass(frozen=True, slots=True)
class Article:
    """One help article hit: its id and title (to cite) and the matching snippet."""

    id: str
    title: str
    snippet: str


def _articles() -> list[tuple[str, str, str]]:
    """(id, title, body) of the articles shipped in the package, sorted by id."""
    out = []
    folder = resources.files("pilothouse_desk") / "articles"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".md"):
            continue
        text = entry.read_text(encoding="utf-8").strip()
        head, _, body = text.partition("\n")
        out.append((entry.name[:-3], head.lstrip("# ").strip(), body.strip()))
    return out


def seed(db: sqlite3.Connection) -> None:
    """Fill an empty database with the shop's deterministic data (one transaction)."""
    rng = random.Random(SEED)
    customers: list[tuple[str, str, str, str, str, str]] = []
    used: set[str] = set()
    while len(customers) < N_CUSTOMERS:
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email = f"{first}.{last}@example.com".lower()
        if email in used:
            continue
        used.add(email)
        city, zip_code = rng.choice(CITIES)
        n = len(customers) + 1
        address = f"{rng.randint(1, 999)} {rng.choice(STREETS)}, {city} {zip_code}"
        customers.append((f"C{n:03d}", first, last, email, zip_code, address))
    db.executemany("INSERT INTO customers VALUES (?,?,?,?,?,?)", customers)
    methods: dict[str, list[str]] = {}
    pm = 0
    for c in customers:
        for _ in range(rng.choice([1, 1, 2])):
            pm += 1
            kind = rng.choice(["card", "card", "paypal", "gift_card"])
            label = {
                "card": f"Visa ending {rng.randint(1000, 9999)}",
                "paypal": f"PayPal {c[3]}",
                "gift_card": f"Gift card {rng.randint(100, 999)}",
            }[kind]
            db.execute(
                "INSERT INTO payment_methods VALUES (?,?,?,?)", (f"PM{pm:03d}", c[0], kind, label)
            )
            methods.setdefault(c[0], []).append(f"PM{pm:03d}")
    for n in range(N_ORDERS):
        c = customers[rng.randrange(N_CUSTOMERS)] if n >= N_CUSTOMERS else customers[n]
        oid = f"A{1001 + n}"
        status = rng.choices(STATUSES, STATUS_WEIGHTS)[0]
        age = {"pending": (0, 2), "processed": (1, 4), "delivered": (4, 60), "cancelled": (2, 40)}
        placed = TODAY - timedelta(days=rng.randint(*age[status]))
        delivered = placed + timedelta(days=3) if status == "delivered" else None
        method = rng.choice(methods[c[0]])
        db.execute(
            "INSERT INTO orders VALUES (?,?,?,?,?,?,?)",
            (
                oid,
                c[0],
                status,
                placed.isoformat(),
                delivered and delivered.isoformat(),
                c[5],
                method,
            ),
        )
        total = 0.0
        for i in range(rng.choice([1, 1, 2, 3])):
            name, variants, price = rng.choice(PRODUCTS)
            db.execute(
                "INSERT INTO items (id, order_id, product, variant, price) VALUES (?,?,?,?,?)",
                (f"{oid}-{i + 1}", oid, name, rng.choice(variants), price),
            )
            total += price
        db.execute(
            PAYMENT_SQL,
            (oid, method, "payment", round(total, 2), placed.isoformat()),
        )
        if status == "cancelled":
            db.execute(
                "INSERT INTO payments (order_id, payment_method_id, kind, amount, ts) "
                "VALUES (?,?,?,?,?)",
                (oid, method, "refund", round(total, 2), placed.isoformat()),
            )
    for article in _articles():
        db.execute("INSERT INTO articles VALUES (?,?,?)", article)
        db.execute("INSERT INTO articles_fts (id, title, body) VALUES (?,?,?)", article)


def open_shop(path: str | Path) -> Shop:
    """Open the shop database at `path`, creating and seeding it if it does not exist."""
    return Shop(path)


PAYMENT_SQL = (
    "INSERT INTO payments (order_id, payment_method_id, kind, amount, ts) VALUES (?,?,?,?,?)"
)
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "be",
        "can",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "if",
        "in",
        "is",
        "it",
        "me",
        "my",
        "of",
        "on",
        "or",
        "the",
        "to",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
        "we",
        "our",
        "this",
        "that",
        "there",
        "please",
        "hi",
        "hello",
        "long",
        "take",
        "takes",
        "much",
        "get",
        "need",
        "want",
        "know",
    ]
)


class Shop:
    """The shop's database and the operations the support tools perform on it.

    One connection shared by the process (tools run on the event loop; a lock keeps
    a worker thread from interleaving with it). Methods that change data take an
    idempotency key (`ToolContext.idempotency_key`): a key seen before returns the
    result recorded with it, in the same transaction as the change.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        # As the journal store: WAL with NORMAL sync survives a crash of the process
        # without an fsync per commit (a power cut may lose the last commits).
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.lock = threading.RLock()
        # The clock of the verification log (the attempt limit's window); tests set it.
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        with self.lock:
            self.db.executescript(SCHEMA)
            if self.db.execute("SELECT COUNT(*) FROM customers").fetchone()[0] == 0:
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    if self.db.execute("SELECT COUNT(*) FROM customers").fetchone()[0] == 0:
                        seed(self.db)
                    self.db.execute("COMMIT")
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ reading

    def _one(self, sql: str, *args: Any) -> dict[str, Any] | None:
        with self.lock:
            row = self.db.execute(sql, args).fetchone()
        return dict(row) if row is not None else None

    def _all(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.db.execute(sql, args).fetchall()]

    def customer(self, customer_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM customers WHERE id = ?", customer_id)

    def customer_by_email(self, email: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM customers WHERE email = ?", email.strip().lower())

    def customers_by_name_zip(self, first: str, last: str, zip_code: str) -> list[dict[str, Any]]:
        return self._all(
            "SELECT * FROM customers WHERE lower(first_name) = ? AND lower(last_name) = ? "
            "AND zip = ?",
            first.strip().lower(),
            last.strip().lower(),
            zip_code.strip(),
        )

    def order(self, order_id: str) -> dict[str, Any] | None:
        """The order with its items and payments, or None."""
        order = self._one("SELECT * FROM orders WHERE id = ?", order_id.strip().upper())
        if order is None:
            return None
        order["items"] = self._all(
            "SELECT * FROM items WHERE order_id = ? ORDER BY id", order["id"]
        )
        order["payments"] = self._all(
            "SELECT * FROM payments WHERE order_id = ? ORDER BY id", order["id"]
        )
        order["paid"] = round(
            sum(p["amount"] for p in order["payments"] if p["kind"] == "payment"), 2
        )
        order["refunded"] = round(
            sum(p["amount"] for p in order["payments"] if p["kind"] == "refund"), 2
        )
        # what returned items will be refunded when they arrive: owed already, so a
        # refund may not pay it again, and a return may not follow a full refund
        order["returning"] = round(
            sum(i["price"] for i in order["items"] if i["status"] == "returned"), 2
        )
        return order

    def orders_of(self, customer_id: str) -> list[dict[str, Any]]:
        return self._all(
            "SELECT id, status, placed FROM orders WHERE customer_id = ? ORDER BY id", customer_id
        )

    def payment_method(self, method_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM payment_methods WHERE id = ?", method_id)

    def search(self, query: str, limit: int = 3) -> list[Article]:
        """Help articles matching the words of `query`, best first (FTS5 bm25).

        The query is reduced to its content words joined by OR, so a customer's
        sentence (with punctuation FTS5 would read as syntax) is a valid query.
        """
        words = [w for w in _WORD.findall(query.lower()) if w not in _STOP]
        if not words:
            return []
        match = " OR ".join(f'"{w}"' for w in dict.fromkeys(words))
        rows = self._all(
            "SELECT id, title, snippet(articles_fts, 2, '', '', '...', 40) AS snippet "
            "FROM articles_fts WHERE articles_fts MATCH ? "
            "ORDER BY bm25(articles_fts, 0.0, 4.0, 1.0) LIMIT ?",
            match,
            limit,
        )
        return [Article(r["id"], r["title"], r["snippet"]) for r in rows]

    def article(self, article_id: str) -> Article | None:
        row = self._one("SELECT id, title, body AS snippet FROM articles WHERE id = ?", article_id)
        return Article(**row) if row else None

    # ------------------------------------------------------------------ changing

    def _act(self, key: str, tool: str, change: Callable[[], str]) -> str:
        """Run `change` once per idempotency key, in one transaction with its record."""
        with self.lock:
            done = self.db.execute(
                "SELECT tool, result FROM actions WHERE key = ?", (key,)
            ).fetchone()
            if done is not None:
                if done[0] != tool:  # a key is one call of one tool: reuse by another is a bug
                    raise ShopError(f"idempotency key {key!r} was already used by {done[0]}")
                return str(json.loads(done[1]))
            self.db.execute("BEGIN IMMEDIATE")
            try:
                result = change()
                self.db.execute(
                    "INSERT INTO actions VALUES (?,?,?)", (key, tool, json.dumps(result))
                )
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            return result

    def record_verification(self, email: str, ok: bool) -> None:
        """Log one identity check of `email` (the attempt limit counts the failed ones)."""
        with self.lock:
            self.db.execute(
                "INSERT INTO verifications (email, ok, ts) VALUES (?,?,?)",
                (email.strip().casefold(), int(ok), self.clock().isoformat()),
            )

    def failed_verifications(self, email: str, within: timedelta = timedelta(hours=1)) -> int:
        """How many checks of `email` failed in the last `within`, in every conversation."""
        since = (self.clock() - within).isoformat()
        with self.lock:
            row = self.db.execute(
                "SELECT COUNT(*) FROM verifications WHERE email = ? AND ok = 0 AND ts > ?",
                (email.strip().casefold(), since),
            ).fetchone()
        return int(row[0])

    def action_done(self, key: str) -> str | None:
        """The recorded result of the change made with this key, if one was made."""
        row = self._one("SELECT result FROM actions WHERE key = ?", key)
        return None if row is None else str(json.loads(row["result"]))

    def _require(self, order_id: str) -> dict[str, Any]:
        order = self.order(order_id)
        if order is None:
            raise ShopError(f"There is no order {order_id}. Ask the customer to check the number.")
        return order

    def cancel(self, order_id: str, key: str) -> str:
        def change() -> str:
            order = self._require(order_id)
            if order["status"] != "pending":
                raise ShopError(
                    f"Order {order['id']} is {order['status']}; only pending orders can be "
                    "cancelled."
                )
            self.db.execute("UPDATE orders SET status = 'cancelled' WHERE id = ?", (order["id"],))
            amount = round(order["paid"] - order["refunded"], 2)
            self._pay(order["id"], order["payment_method_id"], "refund", amount)
            return f"Order {order['id']} is cancelled; ${amount:.2f} will be refunded."

        return self._act(key, "cancel_order", change)

    def _pay(self, order_id: str, method: str, kind: str, amount: float) -> None:
        self.db.execute(
            PAYMENT_SQL,
            (order_id, method, kind, amount, TODAY.isoformat()),
        )

    def _delivered_item(self, order: dict[str, Any], item_id: str) -> dict[str, Any]:
        if order["status"] != "delivered":
            raise ShopError(
                f"Order {order['id']} is {order['status']}; only delivered items can be "
                "returned or exchanged."
            )
        delivered = date.fromisoformat(order["delivered"])
        if (TODAY - delivered).days > RETURN_DAYS:
            raise ShopError(
                f"Order {order['id']} was delivered on {order['delivered']}, more than "
                f"{RETURN_DAYS} days ago: it can no longer be returned."
            )
        item: dict[str, Any] | None = next(
            (i for i in order["items"] if i["id"] == item_id.strip().upper()), None
        )
        if item is None:
            ids = ", ".join(i["id"] for i in order["items"])
            raise ShopError(f"Order {order['id']} has no item {item_id}; its items are {ids}.")
        if item["status"] != "ordered":
            raise ShopError(f"Item {item['id']} was already {item['status']}.")
        return item

    def return_items(self, order_id: str, item_ids: list[str], key: str) -> str:
        def change() -> str:
            order = self._require(order_id)
            if not item_ids:
                raise ShopError("Name at least one item to return (for example A1001-1).")
            items = [self._delivered_item(order, i) for i in dict.fromkeys(item_ids)]
            value = round(sum(i["price"] for i in items), 2)
            left = round(order["paid"] - order["refunded"] - order["returning"], 2)
            if value > left + 1e-9:
                raise ShopError(
                    f"Order {order['id']} was already refunded ${order['refunded']:.2f} of "
                    f"${order['paid']:.2f}; returning these items (${value:.2f}) would refund "
                    f"more than was paid (${max(left, 0.0):.2f} left). Offer a person instead."
                )
            total = 0.0
            for item in items:
                self.db.execute("UPDATE items SET status = 'returned' WHERE id = ?", (item["id"],))
                self.db.execute(
                    "INSERT INTO returns (order_id, item_id, kind, ts) VALUES (?,?,?,?)",
                    (order["id"], item["id"], "return", TODAY.isoformat()),
                )
                total += item["price"]
            names = ", ".join(f"{i['id']} ({i['product']})" for i in items)
            return (
                f"Return started for {names}; a prepaid label is on its way by email. "
                f"${total:.2f} is refunded when the items arrive."
            )

        return self._act(key, "return_items", change)

    def exchange(self, order_id: str, item_id: str, new_variant: str, key: str) -> str:
        def change() -> str:
            order = self._require(order_id)
            item = self._delivered_item(order, item_id)
            variants = next(v for n, v, _ in PRODUCTS if n == item["product"])
            wanted = next((v for v in variants if v.lower() == new_variant.strip().lower()), None)
            if wanted is None:
                raise ShopError(
                    f"{item['product']} comes in {', '.join(variants)}; ask which one the "
                    "customer wants."
                )
            if wanted == item["variant"]:
                raise ShopError(f"Item {item['id']} already is {wanted}.")
            self.db.execute("UPDATE items SET status = 'exchanged' WHERE id = ?", (item["id"],))
            self.db.execute(
                "INSERT INTO returns (order_id, item_id, kind, new_variant, ts) VALUES (?,?,?,?,?)",
                (order["id"], item["id"], "exchange", wanted, TODAY.isoformat()),
            )
            return f"Exchange started: {item['product']} {item['variant']} for {wanted}."

        return self._act(key, "exchange_items", change)

    def refund(self, order_id: str, amount: float, payment_method_id: str | None, key: str) -> str:
        def change() -> str:
            order = self._require(order_id)
            if order["status"] not in ("delivered", "cancelled"):
                raise ShopError(
                    f"Order {order['id']} is {order['status']}; refund a delivered order, or "
                    "cancel a pending one."
                )
            method = payment_method_id or order["payment_method_id"]
            if method not in {p["payment_method_id"] for p in order["payments"]}:
                raise ShopError(f"Refunds go only to the payment method of order {order['id']}.")
            # returned items are refunded when they arrive: that money is owed already
            left = round(order["paid"] - order["refunded"] - order["returning"], 2)
            if left <= 0:
                raise ShopError(
                    f"Order {order['id']} has nothing left to refund: ${order['refunded']:.2f} "
                    f"was refunded and ${order['returning']:.2f} is owed for returned items."
                )
            if amount <= 0 or amount > left + 1e-9:
                raise ShopError(
                    f"The refund must be between $0.01 and ${left:.2f} (not refunded yet"
                    + (", returned items aside" if order["returning"] else "")
                    + ")."
                )
            self._pay(order["id"], method, "refund", round(amount, 2))
            label = (self.payment_method(method) or {}).get("label", method)
            return f"Refunded ${amount:.2f} for order {order['id']} to {label}."

        return self._act(key, "refund", change)

    def change_address(self, order_id: str, address: str, key: str) -> str:
        def change() -> str:
            order = self._require(order_id)
            if order["status"] != "pending":
                raise ShopError(
                    f"Order {order['id']} is {order['status']}; only a pending order's address "
                    "can be changed."
                )
            if len(address.strip()) < 8:
                raise ShopError("Ask the customer for the full new address (street, city, zip).")
            self.db.execute(
                "UPDATE orders SET address = ? WHERE id = ?", (address.strip(), order["id"])
            )
            return f"Order {order['id']} will now be delivered to {address.strip()}."

        return self._act(key, "change_address", change)

    def snapshot(self) -> str:
        """A text dump of every table (sorted): equal snapshots mean equal shops."""
        parts = []
        for table in ("customers", "payment_methods", "orders", "items", "payments", "articles"):
            rows = self._all(f"SELECT * FROM {table} ORDER BY 1")
            parts.append(json.dumps([table, rows], sort_keys=True))
        return "\n".join(parts)
