"""The support desk's HTTP server: a JSON + SSE API over a `Desk`, and three pages.

    create_app(desk, console_token="...") -> Starlette

Two kinds of caller, two kinds of token, both sent as ``Authorization: Bearer ...``:

* a **customer** holds the token their conversation was created with, and can only
  read and write that conversation (``/api/conversations/{id}...``);
* a **human agent** holds the console token and reaches the queue, every
  conversation's steps and policy decisions, approvals and figures
  (``/api/console/...``).

A missing token is 401, a wrong one 403, an unknown conversation 404. Every error,
including an unexpected one, is a small JSON body ``{"error": {"status", "message"}}``:
no stack trace reaches a client (it goes to the ``pilothouse_desk.server`` log instead).
Bodies are checked before anything is stored: at most `MAX_BODY_BYTES`, UTF-8, nested
at most `MAX_JSON_DEPTH` deep (checked before parsing, so a deeply nested body costs
a scan, not a recursion), and well-formed Unicode (a lone surrogate such as ``"\\ud800"``
cannot be stored, so it is refused with the rest of the request).

A customer sees their transcript without staff notes and their conversation without
the escalation summary: failure detail and policy reasons are for the console.

Live updates travel over Server-Sent Events. The server keeps a `Hub` of in-process
channels, one per conversation plus one for the console; whatever changes a
conversation (a message, an agent step, a human's claim or reply, a decision)
publishes there, and each open event stream forwards it. Clients treat a
``changed`` event as "read the transcript again", so a dropped notification
(a slow client whose queue filled up) delays an update but never loses a message:
the transcript in the journal store is the record.

The console sees the whole run tree live, not only the root run: a run's journal
subscribers hear its own events, and a team's child runs (a handoff to a specialist,
the supervisor's review) are journals of their own, so the server also listens to
the desk's store (`Desk.watch`, `pilothouse_desk.watch`): each batch of a child run's
events, once committed, goes to the console's stream as ``step`` events of the
conversation its root run answers, and the console reads the tree again.

The agent's run for a message is started as a task of its own, so a client that
disconnects mid-answer does not cancel the run: the reply still lands in the
conversation, which the customer reads when they come back.

Stopping and starting never loses a reply. At start, the desk's `recover` runs as
a background task (the server answers meanwhile): replies a crash or a stop cut
off are finished from their journals or escalated with a note. On shutdown
(SIGTERM, Ctrl-C) the server drains: new messages and decisions get 503 with
Retry-After, replies in flight get up to `grace_seconds` to finish, and those
still running after that are cancelled; a cancelled run is journaled
``interrupted`` (the customer's message is kept), its client gets a JSON 503 that
says the reply will follow, and the next start resumes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from importlib import resources
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from pilothouse import Event
from pilothouse.serving.protocol import json_too_deep
from pilothouse.serving.ratelimit import RateLimit, RateLimiter, seconds_header
from pilothouse_desk.desk import DeskError, NotFound

_log = logging.getLogger("pilothouse_desk.server")

MAX_BODY_BYTES = 64 * 1024
"""Largest request body accepted; larger ones get 413 before they are read in full."""
MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects in a request body; this API needs two levels."""
MAX_MESSAGE_CHARS = 4000
"""Longest customer or human message; a chat message longer than this is a mistake."""
# Per client address; each message starts an agent run. See pilothouse.serving.ratelimit.
OPEN_LIMIT = RateLimit(per_minute=10, burst=20)
MESSAGE_LIMIT = RateLimit(per_minute=30, burst=60)
MAX_STREAMS_PER_CONVERSATION = 4
"""Event streams open at once on one conversation (a few tabs); each holds a queue."""
HEARTBEAT_SECONDS = 15.0
"""An SSE comment is sent this often so proxies and browsers keep the stream open."""
QUEUE_SIZE = 1000
GRACE_SECONDS = 20.0
"""How long a shutdown waits for replies in flight before interrupting them (resumed at
the next start)."""
RETRY_AFTER_SECONDS = 10
"""What a 503 during a shutdown tells clients to wait: about a restart's length."""
"""Notifications buffered per open event stream before later ones are dropped."""

# Fields of a conversation object that are secrets and never leave the server.
_SECRET_FIELDS = frozenset({"token", "secret", "customer_token", "token_hash"})
# Fields only the console sees: the escalation summary names failures and policy reasons,
# a reply's outcome names budget stops.
_STAFF_FIELDS = frozenset({"summary", "outcome"})


