"""Every drive of a run holds its lease: a second resumer is refused and writes nothing.

Real SQLite files and real processes: a run whose process was SIGKILLed is taken over
at once on the same host (its holder's pid is gone), a live one never is; nor is a
lease a drive of this process could not give up because the store was down.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from payments import PAYMENTS, Ledger, assert_whole_journal, make_payer

from pilothouse.exceptions import (
    RunFinishedError,
    RunInterrupted,
    RunLeasedError,
    RunNotFoundError,
)
from pilothouse.runtime import loop
from pilothouse.runtime.journal import SQLiteStore
from pilothouse.runtime.lease import RunLease, holder_is_dead

if TYPE_CHECKING:
    from conftest import CLI

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"


async def _until(condition: object, what: str) -> None:
    """Yield to the event loop until `condition()` holds (it is set by another task)."""
    for _ in range(10_000):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")


def _leased(store: SQLiteStore, run_id: str = "r") -> bool:
    """Whether someone holds the run's lease (False while the run does not exist yet)."""
    try:
        return store.lease(run_id) is not None
    except RunNotFoundError:
        return False


def test_a_live_run_holds_its_lease_and_a_second_resumer_writes_nothing(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    ledger = Ledger(str(tmp_path / "ledger.db"))

    async def scenario() -> None:
        gate = asyncio.Event()
        agent = make_payer(store, ledger, gate=gate)
        running = asyncio.ensure_future(agent.run("pay the three bills", run_id="r"))
        await _until(lambda: _leased(store), "the run took its lease")
        holder, expires = store.lease("r")  # type: ignore[misc]
        assert holder.startswith(f"{socket.gethostname()}:{os.getpid()}:")
        # a worker does not take a live run, however quiet its journal
        assert store.claim_next("worker", 30, idle_for=0) is None
        before = len(store.events("r"))
        with pytest.raises(RunLeasedError) as refused:
            await make_payer(store, ledger).resume("r")
        assert refused.value.holder == holder and refused.value.run_id == "r"
        assert holder in str(refused.value) and refused.value.expires == expires
        assert len(store.events("r")) == before  # nothing written into the run
        assert store.get_run("r").status == "running"
        gate.set()
        result = await running
        assert result.output == "paid"

    asyncio.run(scenario())
    assert store.lease("r") is None  # given up when the run ended
    assert_whole_journal(store, "r")
    assert set(ledger.counts().values()) == {1} and len(ledger.counts()) == PAYMENTS


def test_two_resumes_at_once_pay_once(tmp_path: Path) -> None:
    """The trial that paid twice: two plain `resume` calls on one stopped run."""
    store = SQLiteStore(tmp_path / "j.db")
    ledger = Ledger(str(tmp_path / "ledger.db"))

    async def scenario() -> None:
        gate = asyncio.Event()
        stopping = asyncio.ensure_future(
            make_payer(store, ledger, gate=gate).run("pay", run_id="r")
        )
        await _until(lambda: _leased(store), "the run started")
        stopping.cancel()  # the process is told to stop: the run is interrupted
        with pytest.raises(asyncio.CancelledError):
            await stopping
        assert store.get_run("r").status == "interrupted" and store.lease("r") is None

        gate2 = asyncio.Event()
        first = asyncio.ensure_future(make_payer(store, ledger, gate=gate2).resume("r"))
        await _until(lambda: _leased(store), "the first resume took the lease")
        with pytest.raises(RunLeasedError):
            await make_payer(store, ledger).resume("r")
        gate2.set()
        assert (await first).output == "paid"
        with pytest.raises(RunFinishedError):  # afterwards: finished, not leased
            await make_payer(store, ledger).resume("r")

    asyncio.run(scenario())
    events = assert_whole_journal(store, "r")
    assert sum(e.type == "final" for e in events) == 1
    assert set(ledger.counts().values()) == {1} and len(ledger.counts()) == PAYMENTS


KILLED = """
import os, signal, sys
sys.path.insert(0, {here!r})
from payments import Ledger, make_payer
from pilothouse.runtime.journal import SQLiteStore
def die(ctx):
    os.kill(os.getpid(), signal.SIGKILL)  # after the first payment, before its result
make_payer(SQLiteStore({db!r}), Ledger({ledger!r}), on_pay=die).run_sync("pay", run_id="r")
"""


def _killed_after_first_payment(db: str, ledger: str) -> int:
    """Run the payer in a process SIGKILLed right after its first payment; its pid."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    code = KILLED.format(here=str(HERE), db=db, ledger=ledger)
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    assert proc.wait(timeout=120) == -signal.SIGKILL
    return proc.pid


RESUMER = """
import sys
sys.path.insert(0, {here!r})
from payments import Ledger, make_payer
from pilothouse.runtime.journal import SQLiteStore
agent = make_payer(SQLiteStore({db!r}), Ledger({ledger!r}))
print("ready", flush=True)
sys.stdin.readline()
try:
    print(agent.resume_sync("r").outcome, flush=True)
except Exception as exc:
    print(type(exc).__name__, flush=True)
"""


def test_two_processes_resuming_one_run_pay_once(tmp_path: Path) -> None:
    """Two processes resume the same run, killed between a payment and its record, at
    the same moment, six times over (the trial that paid twice in 2 of 6)."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    for trial in range(6):
        db, ledger_path = str(tmp_path / f"j{trial}.db"), str(tmp_path / f"l{trial}.db")
        ledger = Ledger(ledger_path)

        _killed_after_first_payment(db, ledger_path)
        code = RESUMER.format(here=str(HERE), db=db, ledger=ledger_path)
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", code],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            for _ in range(2)
        ]
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outcomes = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
        assert outcomes.count("final") == 1, outcomes
        assert set(outcomes) <= {"final", "RunLeasedError", "RunFinishedError"}, outcomes
        store = SQLiteStore(db)
        events = assert_whole_journal(store, "r")
        assert sum(e.type == "final" for e in events) == 1
        assert not any(e.type == "error" for e in events)
        counts = ledger.counts()
        assert len(counts) == PAYMENTS and set(counts.values()) == {1}, counts
        store.close()


