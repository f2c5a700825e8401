"""Teams: agents working together (handoffs, supervisors, group chat, SOP pipelines, role-play)."""
