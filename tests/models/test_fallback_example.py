"""examples/fallback.py runs as written: one refund, a journaled fallback and route."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_fallback_example(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "fallback.py")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "answer: Order A-7 is refunded." in out
    assert "refunds made: ['A-7']" in out  # the fallback at step 2 repeated no call
    assert "s2 ⇢ fallback  openai:primary@" in out and "(server_error after 2 attempt(s))" in out
    assert "routed answer: Order B-2 is refunded." in out
    assert "s1 ⇢ route  openai:backup@" in out and "broken_tool_call" in out
