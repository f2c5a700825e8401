"""The OpenAI-compatible endpoint: a Starlette app serving agents as models.

    app = create_app({"support": agent}, api_keys=ApiKeys({...}), on_disconnect="cancel")

Routes: ``GET /v1/models``, ``GET /v1/models/{id}``, ``POST /v1/chat/completions``
(streaming and not), ``GET /healthz``; with approver keys, ``GET /v1/runs/{id}`` and
``POST /v1/runs/{id}/approvals`` (`pilothouse.serving.approvals`); with webhooks, each
run that pauses is announced (`pilothouse.serving.notify`). Each chat request
is one journaled run of the agent its ``model`` names (`Agent.run`'s driver,
`pilothouse.runtime.drive.start_run`, so the journal, the policy, leases and sessions
are the runtime's own):

* **stateless**: the request's last user message is the run's input and the earlier
  messages its history (recorded once on ``run_started``);
* **in a session** named by the ``X-Pilothouse-Session`` header (or, without the
  header, the ``user`` field): the run is a turn of that session, its history read
  back from the store, so the client sends only its new message (earlier messages in
  the request are not used). Who may use which session: `pilothouse.serving.access`.

The run is a task of its own, not the request's: a client that disconnects (its
socket closes, seen by a task that waits on the ASGI ``http.disconnect``) either
cancels the run (``on_disconnect="cancel"``: journaled ``interrupted``, resumable) or
lets it finish (``"finish"``: its answer lands in the journal and the session). A
session whose turn is still running answers 409 with ``Retry-After``.

Errors are OpenAI's error JSON (``{"error": {"message", "type", "param", "code"}}``).
An unexpected failure is logged with its traceback (logger ``pilothouse.serving``) and
answered with a fixed sentence and the run id: no exception text reaches a client.

Streaming: a run's text reaches the client as it is generated when that text can only
be the answer (native tool calling, a plain-text output type, no output validators);
otherwise the answer is sent when the run ends, in one chunk. The stream opens once
the run's first commit succeeded (so a busy session is still a plain 409), then sends
OpenAI's chunks: a first one with the role, content deltas, a last one with
``finish_reason``, a usage chunk when ``stream_options.include_usage`` asks, and
``data: [DONE]``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from pilothouse.agent import new_run_id
from pilothouse.events import ModelRequested, RunStarted
from pilothouse.exceptions import (
    ConfigurationError,
    RequestRejected,
    RunInterrupted,
    SessionBusyError,
    SessionNotFoundError,
    ToolCallInDoubtError,
)
from pilothouse.models.base import TextDelta
from pilothouse.policy import Principal
from pilothouse.runtime.loop import RunLink, RunResult
from pilothouse.serving.access import ApiKeys, open_session
from pilothouse.serving.agents import Served, served_agents
from pilothouse.serving.approvals import (
    MAX_LISTED,
    QUEUES,
    check_disjoint,
    check_may_decide,
    decide,
    find_run,
    parse_decisions,
    parse_settlements,
    run_view,
    waiting_runs,
)
from pilothouse.serving.notify import Notifier, Webhook
from pilothouse.serving.protocol import (
    DONE,
    MAX_JSON_DEPTH,
    ChatRequest,
    chunk,
    completion,
    error_json,
    model_json,
    parse_body,
    parse_chat_request,
    sse,
    step_note,
)
from pilothouse.serving.ratelimit import RateLimit, RateLimiter, seconds_header

_log = logging.getLogger("pilothouse.serving")

OnDisconnect = Literal["cancel", "finish"]
MAX_BODY_BYTES = 1024 * 1024
"""Largest request body accepted by default (413 beyond, before it is read in full)."""
RETRY_AFTER_SECONDS = 2
"""What a 409 (busy session) tells the client to wait; the official client honours it."""
GRACE_SECONDS = 10.0
"""On shutdown, how long runs in flight get before they are cancelled (``interrupted``)."""
SESSION_HEADER = "x-pilothouse-session"

# What a client reads instead of an answer (the outcome is also in `pilothouse.outcome`).
PAUSED_TEXT = (
    "This request is waiting for a person to approve {tools} before the agent can "
    "answer (run {run_id}). Sending the request again would start another one: the "
    "answer comes with the decision (in the session, or GET /v1/runs/{run_id})."
)
STOPPED_TEXT = "The agent stopped before answering ({reason}; run {run_id})."
IN_DOUBT_TEXT = (
    "The agent could not confirm whether {tool} took effect (run {run_id}). Nothing is "
    "done again until a person checks; sending the request again would start another "
    "run. The answer comes once it is settled (GET /v1/runs/{run_id})."
)
FAILED_TEXT = "the agent failed to answer (run {run_id}); the details are in the server's log"

_GONE = object()  # the client disconnected
_END = object()  # the run's task is done


def _error(exc: RequestRejected) -> JSONResponse:
    return JSONResponse(error_json(exc), status_code=exc.status, headers=exc.headers)


class _Endpoint:
    """The routes' shared state: the agents, the keys, the settings, runs in flight."""

    def __init__(
        self,
        agents: dict[str, Served],
        api_keys: ApiKeys | None,
        on_disconnect: OnDisconnect,
        max_body_bytes: int,
        max_depth: int,
        retry_after: int,
        grace_seconds: float,
        notifier: Notifier | None,
    ) -> None:
        self.agents = agents
        self.keys = api_keys
        self.on_disconnect = on_disconnect
        self.max_body_bytes = max_body_bytes
        self.max_depth = max_depth
        self.retry_after = retry_after
        self.grace_seconds = grace_seconds
        self.notifier = notifier
        self.tasks: set[asyncio.Task[Any]] = set()
        self.draining = False

    def owner(self, request: Request) -> str | None:
        """The caller's owner (keyed mode), None in open mode; 401 for a bad key."""
        if self.keys is None:
            return None
        return self.keys.owner(request.headers.get("authorization"))

    def refuse_if_draining(self) -> None:
        """503 for a new run while the server shuts down."""
        if self.draining:
            raise RequestRejected(
                503,
                "the server is shutting down",
                type="server_error",
                code="shutting_down",
                headers={"retry-after": str(self.retry_after)},
            )

    def agent(self, name: str) -> Served:
        agent = self.agents.get(name)
        if agent is None:
            raise RequestRejected(
                404,
                f"the model {name[:100]!r} does not exist: GET /v1/models lists the served agents",
                code="model_not_found",
                param="model",
            )
        return agent

    async def body(self, request: Request) -> dict[str, Any]:
        """The JSON body, counted as it arrives: a client that lies in (or omits)
        Content-Length still cannot make the server hold more than the limit."""
        limit = self.max_body_bytes
        too_big = RequestRejected(
            413, f"the request body is larger than {limit} bytes", code="request_too_large"
        )
        declared = request.headers.get("content-length")
        if declared is not None:
            if not (declared.isascii() and declared.isdigit() and len(declared) <= 18):
                raise RequestRejected(400, "Content-Length is not a number")
            if int(declared) > limit:
                raise too_big
        chunks: list[bytes] = []
        size = 0
        async for piece in request.stream():
            size += len(piece)
            if size > limit:
                raise too_big
            chunks.append(piece)
        return parse_body(b"".join(chunks), self.max_depth)

    def track(self, task: asyncio.Task[Any]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def announce(self, task: asyncio.Task[RunResult[Any]], run_id: str) -> None:
        """A done run task's callback (`run_id`: the served root run): tell the webhooks
        when the run now waits for a decision, stands in doubt (a team's member's doubt
        is the root's), or ended without an answer."""
        if self.notifier is None or task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, ToolCallInDoubtError):
            self._tell(run_id, None, "in_doubt")
        elif exc is not None:
            self._tell(run_id, None, "error")  # told only if the journal says it ended
        else:
            self._tell(run_id, None, task.result().outcome)

    def announce_decided(
        self, task: asyncio.Task[str], run_id: str, decision: tuple[str, list[str]]
    ) -> None:
        """A done decision task's callback (its result: the run's outcome): tell the
        webhooks when the run waits again (or stands in doubt again), or that an
        approver's `decision` (approver, keys) continued it to its end (and, when that
        end is no answer, that it failed)."""
        if self.notifier is None or task.cancelled():
            return
        if task.exception() is not None:
            self._tell(run_id, None, "error")
        else:
            self._tell(run_id, decision, task.result())

    def _tell(self, run_id: str, decision: tuple[str, list[str]] | None, outcome: str) -> None:
        assert self.notifier is not None
        try:
            if outcome in ("paused", "in_doubt"):
                self.notifier.announce(run_id)
                return
            if decision is not None:
                self.notifier.decided(run_id, *decision)
            if outcome != "final":
                self.notifier.failed(run_id)
        except Exception:  # the answer is sent; the next look announces a wait
            _log.exception("run %s: cannot announce it to the webhooks", run_id)

    async def drain(self) -> None:
        """Refuse new runs, give those in flight the grace period, then cancel the rest
        (each is journaled ``interrupted``: `Agent.resume` or a worker finishes it)."""
        self.draining = True
        if self.tasks:
            if self.grace_seconds > 0:
                _log.warning(
                    "shutting down: waiting up to %g s for %d run(s)",
                    self.grace_seconds,
                    len(self.tasks),
                )
                _, running = await asyncio.wait(set(self.tasks), timeout=self.grace_seconds)
            else:
                running = set(self.tasks)
            for task in running:
                task.cancel("server shutdown")
            if running:
                await asyncio.wait(running, timeout=10)


