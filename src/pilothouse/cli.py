"""The `pilothouse` command: run an agent, read its journal.

    pilothouse run "question" [--model M] [--tools module:attr ...]
    pilothouse trace list
    pilothouse trace show RUN_ID
    pilothouse trace export RUN_ID -o FILE.jsonl
    pilothouse trace export-otel RUN_ID [--endpoint URL]
    pilothouse flow show RUN_ID [--mermaid]
    pilothouse replay RUN_ID|FILE.jsonl [--tools module:attr] [--live-tools]
    pilothouse sessions list | show SESSION_ID | export SESSION_ID
    pilothouse eval SUITE --model M | view LOG | compare LOG_A LOG_B
    pilothouse policy lint | check;  pilothouse parse
    pilothouse serve-agent module:attr [--host H --port P --on-disconnect cancel|finish]
    pilothouse mcp serve module:attr [--http PORT]
    pilothouse --version

Installed packages add commands through the ``pilothouse.commands`` entry point
group (`pilothouse.plugins`): ``pilothouse serve`` comes from ``pilothouse_desk``.

Errors print one clear line on stderr and exit with status 1 (2 for usage errors).
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, NoReturn, cast

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from pilothouse._version import __version__

_PLUGIN_COMMANDS: dict[str, Any] = {}  # loaded plugin commands (click commands), by name


class _Commands(TyperGroup):
    """The core's commands plus those installed packages add (see `pilothouse.plugins`).

    A plugin's command is imported only when it is named on the command line or
    ``--help`` lists the commands; ``pilothouse run`` never reads entry points.
    """

    def _plugin_names(self) -> list[str]:
        from pilothouse import plugins

        return sorted(n for n in plugins.entry_points(plugins.COMMANDS) if n not in self.commands)

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *self._plugin_names()]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name in _PLUGIN_COMMANDS:
            return command or _PLUGIN_COMMANDS[cmd_name]
        from pilothouse import plugins

        ep = plugins.entry_points(plugins.COMMANDS).get(cmd_name)
        if ep is None:
            return None
        _PLUGIN_COMMANDS[cmd_name] = _plugin_command(ep)
        return _PLUGIN_COMMANDS[cmd_name]

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name, command, rest = super().resolve_command(ctx, args)
        if name is not None and name not in self.commands and not ctx.resilient_parsing:
            from pilothouse import plugins
            from pilothouse.exceptions import ConfigurationError

            try:  # the command is about to run: its extras must be there
                plugins.check_extras(
                    plugins.entry_points(plugins.COMMANDS)[name], f"`pilothouse {name}`"
                )
            except ConfigurationError as exc:
                _fail(str(exc))
        return name, command, rest


def _plugin_command(ep: Any) -> Any:
    """The command of a `pilothouse.commands` entry point (a `typer.Typer`); one that
    cannot be loaded becomes a command that says why, so ``--help`` still lists it."""
    from pilothouse import plugins
    from pilothouse.exceptions import ConfigurationError

    what = f"`pilothouse {ep.name}`"
    try:
        value = plugins.load(ep, what)
    except ConfigurationError as exc:
        return _unavailable(ep.name, str(exc))
    if not isinstance(value, typer.Typer):
        return _unavailable(
            ep.name, f"{what}: {ep.value} is a {type(value).__name__}, not a typer.Typer"
        )
    return typer.main.get_command(value)


def _unavailable(name: str, message: str) -> Any:
    stub = typer.Typer(add_completion=False)

    @stub.command(name, help=f"(unavailable: {escape(message)})")  # help is rich markup
    def unavailable() -> None:
        _fail(message)

    return typer.main.get_command(stub)


app = typer.Typer(
    cls=_Commands,
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


def _import_attr(option: str, spec: str) -> Any:
    """The object a ``package.module:attribute`` spec names (the working directory first)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        _fail(f"{option} {spec!r} must look like 'package.module:attribute'")
    sys.path.insert(0, ".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        _fail(f"{option} {spec!r}: cannot import {module_name!r} ({exc})")
    finally:
        sys.path.pop(0)
    try:
        return getattr(module, attr)
    except AttributeError:
        _fail(f"{option} {spec!r}: module {module_name!r} has no attribute {attr!r}")


def _load_tools(specs: list[str]) -> list[Any]:
    """Import `module:attr` specs; attr may be a tool, a function or a list of them."""
    tools: list[Any] = []
    for spec in specs:
        value = _import_attr("--tools", spec)
        tools.extend(value if isinstance(value, (list, tuple)) else [value])
    return tools


# The options that define the agent: `resume` must rebuild the agent a run started with.
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help=(
            "Model string: 'local', 'openai:<model>' or 'openai:<model>@<base_url>' "
            "(default $PILOTHOUSE_MODEL or 'local')."
        ),
    ),
]
ToolsOption = Annotated[
    list[str] | None,
    typer.Option("--tools", "-t", help="Tools to offer, as module:attribute (repeatable)."),
]
InstructionsOption = Annotated[
    str, typer.Option("--instructions", "-i", help="System instructions.")
]
MaxStepsOption = Annotated[int, typer.Option(help="Most model calls in the run.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the answer.")]


def _drive(
    start: Callable[[Any, list[Callable[[Any], None]]], Any],
    model: str | None,
    tools: list[str] | None,
    instructions: str,
    max_steps: int,
    store: str | None,
    quiet: bool,
) -> None:
    """Build the CLI agent, start or resume its run, print the trace and the answer."""
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
        result = start(agent, subscribers)
    except PilothouseError as exc:
        _fail(str(exc))
    if result.outcome == "paused":
        err.print(f"run {result.run_id} is paused, waiting for a person:")
        for p in result.pending:
            what = "approve" if p.kind == "approval" else "answer"
            err.print(escape(f"  {p.key}  {what} {p.tool}({p.arguments}): {p.reason}"))
        first = result.pending[0]
        flag = f"--approve {first.key}" if first.kind == "approval" else f"--answer {first.key}=..."
        err.print(
            escape(f"continue with: pilothouse resume {result.run_id} {flag} (or --deny KEY)")
        )
        raise typer.Exit(3)
    if not result.ok:
        assert result.stop is not None
        _fail(f"run {result.run_id} stopped: {result.stop.message}")
    out.print(escape(str(result.output)))


