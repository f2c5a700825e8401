"""Rate limits on the endpoint: a client over its rate gets 429 and starts no run.

The bucket refills at one request per 1,000 minutes, so nothing the test does depends
on how fast it runs: a client has exactly its burst. Attacks tried: more requests than
the burst, the same owner under several sessions, a forged forwarding header on an open
endpoint, and another owner's requests (they are not charged to the first)."""

from __future__ import annotations

import threading

import httpx
import openai
import pytest
from serving_world import World, client

from pilothouse.serving import BackgroundServer, RateLimit

ALICE, BOB = "alice-client-key-0001", "bob-client-key-00002"
SLOW = RateLimit(per_minute=0.001, burst=2)


def chat(server: BackgroundServer, key: str, text: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "echo", "messages": [{"role": "user", "content": text}]},
        headers={"authorization": f"Bearer {key}", **headers},
        timeout=60,
    )


def test_a_key_owner_gets_its_burst_then_429_and_no_run(world: World) -> None:
    with world.serve(api_keys={ALICE: "alice", BOB: "bob"}, rate_limit=SLOW) as server:
        first = chat(server, ALICE, "one")
        second = chat(server, ALICE, "two", **{"x-pilothouse-session": "another"})
        third = chat(server, ALICE, "three", **{"x-pilothouse-session": "a-third"})
        bobs = chat(server, BOB, "bob's")
    assert first.status_code == second.status_code == 200
    assert third.status_code == 429  # a new session is no new bucket
    error = third.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "requests"
    assert int(third.headers["retry-after"]) >= 1
    assert bobs.status_code == 200  # another owner's bucket
    assert sorted(r.input for r in world.store.list_runs()) == ["bob's", "one", "two"]


def test_an_open_endpoint_limits_per_address_whatever_the_headers_say(world: World) -> None:
    with world.serve(rate_limit=SLOW) as server:
        statuses = [
            chat(server, "unused", f"n{n}", **{"x-forwarded-for": f"10.0.0.{n}"}).status_code
            for n in range(4)
        ]
    assert statuses == [200, 200, 429, 429]
    assert len(world.store.list_runs()) == 2


def test_the_official_client_reads_the_429(world: World) -> None:
    with world.serve(api_keys={ALICE: "alice"}, rate_limit=RateLimit(0.001, 1)) as server:
        api = client(server, ALICE)  # without retries (it would wait Retry-After)
        api.chat.completions.create(model="echo", messages=[{"role": "user", "content": "a"}])
        with pytest.raises(openai.RateLimitError) as caught:
            api.chat.completions.create(model="echo", messages=[{"role": "user", "content": "b"}])
    assert caught.value.status_code == 429


def test_bad_requests_and_other_routes_are_not_charged(world: World) -> None:
    with world.serve(api_keys={ALICE: "alice"}, rate_limit=RateLimit(0.001, 1)) as server:
        keyed = {"authorization": f"Bearer {ALICE}"}
        for _ in range(3):
            assert httpx.get(f"{server.url}/v1/models", headers=keyed).status_code == 200
            bad = httpx.post(
                f"{server.url}/v1/chat/completions",
                json={"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]},
                headers={"authorization": f"Bearer {ALICE}"},
            )
            assert bad.status_code == 404
        assert chat(server, ALICE, "the one").status_code == 200


def test_a_client_has_at_most_its_runs_going_at_once(world: World) -> None:
    with world.serve(api_keys={ALICE: "alice", BOB: "bob"}, max_runs_per_client=1) as server:
        held: list[httpx.Response] = []
        first = threading.Thread(target=lambda: held.append(chat(server, ALICE, "gate")))
        first.start()
        assert world.gate.entered.wait(60)  # alice's first run is going
        second = chat(server, ALICE, "two", **{"x-pilothouse-session": "another"})
        assert second.status_code == 429, second.text  # a new session is no new slot
        error = second.json()["error"]
        assert error["code"] == "too_many_runs" and "at most 1 per client" in error["message"]
        assert int(second.headers["retry-after"]) >= 1
        assert chat(server, BOB, "bob's").status_code == 200  # another owner's slots
        world.gate.release.set()
        first.join(60)
        assert held[0].status_code == 200
        # the slot comes back when a run ends, however it ends: an answer, a pause, an error
        assert chat(server, ALICE, "pay 5").json()["pilothouse"]["outcome"] == "paused"
        assert chat(server, ALICE, "explode").status_code == 500
        assert chat(server, ALICE, "three").status_code == 200
    inputs = sorted(r.input for r in world.store.list_runs() if r.parent_run_id is None)
    assert inputs == ["bob's", "explode", "gate", "pay 5", "three"]  # "two" never started


def test_max_runs_per_client_is_at_least_one(world: World) -> None:
    with pytest.raises(ValueError, match="max_runs_per_client >= 1"):
        world.serve(max_runs_per_client=0).__enter__()
