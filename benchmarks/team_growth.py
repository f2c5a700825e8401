"""How a group chat's journal grows with its length: the transcript copied into every
turn (before) vs read from the chat's session (now).

Run: `.venv/bin/python benchmarks/team_growth.py [--turns 10,20,40,80,160] [--size 1000]`.

Workload: a round-robin `GroupChat` of two members (instant `ScriptedModel`s, each
message `--size` characters) on a SQLite journal (a file in a temporary directory),
run to `MaxMessages(turns)`, once per length and mode, optionally with a model
selector (`--selector`: a child run per turn that reads the conversation too).

- ``history``: each turn's child run records the transcript so far in its
  `run_started` (what teams did before sessions; here forced by making the chat find
  no session, the path an older journal's resume takes);
- ``session``: the team writes each message once to its session; a turn's
  `run_started` references the session and how many messages it saw.

Printed per length: the bytes of stored event rows plus session message rows, their
ratio to the raw text of the transcript, and the SQLite file after a checkpoint.
The ratio stays flat when storage is linear and grows with the length when it is
quadratic.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any


async def drive(mode: str, path: Path, turns: int, size: int, selector: bool) -> dict[str, Any]:
    from pilothouse import Agent, ScriptedModel
    from pilothouse.runtime.journal import SQLiteStore
    from pilothouse.teams import _chat_run
    from pilothouse.teams.groupchat import GroupChat, MaxMessages, ModelSelector

    store = SQLiteStore(path)
    words = "x" * (size - 12)
    members = [
        Agent(ScriptedModel(lambda r, n=name: f"{n} {words}", record=False), name=name, store=store)
        for name in ("a", "b")
    ]
    turn = [0]

    def choose(request: Any) -> str:
        turn[0] += 1
        return '{"speaker": "%s"}' % ("a" if turn[0] % 2 else "b")

    chat = GroupChat(
        members,
        selector=ModelSelector(ScriptedModel(choose, record=False)) if selector else None,
        termination=MaxMessages(turns),
        max_turns=turns,
        allow_repeat=selector,
        store=store,
    )
    original = _chat_run.TeamDrive.open_transcript
    if mode == "history":  # the chat finds no session: every turn carries the transcript
        _chat_run.TeamDrive.open_transcript = lambda self, kind: None  # type: ignore[method-assign]
    try:
        result = await chat.run("Discuss the tides.", run_id=f"chat-{mode}-{turns}")
    finally:
        _chat_run.TeamDrive.open_transcript = original  # type: ignore[method-assign]
    raw = sum(len(s.text) for s in result.transcript)
    store.close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    rows = db.execute("SELECT coalesce(sum(length(data)), 0) FROM events").fetchone()[0]
    rows += db.execute("SELECT coalesce(sum(length(data)), 0) FROM session_messages").fetchone()[0]
    db.close()
    return {"rows": rows, "raw": raw}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", default="10,20,40,80,160")
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--selector", action="store_true", help="a model selector each turn")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    lengths = [int(t) for t in args.turns.split(",")]
    print(
        f"group chat, 2 members, messages of ~{args.size} characters"
        + (", model selector" if args.selector else ", round-robin")
    )
    print(
        f"{'turns':>6} {'history MB':>11} {'ratio':>7} {'session MB':>11} {'ratio':>7} "
        f"{'history/session':>16}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for turns in lengths:
            got = {
                mode: asyncio.run(
                    drive(mode, Path(tmp) / f"{mode}-{turns}.db", turns, args.size, args.selector)
                )
                for mode in ("history", "session")
            }
            h, s = got["history"], got["session"]
            print(
                f"{turns:>6} {h['rows'] / 1e6:>11.2f} {h['rows'] / h['raw']:>7.2f} "
                f"{s['rows'] / 1e6:>11.2f} {s['rows'] / s['raw']:>7.2f} "
                f"{h['rows'] / s['rows']:>16.1f}"
            )


if __name__ == "__main__":
    main()