def test_a_run_whose_process_was_killed_is_taken_over_at_once(tmp_path: Path) -> None:
    db, ledger_path = str(tmp_path / "j.db"), str(tmp_path / "l.db")
    ledger = Ledger(ledger_path)
    pid = _killed_after_first_payment(db, ledger_path)
    store = SQLiteStore(db)
    lease = store.lease("r")
    assert lease is not None  # the dead process's lease has not expired
    assert lease[0].split(":")[1] == str(pid) and holder_is_dead(lease[0])
    result = make_payer(store, ledger).resume_sync("r")  # no waiting for the expiry
    assert result.output == "paid"
    counts = ledger.counts()
    assert len(counts) == PAYMENTS and set(counts.values()) == {1}


def test_holder_is_dead_only_when_certain() -> None:
    host = socket.gethostname()
    assert not holder_is_dead(f"{host}:{os.getpid()}:abc")  # this very process
    assert not holder_is_dead(f"{host}:1:abc")
    assert not holder_is_dead(f"elsewhere-{host}:999999:abc")  # another host: outwait it
    assert not holder_is_dead("worker-7")  # not our form: never taken over
    assert not holder_is_dead(f"{host}:²:abc")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert not holder_is_dead(f"{host}:{child.pid}:abc")  # alive
        child.kill()
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # dead, not yet reaped
        assert holder_is_dead(f"{host}:{child.pid}:abc")  # a zombie runs nothing
    finally:
        child.wait()
    assert holder_is_dead(f"{host}:{child.pid}:abc")


