"""tau-retail: run any Pilothouse agent on the retail customer-support tasks.

The data (``../shared/data/tau-retail``, extracted from tau-bench, MIT) holds the
shop's database, the 16 tools as JSON schemas, the support policy and tasks with
gold actions. This module implements the 16 tools over an in-memory copy of the
database (copy-on-write: a record is copied the first time a tool changes it), a
simulated customer, and the scoring: a task is solved when the run leaves exactly
the task's ``expected_changes`` and the agent told the customer every string of
``outputs`` (case-insensitive, commas removed).

The conversation is one Pilothouse run: the customer's first message is the run's
input, the agent talks to the customer through the tool ``send_message_to_customer``
(whose result is the customer's reply), and its final answer is its last message.
The task's environment (its copy of the database and its customer, a `RetailEnv`)
is the run's deps: the tools are shared, and each call reads ``ctx.deps``.
The customer is scripted (confirms when asked, otherwise restates the request) or,
given a model, an LLM playing the task's instruction.

    suite = tau_retail_suite("test")                       # one scenario per task
    log = await run_eval(suite, ["openai:gpt-4o-mini"], epochs=4)   # pass^k over epochs

Reference models for the self-tests: `oracle_model(suite)` replays each task's gold
actions and states its outputs; `null_model()` answers at once and changes nothing.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pilothouse import Budget, ConfigurationError, Model, ModelRequest, ToolCall
from pilothouse.evals.runner import Suite, register_reference_models
from pilothouse.evals.scenario import EvalContext, Scenario
from pilothouse.models.scripted import Reply, ScriptedModel
from pilothouse.runtime.journal import Store
from pilothouse.tools.tool import Tool, ToolContext, ToolFunction

if TYPE_CHECKING:
    from pilothouse import Agent

CUSTOMER_TOOL = "send_message_to_customer"
TABLES = ("users", "orders", "products")


def default_data_dir() -> Path:
    """``$PILOTHOUSE_TAU_RETAIL``, else ``../shared/data/tau-retail`` from the working dir."""
    env = os.environ.get("PILOTHOUSE_TAU_RETAIL")
    return Path(env) if env else Path("..") / "shared" / "data" / "tau-retail"


@dataclass(slots=True)
class RetailData:
    """The pristine database, the tool schemas, the policy and the tasks (never mutated)."""

    path: Path
    tables: dict[str, dict[str, Any]]
    tool_schemas: dict[str, dict[str, Any]]
    policy: str

    def tasks(self, split: str = "test") -> list[dict[str, Any]]:
        """The tasks of ``test`` (115), ``dev`` (20), ``train`` (500) or ``all`` (read once)."""
        return list(_tasks(str(self.path), split))


@cache
def _tasks(path: str, split: str) -> tuple[dict[str, Any], ...]:
    splits = ["test", "dev", "train"] if split == "all" else [split]
    tasks: list[dict[str, Any]] = []
    for name in splits:
        file = Path(path) / f"tasks_{name}.json"
        if not file.exists():
            raise ConfigurationError(f"no tau-retail split {name!r}: {file} is missing")
        tasks.extend(json.loads(file.read_text(encoding="utf-8")))
    return tuple(tasks)


@cache
def _load(path: str) -> RetailData:
    root = Path(path)
    if not (root / "db" / "orders.json").exists():
        raise ConfigurationError(
            f"no tau-retail data at {root} (expected db/, tools.json, tasks_*.json); "
            "set $PILOTHOUSE_TAU_RETAIL"
        )
    tables = {
        t: json.loads((root / "db" / f"{t}.json").read_text(encoding="utf-8")) for t in TABLES
    }
    schemas = {}
    for entry in json.loads((root / "tools.json").read_text(encoding="utf-8")):
        fn = entry.get("function", entry)
        schemas[fn["name"]] = fn
    policy = (root / "policy.md").read_text(encoding="utf-8")
    return RetailData(root, tables, schemas, policy)


def load_data(path: str | Path | None = None) -> RetailData:
    """Load (once per process) the tau-retail data."""
    return _load(str(Path(path or default_data_dir()).resolve()))


class RetailDB:
    """A task's view of the database: reads see the pristine data, writes copy the record."""

    def __init__(self, data: RetailData) -> None:
        self._base = data.tables
        self._overlay: dict[str, dict[str, Any]] = {t: {} for t in TABLES}

    def has(self, table: str, key: str) -> bool:
        return key in self._overlay[table] or key in self._base[table]

    def get(self, table: str, key: str) -> Any:
        """A record to read (do not mutate it: use `edit`)."""
        overlay = self._overlay[table]
        return overlay[key] if key in overlay else self._base[table][key]

    def edit(self, table: str, key: str) -> Any:
        """A record to change: copied into this task's overlay on first edit."""
        overlay = self._overlay[table]
        if key not in overlay:
            overlay[key] = copy.deepcopy(self._base[table][key])
        return overlay[key]

    def keys(self, table: str) -> list[str]:
        return list(self._base[table])

    def values(self, table: str) -> list[Any]:
        return [self.get(table, k) for k in self._base[table]]

    def changes(self) -> dict[str, dict[str, Any]]:
        """Every record that differs from the pristine database, keyed by table and id."""
        changed: dict[str, dict[str, Any]] = {}
        for table, records in self._overlay.items():
            for key, value in records.items():
                if self._base[table].get(key) != value:
                    changed.setdefault(table, {})[key] = value
        return changed


