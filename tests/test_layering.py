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
3. **No cycles between units.** Two units never import each other (this follows
   from 1; checked separately so the message names the pair).

`KNOWN` lists the violations that exist today in code owned by others, each with
why; the integrator empties it. The test fails on any violation not listed, and on
a listed one that is gone (so the list only shrinks).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pilothouse

PACKAGE = Path(pilothouse.__file__).parent

# From the floor up. A unit is a module or a subpackage; the longest matching prefix
# decides a module's unit. Units of one layer may not import each other.
LAYERS: list[list[str]] = [
    # floor: provider-neutral data, the journal's vocabulary, errors, the shared validator
    [
        "pilothouse._version",
        "pilothouse.exceptions",
        "pilothouse.messages",
        "pilothouse.decision",
        "pilothouse.jsonschema_check",
        "pilothouse.events",
    ],
    # the model contract and adapters
    ["pilothouse.models"],
    # what a step uses: tools, the policy, text action formats
    ["pilothouse.tools", "pilothouse.policy", "pilothouse.actions"],
    # the loop, its store, budgets, resume, replay, workers
    ["pilothouse.runtime"],
    # what users write
    ["pilothouse.agent"],
    # built on agents (DESIGN.md: guided decoding, flows, teams, knowledge, memory)
    [
        "pilothouse.guided",
        "pilothouse.flows",
        "pilothouse.teams",
        "pilothouse.knowledge",
        "pilothouse.memory",
    ],
    # reading runs: journals as tests, trace lines, evaluation
    ["pilothouse.testing", "pilothouse.trace", "pilothouse.evals"],
    # the command line (imports the rest lazily)
    ["pilothouse.cli"],
    # users of the framework, moving out of the package: the reference application,
    # its server, evaluation content (built-in suites, benchmark adapters)
    [
        "pilothouse.apps",
        "pilothouse.server",
        "pilothouse.evals.builtin",
        "pilothouse.evals.heldout",
        "pilothouse.evals.tau_retail",
        "pilothouse.evals.baselines",
    ],
]
FACADE = "pilothouse"  # the package's __init__: lazy re-exports of the public API, on top

# (importer, imported, rule): violations that exist in code owned by others. Empty it.
KNOWN: set[tuple[str, str, str]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _unit(module: str) -> tuple[int, str]:
    """(layer index, unit) of a module; the facade sits above every layer."""
    best: tuple[int, str] | None = None
    for i, layer in enumerate(LAYERS):
        for unit in layer:
            if (module == unit or module.startswith(unit + ".")) and (
                best is None or len(unit) > len(best[1])
            ):
                best = (i, unit)
    if best is not None:
        return best
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
    found: set[tuple[str, str, str]] = set()
    units: dict[tuple[str, str], tuple[str, str]] = {}
    for importer, target, name in _edges():
        (li, ui), (lt, ut) = _unit(importer), _unit(target)
        if ui != ut:
            if lt > li or (lt == li):
                found.add((importer, target, "layer"))
            units.setdefault((ui, ut), (importer, target))
        # private names and private modules
        if name is not None and name.startswith("_") and not name.startswith("__"):
            if target != importer:
                found.add((importer, f"{target}.{name}", "private"))
        parts = target.split(".")
        for i, part in enumerate(parts):
            if part.startswith("_") and not part.startswith("__"):
                package = ".".join(parts[:i])
                if not (importer == package or importer.startswith(package + ".")):
                    found.add((importer, target, "private"))
                break
    for (ui, ut), (importer, target) in units.items():
        if ui < ut and (ut, ui) in units:
            back = units[(ut, ui)]
            found.add((f"{ui} <-> {ut}", f"{importer} -> {target}; {back[0]} -> {back[1]}", "cycle"))
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
