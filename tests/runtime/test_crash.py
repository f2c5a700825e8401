"""Crash test: break runs at random moments, resume each, compare with uninterrupted runs.

Each seed scripts a multi-step run of `tests/crash_worker.py` (4-6 model calls;
read-only, idempotent side-effecting and one non-idempotent irreversible tool,
parallel calls in a step, a policy whose charge rule reads the run's history),
first run uninterrupted for reference (own journal, own ledger). Three modes, each
with 100 seeds against SQLite journals and 25 against PostgreSQL (the `postgres_dsn`
server of `tests/runtime/conftest.py`; skipped where PostgreSQL is not installed):

- SIGKILL: the run is killed after a seeded random delay (from half-way through
  process set-up to 1.1 times the time the reference took to its final event), then
  `resume`d in a new process; for every third seed that resume is killed too, at a
  random moment, and a third process resumes.
- Store outages: the journal store's real engine fails K consecutive write attempts
  from a seeded commit point on (a SQLite write lock held elsewhere; the PostgreSQL
  backend terminated), K on both sides of the loop's retry budget: the retries absorb
  it, or the run ends `RunInterrupted` and is resumed, in the same process once the
  store is back or in new processes (the first of which may meet an outage of its
  own), until it ends. After each process: the journal whole, never rewritten, no
  `error` event, an interrupted run still resumable.
- Two resumes at once: the run is SIGKILLed as above, then two plain `resume`
  processes are released at the same moment (the killed one reaped first or, for
  half the seeds, left a zombie). Exactly one drives the run; the other is refused
  (`RunLeasedError` naming the driver, `RunFinishedError` if it came after the end,
  or, for a run not yet on disk, its fresh start loses the first write) and leaves
  no trace in the ledger.

Checked for every seed at the end: the output and the final event equal the
reference's; every side effect is in the ledger exactly once and the ledger's
effects equal the reference's; the journal keeps what was on disk at each break as
an exact prefix, with consecutive seq, one run_started and one final, no `error`
event, each model call answered once and each tool call resulted once, with the
reference's results. Each mode prints its figures, ending with the issue's: duplicate
effects, lost steps, runs left unresumable (`pytest -s tests/runtime/test_crash.py`).

Run trees: a parent whose tool starts three child runs (two in parallel, one later),
each child with side effects of its own, killed 100 times in all (25 seeds, 4 kills
each) at progress points counted, not timed: journal writes and ledger effects, in the
parent and in the children; only the parent is resumed. Checked: each child run once
per parent call and key and no other run, every run of the tree ended with the
reference's final event (the children's usage rolled up once), the same budgets given
to the children, every effect exactly once, the parent's output the reference's.

Processes come from `crash_worker.py serve` (fork servers, several seeds in flight)
so the test does not pay an interpreter start per process; a last test drives the
plain command lines in fresh processes, killed at a chosen point. Randomness is
seeded; timing decides only where a kill or an outage lands, and the checks hold
wherever it does.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

from crash_worker import Outage, create_ledger, open_journal
from pilothouse.exceptions import RunNotFoundError
from pilothouse.runtime.loop import COMMIT_RETRY_DELAYS

WORKER = Path(__file__).resolve().parents[1] / "crash_worker.py"
SRC = Path(__file__).resolve().parents[2] / "src"
SEEDS = {"sqlite": 100, "postgres": 25}  # runs per journal store, in each mode
CONCURRENCY = 8  # seeds in flight; the runs mostly sleep, so this fits 2 cores
KILL_SPAN = 1.1  # kills land at most KILL_SPAN x the time the reference took to its final
KILL_RESUME_EVERY = 3  # every third seed: the resume is killed too, then resumed again
# Kills that must land between run_started and final (so the test cannot pass by
# killing only finished or unborn runs); about half do (43-58 of 100 measured).
MIN_MID_RUN = {"sqlite": 30, "postgres": 5}


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC)}


class ForkServer:
    """One `crash_worker.py serve` process: forks workers on request (one user at a time)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        self._read()  # {"ready": pid}: imports done, so the first run's timing is its own

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"fork server died (exit {self.proc.poll()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def start(self, argv: list[str], out: Path, *, gate: bool = False) -> int:
        request = {"op": "start", "argv": argv, "out": str(out), "gate": gate}
        return int(self._ask(request)["pid"])

    def release(self, pids: list[int]) -> None:
        """Write "go" to the gated children's stdin, one right after the other."""
        self._ask({"op": "release", "pids": pids})

    def dead(self, pid: int, timeout: float = 60) -> dict[str, Any]:
        """Wait until the child ended, without reaping it (it stays a zombie)."""
        return self._ask({"op": "dead", "pid": pid, "timeout": timeout})

    def wait(self, pid: int, timeout: float = 60) -> int | str:
        status: int | str = self._ask({"op": "wait", "pid": pid, "timeout": timeout})["status"]
        return status

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def worker_argv(mode: str, store: str | Path, ledger: Path, run_id: str, seed: int) -> list[str]:
    paths = ["--store", str(store), "--ledger", str(ledger)]
    return [mode, *paths, "--run-id", run_id, "--seed", str(seed)]


def read_report(out: Path) -> dict[str, Any]:
    lines = out.read_text().strip().splitlines()
    report: dict[str, Any] = json.loads(lines[-1])
    return report


# --------------------------------------------------------------------------- reading state


def journal_dicts(spec: str | Path, run_id: str) -> tuple[str | None, list[dict[str, Any]]]:
    """The run's status and events (as dicts), or (None, []) if the run is not on disk."""
    store = open_journal(str(spec))
    try:
        status = store.get_run(run_id).status
        return status, [e.to_dict() for e in store.events(run_id)]
    except RunNotFoundError:
        return None, []
    finally:
        store.close()


def ledger_rows(path: Path, table: str) -> list[tuple[Any, ...]]:
    if not path.exists():
        return []
    db = sqlite3.connect(path)
    try:
        return db.execute(f"SELECT * FROM {table}").fetchall()  # the test's own table names
    except sqlite3.OperationalError:  # killed before the worker created the tables
        return []
    finally:
        db.close()


def in_doubt(events: list[dict[str, Any]]) -> list[str]:
    """Idempotency keys of side-effecting calls recorded without a result."""
    results = {(e["step"], e["index"]) for e in events if e["type"] == "tool_result"}
    return [
        e["idempotency_key"]
        for e in events
        if e["type"] == "tool_call"
        and e["effect"] != "read_only"
        and (e["step"], e["index"]) not in results
    ]


def tool_results(events: list[dict[str, Any]]) -> dict[tuple[int, int], Any]:
    return {(e["step"], e["index"]): e["result"] for e in events if e["type"] == "tool_result"}


def final_event(events: list[dict[str, Any]]) -> dict[str, Any]:
    finals = [e for e in events if e["type"] == "final"]
    assert len(finals) == 1, [e["type"] for e in events]
    return {"output": finals[0]["output"], "usage": finals[0]["usage"]}


# --------------------------------------------------------------------------- one seed


@dataclass
class Tally:
    """The figures the hardening issue asks for, for one seed."""

    duplicates: int = 0  # effects (idempotency keys) applied more than once
    lost: int = 0  # the reference's steps, tool results and effects missing at the end
    unresumable: int = 0  # 1: the run did not end with its final answer
    errors: int = 0  # `error` events in the journal


