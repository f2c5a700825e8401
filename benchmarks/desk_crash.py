"""The support desk under `kill -9`: no reply is lost and no side effect is done twice.

    python benchmarks/desk_crash.py [--replies 50] [--conversations 10] [--kills 5]
                                    [--seed 7] [--delay 0.02,0.15] [--timeout 600]

Starts a real `pilothouse serve` process (a SQLite shop and journal in a temporary
directory) whose support agent runs on `CrashModel`, a scripted model that answers
like a customer-service model would (verify, then cancel or refund; or a plain
answer) after a random delay, so that kills land anywhere in a reply. Customers in
`--conversations` conversations send `--replies` messages in all, one after another
per conversation, all conversations at once: a third ask to cancel a pending order,
a third for a $10 refund of a delivered order, the rest a plain question. Meanwhile
the server is SIGKILLed `--kills` times, each time once the journal has grown by a
seeded random number of events (so the kills fall at seeded points of the work,
not of the clock), and restarted on the same files at once. A customer whose
request failed reads the conversation after the restart and sends the message
again only if it is not there (the desk never saw it).

At the end (the last server recovers what the last kill cut off) it counts, from
the desk's tables, the journal and the shop:

- every customer message the desk kept must end with an agent reply or a note
  escalating the conversation to the human queue: ``lost`` counts those without;
- no run may have two replies (``duplicated``) or stay ``running`` or
  ``interrupted`` in the journal (``left running``);
- each order may be cancelled or refunded at most once (``done twice``), and each
  change the shop recorded under an idempotency key made exactly one payment row.

Prints the figures; exits 1 if anything was lost, duplicated, done twice or left
running. ``python benchmarks/desk_crash.py serve ...`` is the server it starts
(`pilothouse serve` with the ``crashdesk`` model registered); the crash tests in
tests/desk/server use it too, with `hold` tags that stop a reply at a chosen model call
until the test creates a file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
CONSOLE_TOKEN = "crash-console-token"
MODEL = "crashdesk"
CONTROL_ENV = "DESK_CRASH_CONTROL"  # directory of the hold files (see CrashModel)
DELAY_ENV = "DESK_CRASH_DELAY"  # "lo,hi": seconds the model waits before each answer
SEED_ENV = "DESK_CRASH_SEED"  # the delays are drawn from it, the message and the call

CANCEL_RE = re.compile(r"cancel order (A\d{4}), I am (\S+@\S+) zip (\d{5})")
REFUND_RE = re.compile(r"refund (\d+(?:\.\d+)?) for order (A\d{4}), I am (\S+@\S+) zip (\d{5})")
HOLD_RE = re.compile(r"\[hold:([a-z0-9_-]+)@(\d+)\]")


# --------------------------------------------------------------------------- the model


def crash_model() -> Any:
    """`CrashModel` (built lazily: the driver does not import pilothouse's models)."""
    from pilothouse.exceptions import ModelError
    from pilothouse.messages import ToolCall
    from pilothouse.models.base import ModelRequest, ModelResponse
    from pilothouse.models.scripted import ScriptedModel

    def reply(request: ModelRequest) -> Any:
        last_user = max(i for i, m in enumerate(request.messages) if m.role == "user")
        text = request.messages[last_user].content
        done = [m.name for m in request.messages[last_user + 1 :] if m.role == "tool"]
        n = len(request.messages)
        wanted = CANCEL_RE.search(text) or REFUND_RE.search(text)
        if wanted is None:
            return "echo: " + HOLD_RE.sub("", text).strip()
        email, zip_code = wanted.groups()[-2:]
        if not done:
            return ToolCall(f"v{n}", "verify_identity", {"email": email, "zip": zip_code})
        if done == ["verify_identity"]:
            if wanted.re is CANCEL_RE:
                return ToolCall(f"c{n}", "cancel_order", {"order_id": wanted.group(1)})
            order, amount = wanted.group(2), float(wanted.group(1))
            return ToolCall(f"r{n}", "refund", {"order_id": order, "amount": amount})
        result = next(m.content for m in reversed(request.messages) if m.role == "tool")
        return f"Done: {result}"

    class CrashModel(ScriptedModel):
        """Answers per `reply`; before answering it sleeps a `DELAY_ENV` delay (drawn
        from `SEED_ENV`, the customer's message and the call's place in it) and
        honours a ``[hold:NAME@K]`` tag in the customer's message: at the model call
        made after K tool results of that message, it creates ``NAME.waiting`` in the
        `CONTROL_ENV` directory and waits until ``NAME.go`` exists there (or fails
        with `ModelError` if ``NAME.fail`` does)."""

        def __init__(self) -> None:
            super().__init__(reply, name=MODEL, record=False)
            control = os.environ.get(CONTROL_ENV)
            self.control = Path(control) if control else None
            lo, _, hi = os.environ.get(DELAY_ENV, "0,0").partition(",")
            self.delay = (float(lo), float(hi or lo))
            self.seed = os.environ.get(SEED_ENV, "0")

        async def generate(self, request: ModelRequest) -> ModelResponse:
            last_user = max(i for i, m in enumerate(request.messages) if m.role == "user")
            if self.delay[1] > 0:
                draw = f"{self.seed}:{request.messages[last_user].content}:{len(request.messages)}"
                await asyncio.sleep(random.Random(draw).uniform(*self.delay))
            results = sum(1 for m in request.messages[last_user + 1 :] if m.role == "tool")
            hold = HOLD_RE.search(request.messages[last_user].content)
            if hold is not None and self.control is not None and int(hold.group(2)) == results:
                name = hold.group(1)
                (self.control / f"{name}.waiting").touch()
                while not (self.control / f"{name}.go").exists():
                    if (self.control / f"{name}.fail").exists():
                        raise ModelError(f"the model endpoint is down (hold {name})")
                    await asyncio.sleep(0.01)
            return await super().generate(request)

    return CrashModel()


def serve_main(argv: list[str]) -> None:
    """`pilothouse serve ARGV` with the ``crashdesk`` model registered (the single agent:
    the crash model is scripted for its steps)."""
    from pilothouse.cli import main
    from pilothouse.models.registry import register_model

    register_model(MODEL, lambda rest: crash_model())
    sys.argv = ["pilothouse", "serve", "--single", "--model", MODEL, *argv]
    main()


# --------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class DeskServer:
    """A `pilothouse serve` process on `directory`'s shop and journal, restartable on
    the same port and files. Its stderr (uvicorn's and the desk's log) is appended to
    ``directory/server.log``."""

    def __init__(
        self,
        directory: Path,
        *,
        grace_seconds: float = 20.0,
        delay: str = "0,0",
        control: Path | None = None,
        seed: int = 0,
    ) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.grace_seconds = grace_seconds
        self.env = {
            **os.environ,
            "PILOTHOUSE_CONSOLE_TOKEN": CONSOLE_TOKEN,
            DELAY_ENV: delay,
            SEED_ENV: str(seed),
            CONTROL_ENV: str(control or directory),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    def start(self, timeout: float = 60.0) -> DeskServer:
        import httpx

        argv = [
            sys.executable,
            str(HERE),
            "serve",
            "--port",
            str(self.port),
            "--shop",
            str(self.directory / "shop.db"),
            "--store",
            str(self.directory / "journal.db"),
            "--grace-seconds",
            str(self.grace_seconds),
            "--no-rate-limit",
        ]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self.env
            )
        self.starts += 1
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"pilothouse serve did not start:\n{self.log.read_text()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL, and reap the process (its port and leases are free afterwards)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def terminate(self) -> None:
        """SIGTERM (the drain starts); `wait` for the exit."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout)
        self.proc = None
        return code

    def stop(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.send_signal(signal.SIGINT)
                self.proc.wait(30)
            self.kill()


# --------------------------------------------------------------------------- reading the files


def read_db(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return list(db.execute(sql, args).fetchall())
    finally:
        db.close()


def journal_events(directory: Path) -> int:
    if not (directory / "journal.db").exists():
        return 0
    with contextlib.suppress(sqlite3.OperationalError):  # not created yet
        return int(read_db(directory / "journal.db", "SELECT COUNT(*) FROM events")[0][0])
    return 0


@dataclass
class Audit:
    """What the files say after the last restart (see the module docs)."""

    kept: int = 0  # customer messages in transcripts
    replied: int = 0  # ... answered by the agent
    escalated: int = 0  # ... whose reply was a note handing the conversation to a human
    to_humans: int = 0  # ... sent to a conversation already in the human queue
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    left_running: list[str] = field(default_factory=list)
    owed: int = 0  # desk_runs rows not delivered
    effects: int = 0  # changes the shop recorded (actions)
    done_twice: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.left_running or self.done_twice)


def audit(directory: Path, baseline_payments: int) -> Audit:
    shop, journal = directory / "shop.db", directory / "journal.db"
    result = Audit()
    conversations = read_db(shop, "SELECT id, status, escalated_at FROM desk_conversations")
    for conv_id, _status, escalated_at in conversations:
        entries = read_db(
            shop,
            "SELECT author, text, ts, run_id FROM desk_entries WHERE conversation_id = ? "
            "ORDER BY seq",
            conv_id,
        )
        for i, (author, text, ts, _) in enumerate(entries):
            if author != "customer":
                continue
            result.kept += 1
            following: list[str] = []
            for later in entries[i + 1 :]:
                if later[0] == "customer":
                    break
                following.append(later[0])
            if "agent" in following:
                result.replied += 1
            elif "system" in following:
                result.escalated += 1
            elif escalated_at is not None and ts >= escalated_at:
                result.to_humans += 1  # the desk told the customer a human will answer
            else:
                result.lost.append(f"{conv_id}: {text!r}")
    for run_id, replies in read_db(
        shop,
        "SELECT run_id, COUNT(*) FROM desk_entries WHERE author = 'agent' AND run_id IS NOT NULL "
        "GROUP BY run_id HAVING COUNT(*) > 1",
    ):
        result.duplicated.append(f"{run_id} ({replies} replies)")
    result.left_running = [
        f"{r[0]} ({r[1]})"
        for r in read_db(
            journal, "SELECT run_id, status FROM runs WHERE status IN ('running', 'interrupted')"
        )
    ]
    result.owed = int(read_db(shop, "SELECT COUNT(*) FROM desk_runs WHERE delivered IS NULL")[0][0])
    actions = read_db(shop, "SELECT key, tool, result FROM actions")
    result.effects = len(actions)
    per_order: dict[str, list[str]] = {}
    for key, tool, text in actions:
        order = re.search(r"A\d{4}", text)
        per_order.setdefault(f"{tool} {order.group(0) if order else '?'}", []).append(key)
    result.done_twice = [
        f"{what}: keys {keys}" for what, keys in per_order.items() if len(keys) > 1
    ]
    payments = int(read_db(shop, "SELECT COUNT(*) FROM payments")[0][0])
    if payments - baseline_payments != len(actions):  # one refund row per cancel or refund
        result.done_twice.append(
            f"{payments - baseline_payments} payment rows for {len(actions)} recorded changes"
        )
    return result


# --------------------------------------------------------------------------- the customers


@dataclass
class Customer:
    """One conversation's customer: sends its messages in order, surviving restarts."""

    url: str
    messages: list[str]
    deadline: float
    conv_id: str = ""
    token: str = ""
    resent: int = 0
    errors: list[str] = field(default_factory=list)

    def run(self) -> None:
        import httpx

        with httpx.Client(base_url=self.url, timeout=120) as client:
            while not self.conv_id:
                with contextlib.suppress(httpx.HTTPError):
                    r = client.post("/api/conversations", json={})
                    if r.status_code == 201:
                        self.conv_id, self.token = r.json()["conversation"]["id"], r.json()["token"]
                        break
                self._pause()
            auth = {"Authorization": f"Bearer {self.token}"}
            for text in self.messages:
                while True:
                    try:
                        r = client.post(
                            f"/api/conversations/{self.conv_id}/messages",
                            json={"text": text},
                            headers=auth,
                        )
                        if r.status_code == 200:
                            break
                        if r.status_code != 503:
                            self.errors.append(f"{text!r}: HTTP {r.status_code} {r.text[:200]}")
                            break
                    except httpx.HTTPError:
                        pass
                    # The server died or is stopping: once it is back, send again only if
                    # the desk never saw the message (then nothing was done for it).
                    if self._kept(client, auth, text):
                        break
                    self.resent += 1

    def _kept(self, client: Any, auth: dict[str, str], text: str) -> bool:
        import httpx

        while True:
            self._pause()
            with contextlib.suppress(httpx.HTTPError):
                r = client.get(f"/api/conversations/{self.conv_id}", headers=auth)
                if r.status_code == 200:
                    return any(
                        e["author"] == "customer" and e["text"] == text
                        for e in r.json()["transcript"]
                    )

    def _pause(self) -> None:
        if time.monotonic() > self.deadline:
            raise TimeoutError("the server did not come back in time")
        time.sleep(0.05)


def plan(seed: int, replies: int, conversations: int, shop_path: Path) -> list[list[str]]:
    """Each conversation's messages: seeded mix of cancels, refunds and questions."""
    from pilothouse_desk.shop import open_shop

    open_shop(shop_path).close()  # created and seeded as the server would
    rng = random.Random(seed)
    pending = read_db(
        shop_path,
        "SELECT o.id, c.email, c.zip FROM orders o JOIN customers c ON c.id = o.customer_id "
        "WHERE o.status = 'pending' ORDER BY o.id",
    )
    delivered = read_db(
        shop_path,
        "SELECT o.id, c.email, c.zip FROM orders o JOIN customers c ON c.id = o.customer_id "
        "WHERE o.status = 'delivered' AND (SELECT SUM(amount) FROM payments p WHERE "
        "p.order_id = o.id AND p.kind = 'payment') > 20 ORDER BY o.id",
    )
    rng.shuffle(pending)
    rng.shuffle(delivered)
    out: list[list[str]] = [[] for _ in range(conversations)]
    for i in range(replies):
        kind = rng.choice(("cancel", "refund", "question"))
        if kind == "cancel" and pending:
            order, email, zip_code = pending.pop()
            text = f"Please cancel order {order}, I am {email} zip {zip_code}"
        elif kind == "refund" and delivered:
            order, email, zip_code = delivered.pop()
            text = f"Please refund 10 for order {order}, I am {email} zip {zip_code}"
        else:
            text = f"Question number {i}: when do you open?"
        out[i % conversations].append(text)
    return out


def bench(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="desk-crash-") as tmp:
        directory = Path(tmp)
        scripts = plan(args.seed, args.replies, args.conversations, directory / "shop.db")
        baseline = int(read_db(directory / "shop.db", "SELECT COUNT(*) FROM payments")[0][0])
        server = DeskServer(directory, delay=args.delay, seed=args.seed).start()
        started = time.monotonic()
        deadline = started + args.timeout
        customers = [Customer(server.url, messages, deadline) for messages in scripts]
        threads = [threading.Thread(target=c.run) for c in customers]
        for t in threads:
            t.start()
        kills: list[int] = []
        try:
            for _ in range(args.kills):
                target = journal_events(directory) + rng.randint(1, args.events_between)
                while journal_events(directory) < target and any(t.is_alive() for t in threads):
                    if time.monotonic() > deadline:
                        raise TimeoutError("the load did not reach the next kill point")
                    time.sleep(0.005)
                if not any(t.is_alive() for t in threads):
                    break
                server.kill()
                kills.append(journal_events(directory))
                server.start()
            for t in threads:
                t.join(max(1.0, deadline - time.monotonic()))
            # The last start recovers in the background: wait until nothing is owed.
            while audit(directory, baseline).owed and time.monotonic() < deadline:
                time.sleep(0.05)
            elapsed = time.monotonic() - started
        finally:
            server.stop()
        result = audit(directory, baseline)
        errors = [e for c in customers for e in c.errors]
        recovered = len(re.findall(r"delivered after the restart", server.log.read_text()))
        escalated_logs = len(re.findall(r"\) escalated: ", server.log.read_text()))
        print(f"desk crash benchmark (seed {args.seed}, model delay {args.delay} s)")
        print(f"  messages planned          {sum(len(s) for s in scripts)}")
        print(f"  conversations             {len(scripts)}")
        print(f"  SIGKILLs                  {len(kills)} (at journal events {kills})")
        print(f"  messages kept by the desk {result.kept}")
        print(f"  resent by customers       {sum(c.resent for c in customers)} (never seen)")
        print(f"  answered by the agent     {result.replied}")
        print(f"  escalated with a note     {result.escalated}")
        print(f"  sent to the human queue   {result.to_humans}")
        print(f"  recovered on restart      {recovered} delivered, {escalated_logs} escalated")
        print(f"  lost                      {len(result.lost)}")
        print(f"  duplicated replies        {len(result.duplicated)}")
        print(f"  runs left running         {len(result.left_running)}")
        print(
            f"  shop changes              {result.effects} (done twice: {len(result.done_twice)})"
        )
        print(f"  client errors             {len(errors)}")
        print(f"  time                      {elapsed:.1f} s")
        for what in (*result.lost, *result.duplicated, *result.left_running, *result.done_twice):
            print(f"  ! {what}")
        for error in errors:
            print(f"  ! client: {error}")
        return (
            0
            if result.ok
            and result.kept == result.replied + result.escalated + result.to_humans
            and not errors
            else 1
        )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--replies", type=int, default=50)
    parser.add_argument("--conversations", type=int, default=10)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--delay", default="0.02,0.15", help="model delay range, seconds")
    parser.add_argument(
        "--events-between", type=int, default=60, help="most journal events between kills"
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    sys.exit(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