# --------------------------------------------------------------------------- the 16 tools
# Behaviour, checks and messages follow the reference implementation whose outputs the
# tasks record; `test_tau_retail` replays every gold action against them.


def _calculate(db: RetailDB, expression: str) -> str:
    if not all(ch in "0123456789+-*/(). " for ch in expression):
        return "Error: invalid characters in expression"
    import ast

    from pilothouse_suites.builtin import evaluate_arithmetic  # arithmetic only, no eval()

    try:
        return str(round(float(evaluate_arithmetic(ast.parse(expression, mode="eval"))), 2))
    except Exception as exc:
        return f"Error: {exc}"


def _status_error(db: RetailDB, order_id: str, status: str, action: str) -> str | None:
    """The reference shop's error when an order is missing or not in `status`, else None."""
    if not db.has("orders", order_id):
        return "Error: order not found"
    if db.get("orders", order_id)["status"] != status:
        return f"Error: non-{status} order cannot be {action}"
    return None


def _cancel_pending_order(db: RetailDB, order_id: str, reason: str) -> str:
    error = _status_error(db, order_id, "pending", "cancelled")
    if error:
        return error
    if reason not in ("no longer needed", "ordered by mistake"):
        return "Error: invalid reason"
    order = db.edit("orders", order_id)
    refunds = []
    for payment in order["payment_history"]:
        method_id = payment["payment_method_id"]
        refunds.append(
            {
                "transaction_type": "refund",
                "amount": payment["amount"],
                "payment_method_id": method_id,
            }
        )
        if "gift_card" in method_id:
            method = db.edit("users", order["user_id"])["payment_methods"][method_id]
            method["balance"] = round(method["balance"] + payment["amount"], 2)
    order["status"] = "cancelled"
    order["cancel_reason"] = reason
    order["payment_history"].extend(refunds)
    return json.dumps(order)


def _items_check(
    db: RetailDB, order: Any, item_ids: list[str], new_item_ids: list[str]
) -> tuple[str | None, float]:
    all_ids = [item["item_id"] for item in order["items"]]
    for item_id in item_ids:
        if item_ids.count(item_id) > all_ids.count(item_id):
            return f"Error: {item_id} not found", 0.0
    if len(item_ids) != len(new_item_ids):
        return "Error: the number of items to be exchanged should match", 0.0
    diff = 0.0
    for item_id, new_id in zip(item_ids, new_item_ids, strict=True):
        item = next(i for i in order["items"] if i["item_id"] == item_id)
        variants = db.get("products", item["product_id"])["variants"]
        if not (new_id in variants and variants[new_id]["available"]):
            return f"Error: new item {new_id} not found or available", 0.0
        diff += variants[new_id]["price"] - item["price"]
    return None, diff


