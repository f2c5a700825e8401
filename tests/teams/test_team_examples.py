"""The team examples run as written and print what they claim."""

from __future__ import annotations

from pathlib import Path

from example_runs import run_example


def test_team_handoff_example(tmp_path: Path) -> None:
    result = run_example("team_handoff.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "team: paused" in out
    assert "waits for a person: issue_refund({'order_id': 'A-7', 'amount_eur': 80.0})" in out
    assert "after approval: final -> Refunded 80 EUR." in out
    assert "case-1.1.0.handoff · refunds · final" in out
    assert "ping-pong: loop_stop · handoff_loop · 3 transfers back and forth" in out
    assert (tmp_path / "team_handoff.db").exists()


def test_team_supervisor_example(tmp_path: Path) -> None:
    result = run_example("team_supervisor.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "report: Figs are easy to grow (see B-17, 2019)." in out
    assert out.count("· writer · final") == 2
    assert "team usage: 59 tokens = sum of its runs: 59" in out
