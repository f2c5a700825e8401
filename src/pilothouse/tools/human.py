"""`ask_human`: a tool whose answer comes from a person, through the journal.

Calling it pauses the run (an `approval_requested` event of kind ``question``); the
process may exit. `Agent.resume(run_id, approvals={key: "the answer"})` continues
the run with the answer as the tool's result. Nothing waits in memory, so a question
can be answered hours later by another process.
"""

from __future__ import annotations

from pilothouse.exceptions import ToolError
from pilothouse.tools.tool import Tool


def _ask_human(question: str) -> str:
    """Ask a person a question and wait for the answer. Use it when you need information
    or a decision that no other tool can give.

    Args:
        question: The question, in one short sentence.
    """
    # The loop answers this tool from the journal; a direct call has no human to ask.
    raise ToolError("ask_human is answered by a person: resume the run with the answer")


ask_human = Tool(_ask_human, name="ask_human", interrupt="question")