def _exchange_delivered_order_items(
    db: RetailDB,
    order_id: str,
    item_ids: list[str],
    new_item_ids: list[str],
    payment_method_id: str,
) -> str:
    error = _status_error(db, order_id, "delivered", "exchanged")
    if error:
        return error
    order = db.get("orders", order_id)
    error, diff = _items_check(db, order, item_ids, new_item_ids)
    if error:
        return error
    diff = round(diff, 2)
    methods = db.get("users", order["user_id"])["payment_methods"]
    if payment_method_id not in methods:
        return "Error: payment method not found"
    method = methods[payment_method_id]
    if method["source"] == "gift_card" and method["balance"] < diff:
        return "Error: insufficient gift card balance to pay for the price difference"
    order = db.edit("orders", order_id)
    order["status"] = "exchange requested"
    order["exchange_items"] = sorted(item_ids)
    order["exchange_new_items"] = sorted(new_item_ids)
    order["exchange_payment_method_id"] = payment_method_id
    order["exchange_price_difference"] = diff
    return json.dumps(order)


def _find_user_id_by_email(db: RetailDB, email: str) -> str:
    for user_id in db.keys("users"):
        if db.get("users", user_id)["email"].lower() == email.lower():
            return user_id
    return "Error: user not found"


def _find_user_id_by_name_zip(db: RetailDB, first_name: str, last_name: str, zip: str) -> str:
    for user_id in db.keys("users"):
        profile = db.get("users", user_id)
        if (
            profile["name"]["first_name"].lower() == first_name.lower()
            and profile["name"]["last_name"].lower() == last_name.lower()
            and profile["address"]["zip"] == zip
        ):
            return user_id
    return "Error: user not found"


def _get_order_details(db: RetailDB, order_id: str) -> str:
    if db.has("orders", order_id):
        return json.dumps(db.get("orders", order_id))
    return "Error: order not found"


def _get_product_details(db: RetailDB, product_id: str) -> str:
    if db.has("products", product_id):
        return json.dumps(db.get("products", product_id))
    return "Error: product not found"


def _get_user_details(db: RetailDB, user_id: str) -> str:
    if db.has("users", user_id):
        return json.dumps(db.get("users", user_id))
    return "Error: user not found"


def _list_all_product_types(db: RetailDB) -> str:
    names = {p["name"]: p["product_id"] for p in db.values("products")}
    return json.dumps(dict(sorted(names.items())))


def _address(
    address1: str, address2: str, city: str, state: str, country: str, zip: str
) -> dict[str, str]:
    return {
        "address1": address1,
        "address2": address2,
        "city": city,
        "state": state,
        "country": country,
        "zip": zip,
    }


def _modify_pending_order_address(
    db: RetailDB,
    order_id: str,
    address1: str,
    address2: str,
    city: str,
    state: str,
    country: str,
    zip: str,
) -> str:
    error = _status_error(db, order_id, "pending", "modified")
    if error:
        return error
    order = db.edit("orders", order_id)
    order["address"] = _address(address1, address2, city, state, country, zip)
    return json.dumps(order)


def _modify_pending_order_items(
    db: RetailDB,
    order_id: str,
    item_ids: list[str],
    new_item_ids: list[str],
    payment_method_id: str,
) -> str:
    error = _status_error(db, order_id, "pending", "modified")
    if error:
        return error
    order = db.get("orders", order_id)
    error, diff = _items_check(db, order, item_ids, new_item_ids)
    if error:
        return error
    user_id = order["user_id"]
    methods = db.get("users", user_id)["payment_methods"]
    if payment_method_id not in methods:
        return "Error: payment method not found"
    if methods[payment_method_id]["source"] == "gift_card" and (
        methods[payment_method_id]["balance"] < diff
    ):
        return "Error: insufficient gift card balance to pay for the new item"
    order = db.edit("orders", order_id)
    order["payment_history"].append(
        {
            "transaction_type": "payment" if diff > 0 else "refund",
            "amount": abs(diff),
            "payment_method_id": payment_method_id,
        }
    )
    if methods[payment_method_id]["source"] == "gift_card":
        method = db.edit("users", user_id)["payment_methods"][payment_method_id]
        method["balance"] = round(method["balance"] - diff, 2)
    for item_id, new_id in zip(item_ids, new_item_ids, strict=True):
        item = next(i for i in order["items"] if i["item_id"] == item_id)
        variant = db.get("products", item["product_id"])["variants"][new_id]
        item["item_id"] = new_id
        item["price"] = variant["price"]
        item["options"] = copy.deepcopy(variant["options"])
    order["status"] = "pending (item modified)"
    return json.dumps(order)