@dataclass
class Reference:
    output: Any
    setup: float  # from the fork to run_started (process set-up, not yet the run)
    ended: float  # from the fork to the final event
    final: dict[str, Any]
    results: dict[tuple[int, int], Any]
    effects: set[tuple[Any, ...]]
    steps: set[int]  # steps with a model response
    # The run's commit points, named by the event whose write is one (for outages):
    # its start, each side effect's call and result, each step's results, the end.
    points: list[tuple[str, int]]


@dataclass
class Outcome:
    seed: int
    delay: float = 0.0
    killed: bool = False  # the SIGKILL found the process alive
    on_disk: int = 0  # events on disk at the kill
    status: str | None = None  # the run's status at the kill (None: not on disk)
    last: str = "-"  # the last event on disk at the kill
    doubt_done: int = 0  # in-doubt side effects whose effect was in the ledger
    doubt_not_done: int = 0  # in-doubt side effects whose effect was not
    how: str = ""  # what resume said it did
    reruns: int = 0  # idempotent effects executed again (same key, deduplicated)
    reconciled: int = 0
    problems: list[str] = field(default_factory=list)

    second: str = ""  # where the kill of the first resume landed, if it was killed
    tally: Tally = field(default_factory=lambda: Tally(unresumable=1))

    @property
    def place(self) -> str:
        return where(self.status, self.doubt_done, self.doubt_not_done)


def where(status: str | None, doubt_done: int, doubt_not_done: int) -> str:
    """Where a kill landed, from what was on disk after it."""
    if status is None:
        return "before run_started reached disk"
    if status == "final":
        return "after final"
    if doubt_done or doubt_not_done:
        kind = "effect done" if doubt_done else "effect not done"
        return f"mid-step: tool_call without tool_result ({kind})"
    return "mid-run: between steps"


def landing(
    store: str, ledger: Path, run_id: str
) -> tuple[str | None, list[dict[str, Any]], int, int]:
    """After a kill: the run's status and events, and its in-doubt side effects whose
    effect is in the ledger (done) or not."""
    status, events = journal_dicts(store, run_id)
    done_keys = {row[0] for row in ledger_rows(ledger, "effects")}
    keys = in_doubt(events)
    done = sum(1 for key in keys if key in done_keys)
    return status, events, done, len(keys) - done


@dataclass(frozen=True)
class Journals:
    """Where the journals go: SQLite files in each seed's folder (the default), or two
    PostgreSQL databases shared by all seeds (each seed's run id is its own)."""

    reference_dsn: str | None = None
    crashed_dsn: str | None = None

    def reference(self, root: Path) -> str:
        return self.reference_dsn or str(root / "ref.db")

    def crashed(self, root: Path) -> str:
        return self.crashed_dsn or str(root / "journal.db")


def prepare(store: str, ledger: Path) -> None:
    """Create the journal store and the ledger, as a deployed application has them
    before a run starts: the kills then land in the run, not in creating files."""
    open_journal(store).close()
    create_ledger(str(ledger))


def reference(server: ForkServer, seed: int, root: Path, journals: Journals) -> Reference:
    store, ledger, out = journals.reference(root), root / "ref-ledger.db", root / "ref.out"
    run_id = f"crash-{seed}"
    prepare(store, ledger)
    wall = time.time()  # the kill delays are measured from the fork too
    pid = server.start(worker_argv("run", store, ledger, run_id, seed), out)
    status = server.wait(pid)
    assert status == 0, f"seed {seed}: reference run failed ({status}): {out.read_text()}"
    report = read_report(out)
    _, events = journal_dicts(store, run_id)
    points: list[tuple[str, int]] = []
    for e in events:
        kind = e["type"]
        wanted = kind in ("run_started", "tool_result", "final") or (
            kind == "tool_call" and e["effect"] != "read_only"
        )
        if wanted and (kind, e["step"]) not in points:
            points.append((kind, e["step"]))
    return Reference(
        report["output"],
        events[0]["ts"] - wall,
        events[-1]["ts"] - wall,
        final_event(events),
        tool_results(events),
        set(ledger_rows(ledger, "effects")),
        {e["step"] for e in events if e["type"] == "model_response"},
        points,
    )


def crash_and_resume(server: ForkServer, seed: int, root: Path, journals: Journals) -> Outcome:
    """Reference, kill at a random moment, resume; every check's failure is a problem."""
    ref = reference(server, seed, root, journals)
    outcome = Outcome(seed)
    problems = outcome.problems
    store, ledger, run_id = journals.crashed(root), root / "ledger.db", f"crash-{seed}"
    prepare(store, ledger)
    # A seeded random moment from half-way through the process's set-up to a little
    # after the reference run ended (so some kills find the run finished).
    low = min(ref.setup / 2, ref.ended / 4)
    outcome.delay = random.Random(f"kill-{seed}").uniform(low, KILL_SPAN * ref.ended)
    pid = server.start(worker_argv("run", store, ledger, run_id, seed), root / "run.out")
    time.sleep(outcome.delay)
    os.kill(pid, signal.SIGKILL)
    status = server.wait(pid)
    outcome.killed = status == -signal.SIGKILL
    if status not in (0, -signal.SIGKILL):
        problems.append(f"the run exited {status}: {(root / 'run.out').read_text()[-2000:]}")

    # Where the kill landed: what was on disk.
    outcome.status, before, outcome.doubt_done, outcome.doubt_not_done = landing(
        store, ledger, run_id
    )
    outcome.on_disk = len(before)
    outcome.last = before[-1]["type"] if before else "-"
    last_status = outcome.status

    if seed % KILL_RESUME_EVERY == 0:  # the resume is killed too, then resumed again
        delay = random.Random(f"kill-resume-{seed}").uniform(0, ref.ended)
        argv = worker_argv("resume", store, ledger, run_id, seed)
        pid = server.start(argv, root / "resume-killed.out")
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        status = server.wait(pid)
        if status not in (0, -signal.SIGKILL):
            text = (root / "resume-killed.out").read_text()[-3000:]
            problems.append(f"the resume killed later exited {status}: {text}")
        last_status, again, done, not_done = landing(store, ledger, run_id)
        outcome.second = where(last_status, done, not_done)
        if again[: len(before)] != before:
            problems.append("the killed resume rewrote events that were on disk")
        before = again

    pid = server.start(worker_argv("resume", store, ledger, run_id, seed), root / "resume.out")
    status = server.wait(pid)
    if status != 0:
        problems.append(f"resume exited {status}: {(root / 'resume.out').read_text()[-3000:]}")
        return outcome
    report = read_report(root / "resume.out")
    outcome.how = report["how"]
    expected_how = {None: "fresh", "final": "nothing to resume"}.get(last_status, "resumed")
    if not outcome.how.startswith(expected_how):
        problems.append(f"resume said {outcome.how!r} for a run {last_status} at the kill")

    # The output is the uninterrupted run's.
    if report["output"] != ref.output:
        problems.append(f"output differs:\n  got  {report['output']!r}\n  want {ref.output!r}")
    outcome.tally = check_finished(ref, store, ledger, run_id, before, problems)
    attempts = Counter(row[0] for row in ledger_rows(ledger, "attempts"))
    outcome.reruns = sum(n - 1 for n in attempts.values())
    outcome.reconciled = len(ledger_rows(ledger, "reconciles"))
    return outcome


