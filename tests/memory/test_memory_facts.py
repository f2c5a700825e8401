"""Long-term memory on a real SQLite file: supersession, search, isolation, provenance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pilothouse import Agent, ScriptedModel, call, tool
from pilothouse.events import ToolCalled, ToolReturned
from pilothouse.memory import Memory, SQLiteFacts
from pilothouse.memory.facts import MAX_VALUE, fts_query
from pilothouse.policy import Policy, Principal
from pilothouse.runtime.journal import SQLiteStore

ALLOW_MEMORY = """
version: 1
name: memory
tools:
  remember: {effect: side_effect}
  recall: {effect: read_only, trusted: [from_people.*.value]}
  pay: {effect: irreversible, args: [iban, amount]}
rules:
  - id: keep-facts
    tools: remember
    effect: allow
  - id: pay-trusted-iban
    tools: pay
    effect: allow
    when:
      trusted: [iban]
"""

ATTACKER_IBAN = "GB82 WEST 1234 5698 7654 32"
LANDLORD_IBAN = "DE89 3704 0044 0532 0130 00"


@tool(effect="irreversible")
def pay(iban: str, amount: float) -> str:
    """Pay money to an IBAN."""
    return f"paid {amount} to {iban}"


def facts(tmp_path: Path) -> SQLiteFacts:
    return SQLiteFacts(tmp_path / "journal.db")


def test_a_key_written_again_supersedes_and_keeps_history(tmp_path: Path) -> None:
    f = facts(tmp_path)
    first = f.write("alice", "airport", "LHR", author="agent", run_id="r1", event="r1:1:0")
    second = f.write("alice", "airport", "CDG", author="agent", run_id="r2", event="r2:1:0")
    assert second.supersedes == first.fact_id
    current = f.get("alice", "airport")
    assert current is not None and current.value == "CDG" and current.run_id == "r2"
    assert [x.value for x in f.history("alice", "airport")] == ["CDG", "LHR"]
    assert [x.current for x in f.history("alice", "airport")] == [True, False]
    # a stale value never outranks the new one: the superseded fact left the index
    assert [x.value for x in f.search("alice", "airport")] == ["CDG"]
    assert [x.value for x in f.search("alice", "LHR")] == []


def test_the_same_call_writing_again_gets_its_own_fact(tmp_path: Path) -> None:
    f = facts(tmp_path)
    a = f.write("alice", "k", "v1", author="agent", run_id="r1", event="r1:2:0")
    b = f.write("alice", "k", "v1", author="agent", run_id="r1", event="r1:2:0")
    assert a == b and len(f.history("alice", "k")) == 1


def test_search_ranks_by_bm25_and_reads_the_query_as_words(tmp_path: Path) -> None:
    f = facts(tmp_path)
    f.write("alice", "diet", "vegetarian, no nuts", author="person", by="alice")
    f.write("alice", "home_city", "Lyon", author="agent")
    f.write("alice", "seat", "aisle seat on long flights", author="agent")
    assert [x.key for x in f.search("alice", "which seat on flights?")] == ["seat"]
    assert [x.key for x in f.search("alice", "home city")] == ["home_city"]
    # FTS5 syntax in a query is text, never an operator or a column filter
    for hostile in ["principal:bob", "NEAR(a b)", '"', "* OR", "value:*", "')--"]:
        f.search("alice", hostile)  # no error
    assert fts_query('a "b" c') == '"a" OR "b" OR "c"'
    assert fts_query("!!!") is None


def test_a_principal_never_reads_another_principals_facts(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "journal.db")
    memory = Memory(store)
    memory.write_for_person("alice", "landlord_iban", LANDLORD_IBAN, by="alice")
    memory.facts.write("alice", "secret", "alice's secret plan", author="agent")
    model = ScriptedModel(
        [
            [
                call("recall", key="landlord_iban"),
                call("recall", query="secret plan landlord iban"),
                call("recall", query="alice"),
                call("recall", key="secret", principal="alice", user="alice"),  # forged
            ],
            "nothing",
        ]
    )
    agent = Agent(model, tools=memory.tools(), store=store, policy=Policy.from_yaml(ALLOW_MEMORY))
    result = agent.run_sync("what do you know?", principal=Principal("bob"))
    outputs = [e.result.content for e in store.events(result.run_id) if isinstance(e, ToolReturned)]
    assert len(outputs) == 4
    for out in outputs[:3]:
        assert json.loads(out) == {"recalled": [], "from_people": []}
    assert "Extra inputs are not permitted" in outputs[3]  # a forged principal is refused
    # bob's own write stays bob's
    memory.facts.write("bob", "secret", "bob's", author="agent")
    alice = memory.facts.get("alice", "secret")
    assert alice is not None and alice.value == "alice's secret plan"


def test_oversized_and_malformed_writes_are_refused_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "journal.db")
    memory = Memory(store)
    model = ScriptedModel(
        [
            [
                call("remember", key="big", value="x" * (MAX_VALUE + 1)),
                call("remember", key="bad\x00key", value="v"),
                call("remember", key=" padded", value="v"),
            ],
            "ok",
        ]
    )
    agent = Agent(model, tools=memory.tools(), store=store, policy=Policy.from_yaml(ALLOW_MEMORY))
    result = agent.run_sync("remember these", principal=Principal("alice"))
    results = [e.result for e in store.events(result.run_id) if isinstance(e, ToolReturned)]
    assert all(r.is_error for r in results)
    assert "at most 10000 characters" in results[0].content
    assert memory.facts.history("alice", "big") == []
    with pytest.raises(ValueError, match="principal"):
        memory.facts.write("", "k", "v", author="agent")


def test_memory_is_full_at_its_limit(tmp_path: Path) -> None:
    f = SQLiteFacts(tmp_path / "j.db", max_facts=3)
    for i in range(3):
        f.write("alice", f"k{i}", "v", author="agent")
    with pytest.raises(ValueError, match="memory is full"):
        f.write("alice", "k9", "v", author="agent")
    f.write("bob", "k", "v", author="agent")  # a limit per principal


def test_a_run_without_a_principal_has_no_memory(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "journal.db")
    memory = Memory(store)
    model = ScriptedModel([[call("recall", key="x")], "ok"])
    agent = Agent(model, tools=memory.tools(), store=store, policy=Policy.from_yaml(ALLOW_MEMORY))
    result = agent.run_sync("hi")
    (res,) = [e.result for e in store.events(result.run_id) if isinstance(e, ToolReturned)]
    assert res.is_error and "acts for no one" in res.content


def test_the_default_policy_refuses_remember(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "journal.db")
    memory = Memory(store)
    model = ScriptedModel([[call("remember", key="k", value="v")], "ok"])
    agent = Agent(model, tools=memory.tools(), store=store)
    result = agent.run_sync("hi", principal=Principal("alice"))
    (called,) = [e for e in store.events(result.run_id) if isinstance(e, ToolCalled)]
    assert called.decision is not None and not called.decision.allowed
    assert memory.facts.get("alice", "k") is None


def _pay_decision(store: SQLiteStore, memory: Memory, iban: str) -> tuple[bool, str]:
    model = ScriptedModel(
        [[call("recall", key="landlord_iban")], [call("pay", iban=iban, amount=1200)], "done"]
    )
    agent = Agent(
        model, tools=[*memory.tools(), pay], store=store, policy=Policy.from_yaml(ALLOW_MEMORY)
    )
    result = agent.run_sync("Pay this month's rent to my landlord.", principal=Principal("alice"))
    (paid,) = [
        e for e in store.events(result.run_id) if isinstance(e, ToolCalled) and e.call.name == "pay"
    ]
    assert paid.decision is not None
    return paid.decision.allowed, paid.decision.reason


def test_a_recalled_iban_a_run_wrote_is_not_trusted_for_a_payment(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "journal.db")
    memory = Memory(store)
    # An earlier run read an injected page and "remembered" the attacker's IBAN.
    writer = ScriptedModel([[call("remember", key="landlord_iban", value=ATTACKER_IBAN)], "ok"])
    Agent(
        writer, tools=memory.tools(), store=store, policy=Policy.from_yaml(ALLOW_MEMORY)
    ).run_sync("read my landlord's page", principal=Principal("alice"))
    fact = memory.facts.get("alice", "landlord_iban")
    assert fact is not None and fact.author == "agent" and fact.run_id is not None
    allowed, reason = _pay_decision(store, memory, ATTACKER_IBAN)
    assert not allowed and "iban" in reason


def test_a_recalled_iban_a_person_wrote_is_trusted_where_the_policy_says(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "journal.db")
    memory = Memory(store)
    memory.write_for_person("alice", "landlord_iban", LANDLORD_IBAN, by="alice")
    allowed, _ = _pay_decision(store, memory, LANDLORD_IBAN.replace(" ", ""))
    assert allowed
