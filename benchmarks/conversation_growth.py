"""How a conversation's journal grows: history copied into every turn vs a session.

Run: `.venv/bin/python benchmarks/conversation_growth.py [--messages 300] [--size 3900]`.

Workload: a conversation of `--messages` messages (half customer turns, half answers),
each about `--size` characters, driven turn by turn through `Agent.run` with an
instant `ScriptedModel` on a SQLite journal (a file in a temporary directory), once
passing the conversation so far as `history=` (what the desk did before sessions: the
history is written into every turn's `run_started`) and once as a `session=` (each
turn references the session and appends only its own messages). Printed per mode:
the bytes the journal holds (the SQLite file after a checkpoint, and the sum of the
stored event and message rows), their ratio to the raw text of the conversation, and
the time to read the last turn's context back (what a resume or the console does).
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any


def drive(mode: str, path: Path, messages: int, size: int) -> dict[str, Any]:
    from pilothouse import Agent, ScriptedModel, Session, SQLiteStore
    from pilothouse.messages import Message

    store = SQLiteStore(path)
    answer = "a" * size
    agent = Agent(ScriptedModel(lambda request: answer, record=False), "Be brief.", store=store)
    session = Session.create(store) if mode == "session" else None
    history: list[Message] = []
    raw = 0
    last = ""
    for turn in range(messages // 2):
        text = f"{turn} " + "q" * (size - 6)
        raw += len(text) + len(answer)
        if session is not None:
            last = agent.run_sync(text, session=session).run_id
        else:
            last = agent.run_sync(text, history=history).run_id
            history += [Message.user(text), Message.assistant(answer)]
    began = time.perf_counter()
    events = store.events(last)
    if session is not None:
        session.messages()
    read_ms = (time.perf_counter() - began) * 1000
    assert events
    store.close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    rows = db.execute("SELECT coalesce(sum(length(data)), 0) FROM events").fetchone()[0]
    if mode == "session":
        rows += db.execute(
            "SELECT coalesce(sum(length(data)), 0) FROM session_messages"
        ).fetchone()[0]
    db.close()
    return {"file": path.stat().st_size, "rows": rows, "raw": raw, "read_ms": read_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--size", type=int, default=3900)
    args = parser.parse_args()
    print(f"{args.messages} messages of ~{args.size} characters")
    print(f"{'mode':<10} {'file MB':>9} {'rows MB':>9} {'rows/raw':>9} {'last turn read ms':>18}")
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("history", "session"):
            got = drive(mode, Path(tmp) / f"{mode}.db", args.messages, args.size)
            print(
                f"{mode:<10} {got['file'] / 1e6:>9.1f} {got['rows'] / 1e6:>9.1f} "
                f"{got['rows'] / got['raw']:>9.2f} {got['read_ms']:>18.1f}"
            )


if __name__ == "__main__":
    main()