class SupportDesk(Protocol):
    """The conversation service the server fronts (`pilothouse_desk.Desk`).

    Declared as a protocol so a test can serve any object with these methods. `store`
    is the journal store the desk's runs are written to. A desk refuses bad input with
    the desk's typed errors: `NotFound` becomes 404, another `DeskError` or an
    `ApprovalError` 409; any other exception is a bug (500, logged, its text never sent).
    """

    store: Any

    async def open(self, customer_email: str | None = None) -> Any: ...

    async def send(self, conv_id: str, text: str, *, subscribers: Sequence[Any] = ()) -> Any: ...

    def get(self, conv_id: str) -> Any: ...

    def transcript(self, conv_id: str, *, staff: bool = False) -> list[Any]: ...

    def queue(self) -> list[Any]: ...

    def claim(self, conv_id: str, human: str) -> Any: ...

    def reply(self, conv_id: str, human: str, text: str) -> Any: ...

    async def close(
        self, conv_id: str, human: str = "", *, subscribers: Sequence[Any] = ()
    ) -> Any: ...

    def pending_approvals(self) -> list[Any]: ...

    async def decide(
        self,
        conv_id: str,
        key: str,
        approve: bool,
        *,
        human: str = "",
        subscribers: Sequence[Any] = (),
    ) -> Any: ...

    def resolve(self, conv_id: str) -> Any: ...

    def conversations(self, limit: int = 100) -> list[Any]: ...

    def runs(self, conv_id: str) -> list[str]: ...

    def figures(self) -> Any: ...

    def authorize(self, conv_id: str, token: str) -> bool: ...


# --------------------------------------------------------------------------- JSON


def jsonable(value: Any) -> Any:
    """A JSON-ready copy of a Desk value (dataclasses, lists, dicts, scalars)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return jsonable(to_dict())
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    return str(value)


def public(value: Any) -> Any:
    """`jsonable`, minus secret fields (a conversation's customer token)."""
    data = jsonable(value)
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if k not in _SECRET_FIELDS}
    return data


def for_customer(value: Any) -> Any:
    """`public`, minus what only staff read (escalation summary, a run's outcome)."""
    data = public(value)
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if k not in _STAFF_FIELDS}
    return data


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "message": message}}, status_code=status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    response = _error(exc.status_code, str(exc.detail))
    response.headers.update(exc.headers or {})
    if exc.status_code == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


async def _server_error(request: Request, exc: Exception) -> Response:
    """Any uncaught exception: log it with its traceback, tell the client only that."""
    _log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return _error(500, "internal server error; the details are in the server's log")


