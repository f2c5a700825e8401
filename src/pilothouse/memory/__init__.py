"""Memory beyond one context window: long-term facts, compaction, tool retrieval.

- `Memory`: a principal's facts kept across sessions, as `remember`/`recall` tools under
  the policy (recalled values are untrusted to it unless a person wrote them);
- `Compaction`: a `prepare_step` hook sending a compacted *view* of a long conversation
  (journaled; nothing is deleted), with `recall_result_tool` to read a trimmed result;
- `ToolRetrieval`: a `prepare_step` hook offering the top-k of many tools, with
  `find_tools` to search the rest;
- `chain_hooks`: several step hooks as one.
See docs/memory.md.
"""

from __future__ import annotations

from pilothouse.memory.compaction import Compaction, estimate_tokens, recall_result_tool
from pilothouse.memory.facts import Fact, FactStore
from pilothouse.memory.hooks import chain_hooks
from pilothouse.memory.memory import Memory
from pilothouse.memory.retrieval import ToolRetrieval
from pilothouse.memory.store import SQLiteFacts, open_facts

__all__ = [
    "Compaction",
    "Fact",
    "FactStore",
    "Memory",
    "SQLiteFacts",
    "ToolRetrieval",
    "chain_hooks",
    "estimate_tokens",
    "open_facts",
    "recall_result_tool",
]
