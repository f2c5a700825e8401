"""The memory examples run as written and show what they say."""

from __future__ import annotations

from pathlib import Path

from example_runs import run_example


def output_of(name: str, cwd: Path) -> str:
    result = run_example(name, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_memory_agent_example(tmp_path: Path) -> None:
    out = output_of("memory_agent.py", tmp_path)
    assert '"value":"LYS (Lyon)"' in out
    assert out.count('{"recalled":[],"from_people":[]}') == 2  # bob reads nothing of alice's
    assert "✗ pay" in out and "appears only in the output of tool 'recall'" in out
    assert '✓ pay {"iban": "DE89370400440532013000"' in out
    assert "superseded by a later fact" in out
    assert (tmp_path / "memory.db").exists()


def test_memory_compaction_example(tmp_path: Path) -> None:
    out = output_of("memory_compaction.py", tmp_path)
    assert "answer: SKU-0299 costs 904 EUR." in out
    assert 'recall_result("call_1") returns it whole' in out
    assert "recall_result gave back 5368 characters" in out
    assert "session messages kept: 14 (nothing deleted)" in out
    assert "summaries made: 1" in out
    assert "summariser calls on the record: 1 (compaction_summary at step 1;" in out
    assert "turn 2: 1 summary on its record, model reuse:<turn 1>, usage 0; " in out
    assert "summariser asked 0 times" in out