@app.command()
def run(
    question: Annotated[str, typer.Argument(help="What to ask the agent.")],
    model: ModelOption = None,
    tools: ToolsOption = None,
    instructions: InstructionsOption = "",
    max_steps: MaxStepsOption = 10,
    store: StoreOption = None,
    quiet: QuietOption = False,
) -> None:
    """Run one agent on QUESTION and print its trace and answer."""
    _drive(
        lambda agent, subs: agent.run_sync(question, subscribers=subs),
        model,
        tools,
        instructions,
        max_steps,
        store,
        quiet,
    )


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(help="The run to continue (see `trace list`).")],
    model: ModelOption = None,
    tools: ToolsOption = None,
    instructions: InstructionsOption = "",
    max_steps: MaxStepsOption = 10,
    store: StoreOption = None,
    quiet: QuietOption = False,
    approve: Annotated[
        list[str] | None,
        typer.Option("--approve", help="Approve the waiting call KEY (repeatable)."),
    ] = None,
    deny: Annotated[
        list[str] | None, typer.Option("--deny", help="Decline the waiting call KEY (repeatable).")
    ] = None,
    answer: Annotated[
        list[str] | None,
        typer.Option("--answer", help="Answer a waiting question: KEY=TEXT (repeatable)."),
    ] = None,
    happened: Annotated[
        list[str] | None,
        typer.Option(
            "--happened",
            help="Settle the in-doubt call KEY: it took effect; KEY=RESULT gives the result "
            "you found (repeatable).",
        ),
    ] = None,
    did_not_happen: Annotated[
        list[str] | None,
        typer.Option(
            "--did-not-happen",
            help="Settle the in-doubt call KEY: it did not take effect (repeatable).",
        ),
    ] = None,
    by: Annotated[str, typer.Option("--by", help="Who decided (journaled).")] = "",
) -> None:
    """Continue a stopped or paused run RUN_ID from its journal (same options as the run had).

    A paused run (exit code 3 from `run`) continues with the decisions: --approve KEY,
    --deny KEY, --answer KEY=TEXT; a run still waiting after them exits with 3 again.
    A run in doubt (a side effect that may have happened) continues once a person who
    checked settles it: --happened KEY[=RESULT] or --did-not-happen KEY.
    """
    approvals: dict[str, bool | str] = {k: True for k in approve or []}
    approvals.update({k: False for k in deny or []})
    for item in answer or []:
        key, sep, text = item.partition("=")
        if not sep:
            _fail(f"--answer {item!r} must look like KEY=TEXT")
        approvals[key] = text
    settle: dict[str, bool | str] = {k: False for k in did_not_happen or []}
    for item in happened or []:
        key, sep, text = item.partition("=")
        settle[key] = text if sep else True
    _drive(
        lambda agent, subs: agent.resume_sync(
            run_id,
            approvals=approvals or None,
            approved_by=by,
            settle=settle or None,
            subscribers=subs,
        ),
        model,
        tools,
        instructions,
        max_steps,
        store,
        quiet,
    )


@app.command("worker")
def worker_command(
    agent_spec: Annotated[
        str | None,
        typer.Option(
            "--agent",
            help="The agent whose runs to resume: module:attribute, an Agent or a function "
            "returning one (default: the CLI agent of `run`, built from the options below).",
        ),
    ] = None,
    model: ModelOption = None,
    tools: ToolsOption = None,
    instructions: InstructionsOption = "",
    max_steps: MaxStepsOption = 10,
    store: StoreOption = None,
    worker_id: Annotated[
        str | None, typer.Option("--id", help="This worker's name in leases (default host:pid).")
    ] = None,
    lease_seconds: Annotated[
        float, typer.Option(help="How long a claim holds without renewal.")
    ] = 30.0,
    idle_for: Annotated[
        float,
        typer.Option(
            help="Only runs whose journal was quiet this long (live runs hold a lease and "
            "are never taken: 0 is safe)."
        ),
    ] = 0.0,
    watch: Annotated[
        float,
        typer.Option(help="After draining, look again every WATCH seconds (0: exit when done)."),
    ] = 0.0,
) -> None:
    """Resume runs whose process died: claim one, resume it, release it, take the next.

    Start any number of workers against one store (PostgreSQL, or one SQLite file on
    one machine): each run is resumed by exactly one. Paused runs wait for a person and
    are not taken. Exits 1 when a run could not be resumed.
    """
    import asyncio
    import time

    from pilothouse.agent import Agent
    from pilothouse.exceptions import PilothouseError
    from pilothouse.runtime.workers import default_worker_id

    try:
        if agent_spec is None:
            agent: Agent[Any, Any] = Agent(
                model,
                instructions,
                _load_tools(tools or []),
                max_steps=max_steps,
                store=store,
                name="cli",
            )
        else:
            if store is not None or model is not None or tools:
                _fail("--agent brings its own model, tools and store; drop the other options")
            value = _import_attr("--agent", agent_spec)
            made = value() if callable(value) and not isinstance(value, Agent) else value
            if not isinstance(made, Agent):
                _fail(f"--agent {agent_spec!r} is neither an Agent nor a function returning one")
            agent = made
    except PilothouseError as exc:
        _fail(str(exc))
    name = worker_id or default_worker_id()
    err.print(f"worker {name} resumes stopped runs of agent {agent.name!r}")
    failed = 0
    while True:
        try:
            report = asyncio.run(
                agent.resume_stale(worker=name, lease_seconds=lease_seconds, idle_for=idle_for)
            )
        except (PilothouseError, ValueError) as exc:
            _fail(str(exc))
        for result in report.resumed:
            out.print(escape(f"{result.run_id}  {result.outcome}"))
        for run_id, why in report.failed.items():
            out.print(escape(f"{run_id}  failed: {why}"))
        failed += len(report.failed)
        if watch <= 0:
            break
        time.sleep(watch)
    err.print(f"worker {name}: no stopped run left")
    if failed:
        raise typer.Exit(1)


