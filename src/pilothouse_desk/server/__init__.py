"""The support desk's web server (`pilothouse serve`): HTTP API, event streams, pages.

Needs the ``server`` extra (starlette, uvicorn): ``pip install 'pilothouse[server]'``.
The core never loads this package: ``pilothouse serve`` is the desk's command
(`pilothouse_desk.cli`, entry point ``pilothouse.commands``), which imports it to serve.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pilothouse_desk.server.app import SupportDesk

__all__ = ["create_app", "serve"]


def create_app(desk: SupportDesk, *, console_token: str, store: Any = None, **options: Any) -> Any:
    """See `pilothouse_desk.server.app.create_app` (imported lazily: it loads starlette)."""
    from pilothouse_desk.server.app import create_app as _create_app

    return _create_app(desk, console_token=console_token, store=store, **options)


def serve(
    desk: SupportDesk,
    *,
    console_token: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    forwarded_allow_ips: str | None = None,
    **options: Any,
) -> None:
    """Serve `desk` with uvicorn until interrupted (Ctrl-C or SIGTERM shuts down
    gracefully: replies in flight get `grace_seconds`, see `create_app`).

    `forwarded_allow_ips` names the reverse proxies whose ``X-Forwarded-For`` is
    believed (comma-separated addresses or networks); by default none, so each
    client is its TCP peer (see `pilothouse_desk.server.app.uvicorn_config`). `options`
    go to `pilothouse_desk.server.app.create_app` (rate limits, body size,
    ``grace_seconds``, ``recover``).
    """
    from pilothouse_desk.server.app import create_app as _create_app
    from pilothouse_desk.server.app import uvicorn_config, uvicorn_server

    app = _create_app(desk, console_token=console_token, **options)
    config = uvicorn_config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        forwarded_allow_ips=forwarded_allow_ips,
    )
    uvicorn_server(app, config).run()
