"""A reply that writes the tool's turn itself is neither a call nor an answer.

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
