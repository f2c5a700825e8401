"""`import pilothouse` leaves flows unloaded until a flow name is used."""

from __future__ import annotations

import subprocess
import sys


def test_import_pilothouse_does_not_import_flows() -> None:
    code = "import sys, pilothouse; print('pilothouse.flows' in sys.modules, pilothouse.Graph)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("False <class 'pilothouse.flows.graph.Graph'>")
