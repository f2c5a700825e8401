"""Running the endpoint: in the foreground (`serve`, the CLI's) or on a loopback port in
a background thread (`BackgroundServer`: examples, tests, benchmarks).

Forwarded headers (``X-Forwarded-For``) are never believed: nothing in the endpoint
keys on the client address, and uvicorn would otherwise trust them from 127.0.0.1.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self


def _config(app: Any, *, host: str, port: int, log_level: str) -> Any:
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=5,
    )


def _server(app: Any, config: Any) -> Any:
    """A `uvicorn.Server` that drains the app's runs first when shutdown begins.

    uvicorn's own shutdown closes the listening sockets, waits for open responses, then
    cancels them; a run of a cancelled request would go on unseen. So the endpoint's
    drain (`create_app`'s ``grace_seconds``) runs first: new requests get 503 with
    ``Retry-After`` meanwhile, runs in flight get the grace period, and those still
    running are cancelled (journaled ``interrupted``; their clients get an error).
    """
    import uvicorn

    endpoint = getattr(app.state, "endpoint", None)

    class _Server(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            if endpoint is not None:
                await endpoint.drain()
            await super().shutdown(sockets)

    return _Server(config)


def serve(app: Any, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serve `app` (`create_app`'s) with uvicorn until Ctrl-C or SIGTERM; runs in flight
    then get the app's grace period, and those still running are interrupted."""
    _server(app, _config(app, host=host, port=port, log_level=log_level)).run()


class BackgroundServer:
    """uvicorn serving `app` on 127.0.0.1 in a daemon thread with its own event loop.

        with BackgroundServer(create_app(agent)) as server:
            client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")

    The socket is bound before the thread starts (port 0: the system picks a free one),
    so no other process can take the port in between.
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        log_level: str = "warning",
        server: Callable[[Any, str, int, str], Any] | None = None,
    ) -> None:
        """`server(app, host, port, log_level)` makes the `uvicorn.Server` (another
        application's settings, e.g. the desk's); by default the endpoint's."""
        # proto=IPPROTO_TCP: asyncio turns Nagle off only on sockets that report TCP; with
        # Nagle on, each keep-alive request after the first waits ~40 ms for a delayed ACK.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, 0))
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        make = server or (lambda a, h, p, lv: _server(a, _config(a, host=h, port=p, log_level=lv)))
        self.server = make(app, host, self.port, log_level)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def start(self, timeout: float = 10.0) -> Self:
        """Start serving; returns once the server accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Shut down (runs in flight get the app's grace period) and wait for the thread."""
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._socket.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
