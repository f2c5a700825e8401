"""Flows: chains, graphs and planner-made task graphs, built on agents."""