def _modify_pending_order_payment(db: RetailDB, order_id: str, payment_method_id: str) -> str:
    error = _status_error(db, order_id, "pending", "modified")
    if error:
        return error
    order = db.get("orders", order_id)
    user_id = order["user_id"]
    methods = db.get("users", user_id)["payment_methods"]
    if payment_method_id not in methods:
        return "Error: payment method not found"
    history = order["payment_history"]
    if len(history) > 1 or history[0]["transaction_type"] != "payment":
        return "Error: there should be exactly one payment for a pending order"
    if history[0]["payment_method_id"] == payment_method_id:
        return "Error: the new payment method should be different from the current one"
    amount = history[0]["amount"]
    if methods[payment_method_id]["source"] == "gift_card" and (
        methods[payment_method_id]["balance"] < amount
    ):
        return "Error: insufficient gift card balance to pay for the order"
    old_id = history[0]["payment_method_id"]
    order = db.edit("orders", order_id)
    order["payment_history"].extend(
        [
            {
                "transaction_type": "payment",
                "amount": amount,
                "payment_method_id": payment_method_id,
            },
            {"transaction_type": "refund", "amount": amount, "payment_method_id": old_id},
        ]
    )
    if methods[payment_method_id]["source"] == "gift_card":
        method = db.edit("users", user_id)["payment_methods"][payment_method_id]
        method["balance"] = round(method["balance"] - amount, 2)
    if methods[old_id]["source"] == "gift_card":
        old = db.edit("users", user_id)["payment_methods"][old_id]
        old["balance"] = round(old["balance"] + amount, 2)
    return json.dumps(order)


def _modify_user_address(
    db: RetailDB,
    user_id: str,
    address1: str,
    address2: str,
    city: str,
    state: str,
    country: str,
    zip: str,
) -> str:
    if not db.has("users", user_id):
        return "Error: user not found"
    user = db.edit("users", user_id)
    user["address"] = _address(address1, address2, city, state, country, zip)
    return json.dumps(user)


def _return_delivered_order_items(
    db: RetailDB, order_id: str, item_ids: list[str], payment_method_id: str
) -> str:
    error = _status_error(db, order_id, "delivered", "returned")
    if error:
        return error
    order = db.get("orders", order_id)
    if payment_method_id not in db.get("users", order["user_id"])["payment_methods"]:
        return "Error: payment method not found"
    if (
        "gift_card" not in payment_method_id
        and payment_method_id != order["payment_history"][0]["payment_method_id"]
    ):
        return "Error: payment method should be either the original payment method or a gift card"
    all_ids = [item["item_id"] for item in order["items"]]
    for item_id in item_ids:
        if item_ids.count(item_id) > all_ids.count(item_id):
            return "Error: some item not found"
    order = db.edit("orders", order_id)
    order["status"] = "return requested"
    order["return_items"] = sorted(item_ids)
    order["return_payment_method_id"] = payment_method_id
    return json.dumps(order)


def _think(db: RetailDB, thought: str) -> str:
    return ""


def _transfer_to_human_agents(db: RetailDB, summary: str) -> str:
    return "Transfer successful"


IMPLEMENTATIONS: dict[str, Callable[..., str]] = {
    "calculate": _calculate,
    "cancel_pending_order": _cancel_pending_order,
    "exchange_delivered_order_items": _exchange_delivered_order_items,
    "find_user_id_by_email": _find_user_id_by_email,
    "find_user_id_by_name_zip": _find_user_id_by_name_zip,
    "get_order_details": _get_order_details,
    "get_product_details": _get_product_details,
    "get_user_details": _get_user_details,
    "list_all_product_types": _list_all_product_types,
    "modify_pending_order_address": _modify_pending_order_address,
    "modify_pending_order_items": _modify_pending_order_items,
    "modify_pending_order_payment": _modify_pending_order_payment,
    "modify_user_address": _modify_user_address,
    "return_delivered_order_items": _return_delivered_order_items,
    "think": _think,
    "transfer_to_human_agents": _transfer_to_human_agents,
}
_WRITES = {
    "cancel_pending_order",
    "exchange_delivered_order_items",
    "modify_pending_order_address",
    "modify_pending_order_items",
    "modify_pending_order_payment",
    "modify_user_address",
    "return_delivered_order_items",
}


