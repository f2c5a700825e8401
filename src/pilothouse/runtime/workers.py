"""Workers that continue stopped runs: any number of processes, no run continued twice.

A run whose process died (crash, deploy, OOM kill) stays ``running`` in the journal.
`resume_stale` drains such runs: it claims one (`Store.claim_next`: found and leased
in one transaction, so two workers never get the same run), resumes it
(`drive.resume_run`, what `Agent.resume` calls), releases it, and takes the next. Start
it in as many processes or hosts as you like against one shared store (PostgreSQL; a
SQLite file for processes of one machine)::

    report = await agent.resume_stale(worker="host-a:1", lease_seconds=60)

(`Agent.resume_stale` gives this module the agent's run spec and store: the runtime
drives runs from a `RunSpec` and never imports `pilothouse.agent`.)

Why leases and not row locks held for the whole run: a resume lasts as long as the
run (minutes of model calls), and a lock held open that long would pin a connection
and a transaction per run. A lease is a row update (`pilothouse.runtime.lease`): the
worker renews it while the run goes on (every third of `lease_seconds`), and if the
worker dies its runs become claimable again when the lease runs out. A worker that
cannot renew its lease (it was stalled past expiry and someone else took the run)
stops its resume at once, so that two processes never append to one run.

Every live drive of a run holds its lease (`Agent.run` from its first commit, every
resume before it reads the journal), so a run still driven by a live process is
never claimed; `idle_for` (default 0) only adds a quiet period on top.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pilothouse.events import RunStatus
from pilothouse.runtime.drive import resume_run
from pilothouse.runtime.lease import DEFAULT_LEASE_SECONDS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pilothouse.runtime.journal import Store
    from pilothouse.runtime.loop import RunResult, RunSpec

_log = logging.getLogger("pilothouse.workers")


@dataclass
class DrainReport:
    """What one `resume_stale` call did: the runs it resumed and the ones that failed.

    A failed run keeps this worker's lease until it expires, so it is not retried at
    once, here or elsewhere; after that any worker may try it again (unless the
    failure changed its status, as an in-doubt call or a model error does).
    """

    worker: str
    resumed: list[RunResult[Any]] = field(default_factory=list)
    failed: dict[str, Exception] = field(default_factory=dict)

    @property
    def run_ids(self) -> list[str]:
        """Ids of the runs resumed to an outcome, in the order they were taken."""
        return [r.run_id for r in self.resumed]


def default_worker_id() -> str:
    """``host:pid``: unique among live workers, and says where a lease came from."""
    return f"{socket.gethostname()}:{os.getpid()}"


async def resume_stale(
    spec: RunSpec[Any],
    store: Store,
    *,
    worker: str | None = None,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    idle_for: float = 0.0,
    limit: int | None = None,
    statuses: Sequence[RunStatus] = ("running", "interrupted"),
    deps: Any = None,
) -> DrainReport:
    """Resume stopped runs of the agent `spec` describes in `store`, one after another
    until none is left (or `limit` were taken); returns what was resumed and what failed.

    Only runs recorded by an agent of the same name are taken (a resume refuses a run
    whose definition differs); `deps` are given to every resumed run. `statuses` are
    those a run may have to be taken: ``running`` (its process died mid-way) and
    ``interrupted`` (cancelled, or its store failed) by default; paused runs wait for
    a person and
    in-doubt runs for a decision, so neither is taken unless listed. A run that fails
    to resume is recorded in the report and the worker goes on with the next.
    Cancelling the call stops the current resume (the run stays resumable) and
    releases its lease.
    """
    if lease_seconds <= 0:
        raise ValueError("lease_seconds must be positive")
    name = worker or default_worker_id()
    report = DrainReport(name)
    while limit is None or len(report.resumed) + len(report.failed) < limit:
        run_id = store.claim_next(
            name, lease_seconds, statuses=statuses, idle_for=idle_for, agent=spec.agent_name
        )
        if run_id is None:
            break
        _log.info("worker %s resumes run %s", name, run_id)
        try:
            result = await resume_run(
                spec, store, run_id, holder=name, lease_seconds=lease_seconds, deps=deps
            )
        except Exception as exc:  # one bad run does not stop the worker
            _log.warning("worker %s could not resume run %s: %s", name, run_id, exc)
            report.failed[run_id] = exc
            continue  # keep the lease until it expires: no immediate retry anywhere
        except BaseException:
            store.release(run_id, name)
            raise
        store.release(run_id, name)
        report.resumed.append(result)
    return report
