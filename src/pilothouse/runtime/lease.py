"""Run leases: at most one live process drives a run at any time.

Two processes driving one run both act on the same model reply: a payment the first
is about to make looks undone to the second, which makes it too. The journal's
``(run_id, seq)`` key catches the second *writer*, but only after its side effects
ran. So every drive of a run holds the run's lease, taken before anything is read
or run: a new run's lease is written with its first commit (`Journal`), a resume
(`Agent.resume`, `pilothouse resume`, a worker) claims it before reading the
journal, and a second resumer gets `RunLeasedError` naming the holder and the
expiry and writes nothing.

A lease expires by itself (`seconds`) so a process that dies does not hold its runs
forever; the holder renews it every third of that on the event loop, and if a
renewal finds the lease taken (this process was stalled past expiry and someone
else took the run) the drive is cancelled and ends with `LeaseLostError` without
writing anything more. Waiting out the expiry after a crash is not needed on the
same machine: a holder id is ``host:pid:n``, and a lease whose holder is a
process of this host that no longer exists is taken over at once (its pid is
checked with ``kill(pid, 0)`` and ``/proc``; a zombie counts as dead). So is a lease
a drive of this very process could not give up because the store was down when it
stopped (the run was interrupted by the outage): a resume in the same process once
the store is back takes it over. Holders on other hosts are only ever outwaited.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import socket
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeVar

from pilothouse.exceptions import LeaseLostError, RunLeasedError, StoreError

if TYPE_CHECKING:
    from pilothouse.runtime.journal import Store

T = TypeVar("T")
DEFAULT_LEASE_SECONDS = 30.0
_log = logging.getLogger("pilothouse.lease")
# Holders of drives of this process that ended without giving their lease up (the
# store was down when they stopped). Nothing drives under them any more, yet their pid
# is alive: without this, a resume in this process would be refused until the lease
# expired, told that this very process was driving the run.
_ABANDONED: set[str] = set()


_drives = itertools.count(1)


@functools.cache
def _host() -> str:
    return socket.gethostname()


def new_holder() -> str:
    """``host:pid:n``: unique per drive (n counts this process's drives), and says
    which process holds a run."""
    return f"{_host()}:{os.getpid()}:{next(_drives)}"


def holder_is_dead(holder: str) -> bool:
    """True only when `holder` names a process of this host that no longer runs.

    Anything else (another host, a holder id not of our form, a live or unknowable
    process) counts as alive: a lease is only taken over when that is certain.
    """
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != _host() or not (pid_text.isascii() and pid_text.isdecimal()):
        return False
    pid = int(pid_text)
    if pid == os.getpid() or pid <= 1:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, owned by someone else
        return False
    try:  # killed but not yet reaped by its parent: a zombie runs nothing
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return False


class RunLease:
    """This process's hold on one run (see the module docs).

    `holder` defaults to a new `new_holder()` id; a worker passes its own id so that
    the lease it took with `Store.claim_next` is the one renewed. `release`: give the
    lease up when the drive ends; a worker keeps the lease of a run that failed, so
    that no worker retries it before the lease expires, and releases it itself.
    """

    __slots__ = (
        "_handle",
        "_task",
        "given_up",
        "held",
        "holder",
        "lost",
        "release",
        "run_id",
        "seconds",
        "store",
    )

    def __init__(
        self,
        store: Store,
        run_id: str,
        holder: str | None = None,
        seconds: float = DEFAULT_LEASE_SECONDS,
        *,
        release: bool = True,
    ) -> None:
        if seconds <= 0:
            raise ValueError("lease seconds must be positive")
        self.store = store
        self.run_id = run_id
        self.holder = holder or new_holder()
        self.seconds = seconds
        self.release = release
        self.held = False  # taken (claimed, or written with a new run's first commit)
        self.given_up = False  # released by the drive's last write (`Journal.commit`)
        self.lost = False  # another process took it over: write nothing more
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[object] | None = None

    def written(self, *, last: bool) -> None:
        """A write carrying `terms()` (a new run's first) or, `last`, giving the lease
        up (an expiry in the past: the drive's last write) has landed."""
        self.held = not last
        self.given_up = last

    def terms(self) -> tuple[str, float]:
        """(holder, expiry) from now: what a new run's first commit writes (`Store.write`)."""
        return self.holder, time.time() + self.seconds

    def acquire(self) -> None:
        """Take the lease of an existing run, or raise `RunLeasedError`.

        A lease held by a dead process of this host, or left by a drive of this process
        that could not release it (`stop` while the store was down), is taken over
        (logged). When another resumer took such a lease over first, the error names
        that resumer, not the dead holder.
        """
        current: tuple[str, float] | None = None
        for _ in range(3):
            if self.store.claim(self.run_id, self.holder, self.seconds):
                self.held = True
                return
            current = self.store.lease(self.run_id)
            if current is None:  # it expired or was released in between: claim again
                continue
            holder = current[0]
            left_here = holder in _ABANDONED
            if not (left_here or holder_is_dead(holder)):
                break
            if self.store.claim(self.run_id, self.holder, self.seconds, take_from=holder):
                _ABANDONED.discard(holder)
                _log.warning(
                    "run %s: took over the lease of %s, %s",
                    self.run_id,
                    holder,
                    "a drive of this process that could not release it"
                    if left_here
                    else "a process that has ended",
                )
                self.held = True
                return
            # Another resumer took it over first: look again at who holds it now.
        holder, expires = current or ("another process", time.time())
        left = max(0.0, expires - time.time())
        raise RunLeasedError(
            f"run {self.run_id!r} is being driven by {holder} (its lease runs for another "
            f"{left:.0f} s unless renewed); nothing was written. Wait for that process to "
            "finish, or stop it and resume again",
            run_id=self.run_id,
            holder=holder,
            expires=expires,
        )

    def start(self) -> None:
        """Renew the lease every third of `seconds` on the running event loop until
        `stop`; if a renewal finds it taken, mark it lost and cancel the current task
        (the drive), which then ends with `LeaseLostError`."""
        self._task = asyncio.current_task()
        self._handle = asyncio.get_running_loop().call_later(self.seconds / 3, self._renew)

    def _renew(self) -> None:
        if self.held:
            try:
                still = self.store.claim(self.run_id, self.holder, self.seconds)
            except StoreError as exc:  # the store is down: commits fail too; try again
                _log.warning("run %s: could not renew its lease: %s", self.run_id, exc)
                still = True
            if not still:
                self.lost = True
                _log.warning("run %s: lease lost to another process; stopping", self.run_id)
                if self._task is not None:
                    self._task.cancel("lease lost")
                return
        self._handle = asyncio.get_running_loop().call_later(self.seconds / 3, self._renew)

    def stop(self) -> None:
        """Stop renewing and, if `release`, give the lease up (unless it was lost: then
        it is not ours to give). A lease that could not be given up (the store is down,
        or a new run's first write failed and may yet have landed) expires by itself,
        and a drive of this process may take it over at once (`acquire`): nothing
        drives under it any more, though its pid is alive."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if not self.release or self.lost:
            return
        if not self.held:
            if self._task is not None and not self.given_up:
                _ABANDONED.add(self.holder)  # a new run's first write failed: it may have landed
            return
        self.held = False
        try:
            self.store.release(self.run_id, self.holder)
        except StoreError as exc:  # it expires by itself, or a drive here takes it over
            _ABANDONED.add(self.holder)
            _log.warning("run %s: could not release its lease: %s", self.run_id, exc)

    async def hold(self, drive: Awaitable[T]) -> T:
        """Await `drive` (the run's loop) in this task while renewing the lease; give
        it up at the end. A drive cancelled because the lease was lost ends with
        `LeaseLostError` instead of `CancelledError`."""
        self.start()
        try:
            return await drive
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self.lost and task is not None and task.uncancel() == 0:
                raise self.lost_error() from None
            raise
        finally:
            self.stop()

    def lost_error(self) -> LeaseLostError:
        """The error a drive ends with once its lease was taken over."""
        return LeaseLostError(
            f"run {self.run_id!r}: {self.holder} could not renew its lease in time and "
            "another process took the run over; this process stopped driving it and wrote "
            "nothing more"
        )
