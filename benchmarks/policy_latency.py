"""Policy check latency: p50 and p99 of `Policy.check` with 50 rules.

Run: `.venv/bin/python benchmarks/policy_latency.py [--quick]`.

Workload: a policy of 50 rules over 20 tools (exact names and globs; argument
conditions from the JSON-schema subset, `after` and `not_after` order conditions,
`max_calls`, confirmation, provenance, principal), checked against a mix of
allowed and denied calls with a run history of 20 executed calls. Each check is
timed on its own (perf_counter_ns); the first check of each tool name (which
fills the per-name rule cache) is excluded as warm-up. Also printed: the
read-only-tool-without-rules fast path, an `aggregate` over a SQLite journal of 10,000
earlier calls (`--journal-only`: that one alone), and the tau-retail policy (13 rules,
predicates over the shop) on its gold sequences when the data is present.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pilothouse.messages import ToolCall
from pilothouse.policy import Policy, Principal, Rule, RunContext

TOOLS = [f"tool_{i}" for i in range(20)]


def fifty_rules() -> Policy:
    rules: list[Rule] = []
    for i, name in enumerate(TOOLS):
        rules.append(
            Rule(
                name,
                "allow",
                id=f"allow-{i}",
                priority=i % 3,
                when={
                    "args": {
                        "amount": {"minimum": 0, "maximum": 1000},
                        "currency": {"enum": ["EUR", "USD", "GBP"]},
                        "ref": {"pattern": r"^[A-Z]{2}\d{4}$"},
                    },
                    "after": [{"tool": "lookup", "args": {"ref": "$args.ref"}}],
                    **({"confirmed": True} if i % 2 else {}),
                },
            )
        )
        rules.append(
            Rule(
                name,
                "deny",
                id=f"deny-{i}",
                priority=i % 3,
                when={"args": {"amount": {"minimum": 900}}, "not_after": ["freeze_*"]},
            )
        )
    for j in range(10):
        rules.append(
            Rule(
                f"tool_{j}*",
                "deny",
                id=f"glob-{j}",
                priority=5,
                when={
                    "principal": {"role": {"enum": ["suspended"]}},
                    "max_calls": {"max": 50},
                    "trusted": {"args": ["ref"], "allow_list": ["ZZ9999"]},
                },
            )
        )
    assert len(rules) == 50
    return Policy(rules, name="bench-50")


def context() -> RunContext:
    ctx = RunContext(Principal("u1", "customer"), ["please pay AB1234 and CD5678, yes"])
    for k in range(20):
        ref = f"AB{1000 + k}" if k % 2 else "AB1234"
        ctx.record("lookup", {"ref": ref}, f'{{"ref": "{ref}", "total": 12.5}}', effect="read_only")
    return ctx


def calls() -> list[ToolCall]:
    out = []
    for i, name in enumerate(TOOLS):
        for amount, ref in ((10, "AB1234"), (950, "AB1234"), (10, "QQ0000"), (-1, "bad")):
            out.append(ToolCall(f"c{i}", name, {"amount": amount, "currency": "EUR", "ref": ref}))
    return out


def provenance_work() -> tuple[Policy, list[tuple[ToolCall, RunContext, str]]]:
    """Provenance conditions (issue 14): whole values and entities, trusted result fields.

    A mail agent's run: a user message, 20 executed calls whose JSON results have
    trusted fields (sender, id) and untrusted bodies with addresses and links in them;
    checked: recipients (trusted / untrusted / echoed), a role-bound IBAN, and a body
    whose links must be trusted. The index of trusted values is kept on the context and
    brought up to date incrementally, as in a run.
    """
    import json

    from pilothouse.policy import ToolInfo

    policy = Policy(
        [
            Rule(
                "send_email",
                "allow",
                id="mail",
                when={
                    "trusted": ["to", "cc"],
                    "trusted_entities": {"args": ["body"], "kinds": ["email", "url"]},
                },
            ),
            Rule("pay", "allow", id="rent", when={"trusted": {"args": {"iban": "landlord"}}}),
        ],
        tools={"read_inbox": ToolInfo("read_only", trusted=["emails.*.sender", "emails.*.id"])},
        name="bench-provenance",
    )
    ctx = RunContext(
        Principal("u1"),
        ["Reply to Anna (anna@example.com) about https://intranet.example/doc, cc bob@example.com"],
    )
    ctx.bind("landlord", "DE89 3704 0044 0532 0130 00")
    for k in range(20):
        emails = [
            {
                "id": f"m-{k}-{j}",
                "sender": f"user{k}{j}@example.org",
                "body": f"see https://site{k}.test/{j} and write to x{j}@evil.test, order W{k}{j}0",
            }
            for j in range(3)
        ]
        ctx.record("read_inbox", {"folder": f"f{k}"}, json.dumps({"emails": emails}))
    body = "Thanks, the doc at https://intranet.example/doc is fine."
    calls = [
        ToolCall("c", "send_email", {"to": "anna@example.com", "cc": None, "body": body}),
        ToolCall("c", "send_email", {"to": "user42@example.org", "cc": None, "body": "ok"}),
        ToolCall("c", "send_email", {"to": "x1@evil.test", "cc": None, "body": "ok"}),
        ToolCall(
            "c",
            "send_email",
            {"to": "anna@example.com", "cc": "bob@example.com", "body": "see https://site3.test/1"},
        ),
        ToolCall("c", "pay", {"iban": "DE89370400440532013000"}),
        ToolCall("c", "pay", {"iban": "GB82WEST12345698765432"}),
    ]
    return policy, [(c, ctx, "irreversible") for c in calls]


def v3_work() -> tuple[Policy, list[tuple[ToolCall, RunContext, str]]]:
    """Round 3's conditions (issue 14): a verified claim compared with a lookup, an `age`
    from the context's clock, secrecy on an egress tool, and an aggregate over 200 calls
    an application ledger serves (plus the run's own), in a run of 20 structured results."""
    import json

    from pilothouse.policy import ToolInfo
    from pilothouse.policy.context import CallRecord
    from pilothouse.policy.document import Claim

    class Ledger:
        def __init__(self) -> None:
            self.records = [
                CallRecord("refund", {"order_id": f"A{k % 40}", "amount": 5.0}, "ok", ts=900.0 + k)
                for k in range(200)
            ]

        def calls(self, query: object) -> list[CallRecord]:
            return self.records

    orders = {f"A{k}": {"customer_id": "C1", "delivered": "1970-01-10"} for k in range(40)}
    orders["B1"] = {"customer_id": "C2", "delivered": "1970-01-10"}
    policy = Policy(
        [
            Rule(
                "refund",
                "allow",
                id="refund",
                when={
                    "lookup": {"order": {"args": {"order_id": "$args.order_id"}}},
                    "claims": {"customer_id": "$lookup.order.customer_id"},
                    "age": {"of": "$lookup.order.delivered", "max": "30d"},
                    "aggregate": {
                        "source": "ledger",
                        "over": "principal",
                        "field": "amount",
                        "per": "order_id",
                        "within": "1h",
                        "max": 60,
                    },
                },
            ),
            Rule("send_email", "allow", id="mail"),
        ],
        tools={
            "profile": ToolInfo("read_only", secret={"passport": "passport"}),
            "send_email": ToolInfo("side_effect", egress=True),
        },
        claims={"customer_id": Claim("verify", "customer_id")},
        lookups={"order": lambda ctx, order_id: orders.get(order_id)},
        aggregates={"ledger": Ledger()},
        name="bench-v3",
    )
    ctx = RunContext(Principal("u1"), ["refund A1 and mail the hotel"], clock=lambda: 1_000_000.0)
    ctx.record("verify", {"email": "a@x.test"}, json.dumps({"customer_id": "C1"}))
    ctx.record("profile", {}, json.dumps({"name": "Ann", "passport": "X1234567"}))
    for k in range(18):
        ctx.record("read", {"k": k}, json.dumps({"id": k, "body": f"text {k} " * 10}))
    calls = [
        ToolCall("c", "refund", {"order_id": "A1", "amount": 10.0}),
        ToolCall("c", "refund", {"order_id": "A2", "amount": 40.0}),
        ToolCall("c", "refund", {"order_id": "B1", "amount": 10.0}),
        ToolCall("c", "send_email", {"to": "h@x.test", "body": "Guest Ann, arriving Friday"}),
        ToolCall("c", "send_email", {"to": "h@x.test", "body": "passport X 123 4567"}),
    ]
    return policy, [(c, ctx, "irreversible") for c in calls]


def journal_aggregate_work(
    prior: int, runs: int, folder: Path
) -> tuple[Policy, list[tuple[ToolCall, RunContext, str]]]:
    """An `aggregate` over the journal (`JournalCalls` on SQLite) holding `prior` earlier
    refunds in `runs` finished runs (40 orders; the sum per order is checked), as the loop
    serves it: the refund of one order summed over every run of the deployment."""
    import asyncio

    from pilothouse import Agent, Budget, ScriptedModel, call, tool
    from pilothouse.runtime.journal import SQLiteStore
    from pilothouse.runtime.policy_source import JournalCalls

    @tool(effect="irreversible")
    def refund(order_id: str, amount: float) -> str:
        """Refund part of an order."""
        return "refunded"

    store = SQLiteStore(folder / "journal.db")
    per_run = prior // runs

    async def fill() -> None:
        for r in range(runs):
            step = [
                call("refund", order_id=f"A{(r * per_run + k) % 40}", amount=1.0)
                for k in range(per_run)
            ]
            agent = Agent(
                ScriptedModel([step, "done"]),
                tools=[refund],
                policy=Policy.allow_all(),
                store=store,
                budget=Budget(max_repeats=per_run + 1),
            )
            await agent.run("fill")

    asyncio.run(fill())
    policy = Policy(
        [
            Rule(
                "refund",
                "allow",
                when={
                    "aggregate": {
                        "source": "journal",
                        "over": "all",
                        "field": "amount",
                        "per": "order_id",
                        "max": 1_000_000,
                    }
                },
            )
        ]
    )
    ctx = RunContext(Principal("u"), ["refunds"], aggregates={"journal": JournalCalls(store)})
    ctx.run_id = "bench-checking-run"
    work = [
        (ToolCall("c", "refund", {"order_id": f"A{k}", "amount": 1.0}), ctx, "irreversible")
        for k in range(0, 40, 4)
    ]
    return policy, work


def journal_aggregate(quick: bool, rounds: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        prior = 1_000 if quick else 10_000
        agg, agg_work = journal_aggregate_work(prior, 100, Path(folder))
        p50, p99, effects = time_checks(agg, agg_work, max(5, rounds // 10))
        print(
            f"aggregate over the journal (SQLite, JournalCalls): {prior} prior calls in 100 "
            f"finished runs, sum per order over all runs, {sum(effects.values())} checks"
        )
        print(f"  check latency  p50 {p50:6.2f} µs   p99 {p99:6.2f} µs")


def percentiles(samples_ns: list[int]) -> tuple[float, float]:
    s = sorted(samples_ns)
    return s[len(s) // 2] / 1000, s[min(len(s) - 1, int(len(s) * 0.99))] / 1000


def time_checks(
    policy: Policy, work: list[tuple[ToolCall, RunContext, str]], rounds: int
) -> tuple[float, float, dict[str, int]]:
    for call, ctx, effect in work:  # warm-up: fills the per-name rule cache
        policy.check(call, ctx, effect=effect)
    samples: list[int] = []
    effects: dict[str, int] = {}
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for call, ctx, effect in work:
            t0 = clock()
            d = policy.check(call, ctx, effect=effect)
            samples.append(clock() - t0)
            effects[d.effect] = effects.get(d.effect, 0) + 1
    p50, p99 = percentiles(samples)
    return p50, p99, effects


def retail_work() -> list[tuple[ToolCall, RunContext, str]] | None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    try:
        import retail_policy as retail
    except ImportError:
        return None
    if not (retail.data_dir() / "tasks_test.json").exists():
        return None
    policy = retail.load_policy()
    work: list[tuple[ToolCall, RunContext, str]] = []
    for task in retail.load_tasks():
        ctx = RunContext()
        for step in retail.gold_script(task):
            if "user" in step:
                ctx.add_user_message(step["user"])
                continue
            call = ToolCall("c", step["tool"], step["arguments"])
            effect = policy.tools[step["tool"]].effect
            snapshot = RunContext(
                ctx.principal, list(ctx.user_messages), list(ctx.history), denied=list(ctx.denied)
            )
            work.append((call, snapshot, effect))
            if policy.check(call, ctx, effect=effect).allowed:
                ctx.record(
                    call.name,
                    call.arguments,
                    step["output"],
                    ok=not step["is_error"],
                    effect=effect,
                )
            elif effect != "read_only":
                ctx.record_denied(call.name, call.arguments, effect)
    globals()["_retail_policy"] = policy
    return work


def by_kind(policy: Policy, ctx: RunContext) -> None:
    """The 50-rule workload per kind of call: the best of 7 rounds of CPU time per check."""
    kinds = {
        (10, "AB1234"): "allowed by its allow rule",
        (950, "AB1234"): "refused by an applying deny rule",
        (10, "QQ0000"): "default deny, allow rule fails at `after`",
        (-1, "bad"): "default deny, allow rule fails at `args`",
    }
    groups: dict[tuple[int, str], list[ToolCall]] = {}
    for call in calls():
        groups.setdefault((call.arguments["amount"], call.arguments["ref"]), []).append(call)
    for key, group in groups.items():
        for call in group:
            policy.check(call, ctx, effect="irreversible")
        best = float("inf")
        for _ in range(7):
            t0 = time.process_time_ns()
            for _ in range(200):
                for call in group:
                    policy.check(call, ctx, effect="irreversible")
            best = min(best, (time.process_time_ns() - t0) / (200 * len(group)) / 1000)
        print(f"  {kinds[key]:<45} {best:6.2f} µs (CPU, best of 7)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--by-kind", action="store_true", help="50 rules: per kind of call")
    parser.add_argument(
        "--journal-only", action="store_true", help="only the aggregate over a journal"
    )
    args = parser.parse_args()
    rounds = 50 if args.quick else 500
    if args.journal_only:
        journal_aggregate(args.quick, rounds)
        return
    if args.by_kind:
        by_kind(fifty_rules(), context())
        return

    policy = fifty_rules()
    ctx = context()
    work: list[tuple[ToolCall, RunContext, str]] = [(c, ctx, "irreversible") for c in calls()]
    p50, p99, effects = time_checks(policy, work, rounds)
    n = sum(effects.values())
    print(f"50 rules, 20 tools, history of 20 calls, {n} checks ({effects})")
    print(f"  check latency  p50 {p50:6.2f} µs   p99 {p99:6.2f} µs   (target p99 <= 50 µs)")

    prov, prov_work = provenance_work()
    p50, p99, effects = time_checks(prov, prov_work, rounds * 10)
    print(
        f"provenance (trusted, trusted_entities, a role), history of 20 structured results, "
        f"{sum(effects.values())} checks ({effects})"
    )
    print(f"  check latency  p50 {p50:6.2f} µs   p99 {p99:6.2f} µs")

    v3, v3_checks = v3_work()
    p50, p99, effects = time_checks(v3, v3_checks, rounds * 10)
    print(
        f"round 3: claims + lookup, age, aggregate over a 200-call ledger, secrecy on an egress "
        f"tool, {sum(effects.values())} checks ({effects})"
    )
    print(f"  check latency  p50 {p50:6.2f} µs   p99 {p99:6.2f} µs")

    journal_aggregate(args.quick, rounds)

    fast = Policy()
    fast_work = [(ToolCall("c", "search", {"q": "x"}), RunContext(), "read_only")]
    p50, p99, _ = time_checks(fast, fast_work, rounds * 200)
    print(f"read-only tool, no rules (the hot path)  p50 {p50:.2f} µs   p99 {p99:.2f} µs")

    retail = retail_work()
    if retail is None:
        print("tau-retail data not found: skipped the retail policy figures")
        return
    p50, p99, effects = time_checks(globals()["_retail_policy"], retail, max(1, rounds // 50))
    print(
        f"tau-retail policy (13 rules, predicates over the shop), gold calls of 635 tasks, "
        f"{sum(effects.values())} checks"
    )
    print(f"  check latency  p50 {p50:6.2f} µs   p99 {p99:6.2f} µs")


if __name__ == "__main__":
    main()
