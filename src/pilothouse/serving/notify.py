"""Webhooks: the endpoint tells people when a served run waits for them.

Without webhooks an approver has to poll the queue (``GET /v1/runs?status=paused``).
With ``create_app(webhooks=[Webhook(url, secret)])`` (``serve-agent --webhook URL
--webhook-secret-file FILE``), each time a served run pauses the endpoint POSTs one
event to each URL. It is signed as the Standard Webhooks specification says
(standardwebhooks.com): headers ``webhook-id``, ``webhook-timestamp`` and
``webhook-signature``, with HMAC-SHA256 over ``id.timestamp.body`` and a ``whsec_``
secret. A receiver checks it with any of the specification's libraries
(`standardwebhooks.Webhook(secret).verify(body, headers)` in Python), which also
refuses a timestamp more than five minutes old, so a captured event cannot be replayed
later.

The event (`event_body`) is ``{"type": "run.waiting", "timestamp", "data"}``, or
``run.in_doubt`` for a run stopped in doubt (a side effect nobody can confirm: ``data``
names the calls in doubt, ``in_doubt``, for a person to settle); when an approver's
decision or settlement (over HTTP) continues the run to its end, a ``run.decided`` event
follows, with ``decided_by`` (a bot can close the item it posted). A run this endpoint
drives (a request's, or one a decision continued) that ends without an answer (an
error, or a stop by a budget, the loop detector, the policy, or output that never
validated) is announced as ``run.failed``, with ``ended``: the stop's reason or the
error's kind, and its message only with details. Runs that failed elsewhere (a worker,
the CLI) are not looked for: the index would announce every failure ever at start. By
default ``data`` holds what a person needs to decide whether to look: the run's id, the
served model, each waiting tool's name, kind and key, and ``url``, the path of the run
on this endpoint. The call's arguments, the policy's reason, the input and the person
the run acts for are included only with ``Webhook(details=True)``. A chat channel is
not the place for a customer's data unless its owner says so.

Delivery is at least once. The message id (`message_id`) is a digest of the run's id
and the keys it waits for, so a receiver that keeps the ids it has seen drops a repeat:

* one process announces one wait once, whichever route saw the pause first;
* the endpoint's start announces every run that waits already (`Notifier.announce_waiting`):
  a process that stopped between a pause and its delivery loses no event, and a
  receiver sees the same id again; then it looks again every ``watch_seconds`` (30 by
  default), so a run paused outside the endpoint (a worker, the CLI) is announced too;
* a connection error, a timeout, 408, 429 or a 5xx is retried, up to
  ``Webhook.attempts`` in all, after 1, 2, 4 ... seconds (``first_delay`` doubling up to
  ``max_delay``), or after the ``Retry-After`` the receiver sent if that is longer. Any
  other answer ends the delivery: a 2xx delivered, a 3xx (redirects are not followed)
  or another 4xx refused. Each outcome is logged (logger ``pilothouse.serving``).

A delivery never delays or fails the request whose run paused; it is a task of the
endpoint's. On shutdown, deliveries still going get the endpoint's grace period and are
then cancelled, and the next start announces them again.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import math
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from pilothouse.events import ErrorOccurred, Event, Stopped
from pilothouse.exceptions import ConfigurationError
from pilothouse.serving.agents import Served, served_stores
from pilothouse.serving.approvals import QUEUES, ServedRun, find_run, run_view, waiting_runs

__all__ = [
    "Delivery",
    "Notifier",
    "Webhook",
    "event_body",
    "message_id",
    "new_webhook_secret",
    "read_secret",
]

_log = logging.getLogger("pilothouse.serving")

SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 24
"""The Standard Webhooks specification's shortest secret (24 to 64 random bytes)."""
RETRIED_STATUSES = frozenset({408, 429})
USER_AGENT = "pilothouse-webhooks"


