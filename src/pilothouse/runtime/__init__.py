"""The run loop, its journal and stores, and budgets."""