def test_pilothouse_resume_of_a_live_run_names_the_holder(tmp_path: Path, cli: CLI) -> None:
    """`pilothouse resume` takes the lease like `Agent.resume`: refused, one clear line."""
    db = tmp_path / "j.db"
    store = SQLiteStore(db)
    ledger = Ledger(str(tmp_path / "ledger.db"))

    async def scenario() -> None:
        gate = asyncio.Event()
        running = asyncio.ensure_future(make_payer(store, ledger, gate=gate).run("pay", run_id="r"))
        await _until(lambda: _leased(store), "the run took its lease")
        holder = store.lease("r")[0]  # type: ignore[index]
        before = len(store.events("r"))
        # the CLI process runs while this event loop waits for it in a thread
        done = await asyncio.to_thread(cli, "resume", "r", "--store", str(db))
        assert done.returncode == 1
        assert f"is being driven by {holder}" in done.stderr
        assert "Traceback" not in done.stderr
        assert len(store.events("r")) == before
        gate.set()
        assert (await running).output == "paid"

    asyncio.run(scenario())


def test_a_run_interrupted_by_a_store_outage_resumes_in_the_same_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store goes down (its write lock held elsewhere) right after a payment and
    stays down past the retries: the run is interrupted and cannot even release its
    lease. Once the store is back, a resume in the same process (whose pid is alive)
    takes that lease over at once; it used to be refused for the lease's 30 s, told that
    this very process was driving the run. Found by the crash test's outage mode."""
    monkeypatch.setattr(loop, "COMMIT_RETRY_DELAYS", (0.0,) * len(loop.COMMIT_RETRY_DELAYS))
    db = tmp_path / "j.db"
    store = SQLiteStore(db)
    ledger = Ledger(str(tmp_path / "ledger.db"))
    blocker = sqlite3.connect(db, isolation_level=None)

    def outage(ctx: object) -> None:  # after the first payment, before its result
        if not blocker.in_transaction:
            blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
            store.pragma("busy_timeout", 0)

    with pytest.raises(RunInterrupted):
        make_payer(store, ledger, on_pay=outage).run_sync("pay", run_id="r")
    blocker.execute("ROLLBACK")  # the store is back
    store.pragma("busy_timeout", 5000)
    held = store.lease("r")
    assert held is not None and held[0].split(":")[1] == str(os.getpid())  # not released
    assert not holder_is_dead(held[0])  # its process lives: only its drive ended

    result = make_payer(store, ledger).resume_sync("r")  # no waiting for the expiry
    assert result.output == "paid"
    events = assert_whole_journal(store, "r")
    assert sum(e.type == "final" for e in events) == 1
    counts = ledger.counts()
    assert len(counts) == PAYMENTS and set(counts.values()) == {1}


def test_losing_the_take_over_of_a_dead_holder_names_the_winner(tmp_path: Path) -> None:
    """Two resumers find a dead process's lease; the first takes it over, and the
    second's refusal names the first (it used to name the dead process, telling the
    user to wait for, or stop, a process that no longer exists). Found by the crash
    test's two-resume mode."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    host = socket.gethostname()
    dead, winner = f"{host}:{child.pid}:dead", f"{host}:{os.getpid()}:winner"
    store = SQLiteStore(tmp_path / "j.db")
    ledger = Ledger(str(tmp_path / "ledger.db"))
    make_payer(store, ledger).run_sync("pay", run_id="r")
    store.claim("r", dead, 30)  # as if the run's process had died holding it

    class FirstTakesOver:
        """The store, with the winner's take-over landing just before ours."""

        def __getattr__(self, name: str) -> object:
            return getattr(store, name)

        def claim(self, run_id: str, worker: str, seconds: float, **kw: str | None) -> bool:
            if kw.get("take_from") == dead and worker != winner:
                assert store.claim(run_id, winner, seconds, take_from=dead)
            return store.claim(run_id, worker, seconds, **kw)

    with pytest.raises(RunLeasedError) as refused:
        RunLease(FirstTakesOver(), "r").acquire()  # type: ignore[arg-type]
    assert refused.value.holder == winner and winner in str(refused.value)
    assert store.lease("r") is not None and store.lease("r")[0] == winner  # type: ignore[index]
