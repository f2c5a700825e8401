"""The `pilothouse` command: run an agent, read its journal.

    pilothouse run "question" [--model M] [--tools module:attr ...]
    pilothouse trace list
    pilothouse trace show RUN_ID
    pilothouse --version

Errors print one clear line on stderr and exit with status 1 (2 for usage errors).
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pilothouse._version import __version__

app = typer.Typer(
    name="pilothouse",
    help="Build, run, evaluate and guard LLM agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
trace_app = typer.Typer(help="Read recorded runs from the journal.", no_args_is_help=True)
app.add_typer(trace_app, name="trace")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Journal store: a SQLite path or ':memory:' "
        "(default $PILOTHOUSE_STORE or ./.pilothouse/journal.db).",
    ),
]


def _fail(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(1)


def _version(value: bool) -> None:
    if value:
        out.print(f"pilothouse {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Build, run, evaluate and guard LLM agents."""


def _load_tools(specs: list[str]) -> list[Any]:
    """Import `module:attr` specs; attr may be a tool, a function or a list of them."""
    tools: list[Any] = []
    for spec in specs:
        module_name, sep, attr = spec.partition(":")
        if not sep or not module_name or not attr:
            _fail(f"--tools {spec!r} must look like 'package.module:attribute'")
        sys.path.insert(0, ".")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            _fail(f"--tools {spec!r}: cannot import {module_name!r} ({exc})")
        finally:
            sys.path.pop(0)
        try:
            value = getattr(module, attr)
        except AttributeError:
            _fail(f"--tools {spec!r}: module {module_name!r} has no attribute {attr!r}")
        tools.extend(value if isinstance(value, (list, tuple)) else [value])
    return tools


@app.command()
def run(
    question: Annotated[str, typer.Argument(help="What to ask the agent.")],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help=(
                "Model string: 'local', 'openai:<model>' or 'openai:<model>@<base_url>' "
                "(default $PILOTHOUSE_MODEL or 'local')."
            ),
        ),
    ] = None,
    tools: Annotated[
        list[str] | None,
        typer.Option("--tools", "-t", help="Tools to offer, as module:attribute (repeatable)."),
    ] = None,
    instructions: Annotated[
        str, typer.Option("--instructions", "-i", help="System instructions.")
    ] = "",
    max_steps: Annotated[int, typer.Option(help="Most model calls in the run.")] = 10,
    store: StoreOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the answer.")] = False,
) -> None:
    """Run one agent on QUESTION and print its trace and answer."""
    from pilothouse.agent import Agent
    from pilothouse.exceptions import PilothouseError
    from pilothouse.trace import describe

    try:
        agent = Agent(
            model,
            instructions,
            _load_tools(tools or []),
            max_steps=max_steps,
            store=store,
            name="cli",
        )
        subscribers = [] if quiet else [lambda e: err.print(escape(describe(e)))]
        result = agent.run_sync(question, subscribers=subscribers)
    except PilothouseError as exc:
        _fail(str(exc))
    if not result.ok:
        assert result.stop is not None
        _fail(f"run {result.run_id} stopped: {result.stop.message}")
    out.print(escape(str(result.output)))


@trace_app.command("list")
def trace_list(
    limit: Annotated[int, typer.Option(help="How many runs to show, newest first.")] = 20,
    store: StoreOption = None,
) -> None:
    """List recorded runs, newest first."""
    import datetime

    from pilothouse.exceptions import PilothouseError
    from pilothouse.runtime.journal import open_store

    try:
        runs = open_store(store).list_runs(limit)
    except PilothouseError as exc:
        _fail(str(exc))
    if not runs:
        out.print('no runs recorded yet; try: pilothouse run "hello"')
        return
    table = Table("run id", "started", "agent", "model", "status", "steps", "tokens", "input")
    for r in runs:
        started = datetime.datetime.fromtimestamp(r.created).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            r.run_id,
            started,
            r.agent,
            r.model,
            r.status,
            str(r.steps),
            str(r.input_tokens + r.output_tokens),
            escape(r.input[:50]),
        )
    out.print(table)


@trace_app.command("show")
def trace_show(
    run_id: Annotated[str, typer.Argument(help="The run to show (see `trace list`).")],
    store: StoreOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the raw events as JSON lines.")
    ] = False,
) -> None:
    """Show every event of one run."""
    from pilothouse.exceptions import PilothouseError
    from pilothouse.runtime.journal import open_store
    from pilothouse.trace import describe

    try:
        s = open_store(store)
        info = s.get_run(run_id)
        events = s.events(run_id)
    except PilothouseError as exc:
        _fail(str(exc))
    if as_json:
        for e in events:
            out.print(json.dumps(e.to_dict(), ensure_ascii=False), soft_wrap=True)
        return
    out.print(
        f"[bold]run {info.run_id}[/] · status {info.status} · {info.steps} steps · "
        f"{info.input_tokens + info.output_tokens} tokens"
    )
    for e in events:
        out.print(f"[dim]{e.seq:>3} s{e.step}[/] {escape(describe(e, limit=400))}")


def main() -> None:
    """Entry point of the `pilothouse` script: any uncaught error becomes one line."""
    import os

    try:
        app(standalone_mode=True)
    except Exception as exc:  # a bug or an unexpected failure: still one clear line
        if os.environ.get("PILOTHOUSE_DEBUG"):
            raise
        err.print(
            f"[bold red]error:[/] {escape(type(exc).__name__)}: {escape(str(exc))} "
            "(set PILOTHOUSE_DEBUG=1 for the traceback)"
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
