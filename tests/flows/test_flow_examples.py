"""The flow examples run as written (as `tests/test_examples.py` runs the others)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _example(name: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / name)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env=dict(os.environ),
    )


def test_flow_graph_example(tmp_path: Path) -> None:
    result = _example("flow_graph.py", tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "plan ==>|map| research" in out and "revise[revise ≤3]" in out
    assert "outcome: paused; waiting for: review" in out
    assert "outcome: final; published: True; revisions: 1" in out
    assert out.count("node_finished      research-0-") == 3
    assert "children: ['.3.0.write-0']" in out
    assert "graph recorded in the journal: True" in out
    assert out.count(" finished  ") >= 8 and "  review-0       finished" in out
    assert (tmp_path / "flow_graph.db").exists()


def test_flow_chain_example(tmp_path: Path) -> None:
    result = _example("flow_chain.py", tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "output: lamp: 59.80 EUR" in out
    assert "prompt sent: Price 2 x lamp in EUR." in out
    assert "refused: chain 'bad', step 2 'price': its output must be Quote" in out


def test_import_pilothouse_does_not_import_flows() -> None:
    code = "import sys, pilothouse; print('pilothouse.flows' in sys.modules, pilothouse.Graph)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("False <class 'pilothouse.flows.graph.Graph'>")