@trace_app.command("list")
def trace_list(
    limit: Annotated[int, typer.Option(help="How many runs to show, newest first.")] = 20,
    store: StoreOption = None,
    status: Annotated[
        str | None,
        typer.Option(
            help="Only runs in this status: paused (waiting for a person), running, "
            "interrupted, final, budget_stop, ... (an unknown one is refused with the list)."
        ),
    ] = None,
) -> None:
    """List recorded runs, newest first (`--status paused`: the runs waiting for a person)."""
    import datetime
    from typing import get_args

    from pilothouse.events import RunStatus
    from pilothouse.exceptions import PilothouseError
    from pilothouse.runtime.journal import open_store

    known = get_args(RunStatus)
    if status is not None and status not in known:
        _fail(f"--status is one of {', '.join(known)}, not {status!r}")
    try:
        runs = open_store(store).list_runs(limit, status=cast(Any, status))
    except PilothouseError as exc:
        _fail(str(exc))
    if not runs:
        if status is not None:
            out.print(f"no {status} runs")
            return
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
    from pilothouse.events import RunStarted
    from pilothouse.exceptions import PilothouseError
    from pilothouse.runtime.journal import open_store
    from pilothouse.trace import describe, walk_tree

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
    started = events[0] if events and isinstance(events[0], RunStarted) else None
    if started is not None and started.parent_run_id:
        out.print(f"[dim]child of {started.parent_run_id} (root {started.root_run_id})[/]")
    tree = list(walk_tree(s, run_id))
    if len(tree) > 1:
        out.print("[bold]run tree[/]")
        for depth, node in tree:
            try:
                child = s.get_run(node)
                what = f"{child.agent} · {child.status} · {child.steps} steps"
            except PilothouseError:
                what = "not started"
            out.print(f"  {'  ' * depth}{escape(node)}  [dim]{escape(what)}[/]")
    for e in events:
        out.print(f"[dim]{e.seq:>3} s{e.step}[/] {escape(describe(e, limit=400))}")


# --- replay: `trace export`, `replay` (self-contained block; see pilothouse.runtime.replay) ---


@trace_app.command("export")
def trace_export(
    run_id: Annotated[str, typer.Argument(help="The run to export (see `trace list`).")],
    output: Annotated[str, typer.Option("--output", "-o", help="The JSON Lines file to write.")],
    store: StoreOption = None,
) -> None:
    """Write one run's journal to a JSON Lines file: a cassette for `replay` and tests."""
    from pilothouse.exceptions import PilothouseError
    from pilothouse.runtime.replay import export_journal

    try:
        count = export_journal(store, run_id, output)
    except PilothouseError as exc:
        _fail(str(exc))
    out.print(f"wrote {count} events of run {escape(run_id)} to {escape(output)}")


@trace_app.command("export-otel")
def trace_export_otel(
    run_id: Annotated[str, typer.Argument(help="The run to export (see `trace list`).")],
    store: StoreOption = None,
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint",
            help="OTLP/HTTP base URL (/v1/traces is appended); default: "
            "OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT.",
        ),
    ] = None,
    content: Annotated[
        bool, typer.Option("--content", help="Include message text, tool arguments and results.")
    ] = False,
) -> None:
    """Send one recorded run (and its child runs) to an OpenTelemetry collector as spans."""
    import os

    from pilothouse.exceptions import PilothouseError
    from pilothouse.runtime.journal import open_store

    env = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if endpoint is None and not env:
        _fail("no collector: pass --endpoint URL or set OTEL_EXPORTER_OTLP_ENDPOINT")
    try:
        from pilothouse.telemetry.setup import export_run, otlp_exporter

        s = open_store(store)
        s.get_run(run_id)  # RunNotFoundError names it
        count = export_run(s, run_id, exporter=otlp_exporter(endpoint), content=content)
    except PilothouseError as exc:
        _fail(str(exc))
    out.print(f"exported {count} spans of run {escape(run_id)}")


