"""The support desk's HTTP API, against a real uvicorn server on loopback and a real Desk."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import httpx
import pytest
from desk_site import CONSOLE_TOKEN, Site


def sse_events(lines: Any, until: str | None = None) -> list[tuple[str, Any]]:
    """Parse `event:`/`data:` frames from an iterator of lines (stop after `until`)."""
    events: list[tuple[str, Any]] = []
    name, data = "message", []
    for line in lines:
        if line == "":
            if data:
                events.append((name, json.loads("\n".join(data))))
                if name == until:
                    return events
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
    return events


def assert_json_error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = r.json()
    assert body["error"]["status"] == status
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "Traceback" not in r.text
    return body


# --------------------------------------------------------------------------- customer


def test_create_send_and_read_transcript(site: Site) -> None:
    r = site.client.post("/api/conversations", json={"customer_email": "ann@example.com"})
    assert r.status_code == 201
    data = r.json()
    conv_id, token = data["conversation"]["id"], data["token"]
    assert isinstance(token, str) and len(token) >= 16
    assert data["conversation"]["status"] == "open"
    assert token not in json.dumps(data["conversation"])  # the secret is not echoed back twice

    r = site.say(conv_id, token, "Hello there")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["reply"]["text"] == "echo: Hello there"
    assert body["reply"]["run_id"]

    view = site.read(conv_id, token)
    said = [(e["author"], e["text"]) for e in view["transcript"]]
    assert ("customer", "Hello there") in said
    assert ("agent", "echo: Hello there") in said
    assert token not in json.dumps(view)

    # The second message is answered with the first in the agent's history.
    site.say(conv_id, token, "Second")
    said = [(e["author"], e["text"]) for e in site.read(conv_id, token)["transcript"]]
    assert said.index(("customer", "Second")) > said.index(("agent", "echo: Hello there"))
    # The conversation's runs persist in the journal store.
    assert len(site.desk.runs(conv_id)) == 2
    for run_id in site.desk.runs(conv_id):
        assert site.store.get_run(run_id).status == "final"


def test_send_streams_agent_events_over_sse(site: Site) -> None:
    conv_id, token = site.open()
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    with site.client.stream(
        "POST",
        f"/api/conversations/{conv_id}/messages",
        json={"text": "I want a human please"},
        headers=headers,
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r.iter_lines())
    names = [n for n, _ in events]
    steps = [d for n, d in events if n == "step"]
    assert next(s["type"] for s in steps) == "run_started"
    assert any(s["type"] == "tool_call" and s.get("tool") == "transfer_to_human" for s in steps)
    # A customer sees what kind of step happened, not the arguments or the instructions.
    assert all(set(s) <= {"type", "step", "tool"} for s in steps)
    assert names[-2:] == ["reply", "conversation"]
    reply = dict(events)["reply"]
    assert "colleague" in reply["text"]
    final_view = events[-1][1]
    assert final_view["conversation"]["status"] == "escalated"


def test_conversation_event_stream_announces_a_human_reply(site: Site) -> None:
    conv_id, token = site.open()
    site.say(conv_id, token, "get me a human")
    site.client.post(
        f"/api/console/conversations/{conv_id}/claim",
        json={"human": "Alex"},
        headers=site.console(),
    )
    received: list[tuple[str, Any]] = []
    opened = threading.Event()

    def listen() -> None:
        with (
            httpx.Client(base_url=site.url, timeout=10) as client,
            client.stream(
                "GET",
                f"/api/conversations/{conv_id}/events",
                headers={"Authorization": f"Bearer {token}"},
            ) as r,
        ):
            lines = r.iter_lines()
            received.extend(sse_events(lines, until="hello"))
            opened.set()
            received.extend(sse_events(lines, until="changed"))

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert opened.wait(10)
    r = site.client.post(
        f"/api/console/conversations/{conv_id}/reply",
        json={"human": "Alex", "text": "Hi, Alex here."},
        headers=site.console(),
    )
    assert r.status_code == 200, r.text
    listener.join(10)
    assert ("changed", {"conversation": conv_id, "what": "human_reply"}) in received
    said = [(e["author"], e["text"]) for e in site.read(conv_id, token)["transcript"]]
    assert ("human", "Hi, Alex here.") in said


def test_a_customer_reads_only_their_own_conversation(site: Site) -> None:
    mine, my_token = site.open()
    theirs, their_token = site.open()
    site.say(theirs, their_token, "my secret order")
    path = f"/api/conversations/{theirs}"
    assert_json_error(site.client.get(path, headers={"Authorization": f"Bearer {my_token}"}), 403)
    assert_json_error(site.say(theirs, my_token, "let me in"), 403)
    assert_json_error(site.client.get(path), 401)
    assert_json_error(site.client.get(path, headers={"Authorization": "Basic abc"}), 401)
    # The console token is not a customer token.
    assert_json_error(site.client.get(path, headers=site.console()), 403)
    events = site.client.get(f"{path}/events", headers={"Authorization": f"Bearer {my_token}"})
    assert_json_error(events, 403)
    body = assert_json_error(
        site.client.get("/api/conversations/nope", headers={"Authorization": f"Bearer {my_token}"}),
        404,
    )
    assert "nope" in body["error"]["message"]
    assert site.read(mine, my_token)["conversation"]["id"] == mine


# --------------------------------------------------------------------------- console


@pytest.mark.parametrize(
    "path",
    [
        "/api/console/queue",
        "/api/console/approvals",
        "/api/console/figures",
        "/api/console/conversations/x",
    ],
)
def test_console_needs_the_token(site: Site, path: str) -> None:
    r = site.client.get(path)
    assert_json_error(r, 401)
    assert r.headers["www-authenticate"] == "Bearer"
    assert_json_error(site.client.get(path, headers=site.console("wrong")), 403)
    _conv_id, token = site.open()
    # A customer's token opens nothing on the console.
    assert_json_error(site.client.get(path, headers={"Authorization": f"Bearer {token}"}), 403)


def test_queue_claim_reply_close(site: Site) -> None:
    calm, calm_token = site.open()
    site.say(calm, calm_token, "just saying hi")
    conv_id, token = site.open()
    r = site.say(conv_id, token, "I need a human, my parcel is broken")
    assert r.json()["conversation"]["status"] == "escalated"

    queue = site.client.get("/api/console/queue", headers=site.console()).json()["queue"]
    ids = [c["id"] for c in queue]
    assert conv_id in ids and calm not in ids
    entry = queue[ids.index(conv_id)]
    assert "token" not in entry
    assert "parcel is broken" in json.dumps(entry)  # the escalation summary

    detail = site.client.get(f"/api/console/conversations/{conv_id}", headers=site.console())
    detail_body = detail.json()
    lines = [e for run in detail_body["runs"] for e in run["events"]]
    transfer = [e for e in lines if e["type"] == "tool_call"]
    assert transfer and transfer[0]["decision"]["effect"] == "allow"
    assert transfer[0]["decision"]["rule"] == "transfer-always"
    assert all(e["line"] for e in lines)

    claimed = site.client.post(
        f"/api/console/conversations/{conv_id}/claim",
        json={"human": "Alex"},
        headers=site.console(),
    )
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["conversation"]["status"] == "claimed"
    assert claimed.json()["conversation"]["claimed_by"] == "Alex"

    site.client.post(
        f"/api/console/conversations/{conv_id}/reply",
        json={"human": "Alex", "text": "A new one ships today."},
        headers=site.console(),
    )
    view = site.read(conv_id, token)
    humans = [e for e in view["transcript"] if e["author"] == "human"]
    assert [e["text"] for e in humans] == ["A new one ships today."]

    # While a human holds the conversation the customer's messages reach the human, not the bot.
    site.say(conv_id, token, "thanks!")
    said = [(e["author"], e["text"]) for e in site.read(conv_id, token)["transcript"]]
    assert ("customer", "thanks!") in said and ("agent", "echo: thanks!") not in said

    closed = site.client.post(
        f"/api/console/conversations/{conv_id}/close", json={}, headers=site.console()
    )
    assert closed.json()["conversation"]["status"] == "closed"
    queue = site.client.get("/api/console/queue", headers=site.console()).json()["queue"]
    assert conv_id not in [c["id"] for c in queue]

    figures = site.client.get("/api/console/figures", headers=site.console()).json()["figures"]
    assert figures["conversations"] == 2
    assert figures["escalations"] == 1


def test_a_customer_resolves_and_the_figures_count_it(site: Site) -> None:
    conv_id, token = site.open()
    site.say(conv_id, token, "what are your opening hours?")
    r = site.client.post(
        f"/api/conversations/{conv_id}/resolve",
        json={},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["conversation"]["status"] == "resolved"
    again = site.client.post(
        f"/api/conversations/{conv_id}/resolve",
        json={},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert_json_error(again, 409)  # only an open conversation resolves
    figures = site.client.get("/api/console/figures", headers=site.console()).json()["figures"]
    assert figures["conversations"] == 1
    assert figures["resolved_without_human"] == 1 and figures["resolved_share"] == 1.0
    assert figures["median_resolution_seconds"] >= 0
    listed = site.client.get("/api/console/conversations?limit=5", headers=site.console())
    assert [c["id"] for c in listed.json()["conversations"]] == [conv_id]
    assert "token" not in listed.json()["conversations"][0]
    bad_limit = site.client.get("/api/console/conversations?limit=0", headers=site.console())
    assert_json_error(bad_limit, 400)  # a bad query parameter is a bad request


def test_the_console_shows_a_policy_block(site: Site) -> None:
    conv_id, token = site.open()
    r = site.say(conv_id, token, "where is order A1001?")
    assert "email address and ZIP" in r.json()["reply"]["text"]
    detail = site.client.get(f"/api/console/conversations/{conv_id}", headers=site.console())
    calls = [e for run in detail.json()["runs"] for e in run["events"] if e["type"] == "tool_call"]
    assert len(calls) == 1
    assert calls[0]["decision"]["effect"] == "deny"
    assert calls[0]["decision"]["rule"] == "verify-identity-first"
    assert "⛔" in calls[0]["line"]
    figures = site.client.get("/api/console/figures", headers=site.console()).json()["figures"]
    assert figures["policy_blocks"] == 1


def test_conversations_survive_a_server_restart(tmp_path: Any) -> None:
    from desk_site import make_desk

    from pilothouse_desk.server.app import create_app
    from pilothouse_desk.server.live import LiveServer

    desk, store, _ = make_desk(tmp_path)
    with LiveServer(create_app(desk, console_token=CONSOLE_TOKEN)) as server:
        r = httpx.post(server.url + "/api/conversations", json={})
        conv_id, token = r.json()["conversation"]["id"], r.json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        httpx.post(
            f"{server.url}/api/conversations/{conv_id}/messages", json={"text": "hi"}, headers=auth
        )
    desk.shutdown()
    store.close()

    desk, store, _ = make_desk(tmp_path)  # a new process would open the same files
    with LiveServer(create_app(desk, console_token=CONSOLE_TOKEN)) as server:
        view = httpx.get(f"{server.url}/api/conversations/{conv_id}", headers=auth).json()
        assert [(e["author"], e["text"]) for e in view["transcript"]] == [
            ("customer", "hi"),
            ("agent", "echo: hi"),
        ]
        detail = httpx.get(
            f"{server.url}/api/console/conversations/{conv_id}",
            headers={"Authorization": f"Bearer {CONSOLE_TOKEN}"},
        ).json()
        assert [run["status"] for run in detail["runs"]] == ["final"]
    desk.shutdown()
    store.close()


def test_claim_of_unknown_conversation_is_404(site: Site) -> None:
    r = site.client.post(
        "/api/console/conversations/missing/claim", json={"human": "Alex"}, headers=site.console()
    )
    assert_json_error(r, 404)
    assert_json_error(
        site.client.get("/api/console/conversations/missing", headers=site.console()), 404
    )


def test_approve_and_deny_a_paused_refund(site: Site) -> None:
    order, email, zip_code, _paid = site.big_order(250.0)
    conv_id, token = site.open(customer_email=email)
    r = site.say(
        conv_id, token, f"please refund 250 for order {order}, I am {email} zip {zip_code}"
    )
    assert r.status_code == 200, r.text
    assert r.json()["conversation"]["status"] == "paused"

    pending = site.client.get("/api/console/approvals", headers=site.console()).json()["approvals"]
    assert len(pending) == 1
    key = pending[0]["key"]
    assert pending[0]["tool"] == "refund" and pending[0]["arguments"]["amount"] == 250.0
    detail = site.client.get(f"/api/console/conversations/{conv_id}", headers=site.console())
    assert [p["key"] for p in detail.json()["approvals"]] == [key]

    bad = site.client.post(
        f"/api/console/conversations/{conv_id}/decide",
        json={"key": "not-a-key", "approve": True},
        headers=site.console(),
    )
    assert 400 <= bad.status_code < 500 and "error" in bad.json()
    assert_json_error(
        site.client.post(
            f"/api/console/conversations/{conv_id}/decide",
            json={"key": key, "approve": "yes"},
            headers=site.console(),
        ),
        422,
    )

    ok = site.client.post(
        f"/api/console/conversations/{conv_id}/decide",
        json={"key": key, "approve": True},
        headers=site.console(),
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["conversation"]["status"] != "paused"
    assert (
        site.client.get("/api/console/approvals", headers=site.console()).json()["approvals"] == []
    )
    said = [(e["author"], e["text"]) for e in site.read(conv_id, token)["transcript"]]
    assert ("agent", "Your refund has been handled.") in said
    # The refund ran: the shop recorded it.
    import sqlite3

    db = sqlite3.connect(site.shop_path)
    refunds = db.execute(
        "SELECT amount FROM payments WHERE order_id=? AND kind='refund'", (order,)
    ).fetchall()
    db.close()
    assert refunds == [(250.0,)]

    # A second paused refund, denied: the model reads the refusal; no money moves.
    conv2, token2 = site.open(customer_email=email)
    site.say(conv2, token2, f"please refund 240 for order {order}, I am {email} zip {zip_code}")
    pending = site.client.get("/api/console/approvals", headers=site.console()).json()["approvals"]
    assert len(pending) == 1
    denied = site.client.post(
        f"/api/console/conversations/{conv2}/decide",
        json={"key": pending[0]["key"], "approve": False},
        headers=site.console(),
    )
    assert denied.status_code == 200, denied.text
    db = sqlite3.connect(site.shop_path)
    count = db.execute(
        "SELECT COUNT(*) FROM payments WHERE order_id=? AND kind='refund'", (order,)
    ).fetchone()[0]
    db.close()
    assert count == 1


# --------------------------------------------------------------------------- bad input


def test_malformed_and_oversized_requests_get_json_4xx(site: Site) -> None:
    conv_id, token = site.open()
    auth = {"Authorization": f"Bearer {token}"}
    path = f"/api/conversations/{conv_id}/messages"
    assert_json_error(site.client.post(path, content=b"{not json", headers=auth), 400)
    assert_json_error(site.client.post(path, content=b"\xff\xfe", headers=auth), 400)
    assert_json_error(site.client.post(path, json=["a", "list"], headers=auth), 400)
    assert_json_error(site.client.post(path, json={}, headers=auth), 422)
    assert_json_error(site.client.post(path, json={"text": 5}, headers=auth), 422)
    assert_json_error(site.client.post(path, json={"text": "   "}, headers=auth), 422)
    assert_json_error(site.client.post(path, json={"text": "x" * 5000}, headers=auth), 422)
    big = json.dumps({"text": "x" * 100_000}).encode()
    assert_json_error(site.client.post(path, content=big, headers=auth), 413)

    # A body without Content-Length (chunked) is counted as it arrives.
    def chunks() -> Any:
        for _ in range(100):
            yield b" " * 1024

    assert_json_error(site.client.post(path, content=chunks(), headers=auth), 413)
    assert_json_error(site.client.post("/api/conversations", json={"customer_email": 7}), 422)
    assert_json_error(site.client.get("/api/nothing-here"), 404)
    assert_json_error(site.client.delete("/api/conversations"), 405)
    # Nothing of that reached the conversation.
    assert [e for e in site.read(conv_id, token)["transcript"] if e["author"] == "customer"] == []


def test_an_internal_failure_is_a_500_without_a_stack_trace(site: Site) -> None:
    conv_id, token = site.open()
    site.say(conv_id, token, "hello")
    site.store.close()  # the journal database goes away under the server
    r = site.client.get(f"/api/console/conversations/{conv_id}", headers=site.console())
    body = assert_json_error(r, 500)
    assert "sqlite" not in r.text.lower() and "Error" not in body["error"]["message"]
    assert 'File "' not in r.text


def test_a_model_failure_escalates_and_keeps_the_conversation(site: Site) -> None:
    conv_id, token = site.open()
    site.say(conv_id, token, "hello")
    r = site.say(conv_id, token, "now explode please")
    assert r.status_code < 500 or "Traceback" not in r.text
    view = site.read(conv_id, token)
    assert view["conversation"]["status"] == "escalated"
    said = [(e["author"], e["text"]) for e in view["transcript"]]
    assert ("customer", "hello") in said
    assert ("customer", "now explode please") in said
    queue = site.client.get("/api/console/queue", headers=site.console()).json()["queue"]
    assert conv_id in [c["id"] for c in queue]


def test_pages_are_served_with_a_strict_content_policy(site: Site) -> None:
    for path in ("/", "/console", "/dashboard"):
        r = site.client.get(path)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert '<script src="/static/' in r.text and "http" not in r.text.split("<body>")[1]
    for asset in ("common.js", "chat.js", "console.js", "dashboard.js", "style.css"):
        assert site.client.get(f"/static/{asset}").status_code == 200
    assert site.client.get("/static/../app.py").status_code == 404
    assert CONSOLE_TOKEN not in site.client.get("/console").text


def test_the_server_shuts_down_with_an_open_event_stream(tmp_path: Any) -> None:
    from desk_site import make_desk

    from pilothouse_desk.server.app import create_app
    from pilothouse_desk.server.live import LiveServer

    desk, store, _ = make_desk(tmp_path)
    app = create_app(desk, console_token=CONSOLE_TOKEN, store=store)
    # A long grace period: were the stream not ended by the server, stop() would wait it out.
    server = LiveServer(app, graceful_seconds=30).start()
    client = httpx.Client(base_url=server.url, timeout=10)
    stream = client.stream(
        "GET", "/api/console/events", headers={"Authorization": f"Bearer {CONSOLE_TOKEN}"}
    )
    r = stream.__enter__()
    assert sse_events(r.iter_lines(), until="hello")[0][0] == "hello"
    # Were the stream not ended by the server, uvicorn would wait out the grace period
    # and then say so: the test reads that, not a stopwatch.
    said: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("uvicorn.error").addHandler(handler)
    try:
        server.stop(timeout=60)
    finally:
        logging.getLogger("uvicorn.error").removeHandler(handler)
    assert not server._thread.is_alive()
    assert not [m for m in said if "graceful shutdown exceeded" in m], said
    stream.__exit__(None, None, None)
    client.close()
    desk.shutdown()
    store.close()


def test_one_client_is_rate_limited_on_opening_and_sending(tmp_path: Any) -> None:
    from desk_site import make_desk

    from pilothouse.serving.ratelimit import RateLimit
    from pilothouse_desk.server.app import create_app
    from pilothouse_desk.server.live import LiveServer

    desk, store, _ = make_desk(tmp_path)
    app = create_app(
        desk,
        console_token=CONSOLE_TOKEN,
        open_limit=RateLimit(per_minute=1, burst=2),
        message_limit=RateLimit(per_minute=1, burst=3),
    )
    with LiveServer(app) as server:
        opened = [httpx.post(server.url + "/api/conversations", json={}) for _ in range(3)]
        assert [r.status_code for r in opened] == [201, 201, 429]
        body = assert_json_error(opened[2], 429)
        assert "too many requests from 127.0.0.1" in body["error"]["message"]
        assert 1 <= int(opened[2].headers["Retry-After"]) <= 60
        assert len(desk.conversations()) == 2  # the third was not opened

        conv_id, token = opened[0].json()["conversation"]["id"], opened[0].json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        url = f"{server.url}/api/conversations/{conv_id}/messages"
        sent = [httpx.post(url, json={"text": f"hi {i}"}, headers=auth) for i in range(4)]
        assert [r.status_code for r in sent] == [200, 200, 200, 429]
        view = httpx.get(f"{server.url}/api/conversations/{conv_id}", headers=auth).json()
        assert [e["text"] for e in view["transcript"] if e["author"] == "customer"] == [
            "hi 0",
            "hi 1",
            "hi 2",
        ]  # the refused message was not taken
        # The console (behind its token) is not limited.
        console = {"Authorization": f"Bearer {CONSOLE_TOKEN}"}
        for _ in range(5):
            assert httpx.get(server.url + "/api/console/queue", headers=console).status_code == 200
    desk.shutdown()
    store.close()


def test_rate_limiter_buckets() -> None:
    from pilothouse.serving.ratelimit import RateLimit, RateLimiter

    now = [0.0]
    limiter = RateLimiter(RateLimit(per_minute=6, burst=2), max_clients=2, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(2)] == [0.0, 0.0]
    assert limiter.take("a") == pytest.approx(10.0)  # 6 a minute: one every 10 s
    assert limiter.take("b") == 0.0  # another client has its own bucket
    now[0] = 5.0
    assert limiter.take("a") == pytest.approx(5.0)
    now[0] = 10.0
    assert limiter.take("a") == 0.0
    now[0] = 1000.0  # everyone refilled: a new client evicts quiet buckets, not busy ones
    assert limiter.take("c") == 0.0 and len(limiter._buckets) <= 2
    with pytest.raises(ValueError, match="per_minute > 0"):
        RateLimit(per_minute=0, burst=1)
