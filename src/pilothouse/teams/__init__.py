"""Teams: agents as tools, handoffs, a supervisor, human in the loop as a parameter
(docs/teams.md); group chat, SOP pipelines and role-play in `teams.groupchat`,
`teams.sop` and `teams.roleplay` (docs/team_patterns.md).

Every handoff, delegation and turn is a child run in the run tree.
"""

from __future__ import annotations

from .delegate import agent_tool
from .handoff import ContextPolicy, Handoff, Request
from .members import Autonomy
from .team import Supervisor, Team

__all__ = [
    "Autonomy",
    "ContextPolicy",
    "Handoff",
    "Request",
    "Supervisor",
    "Team",
    "agent_tool",
]
