"""Abuse cases against the real server: leaked internals, forged client addresses,
hostile bodies and query strings, stream floods, decisions after a close."""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from desk_site import CONSOLE_TOKEN, Site, customer_model
from test_server_api import assert_json_error, sse_events

from pilothouse.exceptions import AuthenticationError
from pilothouse.models.base import ModelRequest
from pilothouse.models.scripted import ScriptedModel
from pilothouse.runtime.budget import Budget
from pilothouse.runtime.journal import SQLiteStore
from pilothouse.serving.protocol import json_too_deep
from pilothouse.serving.ratelimit import RateLimit
from pilothouse_desk.agent import build_support_agent
from pilothouse_desk.desk import Desk
from pilothouse_desk.server.app import create_app
from pilothouse_desk.server.live import LiveServer

CONSOLE = {"Authorization": f"Bearer {CONSOLE_TOKEN}"}
HANDOVER_RE = re.compile(
    r"Sorry, something went wrong on our side; a person from our team will take over this "
    r"conversation\. Reference: ([0-9A-F]{8})"
)
API_KEY = "sk-proj-Zx81kQ2vLm9T3bBlbkFJ4uPw7cNa"
ENDPOINT = "https://api.openai.com/v1/chat/completions"


@dataclass
class ServedSite(Site):
    """A `Site` that also holds the app's `Hub` (to wait for a stream's release)."""

    hub: Any = None


@contextmanager
def served(
    tmp_path: Path,
    *,
    model: Any = None,
    factory: Callable[..., Any] | None = None,
    forwarded_allow_ips: str | None = None,
    **options: Any,
) -> Iterator[ServedSite]:
    """A Desk (scripted model or `factory`) behind `create_app(**options)` on loopback."""
    store = SQLiteStore(tmp_path / "journal.db")
    shop_path = tmp_path / "shop.db"
    desk = Desk(
        shop_path,
        store,
        model=model if model is not None else customer_model(),
        agent_factory=factory,
    )
    app = create_app(desk, console_token=CONSOLE_TOKEN, store=store, **options)
    try:
        with (
            LiveServer(app, forwarded_allow_ips=forwarded_allow_ips) as server,
            httpx.Client(base_url=server.url, timeout=30) as client,
        ):
            yield ServedSite(server.url, desk, store, shop_path, client, app.state.hub)
    finally:
        desk.shutdown()
        store.close()


def customer_responses(site: Site, conv_id: str, token: str) -> str:
    """Everything a customer can read about their conversation, as one text."""
    auth = {"Authorization": f"Bearer {token}"}
    view = site.client.get(f"/api/conversations/{conv_id}", headers=auth)
    assert view.status_code == 200, view.text
    return view.text


# --------------------------------------------------------------------------- item 6: internals


def _bad_key(request: ModelRequest) -> Any:
    raise AuthenticationError(
        f"Incorrect API key provided: {API_KEY}. You can find your API key at "
        f"https://platform.openai.com/account/api-keys. (POST {ENDPOINT}, model gpt-4o-mini)",
        status=401,
    )


def test_a_model_credential_error_reaches_the_customer_as_a_reference(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="pilothouse.support.desk")
    with served(tmp_path, model=ScriptedModel(_bad_key)) as site:
        conv_id, token = site.open()
        sent = site.say(conv_id, token, "where is my parcel?")
        assert sent.status_code == 200, sent.text
        streamed = site.client.post(  # the streaming form of a send says no more
            f"/api/conversations/{conv_id}/messages",
            json={"text": "hello?"},
            headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"},
        )
        seen = sent.text + streamed.text + customer_responses(site, conv_id, token)
        for secret in (API_KEY, "sk-proj", ENDPOINT, "api.openai.com", "gpt-4o-mini"):
            assert secret not in seen
        assert "AuthenticationError" not in seen and "Traceback" not in seen
        reply = sent.json()["reply"]["text"]
        match = HANDOVER_RE.fullmatch(reply)
        assert match, reply
        reference = match.group(1)
        view = site.read(conv_id, token)
        assert view["conversation"]["status"] == "escalated"
        assert "summary" not in view["conversation"]  # the escalation summary is staff-only
        assert [e["author"] for e in view["transcript"]] == ["customer", "system", "customer"]
        assert view["transcript"][1]["text"] == reply

        # The console has the detail under the same reference: queue summary and a staff note.
        queue = site.client.get("/api/console/queue", headers=CONSOLE).json()["queue"]
        assert reference in queue[0]["summary"] and "AuthenticationError" in queue[0]["summary"]
        detail = site.client.get(f"/api/console/conversations/{conv_id}", headers=CONSOLE)
        notes = [e for e in detail.json()["transcript"] if e["author"] == "staff"]
        assert len(notes) == 1
        assert f"reference {reference}" in notes[0]["text"]
        assert "AuthenticationError: Incorrect API key provided: sk-proj-" in notes[0]["text"]
        assert sent.json()["reply"]["run_id"] in notes[0]["text"]
    # ... and so has the server's log, with the traceback.
    logged = [r for r in caplog.records if reference in r.getMessage()]
    assert logged and logged[0].exc_info is not None


