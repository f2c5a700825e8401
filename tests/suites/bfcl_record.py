"""Record the BFCL cassettes `test_bfcl_cassettes.py` replays: the embedded model, for real.

    PYTHONPATH=src python tests/suites/bfcl_record.py

A fixed handful of BFCL *tune* cases (never holdout or live), each run once by the
default construction on SmolLM2-135M exactly as the ``bfcl-<category>`` suites run it
(the case's functions as tools, one turn), its journal written to
``bfcl_cassettes/<case>.jsonl``. Re-record on purpose when the guided construction
changes what a stage sends (the replay test then fails with a ``stage`` divergence),
and say so in the commit. Re-recorded for issue #22's second round (the arguments stage
held to the request's own values from the start), and for its third round (an early
answer asked for in at most 48 tokens; the ``distinct`` stage; two cases added), and
for its fourth round (a request that plainly asks for a tool gets a tool only; values
in their parameter's form; a value that only names its parameter asked again; four
cases added), and for its sixth round's gate rules (multiple_166 only: naming the
whole of the tool's name, "concert", now asks for the tool, so the case starts at
`arguments`). The sixth round's value rules changed no recorded case; one case was added
(multiple_88), recorded alone (``python tests/suites/bfcl_record.py multiple_88``).
The eighth round (requests split into sub-requests) changed no recorded case (none is
split); two parallel cases were added, recorded alone
(``python tests/suites/bfcl_record.py parallel_188 parallel_multiple_134``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CASSETTES = HERE / "bfcl_cassettes"


def _budget() -> Any:
    from pilothouse.runtime.budget import Budget

    # the suite's one turn; time enough for a machine loaded by other processes (the
    # replies do not depend on time: temperature 0)
    return Budget(max_steps=1, max_seconds=3600)


RECORD_BUDGET = _budget()

# case id -> what the construction is pinned to show on it
CASES = {
    "irrelevance_175": "no offered tool fits: answered without a call (relevance gate)",
    "multiple_59": "arguments held to the request's spans from the start; the model picks "
    "'New York' for the specialization too, which the distinct stage asks again among the "
    "other spans: ['lawyers', 'criminal law'] (still wrong: pinned)",
    "multiple_162": "an optional string the model left out filled with the one value its "
    "description names that the request says (mode 'dynamic')",
    "multiple_166": "the enum member the request names is taken (price_range 'cheap'); "
    "the request names the whole tool name, so no choose stage (sixth round)",
    "multiple_26": "the platform is one of the request's spans ('Playstation'), not the "
    "tool's example",
    "simple_python_344": "a quoted name kept whole ('Legend of Zelda: Breath of the Wild'); "
    "the item is a span of the request but the wrong one ('Weapon': pinned as it is); the "
    "stat, which repeated it, asked again (distinct stage)",
    "simple_python_104": "the request plainly asks for the tool, so the arguments are asked "
    "at once (until the fourth round the choose stage's answer ran on, was cut at 48 tokens "
    "and held a number nobody gave); the optional unit '10' (height's value as text) left "
    "out",
    "simple_python_292": "the request plainly asks for compose_melody: no choose stage (the "
    "model used to answer 'The melody is ...' there)",
    "simple_python_389": "currencies in the parameter's form: held to the codes the request "
    "names (USD for 'US dollars', GBP for 'British Pounds'), not asked again as words nobody "
    "said",
    "simple_python_291": "key 'C': the value its description maps 'C major' to",
    "simple_python_319": "league 'League' only names its parameter: asked again among the "
    "other spans (distinct stage): 'Premier League'",
    "multiple_88": "an optional string that is only words of the tool's name left out "
    "(platform 'players' for video_games.get_player_count; sixth round)",
    "parallel_188": "three routes in one request ('... then from Los Angeles to San "
    "Francisco ..., and finally from San Francisco back to New York ...'): split into three "
    "sub-requests, one arguments stage each (eighth round, guided.split)",
    "parallel_multiple_134": "two acts for two tools in one request: split into two "
    "sub-requests, each offered only the tool that fits it, so no choose stage (eighth "
    "round)",
}


def case_agent(case_id: str, model: Any = "local") -> Any:
    """The agent the BFCL suite builds for this case (tools, instructions, one turn)."""
    from pilothouse import Agent
    from pilothouse_suites.bfcl import bfcl_tools, load_category

    case = load_category(case_id.rsplit("_", 1)[0])[case_id]
    return Agent(model, case.system, bfcl_tools(case), name=case_id, budget=RECORD_BUDGET), case


def main() -> int:
    from pilothouse.testing import record_cassette

    CASSETTES.mkdir(exist_ok=True)
    chosen = sys.argv[1:] or list(CASES)  # a few named cases, or all of them
    for case_id in chosen:
        agent, case = case_agent(case_id)
        result = record_cassette(agent, case.question, CASSETTES / f"{case_id}.jsonl")
        print(case_id, result.outcome, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
