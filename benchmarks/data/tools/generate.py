"""Generate realistic tool sets from public API descriptions shipped in installed packages.

Run: `python benchmarks/data/tools/generate.py` (writes `sdk_tools.json` beside it).

Sources, read with `ast` (nothing is imported or run): the resource classes of the
official `openai` and `anthropic` Python SDKs (one method per HTTP operation, with the
API's own documentation as docstrings) and `playwright`'s sync API (a browser
automation surface, 400+ documented methods). Each public, documented method becomes a
tool: its name is the resource path and the method (``beta_threads_runs_create``,
``page_click``), its description the docstring's first paragraph, its parameters the
method's keyword arguments (transport options such as ``extra_headers`` left out) with
the descriptions the docstring gives them. Duplicates (a deprecated alias with the same
text) are kept once. The committed file was made from openai 3.60.0, anthropic 2.16.0
and playwright 1.65.2; other releases give other tools.
"""

from __future__ import annotations

import ast
import json
import re
import sysconfig
from pathlib import Path
from typing import Any

SITE = Path(sysconfig.get_paths()["purelib"])
OUT = Path(__file__).with_name("sdk_tools.json")
SKIP_ARGS = {"self", "extra_headers", "extra_query", "extra_body", "timeout", "betas"}


def _doc_parts(doc: str) -> tuple[str, dict[str, str]]:
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", doc.strip()) if p.strip()]
    if len(paragraphs) > 1 and re.fullmatch(r"\w+\.\w+", paragraphs[0]):
        paragraphs = paragraphs[1:]  # playwright: "Page.click", then the description
    summary = " ".join(paragraphs[0].split()) if paragraphs else ""
    args: dict[str, str] = {}
    current = None
    in_args = False
    for line in doc.splitlines():
        if re.match(r"^\s*(Args|Parameters)\s*:?\s*$", line) or re.match(r"^\s*-{3,}\s*$", line):
            in_args = True
            continue
        if not in_args:
            continue
        m = re.match(r"^\s{0,12}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", line)
        if m and m.group(1) not in ("Returns", "Raises"):
            current = m.group(1)
            args[current] = m.group(2).strip()
        elif current and line.strip():
            args[current] = (args[current] + " " + line.strip()).strip()
    return summary[:600], {k: " ".join(v.split())[:300] for k, v in args.items()}


def _resource_prefix(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    kept: list[str] = []
    for part in (p.strip("_") for p in parts if p != "__init__"):
        if not kept or kept[-1] != part:  # memory_stores/memory_stores.py: one name
            kept.append(part)
    return "_".join(kept)


def _tools_of(path: Path, prefix: str, *, class_filter: Any) -> list[dict[str, Any]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: list[dict[str, Any]] = []
    for cls in tree.body:
        if not isinstance(cls, ast.ClassDef) or not class_filter(cls.name):
            continue
        for fn in cls.body:
            if not isinstance(fn, ast.FunctionDef) or fn.name.startswith("_"):
                continue
            if any(
                isinstance(d, ast.Name) and d.id in ("property", "cached_property")
                for d in fn.decorator_list
            ):
                continue  # an accessor of a sub-resource, not an operation
            if any(isinstance(d, ast.Attribute) and d.attr == "setter" for d in fn.decorator_list):
                continue
            doc = ast.get_docstring(fn)
            if not doc:
                continue
            summary, arg_docs = _doc_parts(doc)
            if len(summary) < 15:
                continue
            names = [a.arg for a in fn.args.args + fn.args.kwonlyargs if a.arg not in SKIP_ARGS]
            properties = {n: ({"description": arg_docs[n]} if n in arg_docs else {}) for n in names}
            out.append(
                {
                    "name": _short(f"{prefix(cls.name)}_{fn.name}"),
                    "description": summary,
                    "parameters": {"type": "object", "properties": properties},
                    "source": str(path.relative_to(SITE)),
                }
            )
    return out


def _short(name: str) -> str:
    """A tool name within the 64 characters models accept: "organization" is "org", then
    the path's middle words are dropped (the package and the method stay)."""
    name = name.replace("organization", "org")
    parts = name.split("_")
    while len("_".join(parts)) > 64 and len(parts) > 3:
        del parts[1]
    return "_".join(parts)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def main() -> None:
    tools: list[dict[str, Any]] = []
    for package in ("openai", "anthropic"):
        root = SITE / package / "resources"
        for path in sorted(root.rglob("*.py")):
            prefix = _resource_prefix(path, root)
            tools += _tools_of(
                path,
                lambda _c, p=f"{package}_{prefix}": p,
                class_filter=lambda c: (
                    not c.startswith("Async")
                    and not c.endswith(("WithRawResponse", "WithStreamingResponse"))
                ),
            )
    playwright = SITE / "playwright" / "sync_api" / "_generated.py"
    tools += _tools_of(
        playwright,
        lambda c: "browser_" + _snake(c),
        class_filter=lambda c: c in {
            "Page", "Locator", "BrowserContext", "Browser", "Keyboard", "Mouse", "Frame",
            "Download", "Dialog", "Request", "Response", "Route", "ElementHandle", "Tracing",
            "Video", "Clock", "Touchscreen", "FileChooser",
        },
    )  # fmt: skip
    seen: set[str] = set()
    unique = []
    for t in tools:
        key = t["description"]
        if t["name"] in seen or key in seen:
            continue
        seen.update((t["name"], key))
        unique.append(t)
    lines = ",\n".join(json.dumps(t, ensure_ascii=False) for t in unique)  # a tool a line
    OUT.write_text("[\n" + lines + "\n]\n", encoding="utf-8")
    print(f"{len(unique)} tools written to {OUT}")


if __name__ == "__main__":
    main()
