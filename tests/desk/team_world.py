"""The desk's team in tests: the real team (triage, specialists, supervisor, the shop's
policy, a SQLite shop and journal) on a scripted model.

`routed_model` stands in for the embedded model under its grammar: the team's step
hooks offer one tool with its arguments narrowed to the values the customer wrote (an
``enum``), and this model fills each with the first value the schema allows (a free
text argument, the summary for a person, gets a fixed line). So the routing under test
is the hooks' own, deterministic, with no model weights. `capable_model(script)` is a
model that chooses its own calls (the team without hooks): `script(agent, request)`
says what each agent does.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pilothouse.messages import ToolCall
from pilothouse.models.base import ModelRequest
from pilothouse.models.scripted import ScriptedModel
from pilothouse.runtime.journal import SQLiteStore

SUMMARY = "Customer asks for a human."


def fill(schema: dict[str, Any]) -> Any:
    """The first value `schema` allows (what a grammar with one choice leaves)."""
    if "enum" in schema:
        return schema["enum"][0]
    if schema.get("type") == "object" or "properties" in schema:
        props = schema.get("properties", {})
        required = schema.get("required", list(props))
        return {k: fill(v) for k, v in props.items() if k in required}
    if schema.get("type") == "array":
        return [fill(schema.get("items", {}))]
    if schema.get("type") == "string":
        return SUMMARY
    return None


def routed_model() -> ScriptedModel:
    """The embedded model's part under the team's hooks (see the module docs)."""
    counter = itertools.count()

    def reply(request: ModelRequest) -> Any:
        if request.tool_choice == "required" and len(request.tools) == 1:
            spec = request.tools[0]
            return ToolCall(f"g{next(counter)}", spec.name, fill(spec.parameters))
        raise AssertionError(f"the hooks sent an unrouted request: {request.tool_choice}")

    return ScriptedModel(reply, record=False)


def agent_of(request: ModelRequest) -> str:
    """Which team member a request is from (its system prompt names it)."""
    system = request.messages[0].content if request.messages else ""
    for name in ("front desk", "orders", "returns", "supervisor", "help"):
        if name in system:
            return "triage" if name == "front desk" else name
    return "?"


def capable_model(script: Callable[[str, ModelRequest, int], Any]) -> ScriptedModel:
    """A model choosing its own steps: `script(agent, request, n)` answers each call."""
    counter = itertools.count()
    return ScriptedModel(
        lambda request: script(agent_of(request), request, next(counter)), record=False
    )


def make_team_desk(
    directory: Path, model: Any = None, *, route: bool = True, **team_options: Any
) -> Any:
    """A `Desk` whose responder is the `SupportTeam` (routed by its hooks by default;
    `team_options` go to the team, e.g. ``supervisor_limit``)."""
    from pilothouse_desk.desk import Desk
    from pilothouse_desk.team import SupportTeam

    store = SQLiteStore(directory / "journal.db")
    chosen = model if model is not None else routed_model()
    return Desk(
        directory / "shop.db",
        store,
        agent_factory=lambda shop, store: SupportTeam(
            model=chosen, store=store, route=route, **team_options
        ),
    )


def delivered_order(shop_path: Path, low: float, high: float = 1e9) -> tuple[str, str, str, float]:
    """A delivered seeded order paid between `low` and `high`: (id, email, zip, paid)."""
    db = sqlite3.connect(shop_path)
    try:
        row = db.execute(
            "SELECT o.id, c.email, c.zip, SUM(p.amount) AS paid FROM orders o "
            "JOIN customers c ON c.id = o.customer_id "
            "JOIN payments p ON p.order_id = o.id AND p.kind = 'payment' "
            "WHERE o.status = 'delivered' GROUP BY o.id HAVING paid > ? AND paid <= ? "
            "ORDER BY o.id LIMIT 1",
            (low, high),
        ).fetchone()
    finally:
        db.close()
    assert row is not None, "the seeded shop has no such order"
    return row[0], row[1], row[2], float(row[3])


def refunds_of(shop_path: Path, order: str) -> list[float]:
    db = sqlite3.connect(shop_path)
    try:
        rows = db.execute(
            "SELECT amount FROM payments WHERE order_id = ? AND kind = 'refund'", (order,)
        ).fetchall()
    finally:
        db.close()
    return [float(r[0]) for r in rows]
