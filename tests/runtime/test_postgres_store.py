"""The PostgreSQL journal store against a real server: the same behaviour as SQLite's."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any

import psycopg
import pytest

from pilothouse import Agent, ScriptedModel, tool
from pilothouse.events import ModelResponded
from pilothouse.exceptions import RunNotFoundError, StoreError, WriteConflictError
from pilothouse.messages import ToolCall
from pilothouse.models.base import ModelRequest, ModelResponse
from pilothouse.policy import Policy
from pilothouse.runtime.journal import MemoryStore, RunInfo, open_store
from pilothouse.runtime.postgres import PostgresStore
from pilothouse.tools import ToolContext


@tool
def lookup(key: str) -> str:
    """Look up."""
    return key.upper()


def run_once(store: Any) -> tuple[Agent[None, str], str]:
    calls = [ToolCall("c1", "lookup", {"key": "a"}), ToolCall("c2", "lookup", {"key": "b"})]
    a = Agent(ScriptedModel([calls, "AB"]), tools=[lookup], store=store)
    return a, a.run_sync("both").run_id


def sql(dsn: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as db:
        cur = db.execute(query, params)
        return cur.fetchall() if cur.description else []


def test_round_trip_equals_memory_and_index_row(fresh_postgres_dsn: str) -> None:
    mem_agent, mem_id = run_once(MemoryStore())
    store = PostgresStore(fresh_postgres_dsn)
    pg_agent, pg_id = run_once(store)
    strip = {"run_id", "ts", "duration", "idempotency_key"}

    def shape(events: list[Any]) -> list[dict[str, Any]]:
        return [{k: v for k, v in e.to_dict().items() if k not in strip} for e in events]

    assert shape(pg_agent.store.events(pg_id)) == shape(mem_agent.store.events(mem_id))
    info = store.get_run(pg_id)
    assert (info.status, info.steps, info.output, info.input) == ("final", 2, "AB", "both")
    # A second process (a fresh connection) reads the same journal.
    other = PostgresStore(fresh_postgres_dsn)
    assert [e.to_dict() for e in other.events(pg_id)] == [e.to_dict() for e in store.events(pg_id)]
    assert [r.run_id for r in other.list_runs()] == [pg_id]
    other.close()


def test_list_runs_newest_first_with_limit(fresh_postgres_dsn: str) -> None:
    store = PostgresStore(fresh_postgres_dsn)
    ids = [run_once(store)[1] for _ in range(3)]
    assert [r.run_id for r in store.list_runs()] == ids[::-1]
    assert [r.run_id for r in store.list_runs(limit=2)] == ids[:0:-1]


def test_open_store_dispatches_urls_and_env(
    postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(postgres_dsn)
    assert isinstance(store, PostgresStore)
    assert open_store(postgres_dsn) is store  # opened once per process
    short = postgres_dsn.replace("postgresql://", "postgres://")
    assert isinstance(open_store(short), PostgresStore)
    monkeypatch.setenv("PILOTHOUSE_STORE", postgres_dsn)
    assert open_store(None) is store
    agent, run_id = run_once(None)
    assert agent.store is store and store.get_run(run_id).status == "final"


def test_unknown_run_is_a_clear_error(postgres_dsn: str) -> None:
    store = open_store(postgres_dsn)
    for read in (store.events, store.get_run):
        with pytest.raises(RunNotFoundError, match="no run 'nope' in postgresql://postgres@"):
            read("nope")
    with pytest.raises(RunNotFoundError, match="nope"):
        store.claim("nope", "w", 10)
    with pytest.raises(RunNotFoundError, match="no run 'nope'"):
        run_once(store)[0].resume_sync("nope")


def test_unreachable_server_and_bad_url_are_store_errors(postgres_dsn: str) -> None:
    closed = postgres_dsn.rsplit(":", 1)[0] + ":1/db"  # nothing listens on port 1
    with pytest.raises(StoreError, match="cannot connect to the PostgreSQL journal store"):
        PostgresStore(closed.replace("postgres@", "postgres:s3cret@"))
    try:
        PostgresStore(closed.replace("postgres@", "postgres:s3cret@"))
    except StoreError as exc:
        assert "s3cret" not in str(exc)  # the password never reaches a log
    with pytest.raises(StoreError, match='database "missing" does not exist'):
        PostgresStore(postgres_dsn.rsplit("/", 1)[0] + "/missing")


def test_missing_extra_is_a_clear_error(postgres_dsn: str) -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from pilothouse.runtime.journal import open_store\n"
        "from pilothouse.exceptions import StoreError\n"
        f"try: open_store({postgres_dsn!r})\n"
        "except StoreError as e: print(e)\n"
        "import pilothouse, sys; assert 'psycopg' not in [m for m in sys.modules if sys.modules[m]]"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'pilothouse[postgres]'" in out.stdout


def test_import_pilothouse_does_not_load_psycopg() -> None:
    code = "import pilothouse, sys; from pilothouse import Agent; print('psycopg' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_events_are_never_rewritten(fresh_postgres_dsn: str) -> None:
    store = PostgresStore(fresh_postgres_dsn)
    _, run_id = run_once(store)
    first = store.events(run_id)
    info = store.get_run(run_id)
    changed = dataclasses.replace(first[0], ts=first[0].ts + 1)  # another writer's event 0
    with pytest.raises(WriteConflictError, match=f"cannot write run {run_id!r}.*duplicate key"):
        store.write([changed], RunInfo(run_id, "x", "y", "z", "running", 0.0))
    # The failed write was one transaction: the index row was not changed either.
    assert store.get_run(run_id) == info
    assert [e.to_dict() for e in store.events(run_id)] == [e.to_dict() for e in first]
    # The store stays usable after a failed transaction.
    assert run_once(store)[1] != run_id


def test_corrupted_event_names_run_and_event(fresh_postgres_dsn: str) -> None:
    store = PostgresStore(fresh_postgres_dsn)
    _, run_id = run_once(store)
    sql(fresh_postgres_dsn, "UPDATE events SET data='{not json' WHERE run_id=%s AND seq=3", run_id)
    with pytest.raises(StoreError, match=rf"run '{run_id}': event 3 \(tool_call\).*corrupted"):
        store.events(run_id)
    with pytest.raises(StoreError, match=rf"run '{run_id}'"):
        run_once(store)[0].resume_sync(run_id)
    assert sql(fresh_postgres_dsn, "SELECT count(*) FROM events WHERE run_id=%s", run_id) == [(11,)]


def test_truncated_journal_cannot_be_resumed(fresh_postgres_dsn: str) -> None:
    store = PostgresStore(fresh_postgres_dsn)
    agent, run_id = run_once(store)
    sql(fresh_postgres_dsn, "UPDATE runs SET status='running' WHERE run_id=%s", run_id)
    sql(fresh_postgres_dsn, "DELETE FROM events WHERE run_id=%s AND seq IN (0, 8, 9, 10)", run_id)
    with pytest.raises(StoreError, match=rf"run '{run_id}'.*truncated or corrupted"):
        agent.resume_sync(run_id)
    assert len(store.events(run_id)) == 7  # nothing added, nothing rewritten


def test_any_text_and_arguments_survive(fresh_postgres_dsn: str) -> None:
    store = PostgresStore(fresh_postgres_dsn)
    texts = ["", "nul \x00 inside", "émoji 🚢 ünïcode", "quote ' \" \\ ; DROP TABLE runs;"]
    for i, text in enumerate(texts):
        arguments: dict[str, Any] = {"k": text, "nested": [1, None, {"x": 2**53}], "f": 0.5}
        calls = ModelResponse(text=text, tool_calls=(ToolCall("c", "lookup", arguments),))
        event = ModelResponded(run_id=f"r{i}", step=1, response=calls)
        store.write([event], RunInfo(f"r{i}", "a", "m", text, created=float(i)))
        (loaded,) = store.events(f"r{i}")
        assert isinstance(loaded, ModelResponded) and loaded.response == calls
        assert store.get_run(f"r{i}").input == text


def test_agent_run_and_resume_with_a_side_effect(fresh_postgres_dsn: str) -> None:
    """A run dies mid-way; another process's agent resumes it from PostgreSQL."""
    ledger: list[str] = []

    class Died(BaseException):
        pass

    @tool(effect="side_effect")
    def pay(amount: int, ctx: ToolContext) -> str:
        """Pay."""
        ledger.append(ctx.idempotency_key)
        return f"paid {amount}"

    replies: list[Any] = [
        ToolCall("p1", "pay", {"amount": 5}),
        ToolCall("p2", "pay", {"amount": 7}),
    ]
    replies.append("paid twice")

    def model(die: bool) -> ScriptedModel:
        def reply(request: ModelRequest) -> Any:
            turn = sum(1 for m in request.messages if m.role == "assistant")
            if die and turn == 1:
                raise Died
            return replies[turn]

        return ScriptedModel(reply)

    def agent(die: bool, store: Any) -> Agent[None, str]:
        return Agent(model(die), tools=[pay], store=store, policy=Policy.allow_all())

    with pytest.raises(Died):
        agent(True, PostgresStore(fresh_postgres_dsn)).run_sync("pay", run_id="p")
    assert ledger == ["p:1:0"]
    store = PostgresStore(fresh_postgres_dsn)  # a new connection, as a new process has
    assert store.get_run("p").status == "interrupted"
    assert [e.type for e in store.events("p")][-1] == "model_request"
    result = agent(False, store).resume_sync("p")
    assert result.output == "paid twice" and result.steps == 3
    assert ledger == ["p:1:0", "p:2:0"]  # the first payment was not made again
    events = store.events("p")
    assert [e.seq for e in events] == list(range(len(events)))
    assert [e.type for e in events].count("run_started") == 1
    assert store.get_run("p").status == "final"


