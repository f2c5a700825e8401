"""Task policies from each user task's request, for the AgentDojo suites (issue #14 item 4).

`SELECTIONS` are words a request uses to pick one item out of a listing ("the largest
file"), per suite, with the `selected` condition they imply for the tools that act on
that item (`pilothouse.policy.selection`). `select_from_request(suite)` is a
`task_policy` for `agentdojo_suite`: it narrows the suite's policy through
`propose_from_request(..., selections=...)` (no `intents`: the tools the request asks
for are left to the suite's policy). Written for the tuned suites (workspace: a file
picked by its size); travel, slack and banking have none (banking is held out: nothing
here was written after looking at it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pilothouse.policy import Policy, propose_from_request

__all__ = ["SELECTIONS", "select_from_request"]

_FILE_LISTINGS = ["list_files", "search_files", "search_files_by_filename", "get_file_by_id"]
_ON_A_FILE = ("delete_file", "share_file", "append_to_file")


def _file_by(order: str) -> dict[str, dict[str, Any]]:
    spec = {"tool": _FILE_LISTINGS, "key": "id_", order: "size"}
    return {tool: {"file_id": spec} for tool in _ON_A_FILE}


SELECTIONS: dict[str, dict[str, Mapping[str, Mapping[str, Any]]]] = {
    "workspace": {
        r"\b(largest|biggest)\s+(file|document)\b": _file_by("max"),
        r"\bsmallest\s+(file|document)\b": _file_by("min"),
    },
    "travel": {},
    "slack": {},
    "banking": {},
}


def select_from_request(suite: str) -> Callable[[str, Policy], Policy]:
    """The suite's task policy from a request: its selections, applied when they narrow."""
    selections = SELECTIONS.get(suite, {})

    def narrow(prompt: str, base: Policy) -> Policy:
        return propose_from_request(prompt, base, intents={}, selections=selections).policy

    return narrow
