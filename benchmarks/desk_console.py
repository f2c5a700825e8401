"""A long support conversation: its journal's size and the console's view of it.

Run: `.venv/bin/python benchmarks/desk_console.py [--messages 300] [--size 3900]`.

Workload: the real desk (`Desk`: shop, policy, SQLite journal in a temporary
directory) behind the real web server on loopback; a scripted model answers each
customer message with ~`--size` characters, for `--messages` messages in one
conversation (each turn a run of the conversation's session). Printed: the bytes the
journal's rows hold for the conversation (events and session messages) against the
raw text, the SQLite file size, and the time and size of the console's conversation
view (`GET /api/console/conversations/{id}`: the last runs' journals and the
transcript, paginated), median of 20 requests.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import httpx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--size", type=int, default=3900)
    args = parser.parse_args()

    from pilothouse.models.scripted import ScriptedModel
    from pilothouse.runtime.journal import SQLiteStore
    from pilothouse_desk.desk import Desk
    from pilothouse_desk.server.app import create_app
    from pilothouse_desk.server.live import LiveServer

    answer = "Thanks for waiting. " + "a" * (args.size - 20)
    token = "bench-console-token"
    with tempfile.TemporaryDirectory() as tmp:
        journal = Path(tmp) / "journal.db"
        store = SQLiteStore(journal)
        model = ScriptedModel(lambda request: answer, record=False)
        desk = Desk(Path(tmp) / "shop.db", store, model=model)
        app = create_app(desk, console_token=token, store=store, message_limit=None)
        raw = 0
        with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=120) as client:
            opened = client.post("/api/conversations", json={}).json()
            conv_id, secret = opened["conversation"]["id"], opened["token"]
            began = time.perf_counter()
            for turn in range(args.messages // 2):
                text = f"question {turn}: " + "q" * (args.size - 20)
                raw += len(text) + len(answer)
                sent = client.post(
                    f"/api/conversations/{conv_id}/messages",
                    json={"text": text},
                    headers={"authorization": f"Bearer {secret}"},
                )
                sent.raise_for_status()
                if turn % 25 == 24:
                    print(f"  {2 * (turn + 1)} messages sent ({time.perf_counter() - began:.0f} s)")
            headers = {"authorization": f"Bearer {token}"}
            times, size = [], 0
            for _ in range(20):
                t0 = time.perf_counter()
                view = client.get(f"/api/console/conversations/{conv_id}", headers=headers)
                times.append((time.perf_counter() - t0) * 1000)
                view.raise_for_status()
                size = len(view.content)
        desk.shutdown()
        store.close()
        db = sqlite3.connect(journal)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = db.execute("SELECT coalesce(sum(length(data)), 0) FROM events").fetchone()[0]
        rows += db.execute(
            "SELECT coalesce(sum(length(data)), 0) FROM session_messages"
        ).fetchone()[0]
        db.close()
        print(f"{args.messages} messages of ~{args.size} characters ({raw / 1e6:.2f} MB of text)")
        print(f"journal rows  {rows / 1e6:8.2f} MB  ({rows / raw:.2f}x the text)")
        print(f"journal file  {journal.stat().st_size / 1e6:8.2f} MB")
        print(
            f"console view  {statistics.median(times):8.1f} ms median, {max(times):.1f} ms max, "
            f"{size / 1e3:.0f} KB"
        )


if __name__ == "__main__":
    main()