def call_tool(db: RetailDB, name: str, arguments: dict[str, Any]) -> str:
    """Run one tool by name on `db` (what a gold action replay does)."""
    return IMPLEMENTATIONS[name](db, **arguments)


@dataclass(slots=True)
class RetailEnv:
    """One task's environment, the deps of its run: its database and its customer."""

    db: RetailDB
    customer: Customer


def _bind(name: str, schema: dict[str, Any]) -> Tool:
    implementation = IMPLEMENTATIONS[name]

    def run(ctx: ToolContext[RetailEnv], **kwargs: Any) -> str:
        return implementation(ctx.deps.db, **kwargs)

    # Validation uses the implementation's signature with the run's context in place
    # of `db`; the schema the model reads is tools.json's, description and all.
    signature = inspect.signature(implementation)
    context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    run.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[context, *list(signature.parameters.values())[1:]]
    )
    run.__annotations__ = {
        "ctx": ToolContext[RetailEnv],
        **{k: v for k, v in implementation.__annotations__.items() if k != "db"},
    }
    run.__name__ = name
    tool = Tool(
        run,
        name=name,
        description=schema.get("description", ""),
        effect="side_effect" if name in _WRITES else "read_only",
    )
    tool.parameters = schema.get("parameters", tool.parameters)
    return tool


async def send_message_to_customer(ctx: ToolContext[RetailEnv], message: str) -> str:
    """Send a message to the customer and return the customer's reply.

    Args:
        message: what to tell or ask the customer
    """
    return await ctx.deps.customer.reply(message)


@cache
def _tools(path: str) -> tuple[Tool, ...]:
    data = _load(path)
    bound = [_bind(name, data.tool_schemas[name]) for name in IMPLEMENTATIONS]
    return (*bound, Tool(send_message_to_customer))


def retail_tools(data: RetailData) -> list[Tool]:
    """The 16 tools plus `send_message_to_customer`, built once; each call works on the
    database and customer of its run's deps (a `RetailEnv`)."""
    return list(_tools(str(data.path)))


# --------------------------------------------------------------------------- customer


@dataclass(slots=True)
class Customer:
    """The simulated customer of one task.

    Without a model it is scripted: it opens with the task's instruction, says yes
    when asked to confirm, and otherwise restates its request. With a model it is an
    LLM playing the instruction (a Pilothouse agent; its runs are not journaled).
    """

    instruction: str
    model: Model | str | None = None
    transcript: list[tuple[str, str]] = field(default_factory=list)

    def opening(self) -> str:
        return f"Hi. {self.instruction}" if self.model is None else self.instruction

    async def reply(self, message: str) -> str:
        self.transcript.append(("agent", message))
        if self.model is None:
            lowered = message.lower()
            if any(w in lowered for w in ("confirm", "yes/no", "proceed", "would you like")):
                answer = "Yes, please go ahead."
            else:
                answer = f"As I said: {self.instruction}"
        else:
            from pilothouse import Agent

            actor = Agent(
                self.model,
                "You are a customer talking to a shop's support agent. Play this role, "
                "reveal details only when asked, answer in one or two sentences, and write "
                f"###STOP### when your request is handled.\n\nYour situation: {self.instruction}",
                name="customer",
                max_steps=2,
                store=":memory:",
            )
            history = "\n".join(f"{who}: {text}" for who, text in self.transcript)
            answer = str(
                (await actor.run(f"Conversation so far:\n{history}\n\nYour reply:")).output
            )
        self.transcript.append(("customer", answer))
        return answer


# --------------------------------------------------------------------------- scoring


def _clean(text: str) -> str:
    return text.lower().replace(",", "")


