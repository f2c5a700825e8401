"""`pilothouse serve` as a user starts it: a real process on a loopback port."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pilothouse.cli",
            "serve",
            "--port",
            str(port),
            "--shop",
            str(tmp_path / "shop.db"),
            "--store",
            str(tmp_path / "journal.db"),
            *args,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url + "/healthz", timeout=1).raise_for_status()
            return proc, url
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                _, err = proc.communicate()
                raise AssertionError(f"pilothouse serve did not start: {err}") from None
            time.sleep(0.1)


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"pilothouse serve did not stop on SIGINT: {err}") from None
    # uvicorn shuts down gracefully, then re-raises the signal: 130 is the usual status
    # after Ctrl-C. No traceback either way.
    assert proc.returncode in (0, 130, -signal.SIGINT), err
    assert "Application shutdown complete" in err and "Traceback" not in err, err
    return err


def test_serve_prints_a_generated_console_token(tmp_path: Path) -> None:
    env = {"PILOTHOUSE_CONSOLE_TOKEN": ""}
    proc, url = _start(tmp_path, env=env)
    try:
        assert "Support chat" in httpx.get(url + "/").text
        r = httpx.post(url + "/api/conversations", json={})
        assert r.status_code == 201
        assert httpx.get(url + "/api/console/queue").status_code == 401
    finally:
        err = _stop(proc)
    match = re.search(r"console token:\s+(\S+)", err)
    assert match, err
    assert f"{url}/console" in err
    assert (tmp_path / "shop.db").exists()


def test_serve_reads_the_token_from_the_environment(tmp_path: Path) -> None:
    proc, url = _start(tmp_path, env={"PILOTHOUSE_CONSOLE_TOKEN": "from-the-env"})
    try:
        auth = {"Authorization": "Bearer from-the-env"}
        assert httpx.get(url + "/api/console/queue", headers=auth).json() == {"queue": []}
        wrong = httpx.get(url + "/api/console/queue", headers={"Authorization": "Bearer x"})
        assert wrong.status_code == 403
    finally:
        err = _stop(proc)
    assert "from-the-env" not in err and "console token:" not in err


def test_importing_pilothouse_and_its_cli_does_not_load_the_server() -> None:
    code = (
        "import sys, pilothouse, pilothouse.cli; "
        "assert 'starlette' not in sys.modules and 'uvicorn' not in sys.modules, 'loaded'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def _opens_from_forged_addresses(url: str, count: int) -> list[httpx.Response]:
    """`count` conversation opens, each claiming another client in X-Forwarded-For."""
    with httpx.Client(base_url=url, timeout=30) as client:
        return [
            client.post("/api/conversations", json={}, headers={"X-Forwarded-For": f"10.9.{i}.1"})
            for i in range(count)
        ]


def test_serve_ignores_forwarded_for_by_default(tmp_path: Path) -> None:
    # The default limit allows a burst of 20 opens and refills 10 a minute: 40 opens
    # from one address hit a 429 unless they took over two minutes.
    proc, url = _start(tmp_path)
    try:
        opened = _opens_from_forged_addresses(url, 40)
    finally:
        _stop(proc)
    refused = [r for r in opened if r.status_code == 429]
    assert refused, "forged X-Forwarded-For headers made new clients"
    assert "too many requests from 127.0.0.1" in refused[0].json()["error"]["message"]


def test_serve_believes_forwarded_for_from_a_named_proxy(tmp_path: Path) -> None:
    proc, url = _start(tmp_path, "--forwarded-allow-ips", "127.0.0.1")
    try:
        opened = _opens_from_forged_addresses(url, 30)  # 30 clients, one open each
        with httpx.Client(base_url=url, timeout=30) as client:
            same = [
                client.post("/api/conversations", json={}, headers={"X-Forwarded-For": "10.8.0.1"})
                for _ in range(40)
            ]
    finally:
        _stop(proc)
    assert [r.status_code for r in opened] == [201] * 30
    refused = [r for r in same if r.status_code == 429]
    assert refused and "too many requests from 10.8.0.1" in refused[0].json()["error"]["message"]


def test_serve_help_documents_the_proxy_option() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pilothouse.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"},
    )
    assert result.returncode == 0, result.stderr
    assert "--forwarded-allow-ips" in result.stdout
    assert "X-Forwarded-For" in result.stdout