def new_webhook_secret() -> str:
    """A fresh secret in the specification's form: ``whsec_`` and 32 random bytes in
    base64. Give the same text to the endpoint and to the receiver."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def read_secret(path: str) -> str:
    """A webhook secret from a file (its first line), so it stays out of the command
    line and the process list."""
    try:
        lines = Path(path).read_text("utf-8").strip().splitlines()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the webhook secret file {path!r}: {exc}") from None
    if not lines:
        raise ConfigurationError(f"the webhook secret file {path!r} is empty")
    return lines[0].strip()


def _secret_bytes(secret: str) -> bytes:
    text = secret.strip()
    if not text.startswith(SECRET_PREFIX):
        raise ConfigurationError(
            "a webhook secret starts with 'whsec_' (make one with "
            "pilothouse.serving.new_webhook_secret())"
        )
    try:
        raw = base64.b64decode(text[len(SECRET_PREFIX) :], validate=True)
    except ValueError:
        raise ConfigurationError("the webhook secret after 'whsec_' is not base64") from None
    if len(raw) < MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"the webhook secret holds {len(raw)} bytes; it needs at least {MIN_SECRET_BYTES}"
        )
    return raw


@dataclass(frozen=True, slots=True)
class Webhook:
    """Where to announce waiting runs, and how.

    `url`: http or https (plain http only makes sense on a trusted network: the event
    is signed, not encrypted). `secret`: ``whsec_...`` (`new_webhook_secret`).
    `details`: include the calls' arguments, the policy's reasons, the input and whom
    the run acts for. `attempts`, `first_delay`, `max_delay`, `timeout` (seconds):
    retries, as the module docs say.
    """

    url: str
    secret: str = field(repr=False)
    details: bool = False
    attempts: int = 6
    first_delay: float = 1.0
    max_delay: float = 60.0
    timeout: float = 10.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(f"a webhook URL is http(s)://host/...: {self.url[:200]!r}")
        if parts.username or parts.password:
            raise ConfigurationError("a webhook URL carries no credentials: the secret signs")
        _secret_bytes(self.secret)
        if self.attempts < 1 or self.first_delay < 0 or self.max_delay < 0 or self.timeout <= 0:
            raise ConfigurationError("attempts >= 1, delays >= 0 and timeout > 0")

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait before attempt `attempt + 1` (after `attempt` failed ones):
        the doubling backoff, or the receiver's ``Retry-After`` seconds when longer, at
        most `max_delay` either way."""
        backoff = math.ldexp(self.first_delay, min(attempt - 1, 30))
        asked = 0.0
        text = (retry_after or "").strip()
        if text.isascii() and text.isdigit():
            asked = float(text[:6])
        return min(max(backoff, asked), self.max_delay)

    def signature(self, msg_id: str, timestamp: int, body: bytes) -> str:
        """The ``webhook-signature`` header of one delivery (the specification's v1)."""
        from standardwebhooks import Webhook as Signer  # the `server` extra

        when = datetime.fromtimestamp(timestamp, tz=UTC)
        return Signer(_secret_bytes(self.secret)).sign(msg_id, when, body)


def message_id(run_id: str, keys: Sequence[str]) -> str:
    """The id of the event announcing that `run_id` waits for `keys`: the same for
    every announcement of that wait (a receiver drops repeats by it), another once the
    run waits for something else."""
    digest = hashlib.sha256("\n".join([run_id, *sorted(keys)]).encode()).hexdigest()
    return f"msg_{digest[:32]}"


FAILED = frozenset({"error", "budget_stop", "loop_stop", "output_invalid", "policy_stop"})
"""The statuses of a run that ended without an answer (``run.failed``)."""


def event_body(
    run: ServedRun,
    *,
    details: bool,
    when: float,
    type: str = "run.waiting",
    decided_by: str | None = None,
    ended: Mapping[str, str] | None = None,
) -> bytes:
    """The JSON body announcing `run`'s wait, or (``run.decided``) that a decision
    continued it to its end, or (``run.failed``, with `ended`) that it ended without an
    answer (see the module docs)."""
    data = run_view(run, approver=details) | {"url": f"/v1/runs/{run.info.run_id}"}
    if decided_by is not None:
        data["decided_by"] = decided_by
    if ended is not None:
        data["ended"] = {k: v for k, v in ended.items() if details or k != "message"}
    if not details:
        data.pop("answer", None)  # the client's answer is a detail too
    stamp = datetime.fromtimestamp(when, tz=UTC).isoformat().replace("+00:00", "Z")
    event = {"type": type, "timestamp": stamp, "data": data}
    return json.dumps(event, separators=(",", ":"), default=str).encode()


