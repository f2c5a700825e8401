"""The team-pattern examples run as written (as `tests/test_examples.py` runs the others)."""

from __future__ import annotations

from pathlib import Path

from example_runs import run_example


def test_group_chat_example(tmp_path: Path) -> None:
    result = run_example("group_chat.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "[reviewer] APPROVED" in out and "stopped: text_mention('APPROVED')" in out
    assert "turn 2: writer (model)" in out  # after the refused "editor-in-chief"
    assert "the writer saw a tool call: False" in out
    assert "selector calls: 6" in out and "children: 10" in out
    assert (tmp_path / "group_chat.db").exists()


def test_sop_pipeline_example(tmp_path: Path) -> None:
    result = run_example("sop_pipeline.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "PRD v1 by product_manager -> architect" in out
    assert "Design v1 by architect -> engineer" in out
    assert "Code v2 by engineer -> qa" in out and "stopped: idle" in out
    assert "final code: add(); list_todos()" in out


def test_role_play_example(tmp_path: Path) -> None:
    result = run_example("role_play.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("[stock_trader]") == 3 and out.count("[python_programmer]") == 2
    assert "stopped: text_mention('<CAMEL_TASK_DONE>')" in out
    assert "the programmer was told: You are the python_programmer" in out