def test_a_budget_stop_reaches_the_customer_as_a_reference(tmp_path: Path) -> None:
    def one_step(shop: Any, store: Any) -> Any:
        return build_support_agent(model=customer_model(), store=store, budget=Budget(max_steps=1))

    with served(tmp_path, factory=one_step) as site:
        conv_id, token = site.open()
        sent = site.say(conv_id, token, "where is order A1001?")  # a tool call, then a stop
        assert sent.status_code == 200, sent.text
        seen = sent.text + customer_responses(site, conv_id, token)
        for internal in ("Budget(", "budget", "max_steps", "budget_stop", "order_status"):
            assert internal not in seen
        match = HANDOVER_RE.fullmatch(sent.json()["reply"]["text"])
        assert match
        detail = site.client.get(f"/api/console/conversations/{conv_id}", headers=CONSOLE)
        notes = [e["text"] for e in detail.json()["transcript"] if e["author"] == "staff"]
        assert any(match.group(1) in n and "Budget(max_steps=" in n for n in notes), notes


def test_an_approval_wait_tells_the_customer_nothing_internal(site: Site) -> None:
    order, email, zip_code, _ = site.big_order(250.0)
    conv_id, token = site.open(customer_email=email)
    r = site.say(
        conv_id, token, f"please refund 250 for order {order}, I am {email} zip {zip_code}"
    )
    assert r.json()["reply"]["text"] == "Your request is waiting for a team member's approval."
    seen = r.text + customer_responses(site, conv_id, token)
    assert '"amount"' not in seen and "refund {" not in seen and "policy" not in seen.lower()
    detail = site.client.get(f"/api/console/conversations/{conv_id}", headers=CONSOLE).json()
    notes = [e["text"] for e in detail["transcript"] if e["author"] == "staff"]
    assert any("Waiting for approval: refund" in n and "250" in n for n in notes), notes


def test_a_bug_below_the_desk_is_a_500_not_a_409_with_its_text(site: Site) -> None:
    conv_id, token = site.open()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("codec 'utf-8' can't encode at /srv/secret/path")

    site.desk.resolve = broken  # a library error deep inside a desk call
    r = site.client.post(
        f"/api/conversations/{conv_id}/resolve",
        json={},
        headers={"Authorization": f"Bearer {token}"},
    )
    body = assert_json_error(r, 500)
    assert "secret" not in r.text and "codec" not in body["error"]["message"]


def test_a_keyerror_from_a_bug_is_a_500_not_a_404(site: Site) -> None:
    # Only the desk's typed NotFound is a 404; a KeyError (a dict, a row) is a bug and
    # must not pass for an unknown conversation.
    conv_id, token = site.open()
    auth = {"Authorization": f"Bearer {token}"}

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("customer_token_hash")

    site.desk.get = broken
    body = assert_json_error(site.client.get(f"/api/conversations/{conv_id}", headers=auth), 500)
    assert "customer_token_hash" not in body["error"]["message"]


def test_an_unknown_conversation_is_the_desks_typed_404(site: Site) -> None:
    from pilothouse_desk import ConversationNotFound, NotFound

    assert issubclass(ConversationNotFound, NotFound)
    assert not issubclass(ConversationNotFound, LookupError)
    r = site.client.get("/api/console/conversations/missing", headers=CONSOLE)
    assert "missing" in assert_json_error(r, 404)["error"]["message"]


# --------------------------------------------------------------------------- item 7: proxies


def _open_from(site: Site, address: str) -> httpx.Response:
    return site.client.post("/api/conversations", json={}, headers={"X-Forwarded-For": address})


def test_a_forged_forwarded_for_does_not_make_a_new_client(tmp_path: Path) -> None:
    # burst 2, one token a minute: the third open within the test is refused whatever
    # the clock does (a refill would need a minute).
    with served(tmp_path, open_limit=RateLimit(per_minute=1, burst=2)) as site:
        opened = [_open_from(site, f"203.0.113.{i}") for i in range(1, 6)]
        assert [r.status_code for r in opened] == [201, 201, 429, 429, 429]
        body = assert_json_error(opened[2], 429)
        assert "from 127.0.0.1" in body["error"]["message"]
        assert len(site.desk.conversations()) == 2


