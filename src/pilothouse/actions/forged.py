"""A reply that writes the tool's (or the user's) turn itself is neither a call nor an
answer.

After a tool result, small models often answer by imitating the turn they were just
given: the result again, in the envelope it came in (``<tool_response>\\n391\\n
</tool_response>``, Hermes; ``[TOOL_RESULTS]...``, Mistral; ``Observation: 391``,
ReAct and smolagents), closed or not, sometimes with the value changed. Recorded from
the embedded SmolLM2-135M on the Hermes, Mistral, smolagents and ReAct prompts
(parse corpus `session13.jsonl`, pattern `forged_tool_result`); the corpus's earlier
`forged_tool_result` entry is a GLM loop of ``<tool_result call_id=...>`` blocks
(izaart95-jpg/GLM-Free-API#44). Shown as an answer, the user would see the tool's raw
output in its markup and the run would end on a reply the model never wrote for them;
refused, the loop asks again.

Two shapes count, both checked only on what would otherwise be a final answer: the
reply opens with a tool turn's envelope (after blank space), or it holds two or more
lines that begin ``Observation:`` (one such line opening a prose answer is left alone
unless it opens the reply). A reply that quotes a tool result in prose ("the tool
returned 391") is an answer.

The user's turn, written in plain labels rather than template tokens (which
`turn_end` cuts at), is the same failure: Aider with a local model answered with a loop
of invented turns, ``A: You're welcome! ...`` then ``USER: Sounds good, thanks!`` over
and over (Aider-AI/aider#864, `tune14` of session14.jsonl). It counts when at least two
lines open with a user label (``USER:``, ``User:``, ``Human:``) and one of them recurs
word for word: a dialogue the user asked the model to write varies its lines, a loop of
turns the model invents for the user repeats them.
"""

from __future__ import annotations

import re

# the envelopes a tool's turn comes in, as chat templates write them: Hermes/Qwen
# `<tool_response>`, `<tool_result ...>` (GLM, Anthropic-style), `<tool_output>`, GLM's
# `<|observation|>`, Mistral's `[TOOL_RESULTS]`, Gemma's `<start_of_turn>tool`, Llama 3's
# `<|start_header_id|>ipython`, and ReAct's `Observation:`
_TOOL_TURN = re.compile(
    r"\s*(?:<tool_response>|<tool_result\b|<tool_output>|<\|observation\|>|\[TOOL_RESULTS\]"
    r"|<start_of_turn>tool\b|<\|start_header_id\|>ipython\b|[>*#]*[ \t]*Observation[ \t]*:)",
    re.I,
)
_OBSERVATION_LINE = re.compile(r"^[ \t>*#]*Observation[ \t]*:", re.M | re.I)
_LINES_SCANNED = 200_000  # characters searched for Observation lines: bounded work


def forged_tool_turn(text: str) -> str | None:
    """The tool-turn envelope the reply writes itself (see the module), or `None`.
    Linear work."""
    first_char = text[:64].lstrip()[:1]
    m = _TOOL_TURN.match(text) if first_char and first_char in "<[>*#Oo" else None
    if m is not None:
        return m.group().strip()
    if "bservation" not in text and "BSERVATION" not in text:
        return None  # the common case, found in C before any pattern runs
    head = text[:_LINES_SCANNED]
    first = _OBSERVATION_LINE.search(head)
    if first is not None and _OBSERVATION_LINE.search(head, first.end()) is not None:
        return "Observation:"
    return None


_USER_LABELS = frozenset({"user", "human"})
_USER_LINES_MAX = 256  # user-labelled lines looked at: bounded work
_COLONS_MAX = 4_096  # colons looked at: bounded work on a colon-dense reply


def forged_user_turns(text: str) -> bool:
    """Whether the reply writes the user's turns itself, in a loop (see the module):
    two or more lines labelled ``USER:``/``Human:`` (any case, after markdown quote or
    emphasis marks), one of them repeated exactly. Walks the colons, the rarest
    character of a label (found in C; prose has few): linear work."""
    seen: set[str] = set()
    pos = 0
    limit = min(len(text), _LINES_SCANNED)
    for _ in range(_COLONS_MAX):
        colon = text.find(":", pos, limit)
        if colon < 0:
            return False
        pos = colon + 1
        line_start = text.rfind("\n", 0, colon) + 1
        if colon - line_start > 12:
            continue  # a label is one short word at the start of its line
        if text[line_start:colon].strip(" \t>*#").lower() not in _USER_LABELS:
            continue
        end = text.find("\n", colon)
        line = text[line_start : len(text) if end < 0 else end].strip()
        if line in seen:
            return True
        seen.add(line)
        if len(seen) >= _USER_LINES_MAX:
            return False
    return False
