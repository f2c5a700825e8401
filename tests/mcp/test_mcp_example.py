"""examples/mcp_client.py runs as written (offline: its MCP server is a local script)."""

from __future__ import annotations

import pytest

pytest.importorskip("mcp", reason="the mcp extra is not installed: pip install 'pilothouse[mcp]'")

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_mcp_client_example_runs_offline(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "mcp_client.py")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "clear_notes  irreversible" in out and "list_notes   read_only" in out
    assert "✓ result add_note: stored: the lamp ships Friday" in out
    assert "⛔ deny by default:irreversible" in out
    assert "answer: Noted: the lamp ships Friday." in out
    assert (tmp_path / "notes.txt").read_text() == "the lamp ships Friday\n"  # the server wrote it