def check_finished(
    ref: Reference,
    store: str,
    ledger: Path,
    run_id: str,
    before: list[dict[str, Any]],
    problems: list[str],
) -> Tally:
    """The checks of a run that should now have ended as the reference did: its
    journal whole, continuing what was on disk (`before`) without rewriting it, with
    the reference's steps, results and final event, no `error` event, and every side
    effect in the ledger exactly once, the reference's effects."""
    tally = Tally()
    final_status, after = journal_dicts(store, run_id)
    if final_status != "final":
        problems.append(f"run status after resume is {final_status!r}")
        tally.unresumable = 1
    tally.errors, responses, got = check_journal(after, before, ref.final, ref.results, problems)
    effects = ledger_rows(ledger, "effects")
    tally.duplicates = check_ledger(effects, ref.effects, problems)
    tally.lost = (
        len(ref.steps - responses)
        + len(set(ref.results) - set(got))
        + len(ref.effects - set(effects))
    )
    return tally


def check_journal(
    after: list[dict[str, Any]],
    before: list[dict[str, Any]],
    final: dict[str, Any],
    results: dict[tuple[int, int], Any],
    problems: list[str],
    who: str = "",
) -> tuple[int, set[int], dict[tuple[int, int], Any]]:
    """One run's journal at its end: it continues what was on disk (`before`) without
    rewriting it, consecutive seq, one run_started, one final (equal to `final`: the
    output and the usage), no `error` event, each model call answered once, each tool
    call resulted once, with `results`. `who` prefixes the problems (which run).
    Returns the count of `error` events, the steps answered and the results."""
    if after[: len(before)] != before:
        problems.append(f"{who}events on disk at the kill were rewritten")
    if [e["seq"] for e in after] != list(range(len(after))):
        problems.append(f"{who}seq not consecutive: {[e['seq'] for e in after]}")
    types = [e["type"] for e in after]
    errors = types.count("error")
    if errors:
        problems.append(f"{who}the journal has {errors} error event(s)")
    if types.count("run_started") != 1 or types[-1:] != ["final"] or types.count("final") != 1:
        problems.append(f"{who}journal shape: {types}")
    elif final_event(after) != final:
        problems.append(f"{who}final event {final_event(after)} != reference {final}")
    responses = Counter(e["step"] for e in after if e["type"] == "model_response")
    if any(n != 1 for n in responses.values()):
        problems.append(f"{who}a model call answered twice: {responses}")
    calls = Counter((e["step"], e["index"]) for e in after if e["type"] == "tool_call")
    done = Counter((e["step"], e["index"]) for e in after if e["type"] == "tool_result")
    if calls != done or any(n != 1 for n in calls.values()):
        problems.append(f"{who}tool calls {dict(calls)} vs results {dict(done)}")
    got = tool_results(after)
    if got != results:
        problems.append(f"{who}tool results differ from the reference's")
    return errors, set(responses), got


def check_ledger(
    effects: list[tuple[Any, ...]], wanted: set[tuple[Any, ...]], problems: list[str]
) -> int:
    """The ledger: every effect exactly once, and the reference's effects (`wanted`).
    Returns how many effects were applied more than once."""
    twice = {k: n for k, n in Counter(row[0] for row in effects).items() if n != 1}
    if twice:
        problems.append(f"side effects applied more than once: {twice}")
    if set(effects) != wanted:
        problems.append(
            f"ledger effects differ:\n  extra   {set(effects) - wanted}\n"
            f"  missing {wanted - set(effects)}"
        )
    return len(twice)


def figures(tallies: list[Tally]) -> str:
    """The issue's line: duplicates, lost steps, unresumable runs (and error events)."""
    return (
        f"duplicate effects: {sum(t.duplicates for t in tallies)}; lost steps (steps, "
        f"results or effects of the reference missing): {sum(t.lost for t in tallies)}; "
        f"runs left unresumable: {sum(t.unresumable for t in tallies)}; error events: "
        f"{sum(t.errors for t in tallies)}"
    )


S = TypeVar("S", bound="Seeded")


class Seeded(Protocol):
    seed: int
    problems: list[str]


def run_seeds(
    scenario: Callable[[ForkServer, int, Path, Journals], S],
    blank: Callable[[int], S],
    seeds: list[int],
    root: Path,
    concurrency: int,
    journals: Journals | None = None,
) -> list[S]:
    """`scenario` for each seed, `concurrency` at a time, each thread with its own fork
    server; the outcomes in seed order (`blank(seed)` with the error for a seed whose
    scenario raised)."""
    journals = journals or Journals()
    servers: list[ForkServer] = []
    lock = threading.Lock()
    local = threading.local()

    def one(seed: int) -> S:
        server = getattr(local, "server", None)
        if server is None:
            server = local.server = ForkServer()
            with lock:
                servers.append(server)
        directory = root / f"seed{seed}"
        directory.mkdir()
        try:
            outcome = scenario(server, seed, directory, journals)
        except Exception as exc:  # a broken seed is reported with the others
            outcome = blank(seed)
            outcome.problems.append(f"{type(exc).__name__}: {exc}")
        if outcome.problems:
            outcome.problems.append(f"(its journals, ledgers and outputs: {directory})")
        else:
            shutil.rmtree(directory)  # ~1 MB of SQLite files per seed
        return outcome

    try:
        with ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(one, seeds))
    finally:
        for server in servers:
            server.close()


def crash_seeds(
    seeds: list[int], root: Path, concurrency: int, journals: Journals | None = None
) -> list[Outcome]:
    """Crash and resume each seed (`crash_and_resume`)."""
    return run_seeds(crash_and_resume, Outcome, seeds, root, concurrency, journals)


def summary(outcomes: list[Outcome], seconds: float) -> str:
    places = Counter(o.place for o in outcomes)
    buckets = Counter(
        "0" if o.on_disk == 0 else f"{(o.on_disk - 1) // 5 * 5 + 1}-{(o.on_disk - 1) // 5 * 5 + 5}"
        for o in outcomes
    )
    lasts = Counter(o.last for o in outcomes)
    lines = [f"{len(outcomes)} runs killed and resumed in {seconds:.1f} s"]
    lines.append("where the kills landed:")
    lines += [f"  {n:3d}  {place}" for place, n in sorted(places.items(), key=lambda x: -x[1])]
    lines.append("events on disk at the kill:")
    lines += [
        f"  {n:3d}  {b}" for b, n in sorted(buckets.items(), key=lambda x: int(x[0].split("-")[0]))
    ]
    again = Counter(o.second for o in outcomes if o.second)
    lines.append(f"where the kills of a resume landed ({sum(again.values())} runs killed twice):")
    lines += [f"  {n:3d}  {p}" for p, n in sorted(again.items(), key=lambda x: -x[1])]
    lines.append(
        "last event on disk at the kill: " + ", ".join(f"{k} {n}" for k, n in lasts.items())
    )
    lines.append(
        f"processes found alive by the kill: {sum(o.killed for o in outcomes)}; "
        f"in-doubt side effects: {sum(o.doubt_done for o in outcomes)} done, "
        f"{sum(o.doubt_not_done for o in outcomes)} not done; reconcile calls: "
        f"{sum(o.reconciled for o in outcomes)}; idempotent re-executions: "
        f"{sum(o.reruns for o in outcomes)}"
    )
    lines.append(figures([o.tally for o in outcomes]))
    return "\n".join(lines)


# --------------------------------------------------------------------------- store outages