def how_it_ended(events: Sequence[Event]) -> dict[str, str]:
    """What the journal's last event says of a run that ended without an answer: the
    stop's reason, or the error's kind; and its message (sent only with details: an
    error's text may hold what the run was working on)."""
    last = events[-1] if events else None
    if isinstance(last, Stopped):
        return {"reason": last.reason, "message": last.message}
    if isinstance(last, ErrorOccurred):
        return {"reason": "error", "kind": last.kind, "message": last.message}
    return {"reason": "unknown"}


@dataclass(frozen=True, slots=True)
class Delivery:
    """How one event's delivery to one webhook ended."""

    msg_id: str
    url: str
    delivered: bool
    attempts: int
    status: int | None  # the last answer's status; None when none came
    error: str = ""


class Notifier:
    """Announces the served agents' waiting runs to the webhooks (see the module docs).

    Called from the endpoint's event loop: `announce` after a request's run paused,
    `announce_waiting` at start, `close` at shutdown. `delivered` keeps the outcomes of
    the last deliveries, newest last (for the log and for tests)."""

    def __init__(self, webhooks: Sequence[Webhook], agents: Mapping[str, Served]) -> None:
        if not webhooks:
            raise ConfigurationError("a notifier needs at least one webhook")
        self.webhooks = list(webhooks)
        self.agents = agents
        self.delivered: list[Delivery] = []
        self._announced: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._client: httpx.AsyncClient | None = None
        self._paused: frozenset[tuple[str, float]] | None = None  # at the last look
        self._watcher: asyncio.Task[None] | None = None

    def announce(self, run_id: str) -> None:
        """Announce `run_id` if it is a served run waiting for a person, or in doubt
        (once per wait)."""
        run = find_run(self.agents, run_id)
        if run is not None:
            self._announce(run)

    def decided(self, run_id: str, approver: str, keys: Sequence[str]) -> None:
        """Announce that `approver`'s decision of `keys` continued `run_id` to its end
        (``run.decided``; once per decision; not announced again after a restart)."""
        run = find_run(self.agents, run_id)
        if run is None or run.waiting or run.doubtful:
            return
        self._publish(
            message_id(run_id, ["decided", *keys]),
            lambda hook, now: event_body(
                run, details=hook.details, when=now, type="run.decided", decided_by=approver
            ),
        )

    def failed(self, run_id: str) -> None:
        """Announce that served run `run_id` ended without an answer (``run.failed``:
        an error, or a stop by a budget, the loop detector, the policy, or output that
        never validated), once; nothing when it did not."""
        run = find_run(self.agents, run_id)
        if run is None or run.info.status not in FAILED:
            return
        ended = how_it_ended(run.model.store.events(run_id))
        self._publish(
            message_id(run_id, ["failed"]),
            lambda hook, now: event_body(
                run, details=hook.details, when=now, type="run.failed", ended=ended
            ),
        )

    def _publish(self, msg_id: str, body: Callable[[Webhook, float], bytes]) -> bool:
        """Deliver event `msg_id` to every webhook (`body` of each), unless this process
        did already; whether it was sent now."""
        if msg_id in self._announced:
            return False
        self._announced.add(msg_id)
        now = time.time()
        for hook in self.webhooks:
            task = asyncio.ensure_future(self.deliver(hook, msg_id, body(hook, now)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return True

    def announce_waiting(self) -> int:
        """Announce every served run that waits (paused, or in doubt) and was not
        announced yet (at start, then at each look of `watch`); how many were announced.
        The stores' index of such runs is read each time; the journals only when it
        changed since the last look."""
        paused = frozenset(
            (info.run_id, info.updated)
            for store in served_stores(self.agents)
            for status in QUEUES
            for info in store.list_runs(None, status=status)  # type: ignore[arg-type]
        )
        if paused == self._paused:
            return 0
        self._paused = paused
        runs = [r for status in QUEUES for r in waiting_runs(self.agents, 1_000_000, status)]
        return sum(self._announce(run) for run in runs)

    def watch(self, every: float) -> None:
        """Look for waiting runs every `every` seconds: runs paused outside this
        endpoint (a worker resuming a run, the CLI) are announced too."""

        async def looking() -> None:
            while True:
                await asyncio.sleep(every)
                try:
                    self.announce_waiting()
                except Exception:  # a store that is down now may answer at the next look
                    _log.exception("webhooks: cannot read the waiting runs")

        self._watcher = asyncio.ensure_future(looking())

    def _announce(self, run: ServedRun) -> bool:
        if run.waiting:
            return self._publish(
                message_id(run.info.run_id, [p.key for p in run.waiting]),
                lambda hook, now: event_body(run, details=hook.details, when=now),
            )
        if run.doubtful:
            keys = ["in_doubt", *(c.idempotency_key for c in run.doubtful)]
            return self._publish(
                message_id(run.info.run_id, keys),
                lambda hook, now: event_body(
                    run, details=hook.details, when=now, type="run.in_doubt"
                ),
            )
        return False

    async def deliver(self, hook: Webhook, msg_id: str, body: bytes) -> Delivery:
        """POST `body` to `hook` until it is taken, refused, or the attempts run out."""
        status: int | None = None
        error = ""
        attempt = 0
        while True:
            attempt += 1
            retry_after: str | None = None
            try:
                status, retry_after = await self._post(hook, msg_id, body)
            except httpx.HTTPError as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"[:300]
            else:
                error = ""
                if 200 <= status < 300:
                    return self._ended(Delivery(msg_id, hook.url, True, attempt, status))
                if status < 500 and status not in RETRIED_STATUSES:
                    return self._ended(Delivery(msg_id, hook.url, False, attempt, status))
            if attempt >= hook.attempts:
                self._announced.discard(msg_id)  # the next start tries again
                return self._ended(Delivery(msg_id, hook.url, False, attempt, status, error))
            await asyncio.sleep(hook.delay(attempt, retry_after))

    async def _post(self, hook: Webhook, msg_id: str, body: bytes) -> tuple[int, str | None]:
        """One signed attempt: the answer's status and ``Retry-After``. The answer's
        body is never read (a receiver cannot make the endpoint hold a large one)."""
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        stamp = int(time.time())  # each attempt signed afresh: a retry is not stale
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": msg_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": hook.signature(msg_id, stamp, body),
        }
        async with self._client.stream(
            "POST", hook.url, content=body, headers=headers, timeout=hook.timeout
        ) as response:
            return response.status_code, response.headers.get("retry-after")

    def _ended(self, delivery: Delivery) -> Delivery:
        self.delivered.append(delivery)
        del self.delivered[:-1000]
        if delivery.delivered:
            _log.info("webhook %s: delivered %s", delivery.url, delivery.msg_id)
        else:
            _log.warning(
                "webhook %s: %s not delivered after %d attempt(s) (%s)",
                delivery.url,
                delivery.msg_id,
                delivery.attempts,
                delivery.status if delivery.status is not None else delivery.error,
            )
        return delivery

    async def idle(self) -> None:
        """Wait until no delivery is going (tests and shutdown)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def close(self, grace_seconds: float) -> None:
        """Give deliveries still going `grace_seconds`, cancel the rest, close the client."""
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.wait([self._watcher])
            self._watcher = None
        if self._tasks:
            going = set(self._tasks)
            if grace_seconds > 0:
                _, going = await asyncio.wait(going, timeout=grace_seconds)
            for task in going:
                task.cancel("server shutdown")
            if going:
                await asyncio.wait(going, timeout=10)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
