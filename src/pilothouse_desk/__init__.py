"""The support desk: Pilothouse's reference application, a user of its public API.

A customer-support agent over the project's own shop database, its conversations,
human queue and approvals (`Desk`), and its web server and pages (`server`, the
``pilothouse serve`` command through the ``pilothouse.commands`` entry point; needs
the ``server`` extra). ``python -m pilothouse_desk`` (``make demo``) runs the batch of
scripted customers on the embedded model. The core package never imports this one.

    from pilothouse_desk import Desk, build_support_agent, open_shop

`shop` (the deterministic SQLite shop and its help articles), `deps` (`SupportDeps`:
the shop and the conversation's verified customer, each run's typed deps), `tools`
(the ten tools and the policy predicates, reading the deps), ``policy.yaml`` (the
rules), `agent` (the agent, and the step hook that routes each step so the embedded
model can do it), `desk` (conversations, human queue, approvals, figures), `batch`
(the scripted customers of ``make demo``), `server` and `cli` (``pilothouse serve``).
Names are imported lazily, so importing this package loads nothing heavy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .agent import SupportRouter, build_support_agent
    from .batch import run_batch
    from .deps import SupportDeps
    from .desk import (
        Conversation,
        ConversationNotFound,
        Desk,
        DeskError,
        Entry,
        Figures,
        NotFound,
        Reply,
    )
    from .shop import Shop, open_shop

_NAMES = {
    "SupportRouter": "agent",
    "build_support_agent": "agent",
    "run_batch": "batch",
    "SupportDeps": "deps",
    "Conversation": "desk",
    "ConversationNotFound": "desk",
    "NotFound": "desk",
    "Desk": "desk",
    "DeskError": "desk",
    "Entry": "desk",
    "Figures": "desk",
    "Reply": "desk",
    "Shop": "shop",
    "open_shop": "shop",
}
__all__ = [
    "Conversation",
    "ConversationNotFound",
    "Desk",
    "DeskError",
    "Entry",
    "Figures",
    "NotFound",
    "Reply",
    "Shop",
    "SupportDeps",
    "SupportRouter",
    "build_support_agent",
    "open_shop",
    "run_batch",
]


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
