"""examples/telemetry.py runs as written and prints the span tree it promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")

ROOT = Path(__file__).resolve().parents[2]


def test_telemetry_example(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "telemetry.py")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "answer: Figs are fruit; oaks are trees."
    assert lines[1].startswith("invoke_agent lead  [invoke_agent]")
    assert sum(line.startswith("  execute_tool lookup") for line in lines) == 2  # siblings
    research = next(i for i, line in enumerate(lines) if "execute_tool research" in line)
    assert lines[research + 1].startswith("    invoke_agent researcher")  # nested under it
