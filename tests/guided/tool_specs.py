"""A tool declaration for the guided layer's tests, written the short way."""

from __future__ import annotations

from typing import Any

from pilothouse.models.base import ToolSpec


def spec(name: str, description: str = "", /, **properties: Any) -> ToolSpec:
    """`name` with these JSON-Schema `properties`, each required unless it says
    ``"required": False`` (positional-only, so a property may be called "description")."""
    required = [k for k, v in properties.items() if v.pop("required", True)]
    return ToolSpec(
        name, description, {"type": "object", "properties": properties, "required": required}
    )