@app.command("replay")
def replay_command(
    source: Annotated[
        str,
        typer.Argument(
            help="A recorded run's id, or its journal exported to a .jsonl file.",
            metavar="RUN_ID|FILE.jsonl",
        ),
    ],
    tools: ToolsOption = None,
    instructions: Annotated[
        str | None,
        typer.Option(
            "--instructions", "-i", help="System instructions (default: the recorded ones)."
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="The model string the run used, for its capabilities only; it is never "
            "called (default: the recorded model).",
        ),
    ] = None,
    max_steps: Annotated[
        int | None,
        typer.Option(help="Most model calls (default: the recorded limit, else 10)."),
    ] = None,
    live_tools: Annotated[
        bool,
        typer.Option(
            "--live-tools",
            help="Run read-only tools for real and compare their results (needs --tools).",
        ),
    ] = False,
    store: StoreOption = None,
) -> None:
    """Re-run a recorded run, model and tool results served from its journal.

    Prints "replayed N steps: identical" (exit status 0) or the first divergence: the
    step and what differed (exit status 1). Without --tools, stand-ins named after the
    recorded tools are served; with --tools the real definitions are checked too.
    """
    import os

    from pilothouse.agent import Agent
    from pilothouse.events import RunStarted, Stopped
    from pilothouse.exceptions import PilothouseError
    from pilothouse.models.replay import ReplayModel
    from pilothouse.runtime.journal import open_store
    from pilothouse.runtime.replay import capabilities_of, load_journal, recorded_tools
    from pilothouse.testing import replay

    if live_tools and not tools:
        _fail("--live-tools runs the real tools: give them with --tools module:attribute")
    try:
        if source.endswith(".jsonl") or os.path.isfile(source):
            events = load_journal(source)
        else:
            events = open_store(store).events(source)
        started = events[0] if events else None
        if not isinstance(started, RunStarted):
            _fail(f"run {source!r}: the journal does not begin with run_started")
        if max_steps is None:
            stop = events[-1]
            recorded = max((e.step for e in events), default=0)
            max_steps = (
                int(stop.maximum)
                if isinstance(stop, Stopped) and stop.reason == "steps" and stop.maximum
                else max(10, recorded)
            )
        # The model is never called: it only says which action format the agent uses.
        replayed = ReplayModel(
            events, capabilities=capabilities_of(model or started.model, fallback=model is None)
        )
        agent = Agent(
            replayed,
            started.instructions if instructions is None else instructions,
            _load_tools(tools) if tools else recorded_tools(events),
            max_steps=max_steps,
            store=":memory:",
            name=started.agent,
        )
        report = replay(agent, events, live_tools=live_tools)
    except PilothouseError as exc:
        _fail(str(exc))
    out.print(escape(report.summary()), soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


# --- end of replay block ---------------------------------------------------------------


# --------------------------------------------------------------------------- eval
# `pilothouse eval SUITE --model M ...`, `pilothouse eval view LOG`,
# `pilothouse eval compare LOG_A LOG_B` (see pilothouse.evals).


@app.command(
    "eval",
    context_settings={"help_option_names": ["--help", "-h"]},
    no_args_is_help=True,
)
def eval_command(
    target: Annotated[
        str,
        typer.Argument(
            help="A suite: a name installed packages register (entry points "
            "'pilothouse.suites', e.g. builtin) or package.module:attr; or 'view' / 'compare'.",
            metavar="SUITE|view|compare",
        ),
    ],
    logs: Annotated[
        list[str] | None,
        typer.Argument(help="For view: LOG; for compare: LOG_A LOG_B.", show_default=False),
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Model string to evaluate (repeatable)."),
    ] = None,
    epochs: Annotated[int, typer.Option(help="Runs of each scenario per model.")] = 20,
    concurrency: Annotated[int, typer.Option(help="Samples running at once.")] = 4,
    log_dir: Annotated[
        str, typer.Option("--log-dir", help="Where the JSON log, journal and HTML report go.")
    ] = ".pilothouse/evals",
    scenario: Annotated[
        list[str] | None,
        typer.Option("--scenario", "-s", help="Only scenarios whose name contains this."),
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option(help="Per-sample step budget (default: the suite's).")
    ] = None,
    max_seconds: Annotated[
        float | None, typer.Option(help="Per-sample time budget (default: the suite's).")
    ] = None,
    failures: Annotated[
        bool, typer.Option("--failures", help="view: also print each failing sample's trace.")
    ] = False,
    temperature: Annotated[
        float | None,
        typer.Option(help="Sample at this temperature, seeded by the epoch number."),
    ] = None,
) -> None:
    """Evaluate models on a suite; or `eval view LOG`, `eval compare LOG_A LOG_B`.

    Prints the success table: scenarios as rows, models as columns, a Total row.

    Writes the JSON log, the journals and an HTML report to --log-dir.
    """
    from pilothouse.exceptions import PilothouseError

    try:
        if target == "view":
            if len(logs or []) != 1:
                _fail("usage: pilothouse eval view LOG")
            _eval_view((logs or [""])[0], failures)
        elif target == "compare":
            if len(logs or []) != 2:
                _fail("usage: pilothouse eval compare LOG_A LOG_B")
            a, b = logs or ["", ""]
            _eval_compare(a, b)
        else:
            if logs:
                _fail(f"unexpected arguments after the suite: {' '.join(logs)}")
            _eval_run(
                target,
                model or [],
                epochs,
                concurrency,
                log_dir,
                scenario,
                max_steps,
                max_seconds,
                temperature,
            )
    except PilothouseError as exc:
        _fail(str(exc))


def _eval_run(
    suite_spec: str,
    models: list[str],
    epochs: int,
    concurrency: int,
    log_dir: str,
    scenarios: list[str] | None,
    max_steps: int | None,
    max_seconds: float | None,
    temperature: float | None,
) -> None:
    import asyncio
    import dataclasses

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from pilothouse.evals.report import success_table, write_html, write_log
    from pilothouse.evals.runner import SampleRecord, eval_paths, load_suite, run_eval

    suite = load_suite(suite_spec)
    if not models:
        _fail("give at least one --model (e.g. --model local)")
    budget = suite.budget
    if max_steps is not None:
        budget = dataclasses.replace(budget, max_steps=max_steps)
    if max_seconds is not None:
        budget = dataclasses.replace(budget, max_seconds=max_seconds)
    log_path, journal_path, html_path = eval_paths(log_dir, suite.name)
    journal_path.parent.mkdir(parents=True, exist_ok=True)
    selected = [s for s in suite.scenarios if not scenarios or any(f in s.name for f in scenarios)]
    total = len(selected) * len(models) * epochs
    failed = 0
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task(f"eval {suite.name}", total=total)

        def advance(sample: SampleRecord) -> None:
            nonlocal failed
            failed += not sample.ok
            progress.update(task, advance=1, description=f"eval {suite.name} · {failed} failed")

        log = asyncio.run(
            run_eval(
                suite,
                models,
                epochs=epochs,
                concurrency=concurrency,
                budget=budget,
                store=str(journal_path),
                scenarios=scenarios,
                on_sample=advance,
                temperature=temperature,
            )
        )
    log.eval_id = log_path.stem
    write_log(log, log_path)
    write_html(log, html_path)
    out.print(success_table(log))
    out.print(f"log: {log_path}\nreport: {html_path}\njournal: {journal_path}")


def _eval_view(path: str, show_failures: bool) -> None:
    from pilothouse.evals.report import describe_event, read_log, success_table

    log = read_log(path)
    out.print(success_table(log))
    if show_failures:
        for s in log.failures():
            out.print(
                f"\n[bold red]{escape(s.failure or '')}[/] {escape(s.scenario)} · "
                f"{escape(s.model)} · epoch {s.epoch}: {escape(s.message)}"
            )
            for e in s.events:
                out.print(f"  [dim]{e.get('seq', '?'):>3}[/] {escape(describe_event(e))}")


def _eval_compare(path_a: str, path_b: str) -> None:
    from pilothouse.evals.report import compare, read_log

    a, b = read_log(path_a), read_log(path_b)
    regressed, improved, same = compare(a, b)
    if not regressed and not improved and not same:
        _fail("the two logs share no (scenario, model) cell to compare")
    table = Table("change", "scenario", "model", "A", "B", "delta")
    for label, changes in (("regressed", regressed), ("improved", improved)):
        for c in changes:
            colour = "red" if label == "regressed" else "green"
            table.add_row(
                f"[{colour}]{label}[/]",
                escape(c.scenario),
                escape(c.model),
                f"{c.before * 100:.0f}%",
                f"{c.after * 100:.0f}%",
                f"{c.delta * 100:+.0f} pts",
            )
    out.print(table)
    totals = [(m, a.total(m).rate, b.total(m).rate) for m in a.models if m in b.models]
    for m, ra, rb in totals:
        out.print(f"total {escape(m)}: {ra * 100:.0f}% → {rb * 100:.0f}%")
    out.print(f"{len(regressed)} regressed, {len(improved)} improved, {len(same)} unchanged")


# --- sessions: `pilothouse sessions list|show|export` (self-contained block) -------------

sessions_app = typer.Typer(
    help="Read conversations (sessions) from the journal.", no_args_is_help=True
)
app.add_typer(sessions_app, name="sessions")


def _when(ts: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _short(text: str, limit: int) -> str:
    """`text` on one line, cut to `limit` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _message_line(message: Any) -> str:
    """A session message in a few words: its text, the calls it makes, what it answers."""
    text = message.content
    if message.tool_calls:
        calls = ", ".join(
            f"{c.name}({json.dumps(c.arguments, ensure_ascii=False)})" for c in message.tool_calls
        )
        text = f"{text} → {calls}" if text else f"→ {calls}"
    if message.role == "tool":
        text = f"{message.name or '?'}: {text}"
    return _short(text, 100)


@sessions_app.command("list")
def sessions_list(
    limit: Annotated[
        int, typer.Option(help="How many sessions to show, most recently updated first.")
    ] = 20,
    store: StoreOption = None,
) -> None:
    """List sessions, most recently updated first."""
    from pilothouse.exceptions import PilothouseError
    from pilothouse.runtime.journal import open_store

    try:
        sessions = open_store(store).list_sessions(limit)
    except (PilothouseError, ValueError) as exc:
        _fail(str(exc))
    if not sessions:
        out.print("no sessions recorded yet")
        return
    table = Table("session id", "created", "updated", "messages", "metadata")
    for info in sessions:
        metadata = json.dumps(info.metadata, ensure_ascii=False) if info.metadata else ""
        table.add_row(
            escape(info.session_id),
            _when(info.created),
            _when(info.updated),
            str(info.messages),
            escape(_short(metadata, 60)),
        )
    out.print(table)


@sessions_app.command("show")
def sessions_show(
    session_id: Annotated[str, typer.Argument(help="The session to show (see `sessions list`).")],
    start: Annotated[int, typer.Option(help="The first message to show (its seq).")] = 0,
    limit: Annotated[
        int | None, typer.Option(help="How many messages to show (default: all).")
    ] = None,
    store: StoreOption = None,
) -> None:
    """Show a session's messages, one line each: seq, role (and author), text, run."""
    from pilothouse.exceptions import PilothouseError
    from pilothouse.runtime.session import Session

    try:
        session = Session.open(store, session_id)
        info = session.info()
        messages = session.messages(start, limit)
    except (PilothouseError, ValueError) as exc:
        _fail(str(exc))
    out.print(
        f"[bold]session {escape(info.session_id)}[/] · {info.messages} messages · "
        f"updated {_when(info.updated)}"
    )
    if not messages:
        out.print(f"no messages from seq {start}")
        return
    for m in messages:
        who = m.message.role + (f"/{m.author}" if m.author else "")
        out.print(
            f"[dim]{m.seq:>4}[/] {escape(who):<16} {escape(_message_line(m.message))}"
            f"  [dim]{escape(m.run_id or '-')}[/]",
            soft_wrap=True,
        )


@sessions_app.command("export")
def sessions_export(
    session_id: Annotated[str, typer.Argument(help="The session to export (see `sessions list`).")],
    store: StoreOption = None,
) -> None:
    """Print a whole session as JSON: its record, every message, its runs."""
    from pilothouse.exceptions import PilothouseError
    from pilothouse.runtime.session import Session

    try:
        data = Session.open(store, session_id).export()
    except (PilothouseError, ValueError) as exc:
        _fail(str(exc))
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


# --- policy: `pilothouse policy lint|check` (self-contained block) -----------------------

policy_app = typer.Typer(help="Lint policies and replay traces through them.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")

_PredicatesOption = Annotated[
    str | None,
    typer.Option(
        "--predicates",
        help="Named predicates the policy uses, as module:attribute (a dict name -> function).",
    ),
]


def _load_predicates(spec: str | None) -> dict[str, Any] | None:
    if spec is None:
        return None
    value = _load_tools([spec])
    if len(value) == 1 and isinstance(value[0], dict):
        return value[0]
    if all(callable(v) for v in value):
        return {v.__name__: v for v in value}
    _fail(f"--predicates {spec!r} must name a dict of predicates or a list of functions")


def _read_policy(path: str, predicates: dict[str, Any] | None, lenient: bool = False) -> Any:
    """Load a policy file; with `lenient`, unknown predicates are stubbed (for lint)."""
    from pilothouse.exceptions import PolicyError
    from pilothouse.policy import Policy

    preds = dict(predicates or {})
    lookups: dict[str, Any] = {}
    if lenient:
        import re as _re

        from pilothouse.policy.loader import parse_yaml

        try:
            with open(path, encoding="utf-8") as fh:
                data, _ = parse_yaml(fh.read(), path)
        except (OSError, PolicyError) as exc:
            _fail(str(exc))
        names = _re.findall(r"[A-Za-z_][A-Za-z0-9_]*", json.dumps(data))
        for n in names:
            preds.setdefault(n, _stub_predicate)
            lookups[n] = _stub_predicate
    try:
        return Policy.load(path, predicates=preds, lookups=lookups)
    except PolicyError as exc:
        _fail(str(exc))


def _stub_predicate(call: Any, ctx: Any) -> bool:
    """Stands in for a predicate lint has no code for (lint reports which ones)."""
    return True


@policy_app.command("lint")
def policy_lint(
    file: Annotated[str, typer.Argument(help="The policy file (YAML).")],
    tools_json: Annotated[
        str | None,
        typer.Option("--tools-json", help="The tools, as a JSON list of OpenAI function schemas."),
    ] = None,
    predicates: _PredicatesOption = None,
) -> None:
    """Report unknown tools or arguments, shadowed rules and conflicts (exit 1 on errors)."""
    from pilothouse.policy.lint import lint, lint_yaml, tools_from_openai_json

    policy = _read_policy(file, _load_predicates(predicates), lenient=predicates is None)
    stubbed = {n for n, f in policy.predicates.items() if f is _stub_predicate}
    stubbed |= {n for n, f in policy.lookups.items() if f is _stub_predicate}
    tools = None
    if tools_json is not None:
        try:
            with open(tools_json, encoding="utf-8") as fh:
                tools = tools_from_openai_json(fh.read())
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            _fail(f"--tools-json {tools_json}: cannot read tool schemas ({exc})")
    findings = lint(policy, tools, stubbed=stubbed)
    with open(file, encoding="utf-8") as fh:
        findings += lint_yaml(fh.read())
    for f in findings:
        colour = "red" if f.level == "error" else "yellow"
        out.print(f"[{colour}]{escape(str(f))}[/]")
    errors = sum(f.level == "error" for f in findings)
    out.print(
        f"{file}: {len(policy.rules)} rule(s), {errors} error(s), "
        f"{len(findings) - errors} warning(s)"
    )
    if errors:
        raise typer.Exit(1)


@policy_app.command("check")
def policy_check(
    policy_file: Annotated[str, typer.Option("--policy", help="The policy file (YAML).")],
    trace: Annotated[
        str,
        typer.Option(
            "--trace",
            help="JSON lines: a journal export (`trace show --json`) or user/tool-call lines.",
        ),
    ],
    predicates: _PredicatesOption = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit with status 1 if any call is denied.")
    ] = False,
) -> None:
    """Replay TRACE through the policy and print each decision."""
    from pilothouse.exceptions import PolicyError
    from pilothouse.policy.replay import read_trace, replay

    policy = _read_policy(policy_file, _load_predicates(predicates))
    try:
        with open(trace, encoding="utf-8") as fh:
            items = read_trace(fh)
        results = list(replay(policy, items))
    except (OSError, PolicyError) as exc:
        _fail(str(exc))
    denied = 0
    for r in results:
        d = r.decision
        denied += not d.allowed
        colour = {"allow": "green", "deny": "red", "ask": "yellow"}[d.effect]
        args = ", ".join(
            f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in r.call.arguments.items()
        )
        line = f"[{colour}]{d.effect.upper():5}[/] line {r.line}: "
        line += f"{escape(r.call.name)}({escape(args)})"
        line += f"  [dim]rule={escape(str(d.rule))}: {escape(d.reason)}[/]"
        if r.recorded is not None and r.recorded.effect != d.effect:
            line += f"  [bold](recorded: {r.recorded.effect})[/]"
        out.print(line, soft_wrap=True)
    out.print(f"{len(results)} call(s): {len(results) - denied} allowed, {denied} denied")
    if strict and denied:
        raise typer.Exit(1)


# --- end of policy block ---------------------------------------------------------------


# --- parse (action formats) ------------------------------------------------------------


@app.command("parse")
def parse_command(
    source: Annotated[
        str, typer.Argument(help="File holding the model's output, or '-' for stdin.")
    ] = "-",
    format: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="json, react, xml, native (input is a native call's arguments string) or "
            "auto (detect, including DeepSeek, <|python_tag|> and [TOOL_CALLS] tokens).",
        ),
    ] = "auto",
    tools_file: Annotated[
        str | None,
        typer.Option(
            "--tools",
            help="JSON file: a list of OpenAI-style function schemas. Only these tools can "
            "be called; without it every tool name is refused.",
        ),
    ] = None,
) -> None:
    """Parse one model output as an action and print the result as JSON.

    Prints {"kind": "tool_call", "calls": [...]}, {"kind": "final_answer", ...} or
    {"kind": "unrecoverable", "reason": ...}, plus the repairs that were needed.
    """
    from pilothouse.actions import FORMATS, get_format
    from pilothouse.models.base import ToolSpec

    if format not in FORMATS:
        err.print(f"[bold red]error:[/] --format must be one of {', '.join(FORMATS)}")
        raise typer.Exit(2)
    specs: list[ToolSpec] = []
    if tools_file is not None:
        try:
            with open(tools_file, encoding="utf-8") as handle:
                raw_tools = json.loads(handle.read())
        except (OSError, ValueError) as exc:
            _fail(f"--tools {tools_file!r}: cannot read a JSON list ({exc})")
        if not isinstance(raw_tools, list):
            _fail(f"--tools {tools_file!r}: expected a JSON list of function schemas")
        for item in raw_tools:
            fn = item.get("function", item) if isinstance(item, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                _fail(f"--tools {tools_file!r}: each entry needs a 'name': {item!r:.120}")
            specs.append(
                ToolSpec(
                    fn["name"],
                    str(fn.get("description", "")),
                    fn.get("parameters") or {"type": "object", "properties": {}},
                )
            )
    if format == "native" and len(specs) != 1:
        _fail("--format native needs --tools with exactly one tool (the call's function)")
    try:
        if source == "-":
            text = sys.stdin.buffer.read().decode("utf-8", errors="replace")
        else:
            with open(source, "rb") as handle:
                text = handle.read().decode("utf-8", errors="replace")
    except OSError as exc:
        _fail(f"cannot read {source!r}: {exc}")
    result = get_format(format).parse(text, specs)
    sys.stdout.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")


# --- end of parse block ----------------------------------------------------------------


# --- serve-agent block: the OpenAI-compatible endpoint (pilothouse.serving) ----------


@app.command("serve-agent")
def serve_agent_command(
    agents_spec: Annotated[
        str,
        typer.Argument(
            metavar="MODULE:ATTR",
            help="What to serve: an Agent or a Team, a list of them, a dict model name -> "
            "Agent or Team, or a function returning one.",
        ),
    ],
    host: Annotated[
        str, typer.Option(help="Interface to listen on (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    on_disconnect: Annotated[
        str,
        typer.Option(
            "--on-disconnect",
            help="When a client disconnects mid-run: 'cancel' the run (journaled "
            "interrupted, resumable) or let it 'finish' (the answer lands in the session).",
        ),
    ] = "cancel",
    api_keys: Annotated[
        str | None,
        typer.Option(
            "--api-keys",
            envvar="PILOTHOUSE_API_KEYS_FILE",
            help="A file of 'owner key' lines: every request needs one of the keys, and "
            "sessions belong to the key's owner. Without it the endpoint is open (anyone "
            "who can connect may call it).",
        ),
    ] = None,
    max_body_bytes: Annotated[
        int, typer.Option("--max-body-bytes", min=1, help="Largest request body (413 beyond).")
    ] = 1024 * 1024,
    grace_seconds: Annotated[
        float,
        typer.Option(
            "--grace-seconds",
            min=0,
            help="On Ctrl-C or SIGTERM, how long runs in flight may take before they are "
            "interrupted (resumable).",
        ),
    ] = 10.0,
    session_from_user: Annotated[
        bool,
        typer.Option(
            help="Let the request's 'user' field name a session when no X-Pilothouse-Session "
            "header does (off for clients that send 'user' to identify their end users)."
        ),
    ] = True,
    approver_keys: Annotated[
        str | None,
        typer.Option(
            "--approver-keys",
            envvar="PILOTHOUSE_APPROVER_KEYS_FILE",
            help="A file of 'name key' lines for the people who decide paused runs over "
            "HTTP (GET /v1/runs/ID, POST /v1/runs/ID/approvals). Keys of their own: a key "
            "also in --api-keys is refused.",
        ),
    ] = None,
    webhook: Annotated[
        str | None,
        typer.Option(
            "--webhook",
            envvar="PILOTHOUSE_WEBHOOK_URL",
            help="A URL to POST a signed event to each time a served run waits for a "
            "person (Standard Webhooks; needs --webhook-secret-file).",
        ),
    ] = None,
    webhook_secret_file: Annotated[
        str | None,
        typer.Option(
            "--webhook-secret-file",
            envvar="PILOTHOUSE_WEBHOOK_SECRET_FILE",
            help="A file holding the webhook's 'whsec_...' secret (the receiver verifies "
            "the signature with it).",
        ),
    ] = None,
    webhook_details: Annotated[
        bool,
        typer.Option(
            "--webhook-details",
            help="Put the waiting calls' arguments, the policy's reasons, the input and "
            "whom the run acts for in the events (off: names, keys and the run's URL).",
        ),
    ] = False,
    webhook_watch_seconds: Annotated[
        float,
        typer.Option(
            "--webhook-watch-seconds",
            min=0,
            help="How often to look for runs paused outside the endpoint (a worker, the "
            "CLI) to announce them; 0: only at start.",
        ),
    ] = 30.0,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--cors-origin",
            help="A web origin (https://app.example) whose pages may call the endpoint "
            "from a browser; repeat for several, '*' for any. None by default.",
        ),
    ] = None,
    rate_limit: Annotated[
        float | None,
        typer.Option(
            "--rate-limit",
            min=0.001,
            help="Chat requests (each one a run) a client may send a minute: per key "
            "owner, or per address on an open endpoint; beyond it 429 with Retry-After. "
            "Off by default.",
        ),
    ] = None,
    rate_burst: Annotated[
        int | None,
        typer.Option(
            "--rate-burst",
            min=1,
            help="How many of them at once (default: a minute's worth, at least 1).",
        ),
    ] = None,
    max_runs_per_client: Annotated[
        int | None,
        typer.Option(
            "--max-runs-per-client",
            min=1,
            help="Runs a client (key owner, or address) may have going at once; one more "
            "is 429 with Retry-After. Off by default.",
        ),
    ] = None,
) -> None:
    """Serve agents behind OpenAI's chat API: /v1/models, /v1/chat/completions.

    Any OpenAI client can then call an agent by name (``model``); each request is one
    journaled run, in a session when the X-Pilothouse-Session header (or ``user``) names
    one. See docs/serving.md.
    """
    import importlib.util

    if importlib.util.find_spec("starlette") is None or importlib.util.find_spec("uvicorn") is None:
        _fail("serve-agent needs the 'server' extra: pip install 'pilothouse[server]'")
    from pilothouse.exceptions import PilothouseError
    from pilothouse.serving import ApiKeys, create_app, serve
    from pilothouse.serving.notify import Webhook, read_secret
    from pilothouse.serving.ratelimit import RateLimit

    if on_disconnect not in ("cancel", "finish"):
        _fail("--on-disconnect is 'cancel' or 'finish'")
    if (webhook is None) != (webhook_secret_file is None):
        _fail("--webhook and --webhook-secret-file go together")
    value = _import_attr("serve-agent", agents_spec)
    try:
        keys = ApiKeys.from_file(api_keys) if api_keys else None
        deciders = ApiKeys.from_file(approver_keys) if approver_keys else None
        hooks = (
            [Webhook(webhook, read_secret(webhook_secret_file), details=webhook_details)]
            if webhook is not None and webhook_secret_file is not None
            else []
        )
        app_ = create_app(
            value,
            api_keys=keys,
            on_disconnect=on_disconnect,
            max_body_bytes=max_body_bytes,
            grace_seconds=grace_seconds,
            session_from_user=session_from_user,
            approvers=deciders,
            webhooks=hooks,
            cors_origins=cors_origin or (),
            watch_seconds=webhook_watch_seconds,
            rate_limit=(
                RateLimit(rate_limit, rate_burst or max(1, round(rate_limit)))
                if rate_limit is not None
                else None
            ),
            max_runs_per_client=max_runs_per_client,
        )
    except (PilothouseError, ValueError) as exc:
        _fail(str(exc))
    names = ", ".join(app_.state.endpoint.agents)
    where = f"http://{'[' + host + ']' if ':' in host else host}:{port}/v1"
    mode = "keyed" if keys else "open: no API keys"
    if deciders is not None:
        mode += "; approvals at /v1/runs/ID/approvals"
    if hooks:
        mode += f"; waiting runs announced to {hooks[0].url}"
    err.print(escape(f"serving {names} at {where} ({mode})"))
    serve(app_, host=host, port=port)


