"""`pilothouse policy lint|check`, run as a user would (a subprocess)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from pilothouse import Agent, ScriptedModel, SQLiteStore, call, tool
from pilothouse.policy import Policy, Rule

if TYPE_CHECKING:
    from conftest import CLI

POLICY = """\
tools:
  get_order: {effect: read_only, args: [order_id]}
  refund: {effect: irreversible, args: [order_id, amount]}
rules:
  - id: refund-after-lookup
    tools: refund
    when:
      after: [{tool: get_order, args: {order_id: $args.order_id}}]
      confirmed: true
"""


def test_lint_clean_and_broken(cli: CLI, tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text(POLICY)
    r = cli("policy", "lint", "ok.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "1 rule(s), 0 error(s), 0 warning(s)" in r.stdout
    (tmp_path / "typo.yaml").write_text(POLICY.replace("tools: refund", "tools: refnd"))
    r = cli("policy", "lint", "typo.yaml", cwd=tmp_path)
    assert r.returncode == 1 and "'refnd' matches no known tool" in r.stdout
    (tmp_path / "bad.yaml").write_text("rules:\n  - tools: x\n    effect: maybe\n")
    r = cli("policy", "lint", "bad.yaml", cwd=tmp_path)
    assert r.returncode == 1 and "line 3" in r.stderr and "effect must be" in r.stderr


def test_lint_with_tools_json(cli: CLI, tmp_path: Path) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "refund",
                "parameters": {"properties": {"order_id": {}}, "required": ["order_id"]},
            },
        }
    ]
    (tmp_path / "tools.json").write_text(json.dumps(tools))
    (tmp_path / "p.yaml").write_text(
        "rules:\n  - {tools: refund, when: {args: {amount: {maximum: 3}}}}\n"
    )
    r = cli("policy", "lint", "p.yaml", "--tools-json", "tools.json", cwd=tmp_path)
    assert r.returncode == 1 and "'amount' is not a parameter of 'refund'" in r.stdout


def test_check_jsonl_script(cli: CLI, tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(POLICY)
    lines = [
        {"user": "refund order A please"},
        {"tool": "refund", "arguments": {"order_id": "A", "amount": 5}},
        {"tool": "get_order", "arguments": {"order_id": "A"}, "output": "{}"},
        {"user": "yes"},
        {"tool": "refund", "arguments": {"order_id": "A", "amount": 5}, "output": "ok"},
        {"tool": "refund", "arguments": {"order_id": "A", "bogus": 1}},
    ]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    r = cli("policy", "check", "--policy", "p.yaml", "--trace", "t.jsonl", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    decisions = [line.split()[0] for line in out if " line " in line]
    assert decisions == ["DENY", "ALLOW", "ALLOW", "DENY"]
    assert "unknown argument(s) ['bogus']" in r.stdout
    assert "4 call(s): 2 allowed, 2 denied" in r.stdout
    r = cli("policy", "check", "--policy", "p.yaml", "--trace", "t.jsonl", "--strict", cwd=tmp_path)
    assert r.returncode == 1
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    r = cli("policy", "check", "--policy", "p.yaml", "--trace", "bad.jsonl", cwd=tmp_path)
    assert r.returncode == 1 and "trace line 1" in r.stderr


def test_check_replays_a_journal_export(cli: CLI, tmp_path: Path) -> None:
    @tool(effect="irreversible")
    def refund(order_id: str, amount: float = 1.0) -> str:
        """Refund."""
        return "ok"

    store = SQLiteStore(tmp_path / "j.db")
    agent = Agent(
        ScriptedModel([[call("refund", order_id="A")], "done"]),
        tools=[refund],
        store=store,
        policy=Policy([Rule("refund", "allow")]),
    )
    run_id = agent.run_sync("refund A").run_id
    export = "\n".join(json.dumps(e.to_dict()) for e in store.events(run_id))
    (tmp_path / "run.jsonl").write_text(export)
    (tmp_path / "p.yaml").write_text(POLICY)
    r = cli("policy", "check", "--policy", "p.yaml", "--trace", "run.jsonl", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    # the stricter policy denies what the recorded run allowed, and says so
    assert "DENY" in r.stdout and "(recorded: allow)" in r.stdout
