"""`examples/planned_graph.py` runs as written (the scripted planner and joiner)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_planned_graph_example(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "planned_graph.py")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "✗ plan 1 rejected: task 2: the policy refuses send_email" in out
    assert "send_email(" not in out.split("✓ plan 2 accepted")[1]  # nothing of it ran
    assert "⚙ call   power(base=2028, exponent=0.43)" in out  # the number, not "$1"
    assert "answer: 26.42647389731347" in out
