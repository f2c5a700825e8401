"""`pilothouse parse`, run as a user would: a subprocess reading a file or stdin."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
    {"name": "now", "description": "", "parameters": {"type": "object", "properties": {}}},
]


def parse(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pilothouse.cli", "parse", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_react_file_with_tools(tmp_path: Path) -> None:
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps(TOOLS))
    reply = tmp_path / "reply.txt"
    reply.write_text(
        "Thought: weather\nAction: Get Weather\nAction Input: {'city': 'Paris',}\n"
        "Observation: invented\nFinal Answer: sunny"
    )
    done = parse("--format", "react", "--tools", str(tools), str(reply))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["kind"] == "tool_call"
    assert out["calls"] == [{"tool": "get_weather", "args": {"city": "Paris"}}]
    assert "single_quotes" in out["repairs"] and "trailing_comma" in out["repairs"]


def test_stdin_auto_final_answer_and_refusal(tmp_path: Path) -> None:
    out = json.loads(parse("--format", "auto", "-", stdin="The answer is 4.").stdout)
    assert out == {
        "kind": "final_answer",
        "answer": "The answer is 4.",
        "repairs": ["answer_without_marker"],
    }
    out = json.loads(parse("-f", "react", stdin="Action: None\nAction Input: None").stdout)
    assert out["kind"] == "unrecoverable" and out["reason"]


def test_special_tokens_with_auto(tmp_path: Path) -> None:
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps(TOOLS))
    out = json.loads(
        parse("--tools", str(tools), stdin='[TOOL_CALLS]get_weather[ARGS]{"city": "Rome"}').stdout
    )
    assert out["calls"] == [{"tool": "get_weather", "args": {"city": "Rome"}}]


def test_native_needs_one_tool_and_repairs_arguments(tmp_path: Path) -> None:
    one = tmp_path / "one.json"
    one.write_text(json.dumps(TOOLS[:1]))
    done = parse("--format", "native", "--tools", str(one), stdin='{"city": "Oslo\nNorway"}')
    assert json.loads(done.stdout)["calls"] == [
        {"tool": "get_weather", "args": {"city": "Oslo\nNorway"}}
    ]
    bad = parse("--format", "native", stdin="{}")
    assert bad.returncode == 1 and "exactly one tool" in bad.stderr


def test_usage_errors(tmp_path: Path) -> None:
    assert parse("--format", "yaml", stdin="x").returncode == 2
    missing = parse("--tools", str(tmp_path / "nope.json"), stdin="x")
    assert missing.returncode == 1 and "nope.json" in missing.stderr


def test_binary_junk_is_a_parse_result(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 200)
    done = parse(str(junk))
    assert done.returncode == 0
    assert json.loads(done.stdout)["kind"] in ("final_answer", "unrecoverable")
