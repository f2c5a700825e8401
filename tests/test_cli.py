"""The `pilothouse` command, run as a user would: a subprocess with real stores."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pilothouse import Agent, ScriptedModel, SQLiteStore, __version__, call, tool

if TYPE_CHECKING:
    from conftest import CLI


@tool
def lookup(key: str) -> str:
    """Look up."""
    return f"value of {key}"


def test_version(cli: CLI) -> None:
    result = cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"pilothouse {__version__}"


def test_trace_list_and_show(cli: CLI, tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    agent = Agent(
        ScriptedModel([call("lookup", key="k1"), "The value is known."]),
        tools=[lookup],
        store=SQLiteStore(db),
        name="tester",
    )
    run_id = agent.run_sync("what is k1?").run_id

    listed = cli("trace", "list", "--store", str(db))
    assert listed.returncode == 0, listed.stderr
    assert run_id in listed.stdout and "tester" in listed.stdout and "final" in listed.stdout

    shown = cli("trace", "show", run_id, "--store", str(db))
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert f"run {run_id}" in out
    assert 'lookup(key="k1")' in out
    assert "value of k1" in out
    assert "The value is known." in out

    as_json = cli("trace", "show", run_id, "--store", str(db), "--json")
    lines = as_json.stdout.strip().splitlines()
    assert len(lines) == len(agent.store.events(run_id))
    assert '"type": "final"' in lines[-1]


def test_trace_list_by_status_shows_the_runs_waiting_for_a_person(cli: CLI, tmp_path: Path) -> None:
    db = tmp_path / "j.db"

    @tool(requires_approval=True, effect="side_effect")
    def pay(amount: int) -> str:
        """Pay an amount (a person approves)."""
        return "paid"

    waiting = Agent(ScriptedModel([call("pay", amount=5)]), tools=[pay], store=SQLiteStore(db))
    paused = waiting.run_sync("pay 5")
    done = Agent(ScriptedModel(["hi"]), store=SQLiteStore(db)).run_sync("hello")
    assert paused.outcome == "paused" and done.outcome == "final"
    listed = cli("trace", "list", "--status", "paused", "--store", str(db))
    assert listed.returncode == 0, listed.stderr
    assert paused.run_id in listed.stdout and done.run_id not in listed.stdout
    none = cli("trace", "list", "--status", "interrupted", "--store", str(db))
    assert none.returncode == 0 and "no interrupted runs" in none.stdout
    bad = cli("trace", "list", "--status", "pending", "--store", str(db))
    assert bad.returncode == 1 and "--status is one of running," in bad.stderr


def test_trace_list_empty_and_unknown_run(cli: CLI, tmp_path: Path) -> None:
    db = str(tmp_path / "empty.db")
    empty = cli("trace", "list", "--store", db)
    assert empty.returncode == 0 and "no runs recorded yet" in empty.stdout
    missing = cli("trace", "show", "nope", "--store", db)
    assert missing.returncode == 1
    assert missing.stderr.strip().startswith("error: no run 'nope'")
    assert len(missing.stderr.strip().splitlines()) == 1


def test_unknown_model_is_one_clear_line(cli: CLI, tmp_path: Path) -> None:
    result = cli("run", "hi", "--model", "gpt5", "--store", str(tmp_path / "j.db"))
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "unknown model 'gpt5'" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_server_is_one_clear_line(cli: CLI, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    result = cli(
        "run",
        "hi",
        "--model",
        f"openai:m@http://127.0.0.1:{port}/v1",
        "--store",
        str(tmp_path / "j.db"),
        "-q",
    )
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    assert f"127.0.0.1:{port}" in result.stderr


def test_bad_tools_spec(cli: CLI, tmp_path: Path) -> None:
    for spec, message in [
        ("nomodule", "must look like"),
        ("no_such_mod:x", "cannot import"),
        ("cli_tools:missing", "has no attribute 'missing'"),
    ]:
        result = cli("run", "hi", "--tools", spec, "--store", str(tmp_path / "j.db"))
        assert result.returncode == 1 and message in result.stderr, (spec, result.stderr)


@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="the embedded model needs `pip install 'pilothouse[local]'`",
)
def test_run_with_the_embedded_model_and_a_tool(cli: CLI, tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    result = cli(
        "run",
        "What is the status of order A1234?",
        "--tools",
        "cli_tools:tools",
        "--store",
        str(db),
        "--max-steps",
        "4",
    )
    assert "Traceback" not in result.stderr
    # The trace goes to stderr, the answer to stdout; whatever the small model decided,
    # the run is journaled and listed.
    assert "run " in result.stderr and "→ model" in result.stderr
    runs = SQLiteStore(db).list_runs()
    assert len(runs) == 1 and runs[0].model == "local:smollm2-135m"
    if result.returncode == 0:
        assert result.stdout.strip()
