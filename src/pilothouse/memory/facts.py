"""What a fact is and what every fact store promises (SQLite: store.py; PostgreSQL:
postgres.py): the shared types and the checks made before any store is touched."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol

__all__ = [
    "MAX_FACTS",
    "MAX_KEY",
    "MAX_VALUE",
    "Author",
    "Fact",
    "FactStore",
    "check_fact",
    "fts_query",
]

MAX_KEY = 200
"""Characters of a key: keys are names ("home_iban"), not documents."""
MAX_VALUE = 10_000
"""Characters of a value: a fact, not a file (a hostile megabyte is refused, not cut)."""
MAX_FACTS = 10_000
"""Facts one principal may hold (history included) unless the store says otherwise."""

Author = Literal["agent", "person"]


@dataclass(frozen=True, slots=True)
class Fact:
    """One stored fact. `author` is ``"agent"`` (a run's `remember`) or ``"person"`` (the
    application on a person's behalf; `by` names them); `supersedes` is the fact id this
    one replaced; `current` is False once a later fact superseded it."""

    fact_id: int
    principal: str
    key: str
    value: str
    author: Author
    by: str | None
    run_id: str | None
    event: str | None
    ts: float
    supersedes: int | None
    current: bool = True

    def to_dict(self) -> dict[str, Any]:
        """What a recall returns to the model (and the policy reads as the result)."""
        d: dict[str, Any] = {
            "key": self.key,
            "value": self.value,
            "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.ts)),
            "fact_id": self.fact_id,
        }
        if self.supersedes is not None:
            d["supersedes"] = self.supersedes
        if not self.current:
            d["superseded"] = True
        return d


class FactStore(Protocol):
    """Where facts are kept. Every method names the principal; none reads across them."""

    def write(
        self,
        principal: str,
        key: str,
        value: str,
        *,
        author: Author,
        by: str | None = None,
        run_id: str | None = None,
        event: str | None = None,
    ) -> Fact: ...

    def get(self, principal: str, key: str) -> Fact | None: ...

    def history(self, principal: str, key: str) -> list[Fact]: ...

    def search(self, principal: str, query: str, limit: int = 5) -> list[Fact]: ...

    def close(self) -> None: ...


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_fact(principal: str, key: str, value: str | None = None) -> None:
    """Refuse what no store should keep, before any store is touched (a `ValueError`
    whose message is for the model: a tool turns it into the call's error result)."""
    if not isinstance(principal, str) or not principal.strip():
        raise ValueError("memory needs a principal: run the agent with principal=Principal(...)")
    if not isinstance(key, str) or not key.strip() or key != key.strip():
        raise ValueError("a memory key is a non-empty name without surrounding spaces")
    if len(key) > MAX_KEY or _CONTROL.search(key):
        raise ValueError(f"a memory key is at most {MAX_KEY} printable characters")
    if value is not None:
        if not isinstance(value, str):
            raise ValueError("a memory value is text")
        if len(value) > MAX_VALUE:
            raise ValueError(
                f"a memory value is at most {MAX_VALUE} characters (this one has "
                f"{len(value)}): keep a fact, not a document"
            )
        if "\x00" in value:
            raise ValueError("a memory value cannot hold NUL characters")


_WORD = re.compile(r"\w+", re.UNICODE)


def fts_query(query: str, max_words: int = 32) -> str | None:
    """An FTS5 query matching any word of `query`: each word quoted, so the user's text
    is never read as FTS5 syntax (no column filters, NEAR, or a syntax error)."""
    found = _WORD.findall(query[:2_000])[:max_words]
    if not found:
        return None
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in found)
