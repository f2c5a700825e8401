"""Typed tools: `@tool`, `Tool`, the `ToolContext` a tool may ask for, and `ask_human`."""

from typing import TYPE_CHECKING, Any

from pilothouse.tools.tool import Effect, Tool, ToolArgumentError, ToolContext, as_tool, tool

if TYPE_CHECKING:
    from pilothouse.tools.human import ask_human

__all__ = ["Effect", "Tool", "ToolArgumentError", "ToolContext", "as_tool", "ask_human", "tool"]


def __getattr__(name: str) -> Any:
    # `ask_human` is a `Tool`, whose argument model pydantic builds when it is made
    # (about 8 ms): made on first use, not by every `import pilothouse.tools`.
    if name == "ask_human":
        from pilothouse.tools.human import ask_human

        return ask_human
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