# --- end of serve-agent block ----------------------------------------------------------


# --- mcp block: `pilothouse mcp serve` (pilothouse.mcp, extra `mcp`) --------------------
mcp_app = typer.Typer(help="MCP: offer tools and agents to MCP clients.", no_args_is_help=True)
app.add_typer(mcp_app, name="mcp")


@mcp_app.command("serve")
def mcp_serve_command(
    spec: Annotated[
        str,
        typer.Argument(
            help="What to serve, as module:attribute: an Agent, a tool, a function, "
            "or a list of them."
        ),
    ],
    http: Annotated[
        int | None,
        typer.Option("--http", help="Serve streamable HTTP on this port (default: stdio)."),
    ] = None,
    host: Annotated[str, typer.Option(help="The address --http listens on.")] = "127.0.0.1",
    name: Annotated[str, typer.Option(help="The server's name for clients.")] = "pilothouse",
) -> None:
    """Serve tools and agents over MCP: stdio (for a client that starts this command) or
    streamable HTTP with --http PORT. An agent is one tool: `input` in, its output out,
    with a progress notification per step; a client's cancellation cancels the run."""
    import asyncio
    import importlib.util

    from pilothouse.exceptions import ConfigurationError

    if importlib.util.find_spec("mcp") is None:
        _fail("`pilothouse mcp serve` needs the mcp extra: pip install 'pilothouse[mcp]'")
    from pilothouse.mcp import server

    target = _import_attr("serve", spec)
    try:  # a bad target is refused (ConfigurationError) before anything is served
        if http is None:
            asyncio.run(server.serve_stdio(target, name=name))
        else:
            asyncio.run(server.serve_http(target, port=http, host=host, name=name))
    except ConfigurationError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        pass


