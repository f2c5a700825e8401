"""Which agents an endpoint serves, by model name (pure: no HTTP).

`served_agents` accepts what ``pilothouse serve-agent module:attr`` may name: one
`Agent` (served under its `name`), a list of them (each under its name), a mapping of
model names to agents, or a function returning any of these.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pilothouse.agent import Agent
from pilothouse.exceptions import ConfigurationError
from pilothouse.serving.protocol import SESSION_NAME


def served_agents(value: Any) -> dict[str, Agent[Any, Any]]:
    """The agents to serve, by the model name clients send; `ConfigurationError` for
    anything else, two agents under one name, or an agent that needs deps (a request
    has no way to give live objects: serve an agent built around them instead)."""
    if callable(value) and not isinstance(value, Agent):
        value = _call(value)
    if isinstance(value, Agent):
        pairs = [(value.name, value)]
    elif isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, (list, tuple)):
        pairs = [(a.name if isinstance(a, Agent) else "?", a) for a in value]
    else:
        raise ConfigurationError(
            f"cannot serve a {type(value).__name__}: give an Agent, a list of agents, a "
            "dict of model name -> Agent, or a function returning one"
        )
    agents: dict[str, Agent[Any, Any]] = {}
    for name, agent in pairs:
        if not isinstance(agent, Agent):
            raise ConfigurationError(f"cannot serve {agent!r} as model {name!r}: not an Agent")
        if not isinstance(name, str) or not SESSION_NAME.fullmatch(name):
            raise ConfigurationError(
                f"model name {name!r}: 1 to 128 letters, digits or . _ @ + ~ - "
                "(name the agent, or serve a dict of names)"
            )
        if name in agents:
            raise ConfigurationError(f"two served agents are named {name!r}; serve a dict")
        if agent.deps_type is not None:
            raise ConfigurationError(
                f"agent {name!r} declares deps_type: a request cannot give it deps; serve "
                "an agent whose tools reach their state another way"
            )
        agents[name] = agent
    if not agents:
        raise ConfigurationError("no agent to serve")
    return agents


def _call(factory: Callable[[], Any]) -> Any:
    value = factory()
    if callable(value) and not isinstance(value, Agent):
        raise ConfigurationError("the factory returned another function, not agents")
    return value
