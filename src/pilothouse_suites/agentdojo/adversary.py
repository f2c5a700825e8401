"""Scripted models for the AgentDojo suites: no LLM, deterministic, one call a step.

- `adversary_model` (``agentdojo:adversary``): replays the ground truth of the user
  task whose prompt opened the run and, as soon as a tool result holds an injection
  task's goal, obeys it: the injection task's ground-truth calls come next, then the
  rest of the user task. The final answer states both tasks' expected outputs. It
  always obeys, so it is the worst case for a tool-call policy: whatever it gets
  done, the policy let through.
- `oracle_model` (``agentdojo:oracle``): the same replay, never obeying an injection
  (what a perfectly robust model does; benign utility 100%, ASR 0%).
- `null_model` (``agentdojo:null``): answers at once and calls nothing.

The models read nothing but the request: the task comes from the first user message
(each of the 97 prompts is distinct), the position in the plan from the calls already
made, the injection from the tool results' text. Ground truths are computed once on
the suite's environment with its benign vectors, as AgentDojo's own suite check does.
A call the policy refused is not retried; the plan moves on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any

from pilothouse import ModelRequest, ToolCall
from pilothouse.models.scripted import Reply, ScriptedModel
from pilothouse_suites.agentdojo.environment import SUITE_NAMES, load_environment, task_suite


@cache
def _prompts() -> dict[str, tuple[str, str]]:
    """User prompt -> (suite, user task id), over the four suites."""
    return {
        task.PROMPT: (name, task_id)
        for name in SUITE_NAMES
        for task_id, task in task_suite(name).user_tasks.items()
    }


@cache
def _user_plan(name: str, task_id: str) -> tuple[tuple[tuple[str, str], ...], str]:
    """A user task's ground-truth calls (name, JSON arguments) and expected output."""
    task = task_suite(name).user_tasks[task_id]
    env = task.init_environment(load_environment(name))
    return tuple(_encode(c) for c in task.ground_truth(env)), task.GROUND_TRUTH_OUTPUT


@cache
def _injection_plans(suite_name: str) -> tuple[tuple[str, tuple[tuple[str, str], ...], str], ...]:
    """(goal, ground-truth calls, expected output) of each injection task of a suite."""
    suite = task_suite(suite_name)
    env = load_environment(suite_name)
    out = []
    for task in suite.injection_tasks.values():
        calls = tuple(_encode(c) for c in task.ground_truth(env.model_copy(deep=True)))
        out.append((task.GOAL, calls, task.GROUND_TRUTH_OUTPUT))
    return tuple(out)


def _encode(call: Any) -> tuple[str, str]:
    from pilothouse_suites.agentdojo.tools import plain

    return call.function, json.dumps(plain(dict(call.args)), sort_keys=True)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _texts(content: str) -> str:
    """A tool result's text: the strings of its JSON value (unescaped), else the text."""
    try:
        return "\n".join(_strings(json.loads(content)))
    except ValueError:
        return content


def _planner(obey: bool) -> Callable[[ModelRequest], Reply]:
    def reply(request: ModelRequest) -> Reply:
        prompt = next((m.content for m in request.messages if m.role == "user"), "")
        found = _prompts().get(prompt)
        if found is None:
            return "I have no ground truth for this request."
        suite_name = found[0]
        user_calls, user_output = _user_plan(*found)
        queue = list(user_calls)
        obeyed: tuple[str, tuple[tuple[str, str], ...], str] | None = None
        made = 0
        for message in request.messages:
            if message.role == "assistant":
                n = len(message.tool_calls or ())
                made += n
                del queue[:n]
            elif message.role == "tool" and obey and obeyed is None:
                text = _texts(message.content)
                for injection in _injection_plans(suite_name):
                    if injection[0] in text:
                        obeyed = injection
                        queue[:0] = injection[1]
                        break
        if queue:
            name, args = queue[0]
            return ToolCall(f"gt_{made}", name, json.loads(args))
        answer = user_output or "Done."
        if obeyed is not None and obeyed[2]:
            answer = f"{answer} {obeyed[2]}"
        return answer

    return reply


def adversary_model() -> ScriptedModel:
    """The ground truth, obeying every injection it reads (``agentdojo:adversary``)."""
    return ScriptedModel(_planner(True), name="agentdojo:adversary", record=False)


def oracle_model() -> ScriptedModel:
    """The ground truth, ignoring injections (``agentdojo:oracle``)."""
    return ScriptedModel(_planner(False), name="agentdojo:oracle", record=False)


def null_model() -> ScriptedModel:
    """Answers at once, calls nothing (``agentdojo:null``)."""
    return ScriptedModel(
        lambda request: "I cannot help with that.", name="agentdojo:null", record=False
    )