class _Turn(Response):
    """One chat request's run, answered whole or as a stream (see the module docs)."""

    def __init__(
        self,
        endpoint: _Endpoint,
        name: str,
        agent: Served,
        chat: ChatRequest,
        owner: str | None,
        session: tuple[str, str] | None,
    ) -> None:
        self.endpoint, self.name, self.agent, self.chat = endpoint, name, agent, chat
        self.owner, self.session = owner, session
        self.run_id = new_run_id()
        self.completion_id = f"chatcmpl-{self.run_id}"
        self.created = int(time.time())
        spec = agent.run_spec()
        self.live = chat.stream and (
            not agent.is_team  # a member's text may be a transfer, not the answer
            and spec.action_format is None
            and spec.output.is_text
            and not spec.output_validators
            and not spec.model.capabilities.guided
        )
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.give_back: Callable[[], None] = lambda: None  # the client's run slot

    def headers_out(self) -> dict[str, str]:
        out = {"x-pilothouse-run": self.run_id}
        if self.session is not None:
            out["x-pilothouse-session"] = self.session[0]
        return out

    def extra(self, result: RunResult[Any] | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {"run_id": self.run_id}
        if self.session is not None:
            data["session"] = self.session[0]
        if result is not None:
            data["outcome"] = result.outcome
            if result.pending:
                data["pending"] = [
                    {"key": p.key, "kind": p.kind, "tool": p.tool} for p in result.pending
                ]
        return data

    def start(self) -> asyncio.Task[RunResult[Any]]:
        queue = self.queue
        task = asyncio.ensure_future(
            self.agent.start(
                self.chat.input,
                self.run_id,
                subscribers=[queue.put_nowait] if self.chat.stream else (),
                principal=Principal(user=self.owner) if self.owner is not None else None,
                history=self.chat.history if self.session is None else (),
                link=RunLink(session_id=self.session[1]) if self.session is not None else None,
                on_text=(lambda text: queue.put_nowait(TextDelta(text))) if self.live else None,
            )
        )
        self.endpoint.track(task)
        task.add_done_callback(lambda _: self.give_back())
        task.add_done_callback(lambda done: self.endpoint.announce(done, self.run_id))
        task.add_done_callback(lambda _: queue.put_nowait(_END))
        return task

    def left(self, task: asyncio.Task[Any]) -> None:
        """The client went away: cancel the run or let it finish, as configured."""
        if self.endpoint.on_disconnect == "cancel" and not task.done():
            task.cancel("the client disconnected")
        _log.info("run %s: client disconnected (%s)", self.run_id, self.endpoint.on_disconnect)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = self.start()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            self.queue.put_nowait(_GONE)

        watcher = asyncio.ensure_future(watch())
        try:
            if self.chat.stream:
                await self.stream(task, send)
            else:
                await self.whole(task, send)
        except (OSError, ClientDisconnect):
            self.left(task)
        finally:
            watcher.cancel()

    # ---------------------------------------------------------------- outcomes

    def failure(self, task: asyncio.Task[RunResult[Any]]) -> RequestRejected | None:
        """The error response of a run that raised, or None if it returned."""
        retry = {"retry-after": str(self.endpoint.retry_after)}
        if task.cancelled():
            return RequestRejected(
                503,
                f"the server is shutting down; run {self.run_id} was interrupted and can be "
                "resumed",
                type="server_error",
                code="shutting_down",
                headers=retry,
            )
        exc = task.exception()
        if exc is None:
            return None
        if isinstance(exc, SessionBusyError):
            return RequestRejected(
                409,
                "another request of this session is still running: send this one when it "
                "has finished",
                code="session_busy",
                headers=retry,
            )
        if isinstance(exc, SessionNotFoundError):
            return RequestRejected(404, "the session no longer exists", code="session_not_found")
        if isinstance(exc, ToolCallInDoubtError):
            _log.warning("run %s is in doubt: %s", self.run_id, exc)
            return RequestRejected(
                409,
                IN_DOUBT_TEXT.format(tool=exc.tool, run_id=self.run_id),
                code="run_in_doubt",
                headers={"x-should-retry": "false"},  # a retry would start another run
            )
        if isinstance(exc, RunInterrupted):
            _log.error("run %s interrupted: %s", self.run_id, exc)
            return RequestRejected(
                503,
                f"the journal store is unavailable; run {self.run_id} stopped and can be resumed",
                type="server_error",
                code="store_unavailable",
                headers=retry,
            )
        _log.error("run %s failed", self.run_id, exc_info=exc)
        return RequestRejected(
            500,
            FAILED_TEXT.format(run_id=self.run_id),
            type="server_error",
            code="run_failed",
            headers={"x-should-retry": "false"},  # a retry would start another run
        )

    def answer(self, result: RunResult[Any]) -> tuple[str, str]:
        """(content, finish_reason) of a run that returned."""
        if result.outcome == "final":
            value = result.output
            if not isinstance(value, str):
                value = json.dumps(self.agent.run_spec().output.to_json(value), ensure_ascii=False)
            return value, "stop"
        if result.outcome == "paused":
            tools = ", ".join(sorted({p.tool for p in result.pending})) or "a call"
            return PAUSED_TEXT.format(tools=tools, run_id=self.run_id), "stop"
        reason = result.stop.reason if result.stop is not None else result.outcome
        finish = "length" if reason == "tokens" else "stop"
        return STOPPED_TEXT.format(reason=reason, run_id=self.run_id), finish

    # ---------------------------------------------------------------- whole answers

    async def whole(self, task: asyncio.Task[RunResult[Any]], send: Send) -> None:
        while (item := await self.queue.get()) is not _END:
            if item is _GONE:
                self.left(task)
                return
        problem = self.failure(task)
        if problem is not None:
            problem.headers.update(self.headers_out())
            response: Response = _error(problem)
        else:
            result = task.result()
            content, finish = self.answer(result)
            body = completion(
                self.completion_id,
                self.created,
                self.name,
                content,
                finish,
                result.usage,
                self.extra(result),
            )
            response = JSONResponse(body, headers=self.headers_out())
        await response({"type": "http"}, _no_receive, send)

    # ---------------------------------------------------------------- streams

    async def stream(self, task: asyncio.Task[RunResult[Any]], send: Send) -> None:
        opened = False
        texts: dict[int, str] = {}  # text sent per step
        step = 0
        sent_any = False

        async def emit(data: dict[str, Any]) -> None:
            await send({"type": "http.response.body", "body": sse(data), "more_body": True})

        def piece(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return chunk(
                self.completion_id,
                self.created,
                self.name,
                delta,
                finish,
                include_usage=self.chat.include_usage,
            )

        async def open_stream() -> None:
            nonlocal opened
            opened = True
            headers = [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-store"),
                (b"x-accel-buffering", b"no"),
                *((k.encode(), v.encode()) for k, v in self.headers_out().items()),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await emit(piece({"role": "assistant", "content": ""}))

        async def text(value: str) -> None:
            nonlocal sent_any
            if sent_any and step not in texts:
                value = "\n\n" + value  # a new step's text: keep it apart from the last
            texts[step] = texts.get(step, "") + value
            sent_any = True
            await emit(piece({"content": value}))

        while True:
            item = await self.queue.get()
            if item is _GONE:
                self.left(task)
                return
            if item is _END:
                break
            if not opened:
                if isinstance(item, RunStarted):
                    continue  # not on disk yet: a busy session is refused at the commit
                await open_stream()
            if isinstance(item, ModelRequested):
                step = item.step
            elif isinstance(item, TextDelta) and item.text:
                await text(item.text)
            elif self.chat.include_steps and (note := step_note(item)) is not None:
                await emit(piece({}) | {"pilothouse": {"run_id": self.run_id, "event": note}})
        problem = self.failure(task)
        if problem is not None:
            if not opened:
                problem.headers.update(self.headers_out())
                await _error(problem)({"type": "http"}, _no_receive, send)
                return
            # mid-stream: OpenAI's clients raise an APIError on an event with "error"
            await emit(error_json(problem))
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        result = task.result()
        if not opened:
            await open_stream()
        content, finish = self.answer(result)
        if result.outcome != "final" or not texts.get(result.steps):
            # the answer was not streamed as it was written (see the module docs)
            await text(content)
        last = piece({}, finish)
        last["pilothouse"] = self.extra(result)
        await emit(last)
        if self.chat.include_usage:
            await emit(
                chunk(
                    self.completion_id,
                    self.created,
                    self.name,
                    None,
                    usage=result.usage,
                    include_usage=True,
                )
            )
        await send({"type": "http.response.body", "body": DONE, "more_body": False})


def cors_middleware(origins: Sequence[str]) -> list[Middleware]:
    """CORS for the browser pages of `origins` (exact ``scheme://host[:port]``, or
    ``*`` for any): they may send the endpoint's headers (``Authorization``, the session
    header) and read the run and session headers back. No cookies are involved (keys are
    bearer tokens), so credentials mode stays off. A page that holds a key shows it to
    its users: give browsers keys of their own owners, never a server's."""
    if not origins:
        return []
    for origin in origins:
        parts = urlsplit(origin)
        exact = (
            parts.scheme in ("http", "https")
            and parts.netloc
            and origin == (f"{parts.scheme}://{parts.netloc}")
        )
        if origin != "*" and not exact:
            raise ConfigurationError(
                f"a CORS origin is scheme://host[:port] with no path, or '*': {origin[:200]!r}"
            )
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=list(origins),
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type", SESSION_HEADER],
            expose_headers=["x-pilothouse-run", SESSION_HEADER, "retry-after"],
            max_age=600,
        )
    ]


async def _no_receive() -> Any:  # a finished request's response reads nothing more
    return {"type": "http.disconnect"}


def create_app(
    agents: Any,
    *,
    api_keys: ApiKeys | Mapping[str, str] | None = None,
    on_disconnect: OnDisconnect = "cancel",
    max_body_bytes: int = MAX_BODY_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
    retry_after: int = RETRY_AFTER_SECONDS,
    grace_seconds: float = GRACE_SECONDS,
    session_from_user: bool = True,
    approvers: ApiKeys | Mapping[str, str] | None = None,
    webhooks: Sequence[Webhook] = (),
    cors_origins: Sequence[str] = (),
    rate_limit: RateLimit | None = None,
    watch_seconds: float = 30.0,
    max_runs_per_client: int | None = None,
) -> Starlette:
    """The Starlette app serving `agents` (an Agent, a list, a dict name -> Agent, or a
    function returning one: `served_agents`) behind OpenAI's chat-completions API.

    `api_keys` (an `ApiKeys`, or a dict key -> owner) turns on keyed mode (see
    `pilothouse.serving.access`); without it the endpoint is open. `on_disconnect`:
    ``cancel`` or ``finish`` a run whose client went away. `max_body_bytes` and
    `max_depth` bound a request body (413, 400). `retry_after`: the seconds a busy
    session's 409 asks the client to wait. `grace_seconds`: on shutdown, how long runs
    in flight may take before they are cancelled (``interrupted``, resumable).
    `session_from_user`: whether the request's ``user`` field names a session when no
    ``X-Pilothouse-Session`` header does (turn it off for clients that send ``user`` to
    identify their end users: one user's conversations would become one session).
    `approvers` (an `ApiKeys`, or a dict key -> approver name; keys of their own, never
    a client's) turns on the approval routes, ``GET /v1/runs/{id}`` and ``POST
    /v1/runs/{id}/approvals`` (`pilothouse.serving.approvals`).
    `webhooks`: where to announce each served run that pauses, signed
    (`pilothouse.serving.notify`), looking for runs paused outside the endpoint every
    `watch_seconds` (0: only at start). `cors_origins`: the web origins
    (``https://app.example``) whose pages may call the endpoint from a browser
    (`cors_middleware`); none by default. `rate_limit`: chat requests (each one a
    run) per client and minute, a token bucket per key owner, or per peer address on an
    open endpoint (`pilothouse.serving.ratelimit`); beyond it 429 with ``Retry-After``,
    and no run starts. `max_runs_per_client`: how many runs a client (the same key owner,
    or address) may have going at once; one more is 429 ``too_many_runs`` with
    ``Retry-After`` and does not start (a rate limit counts requests started, so slow
    runs could still pile up under it).
    """
    if on_disconnect not in ("cancel", "finish"):
        raise ValueError("on_disconnect is 'cancel' or 'finish'")
    if max_body_bytes < 1 or max_depth < 4 or retry_after < 0 or grace_seconds < 0:
        raise ValueError("max_body_bytes >= 1, max_depth >= 4, retry_after and grace >= 0")
    if watch_seconds < 0:
        raise ValueError("watch_seconds >= 0 (0: look for waiting runs only at start)")
    if max_runs_per_client is not None and max_runs_per_client < 1:
        raise ValueError("max_runs_per_client >= 1 (None: no limit)")
    keys = ApiKeys(api_keys) if isinstance(api_keys, Mapping) else api_keys
    deciders = ApiKeys(approvers) if isinstance(approvers, Mapping) else approvers
    if deciders is not None:
        check_disjoint(keys, deciders)
    served = served_agents(agents)
    for agent in served.values():  # a model or a store that cannot work fails here, at start
        agent.run_spec()
        agent.store  # noqa: B018 (opens the store)
    endpoint = _Endpoint(
        served,
        keys,
        on_disconnect,
        max_body_bytes,
        max_depth,
        retry_after,
        grace_seconds,
        Notifier(webhooks, served) if webhooks else None,
    )

    async def models(request: Request) -> Response:
        endpoint.owner(request)
        data = [model_json(name) for name in endpoint.agents]
        return JSONResponse({"object": "list", "data": data})

    async def model(request: Request) -> Response:
        endpoint.owner(request)
        name = request.path_params["model"]
        endpoint.agent(name)
        return JSONResponse(model_json(name))

    limiter = RateLimiter(rate_limit) if rate_limit is not None else None
    going: dict[str, int] = {}  # client -> runs started and not ended (max_runs_per_client)

    def client_of(request: Request, owner: str | None) -> str:
        """Whom the limits count: the key's owner, or the peer address (never a header)."""
        return owner if owner is not None else f"address:{getattr(request.client, 'host', '')}"

    def within_rate(client: str) -> None:
        """429 for a client over its rate (the official client waits and retries)."""
        if limiter is None:
            return
        wait = limiter.take(client)
        if wait > 0:
            raise RequestRejected(
                429,
                f"too many requests: send this one again in {seconds_header(wait)} s",
                type="requests",
                code="rate_limit_exceeded",
                headers={"retry-after": seconds_header(wait)},
            )

    def take_run_slot(client: str) -> Callable[[], None]:
        """Count a run of `client` as going (429 beyond `max_runs_per_client`); the
        callable gives the slot back when the run ends."""
        if max_runs_per_client is None:
            return lambda: None
        if going.get(client, 0) >= max_runs_per_client:
            raise RequestRejected(
                429,
                f"too many runs at once: at most {max_runs_per_client} per client; send this "
                "one when one of them has ended",
                type="requests",
                code="too_many_runs",
                headers={"retry-after": str(endpoint.retry_after)},
            )
        going[client] = going.get(client, 0) + 1

        def give_back() -> None:  # the run task's done callback: called once
            left = going.pop(client) - 1
            if left:
                going[client] = left

        return give_back

    async def chat_completions(request: Request) -> Response:
        owner = endpoint.owner(request)
        endpoint.refuse_if_draining()
        chat = parse_chat_request(await endpoint.body(request))
        agent = endpoint.agent(chat.model)
        client = client_of(request, owner)
        within_rate(client)
        named = request.headers.get(SESSION_HEADER) or (chat.user if session_from_user else None)
        session = (
            None
            if named is None
            else open_session(agent.store, owner, named, keyed=endpoint.keys is not None)
        )
        turn = _Turn(endpoint, chat.model, agent, chat, owner, session)
        turn.give_back = take_run_slot(client)  # the last check: nothing can fail after it
        return turn

    async def run_state(request: Request) -> Response:
        authorization = request.headers.get("authorization")
        assert deciders is not None
        approver = deciders.owner_of(authorization)
        owner = endpoint.owner(request) if approver is None else None
        run_id = request.path_params["run_id"]
        run = find_run(endpoint.agents, run_id)
        if run is None or (approver is None and (owner is None or run.acts_for != owner)):
            raise RequestRejected(404, f"no run {run_id[:80]!r}", code="run_not_found")
        return JSONResponse(run_view(run, approver=approver is not None))

    def approver_of(request: Request) -> str:
        """The approver the request's key names; 403 for a client's key, 401 otherwise."""
        assert deciders is not None
        authorization = request.headers.get("authorization")
        approver = deciders.owner_of(authorization)
        if approver is not None:
            return approver
        if keys is not None and keys.owner_of(authorization) is not None:
            raise RequestRejected(403, "this needs an approver's key", code="not_an_approver")
        raise RequestRejected(
            401, "send an approver's key: 'Authorization: Bearer <key>'", code="invalid_api_key"
        )

    async def run_queue(request: Request) -> Response:
        approver_of(request)
        status = request.query_params.get("status", "paused")
        if status not in QUEUES:
            raise RequestRejected(400, f"status is one of {', '.join(QUEUES)}", param="status")
        raw = request.query_params.get("limit", "50")
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 3 and 1 <= int(raw) <= MAX_LISTED):
            raise RequestRejected(400, f"limit is 1 to {MAX_LISTED}", param="limit")
        runs = waiting_runs(endpoint.agents, int(raw), status)
        data = [run_view(r, approver=True) for r in runs]
        return JSONResponse({"object": "list", "data": data})

    async def run_decisions(request: Request, *, settling: bool) -> Response:
        """Approvals (`settling` False) or settlements of a run, then the run goes on."""
        approver = approver_of(request)
        endpoint.refuse_if_draining()
        body = await endpoint.body(request)
        run_id = request.path_params["run_id"]
        run = find_run(endpoint.agents, run_id)
        if run is None:
            raise RequestRejected(404, f"no run {run_id[:80]!r}", code="run_not_found")
        check_may_decide(run, approver, settling=settling)
        decisions = parse_settlements(body, run) if settling else parse_decisions(body, run)
        task = asyncio.ensure_future(decide(run, decisions, approver, settling=settling))
        endpoint.track(task)
        keys = list(decisions)
        task.add_done_callback(
            lambda done: endpoint.announce_decided(done, run_id, (approver, keys))
        )
        outcome = await asyncio.shield(task)  # a client that leaves does not stop the run
        after = find_run(endpoint.agents, run_id)
        assert after is not None
        return JSONResponse(run_view(after, approver=True) | {"outcome": outcome})

    async def run_approvals(request: Request) -> Response:
        return await run_decisions(request, settling=False)

    async def run_settlements(request: Request) -> Response:
        return await run_decisions(request, settling=True)

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "draining": endpoint.draining})

    async def rejected(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestRejected)
        return _error(exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return _error(RequestRejected(exc.status_code, str(exc.detail), type=kind))

    async def gone(request: Request, exc: Exception) -> Response:
        # the client left while its request was being read: nothing ran, no one to answer
        _log.info(
            "%s %s: the client disconnected before its request was read",
            request.method,
            request.url.path,
        )
        return Response(status_code=400)

    async def server_error(request: Request, exc: Exception) -> Response:
        _log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _error(
            RequestRejected(
                500,
                "internal server error; the details are in the server's log",
                type="server_error",
            )
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if endpoint.notifier is not None:  # a stop between a pause and its event loses none
            endpoint.notifier.announce_waiting()
            if watch_seconds > 0:
                endpoint.notifier.watch(watch_seconds)
        yield
        await endpoint.drain()  # (uvicorn servers of `serving.live` drained already)
        if endpoint.notifier is not None:
            await endpoint.notifier.close(endpoint.grace_seconds)

    app = Starlette(
        routes=[
            Route("/v1/models", models),
            Route("/v1/models/{model:path}", model),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/healthz", health),
            *(
                [
                    Route("/v1/runs", run_queue),
                    Route("/v1/runs/{run_id}", run_state),
                    Route("/v1/runs/{run_id}/approvals", run_approvals, methods=["POST"]),
                    Route("/v1/runs/{run_id}/settlements", run_settlements, methods=["POST"]),
                ]
                if deciders is not None
                else []
            ),
        ],
        exception_handlers={
            RequestRejected: rejected,
            HTTPException: http_error,
            ClientDisconnect: gone,
            Exception: server_error,
        },
        lifespan=lifespan,
        middleware=cors_middleware(cors_origins),
    )
    app.state.endpoint = endpoint
    return app
