"""The desk as a team behind the real server (uvicorn on loopback): the console shows
which agent did what, the customer sees answers and sources but no internals, and a
closed conversation's approval is cancelled and cannot be paid afterwards."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from desk_site import CONSOLE_TOKEN, Site, serving
from team_world import delivered_order, make_team_desk, refunds_of

from pilothouse.events import ApprovalGiven

CONSOLE = {"Authorization": f"Bearer {CONSOLE_TOKEN}"}
CHUNK_ID = re.compile(r"\bc[0-9a-f]{15}\b")


@pytest.fixture
def team_site(tmp_path: Path) -> Iterator[Site]:
    desk = make_team_desk(tmp_path)
    with serving(desk, desk.store, tmp_path / "shop.db") as served:
        yield served


def console_view(site: Site, conv_id: str) -> dict[str, Any]:
    r = site.client.get(f"/api/console/conversations/{conv_id}", headers=CONSOLE)
    assert r.status_code == 200, r.text
    view: dict[str, Any] = r.json()
    return view


def who(run: dict[str, Any]) -> list[Any]:
    """The run tree as [agent, [children...]]."""
    return [run["agent"], [who(c) for c in run["children"]]]


def test_the_console_shows_which_agent_did_what_and_the_customer_sees_sources(
    team_site: Site,
) -> None:
    conv_id, token = team_site.open()
    r = team_site.say(conv_id, token, "How long does a refund take to show up on my card?")
    assert r.status_code == 200, r.text
    customer = team_site.read(conv_id, token)
    said = [e["text"] for e in customer["transcript"] if e["author"] == "agent"]
    assert len(said) == 1 and said[0].endswith("Sources: [1] help article 'Refund timing'")
    assert not CHUNK_ID.search(r.text + str(customer))  # no chunk ids, spans or scores
    assert all(e["author"] != "staff" for e in customer["transcript"])

    view = console_view(team_site, conv_id)
    assert [who(run) for run in view["runs"]] == [["triage", [["help", []]]]]
    help_run = view["runs"][0]["children"][0]
    assert [e["type"] for e in help_run["events"] if e["type"] == "retrieval"] == ["retrieval"]
    notes = [e["text"] for e in view["transcript"] if e["author"] == "staff"]
    assert len(notes) == 1 and notes[0].startswith("Citations verified")


def test_the_supervisors_review_is_in_the_tree_and_no_person_was_needed(team_site: Site) -> None:
    conv_id, token = team_site.open()
    r = team_site.say(
        conv_id,
        token,
        "kira.dubois@example.com, zip 53703. Order A1010 arrived broken, please refund $349.",
    )
    assert r.status_code == 200, r.text
    assert r.json()["reply"]["text"].startswith("Refunded $349.00")
    view = console_view(team_site, conv_id)
    assert [who(run) for run in view["runs"]] == [["triage", [["returns", [["supervisor", []]]]]]]
    assert view["approvals"] == []
    notes = [e["text"] for e in view["transcript"] if e["author"] == "staff"]
    assert any(n.startswith("Supervisor approved refund") for n in notes)
    figures = team_site.client.get("/api/console/figures", headers=CONSOLE).json()
    assert figures["figures"]["supervisor_decisions"] == 1


def test_closing_cancels_the_teams_pending_approval_and_a_late_approval_pays_nothing(
    team_site: Site,
) -> None:
    order, email, zip_code, paid = delivered_order(team_site.shop_path, 500.0)
    conv_id, token = team_site.open(customer_email=email)
    r = team_site.say(
        conv_id, token, f"I am {email}, zip {zip_code}. Refund ${paid:.2f} for order {order}."
    )
    assert r.status_code == 200, r.text
    assert r.json()["reply"]["status"] == "paused"
    pending = team_site.client.get("/api/console/approvals", headers=CONSOLE).json()["approvals"]
    assert [(p["tool"], p["arguments"]["amount"]) for p in pending] == [("refund", paid)]
    key, run_id = pending[0]["key"], pending[0]["run_id"]
    # The request waits in the returns specialist's run (the supervisor escalated it).
    tree = console_view(team_site, conv_id)["runs"][0]
    assert who(tree) == ["triage", [["returns", [["supervisor", []]]]]]
    member = tree["children"][0]["run_id"]

    closed = team_site.client.post(
        f"/api/console/conversations/{conv_id}/close", json={"human": "Alex"}, headers=CONSOLE
    )
    assert closed.status_code == 200, closed.text
    assert closed.json()["conversation"]["status"] == "closed"
    assert team_site.client.get("/api/console/approvals", headers=CONSOLE).json()["approvals"] == []
    # Cancelled on the record: the member's journal has the refusal, in the closer's name.
    given = [e for e in team_site.store.events(member) if isinstance(e, ApprovalGiven)]
    assert [(e.key, e.approved, e.by) for e in given] == [(key, False, "Alex")]
    assert run_id == tree["run_id"]

    late = team_site.client.post(
        f"/api/console/conversations/{conv_id}/decide",
        json={"key": key, "approve": True, "human": "Sam"},
        headers=CONSOLE,
    )
    assert late.status_code == 409
    assert "closed" in late.json()["error"]["message"]
    assert refunds_of(team_site.shop_path, order) == []  # nothing paid
    customer = team_site.read(conv_id, token)
    assert customer["conversation"]["status"] == "closed"
    assert [e["text"] for e in customer["transcript"]][-2:] == [
        "The request waiting for approval was cancelled.",
        "The conversation was closed.",
    ]
    assert all(e["author"] != "agent" for e in customer["transcript"])
