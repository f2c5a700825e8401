"""Run an ASGI app on a loopback port in a background thread: for tests and benchmarks.

    with LiveServer(app) as server:
        httpx.get(server.url + "/healthz")

The socket is bound before the thread starts (port 0: the system picks a free
port), so there is no window in which another process could take the port.
"""

from __future__ import annotations

from typing import Any

from pilothouse.serving.live import BackgroundServer


class LiveServer(BackgroundServer):
    """uvicorn serving `app` on 127.0.0.1 in a daemon thread with its own event loop,
    with the settings of `pilothouse serve` (forwarded headers trusted only from
    `forwarded_allow_ips`); host and port come from the bound socket."""

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

        def make(app: Any, host: str, port: int, log_level: str) -> Any:
            config = uvicorn_config(
                app,
                log_level=log_level,
                graceful_seconds=int(graceful_seconds),
                forwarded_allow_ips=forwarded_allow_ips,
            )
            return uvicorn_server(app, config)

        super().__init__(app, host=host, log_level=log_level, server=make)

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down gracefully (open event streams are ended) and wait for the thread."""
        super().stop(timeout)
