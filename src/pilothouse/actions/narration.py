"""Replies that narrate a tool call instead of making one: neither a call nor an answer.

A model sometimes writes *about* the call it means to make and stops there: its
reasoning channel leaks as the whole reply ("The user gave a tweet ... So I need to
output XML accordingly.": gpt-oss-120b through mlx-lm, ml-explore/mlx-lm#875), or it
imitates the progress line a tool would print ("📚 Fetching details for t:e8a9...…":
a memory agent's eval, BYK/loreai#409). Both are `tune11` outputs of
benchmarks/data/parse_corpus/session11.jsonl. A plan to hand the answer over that ends
the reply with the answer unwritten ("The human is asking for ... The tool has provided
the information. I will now relay this information to the human.": LangChain's
structured-chat agent, langchain-ai/langchain#13065, `tune14` of session14.jsonl) is the
same leak, in LangChain's word for the user. Shown to the user, they end the run with
nothing done; refused, the loop asks again and the model usually makes the call.

Each shape is narrow on purpose, because refusing a real answer is a failure too (the
property tests in tests/actions/test_markup_classifier_properties.py keep near misses as
answers): a leaked plan must open by speaking of the user in the third person, plan to
produce a call or its format (or end on a plan to relay the answer, with nothing after
it), name a tool or a format, and never address the reader (`you`); a progress line
must be one line, open with a symbol (the tool's icon), name an action in progress,
hold no finite verb, and trail off in an ellipsis. Both are regular
expressions over the text with no nested repetition: linear work.
"""

from __future__ import annotations

import re
from collections.abc import Collection

_MAX = 4_000  # longer replies are not a one-breath plan or a progress line

# "The user gave / asks / wants ...": the analysis channel speaks of the user; an answer
# speaks to them
_PLAN_OPENER = re.compile(
    r"\A\s*(?:the\s+)?(?:user|human)\s+(?:asks|asked|is\s+asking|wants|wanted|gave|has\s+given|"
    r"provided|says|said|requests|requested|would\s+like|likely|probably|just)\b",
    re.I,
)
# a plan to produce the call or its format: "I need to output", "we should call",
# "wants me to use", "let's invoke"
_PLAN = re.compile(
    r"\b(?:(?:I|we)\s+(?:need|have|ought)\s+to|(?:I|we)\s+(?:must|should|will)|I'll|we'll|"
    r"wants?\s+me\s+to|let\s+me|let's)\s+(?:output|produce|emit|call|invoke|use|respond\s+with|"
    r"format|return\s+a\s+(?:tool|function))\b",
    re.I,
)
# the plan to hand an answer over, closing the reply with the answer still unwritten:
# "I will now relay this information to the human." (LangChain's structured-chat
# agent, gpt-4: langchain-ai/langchain#13065, `tune14`); what LangChain's prompts call
# the user ("the human") is spoken of, and nothing after the plan says the answer
_RELAY_PLAN = re.compile(
    r"\b(?:I|we)\s*(?:will|'ll|shall|am\s+going\s+to|are\s+going\s+to)\s+(?:now\s+)?"
    r"(?:relay|pass\s+(?:on|along)|deliver|give|provide|share|report)\s+"
    r"(?:this|that|the|these|those)\s+(?:information|answer|results?|findings|details)"
    r"(?:\s+(?:to|with|back\s+to)\s+the\s+(?:human|user))?[ \t]*\.?\s*\Z",
    re.I,
)
_TOOL_WORD = re.compile(r"\b(?:tool|function\s+call|XML|JSON)\b")
_SECOND_PERSON = re.compile(r"\byou(?:r|rs|rself)?\b", re.I)

# "📚 Fetching details for ...…": an icon, an action in progress, an ellipsis, one line
_PROGRESS = re.compile(
    r"\A[ \t]*[^\w\s]{1,4}[ \t]*(?:Fetching|Searching|Looking\s+up|Checking|Calling|Running|"
    r"Retrieving|Loading|Querying|Reading|Recalling|Gathering|Scanning|Browsing|"
    r"Downloading|Executing|Analy[sz]ing)\b[^\n]{0,300}?(?:…|\.\.\.)[ \t]*\Z"
)
_FINITE = re.compile(
    r"\b(?:is|are|was|were|has|have|had|can|could|will|would|should|may|might|must|do|"
    r"does|did|shows?|showed|found|returned|gave|took|means|seems|looks)\b",
    re.I,
)


def leaked_plan(text: str, tool_names: Collection[str] = ()) -> bool:
    """Whether the reply is a plan to call a tool, written about the user rather than
    to them (a leaked reasoning channel), with no call in it."""
    if len(text) > _MAX or _PLAN_OPENER.match(text) is None:
        return False
    if _SECOND_PERSON.search(text) is not None:
        return False
    if _PLAN.search(text) is None and _RELAY_PLAN.search(text) is None:
        return False
    if _TOOL_WORD.search(text) is not None:
        return True
    return any(re.search(rf"(?<![\w.]){re.escape(n)}(?![\w])", text) for n in tool_names if n)


def progress_line(text: str) -> bool:
    """Whether the reply is only an imitated progress line of a tool (`📚 Fetching
    details for ...…`): an action in progress, announced and never made."""
    return (
        len(text) <= _MAX
        and _PROGRESS.match(text.strip()) is not None
        and _FINITE.search(text) is None
    )


def narrated_call(text: str, tool_names: Collection[str] = ()) -> str | None:
    """What the reply does instead of calling, for a corrective message, or `None`."""
    if leaked_plan(text, tool_names):
        return "the reply plans a tool call in prose (leaked reasoning) but makes none"
    if progress_line(text):
        return "the reply imitates a tool's progress line but makes no call"
    return None
