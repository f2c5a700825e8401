"""BFCL's own AST checker, loaded from the installed package.

``bfcl_eval.eval_checker.ast_eval.ast_checker`` imports BFCL's model registry
(``bfcl_eval.constants.model_config``) at its top, which imports every provider's
client (torch, tree-sitter, the hosted APIs' SDKs). The checker consults that registry
in one place only: `convert_func_name`, which renames ``math.factorial`` to
``math_factorial`` for providers that cannot take a dot in a tool name. Pilothouse
tool names keep the dot, so the rename never applies; the checker module is therefore
executed with a one-entry stand-in for the registry (`_NoRename`), under a private
module name, and everything else (type checks, string normalisation, optional
arguments, parallel matching without order) is BFCL's code as published.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from pilothouse.exceptions import ConfigurationError
from pilothouse.messages import ToolCall
from pilothouse_suites.bfcl.data import Case, require_bfcl

MODEL_NAME = "pilothouse"
_REGISTRY = "bfcl_eval.constants.model_config"


@dataclass(frozen=True, slots=True)
class _NoRename:
    underscore_to_dot: bool = False


class _Registry(dict[str, _NoRename]):
    def __missing__(self, key: str) -> _NoRename:
        return _NoRename()


@dataclass(frozen=True, slots=True)
class Verdict:
    """The checker's decision on one case: valid, and BFCL's error text and type."""

    valid: bool
    error: str = ""
    error_type: str = ""


@cache
def _ast_module() -> types.ModuleType:
    require_bfcl()
    spec = importlib.util.find_spec("bfcl_eval.eval_checker.ast_eval.ast_checker")
    if spec is None or spec.origin is None:
        raise ConfigurationError("bfcl_eval has no eval_checker.ast_eval.ast_checker")
    stand_in = types.ModuleType(_REGISTRY)
    stand_in.MODEL_CONFIG_MAPPING = _Registry()  # type: ignore[attr-defined]
    previous = sys.modules.get(_REGISTRY)
    sys.modules[_REGISTRY] = stand_in
    try:
        module_spec = importlib.util.spec_from_file_location(
            "pilothouse_suites.bfcl._bfcl_ast_checker", spec.origin
        )
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    finally:
        if previous is None:
            del sys.modules[_REGISTRY]
        else:
            sys.modules[_REGISTRY] = previous
    return module


def ast_checker() -> Callable[..., dict[str, Any]]:
    """BFCL's `ast_checker(func_description, model_output, possible_answer, language,
    test_category, model_name)`."""
    checker: Callable[..., dict[str, Any]] = _ast_module().ast_checker
    return checker


def model_output(calls: Sequence[ToolCall]) -> list[dict[str, dict[str, Any]]]:
    """Tool calls in the form BFCL's checker reads: ``[{name: {argument: value}}]``."""
    return [{c.name: dict(c.arguments)} for c in calls]


def check(case: Case, calls: Sequence[ToolCall]) -> Verdict:
    """Score the calls a model made on `case` the way BFCL does.

    Irrelevance: right when no call was made (BFCL: the output does not decode to a
    call). Otherwise BFCL's AST checker on the calls as the model made them (before
    any validation of Pilothouse's); a call whose arguments did not parse is wrong.
    """
    if case.irrelevant:
        if calls:
            names = ", ".join(c.name for c in calls)
            return Verdict(False, f"called {names} though no function fits", "irrelevance")
        return Verdict(True)
    if not calls:
        return Verdict(False, "no function was called", "no_call")
    broken = [c for c in calls if c.parse_error is not None]
    if broken:
        return Verdict(False, f"unparsable arguments: {broken[0].parse_error}", "parse_error")
    module = _ast_module()
    result = module.ast_checker(
        list(case.functions),
        model_output(calls),
        list(case.ground_truth),
        module.Language.PYTHON,  # the enum the checker module imported
        case.category,
        MODEL_NAME,
    )
    if result.get("valid"):
        return Verdict(True)
    error = result.get("error") or []
    text = "; ".join(str(e) for e in error) if isinstance(error, list) else str(error)
    return Verdict(False, text, str(result.get("error_type", "")))
