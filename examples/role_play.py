"""Role-play (CAMEL): a stock trader instructs a Python programmer, turn by turn, until
the trader says the task is done.

Runs offline as written (scripted models stand in for real ones):

    python examples/role_play.py

What it shows: two agents alternating on one task, each reading the CAMEL turn
prompt for its role (`roleplay_user`, `roleplay_assistant` in prompts.toml), the end
marker as a termination condition, and the bound (`max_turns`) that holds if it
never comes; the run is a group chat's journal marked ``roleplay``.
"""

from __future__ import annotations

import asyncio

from pilothouse import Agent, ScriptedModel, SQLiteStore
from pilothouse.teams.roleplay import MARKER, RolePlay


async def main() -> None:
    store = SQLiteStore("role_play.db")
    trader = ScriptedModel(
        [
            "Instruction: write a function that reads closing prices from prices.csv.",
            "Instruction: add a 5-day moving average and print a buy signal when the "
            "price crosses above it.",
            MARKER,
        ]
    )
    programmer = ScriptedModel(
        [
            "Solution: def closes(path): "
            "return [float(r['close']) for r in csv.DictReader(open(path))]",
            "Solution: def signals(c): return [i for i in range(5, len(c)) "
            "if c[i-1] <= sum(c[i-6:i-1])/5 < c[i]]",
        ]
    )
    play = RolePlay(
        Agent(trader, name="trader", store=store),
        Agent(programmer, name="programmer", store=store),
        user_role="stock_trader",
        assistant_role="python_programmer",
        max_turns=5,
        store=store,
    )
    result = await play.run("Develop a trading bot for the stock market.")
    for said in result.messages:
        print(f"[{said.speaker}] {said.text}")
    print("stopped:", result.reason)
    print("the programmer was told:", programmer.requests[0].messages[-1].content.splitlines()[0])


if __name__ == "__main__":
    asyncio.run(main())
