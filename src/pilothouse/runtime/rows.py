"""What every journal store checks the same way: a batch against the events already
stored, and the errors that say a run's record is taken or damaged.

Shared by `MemoryStore`, `SQLiteStore` (`pilothouse.runtime.journal`) and
`PostgresStore` (`pilothouse.runtime.postgres`), so the three stores agree on what
a duplicate event is and name it in the same words. Everything here runs only when a
write meets a stored event or a run is missing: never on a write's fast path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pilothouse.exceptions import WriteConflictError

# An event as the SQL stores keep it: (run_id, seq, ts, step, type, data).
EventRow = tuple[str, int, float, int, str, str]


def conflict_error(run_id: str, seqs: Iterable[int], where: str) -> WriteConflictError:
    """The error for a batch whose events `seqs` of run `run_id` meet other events
    already stored in `where` (a file name, a URL without its password)."""
    seqs = list(seqs)
    lo, hi = min(seqs), max(seqs)
    span = f"event {lo}" if lo == hi else f"events {lo}..{hi}"
    return WriteConflictError(
        f"cannot write run {run_id!r} to {where}: {span} clash with other events already "
        "stored at those sequence numbers (duplicate key): another process is driving this "
        "run; nothing was written"
    )


def index_damaged(run_id: str, where: str) -> str:
    """The message for a run that has events but no index row. Every write saves the
    row with the run's first events, so a missing row is damage, not an unknown run."""
    return (
        f"run {run_id!r} has events in {where} but no index row: the journal's run index "
        "is damaged; keep a copy of the journal and restore it from a backup"
    )


def unstored_rows(
    rows: Sequence[EventRow],
    stored: Callable[[str, list[int]], Iterable[Sequence[Any]]],
    where: str,
) -> list[EventRow]:
    """The rows of a batch that are not stored yet, after a write of it met stored
    events. `stored(run_id, seqs)` reads the stored (seq, ts, step, type, data) rows.

    A row stored exactly as it is in the batch (same time stamp, same content) is the
    batch itself, written by an earlier attempt whose answer was lost (a connection
    that broke after the server committed): it is skipped, so writing a batch again
    is safe. A different row at the same (run_id, seq) is another writer's event:
    `WriteConflictError` naming the run and the batch's sequence numbers.
    """
    by_run: dict[str, list[EventRow]] = {}
    for row in rows:
        by_run.setdefault(row[0], []).append(row)
    new: list[EventRow] = []
    for run_id, batch in by_run.items():
        have = {int(r[0]): tuple(r) for r in stored(run_id, [r[1] for r in batch])}
        for row in batch:
            old = have.get(row[1])
            if old is None:
                new.append(row)
            elif old != row[1:]:
                raise conflict_error(run_id, (r[1] for r in batch), where)
    return new
