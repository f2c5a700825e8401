"""The layering rule of docs/ARCHITECTURE.md ("Modules and dependencies"), checked.

Every module of the package is parsed (ast) and each import of another Pilothouse
module is checked, wherever it is: at the top, inside a function (a lazy import is
still a dependency) or under ``if TYPE_CHECKING:`` (a module typed against a class
above it depends on it: `runtime.workers` driving an `Agent` it is handed). Rules:

1. **Layers.** `LAYERS` orders the package from the floor up. A module may import
   modules of its own unit (e.g. ``runtime.loop`` -> ``runtime.journal``) and of
   lower layers; importing a module of a higher layer, or of another unit of the
   same layer (``models`` and ``tools`` are both above the floor, so neither may
   import the other), is a violation: shared data types belong in a lower layer.
2. **Private names.** No module imports another module's private (``_name``) names,
   nor a private module (``pkg/_mod.py``) from outside its package.
3. **No two modules import each other** (a package's ``__init__`` re-exporting its
   own modules aside). Between units this follows from 1; inside one it does not.

`KNOWN` lists the violations that exist today in code owned by others, each with
why; the integrator empties it. The test fails on any violation not listed, and on
a listed one that is gone (so the list only shrinks).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pilothouse

PACKAGE = Path(pilothouse.__file__).parent

# From the floor up. A unit is a module or a subpackage, or a tuple of them that counts
# as one; the longest matching prefix decides a module's unit. Units of one layer may
# not import each other.
LAYERS: list[list[str | tuple[str, ...]]] = [
    # the floor: errors, provider-neutral data, the shared validator, prompts; then the journal's
    # vocabulary, which is made of them
    ["pilothouse._version", "pilothouse.exceptions"],
    [
        "pilothouse.messages",
        "pilothouse.decision",
        "pilothouse.jsonschema_check",
        "pilothouse.prompts",  # the prompts the framework writes, as data
        "pilothouse.dates",  # month names as people write them
    ],
    ["pilothouse.events"],
    # the model contract and adapters
    ["pilothouse.models"],
    # what a step uses: tools, the policy, text action formats
    ["pilothouse.tools", "pilothouse.policy", "pilothouse.actions"],
    # staged tool use over any schema-capable model (the loop and replay reach it); an MCP
    # server's tools as tools (the MCP client: it makes tools, the loop never reaches it)
    ["pilothouse.guided", ("pilothouse.mcp.client", "pilothouse.mcp.toolset")],
    # the loop, its store, budgets, resume, replay, workers
    ["pilothouse.runtime"],
    # what users write
    ["pilothouse.agent"],
    # built on agents (DESIGN.md: guided decoding, flows, teams, knowledge, memory)
    [
        "pilothouse.flows",
        "pilothouse.teams",
        "pilothouse.knowledge",
        "pilothouse.memory",
        "pilothouse.mcp",  # the MCP server: tools and agents offered over MCP (mcp.server)
    ],
    # serving agents over HTTP: the OpenAI-compatible endpoint (extra `server`)
    ["pilothouse.serving"],
    # reading runs: journals as regression tests, one-line descriptions of events,
    # OpenTelemetry spans made from the events (extra `otel`)
    ["pilothouse.testing", "pilothouse.trace", "pilothouse.telemetry"],
    # entry points: commands and suites that installed packages add (evals names suites)
    ["pilothouse.plugins"],
    # evaluation
    ["pilothouse.evals"],
    # the command line (imports the rest lazily)
    ["pilothouse.cli"],
    # the framework's users (pilothouse_desk, pilothouse_suites) live outside the package
]
FACADE = "pilothouse"  # the package's __init__: lazy re-exports of the public API, on top

# (importer, imported, rule): accepted violations, each with what would fix it. Issue 17
# emptied it (17 entries when the rule was first written down); it may only shrink.
KNOWN: set[tuple[str, str, str]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _unit(module: str) -> tuple[int, str]:
    """(layer index, unit name) of a module; the facade sits above every layer."""
    best: tuple[int, str, int] | None = None  # layer, unit, length of the matching prefix
    for i, layer in enumerate(LAYERS):
        for unit in layer:
            for prefix in (unit,) if isinstance(unit, str) else unit:
                if (module == prefix or module.startswith(prefix + ".")) and (
                    best is None or len(prefix) > best[2]
                ):
                    best = (i, unit if isinstance(unit, str) else unit[0], len(prefix))
    if best is not None:
        return best[0], best[1]
    if module == FACADE:
        return (len(LAYERS), FACADE)
    raise AssertionError(f"{module} is in no layer: add it to LAYERS (and the docs)")


def _imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, str | None]]:
    """(imported module, imported name or None) for every import in `tree`."""
    found: list[tuple[str, str | None]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.extend((a.name, None) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".") if is_package else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - node.level + 1]
                base = ".".join([*pkg, base] if base else pkg)
            found.extend((base, a.name) for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _edges() -> list[tuple[str, str, str | None]]:
    """(importer, imported module, name) for imports of Pilothouse modules."""
    modules = _modules()
    edges = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for target, name in _imports(tree, module, path.name == "__init__.py"):
            if target != "pilothouse" and not target.startswith("pilothouse."):
                continue
            # `from pkg import mod` imports the module pkg.mod
            if name is not None and f"{target}.{name}" in modules:
                target, name = f"{target}.{name}", None
            edges.append((module, target, name))
    return edges


def violations() -> set[tuple[str, str, str]]:
    """Every (importer, imported, rule) of the package that breaks the layering rule."""
    packages = {m for m, p in _modules().items() if p.name == "__init__.py"}
    return _violations(_edges(), packages)


def _violations(
    edges: list[tuple[str, str, str | None]], packages: set[str]
) -> set[tuple[str, str, str]]:
    found: set[tuple[str, str, str]] = set()
    pairs: set[tuple[str, str]] = set()
    for importer, target, name in edges:
        (li, ui), (lt, ut) = _unit(importer), _unit(target)
        if ui != ut and lt >= li:
            found.add((importer, target, "layer"))
        if name is not None and name.startswith("_") and not name.startswith("__"):
            found.add((importer, f"{target}.{name}", "private"))
        parts = target.split(".")
        for i, part in enumerate(parts):
            if part.startswith("_") and not part.startswith("__"):
                package = ".".join(parts[:i])
                if importer != package and not importer.startswith(package + "."):
                    found.add((importer, target, "private"))
                break
        if importer not in packages and target not in packages:
            pairs.add((importer, target))
    for a, b in pairs:  # a package's __init__ re-exporting its modules is not a cycle
        if a < b and (b, a) in pairs:
            found.add((a, b, "cycle"))
    return found


def test_every_module_has_a_layer() -> None:
    for module in _modules():
        _unit(module)


def test_the_layering_rule_holds_apart_from_the_known_violations() -> None:
    found = violations()
    new = sorted(found - KNOWN)
    gone = sorted(KNOWN - found)
    assert not new, "imports that break the layering rule (docs/ARCHITECTURE.md):\n" + "\n".join(
        f"  {rule}: {a} -> {b}" for a, b, rule in new
    )
    assert not gone, "fixed, so remove from KNOWN in tests/test_layering.py:\n" + "\n".join(
        f"  {rule}: {a} -> {b}" for a, b, rule in gone
    )


def test_the_checker_finds_each_kind_of_violation() -> None:
    source = (
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "from pilothouse.messages import ToolCall\n"
        "from .conditions import _hidden\n"
        "if TYPE_CHECKING:\n"
        "    from pilothouse.agent import Agent\n"
        "def lazy():\n"
        "    import pilothouse.runtime.loop\n"
    )
    found = _imports(ast.parse(source), "pilothouse.policy.engine", False)
    assert ("pilothouse.messages", "ToolCall") in found
    assert ("pilothouse.policy.conditions", "_hidden") in found  # relative, resolved
    assert ("pilothouse.agent", "Agent") in found  # typed against: a dependency
    assert ("pilothouse.runtime.loop", None) in found  # inside a function: still one
    edges: list[tuple[str, str, str | None]] = [
        ("pilothouse.policy.engine", "pilothouse.messages", "ToolCall"),  # down: fine
        ("pilothouse.policy.engine", "pilothouse.agent", "Agent"),  # up
        ("pilothouse.models.local", "pilothouse.tools.select", "rank"),  # same layer
        ("pilothouse.policy.engine", "pilothouse.policy.conditions", "_hidden"),
        ("pilothouse.agent", "pilothouse.models._http", "HttpModel"),  # private module
        ("pilothouse.models.openai", "pilothouse.models._http", "HttpModel"),  # its own
        ("pilothouse.runtime.a", "pilothouse.runtime.b", None),
        ("pilothouse.runtime.b", "pilothouse.runtime.a", None),
        ("pilothouse.policy", "pilothouse.policy.engine", "Policy"),  # re-export
        ("pilothouse.policy.engine", "pilothouse.policy", "Rule"),
    ]
    assert _violations(edges, {"pilothouse.policy"}) == {
        ("pilothouse.policy.engine", "pilothouse.agent", "layer"),
        ("pilothouse.models.local", "pilothouse.tools.select", "layer"),
        ("pilothouse.policy.engine", "pilothouse.policy.conditions._hidden", "private"),
        ("pilothouse.agent", "pilothouse.models._http", "private"),
        ("pilothouse.runtime.a", "pilothouse.runtime.b", "cycle"),
    }