def test_schema_is_created_once_by_concurrent_openers(fresh_postgres_dsn: str) -> None:
    code = (
        "import sys; from pilothouse.runtime.postgres import PostgresStore; "
        "PostgresStore(sys.argv[1]).list_runs()"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, fresh_postgres_dsn], stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors


def test_a_large_write_is_still_one_transaction(fresh_postgres_dsn: str) -> None:
    """Past the one-statement size, a write is an explicit transaction: all or nothing."""
    store = PostgresStore(fresh_postgres_dsn)

    def events(start: int, count: int) -> list[ModelResponded]:
        out = []
        for seq in range(start, start + count):
            e = ModelResponded(run_id="big", step=seq, response=ModelResponse(text=str(seq)))
            e.seq, e.ts = seq, float(seq)
            out.append(e)
        return out

    store.write(events(0, 700), RunInfo("big", "a", "m", "in"))
    assert [e.seq for e in store.events("big")] == list(range(700))
    clash = dataclasses.replace(events(0, 1)[0], ts=-1.0)  # another writer's event 0
    with pytest.raises(WriteConflictError, match=r"events 0\.\.1299 clash"):
        store.write([*events(700, 600), clash], RunInfo("big", "a", "m", "in", "final"))
    assert len(store.events("big")) == 700 and store.get_run("big").status == "running"