def score_task(task: dict[str, Any], changes: dict[str, Any], said: list[str]) -> list[str]:
    """Why the task is not solved (empty when it is): database changes, then outputs."""
    problems = []
    expected = {t: v for t, v in task["expected_changes"].items() if v}
    if changes != expected:
        wrong = sorted(
            f"{t}/{k}"
            for t in set(changes) | set(expected)
            for k in set(changes.get(t, {})) | set(expected.get(t, {}))
            if changes.get(t, {}).get(k) != expected.get(t, {}).get(k)
        )
        problems.append(f"database changes differ from the expected ones at {wrong[:6]}")
    told = _clean(" ".join(said))
    missing = [o for o in task["outputs"] if _clean(o) not in told]
    if missing:
        problems.append(f"the customer was not told {missing}")
    return problems


def tau_agent(scenario: Scenario, model: Model, budget: Budget, store: Store) -> Agent[Any, Any]:
    """The default construction for tau-retail: the policy text as instructions, all
    tools allowed by the Pilothouse policy (the shop's rules are the agent's to follow,
    and the scoring checks the database), a `RetailEnv` as each run's deps."""
    from pilothouse import Agent, Policy

    return Agent(
        model,
        scenario.instructions,
        scenario.tools,
        name="tau-retail",
        budget=budget,
        store=store,
        policy=Policy.allow_all(),
        deps_type=RetailEnv,
    )


def tau_retail_suite(
    split: str = "test",
    *,
    data_dir: str | Path | None = None,
    customer_model: Model | str | None = None,
    limit: int | None = None,
) -> Suite:
    """One scenario per task of `split`; the instructions are the shop's policy."""
    data = load_data(data_dir)
    tasks = data.tasks(split)[:limit]
    tools: list[Tool | ToolFunction] = list(retail_tools(data))

    def make(task: dict[str, Any]) -> Scenario:
        customer_opening = Customer(task["instruction"], customer_model).opening()

        async def run_task(ctx: EvalContext) -> None:
            db = RetailDB(data)
            customer = Customer(task["instruction"], customer_model)
            result = await ctx.run(customer.opening(), deps=RetailEnv(db, customer))
            final = str(result.output)  # a stopped run raises its RunStopped
            said = [text for who, text in customer.transcript if who == "agent"] + [final]
            problems = score_task(task, db.changes(), said)
            if problems:
                raise AssertionError("; ".join(problems))

        return Scenario(
            task["id"],
            run_task,
            tools,
            data.policy,
            task["instruction"][:80],
            customer_opening,
            ("tau-retail",),
        )

    return Suite(
        f"tau-retail-{split}",
        [make(t) for t in tasks],
        agent_factory=tau_agent,
        budget=Budget(max_steps=30, max_seconds=600),
        description="tau-bench retail tasks, scored by database changes and outputs.",
    )


def oracle_model(data_dir: str | Path | None = None) -> ScriptedModel:
    """Replays the gold actions of the task whose conversation it is in (found by the
    customer's opening message, over all splits), one call per step, then states the
    task's outputs. Also the model string ``tau-retail:oracle``."""
    data = load_data(data_dir)
    by_opening: dict[str, dict[str, Any]] = {}
    for task in data.tasks("all"):
        by_opening[Customer(task["instruction"]).opening()] = task
        by_opening[task["instruction"]] = task  # the LLM customer's opening

    def reply(request: ModelRequest) -> Reply:
        opening = next((m.content for m in request.messages if m.role == "user"), "")
        task = by_opening.get(opening)
        if task is None:
            return "I have no gold actions for this conversation."
        step = sum(1 for m in request.messages if m.role == "assistant")
        actions = [a for a in task["actions"] if a["name"] != "respond"]
        if step < len(actions):
            action = actions[step]
            return ToolCall(f"gold_{step}", action["name"], dict(action["kwargs"]))
        return "Done. " + " ".join(task["outputs"])

    return ScriptedModel(reply, name="tau-retail:oracle", record=False)


def null_model() -> ScriptedModel:
    """Answers at once, calls no tool, changes nothing."""
    return ScriptedModel(
        lambda request: "Sorry, I cannot help with that.", name="tau-retail:null", record=False
    )


register_reference_models("tau-retail", oracle_model, null_model)
