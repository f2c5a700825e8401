"""The fact stores' contract, on real SQLite and real PostgreSQL alike."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from pilothouse import Agent, ScriptedModel, call
from pilothouse.events import ToolReturned
from pilothouse.memory import FactStore, Memory, SQLiteFacts, open_facts
from pilothouse.policy import Policy, Principal

POLICY = """
version: 1
rules:
  - id: keep-facts
    tools: remember
    effect: allow
"""


@pytest.fixture(params=["sqlite", "postgres"])
def make_facts(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], FactStore]:
    if request.param == "sqlite":
        return lambda: SQLiteFacts(tmp_path / "journal.db")
    dsn = request.getfixturevalue("fresh_postgres_dsn")
    return lambda: open_facts(dsn)


def test_supersede_history_and_search(make_facts: Callable[[], FactStore]) -> None:
    f = make_facts()
    a = f.write("alice", "home_city", "Lyon", author="agent", run_id="r1", event="r1:1:0")
    b = f.write("alice", "home_city", "Berlin", author="agent", run_id="r2", event="r2:1:0")
    f.write("alice", "seat", "aisle seat on long flights", author="person", by="alice")
    f.write("bob", "home_city", "Lyon", author="agent")
    assert b.supersedes == a.fact_id
    got = f.get("alice", "home_city")
    assert got is not None and got.value == "Berlin"
    assert [x.value for x in f.history("alice", "home_city")] == ["Berlin", "Lyon"]
    assert [x.value for x in f.search("alice", "home city")] == ["Berlin"]
    assert [x.key for x in f.search("alice", "seat on flights")] == ["seat"]
    assert f.search("alice", "Lyon") == []  # superseded, and bob's is bob's
    assert f.write("alice", "home_city", "Berlin", author="agent", run_id="r2", event="r2:1:0") == b
    for hostile in ["principal:bob", "a & !b | c:*", "'", "NEAR(x y)", "\\"]:
        f.search("alice", hostile)
    f.close()


def test_concurrent_writes_of_one_key_leave_one_current_fact(
    make_facts: Callable[[], FactStore],
) -> None:
    stores = [make_facts() for _ in range(4)]
    barrier = threading.Barrier(len(stores))

    def write(i: int) -> None:
        barrier.wait()
        for n in range(10):
            stores[i].write("alice", "k", f"{i}-{n}", author="agent")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    history = stores[0].history("alice", "k")
    assert len(history) == 40
    assert sum(1 for x in history if x.current) == 1
    # every fact but the first supersedes exactly one other: a chain, no fork
    superseded = [x.supersedes for x in history if x.supersedes is not None]
    assert len(superseded) == 39 and len(set(superseded)) == 39
    for s in stores:
        s.close()


def test_isolation_through_the_agent_on_postgres(fresh_postgres_dsn: str) -> None:
    from pilothouse.runtime.postgres import PostgresStore

    store = PostgresStore(fresh_postgres_dsn)
    memory = Memory(store)
    writer = ScriptedModel([[call("remember", key="door_code", value="4711")], "ok"])
    Agent(writer, tools=memory.tools(), store=store, policy=Policy.from_yaml(POLICY)).run_sync(
        "keep my door code 4711", principal=Principal("alice")
    )
    reader = ScriptedModel(
        [[call("recall", key="door_code"), call("recall", query="door code 4711")], "none"]
    )
    result = Agent(
        reader, tools=memory.tools(), store=store, policy=Policy.from_yaml(POLICY)
    ).run_sync("what is alice's door code?", principal=Principal("mallory"))
    outs = [e.result.content for e in store.events(result.run_id) if isinstance(e, ToolReturned)]
    assert [json.loads(o) for o in outs] == [{"recalled": [], "from_people": []}] * 2
    fact = memory.facts.get("alice", "door_code")
    assert fact is not None and fact.value == "4711" and fact.event is not None
    memory.close()
