"""The console's conversation view is paginated: a long conversation is not sent whole.

A conversation of many turns used to return every run's journal in one response
(721 MB for 300 messages before sessions); the view now carries the latest runs and
transcript entries, with the totals, and `?runs=` / `?entries=` ask for more.
"""

from __future__ import annotations

from desk_site import Site


def test_the_console_view_shows_the_latest_runs_and_entries_with_totals(site: Site) -> None:
    conv_id, token = site.open(customer_email="ann@example.com")
    for i in range(13):
        assert site.say(conv_id, token, f"message {i}").status_code == 200
    all_runs = site.desk.runs(conv_id)
    assert len(all_runs) == 13

    view = site.client.get(f"/api/console/conversations/{conv_id}", headers=site.console())
    assert view.status_code == 200, view.text
    body = view.json()
    assert body["runs_total"] == 13 and [r["run_id"] for r in body["runs"]] == all_runs[-10:]
    assert body["transcript_total"] == len(site.desk.transcript(conv_id, staff=True))

    few = site.client.get(
        f"/api/console/conversations/{conv_id}?runs=3&entries=4", headers=site.console()
    ).json()
    assert [r["run_id"] for r in few["runs"]] == all_runs[-3:]
    texts = [e["text"] for e in few["transcript"]]
    assert len(texts) == 4 and texts[-2:] == ["message 12", "echo: message 12"]


def test_bad_page_sizes_are_clear_400s(site: Site) -> None:
    conv_id, _ = site.open()
    for query in ("runs=0", "runs=101", "runs=ten", "entries=0", "entries=-1", "runs=1e3"):
        r = site.client.get(f"/api/console/conversations/{conv_id}?{query}", headers=site.console())
        assert r.status_code == 400, (query, r.text)
        assert "must be a whole number" in r.json()["error"]["message"]
