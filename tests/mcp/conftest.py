"""Fixtures of the MCP tests: real MCP servers on this machine, nothing mocked.

- `fault_server`: tests/mcp/fault_server.py, the SDK's own `MCPServer`, run as a process
  (stdio) or on loopback (streamable HTTP), with tools that misbehave on demand;
- `memory_server_command`, `everything_http_url`: the published
  `@modelcontextprotocol/server-memory` (stdio) and `server-everything` (streamable HTTP
  on loopback) from the npm registry, installed once into ~/.cache/pilothouse-tests/npm
  (skipped, saying why, when `npm` or `node` is missing or the install fails).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("mcp", reason="the mcp extra is not installed: pip install 'pilothouse[mcp]'")

from mcp_servers import HERE, free_port, start_http, stop

FAULT_SERVER = str(HERE / "fault_server.py")
NPM_CACHE = Path.home() / ".cache" / "pilothouse-tests" / "npm"
MEMORY_PACKAGE = "@modelcontextprotocol/server-memory"
EVERYTHING_PACKAGE = "@modelcontextprotocol/server-everything"
NPM_VERSION = "2026.8.31"  # both packages, as published on the npm registry


@pytest.fixture(scope="session")
def fault_http_url() -> Iterator[str]:
    """The fault server on loopback, over streamable HTTP (behind its misbehaving front)."""
    port = free_port()
    process = start_http([sys.executable, FAULT_SERVER, "http", str(port)], port)
    yield f"http://127.0.0.1:{port}/mcp"
    stop(process)


def npm_package(package: str, version: str) -> Path:
    """The entry script of a published npm MCP server, installed once into NPM_CACHE;
    skips (saying why) without npm/node or when the install fails."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("npm/node are not installed: the published npm MCP servers cannot run")
    entry = NPM_CACHE / "node_modules" / package / "dist" / "index.js"
    if not entry.exists():
        NPM_CACHE.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent", f"{package}@{version}"],
            cwd=NPM_CACHE,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0 or not entry.exists():
            pytest.skip(f"could not install {package} from npm: {done.stderr[-500:]}")
    return entry


@pytest.fixture(scope="session")
def memory_server_command() -> list[str]:
    """The command that starts the published memory server (stdio)."""
    entry = npm_package(MEMORY_PACKAGE, NPM_VERSION)
    return [shutil.which("node") or "node", str(entry)]


@pytest.fixture(scope="session")
def everything_http_url() -> Iterator[str]:
    """The published `server-everything` on loopback over streamable HTTP."""
    entry = npm_package(EVERYTHING_PACKAGE, NPM_VERSION)
    port = free_port()
    node = shutil.which("node") or "node"
    env = {"PATH": os.environ.get("PATH", ""), "PORT": str(port)}
    process = start_http([node, str(entry), "streamableHttp"], port, env=env)
    yield f"http://127.0.0.1:{port}/mcp"
    stop(process)


@pytest.fixture
def variant_file(tmp_path: Path) -> Path:
    """A fault server given FAULT_VARIANT_FILE lists one more tool while this file exists."""
    return tmp_path / "variant"
