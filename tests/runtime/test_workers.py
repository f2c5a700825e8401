"""Leases and workers: several processes drain stopped runs, none resumed twice."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from stale_agent import TOOL_STEPS, Died, ledger_rows, ledger_setup, make_agent, make_stale_runs

from pilothouse import Agent
from pilothouse.events import ModelResponded
from pilothouse.exceptions import ConfigurationError, LeaseLostError, RunNotFoundError
from pilothouse.models.base import ModelRequest, ModelResponse
from pilothouse.models.scripted import ScriptedModel
from pilothouse.runtime import journal, postgres
from pilothouse.runtime.journal import MemoryStore, RunInfo, SQLiteStore, Store
from pilothouse.runtime.postgres import PostgresStore

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"


def open_kind(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "j.db")
    return PostgresStore(request.getfixturevalue("fresh_postgres_dsn"))


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return open_kind(request.param, request, tmp_path)


def add_run(
    store: Store, run_id: str, status: str = "running", *, agent: str = "a", at: float = 1.0
) -> None:
    store.write([], RunInfo(run_id, agent, "m", "in", status, created=at, updated=at))


class FakeClock:
    """The `time` module as the stores see it, with `time()` set by the test."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def test_claim_next_takes_oldest_free_resumable_run(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_run(store, "r2", at=2.0)
    add_run(store, "r1", at=1.0)
    for status in ("final", "paused", "in_doubt", "error"):
        add_run(store, f"r-{status}", status)
    add_run(store, "other", agent="b")
    assert store.claim_next("w1", 30, agent="a") == "r1"
    assert store.claim_next("w2", 30, agent="a") == "r2"
    assert store.claim_next("w3", 30, agent="a") is None  # the rest are not resumable
    assert store.claim_next("w3", 30, agent="a", statuses=("paused",)) == "r-paused"
    assert store.claim_next("w3", 30, statuses=()) is None
    # A held lease: others are refused, the holder renews, a stranger cannot release it.
    assert store.claim("r1", "w2", 30) is False
    assert store.claim("r1", "w1", 30) is True
    store.release("r1", "w2")
    assert store.claim("r1", "w3", 30) is False
    store.release("r1", "w1")
    assert store.claim_next("w3", 30, agent="a") == "r1"
    # A lease runs out by itself (on the stores' clock, which the test moves).
    clock = FakeClock()
    monkeypatch.setattr(journal, "time", clock)
    monkeypatch.setattr(postgres, "time", clock)
    assert store.claim_next("w4", 0.05) == "other"
    assert store.claim_next("w5", 30) is None
    clock.now += 0.1
    assert store.claim_next("w5", 30) == "other"
    with pytest.raises(RunNotFoundError, match="nope"):
        store.claim("nope", "w1", 30)


