"""The two schema shorthands `tools.py` and `tools_r7.py` write their declarations with."""

from __future__ import annotations

from typing import Any


def string(description: str | None = None, **extra: Any) -> dict[str, Any]:
    """A string parameter (its description left out when the declaration has none)."""
    out: dict[str, Any] = {"type": "string", **extra}
    if description is not None:
        out["description"] = description
    return out


def obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """An object of `properties` (``required`` left out when the declaration has none)."""
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required is not None:
        out["required"] = required
    return out
