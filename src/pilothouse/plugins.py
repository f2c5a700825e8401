"""What installed packages add to Pilothouse, found through entry points.

The core never names its applications or evaluation content; they plug in:

* ``pilothouse.commands``: commands of the ``pilothouse`` CLI. The entry point's name
  is the command's name, its object a ``typer.Typer`` or a ``click.Command``
  (``serve = "pilothouse_desk.cli:serve [server]"``).
* ``pilothouse.suites``: named evaluation suites for ``pilothouse eval NAME``; the
  object is a `Suite` or a function returning one
  (``builtin = "pilothouse_suites.builtin:suite"``).

An entry point may name extras (``[server]``): before its command runs, the core checks
that their requirements are installed and otherwise fails naming the extra to install,
instead of an ``ImportError`` from deep inside the plugin. Nothing here is imported or
read until a command or suite is asked for by name (or ``--help`` lists the commands).
"""

from __future__ import annotations

import re
from functools import cache
from importlib import metadata
from typing import Any

from pilothouse.exceptions import ConfigurationError

COMMANDS = "pilothouse.commands"
SUITES = "pilothouse.suites"


@cache
def entry_points(group: str) -> dict[str, metadata.EntryPoint]:
    """The installed entry points of `group` by name (read once per process)."""
    return {ep.name: ep for ep in metadata.entry_points(group=group)}


def _distribution(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return str(dist.name) if dist is not None else ep.module.partition(".")[0]


def _install_hint(ep: metadata.EntryPoint) -> str:
    dist = _distribution(ep)
    return f"pip install '{dist}[{','.join(ep.extras)}]'" if ep.extras else f"pip install {dist}"


def missing_requirements(ep: metadata.EntryPoint) -> list[str]:
    """The requirements of `ep`'s extras that are not installed (names, as declared)."""
    if not ep.extras:
        return []
    try:
        requires = metadata.requires(_distribution(ep)) or []
    except metadata.PackageNotFoundError:
        return []
    missing: list[str] = []
    for line in requires:
        requirement, _, marker = line.partition(";")
        extras = re.findall(r"""extra\s*==\s*["']([^"']+)["']""", marker)
        if not any(extra in ep.extras for extra in extras):
            continue
        name = re.match(r"\s*([A-Za-z0-9._-]+)", requirement)
        if name is None:
            continue
        try:
            metadata.version(name.group(1))
        except metadata.PackageNotFoundError:
            missing.append(name.group(1))
    return sorted(set(missing))


def check_extras(ep: metadata.EntryPoint, what: str) -> None:
    """Raise `ConfigurationError` naming the extra when `ep`'s extras are not installed."""
    missing = missing_requirements(ep)
    if missing:
        extras = ", ".join(repr(e) for e in ep.extras)
        raise ConfigurationError(
            f"{what} needs the {extras} extra of {_distribution(ep)} "
            f"(missing: {', '.join(missing)}): {_install_hint(ep)}"
        )


def load(ep: metadata.EntryPoint, what: str) -> Any:
    """`ep.load()`, with an import failure turned into one line naming what to install."""
    check_extras(ep, what)
    try:
        return ep.load()
    except ImportError as exc:
        raise ConfigurationError(
            f"{what} ({ep.value}) cannot be imported: {exc}; is it installed? ({_install_hint(ep)})"
        ) from None
