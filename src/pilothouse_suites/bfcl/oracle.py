"""`oracle_model()` (``bfcl:oracle``): a scripted model that makes each case's
ground-truth call, the first possible value of every argument (an optional argument
whose first possibility is "left out" is left out), all of a parallel case's calls in
one reply, and answers in words on an irrelevance case. It proves the harness end to
end: every sampled case must score (the live-like set's too).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pilothouse.exceptions import ModelError
from pilothouse.messages import ToolCall
from pilothouse.models.base import ModelRequest
from pilothouse.models.scripted import Reply, ScriptedModel
from pilothouse_suites.bfcl.data import CATEGORIES, Case, load_category
from pilothouse_suites.bfcl.livelike import LIVELIKE_CATEGORIES, livelike_cases

NO_CALL = "None of the functions I have fits this request."


def _realise(value: Any) -> Any:
    """A possible value with its nested dicts' keys (which hold options) resolved."""
    if isinstance(value, dict):
        return _arguments(value)
    if isinstance(value, list):
        return [_realise(v) for v in value]
    return value


def _value(options: Any) -> Any:
    """The first possible value, realised."""
    return _realise(options[0] if isinstance(options, list) and options else options)


def _arguments(possible: dict[str, Any]) -> dict[str, Any]:
    return {
        name: _value(options)
        for name, options in possible.items()
        if not (isinstance(options, list) and options and options[0] == "")
    }


def truth_calls(case: Case) -> list[ToolCall]:
    """The ground-truth calls of `case` (none for irrelevance)."""
    calls = []
    for n, entry in enumerate(case.ground_truth):
        for name, possible in entry.items():
            calls.append(ToolCall(f"oracle_{n}", name, _arguments(possible)))
    return calls


@cache
def _index() -> dict[tuple[str, tuple[str, ...]], Case]:
    index: dict[tuple[str, tuple[str, ...]], Case] = {}
    every = [load_category(c) for c in CATEGORIES]
    every += [livelike_cases(c) for c in LIVELIKE_CATEGORIES]
    for cases in every:
        for case in cases.values():
            key = (case.question, tuple(sorted(str(f["name"]) for f in case.functions)))
            index.setdefault(key, case)
    return index


def _reply(request: ModelRequest) -> Reply:
    question = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
    key = (question, tuple(sorted(t.name for t in request.tools)))
    case = _index().get(key)
    if case is None:
        raise ModelError("bfcl:oracle: this request is not a BFCL case")
    calls = truth_calls(case)
    return calls if calls else NO_CALL


def oracle_model() -> ScriptedModel:
    """The ground-truth model (see the module docstring)."""
    return ScriptedModel(_reply, name="bfcl-oracle")
