"""A person settles an in-doubt side effect: the run goes on, and the call never runs twice.

A side-effecting call cut off before its result was recorded (a crash, a kill) is in
doubt; a tool that says ``on_doubt="ask"`` (the default) stops the resumed run
``in_doubt``. Whoever checks the world (the payee's records, the ledger) resumes it with
``settle={key: result text | True | False}``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from example_runs import run_example
from pilothouse import Agent, ScriptedModel, SQLiteStore, tool
from pilothouse.exceptions import ApprovalError, RunFinishedError, ToolCallInDoubtError
from pilothouse.messages import ToolCall
from pilothouse.models.base import ModelRequest
from pilothouse.policy import Policy, Rule
from pilothouse.runtime.journal import MemoryStore
from pilothouse.testing import replay
from pilothouse.tools import Tool, ToolContext
from turns import Crash, by_turn

if TYPE_CHECKING:
    from conftest import CLI


def payment(ledger: dict[str, int], calls: list[str]) -> Tool:
    """Pays, then dies before its result is recorded, the first time only."""

    @tool(effect="side_effect")
    def pay(amount: int, ctx: ToolContext) -> str:
        """Pay the amount."""
        calls.append(ctx.idempotency_key)
        ledger[ctx.idempotency_key] = amount
        if len(calls) == 1:
            raise Crash
        return f"paid {amount}"

    return pay


PAY_ONCE = [ToolCall("p1", "pay", {"amount": 5}), "done"]


def in_doubt_run(
    replies: list[Any], policy: Policy | None = None
) -> tuple[Callable[..., Agent[None, str]], dict[str, int], list[str], MemoryStore]:
    """A run whose first payment happened but was never recorded, stopped ``in_doubt``."""
    ledger: dict[str, int] = {}
    calls: list[str] = []
    store = MemoryStore()
    rules = policy or Policy.allow_all()

    def agent(model: ScriptedModel | None = None) -> Agent[None, str]:
        model = model or by_turn(replies)
        return Agent(model, tools=[payment(ledger, calls)], store=store, policy=rules)

    with pytest.raises(Crash):
        agent().run_sync("pay 5", run_id="r1")
    with pytest.raises(ToolCallInDoubtError) as err:
        agent().resume_sync("r1")
    assert err.value.idempotency_key == "r1:1:0"
    assert "settle=" in str(err.value) and "--happened" in str(err.value)
    assert store.get_run("r1").status == "in_doubt"
    return agent, ledger, calls, store


def tool_messages(model: ScriptedModel) -> list[str]:
    return [m.content for m in model.requests[-1].messages if m.role == "tool"]


def test_a_settled_call_gives_the_model_the_result_found_and_never_runs_again() -> None:
    agent, ledger, calls, store = in_doubt_run(PAY_ONCE)
    resumed = agent()
    done = resumed.resume_sync("r1", settle={"r1:1:0": "paid 5 (bank ref 881)"}, approved_by="dana")
    assert done.output == "done"
    assert calls == ["r1:1:0"] and ledger == {"r1:1:0": 5}  # the effect happened once
    assert tool_messages(resumed.model) == ["paid 5 (bank ref 881)"]  # type: ignore[arg-type]
    events = store.events("r1")
    types = [e.type for e in events]
    settled = types.index("doubt_settled")
    assert types[settled + 1] == "tool_result"
    record = events[settled].to_dict()
    assert (record["key"], record["happened"], record["by"]) == ("r1:1:0", True, "dana")
    assert record["result"] == "paid 5 (bank ref 881)"
    assert store.get_run("r1").status == "final"


@pytest.mark.parametrize(
    ("value", "reads", "is_error"),
    [
        (True, "a person confirmed it took effect", False),
        (False, "a person confirmed it did not take effect: it may be called again", True),
    ],
)
def test_a_person_s_word_without_a_result_is_what_the_model_reads(
    value: bool, reads: str, is_error: bool
) -> None:
    agent, _, calls, store = in_doubt_run(PAY_ONCE)
    resumed = agent()
    assert resumed.resume_sync("r1", settle={"r1:1:0": value}).output == "done"
    assert reads in tool_messages(resumed.model)[0]  # type: ignore[arg-type]
    result = next(e for e in store.events("r1") if e.type == "tool_result")
    assert result.result.is_error is is_error  # type: ignore[attr-defined]
    assert calls == ["r1:1:0"]


def test_a_call_that_did_not_happen_may_be_made_again_as_a_new_call() -> None:
    replies = [ToolCall("p1", "pay", {"amount": 5}), ToolCall("p2", "pay", {"amount": 5}), "done"]
    agent, ledger, calls, _ = in_doubt_run(replies)
    ledger.clear()  # the person looked: no payment went out
    assert agent().resume_sync("r1", settle={"r1:1:0": False}).output == "done"
    assert calls == ["r1:1:0", "r1:2:0"]  # the new call has its own key, and ran once
    assert ledger == {"r1:2:0": 5}


def test_a_stateful_policy_counts_a_settled_payment() -> None:
    replies = [ToolCall("p1", "pay", {"amount": 5}), ToolCall("p2", "pay", {"amount": 5}), "done"]
    once = Policy([Rule("pay", "allow", when={"max_calls": 1})])
    agent, ledger, calls, store = in_doubt_run(replies, once)
    resumed = agent()
    assert resumed.resume_sync("r1", settle={"r1:1:0": "paid 5"}).output == "done"
    assert calls == ["r1:1:0"] and ledger == {"r1:1:0": 5}  # the second payment was refused
    second = [e for e in store.events("r1") if e.type == "tool_call"][-1]
    assert not second.decision.allowed  # type: ignore[attr-defined]


def test_a_crash_after_the_settlement_does_not_ask_again() -> None:
    agent, _, calls, store = in_doubt_run(PAY_ONCE)

    def dies(request: ModelRequest) -> Any:
        raise Crash

    with pytest.raises(Crash):
        agent(ScriptedModel(dies)).resume_sync("r1", settle={"r1:1:0": "paid 5"})
    assert [e.type for e in store.events("r1")].count("doubt_settled") == 1
    assert agent().resume_sync("r1").output == "done"  # no settle needed any more
    assert calls == ["r1:1:0"]
    with pytest.raises(RunFinishedError):
        agent().resume_sync("r1", settle={"r1:1:0": "paid 5"})


def test_a_settled_run_replays_as_a_test() -> None:
    agent, _, _, store = in_doubt_run(PAY_ONCE)
    agent().resume_sync("r1", settle={"r1:1:0": "paid 5"})
    report = replay(agent(), store.events("r1"))
    assert report.ok, report.divergences


@pytest.mark.parametrize(
    ("settle", "message"),
    [
        ({"r1:9:9": True}, "no call 'r1:9:9' is in doubt; in doubt: r1:1:0"),
        ({"r1:1:0": 5}, "not 5"),
        ({"r1:1:0": None}, "not None"),
    ],
)
def test_a_settlement_that_fits_no_doubt_is_refused_and_writes_nothing(
    settle: dict[str, Any], message: str
) -> None:
    agent, _, calls, store = in_doubt_run(PAY_ONCE)
    before = len(store.events("r1"))
    with pytest.raises(ApprovalError, match=message):
        agent().resume_sync("r1", settle=settle)
    assert len(store.events("r1")) == before and calls == ["r1:1:0"]
    assert store.get_run("r1").status == "in_doubt"
    assert store.lease("r1") is None  # the refused resume let go of the run


def test_a_run_not_in_doubt_cannot_be_settled() -> None:
    store, counts = MemoryStore(), []

    @tool
    def lookup(key: str) -> str:
        """Look up, dying the first time (read-only: simply run again on resume)."""
        counts.append(key)
        if len(counts) == 1:
            raise Crash
        return key.upper()

    def agent() -> Agent[None, str]:
        return Agent(
            by_turn([ToolCall("c1", "lookup", {"key": "a"}), "ok"]), tools=[lookup], store=store
        )

    with pytest.raises(Crash):
        agent().run_sync("go", run_id="r2")
    with pytest.raises(ApprovalError, match="has no call in doubt"):
        agent().resume_sync("r2", settle={"r2:1:0": "A"})
    assert agent().resume_sync("r2").output == "ok" and counts == ["a", "a"]


def test_cli_settles_an_in_doubt_run(
    cli: CLI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = tmp_path / "ledger.txt"
    monkeypatch.setenv("CLI_TOOLS_LEDGER", str(ledger))
    args = ["--model", "pay-script:", "--tools", "cli_tools:pay_tools"]
    args += ["--store", str(tmp_path / "cli.db")]
    first = cli("run", "pay invoice 7", *args)
    assert first.returncode == 3, first.stderr  # paused: paying needs a person's yes
    (run,) = SQLiteStore(tmp_path / "cli.db").list_runs()
    key = f"{run.run_id}:1:0"
    approved = cli("resume", run.run_id, *args, "--approve", key)
    assert approved.returncode == 9 and ledger.read_text() == "paid invoice 7\n"  # died in pay
    doubt = cli("resume", run.run_id, *args)
    assert doubt.returncode == 1 and "--happened" in doubt.stderr and key in doubt.stderr
    wrong = cli("resume", run.run_id, *args, "--happened", f"{run.run_id}:4:0")
    assert wrong.returncode == 1 and "is in doubt" in wrong.stderr
    done = cli("resume", run.run_id, *args, "--happened", f"{key}=paid, ref 881", "--by", "dana")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Paid."
    assert ledger.read_text() == "paid invoice 7\n"  # not paid twice
    shown = cli("trace", "show", run.run_id, "--store", str(tmp_path / "cli.db"), "--json")
    assert '"doubt_settled"' in shown.stdout and '"dana"' in shown.stdout
    told = cli("trace", "show", run.run_id, "--store", str(tmp_path / "cli.db"))
    assert f"settled by dana [{key}]: took effect: paid, ref 881" in told.stdout


def test_the_settle_example_pays_once(tmp_path: Path) -> None:
    result = run_example("settle_in_doubt.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "status: in_doubt" in out and "in doubt: pay_refund case-7:1:0" in out
    assert "answer: Your refund of 25.00 is paid (ref PX-881)." in out
    assert "payments at the provider: 1" in out
    assert "▶ settled by dana [case-7:1:0]: took effect: refund of 25.00" in out
