"""Run an ASGI app on a loopback port in a background thread: for tests and benchmarks.

    with LiveServer(app) as server:
        httpx.get(server.url + "/healthz")

The socket is bound before the thread starts (port 0: the system picks a free
port), so there is no window in which another process could take the port.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any


class LiveServer:
    """uvicorn serving `app` on 127.0.0.1 in a daemon thread with its own event loop."""

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        log_level: str = "warning",
        graceful_seconds: float = 2.0,
        forwarded_allow_ips: str | None = None,
    ) -> None:
        from pilothouse_desk.server.app import uvicorn_config, uvicorn_server

        # proto=IPPROTO_TCP matters: asyncio turns Nagle off (TCP_NODELAY) only on accepted
        # sockets that report it, and a socket made with proto 0 passes that on; with Nagle
        # on, every keep-alive request after the first waits ~40 ms for a delayed ACK.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, 0))
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        # The same settings as `pilothouse serve` (forwarded headers trusted only from
        # `forwarded_allow_ips`); host and port come from the bound socket.
        config = uvicorn_config(
            app,
            log_level=log_level,
            graceful_seconds=int(graceful_seconds),
            forwarded_allow_ips=forwarded_allow_ips,
        )
        self.server = uvicorn_server(app, config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def start(self, timeout: float = 10.0) -> LiveServer:
        """Start serving; returns once the server accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down gracefully (open event streams are ended) and wait for the thread."""
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._socket.close()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
