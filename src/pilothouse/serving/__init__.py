"""Serving agents over HTTP: an OpenAI-compatible endpoint (``pilothouse serve-agent``).

    from pilothouse.serving import create_app, serve
    serve(create_app({"support": agent}, api_keys={"<key>": "alice"}), port=8000)

Any OpenAI client then talks to the agent: ``model`` names it, each request is one
journaled run (in a session when one is named). See docs/serving.md.

Needs the ``server`` extra (starlette, uvicorn): ``pip install 'pilothouse[server]'``.
This package's ``__init__`` imports neither; they load with `create_app`, `serve` or
`BackgroundServer`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pilothouse.serving.access import ApiKeys
from pilothouse.serving.agents import served_agents
from pilothouse.serving.ratelimit import RateLimit

if TYPE_CHECKING:
    from pilothouse.serving.live import BackgroundServer
    from pilothouse.serving.notify import Webhook, new_webhook_secret

__all__ = [
    "ApiKeys",
    "BackgroundServer",
    "RateLimit",
    "Webhook",
    "create_app",
    "new_webhook_secret",
    "serve",
    "served_agents",
]


def create_app(agents: Any, **options: Any) -> Any:
    """See `pilothouse.serving.app.create_app` (imported here lazily: it loads starlette)."""
    from pilothouse.serving.app import create_app as _create_app

    return _create_app(agents, **options)


def serve(app: Any, **options: Any) -> None:
    """See `pilothouse.serving.live.serve` (uvicorn, in the foreground)."""
    from pilothouse.serving.live import serve as _serve

    _serve(app, **options)


def __getattr__(name: str) -> Any:
    if name == "BackgroundServer":
        from pilothouse.serving.live import BackgroundServer

        return BackgroundServer
    if name in ("Webhook", "new_webhook_secret"):
        from pilothouse.serving import notify

        return getattr(notify, name)
    raise AttributeError(f"module 'pilothouse.serving' has no attribute {name!r}")