def test_claim_next_leaves_runs_that_are_still_writing(store: Store) -> None:
    now = time.time()
    add_run(store, "quiet", at=1.0)
    add_run(store, "busy", at=0.5)
    event = ModelResponded(run_id="busy", step=1, response=ModelResponse(text="x"))
    event.seq, event.ts = 0, now  # an event just now: its process is alive
    store.write([event])
    assert store.claim_next("w", 30, idle_for=60) == "quiet"
    assert store.claim_next("w", 30, idle_for=60) is None
    assert store.claim_next("w", 30, idle_for=0) == "busy"


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_concurrent_claims_never_overlap(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Threads with their own connections race for 60 runs: each is claimed once."""
    first = open_kind(kind, request, tmp_path)
    for i in range(60):
        add_run(first, f"r{i:02d}", at=float(i))
    stores = [first] + [
        SQLiteStore(tmp_path / "j.db") if kind == "sqlite" else PostgresStore(first.dsn)  # type: ignore[attr-defined]
        for _ in range(3)
    ]
    claimed: dict[str, list[str]] = {}

    def drain(worker: str, store: Store) -> None:
        mine = claimed.setdefault(worker, [])
        while (run_id := store.claim_next(worker, 30)) is not None:
            mine.append(run_id)

    threads = [threading.Thread(target=drain, args=(f"w{i}", s)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    every = [r for ids in claimed.values() for r in ids]
    assert sorted(every) == [f"r{i:02d}" for i in range(60)]  # all, none twice


def test_resume_stale_in_process(tmp_path: Path) -> None:
    ledger = str(tmp_path / "ledger.db")
    ledger_setup(ledger)
    store = MemoryStore()
    ids = make_stale_runs(store, ledger, 4)
    add_run(store, "waiting", "paused", agent="noter")
    # A run of an agent with the same name but another definition: it cannot resume.
    odd = make_agent(store, ledger, "setup", die_after=1)
    odd.instructions = "Be different."
    with pytest.raises(Died):
        odd.run_sync("x", run_id="odd")
    agent = make_agent(store, ledger, "w1")
    report = asyncio.run(agent.resume_stale(worker="w1", lease_seconds=30, idle_for=0, limit=2))
    assert report.run_ids == ids[:2]
    report = asyncio.run(agent.resume_stale(worker="w1", lease_seconds=30, idle_for=0))
    assert report.run_ids == ids[2:]
    assert list(report.failed) == ["odd"]
    assert isinstance(report.failed["odd"], ConfigurationError)
    assert store.claim("odd", "w2", 30) is False  # kept leased: no retry storm
    assert all(store.get_run(r).status == "final" for r in ids)
    assert store.get_run("waiting").status == "paused"  # waits for a person, untouched
    keys = Counter(key for key, _, _ in ledger_rows(ledger))
    assert len(keys) == 4 * TOOL_STEPS + 1 and set(keys.values()) == {1}


def test_worker_that_loses_its_lease_stops() -> None:
    """A worker stalled past its lease (here: a blocking call) finds the run taken and
    stops resuming it instead of racing the new holder."""
    store = MemoryStore()

    def dies(request: ModelRequest) -> Any:
        raise Died

    with pytest.raises(Died):
        Agent(ScriptedModel(dies), store=store).run_sync("go", run_id="s")
    model = ScriptedModel(["answer"])

    async def stalled(request: ModelRequest) -> ModelResponse:
        time.sleep(0.4)  # noqa: ASYNC251 (on purpose) blocks the event loop: no renewal, the 0.3 s lease runs out
        assert store.claim("s", "thief", 30)
        await asyncio.sleep(60)  # cancelled by the worker's next renewal, which finds the thief
        return model._next(request)

    model.generate = stalled  # type: ignore[method-assign]
    agent = Agent(model, store=store)
    report = asyncio.run(agent.resume_stale(worker="w", lease_seconds=0.3, idle_for=0))
    assert report.resumed == [] and isinstance(report.failed["s"], LeaseLostError)
    assert "run 's'" in str(report.failed["s"])
    assert store.get_run("s").status == "running"  # still resumable by the new holder
    assert store.claim("s", "w", 30) is False


def drain_in_processes(store: str, ledger: str, workers: int) -> list[dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop("PILOTHOUSE_STORE", None)
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE / "stale_agent.py"), store, ledger, f"w{i}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(workers)
    ]
    try:
        for p in procs:  # all imported and connected: start them together
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0] * workers, [err for _, err in outs]
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]


def check_drained(store: Store, ledger: str, ids: list[str], reports: list[dict[str, Any]]) -> None:
    assert all(r["failed"] == {} for r in reports), reports
    taken = [run_id for r in reports for run_id in r["resumed"]]
    assert sorted(taken) == sorted(ids)  # every run resumed, by exactly one worker
    assert sum(1 for r in reports if r["resumed"]) >= 2  # the workers really overlapped
    assert all(o == "final" for r in reports for o in r["resumed"].values())
    by_worker = {run_id: f"w{i}" for i, r in enumerate(reports) for run_id in r["resumed"]}
    rows = ledger_rows(ledger)
    assert len({key for key, _, _ in rows}) == len(rows) == len(ids) * TOOL_STEPS  # once each
    for key, run_id, worker in rows:
        assert worker in ("setup", by_worker[run_id]), key
    for run_id in ids:
        events = store.events(run_id)
        types = [e.type for e in events]
        assert [e.seq for e in events] == list(range(len(events)))
        assert types.count("run_started") == 1 and types.count("final") == 1
        assert store.get_run(run_id).status == "final"


def test_four_worker_processes_drain_postgres(fresh_postgres_dsn: str) -> None:
    ledger_setup(fresh_postgres_dsn)
    ids = make_stale_runs(fresh_postgres_dsn, fresh_postgres_dsn, 20)
    assert len(ids) == 20
    reports = drain_in_processes(fresh_postgres_dsn, fresh_postgres_dsn, 4)
    check_drained(PostgresStore(fresh_postgres_dsn), fresh_postgres_dsn, ids, reports)


def test_three_worker_processes_drain_sqlite(tmp_path: Path) -> None:
    journal, ledger = str(tmp_path / "j.db"), str(tmp_path / "ledger.db")
    ledger_setup(ledger)
    ids = make_stale_runs(journal, ledger, 12)
    reports = drain_in_processes(journal, ledger, 3)
    check_drained(SQLiteStore(journal), ledger, ids, reports)


def test_worker_cli_processes_drain_sqlite(tmp_path: Path) -> None:
    """`pilothouse worker` as an operator starts it: two processes, one journal file."""
    journal, ledger = str(tmp_path / "j.db"), str(tmp_path / "ledger.db")
    ledger_setup(ledger)
    ids = make_stale_runs(journal, ledger, 8)
    base = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{SRC}"}
    base.pop("PILOTHOUSE_STORE", None)
    command = [sys.executable, "-m", "pilothouse.cli", "worker"]
    agent = ["--agent", "stale_agent:cli_agent", "--idle-for", "0"]
    procs = [
        subprocess.Popen(
            [*command, *agent, "--id", f"w{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**base, "STALE_STORE": journal, "STALE_LEDGER": ledger, "STALE_WORKER": f"w{i}"},
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    reports = [
        {
            "resumed": dict(line.split("  ", 1) for line in out.splitlines() if line.strip()),
            "failed": {},
        }
        for out, _ in outs
    ]
    for _, err in outs:
        assert "resumes stopped runs of agent 'noter'" in err and "no stopped run left" in err
    taken = [run_id for r in reports for run_id in r["resumed"]]
    assert sorted(taken) == sorted(ids)  # each run by exactly one of the two processes
    store = SQLiteStore(journal)
    rows = ledger_rows(ledger)
    assert len({key for key, _, _ in rows}) == len(rows) == len(ids) * TOOL_STEPS
    assert all(store.get_run(run_id).status == "final" for run_id in ids)


def test_worker_cli_refuses_bad_agents(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{SRC}", "COLUMNS": "250"}
    command = [sys.executable, "-m", "pilothouse.cli", "worker"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args], capture_output=True, text=True, env=env, timeout=60
        )

    missing = run("--agent", "stale_agent:nothing")
    assert missing.returncode == 1 and "has no attribute 'nothing'" in missing.stderr
    both = run("--agent", "stale_agent:cli_agent", "--store", str(tmp_path / "j.db"))
    assert both.returncode == 1 and "brings its own model, tools and store" in both.stderr
    not_agent = run("--agent", "stale_agent:TOOL_STEPS")
    assert not_agent.returncode == 1 and "neither an Agent nor a function" in not_agent.stderr
