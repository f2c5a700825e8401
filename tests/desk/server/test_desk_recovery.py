"""A real `pilothouse serve` killed with SIGKILL, or stopped with SIGTERM, mid-reply:
no customer message is left without a reply or an escalation, no run stays
``running``, no side effect is done twice.

The server is `benchmarks/desk_crash.py serve` (`pilothouse serve` with the
``crashdesk`` scripted model). A ``[hold:NAME@K]`` tag in a customer's message stops
the reply at the model call after K tool results: the model creates ``NAME.waiting``
and waits for the test to create ``NAME.go`` (or ``NAME.fail``: the model errors).
The tests synchronise on those files, the journal and the server's answers, never
on sleeps of guessed length.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from script_module import load_script

BENCH = Path(__file__).resolve().parents[3] / "benchmarks" / "desk_crash.py"
crash = load_script("desk_crash", BENCH)

CONSOLE = {"Authorization": f"Bearer {crash.CONSOLE_TOKEN}"}
TIMEOUT = 60.0  # generous: a bound on waiting for an event, not a guess at timing


def wait_for(what: str, check: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Any]:
    made: list[Any] = []

    def make(grace_seconds: float = 20.0) -> Any:
        s = crash.DeskServer(tmp_path, grace_seconds=grace_seconds)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


class Conversation:
    def __init__(self, url: str) -> None:
        r = httpx.post(url + "/api/conversations", json={})
        assert r.status_code == 201, r.text
        self.url = url
        self.id: str = r.json()["conversation"]["id"]
        self.auth = {"Authorization": f"Bearer {r.json()['token']}"}
        self.response: httpx.Response | Exception | None = None

    def say(self, text: str) -> httpx.Response:
        return httpx.post(
            f"{self.url}/api/conversations/{self.id}/messages",
            json={"text": text},
            headers=self.auth,
            timeout=120,
        )

    def say_in_background(self, text: str) -> threading.Thread:
        def send() -> None:
            try:
                self.response = self.say(text)
            except httpx.HTTPError as exc:  # the server was killed under it
                self.response = exc

        thread = threading.Thread(target=send, daemon=True)
        thread.start()
        return thread


def transcript(directory: Path, conv_id: str) -> list[tuple[str, str]]:
    rows = crash.read_db(
        directory / "shop.db",
        "SELECT author, text FROM desk_entries WHERE conversation_id = ? ORDER BY seq",
        conv_id,
    )
    return [(r[0], r[1]) for r in rows]


def statuses(directory: Path) -> dict[str, str]:
    rows = crash.read_db(directory / "journal.db", "SELECT run_id, status FROM runs")
    return {r[0]: r[1] for r in rows}


def conversation_status(directory: Path, conv_id: str) -> str:
    rows = crash.read_db(
        directory / "shop.db", "SELECT status FROM desk_conversations WHERE id = ?", conv_id
    )
    return str(rows[0][0])


def a_pending_order(directory: Path) -> tuple[str, str, str]:
    rows = crash.read_db(
        directory / "shop.db",
        "SELECT o.id, c.email, c.zip FROM orders o JOIN customers c ON c.id = o.customer_id "
        "WHERE o.status = 'pending' ORDER BY o.id LIMIT 1",
    )
    return rows[0][0], rows[0][1], rows[0][2]


def test_sigkill_during_replies_then_restart_delivers_or_escalates_each(
    tmp_path: Path, server: Any
) -> None:
    desk = server().start()
    order, email, zip_code = a_pending_order(tmp_path)
    payments_before = crash.read_db(tmp_path / "shop.db", "SELECT COUNT(*) FROM payments")[0][0]
    cancel, hello, doomed = (Conversation(desk.url) for _ in range(3))
    # The cancel is held after its cancel_order result (the order is cancelled and that is
    # on disk); the others before their first model answer.
    threads = [
        cancel.say_in_background(
            f"Please cancel order {order}, I am {email} zip {zip_code} [hold:a@2]"
        ),
        hello.say_in_background("hello there [hold:b@0]"),
        doomed.say_in_background("anyone? [hold:c@0]"),
    ]
    for name in "abc":
        wait_for(f"{name}.waiting", (tmp_path / f"{name}.waiting").exists)
    assert crash.read_db(tmp_path / "shop.db", "SELECT status FROM orders WHERE id=?", order) == [
        ("cancelled",)
    ]
    desk.kill()
    assert sorted(statuses(tmp_path).values()) == ["running"] * 3
    for thread in threads:
        thread.join(TIMEOUT)
    for conversation in (cancel, hello, doomed):  # each client saw its connection drop
        assert isinstance(conversation.response, httpx.HTTPError), conversation.response

    (tmp_path / "a.go").touch()
    (tmp_path / "b.go").touch()
    (tmp_path / "c.fail").touch()  # this one's model is down after the restart
    desk.start()
    wait_for("no run owed", lambda: not crash.audit(tmp_path, 0).owed)

    author, text = transcript(tmp_path, cancel.id)[-1]
    assert author == "agent" and text.startswith(f"Done: Order {order} is cancelled;")
    assert transcript(tmp_path, hello.id) == [
        ("customer", "hello there [hold:b@0]"),
        ("agent", "echo: hello there"),
    ]
    doomed_entries = transcript(tmp_path, doomed.id)
    assert [a for a, _ in doomed_entries] == ["customer", "system", "staff"]
    customer_line, staff_note = doomed_entries[1][1], doomed_entries[2][1]
    assert customer_line.startswith("Sorry, something went wrong on our side")  # no internals
    assert "the server stopped while the assistant was answering" in staff_note
    assert "ModelError" in staff_note and "Error" not in customer_line
    seen = httpx.get(f"{desk.url}/api/conversations/{doomed.id}", headers=doomed.auth).json()
    assert [e["author"] for e in seen["transcript"]] == ["customer", "system"]
    assert conversation_status(tmp_path, doomed.id) == "escalated"
    queue = httpx.get(desk.url + "/api/console/queue", headers=CONSOLE).json()["queue"]
    assert [c["id"] for c in queue] == [doomed.id]
    assert conversation_status(tmp_path, cancel.id) == "open"
    assert "running" not in statuses(tmp_path).values()
    assert "interrupted" not in statuses(tmp_path).values()
    # The cancel happened once: one recorded change, one refund payment.
    actions = crash.read_db(tmp_path / "shop.db", "SELECT tool FROM actions")
    assert actions == [("cancel_order",)]
    payments = crash.read_db(tmp_path / "shop.db", "SELECT COUNT(*) FROM payments")[0][0]
    assert payments == payments_before + 1
    # The restart logged what it recovered (written just after each delivery).
    wait_for("the recovery log", lambda: "escalated:" in desk.log.read_text())
    log = desk.log.read_text()
    assert "took over the lease" in log and log.count("delivered after the restart") == 2


def test_sigterm_lets_a_reply_within_the_grace_period_finish(tmp_path: Path, server: Any) -> None:
    desk = server(grace_seconds=120).start()
    slow, other = Conversation(desk.url), Conversation(desk.url)
    thread = slow.say_in_background("take your time [hold:s@0]")
    wait_for("s.waiting", (tmp_path / "s.waiting").exists)
    desk.terminate()

    def draining() -> bool:
        try:
            return httpx.get(desk.url + "/healthz", timeout=5).status_code == 503
        except httpx.HTTPError:
            return False

    wait_for("the drain", draining)
    refused = other.say("a new message while it stops")
    assert refused.status_code == 503 and refused.headers["retry-after"]
    assert refused.json()["error"]["status"] == 503
    assert transcript(tmp_path, other.id) == []  # refused before anything was recorded

    (tmp_path / "s.go").touch()
    thread.join(TIMEOUT)
    assert isinstance(slow.response, httpx.Response), slow.response
    assert slow.response.status_code == 200, slow.response.text
    assert slow.response.json()["reply"]["text"] == "echo: take your time"
    assert desk.wait(TIMEOUT) in (0, -signal.SIGTERM)
    assert transcript(tmp_path, slow.id)[-1] == ("agent", "echo: take your time")
    assert list(statuses(tmp_path).values()) == ["final"]
    assert "Traceback" not in desk.log.read_text()


def test_sigterm_beyond_the_grace_period_interrupts_and_the_next_start_replies(
    tmp_path: Path, server: Any
) -> None:
    desk = server(grace_seconds=0.5).start()
    slow, streamed = Conversation(desk.url), Conversation(desk.url)
    thread = slow.say_in_background("this takes forever [hold:t@0]")
    events: list[str] = []

    def stream() -> None:  # the same, asking for the agent's steps as SSE
        with httpx.stream(
            "POST",
            f"{desk.url}/api/conversations/{streamed.id}/messages",
            json={"text": "so does this [hold:u@0]"},
            headers={**streamed.auth, "Accept": "text/event-stream"},
            timeout=120,
        ) as r:
            events.extend(line for line in r.iter_lines() if line)

    streaming = threading.Thread(target=stream, daemon=True)
    streaming.start()
    wait_for("t.waiting", (tmp_path / "t.waiting").exists)
    wait_for("u.waiting", (tmp_path / "u.waiting").exists)
    desk.terminate()  # the holds outlast the grace period: the runs are interrupted
    thread.join(TIMEOUT)
    streaming.join(TIMEOUT)
    assert "event: error" in events and '"status": 503' in events[events.index("event: error") + 1]
    assert isinstance(slow.response, httpx.Response), slow.response
    assert slow.response.status_code == 503, slow.response.text
    error = slow.response.json()["error"]
    assert error["status"] == 503 and "kept" in error["message"]
    assert slow.response.headers["retry-after"]
    assert desk.wait(TIMEOUT) in (0, -signal.SIGTERM)
    assert list(statuses(tmp_path).values()) == ["interrupted"] * 2
    assert transcript(tmp_path, slow.id) == [("customer", "this takes forever [hold:t@0]")]
    assert "Traceback" not in desk.log.read_text()

    (tmp_path / "t.go").touch()
    (tmp_path / "u.go").touch()
    desk.start()
    wait_for("the replies", lambda: not crash.audit(tmp_path, 0).owed)
    assert transcript(tmp_path, slow.id)[-1] == ("agent", "echo: this takes forever")
    assert transcript(tmp_path, streamed.id)[-1] == ("agent", "echo: so does this")
    assert list(statuses(tmp_path).values()) == ["final"] * 2
    r = httpx.get(f"{desk.url}/api/conversations/{slow.id}", headers=slow.auth)
    assert r.json()["transcript"][-1]["text"] == "echo: this takes forever"


def test_a_small_crash_benchmark_loses_nothing() -> None:
    """benchmarks/desk_crash.py with 3 SIGKILLs at seeded points (the full one: 50 replies)."""
    done = subprocess.run(
        [sys.executable, str(BENCH), "--replies", "9", "--conversations", "3", "--kills", "3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "lost                      0" in done.stdout
    assert "runs left running         0" in done.stdout
    assert "(done twice: 0)" in done.stdout