# A commit's attempts before the run is interrupted (the worker shortens the waits
# between them, not their number).
ATTEMPTS = len(COMMIT_RETRY_DELAYS) + 1
# Consecutive failed write attempts per outage: fewer than ATTEMPTS are absorbed by the
# loop's retries; ATTEMPTS interrupt the run; more, and the store is still down when
# the run lets go of its lease, so that release fails too.
FAILURES = (1, 2, 3, 5, 6, 7, 9)
MAX_PROCESSES = 4  # the run and its resumes; two outages at most, so three suffice


@dataclass
class OutageOutcome:
    seed: int
    outage: str = ""  # the run's outage, EVENT:STEP:K
    point: str = ""  # the commit point of its first failing write
    failures: int = 0
    interrupted: bool = False
    same_process: bool = False  # resumed in the process the outage interrupted
    second: str = ""  # the first resume's outage, if any
    second_point: str = ""
    second_interrupted: bool = False
    doubt_done: int = 0  # at the first interruption: in-doubt side effects done...
    doubt_not_done: int = 0  # ... and not done
    processes: int = 0
    hows: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    tally: Tally = field(default_factory=lambda: Tally(unresumable=1))


def outage_and_resume(
    server: ForkServer, seed: int, root: Path, journals: Journals
) -> OutageOutcome:
    """Reference; the run with a seeded outage of its journal store (K failed write
    attempts from a seeded commit point on); if it was interrupted, `resume` in new
    processes (the first one possibly with an outage of its own), or in the same
    process once the store is back, until it ends. Checked after every process: the
    journal on disk whole and never rewritten, no `error` event, an interrupted run
    still resumable; at the end, everything `check_finished` checks."""
    ref = reference(server, seed, root, journals)
    outcome = OutageOutcome(seed)
    problems = outcome.problems
    store, ledger, run_id = journals.crashed(root), root / "ledger.db", f"crash-{seed}"
    prepare(store, ledger)
    rng = random.Random(f"outage-{seed}")
    event, step = rng.choice(ref.points)
    outcome.failures = rng.choice(FAILURES)
    outages = [Outage(event, step, outcome.failures)]
    outcome.outage = str(outages[0])
    interrupts = outcome.failures >= ATTEMPTS
    then_resume = interrupts and rng.random() < 0.5
    if interrupts and not then_resume:
        final_step = ref.points[-1][1]
        second = rng.choice([None, "first", "final"])
        if second is not None:
            outages.append(
                Outage(second, final_step if second == "final" else 0, rng.choice(FAILURES))
            )
            outcome.second = str(outages[1])
    outcome.same_process = then_resume

    status: str | None = None
    before: list[dict[str, Any]] = []
    report: dict[str, Any] = {}
    for i in range(MAX_PROCESSES):
        argv = worker_argv("run" if i == 0 else "resume", store, ledger, run_id, seed)
        outage = outages[i] if i < len(outages) else None
        if outage is not None:
            argv += ["--outage", str(outage)]
        if i == 0 and then_resume:
            argv.append("--then-resume")
        out = root / f"process{i}.out"
        code = server.wait(server.start(argv, out))
        outcome.processes += 1
        if code != 0:  # a problem; whether the run is still resumable is checked on
            problems.append(f"process {i} exited {code}: {out.read_text()[-3000:]}")
            report = {"how": f"exited {code}", "output": None, "failed": 0, "misses": 0}
            report["point"] = ""
        else:
            report = read_report(out)
        how: str = report["how"]
        outcome.hows.append(how)
        normal = (
            "ran"
            if i == 0
            else {None: "fresh", "final": "nothing to resume"}.get(status, "resumed")
        )
        stopped = False  # this process's run ended interrupted
        if outage is None:
            if not how.startswith(normal):
                problems.append(f"process {i} said {how!r}, expected {normal!r}")
        else:
            cut = outage.failures >= ATTEMPTS
            if report["failed"] != min(outage.failures, ATTEMPTS) or report["misses"]:
                problems.append(
                    f"process {i}: outage {outage} failed {report['failed']} write attempts "
                    f"({report['misses']} went through), expected "
                    f"{min(outage.failures, ATTEMPTS)}"
                )
            if i == 0:
                outcome.point, outcome.interrupted = report["point"], how.startswith("interrupted")
            else:
                outcome.second_point = report["point"]
                outcome.second_interrupted = how.startswith("interrupted")
            if not cut:
                wanted = normal
            elif i == 0 and then_resume:  # the run was on disk, or is started afresh
                wanted = "interrupted, then " + ("fresh" if event == "run_started" else "resumed")
            else:
                wanted = "interrupted"
            if how != wanted and not (how.startswith(wanted) and wanted != "interrupted"):
                problems.append(f"process {i} (outage {outage}) said {how!r}, expected {wanted!r}")
            stopped = how == "interrupted" or how.startswith("interrupted, then refused")
        if not stopped and report["output"] != ref.output:
            problems.append(
                f"process {i}: output differs:\n  got  {report['output']!r}\n  want {ref.output!r}"
            )

        # What is on disk now: the journal continues what was there, whole, no error.
        new_status, events, done, not_done = landing(store, ledger, run_id)
        if events[: len(before)] != before:
            problems.append(f"process {i} rewrote events that were on disk")
        if [e["seq"] for e in events] != list(range(len(events))):
            problems.append(f"after process {i}: seq not consecutive")
        if any(e["type"] == "error" for e in events) or new_status == "error":
            problems.append(f"after process {i}: the run is in error ({new_status!r})")
        if stopped:
            if new_status not in (None, "running"):
                problems.append(f"interrupted, yet the run's status on disk is {new_status!r}")
            if i == 0:
                outcome.doubt_done, outcome.doubt_not_done = done, not_done
        status, before = new_status, events
        if status == "final":
            break
    else:
        problems.append(f"still {status!r} after {MAX_PROCESSES} processes: {outcome.hows}")
    outcome.tally = check_finished(ref, store, ledger, run_id, before, problems)
    return outcome


def outage_summary(outcomes: list[OutageOutcome], seconds: float) -> str:
    lines = [f"{len(outcomes)} runs with a journal store outage, resumed in {seconds:.1f} s"]
    lines.append("where the outages began (the first failing write), and what they did:")
    rows = Counter(
        (o.point, "interrupted" if o.interrupted else "absorbed by the retries") for o in outcomes
    )
    lines += [
        f"  {n:3d}  {p}: {what}" for (p, what), n in sorted(rows.items(), key=lambda x: -x[1])
    ]
    k = Counter(o.failures for o in outcomes)
    lines.append(
        "failed write attempts per outage: "
        + ", ".join(f"{f} x{k[f]}" for f in sorted(k))
        + f" (a run is interrupted at {ATTEMPTS})"
    )
    interrupted = [o for o in outcomes if o.interrupted]
    lines.append(
        f"interrupted runs: {len(interrupted)}, resumed in the same process "
        f"{sum(o.same_process for o in interrupted)}, in new processes "
        f"{sum(not o.same_process for o in interrupted)}; in-doubt side effects at the "
        f"interruption: {sum(o.doubt_done for o in outcomes)} done, "
        f"{sum(o.doubt_not_done for o in outcomes)} not done"
    )
    seconds_ = [o for o in outcomes if o.second]
    lines.append(
        f"outages of the first resume: {len(seconds_)} ("
        + ", ".join(f"{p or '-'} {n}" for p, n in Counter(o.second_point for o in seconds_).items())
        + f"), of which interrupted again: {sum(o.second_interrupted for o in seconds_)}"
    )
    lines.append(
        "processes per run: "
        + ", ".join(f"{n} x{c}" for n, c in sorted(Counter(o.processes for o in outcomes).items()))
    )
    lines.append(figures([o.tally for o in outcomes]))
    return "\n".join(lines)


