"""Typed tools: `@tool`, `Tool`, the `ToolContext` a tool may ask for, and `ask_human`."""

from pilothouse.tools.human import ask_human
from pilothouse.tools.tool import Effect, Tool, ToolArgumentError, ToolContext, as_tool, tool

__all__ = ["Effect", "Tool", "ToolArgumentError", "ToolContext", "as_tool", "ask_human", "tool"]