async def read_json(request: Request, max_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The request's JSON object body, refusing oversized or malformed input.

    Counts bytes as they arrive, so a client that lies in (or omits) Content-Length
    still cannot make the server buffer more than `max_bytes`.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not _is_ascii_number(declared):
            raise HTTPException(400, "Content-Length is not a number")
        if int(declared) > max_bytes:
            raise HTTPException(413, f"request body is larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise HTTPException(413, f"request body is larger than {max_bytes} bytes")
        chunks.append(chunk)
    return parse_json_object(b"".join(chunks))


def parse_json_object(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """A request body as a JSON object, or an `HTTPException` (400) saying what is wrong.

    The nesting depth is measured by a scan before parsing: the parser recurses once
    per level, so a 2 KB body of brackets would otherwise exhaust the stack. Strings
    must be well-formed Unicode: a lone surrogate (``"\\ud800"``) parses, but no
    UTF-8 database can store it.
    """
    if not raw.strip():
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(400, "request body is not valid JSON: it is not UTF-8") from None
    if json_too_deep(text, max_depth):
        raise HTTPException(400, f"request body nests deeper than {max_depth} levels")
    try:
        body = json.loads(text)
    except ValueError:
        raise HTTPException(400, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "request body must be a JSON object")
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(body):
        raise HTTPException(
            400,
            "request body is not valid Unicode text: it contains a lone surrogate "
            "(such as \\ud800); send the character itself or a surrogate pair",
        )
    return body


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(value: Any) -> bool:
    """Whether a parsed JSON value holds a string UTF-8 cannot encode (depth is bounded)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def _is_ascii_number(text: str, max_digits: int = 18) -> bool:
    """Whether `text` is 1 to `max_digits` ASCII digits.

    `str.isdigit` and `int` accept other scripts' digits and superscripts (``²`` is
    a digit to `isdigit`, not to `int`); an HTTP number is ASCII.
    """
    return 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


# What the console's conversation view shows by default: the latest runs' journals and
# transcript entries (`?runs=` and `?entries=` ask for more, up to 100 and 5000).
CONSOLE_RUNS = 10
CONSOLE_ENTRIES = 500


CONSOLE_TREE_DEPTH = 8  # nested child runs shown per run (a team's handoffs are fewer)


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    """A whole-number query parameter from `low` to `high`, else a 400 saying so."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not _is_ascii_number(raw, 9) or not low <= int(raw) <= high:
        raise HTTPException(400, f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def _text_field(body: dict[str, Any], name: str, *, limit: int = MAX_MESSAGE_CHARS) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise HTTPException(422, f"field {name!r} must be a string")
    value = value.strip()
    if not value:
        raise HTTPException(422, f"field {name!r} must not be empty")
    if len(value) > limit:
        raise HTTPException(422, f"field {name!r} is longer than {limit} characters")
    return value


def _desk_error(exc: BaseException) -> HTTPException | None:
    """The HTTP form of an error the Desk raised for bad input, or None for a bug.

    Only the desk's own typed errors are mapped: `NotFound` (an unknown conversation)
    is 404; another `DeskError` or an `ApprovalError` is 409. Anything else, a
    `KeyError` or `ValueError` from deeper down (a codec, a database, a dict) included,
    is a bug whose text may describe internals, so it stays a 500 with a generic message.
    """
    from pilothouse import ApprovalError

    if isinstance(exc, HTTPException):
        return exc
    if isinstance(exc, NotFound):
        return HTTPException(404, str(exc) or "not found")
    if isinstance(exc, (ApprovalError, DeskError)):
        # A request the conversation's state does not allow: closed, not in the queue,
        # claimed by someone else, no such pending approval.
        return HTTPException(409, str(exc))
    return None


async def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a Desk method (sync or async), turning its input errors into HTTP errors."""
    try:
        result = fn(*args, **kwargs)
        if isinstance(result, Awaitable):
            result = await result
        return result
    except Exception as exc:
        mapped = _desk_error(exc)
        if mapped is None:
            raise
        raise mapped from None


# --------------------------------------------------------------------------- live updates


CONSOLE_CHANNEL = "*console*"
MAX_LIVE_ROOTS = 10_000
"""Root runs whose conversation the server remembers, to show their children live."""


class Hub:
    """In-process publish/subscribe: one channel per conversation, one for the console."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[dict[str, Any] | None]]] = {}
        self.closed = False

    def subscribe(self, channel: str) -> asyncio.Queue[dict[str, Any] | None]:
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.setdefault(channel, set()).add(queue)
        return queue

    def unsubscribe(self, channel: str, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        queues = self._subscribers.get(channel)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._subscribers[channel]

    def count(self, channel: str) -> int:
        """How many streams are open on `channel` (the per-conversation cap reads it)."""
        return len(self._subscribers.get(channel, ()))

    def listening(self, channel: str) -> bool:
        """Whether any stream is open on `channel` (to skip building unread payloads)."""
        return bool(self._subscribers.get(channel))

    def publish(self, channel: str, item: dict[str, Any]) -> None:
        """Hand `item` to every stream on `channel`; a full queue skips it (see module doc)."""
        for queue in self._subscribers.get(channel, ()):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(item)

    def changed(self, conv_id: str, what: str) -> None:
        """Tell the conversation's and the console's streams to read the conversation again."""
        item = {"event": "changed", "data": {"conversation": conv_id, "what": what}}
        self.publish(conv_id, item)
        self.publish(CONSOLE_CHANNEL, item)

    def close(self) -> None:
        """End every open stream (server shutdown)."""
        self.closed = True
        for queues in self._subscribers.values():
            for queue in queues:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(None)


def sse(event: str, data: Any) -> bytes:
    """One Server-Sent Event frame."""
    payload = json.dumps(data, ensure_ascii=False, default=str)
    return f"event: {event}\ndata: {payload}\n\n".encode()


# Pages load only their own scripts and styles and talk only to this server.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": _CSP,
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
"""Sent with every page and every static file (a page opened as /static/chat.html too)."""


class SecureStaticFiles(StaticFiles):
    """`StaticFiles` whose responses carry `SECURITY_HEADERS`, like the pages."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response


def customer_event(event: Event) -> dict[str, Any]:
    """What a customer may see of an agent step: its kind and tool, not its contents.

    Arguments, results, instructions and policy reasons stay on the console.
    """
    data: dict[str, Any] = {"type": event.type, "step": event.step}
    call = getattr(event, "call", None)
    if call is not None:
        data["tool"] = call.name
    return data


def console_event(event: Event) -> dict[str, Any]:
    """An agent step for the console: the journal's own form plus a readable line."""
    from pilothouse.trace import describe

    return {**event.to_dict(), "line": describe(event, limit=400)}


# --------------------------------------------------------------------------- the app


class _Server:
    """The routes' shared state: the desk, the token, the hub and running sends."""

    def __init__(self, desk: SupportDesk, console_token: str, store: Any) -> None:
        if not console_token:
            raise ValueError("console_token must not be empty")
        self.desk = desk
        self.console_token = console_token
        self.store = store
        self.hub = Hub()
        self.locks: dict[str, asyncio.Lock] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.draining = False  # shutting down: no new agent runs (see drain)
        # root run id -> conversation, learnt from the root's own events (`publisher`):
        # where a child run's committed events are shown live (`tree_written`)
        self.roots: dict[str, str] = {}
        self.loop: asyncio.AbstractEventLoop | None = None

    # ---------------------------------------------------------------- auth

    @staticmethod
    def _bearer(request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header or scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(401, "missing token: send 'Authorization: Bearer <token>'")
        return token.strip()

    def console(self, request: Request) -> None:
        token = self._bearer(request)
        if not hmac.compare_digest(token.encode(), self.console_token.encode()):
            raise HTTPException(403, "wrong console token")

    async def customer(self, request: Request) -> str:
        """The conversation id of a customer request whose token matches it."""
        conv_id = request.path_params["conv_id"]
        token = self._bearer(request)
        await _call(self.desk.get, conv_id)  # 404 before 403: ids are not secrets
        if not await _call(self.desk.authorize, conv_id, token):
            raise HTTPException(403, "this token does not belong to this conversation")
        return str(conv_id)

    # ---------------------------------------------------------------- views

    async def conversation_view(self, conv_id: str, *, staff: bool = False) -> dict[str, Any]:
        """The conversation and its transcript: the customer's view unless `staff`."""
        conversation = await _call(self.desk.get, conv_id)
        transcript = await _call(self.desk.transcript, conv_id, staff=staff)
        shown = public(conversation) if staff else for_customer(conversation)
        return {"conversation": shown, "transcript": jsonable(transcript)}

    def steps(self, run_id: str, _depth: int = 0) -> dict[str, Any]:
        """One run's journal as console rows: readable line and policy decision per event;
        with the agent that ran it and, nested, its child runs (a team's handoffs, the
        supervisor's reviews), so staff see which agent did what."""
        from pilothouse.exceptions import RunNotFoundError

        try:
            info = self.store.get_run(run_id)
            events = self.store.events(run_id)
        except RunNotFoundError:
            return {"run_id": run_id, "status": "missing", "events": [], "children": []}
        children = self.store.children(run_id) if _depth < CONSOLE_TREE_DEPTH else []
        return {
            "run_id": run_id,
            "agent": info.agent,
            "status": info.status,
            "events": [console_event(e) for e in events],
            "children": [self.steps(c.run_id, _depth + 1) for c in children],
        }

    # ---------------------------------------------------------------- sending

    def lock(self, conv_id: str) -> asyncio.Lock:
        lock = self.locks.get(conv_id)
        if lock is None:
            lock = self.locks[conv_id] = asyncio.Lock()
        return lock

    def publisher(
        self, conv_id: str, listener: Callable[[Event], None] | None = None
    ) -> Callable[[Event], None]:
        """A journal subscriber that forwards a run's events to the conversation's streams."""
        hub = self.hub

        def publish(event: Event) -> None:
            self.learn_root(event.run_id, conv_id)
            if hub.listening(conv_id):
                hub.publish(conv_id, {"event": "step", "data": customer_event(event)})
            if hub.listening(CONSOLE_CHANNEL):
                data = {"conversation": conv_id, **console_event(event)}
                hub.publish(CONSOLE_CHANNEL, {"event": "step", "data": data})
            if listener is not None:
                listener(event)

        return publish

    def learn_root(self, run_id: str, conv_id: str) -> None:
        """Remember which conversation a root run answers (bounded: oldest forgotten)."""
        if run_id in self.roots:
            return
        if len(self.roots) >= MAX_LIVE_ROOTS:
            del self.roots[next(iter(self.roots))]
        self.roots[run_id] = conv_id

    def tree_written(self, events: Sequence[Event]) -> None:
        """The desk's store committed `events` (one run's): a child run's go to the
        console live, as its root's own events do through `publisher` (the root's are
        skipped here: they were sent as they happened). Called in the thread that
        wrote; handed to the server's loop when that is another thread."""
        run_id = events[0].run_id if events else ""
        root, dot, _ = run_id.partition(".")  # a child's id starts with its root's
        conv_id = self.roots.get(root) if dot else None
        if conv_id is None or self.loop is None or not self.hub.listening(CONSOLE_CHANNEL):
            return
        items = [
            {"event": "step", "data": {"conversation": conv_id, **console_event(e)}} for e in events
        ]

        def publish() -> None:
            for item in items:
                self.hub.publish(CONSOLE_CHANNEL, item)

        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            publish()
        else:
            self.loop.call_soon_threadsafe(publish)

    def start_send(
        self, conv_id: str, text: str, listener: Callable[[Event], None] | None
    ) -> asyncio.Task[Any]:
        """Run the agent on one customer message as a task that outlives its request."""
        hub = self.hub
        publish = self.publisher(conv_id, listener)

        async def send() -> Any:
            async with self.lock(conv_id):
                hub.changed(conv_id, "message")
                try:
                    return await self.desk.send(conv_id, text, subscribers=[publish])
                finally:
                    hub.changed(conv_id, "reply")

        task = asyncio.ensure_future(send())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # ---------------------------------------------------------------- stopping

    def refuse_if_draining(self) -> None:
        """503 for a request that would start an agent run while the server stops."""
        if self.draining:
            raise HTTPException(
                503,
                "the server is restarting; send the message again in a few seconds",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )

    @staticmethod
    def interrupted() -> JSONResponse:
        """The answer to a request whose agent run a shutdown interrupted."""
        response = _error(
            503,
            "the server restarted while answering; your message is kept and the reply "
            "will appear in this conversation shortly",
        )
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    async def drain(self, grace: float, force: Callable[[], bool] = lambda: False) -> None:
        """Stop starting agent runs, give those in flight up to `grace` seconds (less if
        `force()` turns true: a second Ctrl-C), then cancel the rest: each is journaled
        ``interrupted`` and resumed by the next start's recovery."""
        self.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if self.tasks:
            _log.warning(
                "shutting down: waiting up to %g s for %d agent run(s) to finish",
                grace,
                len(self.tasks),
            )
        while self.tasks and not force():
            left = deadline - loop.time()
            if left <= 0:
                break
            await asyncio.wait(set(self.tasks), timeout=min(left, 0.2))
        if self.tasks:
            _log.warning(
                "interrupting %d agent run(s) still running after the %g s grace period; "
                "the next start resumes them",
                len(self.tasks),
                grace,
            )
            for task in self.tasks:
                task.cancel("server shutdown")
            await asyncio.wait(set(self.tasks), timeout=10)

    async def recover(self) -> None:
        """Run the desk's recovery (if it has one), telling live views what changed."""
        recover = getattr(self.desk, "recover", None)
        if recover is None:
            return
        try:
            report = await recover(subscribers=lambda conv_id: [self.publisher(conv_id)])
        except Exception:
            _log.exception("recovering interrupted replies failed")
            return
        for run in getattr(report, "runs", ()):
            self.hub.changed(run.conversation_id, "reply")
        _log.info("%s", report.summary() if hasattr(report, "summary") else report)


def _static_dir() -> str:
    return str(resources.files("pilothouse_desk.server").joinpath("static"))


def create_app(
    desk: SupportDesk,
    *,
    console_token: str,
    store: Any = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    open_limit: RateLimit | None = OPEN_LIMIT,
    message_limit: RateLimit | None = MESSAGE_LIMIT,
    max_streams: int = MAX_STREAMS_PER_CONVERSATION,
    grace_seconds: float = GRACE_SECONDS,
    recover: bool = True,
) -> Starlette:
    """The Starlette app serving `desk`: API, event streams and the three pages.

    `store` is the journal store the desk's runs are written to (default
    ``desk.store``); the console reads each conversation's agent steps from it.
    `open_limit` and `message_limit` bound how fast one client address may open
    conversations and send messages (429 with Retry-After beyond them; None: no
    limit). The console, behind its token, is not limited. `max_streams` caps the
    event streams open at once on one conversation (429 beyond it).

    `recover`: at start, finish the replies a crash or a stop interrupted (the desk's
    `recover`, in the background). `grace_seconds`: how long a shutdown waits for
    replies in flight before interrupting them (see the module docs).
    """
    if grace_seconds < 0:
        raise ValueError("grace_seconds must not be negative")
    state = _Server(desk, console_token, store if store is not None else desk.store)
    hub = state.hub
    limiters = {
        "open": RateLimiter(open_limit) if open_limit is not None else None,
        "message": RateLimiter(message_limit) if message_limit is not None else None,
    }

    def throttle(request: Request, what: str) -> None:
        limiter = limiters[what]
        if limiter is None:
            return
        client = request.client.host if request.client is not None else "unknown"
        wait = limiter.take(client)
        if wait > 0:
            raise HTTPException(
                429,
                f"too many requests from {client}; try again in {seconds_header(wait)} s",
                headers={"Retry-After": seconds_header(wait)},
            )

    def page(name: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            html = resources.files("pilothouse_desk.server").joinpath("static", name).read_bytes()
            return Response(
                html,
                media_type="text/html; charset=utf-8",
                headers={"Cache-Control": "no-store", **SECURITY_HEADERS},
            )

        return endpoint

    # ---------------------------------------------------------------- customer API

    async def create_conversation(request: Request) -> Response:
        throttle(request, "open")
        body = await read_json(request, max_body_bytes)
        email = body.get("customer_email")
        if email is not None and (not isinstance(email, str) or len(email) > 320):
            raise HTTPException(422, "customer_email must be a string of at most 320 characters")
        conversation = await _call(desk.open, email or None)
        data = jsonable(conversation)
        token = next((data[k] for k in ("token", "secret", "customer_token") if k in data), None)
        hub.changed(str(data.get("id")), "opened")
        return JSONResponse(
            {"conversation": for_customer(conversation), "token": token}, status_code=201
        )

    async def read_conversation(request: Request) -> Response:
        conv_id = await state.customer(request)
        return JSONResponse(await state.conversation_view(conv_id))

    async def send_message(request: Request) -> Response:
        conv_id = await state.customer(request)
        throttle(request, "message")
        body = await read_json(request, max_body_bytes)
        text = _text_field(body, "text")
        state.refuse_if_draining()
        streaming = "text/event-stream" in request.headers.get("accept", "")
        if not streaming:
            task = state.start_send(conv_id, text, None)
            try:
                reply = await _call(asyncio.shield, task)
            except asyncio.CancelledError:
                if not _interrupted(task):
                    raise
                return state.interrupted()
            return JSONResponse(
                {"reply": for_customer(reply), **(await state.conversation_view(conv_id))}
            )

        steps: asyncio.Queue[Event] = asyncio.Queue()
        task = state.start_send(conv_id, text, steps.put_nowait)

        async def stream() -> AsyncIterator[bytes]:
            while not task.done() or not steps.empty():
                getter = asyncio.ensure_future(steps.get())
                try:
                    await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                finally:  # also when the client went away: the send itself goes on
                    if not getter.done():
                        getter.cancel()
                if getter.done() and not getter.cancelled():  # else: the step stays queued
                    yield sse("step", customer_event(getter.result()))
            exc = None if task.cancelled() else task.exception()
            if task.cancelled():  # a shutdown interrupted it (see _Server.drain)
                yield sse("error", json.loads(bytes(state.interrupted().body))["error"])
            elif exc is not None:
                mapped = _desk_error(exc)
                if mapped is None:
                    _log.error("send to %s failed", conv_id, exc_info=exc)
                    yield sse("error", {"status": 500, "message": "the agent failed"})
                else:
                    yield sse("error", {"status": mapped.status_code, "message": mapped.detail})
            else:
                yield sse("reply", for_customer(task.result()))
            yield sse("conversation", await state.conversation_view(conv_id))

        return StreamingResponse(stream(), media_type="text/event-stream", headers=_SSE_HEADERS)

    async def resolve_conversation(request: Request) -> Response:
        """The customer says their question is answered: the conversation is resolved."""
        conv_id = await state.customer(request)
        await read_json(request, max_body_bytes)
        async with state.lock(conv_id):
            await _call(desk.resolve, conv_id)
        hub.changed(conv_id, "resolved")
        return JSONResponse(await state.conversation_view(conv_id))

    async def conversation_events(request: Request) -> Response:
        conv_id = await state.customer(request)
        if hub.count(conv_id) >= max_streams:  # no await until subscribed: no race past it
            raise HTTPException(
                429, f"this conversation already has {max_streams} open event streams"
            )
        return _event_stream(hub, conv_id, {"conversation": conv_id})

    # ---------------------------------------------------------------- console API

    async def console_queue(request: Request) -> Response:
        state.console(request)
        queue = await _call(desk.queue)
        return JSONResponse({"queue": [public(c) for c in queue]})

    async def console_conversations(request: Request) -> Response:
        state.console(request)
        limit = int_param(request, "limit", 50, 1, 500)
        conversations = await _call(desk.conversations, limit)
        return JSONResponse({"conversations": [public(c) for c in conversations]})

    async def console_conversation(request: Request) -> Response:
        """A conversation for staff, paginated: the last `entries` transcript entries and
        the journals of its last `runs` runs (a long conversation must not send, nor
        make the server read, every run's journal at once)."""
        state.console(request)
        conv_id = request.path_params["conv_id"]
        last_runs = int_param(request, "runs", CONSOLE_RUNS, 1, 100)
        last_entries = int_param(request, "entries", CONSOLE_ENTRIES, 1, 5000)
        view = await state.conversation_view(conv_id, staff=True)
        entries = view["transcript"]
        view["transcript"] = entries[-last_entries:]
        run_ids = await _call(desk.runs, conv_id)
        pending = [
            jsonable(p)
            for p in await _call(desk.pending_approvals)
            if _conversation_of(p) == conv_id
        ]
        shown = run_ids[-last_runs:]
        steps = [state.steps(r) for r in shown]
        return JSONResponse(
            {
                **view,
                "transcript_total": len(entries),
                "runs": steps,
                "runs_total": len(run_ids),
                "approvals": pending,
            }
        )

    async def console_claim(request: Request) -> Response:
        state.console(request)
        conv_id = request.path_params["conv_id"]
        body = await read_json(request, max_body_bytes)
        human = _text_field(body, "human", limit=100)
        await _call(desk.claim, conv_id, human)
        hub.changed(conv_id, "claimed")
        return JSONResponse(await state.conversation_view(conv_id, staff=True))

    async def console_reply(request: Request) -> Response:
        state.console(request)
        conv_id = request.path_params["conv_id"]
        body = await read_json(request, max_body_bytes)
        human = _text_field(body, "human", limit=100)
        text = _text_field(body, "text")
        await _call(desk.reply, conv_id, human, text)
        hub.changed(conv_id, "human_reply")
        return JSONResponse(await state.conversation_view(conv_id, staff=True))

    async def console_close(request: Request) -> Response:
        state.console(request)
        conv_id = request.path_params["conv_id"]
        body = await read_json(request, max_body_bytes)
        human = body.get("human", "")
        if not isinstance(human, str) or len(human) > 100:
            raise HTTPException(422, "field 'human' must be a name of at most 100 characters")
        # Pending approvals are refused in the closer's name (see Desk.close).
        await _call(desk.close, conv_id, human.strip(), subscribers=[state.publisher(conv_id)])
        hub.changed(conv_id, "closed")
        return JSONResponse(await state.conversation_view(conv_id, staff=True))

    async def console_approvals(request: Request) -> Response:
        state.console(request)
        pending = await _call(desk.pending_approvals)
        return JSONResponse({"approvals": [jsonable(p) for p in pending]})

    async def console_decide(request: Request) -> Response:
        state.console(request)
        conv_id = request.path_params["conv_id"]
        body = await read_json(request, max_body_bytes)
        key = body.get("key")
        approve = body.get("approve")
        if not isinstance(key, str) or not key:
            raise HTTPException(422, "field 'key' must be the pending call's key")
        if not isinstance(approve, bool):
            raise HTTPException(422, "field 'approve' must be true or false")
        human = body.get("human", "")
        if not isinstance(human, str) or len(human) > 100:
            raise HTTPException(422, "field 'human' must be a name of at most 100 characters")
        await _call(desk.get, conv_id)
        state.refuse_if_draining()

        async def decide() -> Any:
            async with state.lock(conv_id):
                try:
                    return await desk.decide(
                        conv_id,
                        key,
                        approve,
                        human=human.strip(),
                        subscribers=[state.publisher(conv_id)],
                    )
                finally:
                    hub.changed(conv_id, "decided")

        # Like a send, the resumed run finishes even if the console disconnects.
        task = asyncio.ensure_future(decide())
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)
        try:
            result = await _call(asyncio.shield, task)
        except asyncio.CancelledError:
            if not _interrupted(task):
                raise
            return state.interrupted()
        return JSONResponse(
            {"result": jsonable(result), **(await state.conversation_view(conv_id, staff=True))}
        )

    async def console_figures(request: Request) -> Response:
        state.console(request)
        return JSONResponse({"figures": jsonable(await _call(desk.figures))})

    async def console_events(request: Request) -> Response:
        state.console(request)
        return _event_stream(hub, CONSOLE_CHANNEL, {"console": True})

    async def health(request: Request) -> Response:
        if state.draining:  # a load balancer sends new customers elsewhere
            return JSONResponse({"ok": False, "draining": True}, status_code=503)
        return JSONResponse({"ok": True})

    async def no_icon(request: Request) -> Response:
        return Response(status_code=204)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.loop = asyncio.get_running_loop()
        watch = getattr(desk, "watch", None)  # a desk whose store tells every run's writes
        unwatch = watch(state.tree_written) if watch is not None else None
        if recover:  # in the background: the server answers while it recovers
            task = asyncio.ensure_future(state.recover())
            state.tasks.add(task)
            task.add_done_callback(state.tasks.discard)
        yield
        hub.close()
        if state.tasks:  # let answers being written land in their conversations
            await asyncio.wait(set(state.tasks), timeout=10)
        if unwatch is not None:
            unwatch()

    routes = [
        Route("/", page("chat.html")),
        Route("/console", page("console.html")),
        Route("/dashboard", page("dashboard.html")),
        Route("/healthz", health),
        Route("/favicon.ico", no_icon),
        Route("/api/conversations", create_conversation, methods=["POST"]),
        Route("/api/conversations/{conv_id}", read_conversation),
        Route("/api/conversations/{conv_id}/messages", send_message, methods=["POST"]),
        Route("/api/conversations/{conv_id}/events", conversation_events),
        Route("/api/conversations/{conv_id}/resolve", resolve_conversation, methods=["POST"]),
        Route("/api/console/queue", console_queue),
        Route("/api/console/approvals", console_approvals),
        Route("/api/console/figures", console_figures),
        Route("/api/console/events", console_events),
        Route("/api/console/conversations", console_conversations),
        Route("/api/console/conversations/{conv_id}", console_conversation),
        Route("/api/console/conversations/{conv_id}/claim", console_claim, methods=["POST"]),
        Route("/api/console/conversations/{conv_id}/reply", console_reply, methods=["POST"]),
        Route("/api/console/conversations/{conv_id}/close", console_close, methods=["POST"]),
        Route("/api/console/conversations/{conv_id}/decide", console_decide, methods=["POST"]),
        Mount("/static", SecureStaticFiles(directory=_static_dir()), name="static"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
        lifespan=lifespan,
    )
    app.state.hub = hub
    app.state.desk = desk
    app.state.drain = lambda force: state.drain(grace_seconds, force)
    return app


def uvicorn_config(
    app: Starlette,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    forwarded_allow_ips: str | None = None,
    graceful_seconds: int = 5,
) -> Any:
    """The `uvicorn.Config` for `app`, shared by `pilothouse serve` and `LiveServer`.

    Forwarded headers (``X-Forwarded-For``, ``X-Forwarded-Proto``) are believed only
    from the comma-separated addresses or networks in `forwarded_allow_ips` (a
    reverse proxy's; ``*``: anyone). By default none are: uvicorn would otherwise
    trust them from 127.0.0.1, so any local client (or a proxy that passes the
    header through) could name a new address per request and skip the per-client
    rate limits, which key on the client address.
    """
    import uvicorn

    trusted = (forwarded_allow_ips or "").strip()
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=graceful_seconds,
        server_header=False,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or "",
    )


def uvicorn_server(app: Starlette, config: Any) -> Any:
    """A `uvicorn.Server` that drains the app's agent runs, then ends its open event
    streams, when shutdown begins.

    uvicorn closes its listening sockets, waits `timeout_graceful_shutdown` for open
    responses, then cancels the requests still running (their clients get nothing, or
    a 500). So the drain (`create_app`'s ``grace_seconds``) runs first, while the server
    still listens and answers new messages with 503; after it no reply is pending. An
    event stream never ends by itself, so without ending them every shutdown would
    wait out uvicorn's grace period.
    """
    import uvicorn

    hub: Hub | None = getattr(app.state, "hub", None)

    drain: Callable[[Callable[[], bool]], Awaitable[None]] | None = getattr(
        app.state, "drain", None
    )

    class _Server(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            # First drain (still listening, so new messages get a 503, not a refused
            # connection), then end the event streams and let uvicorn close connections.
            if drain is not None:
                await drain(lambda: self.force_exit)
            if hub is not None:
                hub.close()
            await super().shutdown(sockets)

    return _Server(config)


def _interrupted(task: asyncio.Task[Any]) -> bool:
    """Whether `task` (an agent run) was cancelled by a drain while the request awaiting
    it was not itself cancelled."""
    current = asyncio.current_task()
    return task.cancelled() and (current is None or current.cancelling() == 0)


def _conversation_of(pending: Any) -> str | None:
    for name in ("conv_id", "conversation_id", "conversation"):
        value = getattr(pending, name, None)
        if value is None and isinstance(pending, dict):
            value = pending.get(name)
        if isinstance(value, str):
            return value
    return None


class _EventStream(StreamingResponse):
    """A `StreamingResponse` that runs `release` when it ends, however it ends.

    The body generator's own ``finally`` does not run if the client leaves before
    the first chunk (a generator never started is never closed), and a stream slot
    must not leak: the per-conversation cap would then lock the customer out.
    """

    def __init__(self, content: AsyncIterator[bytes], release: Callable[[], None]) -> None:
        super().__init__(content, media_type="text/event-stream", headers=_SSE_HEADERS)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


def _event_stream(hub: Hub, channel: str, hello: dict[str, Any]) -> StreamingResponse:
    """A long-lived SSE response forwarding `channel`'s notifications, with heartbeats.

    The stream is subscribed (and counts against a conversation's cap) from now until
    the response ends.
    """
    queue = hub.subscribe(channel)

    async def stream() -> AsyncIterator[bytes]:
        try:
            yield sse("hello", {**hello, "ts": time.time()})
            while not hub.closed:
                try:
                    item = await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
                except TimeoutError:
                    yield b": ping\n\n"
                    continue
                if item is None:
                    break
                yield sse(item["event"], item["data"])
        finally:
            hub.unsubscribe(channel, queue)

    return _EventStream(stream(), lambda: hub.unsubscribe(channel, queue))
