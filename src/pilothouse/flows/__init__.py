"""Flows: chains and graphs of model calls, tools, functions and agents, durable to the
node (see docs/flows.md), and planner-made task graphs (`PlannedAgent`, docs/planning.md).

A flow run is a journaled run like an agent's: every node execution is a unit of its
journal with a stable key, agent nodes and subgraphs are child runs, and a resumed
flow re-runs no node that finished.
"""

from pilothouse.flows.chain import (
    Chain,
    ChainResult,
    Step,
    agent_step,
    prompt_step,
    step,
    tool_step,
)
from pilothouse.flows.graph import END, START, Flow, Graph
from pilothouse.flows.nodes import FlowResult, NodeContext
from pilothouse.flows.plan import PlannedAgent
from pilothouse.flows.plan_replay import replay_plan
from pilothouse.flows.state import Reducer, add, append, merge, reducer, replace

__all__ = [
    "END",
    "START",
    "Chain",
    "ChainResult",
    "Flow",
    "FlowResult",
    "Graph",
    "NodeContext",
    "PlannedAgent",
    "Reducer",
    "Step",
    "add",
    "agent_step",
    "append",
    "merge",
    "prompt_step",
    "reducer",
    "replace",
    "replay_plan",
    "step",
    "tool_step",
]
