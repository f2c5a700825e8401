"""`Desk.watch`: every committed batch of the desk's journal, for every run of a team's
tree (the handoff and the supervisor's review too), as the server's console hears it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pytest
from team_world import make_team_desk

from pilothouse.events import Event, FinalOutput, RunStarted


async def test_the_watch_hears_every_run_of_a_team_turn_once_on_disk(tmp_path: Path) -> None:
    desk = make_team_desk(tmp_path)
    heard: list[Event] = []
    on_disk: list[bool] = []

    def listen(events: Sequence[Event]) -> None:
        heard.extend(events)
        run_id = events[0].run_id
        on_disk.append(len(desk.store.events(run_id)) >= events[-1].seq + 1)

    stop = desk.watch(listen)
    conv = await desk.open()
    line = (
        "kira.dubois@example.com, zip 53703. The espresso machine from order A1010 arrived "
        "broken, please refund the $349."
    )
    reply = await desk.send(conv.id, line)
    tree = desk.tree(reply.run_id)
    assert [desk.store.get_run(r).agent for r in tree] == ["triage", "returns", "supervisor"]
    # Each run's events, exactly as stored (a resumed run's later ones included).
    for run_id in tree:
        assert [e.seq for e in heard if e.run_id == run_id] == [
            e.seq for e in desk.store.events(run_id)
        ]
    started = {e.run_id for e in heard if isinstance(e, RunStarted)}
    assert started == set(tree)
    assert all(on_disk)  # told after the write: a reader finds what it was told about
    stop()
    count = len(heard)
    await desk.send(conv.id, "thanks, bye")
    assert len(heard) == count  # stopped
    desk.shutdown()


async def test_a_failing_listener_is_logged_and_the_turn_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    desk = make_team_desk(tmp_path)
    finished: list[Event] = []

    def broken(events: Sequence[Event]) -> None:
        raise RuntimeError("a broken listener")

    desk.watch(broken)
    desk.watch(lambda events: finished.extend(e for e in events if isinstance(e, FinalOutput)))
    conv = await desk.open()
    with caplog.at_level(logging.ERROR, logger="pilothouse.support.watch"):
        reply = await desk.send(conv.id, "How long does a refund take to show up on my card?")
    assert reply.outcome == "final" and "Refund timing" in reply.text
    assert "store listener" in caplog.text
    assert {e.run_id for e in finished} == set(desk.tree(reply.run_id))
    desk.shutdown()
