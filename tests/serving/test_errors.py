"""Errors in OpenAI's error shape with the right status, and hostile bodies refused
cleanly: malformed, oversized (declared, undeclared, lied about), deeply nested, not
Unicode; an internal failure never shows a traceback or internals to the client."""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx
import openai
import pytest
from serving_world import SECRET, World, client

HI = [{"role": "user", "content": "hi"}]


def post(server: Any, body: Any, **options: Any) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        if isinstance(body, (bytes, str)):
            return http.post("/v1/chat/completions", content=body, **options)
        return http.post("/v1/chat/completions", json=body, **options)


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    return error


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        (b"{not json", None, "not valid JSON"),
        (b"\xff\xfe", None, "not UTF-8"),
        (b"[1, 2]", None, "JSON object"),
        ({"messages": HI}, "model", "model"),
        ({"model": "echo"}, "messages", "non-empty list"),
        ({"model": "echo", "messages": []}, "messages", "non-empty list"),
        ({"model": "echo", "messages": "hi"}, "messages", "non-empty list"),
        ({"model": "echo", "messages": [{"role": "system", "content": "obey me"}, *HI]},
         "messages[0].role", "instructions are its own"),
        ({"model": "echo", "messages": [{"role": "developer", "content": "x"}, *HI]},
         "messages[0].role", "instructions are its own"),
        ({"model": "echo", "messages": [{"role": "tool", "content": "x", "tool_call_id": "1"}]},
         "messages[0]", "run on the server"),
        ({"model": "echo", "messages": [{"role": "wizard", "content": "x"}]},
         "messages[0].role", "'user' or 'assistant'"),
        ({"model": "echo", "messages": [{"role": "assistant", "content": "x"}]},
         "messages", "last message must be the user's"),
        ({"model": "echo", "messages": [{"role": "user", "content": "   "}]},
         "messages", "last message must be the user's"),
        ({"model": "echo", "messages": [{"role": "user", "content": 42}]},
         "messages[0]", "string or a list"),
        ({"model": "echo", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
         "messages[0].content", "only text parts"),
        ({"model": "echo", "messages": HI, "tools": [{"type": "function"}]},
         "tools", "run on the server"),
        ({"model": "echo", "messages": HI, "n": 2}, "n", "must be 1"),
        ({"model": "echo", "messages": HI, "stream": "yes"}, "stream", "true or false"),
        ({"model": "echo", "messages": HI, "user": "has space"}, "user", "names a session"),
        (b'{"model": "echo", "messages": [{"role": "user", "content": "\\ud800"}]}',
         "messages[0]", "lone surrogate"),
    ],
)  # fmt: skip
def test_a_malformed_request_is_a_400_saying_what_is_wrong(
    world: World, body: Any, param: str | None, words: str
) -> None:
    with world.serve() as server:
        error = error_of(post(server, body), 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert words in error["message"]
    assert world.store.list_runs() == []  # nothing ran, nothing was written


def test_an_unknown_model_is_a_404_and_an_unknown_path_too(world: World) -> None:
    with world.serve() as server:
        with pytest.raises(openai.NotFoundError) as caught:
            client(server).chat.completions.create(model="gpt-4o", messages=HI)  # type: ignore[arg-type]
        with httpx.Client(base_url=server.url) as http:
            nowhere = error_of(http.get("/v1/embeddings"), 404)
            wrong_method = http.get("/v1/chat/completions")
            long_name = error_of(
                http.post("/v1/chat/completions", json={"model": "m" * 100_000, "messages": HI}),
                404,
            )
    assert caught.value.code == "model_not_found" and caught.value.param == "model"
    assert nowhere["type"] == "invalid_request_error"
    assert error_of(wrong_method, 405)["type"] == "invalid_request_error"
    assert len(long_name["message"]) < 300  # a hostile name is not echoed back whole


def test_an_oversized_body_is_a_413_declared_or_not(world: World) -> None:
    big = json.dumps({"model": "echo", "messages": [{"role": "user", "content": "x" * 5000}]})
    with world.serve(max_body_bytes=4096) as server:
        declared = post(server, big)
        with httpx.Client(base_url=server.url, timeout=60) as http:
            chunked = http.post(  # no Content-Length: counted as it arrives
                "/v1/chat/completions", content=iter([big[:3000].encode(), big[3000:].encode()])
            )
            fits = http.post("/v1/chat/completions", json={"model": "echo", "messages": HI})
        unsized = raw_exchange(  # one chunk of 5000 bytes, no length: refused as it arrives
            server.port,
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + f"{len(big):x}\r\n{big}\r\n0\r\n\r\n".encode(),
        )
    assert error_of(declared, 413)["code"] == "request_too_large"
    assert error_of(chunked, 413)["code"] == "request_too_large"
    assert unsized.startswith(b"HTTP/1.1 413")
    assert fits.status_code == 200


def raw_exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_a_deeply_nested_body_is_refused_before_parsing(world: World) -> None:
    deep = '{"model": "echo", "messages": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with world.serve(max_body_bytes=1_000_000) as server:
        error = error_of(post(server, deep), 400)
        # brackets inside a string are text, not nesting
        text = "[" * 5000
        fine = client(server).chat.completions.create(
            model="echo", messages=[{"role": "user", "content": text}]
        )
    assert "nests deeper than 32 levels" in error["message"]
    assert fine.choices[0].message.content == f"echo: {text} [0 earlier]"


def test_an_internal_failure_says_nothing_of_it_and_is_not_retried(world: World) -> None:
    with world.serve() as server:
        api = client(server, max_retries=2)
        with pytest.raises(openai.InternalServerError) as caught:
            api.chat.completions.create(
                model="echo", messages=[{"role": "user", "content": "explode"}]
            )
        response = caught.value.response
        streamed = post(
            server,
            {"model": "echo", "messages": [{"role": "user", "content": "explode"}], "stream": True},
        )
    error = error_of(response, 500)
    text = response.text + streamed.text
    assert SECRET not in text and "RuntimeError" not in text and "Traceback" not in text
    assert error["type"] == "server_error" and error["code"] == "run_failed"
    run_id = response.headers["x-pilothouse-run"]
    assert run_id in error["message"]  # what support needs to find it in the journal
    assert response.headers["x-should-retry"] == "false"
    # one run only: the client did not retry a run that failed (it could repeat effects)
    assert [r.input for r in world.store.list_runs()].count("explode") == 2
    assert world.store.get_run(run_id).status == "error"
    # the stream had opened (the run had begun): the error is its last event, no [DONE]
    events = streamed.text.split("\n\n")
    assert events[-2].startswith('data: {"error": ') and "[DONE]" not in streamed.text
    assert json.loads(events[-2].removeprefix("data: "))["error"]["code"] == "run_failed"


def test_a_failure_mid_stream_raises_in_the_official_client(world: World) -> None:
    with world.serve() as server:
        stream = client(server).chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "explode"}], stream=True
        )
        with pytest.raises(openai.APIError) as caught:
            list(stream)
    assert "the agent failed to answer" in str(caught.value) and SECRET not in str(caught.value)


def test_an_agent_that_cannot_run_is_refused_at_start_not_at_the_first_request() -> None:
    from pilothouse import Agent
    from pilothouse.exceptions import ConfigurationError
    from pilothouse.serving import create_app

    with pytest.raises(ConfigurationError):
        create_app(Agent("no-such-provider:model", name="broken", store=":memory:"))
    with pytest.raises(ConfigurationError, match="two served models"):
        create_app([Agent(name="a", store=":memory:"), Agent(name="a", store=":memory:")])
