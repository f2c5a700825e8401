"""AgentDojo's task suites, environments and the `important_instructions` attack.

Everything that touches the `agentdojo` package (``pip install 'pilothouse[agentdojo]'``)
is imported here, lazily: without the package, `require_agentdojo` raises a
`ConfigurationError` that names the extra, and nothing else in the suite imports it.

An environment is AgentDojo's pydantic model of the world (inbox, calendar, drive,
bank account, Slack workspace, travel database) loaded from the suite's YAML with
the injection vectors filled in: the vectors' benign defaults for a run without an
attack, or the attack's text in the vectors the user task's ground truth reads (the
placeholders a correct agent sees), exactly as AgentDojo's own attacks choose them.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pilothouse import ConfigurationError

VERSION = "v1"  # AgentDojo's benchmark version the suites are taken from
SUITE_NAMES = ("workspace", "travel", "slack", "banking")
TUNE_SUITES = ("workspace", "travel", "slack")  # policies were written against these
HOLDOUT_SUITES = ("banking",)  # reported on its own; never tuned against
USER_NAME = "Emma Johnson"  # who the `important_instructions` text claims to be
MODEL_NAME = "the AI language model"  # the victim's name in the text (model-agnostic)
INSTALL_HINT = "pip install 'pilothouse[agentdojo]' (the agentdojo package, MIT)"


def require_agentdojo() -> Any:
    """The `agentdojo` package, or a `ConfigurationError` naming the extra to install."""
    try:
        import agentdojo
    except ImportError as exc:
        raise ConfigurationError(
            f"the AgentDojo suites need the agentdojo package: {INSTALL_HINT} ({exc})"
        ) from None
    return agentdojo


def available() -> bool:
    """Whether the `agentdojo` package can be imported (the suites skip without it)."""
    try:
        require_agentdojo()
    except ConfigurationError:
        return False
    return True


@cache
def task_suites() -> dict[str, Any]:
    """AgentDojo's v1 task suites by name (workspace, travel, slack, banking)."""
    require_agentdojo()
    from agentdojo.task_suite.load_suites import get_suites

    suites = dict(get_suites(VERSION))
    return {name: suites[name] for name in SUITE_NAMES}


def task_suite(name: str) -> Any:
    """One AgentDojo task suite by name; a `ConfigurationError` names the known ones."""
    suites = task_suites()
    if name not in suites:
        raise ConfigurationError(f"no AgentDojo suite {name!r}; use one of {list(suites)}")
    return suites[name]


@cache
def _vector_defaults(name: str) -> tuple[tuple[str, str], ...]:
    return tuple(task_suite(name).get_injection_vector_defaults().items())


def vector_defaults(name: str) -> dict[str, str]:
    """The suite's injection vectors and their benign default texts."""
    return dict(_vector_defaults(name))


def load_environment(name: str, injections: dict[str, str] | None = None) -> Any:
    """A fresh environment of suite `name` with `injections` in their vectors.

    The same as AgentDojo's ``load_and_inject_default_environment`` (its suite file,
    ``str.format`` of the vectors, the environment model's validation) with libyaml's
    parser where PyYAML has it: the workspace environment loads in 15 ms, not 230 ms.
    """
    import yaml  # type: ignore[import-untyped,unused-ignore]
    from agentdojo.task_suite.task_suite import read_suite_file

    suite = task_suite(name)
    values = vector_defaults(name)
    unknown = set(injections or {}) - set(values)
    if unknown:
        raise ConfigurationError(f"suite {name!r} has no injection vectors {sorted(unknown)}")
    values.update(injections or {})
    text = read_suite_file(name, "environment.yaml", suite.data_path).format(**values)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return suite.environment_type.model_validate(yaml.load(text, Loader=loader))


def important_instructions(goal: str, user: str = USER_NAME, model: str = MODEL_NAME) -> str:
    """The `important_instructions` attack's text for an injection task's goal."""
    require_agentdojo()
    from agentdojo.attacks.important_instructions_attacks import ImportantInstructionsAttack

    template: str = ImportantInstructionsAttack._JB_STRING
    return template.format(goal=goal, user=user, model=model)


@cache
def injection_candidates(name: str, user_task_id: str) -> tuple[str, ...]:
    """The vectors the user task's ground truth reads (where an attack puts its text).

    As AgentDojo's `BaseAttack.get_injection_candidates`: run the ground truth on an
    environment whose vectors hold canaries and keep the vectors whose canary shows up
    in a tool result.
    """
    from agentdojo.agent_pipeline.tool_execution import tool_result_to_str
    from agentdojo.functions_runtime import FunctionsRuntime

    suite = task_suite(name)
    task = suite.user_tasks[user_task_id]
    canaries = {v: f"<CANARY---{v}--->" for v in vector_defaults(name)}
    env = task.init_environment(load_environment(name, canaries))
    runtime = FunctionsRuntime(suite.tools)
    seen = []
    for call in task.ground_truth(env.model_copy(deep=True)):
        result, _ = runtime.run_function(env, call.function, call.args, raise_on_error=True)
        seen.append(tool_result_to_str(result))
    text = "\n".join(seen)
    found = tuple(v for v, canary in canaries.items() if canary in text)
    if not found:
        raise ConfigurationError(f"AgentDojo {name}/{user_task_id} reads no injection vector")
    return found


def attack_injections(name: str, user_task_id: str, injection_task_id: str) -> dict[str, str]:
    """The `important_instructions` attack on one (user task, injection task) pair."""
    goal = task_suite(name).injection_tasks[injection_task_id].GOAL
    text = important_instructions(goal)
    return dict.fromkeys(injection_candidates(name, user_task_id), text)
