"""`pilothouse sessions list|show|export`, run in process through typer's CliRunner
against a real SQLite journal."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from pilothouse import cli
from pilothouse.cli import app
from pilothouse.events import ModelResponded
from pilothouse.messages import Message, ToolCall, ToolResult
from pilothouse.models.base import ModelResponse
from pilothouse.runtime.journal import RunInfo, SQLiteStore
from pilothouse.runtime.session import Session, SessionWrite

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wide console, as a user's terminal (CliRunner's stdout is no terminal: 80 columns)."""
    monkeypatch.setattr(cli, "out", Console(highlight=False, width=250))


def recorded(path: Path) -> str:
    """A session of one turn (a run with a tool call) and a human's reply."""
    store = SQLiteStore(path)
    session = Session.create(store, "chat-1", {"customer": "c-7"})
    e = ModelResponded(run_id="turn-1", step=0, response=ModelResponse(text="x"))
    e.seq, e.ts = 0, time.time()
    messages = (
        Message.user("where is\nmy order?"),
        Message.assistant("", (ToolCall("c1", "lookup", {"order": "42"}),)),
        Message.tool(ToolResult("c1", "lookup", "shipped [bold]yesterday[/bold]")),
        Message.assistant("It shipped yesterday. " + "More words. " * 20),
    )
    store.write(
        [e],
        RunInfo("turn-1", "desk", "m", "where is my order?", session_id="chat-1"),
        lease=("host:1:1", time.time() + 60),
        session=SessionWrite("chat-1", "turn-1", tuple(enumerate(messages)), begin=True),
    )
    session.append([Message.assistant("A person here: anything else?")], author="human:ana")
    Session.create(store, "chat-0")
    store.close()
    return str(path)


def test_sessions_list_show_and_export(tmp_path: Path) -> None:
    db = recorded(tmp_path / "j.db")
    listed = runner.invoke(app, ["sessions", "list", "--store", db])
    assert listed.exit_code == 0, listed.output
    lines = [line for line in listed.stdout.splitlines() if "chat-" in line]
    assert "chat-0" in lines[0] and "chat-1" in lines[1]  # most recently updated first
    assert " 5 " in lines[1] and "c-7" in lines[1]
    one = runner.invoke(app, ["sessions", "list", "--store", db, "--limit", "1"])
    assert "chat-0" in one.stdout and "chat-1" not in one.stdout

    shown = runner.invoke(app, ["sessions", "show", "chat-1", "--store", db])
    assert shown.exit_code == 0, shown.output
    out = shown.stdout.splitlines()
    assert out[0].startswith("session chat-1 · 5 messages")
    assert out[1].split() == ["0", "user", "where", "is", "my", "order?", "turn-1"]
    assert '→ lookup({"order": "42"})' in out[2] and out[2].rstrip().endswith("turn-1")
    assert "lookup: shipped [bold]yesterday[/bold]" in out[3]  # markup shown, not rendered
    assert "…" in out[4] and len(out[4]) < 160  # a long text is cut to one short line
    assert out[5].split()[:2] == ["4", "assistant/human:ana"] and out[5].rstrip().endswith("-")

    page = runner.invoke(
        app, ["sessions", "show", "chat-1", "--store", db, "--start", "3", "--limit", "1"]
    )
    assert [line.split()[0] for line in page.stdout.splitlines()[1:]] == ["3"]
    past = runner.invoke(app, ["sessions", "show", "chat-1", "--store", db, "--start", "9"])
    assert past.exit_code == 0 and "no messages from seq 9" in past.stdout

    exported = runner.invoke(app, ["sessions", "export", "chat-1", "--store", db])
    assert exported.exit_code == 0, exported.output
    data = json.loads(exported.stdout)
    assert data["session"]["metadata"] == {"customer": "c-7"}
    assert [m["seq"] for m in data["messages"]] == [0, 1, 2, 3, 4]
    assert data["messages"][4]["author"] == "human:ana" and data["runs"] == ["turn-1"]
    assert data["messages"][0]["message"] == {"role": "user", "content": "where is\nmy order?"}


def test_sessions_errors_are_one_line_and_exit_1(tmp_path: Path) -> None:
    db = recorded(tmp_path / "j.db")
    missing = runner.invoke(app, ["sessions", "show", "nope", "--store", db])
    assert missing.exit_code == 1 and "no session 'nope'" in missing.stderr
    bad = runner.invoke(app, ["sessions", "export", "x" * 300, "--store", db])
    assert bad.exit_code == 1 and "invalid session id" in bad.stderr
    negative = runner.invoke(app, ["sessions", "show", "chat-1", "--store", db, "--start", "-1"])
    assert negative.exit_code == 1 and "start is a message's seq" in negative.stderr
    empty = runner.invoke(app, ["sessions", "list", "--store", str(tmp_path / "new.db")])
    assert empty.exit_code == 0 and "no sessions recorded yet" in empty.stdout
