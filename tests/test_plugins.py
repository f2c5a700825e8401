"""The core apart from its applications: pilothouse never imports the desk or the suites;
they plug in through entry points (`pilothouse.plugins`), which the CLI loads lazily."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pilothouse import plugins
from pilothouse.evals.runner import Suite, load_suite
from pilothouse.exceptions import ConfigurationError

SRC = Path(__file__).resolve().parents[1] / "src"
PLUGIN_PACKAGES = ("pilothouse_desk", "pilothouse_suites")


def _imported_names(path: Path) -> list[tuple[int, str]]:
    """Every module `path` imports, at any depth, and every import_module("...") literal."""
    names: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.append((node.lineno, str(node.args[0].value)))
    return names


def test_the_core_package_imports_neither_the_desk_nor_the_suites() -> None:
    found = [
        f"{path.relative_to(SRC)}:{line}: {name}"
        for path in sorted((SRC / "pilothouse").rglob("*.py"))
        for line, name in _imported_names(path)
        if name.split(".")[0] in PLUGIN_PACKAGES
    ]
    assert found == []


def test_importing_every_core_module_loads_no_plugin_package() -> None:
    # What the AST check cannot see (an import by computed name) shows in sys.modules.
    code = """
import importlib, json, pkgutil, sys
import pilothouse
for info in pkgutil.walk_packages(pilothouse.__path__, "pilothouse."):
    try:
        importlib.import_module(info.name)
    except ImportError:
        pass  # a module of an optional extra that is not installed
from pilothouse.evals.runner import load_suite
load_suite("eval_suite:suite")  # a suite by module path reads no entry point
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in PLUGIN_PACKAGES)))
""".replace("PLUGIN_PACKAGES", repr(PLUGIN_PACKAGES))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_the_desk_and_the_suites_are_registered_as_entry_points() -> None:
    commands = plugins.entry_points(plugins.COMMANDS)
    assert commands["serve"].value == "pilothouse_desk.cli:app [server]"
    assert commands["serve"].extras == ["server"]
    suites = plugins.entry_points(plugins.SUITES)
    assert {"builtin", "builtin-naive", "heldout", "heldout-naive", "tau-retail"} <= set(suites)
    assert suites["tau-retail"].value == "pilothouse_suites.tau_retail:tau_retail_suite"
    assert plugins.missing_requirements(commands["serve"]) == []  # dev installs the extra


def test_named_suites_resolve_through_the_entry_points() -> None:
    from pilothouse_suites import builtin, heldout

    assert load_suite("builtin") is builtin.suite
    assert load_suite("heldout") is heldout.suite
    assert load_suite("builtin-naive") is builtin.naive_suite
    assert isinstance(load_suite("pilothouse_suites.builtin:suite"), Suite)
    listed = r"'nosuch' is neither a named suite \(.*\bbuiltin\b"
    with pytest.raises(ConfigurationError, match=listed):
        load_suite("nosuch")


def _pilothouse(*args: str, path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250"}
    if path is not None:
        env["PYTHONPATH"] = str(path)
    return subprocess.run(
        [sys.executable, "-m", "pilothouse.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_help_lists_the_plugin_commands_and_serve_resolves() -> None:
    r = _pilothouse("--help")
    assert r.returncode == 0, r.stderr
    assert "serve" in r.stdout and "Serve the support desk" in r.stdout
    r = _pilothouse("serve", "--help")
    assert r.returncode == 0, r.stderr
    assert "--grace-seconds" in r.stdout and "--console-token" in r.stdout


def test_a_core_command_loads_no_plugin() -> None:
    code = (
        "import sys\n"
        "from pilothouse.cli import app\n"
        "try:\n"
        "    app(['trace', 'list', '--store', ':memory:'], standalone_mode=False)\n"
        "finally:\n"
        "    print(sorted(m for m in sys.modules if m.startswith('pilothouse_')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"


@pytest.fixture
def fake_plugin(tmp_path: Path) -> Path:
    """An installed distribution `fakeplug` with a command needing an absent extra, a
    command whose module is missing, and a suite."""
    (tmp_path / "fakeplug_cli.py").write_text(
        "import typer\n"
        "from pilothouse.evals import Suite\n"
        "app = typer.Typer()\n"
        "@app.command('hello')\n"
        "def hello() -> None:\n"
        "    'Say hello.'\n"
        "    print('hello from the plugin')\n"
        "suite = Suite('fake', [])\n",
        "utf-8",
    )
    info = tmp_path / "fakeplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fakeplug\nVersion: 0.1\nProvides-Extra: web\n"
        'Requires-Dist: pilothouse-test-absent-package>=1; extra == "web"\n',
        "utf-8",
    )
    (info / "entry_points.txt").write_text(
        "[pilothouse.commands]\n"
        "hello = fakeplug_cli:app [web]\n"
        "plain = fakeplug_cli:app\n"
        "broken = fakeplug_absent_module:app\n"
        "[pilothouse.suites]\n"
        "fake = fakeplug_cli:suite\n",
        "utf-8",
    )
    return tmp_path


def test_a_missing_extra_is_named_before_the_command_runs(fake_plugin: Path) -> None:
    r = _pilothouse("hello", path=fake_plugin)
    assert r.returncode == 1
    assert "hello from the plugin" not in r.stdout
    message = " ".join(r.stderr.split())
    assert "`pilothouse hello` needs the 'web' extra of fakeplug" in message, message
    assert "missing: pilothouse-test-absent-package" in message
    assert "pip install 'fakeplug[web]'" in message
    assert "Traceback" not in r.stderr


def test_a_plugin_command_runs_and_a_broken_one_says_why(fake_plugin: Path) -> None:
    r = _pilothouse("plain", path=fake_plugin)
    assert r.returncode == 0, r.stderr
    assert "hello from the plugin" in r.stdout
    r = _pilothouse("--help", path=fake_plugin)
    assert r.returncode == 0, r.stderr
    assert "broken" in r.stdout and "unavailable" in r.stdout
    assert "pip install 'fakeplug[web]'" in r.stdout  # the extra, not eaten as rich markup
    r = _pilothouse("broken", path=fake_plugin)
    assert r.returncode == 1
    message = " ".join(r.stderr.split())
    assert "fakeplug_absent_module" in message and "pip install fakeplug" in message
    assert "Traceback" not in r.stderr


def test_a_plugin_suite_is_found_by_name(fake_plugin: Path) -> None:
    r = _pilothouse("eval", "fake", "--model", "builtin:null", "--epochs", "1", path=fake_plugin)
    # The suite is found; it has no scenarios, so the table is empty but the run works.
    assert "neither a named suite" not in r.stderr, r.stderr
