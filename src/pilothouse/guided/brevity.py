"""Short early answers: an answer before any tool ran is asked for in a few tokens.

Asked to choose between a tool and an answer, SmolLM2-135M sometimes answers and
then runs on to the token limit ("The area of the triangle with base 6 and height 10
is 100. The area of the triangle ... is 100. ...", 256 tokens; "0.0000..." to the
limit): on BFCL's cases (docs/bfcl.md, third round) 9 of 109 `choose` stages did, and
the free answer given when no offered tool fits (`relevance`: the tools are not shown)
ran to the limit 20 times in 51 (mean 158 tokens, a third of all the time spent).
Such an answer is a decision not to call, whose first sentence says all there is, or
a number the model made up (re-asked as a tool choice, `checks.invented_numbers`).

So both stages, when no tool has run since the user's message and the reply is not
the run's structured output, are asked for at most `EARLY_ANSWER_TOKENS` tokens
(unless the caller set ``max_tokens``): a tool choice (``{"tool": "<name>"}``) is far
shorter. A `choose` answer cut there is read up to its last sentence by
`model.partial_answer`; a free answer is cut back the same way (`trimmed`).

The limit is a token limit, not a ``maxLength`` in the stage's schema: llama.cpp
turns ``maxLength: 160`` into 160 nested optional rules, and a reply the grammar then
filters token by token took 115 s for 98 tokens (the same reply without it: 2.7 s).

Answers after a tool ran are not held here: they carry the results (`checks`).
"""

from __future__ import annotations

import re
from dataclasses import replace

from pilothouse.models.base import ModelSettings

__all__ = ["EARLY_ANSWER_TOKENS", "short", "trimmed"]

EARLY_ANSWER_TOKENS = 48
"""About two sentences of SmolLM2's vocabulary; a tool choice takes 10-20 tokens."""

_SENTENCE_END = re.compile(r"(?<=\w)[.!?](?=\s)")


def short(settings: ModelSettings) -> ModelSettings:
    """`settings` asking for at most `EARLY_ANSWER_TOKENS` tokens, unless the caller
    chose a limit itself."""
    if settings.max_tokens is not None:
        return settings
    return replace(settings, max_tokens=EARLY_ANSWER_TOKENS)


def trimmed(text: str) -> str:
    """A free answer cut at its token limit, cut back to its last complete sentence;
    without a sentence end, to its last whole word, followed by an ellipsis."""
    body = text.rstrip()
    if body.endswith((".", "!", "?")):
        return body
    ends = [m.end() for m in _SENTENCE_END.finditer(body)]
    if ends:
        return body[: ends[-1]]
    if " " in body:
        body = body[: body.rfind(" ")]
    return body.rstrip(" ,;:") + " ..."
