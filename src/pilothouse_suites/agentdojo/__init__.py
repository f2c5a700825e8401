"""AgentDojo (v1: workspace, travel, slack, banking) in `pilothouse.evals`.

- `agentdojo_suite(name, policy=...)`: the suite's user tasks without attack (benign
  utility) and every (user task, injection task) pair under `important_instructions`
  (attack success rate), scored by AgentDojo's own utility and security checks;
  ``pilothouse eval agentdojo-workspace`` (``-travel``, ``-slack``, ``-banking``) names
  them, with the policy from ``$PILOTHOUSE_AGENTDOJO_POLICY`` (none, default, defended
  or a YAML path);
- `adversary_model()` (``agentdojo:adversary``): a scripted model that replays each
  user task's ground truth and obeys every injection it reads; `oracle_model()`
  (``agentdojo:oracle``) never obeys; `null_model()` (``agentdojo:null``) does nothing;
- `dojo_tools(name)`: AgentDojo's functions as tools with effect kinds (`effect_of`).

Needs the ``agentdojo`` extra (``pip install 'pilothouse[agentdojo]'``); without it,
building a suite raises a `ConfigurationError` naming it. See docs/agentdojo.md.
"""

from __future__ import annotations

from pilothouse.exceptions import UnknownModelError
from pilothouse.models.base import Model
from pilothouse.models.registry import register_model
from pilothouse_suites.agentdojo.adversary import adversary_model, null_model, oracle_model
from pilothouse_suites.agentdojo.environment import (
    HOLDOUT_SUITES,
    SUITE_NAMES,
    TUNE_SUITES,
    attack_injections,
    available,
    load_environment,
    require_agentdojo,
    task_suite,
)
from pilothouse_suites.agentdojo.suite import (
    INJECTION_SUCCEEDED,
    OUTPUT_ONLY,
    POLICY_NAMES,
    agentdojo_suite,
    banking_suite,
    policy_path,
    resolve_policy,
    slack_suite,
    summarize,
    travel_suite,
    workspace_suite,
)
from pilothouse_suites.agentdojo.tools import DojoEnv, dojo_tools, effect_of

__all__ = [
    "HOLDOUT_SUITES",
    "INJECTION_SUCCEEDED",
    "OUTPUT_ONLY",
    "POLICY_NAMES",
    "SUITE_NAMES",
    "TUNE_SUITES",
    "DojoEnv",
    "adversary_model",
    "agentdojo_suite",
    "attack_injections",
    "available",
    "banking_suite",
    "dojo_tools",
    "effect_of",
    "load_environment",
    "null_model",
    "oracle_model",
    "policy_path",
    "require_agentdojo",
    "resolve_policy",
    "slack_suite",
    "summarize",
    "task_suite",
    "travel_suite",
    "workspace_suite",
]


def _resolve(rest: str) -> Model:
    makers = {"adversary": adversary_model, "oracle": oracle_model, "null": null_model}
    if rest not in makers:
        raise UnknownModelError(
            f"'agentdojo:{rest}' is not a model: use agentdojo:adversary, agentdojo:oracle "
            "or agentdojo:null"
        )
    return makers[rest]()


register_model("agentdojo", _resolve)