# --------------------------------------------------------------------------- two resumes


STAGGER_EVERY = 4  # every fourth seed: the second resume is released a seeded moment later


@dataclass
class RaceOutcome:
    seed: int
    delay: float = 0.0
    place: str = ""  # where the kill landed
    zombie: bool = False  # the killed process was left unreaped during the resumes
    stagger: float = 0.0
    hows: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    tally: Tally = field(default_factory=lambda: Tally(unresumable=1))


def _ready(outs: list[Path], timeout: float = 60) -> bool:
    """Whether every gated process printed READY within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(o.exists() and o.read_text().startswith("READY") for o in outs):
            return True
        time.sleep(0.002)
    return False


def _verdict(how: str) -> str:
    """What a resume process did: drove the run, found it ended, or was refused."""
    if how.startswith(("resumed", "fresh")):
        return "drove"
    if how.startswith("nothing to resume"):
        return "RunFinishedError"
    if how.startswith("refused: RunLeasedError"):
        return "RunLeasedError"
    if how.startswith("refused: the fresh start lost"):
        return "WriteConflictError (fresh start)"
    return f"unexpected: {how}"


def kill_then_two_resumes(
    server: ForkServer, seed: int, root: Path, journals: Journals
) -> RaceOutcome:
    """Reference; the run SIGKILLed at a seeded moment; then two plain `resume`
    processes released at the same moment (the killed one reaped first, or, for half
    the seeds, left a zombie until both ended). Exactly one drives the run; the other
    is refused (`RunLeasedError` naming the driver, or `RunFinishedError` if it came
    after the end, or, for a run not on disk, its fresh start loses the first write)
    and leaves no trace in the ledger. Then everything `check_finished` checks."""
    ref = reference(server, seed, root, journals)
    outcome = RaceOutcome(seed)
    problems = outcome.problems
    store, ledger, run_id = journals.crashed(root), root / "ledger.db", f"crash-{seed}"
    prepare(store, ledger)
    rng = random.Random(f"race-{seed}")
    low = min(ref.setup / 2, ref.ended / 4)
    outcome.delay = rng.uniform(low, KILL_SPAN * ref.ended)
    outcome.zombie = rng.random() < 0.5
    if seed % STAGGER_EVERY == STAGGER_EVERY - 1:
        outcome.stagger = rng.uniform(0, ref.ended)
    killed = server.start(worker_argv("run", store, ledger, run_id, seed), root / "run.out")
    time.sleep(outcome.delay)
    os.kill(killed, signal.SIGKILL)
    if outcome.zombie:
        dead = server.dead(killed)
        if not dead["ended"] or dead["state"] != "Z":
            problems.append(f"the killed process is not a zombie: {dead}")
    else:
        status = server.wait(killed)
        if status not in (0, -signal.SIGKILL):
            problems.append(f"the run exited {status}: {(root / 'run.out').read_text()[-2000:]}")
    at_kill, before, done, not_done = landing(store, ledger, run_id)
    outcome.place = where(at_kill, done, not_done)

    outs = [root / "resume-a.out", root / "resume-b.out"]
    argv = [*worker_argv("resume", store, ledger, run_id, seed), "--gate"]
    pids = [server.start(argv, out, gate=True) for out in outs]
    if not _ready(outs):
        problems.append("the resumes never got ready")
    server.release(pids[:1])
    if outcome.stagger:
        time.sleep(outcome.stagger)
    server.release(pids[1:])
    codes = [server.wait(pid) for pid in pids]
    if outcome.zombie:
        status = server.wait(killed)  # reaped only now
        if status not in (0, -signal.SIGKILL):
            problems.append(f"the run exited {status}: {(root / 'run.out').read_text()[-2000:]}")
    for code, out in zip(codes, outs, strict=True):
        if code != 0:
            problems.append(f"a resume exited {code}: {out.read_text()[-3000:]}")
    if problems:
        return outcome
    reports = [read_report(out) for out in outs]
    outcome.hows = [r["how"] for r in reports]
    verdicts = [_verdict(r["how"]) for r in reports]
    drove = verdicts.count("drove")
    wanted = 0 if at_kill == "final" else 1
    if drove != wanted or any(v.startswith("unexpected") for v in verdicts):
        problems.append(f"{drove} resumes drove the run ({at_kill!r} at the kill): {outcome.hows}")
    if at_kill is not None and "WriteConflictError (fresh start)" in verdicts:
        problems.append(f"a fresh start of a run that was on disk: {outcome.hows}")
    for me, other, verdict in ((0, 1, verdicts[0]), (1, 0, verdicts[1])):
        report = reports[me]
        if verdict in ("drove", "RunFinishedError") and report["output"] != ref.output:
            problems.append(f"{verdict}: output {report['output']!r} != {ref.output!r}")
        if verdict == "drove":
            continue
        # Refused: no side effect was tried in it. A resume refused by the lease did
        # nothing at all. A fresh start (the run never reached disk) that lost the race
        # for the first write may have run read-only tools before it: a new run takes its
        # lease with its first write, which a read-only step does not force (the design:
        # read-only work is unprotected and may run again). Whether the loser got that
        # far depends on scheduling, so only side effects are asserted for it.
        tables = ("attempts", "reconciles")
        if verdict != "WriteConflictError (fresh start)":
            tables += ("reads",)
        traces = [
            table
            for table in tables
            if any(row[-1] == report["pid"] for row in ledger_rows(ledger, table))
        ]
        if traces:
            problems.append(f"the resume that did not drive ({verdict}) wrote to {traces}")
        if verdict == "RunLeasedError":
            holder = report["holder"] or ""
            if holder.split(":")[1:2] != [str(reports[other]["pid"])]:
                problems.append(
                    f"refused in the name of {holder!r}, not of the other resume "
                    f"(pid {reports[other]['pid']}; the killed run was pid {killed})"
                )
    outcome.tally = check_finished(ref, store, ledger, run_id, before, problems)
    return outcome


def race_summary(outcomes: list[RaceOutcome], seconds: float) -> str:
    lines = [f"{len(outcomes)} runs killed, then two resumes at once, in {seconds:.1f} s"]
    lines.append("where the kills landed:")
    places = Counter(o.place for o in outcomes)
    lines += [f"  {n:3d}  {p}" for p, n in sorted(places.items(), key=lambda x: -x[1])]
    pairs = Counter(" + ".join(sorted(_verdict(h) for h in o.hows)) for o in outcomes if o.hows)
    lines.append("what the two resumes did:")
    lines += [f"  {n:3d}  {p}" for p, n in sorted(pairs.items(), key=lambda x: -x[1])]
    lines.append(
        f"killed process left a zombie during the resumes: {sum(o.zombie for o in outcomes)}; "
        f"second resume released later: {sum(1 for o in outcomes if o.stagger)}"
    )
    lines.append(figures([o.tally for o in outcomes]))
    return "\n".join(lines)


def postgres_journals(request: pytest.FixtureRequest) -> Journals:
    """Two new databases on the session's PostgreSQL server (`tests/runtime/conftest.py`;
    the test skips with its message where PostgreSQL is not installed)."""
    import psycopg

    crashed: str = request.getfixturevalue("fresh_postgres_dsn")
    server, name = crashed.rsplit("/", 1)
    with psycopg.connect(crashed, autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}_ref"')
    journals = Journals(f"{server}/{name}_ref", crashed)
    for dsn in (journals.reference_dsn, journals.crashed_dsn):
        assert dsn is not None
        open_journal(dsn).close()  # the tables, once, before the workers start
    return journals


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_sigkill_at_random_points_then_resume_is_exactly_once(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    journals = postgres_journals(request) if backend == "postgres" else Journals()
    began = time.monotonic()
    outcomes = crash_seeds(list(range(SEEDS[backend])), tmp_path, CONCURRENCY, journals)
    report = f"crash test, {backend} journal: " + summary(outcomes, time.monotonic() - began)
    print("\n" + report)
    failed = [o for o in outcomes if o.problems]
    if failed:
        details = [
            f"seed {o.seed} (killed after {o.delay:.3f} s: {o.place}, {o.on_disk} events on disk, "
            f"resume: {o.how!r}):\n  " + "\n  ".join(o.problems)
            for o in failed
        ]
        pytest.fail("\n".join([*details, report]), pytrace=False)
    mid_run = sum(1 for o in outcomes if o.status not in (None, "final"))
    wanted = MIN_MID_RUN[backend]
    assert mid_run >= wanted, f"only {mid_run} kills landed mid-run (want {wanted})\n{report}"
    in_step = sum(1 for o in outcomes if o.doubt_done or o.doubt_not_done)
    assert in_step >= 1, f"no kill landed between a tool_call and its tool_result\n{report}"


def test_command_line_run_killed_mid_side_effect_resumes(tmp_path: Path) -> None:
    """The plain command lines in fresh processes, killed at a chosen point: just after
    a charge (irreversible, not idempotent) happened, before its result was recorded.
    Resume must reconcile it from the ledger, not charge again."""
    seed, run_id = 3, "cli-3"

    def worker(mode: str, store: Path, ledger: Path, *extra: str) -> subprocess.Popen[str]:
        argv = [sys.executable, str(WORKER), *worker_argv(mode, store, ledger, run_id, seed)]
        return subprocess.Popen(
            [*argv, *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=_env(),
        )

    ref = worker("run", tmp_path / "ref.db", tmp_path / "ref-ledger.db")
    ref_out, ref_err = ref.communicate(timeout=60)
    assert ref.returncode == 0, ref_err
    store, ledger = tmp_path / "journal.db", tmp_path / "ledger.db"
    run = worker("run", store, ledger, "--hold-after-charge")
    assert run.stdout is not None
    held = run.stdout.readline().split()  # blocks until the charge is done
    os.kill(run.pid, signal.SIGKILL)
    run.communicate()
    assert run.returncode == -signal.SIGKILL
    assert held[:1] == ["HOLD"], run.stderr
    key = held[1]
    status, before = journal_dicts(store, run_id)
    assert status == "running"
    assert key in in_doubt(before)
    assert [row[0] for row in ledger_rows(ledger, "effects") if row[1] == "charge"] == [key]

    resumed = worker("resume", store, ledger)
    out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["how"] == "resumed"
    assert report["output"] == json.loads(ref_out.strip().splitlines()[-1])["output"]
    assert [row[:2] for row in ledger_rows(ledger, "reconciles")] == [(key, 1)]  # found
    _, after = journal_dicts(store, run_id)
    assert after[: len(before)] == before
    assert [e["seq"] for e in after] == list(range(len(after)))
    _, step, index = key.rsplit(":", 2)
    charged = [row[3] for row in ledger_rows(ledger, "effects") if row[0] == key]
    assert [tool_results(after)[int(step), int(index)]["content"]] == charged  # reconciled
    effects = ledger_rows(ledger, "effects")
    assert len(effects) == len({row[0] for row in effects})  # each effect once
    assert set(effects) == set(ledger_rows(tmp_path / "ref-ledger.db", "effects"))


def _report_or_fail(kind: str, outcomes: list[Any], report: str) -> None:
    print("\n" + report)
    failed = [o for o in outcomes if o.problems]
    if failed:
        details = [f"seed {o.seed} ({kind}):\n  " + "\n  ".join(o.problems) for o in failed]
        pytest.fail("\n".join([*details, report]), pytrace=False)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_store_outages_then_resume_are_exactly_once(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    journals = postgres_journals(request) if backend == "postgres" else Journals()
    began = time.monotonic()
    seeds = list(range(SEEDS[backend]))
    outcomes = run_seeds(outage_and_resume, OutageOutcome, seeds, tmp_path, CONCURRENCY, journals)
    report = f"store outages, {backend} journal: " + outage_summary(
        outcomes, time.monotonic() - began
    )
    _report_or_fail("outage", outcomes, report)
    # Both sides of the retry budget were exercised, deterministically (seeded).
    assert any(o.interrupted for o in outcomes) and not all(o.interrupted for o in outcomes)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_resumes_at_once_after_sigkill_one_drives(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    journals = postgres_journals(request) if backend == "postgres" else Journals()
    began = time.monotonic()
    seeds = list(range(SEEDS[backend]))
    outcomes = run_seeds(kill_then_two_resumes, RaceOutcome, seeds, tmp_path, CONCURRENCY, journals)
    report = f"two resumes at once, {backend} journal: " + race_summary(
        outcomes, time.monotonic() - began
    )
    _report_or_fail("two resumes", outcomes, report)


# --------------------------------------------------------------------------- run trees

# Tree mode of the worker (`--tree`): a parent run whose `delegate` tool starts child
# runs "a" and "b" in parallel (two calls in one reply) and "c" in a later step; each
# child makes side-effecting calls of its own (reserve, charge, notify: the ledger) and
# answers, and the parent's answer carries the children's. Each seed's run is killed
# TREE_KILLS times, the first process and then each `resume` of the PARENT (resuming
# it re-attaches to its children, resuming a stopped one), then resumed to its end.
#
# Kills are placed by progress, not by a clock: the worker counts its progress points
# (each journal write and each ledger effect, before and after it lands: every state
# of the disk a kill can leave) and SIGKILLs itself at the one it was given
# (`--kill-at N`). The reference run lists its points (P of them, with whose write or
# effect each is). The seed's kills are at TREE_KILLS distinct positions in 1..P, each
# process given the gap to the next; the first is aimed, by seed % 3, at a point of
# the parent's own, at a point of a child's, or at the moment just after a child's
# final answer reached disk (before the parent recorded it); the others are drawn from
# the rest of the run. A resumed process has at least as many points left as the
# reference had from the same progress (it redoes what was in doubt and writes once
# more on resuming), so every kill lands, 100 in every rerun; where exactly it lands
# differs between reruns only as far as parallel calls interleave (a and b; a
# parent's own call beside a delegating one), which the coverage margins allow for.
TREE_SEEDS = 25
TREE_KILLS = 4  # per seed: 100 kills in all
TREE_CONCURRENCY = 3  # tree runs do not sleep: more in flight would only queue for the CPUs
TREE_CHILDREN = ("a", "b", "c")
TREE_AIMS = ("a point of the parent's", "a point of a child's", "just after a child's final")
# Out of the 100 kills, at least this many must land (read from the journals after
# each kill) inside a child run (one on disk, not finished; 58-64 in six reruns, two
# of them beside the rest of this file's tests), inside both parallel children at once
# (13-18), in the parent's own steps with no child running (18-19), and after a
# child's final answer reached disk while the parent's call that started it had no
# result yet (17-19).
MIN_TREE_PLACES = {
    "inside": 40,
    "inside two children at once": 6,
    "in the parent's own steps": 10,
    "in a delegating call, its child finished": 8,
}


def all_runs(spec: str | Path) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """Every run in the journal store `spec` (one seed's tree): its status and events."""
    store = open_journal(str(spec))
    try:
        ids = sorted(r.run_id for r in store.list_runs(limit=10_000))
        return {
            rid: (store.get_run(rid).status, [e.to_dict() for e in store.events(rid)])
            for rid in ids
        }
    finally:
        store.close()


@dataclass
class TreeReference:
    output: Any
    points: int  # progress points of the whole run, in one process
    trace: list[tuple[str, str, str, bool]]  # each point's (kind, when, run, final)
    finals: dict[str, dict[str, Any]]  # run id -> its final event (output, usage)
    results: dict[str, dict[tuple[int, int], Any]]  # run id -> its tool results
    steps: dict[str, set[int]]  # run id -> its steps with a model response
    effects: set[tuple[Any, ...]]
    starts: list[dict[str, Any]]  # the parent's child_started events (`child_starts`)


@dataclass
class TreeKill:
    at: int  # the progress point the process was killed at (counted in that process)
    writer: str  # "parent" or "child": whose write or effect the point was
    point: str  # "journal before", "effect after", ...
    place: str  # where it landed, read from the journal (`tree_place`)


@dataclass
class TreeTally:
    duplicates: int = 0  # effects applied more than once
    duplicate_children: int = 0  # child runs beyond one per (parent, call, key)
    extra_runs: int = 0  # runs on disk that the uninterrupted run does not have
    unfinished: int = 0  # runs of the tree not ended with their final answer
    wrong_output: int = 0  # 1: the parent's output differs from the uninterrupted run's
    lost: int = 0  # the reference's steps, results and effects missing
    errors: int = 0  # `error` events


@dataclass
class TreeOutcome:
    seed: int
    aim: str = ""  # what the first kill was aimed at (`TREE_AIMS`)
    kills: list[TreeKill] = field(default_factory=list)
    late: int = 0  # processes that ended before their kill point (none expected)
    hows: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    tally: TreeTally = field(default_factory=lambda: TreeTally(unfinished=1))


def tree_reference(server: ForkServer, seed: int, root: Path, journals: Journals) -> TreeReference:
    store, ledger, out = journals.reference(root), root / "ref-ledger.db", root / "ref.out"
    run_id = f"tree-{seed}"
    prepare(store, ledger)
    status = server.wait(
        server.start([*worker_argv("run", store, ledger, run_id, seed), "--tree"], out)
    )
    assert status == 0, f"seed {seed}: reference run failed ({status}): {out.read_text()}"
    report = read_report(out)
    runs = all_runs(store)
    wanted = {run_id} | {e["child_run_id"] for e in runs[run_id][1] if e["type"] == "child_started"}
    assert set(runs) == wanted and len(wanted) == 1 + len(TREE_CHILDREN), sorted(runs)
    assert all(status == "final" for status, _ in runs.values())
    trace = [
        (kind, when, run.rsplit(":", 2)[0] if kind == "effect" else run, final)
        for kind, when, run, final in report["trace"]
    ]
    assert len(trace) == report["points"]
    return TreeReference(
        report["output"],
        report["points"],
        trace,
        {rid: final_event(events) for rid, (_, events) in runs.items()},
        {rid: tool_results(events) for rid, (_, events) in runs.items()},
        {
            rid: {e["step"] for e in events if e["type"] == "model_response"}
            for rid, (_, events) in runs.items()
        },
        set(ledger_rows(ledger, "effects")),
        child_starts(runs[run_id][1]),
    )


def child_starts(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A parent's child_started events without seq and ts: each child's id, the call
    that started it and the budget it was given (`capped`)."""
    return sorted(
        (
            {k: v for k, v in e.items() if k not in ("seq", "ts")}
            for e in events
            if e["type"] == "child_started"
        ),
        key=lambda e: str(e["child_run_id"]),
    )


def tree_place(runs: dict[str, tuple[str, list[dict[str, Any]]]], parent: str) -> str:
    """Where a kill landed in the tree, from what was on disk after it."""
    if parent not in runs:
        return "before the parent's run_started reached disk"
    status, events = runs[parent]
    if status == "final":
        return "after the parent's final"
    running = [rid for rid, (st, _) in runs.items() if rid != parent and st != "final"]
    if len(running) > 1:
        return "inside two children at once (both on disk, not finished)"
    if running:
        return "inside a child (on disk, not finished)"
    calls = {(e["step"], e["index"]): e for e in events if e["type"] == "tool_call"}
    delegating = [
        f"{parent}.{e['step']}.{e['index']}.{e['call']['arguments']['name']}"
        for key, e in calls.items()
        if e["call"]["name"] == "delegate" and key not in tool_results(events)
    ]
    if any(child not in runs for child in delegating):
        return "in a delegating call, its child not yet on disk"
    if delegating:
        return "in a delegating call, its child finished but not yet recorded by the parent"
    return "in the parent's own steps (no child running)"


def tree_cuts(ref: TreeReference, seed: int, parent: str) -> list[int]:
    """The seed's kill positions in 1..P, increasing: the first at a point of the kind
    `TREE_AIMS[seed % 3]` names (in the reference's trace), the others drawn from the
    points after it."""
    rng = random.Random(f"tree-kill-{seed}")
    aim = seed % len(TREE_AIMS)
    room = ref.points - (TREE_KILLS - 1)  # the first leaves room for the others
    aimed = [
        i
        for i, (kind, when, run, final) in enumerate(ref.trace, 1)
        if i <= room
        and (
            run == parent
            if aim == 0
            else run != parent and (aim == 1 or (kind, when, final) == ("journal", "after", True))
        )
    ]
    first = rng.choice(aimed)
    return [first, *sorted(rng.sample(range(first + 1, ref.points + 1), TREE_KILLS - 1))]


def tree_crash_and_resume(
    server: ForkServer, seed: int, root: Path, journals: Journals
) -> TreeOutcome:
    """Reference; the tree run killed TREE_KILLS times (the first process, then each
    resume of the parent), then the parent resumed to its end; after each kill the
    journals on disk are checked (never rewritten, no error), at the end everything
    `check_tree_finished` checks."""
    ref = tree_reference(server, seed, root, journals)
    outcome = TreeOutcome(seed)
    problems = outcome.problems
    store, ledger, run_id = journals.crashed(root), root / "ledger.db", f"tree-{seed}"
    prepare(store, ledger)
    outcome.aim = TREE_AIMS[seed % len(TREE_AIMS)]
    cuts = tree_cuts(ref, seed, run_id)
    before: dict[str, list[dict[str, Any]]] = {}
    done = 0
    for k, cut in enumerate(cuts):
        argv = worker_argv("run" if k == 0 else "resume", store, ledger, run_id, seed)
        out = root / f"kill{k}.out"
        code = server.wait(server.start([*argv, "--tree", "--kill-at", str(cut - done)], out))
        done = cut
        if code == 0:  # ended before its kill point: a valid run, checked as any
            outcome.late += 1
            outcome.hows.append(read_report(out)["how"])
            break
        if code != -signal.SIGKILL:
            problems.append(f"process {k} exited {code}: {out.read_text()[-3000:]}")
            return outcome
        line = read_report(out)  # the worker's last words: where it killed itself
        runs = all_runs(store)
        for rid, events in before.items():
            if runs.get(rid, ("", []))[1][: len(events)] != events:
                problems.append(f"kill {k}: run {rid}'s events on disk were rewritten")
        errors = [rid for rid, (st, events) in runs.items() if st == "error"]
        errors += [rid for rid, (_, ev) in runs.items() if any(e["type"] == "error" for e in ev)]
        if errors:
            problems.append(f"kill {k}: runs in error: {sorted(set(errors))}")
        writer = line["run"].rsplit(":", 2)[0] if line["kind"] == "effect" else line["run"]
        outcome.kills.append(
            TreeKill(
                line["killed_at"],
                "parent" if writer == run_id else "child",
                f"{line['kind']} {line['when']}",
                tree_place(runs, run_id),
            )
        )
        before = {rid: events for rid, (_, events) in runs.items()}

    out = root / "resume.out"
    code = server.wait(
        server.start([*worker_argv("resume", store, ledger, run_id, seed), "--tree"], out)
    )
    if code != 0:
        problems.append(f"the last resume exited {code}: {out.read_text()[-3000:]}")
        return outcome
    report = read_report(out)
    outcome.hows.append(report["how"])
    outcome.tally = check_tree_finished(ref, store, ledger, run_id, before, problems)
    if report["output"] != ref.output:
        outcome.tally.wrong_output = 1
        problems.append(f"output differs:\n  got  {report['output']!r}\n  want {ref.output!r}")
    return outcome


def check_tree_finished(
    ref: TreeReference,
    store: str,
    ledger: Path,
    parent: str,
    before: dict[str, list[dict[str, Any]]],
    problems: list[str],
) -> TreeTally:
    """A tree that should now have ended as the reference did: exactly its runs (each
    child once per parent call and key, none beyond the three), every run ended with
    the reference's final event (output and usage: the children's usage rolled up
    once), each journal whole and continuing what was on disk at the last kill, the
    parent's child_started (with the budgets given, as the reference's) and
    child_finished once per child, every side effect in the ledger exactly once and
    the reference's."""
    tally = TreeTally()
    runs = all_runs(store)
    tally.extra_runs = len(set(runs) - set(ref.finals))
    if set(runs) != set(ref.finals):
        problems.append(f"runs on disk {sorted(runs)} != the reference's {sorted(ref.finals)}")
    # Children per (parent, parent call, key), read from each child's run_started.
    links: Counter[tuple[Any, ...]] = Counter()
    for rid, (_, events) in runs.items():
        started = events[0] if events else {}
        if started.get("parent_run_id") is not None:
            links[started["parent_run_id"], started["parent_key"], rid.rsplit(".", 1)[1]] += 1
    tally.duplicate_children = sum(n - 1 for n in links.values())
    per_parent = Counter(link[0] for link in links)
    if tally.duplicate_children or per_parent != {parent: len(TREE_CHILDREN)}:
        problems.append(f"children per (parent, call, key): {dict(links)}")
    for rid in sorted(set(runs) & set(ref.finals)):
        status, events = runs[rid]
        if status != "final":
            tally.unfinished += 1
            problems.append(f"run {rid} ended {status!r}")
        errors, responses, got = check_journal(
            events, before.get(rid, []), ref.finals[rid], ref.results[rid], problems, f"{rid}: "
        )
        tally.errors += errors
        tally.lost += len(ref.steps[rid] - responses) + len(set(ref.results[rid]) - set(got))
    tally.unfinished += len(set(ref.finals) - set(runs))
    _, events = runs.get(parent, ("", []))
    if child_starts(events) != ref.starts:  # the same children, with the same budgets
        problems.append(f"child_started {child_starts(events)} != reference {ref.starts}")
    for kind in ("child_started", "child_finished"):
        seen = Counter(e["child_run_id"] for e in events if e["type"] == kind)
        if seen != Counter(set(ref.finals) - {parent}):
            problems.append(f"the parent's {kind} events: {dict(seen)}")
    effects = ledger_rows(ledger, "effects")
    tally.duplicates = check_ledger(effects, ref.effects, problems)
    tally.lost += len(ref.effects - set(effects))
    return tally


def tree_summary(outcomes: list[TreeOutcome], seconds: float) -> str:
    kills = [k for o in outcomes for k in o.kills]
    lines = [
        f"{len(outcomes)} run trees (a parent, children a and b in parallel, then c), "
        f"killed {len(kills)} times in all and resumed through the parent, in {seconds:.1f} s"
    ]
    writers = Counter(k.writer for k in kills)
    lines.append(
        f"kills at a point of the parent: {writers['parent']}, of a child: {writers['child']} "
        f"({', '.join(f'{p} {n}' for p, n in sorted(Counter(k.point for k in kills).items()))})"
    )
    aims = Counter(o.aim for o in outcomes)
    lines.append(
        "first kill of each seed aimed at: " + ", ".join(f"{a} {aims[a]}" for a in TREE_AIMS)
    )
    lines.append("where the kills landed (read from the journals):")
    places = Counter(k.place for k in kills)
    lines += [f"  {n:3d}  {p}" for p, n in sorted(places.items(), key=lambda x: -x[1])]
    hows = Counter(h.split(":")[0] for o in outcomes for h in o.hows)
    lines.append(
        f"processes that ended before their kill point: {sum(o.late for o in outcomes)}; "
        "the last resume: " + ", ".join(f"{h} x{n}" for h, n in hows.items())
    )
    tallies = [o.tally for o in outcomes]
    lines.append(
        f"duplicate child runs: {sum(t.duplicate_children for t in tallies)}; runs beyond "
        f"the tree's: {sum(t.extra_runs for t in tallies)}; duplicate effects: "
        f"{sum(t.duplicates for t in tallies)}; runs left unfinished: "
        f"{sum(t.unfinished for t in tallies)}; outputs unlike the uninterrupted run's: "
        f"{sum(t.wrong_output for t in tallies)}; lost steps: {sum(t.lost for t in tallies)}; "
        f"error events: {sum(t.errors for t in tallies)}"
    )
    return "\n".join(lines)


def test_tree_killed_at_random_points_resumed_through_the_parent_is_exactly_once(
    tmp_path: Path,
) -> None:
    began = time.monotonic()
    seeds = list(range(TREE_SEEDS))
    outcomes = run_seeds(tree_crash_and_resume, TreeOutcome, seeds, tmp_path, TREE_CONCURRENCY)
    report = "run trees, SQLite journal: " + tree_summary(outcomes, time.monotonic() - began)
    _report_or_fail("tree", outcomes, report)
    kills = [k for o in outcomes for k in o.kills]
    # Every kill lands (see above): 100, deterministically.
    assert len(kills) == TREE_SEEDS * TREE_KILLS, report
    for place, least in MIN_TREE_PLACES.items():
        landed = sum(1 for k in kills if k.place.startswith(place))
        assert landed >= least, f"{landed} kills landed {place}... (want {least})\n{report}"
