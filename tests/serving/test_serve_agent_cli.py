"""`pilothouse serve-agent module:attr` as a user runs it, and the example that serves an
agent (examples/serve_agent.py) run as written."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _env() -> dict[str, str]:
    # examples/ for the `serve_agent:agents` spec; a PYTHONPATH already set (a worktree's
    # src/) is kept ahead of the installed package
    path = os.pathsep.join(p for p in (str(EXAMPLES), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "COLUMNS": "250"}
    env.pop("PILOTHOUSE_STORE", None)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_serve_agent_serves_until_interrupted(tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("# owner key\nalice alice-key-0123456789abcdef\n")
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "pilothouse.cli", "serve-agent", "serve_agent:agents",
         "--port", str(port), "--api-keys", str(keys), "--on-disconnect", "finish",
         "--rate-limit", "0.001", "--rate-burst", "3", "--cors-origin", "https://app.example"],
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:  # waiting for the process to listen (not a timing assertion)
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, process.stderr
            time.sleep(0.05)
        api = openai.OpenAI(base_url=url + "/v1", api_key="alice-key-0123456789abcdef")
        answer = api.chat.completions.create(
            model="orders", messages=[{"role": "user", "content": "Where is A1002?"}]
        )
        assert answer.choices[0].message.content == "Order A1002: waiting for stock."
        assert httpx.get(url + "/v1/models").status_code == 401  # keyed: no key, no answer
        # --rate-limit: a burst of 3 chat requests, then 429 (the bucket refills in days)
        more = [
            httpx.post(
                url + "/v1/chat/completions",
                json={"model": "orders", "messages": [{"role": "user", "content": "A1001?"}]},
                headers={"authorization": "Bearer alice-key-0123456789abcdef"},
                timeout=60,
            ).status_code
            for _ in range(3)
        ]
        assert more == [200, 200, 429]
        # --cors-origin: that origin's preflight is allowed
        preflight = httpx.options(
            url + "/v1/chat/completions",
            headers={"origin": "https://app.example", "access-control-request-method": "POST"},
        )
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert "serving orders at http://127.0.0.1:" in stderr and "keyed" in stderr
    assert (tmp_path / "serve_agent.db").exists()  # the run's journal


def test_serve_agent_says_what_is_wrong_with_its_arguments(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pilothouse.cli", "serve-agent", *args],
            cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    missing = run("no_such_module:agents")
    assert missing.returncode == 1 and "cannot import 'no_such_module'" in missing.stderr
    not_agents = run("serve_agent:ORDERS")
    assert not_agents.returncode == 1 and "cannot serve" in not_agents.stderr
    mode = run("serve_agent:agents", "--on-disconnect", "ignore")
    assert mode.returncode == 1 and "'cancel' or 'finish'" in mode.stderr
    short = tmp_path / "keys.txt"
    short.write_text("alice short\n")
    weak = run("serve_agent:agents", "--api-keys", str(short))
    assert weak.returncode == 1 and "too short" in weak.stderr
    clients = tmp_path / "clients.txt"
    clients.write_text("alice alice-key-0123456789abcdef\n")
    approvers = tmp_path / "approvers.txt"
    approvers.write_text("carol alice-key-0123456789abcdef\n")  # a client's key again
    shared = run(
        "serve_agent:agents", "--api-keys", str(clients), "--approver-keys", str(approvers)
    )
    assert shared.returncode == 1 and "approvers need keys of their own" in shared.stderr
    assert len(shared.stderr.strip().splitlines()) == 1


def test_the_serve_agent_example_runs_as_written(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "serve_agent.py")],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "models: ['orders']" in out
    assert "answer: Order A1001: shipped on Monday." in out
    assert "stream: Order A1002: waiting for stock." in out
    assert "turn 1: Hello! Give me an order number. (earlier questions in this chat: 0)" in out
    assert "turn 2: Hello! Give me an order number. (earlier questions in this chat: 1)" in out