def test_dropped_connection_fails_one_call_then_reconnects(fresh_postgres_dsn: str) -> None:
    store = PostgresStore(fresh_postgres_dsn)
    _, run_id = run_once(store)
    sql(
        fresh_postgres_dsn,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name='pilothouse' AND datname=current_database()",
    )
    with pytest.raises(StoreError, match=f"cannot read run {run_id!r} in postgresql://"):
        store.get_run(run_id)
    assert store.get_run(run_id).status == "final"  # a new connection


def batch(run_id: str, seqs: range) -> list[ModelResponded]:
    out = []
    for seq in seqs:
        e = ModelResponded(run_id=run_id, step=seq, response=ModelResponse(text=str(seq)))
        e.seq, e.ts = seq, 1000.0 + seq
        out.append(e)
    return out


def test_a_write_after_the_server_ended_the_session_fails_once_then_the_same_batch_goes_in(
    fresh_postgres_dsn: str,
) -> None:
    store = PostgresStore(fresh_postgres_dsn)
    store.write(batch("r", range(2)), RunInfo("r", "a", "m", "in"))
    sql(
        fresh_postgres_dsn,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name='pilothouse' AND datname=current_database()",
    )
    later = batch("r", range(2, 5))
    lost = r"cannot write run 'r'.*connection to the server was lost"
    with pytest.raises(StoreError, match=lost):
        store.write(later, RunInfo("r", "a", "m", "in", "final"))
    store.write(later, RunInfo("r", "a", "m", "in", "final"))  # a new connection
    assert [e.seq for e in store.events("r")] == [0, 1, 2, 3, 4]
    assert store.get_run("r").status == "final"


def test_a_restarted_server_costs_one_failed_call() -> None:
    from pgserver import PostgresUnavailable, start_postgres

    try:
        server = start_postgres("restart")
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL tests skipped: {exc}")
    try:
        store = PostgresStore(server.dsn)
        store.write(batch("r", range(1)), RunInfo("r", "a", "m", "in"))
        log = str(server.root / "server.log")  # not our pipe: run() would wait on the server
        server.run("pg_ctl", "-D", str(server.data), "-l", log, "restart", "-m", "fast", "-w")
        with pytest.raises(StoreError, match=r"cannot write run 'r' in postgresql://postgres@"):
            store.write(batch("r", range(1, 3)))
        store.write(batch("r", range(1, 3)))
        assert [e.seq for e in store.events("r")] == [0, 1, 2]
        store.close()
    finally:
        server.stop()


def test_events_without_their_index_row_are_damage(fresh_postgres_dsn: str) -> None:
    store = PostgresStore(fresh_postgres_dsn)
    sql(fresh_postgres_dsn, "ALTER TABLE events DROP CONSTRAINT events_run_id_fkey")
    store.write(batch("orphan", range(2)))
    for read in (store.get_run, store.events, store.lease):
        with pytest.raises(StoreError, match=r"'orphan' has events .* index is damaged") as caught:
            read("orphan")
        assert not isinstance(caught.value, RunNotFoundError)


def test_passwords_never_reach_an_error_message(postgres_dsn: str) -> None:
    secret = postgres_dsn.replace("postgres@", "postgres:s3cret@")
    for url in (secret.rsplit("/", 1)[0] + "/missing", secret + "?bogus=1"):
        with pytest.raises(StoreError) as caught:
            PostgresStore(url)
        assert "s3cret" not in str(caught.value)
    store = PostgresStore(secret)  # trust authentication: any password is accepted
    with pytest.raises(StoreError) as caught:
        store.get_run("x" * 10 + "\x00")  # NUL cannot be sent: an error from psycopg
    assert "s3cret" not in str(caught.value)
