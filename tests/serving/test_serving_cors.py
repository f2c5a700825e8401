"""CORS: a web page of an allowed origin calls the endpoint from a real browser; a page
of any other origin cannot read an answer.

Two loopback servers are two origins (another port is another origin): a page server
and the endpoint. Debian's Chromium (Playwright) loads the page and runs `fetch` with
a bearer key and JSON, so the browser sends a real preflight. The preflight rules are
also checked with plain HTTP (what a browser would be told)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from serving_world import World

from chromium import launched_chromium
from pilothouse.exceptions import ConfigurationError
from pilothouse.serving import BackgroundServer, create_app

KEY = "alice-client-key-0001"
CALL = """async ([url, key]) => {
  try {
    const response = await fetch(url + "/v1/chat/completions", {
      method: "POST",
      headers: {"authorization": "Bearer " + key, "content-type": "application/json",
                "x-pilothouse-session": "web"},
      body: JSON.stringify({model: "echo", messages: [{role: "user", content: "hi"}]}),
    });
    const body = await response.json();
    return {status: response.status, run: response.headers.get("x-pilothouse-run"),
            content: body.choices[0].message.content};
  } catch (error) {
    return {error: String(error)};
  }
}"""


@pytest.fixture
def page_server() -> Iterator[BackgroundServer]:
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    async def page(request: Any) -> HTMLResponse:
        return HTMLResponse("<!doctype html><title>chat</title><p>a chat page</p>")

    with BackgroundServer(Starlette(routes=[Route("/", page)])) as server:
        yield server


def test_a_page_of_an_allowed_origin_chats_from_the_browser(
    world: World, page_server: BackgroundServer
) -> None:
    with (
        world.serve(api_keys={KEY: "alice"}, cors_origins=[page_server.url]) as allowed,
        world.serve(api_keys={KEY: "alice"}) as closed,
        launched_chromium() as chromium,
    ):
        page = chromium.new_page()
        page.goto(page_server.url + "/")
        answered = page.evaluate(CALL, [allowed.url, KEY])
        refused = page.evaluate(CALL, [closed.url, KEY])
    assert answered["status"] == 200 and answered["content"] == "echo: hi [0 earlier]"
    assert answered["run"]  # an exposed header: the page reads the run id
    assert "error" in refused and "Failed to fetch" in refused["error"]
    # the closed endpoint never ran it: the browser stopped at the preflight
    assert [r.input for r in world.store.list_runs()] == ["hi"]


def test_the_preflight_names_what_a_page_may_send(world: World) -> None:
    origin = "https://chat.example"
    with world.serve(api_keys={KEY: "alice"}, cors_origins=[origin]) as server:

        def preflight(from_origin: str) -> httpx.Response:
            return httpx.options(
                server.url + "/v1/chat/completions",
                headers={
                    "origin": from_origin,
                    "access-control-request-method": "POST",
                    "access-control-request-headers": "authorization, content-type",
                },
            )

        ok = preflight(origin)
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == origin
        assert "authorization" in ok.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in ok.headers
        other = preflight("https://evil.example")
        assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
        # a lookalike origin is another origin
        assert preflight("https://chat.example.evil.example").status_code == 400
        assert preflight("http://chat.example").status_code == 400
        plain = httpx.get(server.url + "/v1/models", headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in plain.headers  # and the key is still asked
        assert plain.status_code == 401


def test_cors_origins_are_exact_origins() -> None:
    from pilothouse import Agent

    agent = Agent(name="a", store=":memory:")
    for bad in ("https://app.example/", "https://app.example/chat", "app.example", "ftp://x"):
        with pytest.raises(ConfigurationError, match="CORS origin"):
            create_app(agent, cors_origins=[bad])
    create_app(agent, cors_origins=["*", "http://127.0.0.1:3000"])