# --- end of mcp block ------------------------------------------------------------------


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


# --- flow block: `pilothouse flow show` (pilothouse.flows; read from the journal alone) ----
flow_app = typer.Typer(help="Read recorded flow runs (pilothouse.flows).", no_args_is_help=True)
app.add_typer(flow_app, name="flow")


@flow_app.command("show")
def flow_show(
    run_id: Annotated[str, typer.Argument(help="The flow run to show (see `trace list`).")],
    store: StoreOption = None,
    mermaid_only: Annotated[
        bool, typer.Option("--mermaid", help="Print only the graph's Mermaid source.")
    ] = False,
) -> None:
    """Show a flow run's graph (Mermaid source, as its journal recorded it) and the
    status of each node execution."""
    from pilothouse.exceptions import PilothouseError
    from pilothouse.runtime.journal import open_store
    from pilothouse.trace import flow_graph, flow_nodes

    try:
        s = open_store(store)
        info = s.get_run(run_id)
        events = s.events(run_id)
    except PilothouseError as exc:
        _fail(str(exc))
    graph = flow_graph(events)
    if graph is None:
        _fail(
            f"run {run_id} is not a flow run, or its journal predates recording the graph "
            "(`pilothouse trace show` prints its events)"
        )
    if mermaid_only:
        typer.echo(graph, nl=False)
        return
    rows = flow_nodes(events)
    out.print(f"[bold]flow {escape(info.agent)}[/] · run {escape(run_id)} · status {info.status}")
    out.print("[bold]graph[/] (Mermaid)")
    out.print(escape(graph.rstrip("\n")), soft_wrap=True)
    out.print(f"[bold]nodes[/] ({len(rows)} executions)")
    for r in rows:
        took = f"{r.duration * 1000:.0f} ms" if r.duration is not None else ""
        after = f"after {', '.join(r.after)}" if r.after else ""
        kind = "" if r.kind == "function" else r.kind
        cells = [r.key, r.node, kind, r.status, took, after, r.detail]
        out.print("  " + escape("  ".join(c for c in cells if c)), soft_wrap=True)


# --- end of flow block --------------------------------------------------------------------


if __name__ == "__main__":
    main()