def test_a_trusted_proxy_s_forwarded_for_is_honoured(tmp_path: Path) -> None:
    with served(
        tmp_path, open_limit=RateLimit(per_minute=1, burst=2), forwarded_allow_ips="127.0.0.1"
    ) as site:
        # Each forwarded address is its own client with its own bucket...
        assert all(_open_from(site, f"203.0.113.{i}").status_code == 201 for i in range(1, 6))
        # ... and one address is still limited.
        same = [_open_from(site, "198.51.100.7") for _ in range(3)]
        assert [r.status_code for r in same] == [201, 201, 429]
        assert "from 198.51.100.7" in same[2].json()["error"]["message"]


# --------------------------------------------------------------------------- item 8: edges


def _no_server_errors(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


def test_deeply_nested_json_is_refused_before_parsing(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    arrays = b"[" * 1000 + b"]" * 1000  # 2 KB
    objects = b'{"a":' * 1000 + b"1" + b"}" * 1000
    for body in (arrays, objects, b'{"customer_email": ' + arrays + b"}"):
        r = site.client.post("/api/conversations", content=body)  # no token needed here
        err = assert_json_error(r, 400)
        assert "deeper than 32 levels" in err["error"]["message"]
    assert site.desk.conversations() == []
    conv_id, token = site.open()
    auth = {"Authorization": f"Bearer {token}"}
    path = f"/api/conversations/{conv_id}/messages"
    nested_text = b'{"text": ' + arrays + b"}"
    assert_json_error(site.client.post(path, content=nested_text, headers=auth), 400)
    # Brackets inside a string are text, not nesting: a message of them goes through.
    r = site.say(conv_id, token, "[" * 100 + "{" * 100)
    assert r.status_code == 200, r.text
    said = [e["text"] for e in site.read(conv_id, token)["transcript"] if e["author"] == "customer"]
    assert said == ["[" * 100 + "{" * 100]
    _no_server_errors(caplog)


def test_json_depth_scan() -> None:
    assert not json_too_deep('{"a": [1, {"b": 2}]}', 3)
    assert json_too_deep('{"a": [1, {"b": 2}]}', 2)
    assert not json_too_deep('{"t": "[[[[[[[[\\"[[[[[["}', 2)  # escaped quote stays in the string
    assert not json_too_deep('{"t": "\\\\"}', 1)  # an escaped backslash ends before the quote
    assert json_too_deep('{"t": "\\\\", "u": [[[1]]]}', 3)


@pytest.mark.parametrize("limit", ["²", "١٢", "1.5", "-1", " 5", "0", "501", "9" * 30, ""])
def test_a_limit_that_is_not_a_plain_number_is_400(site: Site, limit: str) -> None:
    r = site.client.get("/api/console/conversations", params={"limit": limit}, headers=CONSOLE)
    body = assert_json_error(r, 400)
    assert "limit must be a whole number from 1 to 500" in body["error"]["message"]


def test_a_lone_surrogate_is_refused_and_nothing_is_stored(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    conv_id, token = site.open()
    auth = {"Authorization": f"Bearer {token}"}
    for text in (b'{"text": "\\ud800"}', b'{"text": "hi \\uDFFF there"}', b'{"\\ud800": 1}'):
        r = site.client.post(f"/api/conversations/{conv_id}/messages", content=text, headers=auth)
        assert "lone surrogate" in assert_json_error(r, 400)["error"]["message"]
    r = site.client.post("/api/conversations", content=b'{"customer_email": "a\\ud83d@x.io"}')
    assert_json_error(r, 400)
    site.say(conv_id, token, "I need a human")
    r = site.client.post(
        f"/api/console/conversations/{conv_id}/reply",
        content=b'{"human": "Alex", "text": "\\udc00"}',
        headers=CONSOLE,
    )
    assert_json_error(r, 400)
    # A surrogate pair is a real character and is kept.
    pair = site.client.post(
        f"/api/console/conversations/{conv_id}/reply",
        content=b'{"human": "Alex", "text": "ok \\ud83d\\ude00"}',
        headers=CONSOLE,
    )
    assert pair.status_code == 200, pair.text
    said = [(e["author"], e["text"]) for e in site.read(conv_id, token)["transcript"]]
    assert [t for a, t in said if a == "customer"] == ["I need a human"]
    assert [t for a, t in said if a == "human"] == ["ok \U0001f600"]
    assert len(site.desk.conversations()) == 1
    _no_server_errors(caplog)


@pytest.mark.parametrize(
    "path",
    [
        "/static/chat.html",
        "/static/console.html",
        "/static/dashboard.html",
        "/static/chat.js",
        "/static/style.css",
    ],
)
def test_static_files_carry_the_pages_security_headers(site: Site, path: str) -> None:
    page = site.client.get("/")
    r = site.client.get(path)
    assert r.status_code == 200
    for header in (
        "content-security-policy",
        "x-content-type-options",
        "referrer-policy",
        "x-frame-options",
    ):
        assert r.headers.get(header) == page.headers[header], header
    assert r.headers["x-content-type-options"] == "nosniff"


def _refunds(site: Site, order: str) -> list[tuple[float]]:
    db = sqlite3.connect(site.shop_path)
    try:
        rows: list[tuple[float]] = db.execute(
            "SELECT amount FROM payments WHERE order_id=? AND kind='refund'", (order,)
        ).fetchall()
    finally:
        db.close()
    return rows


def test_closing_a_conversation_cancels_its_pending_approval(site: Site) -> None:
    order, email, zip_code, _ = site.big_order(250.0)
    conv_id, token = site.open(customer_email=email)
    site.say(conv_id, token, f"please refund 250 for order {order}, I am {email} zip {zip_code}")
    pending = site.client.get("/api/console/approvals", headers=CONSOLE).json()["approvals"]
    assert len(pending) == 1
    key, run_id = pending[0]["key"], pending[0]["run_id"]

    closed = site.client.post(
        f"/api/console/conversations/{conv_id}/close", json={"human": "Alex"}, headers=CONSOLE
    )
    assert closed.status_code == 200, closed.text
    assert closed.json()["conversation"]["status"] == "closed"
    assert site.client.get("/api/console/approvals", headers=CONSOLE).json()["approvals"] == []
    # The refusal is in the run's journal, in the closer's name.
    given = [e for e in site.store.events(run_id) if e.type == "approval_given"]
    assert [(e.key, e.approved, e.by) for e in given] == [(key, False, "Alex")]  # type: ignore[attr-defined]

    late = site.client.post(
        f"/api/console/conversations/{conv_id}/decide",
        json={"key": key, "approve": True, "human": "Sam"},
        headers=CONSOLE,
    )
    assert "closed" in assert_json_error(late, 409)["error"]["message"]
    assert _refunds(site, order) == []  # nothing paid
    view = site.read(conv_id, token)
    assert view["conversation"]["status"] == "closed"  # not reopened
    said = [e["text"] for e in view["transcript"]]
    assert said[-2:] == [
        "The request waiting for approval was cancelled.",
        "The conversation was closed.",
    ]
    assert all(e["author"] != "agent" for e in view["transcript"])  # no answer after the close


def test_event_streams_per_conversation_are_capped(tmp_path: Path) -> None:
    with served(tmp_path, max_streams=2) as site:
        conv_id, token = site.open()
        other, other_token = site.open()
        path = f"/api/conversations/{conv_id}/events"
        auth = {"Authorization": f"Bearer {token}"}
        with ExitStack() as streams:
            clients = [streams.enter_context(httpx.Client(base_url=site.url)) for _ in range(3)]
            # Each stream's line iterator is kept: a dropped one closes its connection.
            open_lines = []
            for client in clients[:2]:
                response = streams.enter_context(client.stream("GET", path, headers=auth))
                open_lines.append(response.iter_lines())
                assert sse_events(open_lines[-1], until="hello")[0][0] == "hello"
            refused = clients[2].get(path, headers=auth)
            assert "2 open event streams" in assert_json_error(refused, 429)["error"]["message"]
            # Another conversation has its own allowance.
            with clients[2].stream(
                "GET",
                f"/api/conversations/{other}/events",
                headers={"Authorization": f"Bearer {other_token}"},
            ) as r:
                assert r.status_code == 200
            clients[0].close()  # the first customer tab goes away
            # The server frees the slot when it sees the disconnect: wait for that state.
            deadline = time.monotonic() + 10
            while site.hub.count(conv_id) > 1:
                assert time.monotonic() < deadline, "the closed stream was not released"
                time.sleep(0.01)
            with clients[2].stream("GET", path, headers=auth) as again:
                assert again.status_code == 200


def test_the_dashboard_leaves_out_conversations_without_a_message(site: Site) -> None:
    empty, empty_token = site.open()
    resolved = site.client.post(
        f"/api/conversations/{empty}/resolve",
        json={},
        headers={"Authorization": f"Bearer {empty_token}"},
    )
    assert resolved.status_code == 200
    site.open()  # opened and left
    conv_id, token = site.open()
    site.say(conv_id, token, "I need a human")
    figures = site.client.get("/api/console/figures", headers=CONSOLE).json()["figures"]
    assert figures["conversations"] == 1
    assert figures["resolved_without_human"] == 0 and figures["resolved_share"] == 0.0
    assert figures["escalations"] == 1
    assert json.dumps(figures)
