"""examples/provenance_policy.py runs as written and stops the injected calls."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_provenance_example(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "provenance_policy.py")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line[:1] in "✓✗"]
    assert [line[:1] for line in lines] == ["✓", "✗", "✗", "✗", "✓", "✓"]
    out = result.stdout
    assert "to='eve@evil.test' is not from trusted input" in out
    assert "output of tool 'read_inbox' (untrusted)" in out
    assert "holds the url 'evil.test/x'" in out
    assert "answer: Replied to Anna and paid the rent." in out
