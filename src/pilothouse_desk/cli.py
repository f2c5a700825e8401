"""The desk's commands for the ``pilothouse`` CLI (entry point group ``pilothouse.commands``).

    pilothouse serve [--host H] [--port P] [--shop FILE] [--store STORE] [--model M] [--single]

The core CLI finds `app` through this distribution's entry point
``serve = "pilothouse_desk.cli:app [server]"`` and imports this module only when the
command is named or ``pilothouse --help`` lists the commands, so it imports nothing
heavy at the top: the desk, starlette and uvicorn load when the server starts.
"""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
err = Console(stderr=True, highlight=False)


def _fail(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(1)


@app.command("serve")
def serve_command(
    host: Annotated[
        str, typer.Option(help="Interface to listen on (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    shop: Annotated[
        str,
        typer.Option(help="The shop's SQLite database (created and seeded if missing)."),
    ] = ".pilothouse/support/shop.db",
    store: Annotated[
        str | None,
        typer.Option(
            help="Journal store (default $PILOTHOUSE_STORE, else the demo's "
            ".pilothouse/support/journal.db, so `make demo`'s conversations are shown)."
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Model string: 'local', 'openai:<model>' or 'openai:<model>@<base_url>' "
            "(default $PILOTHOUSE_MODEL or 'local').",
        ),
    ] = None,
    console_token: Annotated[
        str | None,
        typer.Option(
            "--console-token",
            envvar="PILOTHOUSE_CONSOLE_TOKEN",
            help="Token for the console and dashboard (default $PILOTHOUSE_CONSOLE_TOKEN, "
            "else a new random one, printed at start).",
            show_default=False,
        ),
    ] = None,
    single: Annotated[
        bool,
        typer.Option(
            "--single",
            help="Answer with the single support agent instead of the team (triage, "
            "specialists, supervisor), e.g. to compare the two.",
        ),
    ] = False,
    supervisor_limit: Annotated[
        float,
        typer.Option(
            "--supervisor-limit",
            min=0,
            help="The largest refund (in dollars) the team's supervisor approves without a "
            "person; above it, a person decides.",
        ),
    ] = 500.0,
    grace_seconds: Annotated[
        float,
        typer.Option(
            "--grace-seconds",
            min=0,
            help="On SIGTERM or Ctrl-C, how long replies in flight may take to finish (new "
            "messages get 503 meanwhile); replies still running then are interrupted and "
            "finished by the next start.",
        ),
    ] = 20.0,
    rate_limit: Annotated[
        bool,
        typer.Option(
            help="Limit each client address to 10 new conversations and 30 messages a minute "
            "(bursts of 20 and 60); turn off only behind a proxy that limits per client."
        ),
    ] = True,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            "--forwarded-allow-ips",
            help="Reverse proxies (comma-separated addresses or networks, e.g. 127.0.0.1) "
            "whose X-Forwarded-For and X-Forwarded-Proto headers are believed; '*' believes "
            "anyone. Default: none, so each client is its TCP peer address and a forged "
            "header cannot dodge the per-client rate limits. Set it to the proxy's address "
            "when serving behind one (and have the proxy overwrite the header).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the support desk: customer chat at /, agent console at /console, /dashboard.

    At start, replies a crash or a stop interrupted are finished from the journal (or
    handed to the human queue with a note); a shutdown drains replies in flight.
    """
    import os
    import secrets

    from pilothouse import PilothouseError, open_store

    try:
        from pilothouse_desk.server import serve
    except ImportError as exc:  # pragma: no cover - the core checks the extra first
        _fail(f"the server needs the 'server' extra: pip install 'pilothouse[server]' ({exc})")
    from pilothouse_desk.desk import Desk

    token = console_token or secrets.token_urlsafe(24)
    try:
        journal = store or os.environ.get("PILOTHOUSE_STORE") or ".pilothouse/support/journal.db"
        desk = Desk(
            shop,
            open_store(journal),
            model=model,
            team=not single,
            supervisor_limit=supervisor_limit,
        )
    except PilothouseError as exc:
        _fail(str(exc))
    where = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    err.print(f"support chat:   {where}/")
    err.print(f"agent console:  {where}/console")
    err.print(f"dashboard:      {where}/dashboard")
    if not console_token:
        err.print(f"console token:  {token}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(
            "[yellow]warning:[/] listening beyond loopback; the server speaks plain HTTP, "
            "so put a TLS proxy in front before customers or tokens cross a network"
        )
    limits: dict[str, Any] = {"grace_seconds": grace_seconds}
    if not rate_limit:
        limits.update(open_limit=None, message_limit=None)
    serve(
        desk,
        console_token=token,
        host=host,
        port=port,
        forwarded_allow_ips=forwarded_allow_ips,
        **limits,
    )
