"""Rate limits per client: token buckets, for the endpoints where anyone with access
starts agent runs (model calls that cost time or money).

Without a limit one client can queue thousands of runs. A token bucket per client
allows bursts (a customer typing fast, a batch of a few requests) and a steady rate
beyond them. Used by the OpenAI-compatible endpoint (`create_app(rate_limit=...)`,
``serve-agent --rate-limit``: per key owner, or per peer address on an open endpoint)
and by the desk's server (per peer address).

A client is what the caller names: a key's owner, or the TCP peer address Starlette
reports. ``X-Forwarded-For`` is never believed by the servers here (a client could name
a new address per request and get a new bucket each time). Behind a reverse proxy
every request comes from the proxy, so either let the proxy limit per client, use keys,
or run the desk with ``pilothouse serve --forwarded-allow-ips <proxy address>`` so that
the peer address is the client's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RateLimit", "RateLimiter", "seconds_header"]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `burst` at once, refilled at `per_minute` a minute."""

    per_minute: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_minute <= 0 or self.burst < 1:
            raise ValueError(f"a rate limit needs per_minute > 0 and burst >= 1, not {self}")


class RateLimiter:
    """Token buckets keyed by client; `take` says how long to wait (0: go ahead).

    At most `max_clients` buckets are kept; when that many exist, full buckets (clients
    that have been quiet) are dropped first, then the oldest, so memory stays bounded
    under a flood of addresses.
    """

    def __init__(
        self,
        limit: RateLimit,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)

    def _tokens(self, client: str, now: float) -> float:
        tokens, at = self._buckets.get(client, (float(self.limit.burst), now))
        refill = (now - at) * self.limit.per_minute / 60.0
        return min(float(self.limit.burst), tokens + refill)

    def take(self, client: str) -> float:
        """Spend one token of `client`'s bucket: 0.0, or the seconds until one is free."""
        now = self._clock()
        tokens = self._tokens(client, now)
        if tokens >= 1.0:
            if client not in self._buckets and len(self._buckets) >= self.max_clients:
                self._evict(now)
            self._buckets[client] = (tokens - 1.0, now)
            return 0.0
        self._buckets[client] = (tokens, now)
        return (1.0 - tokens) * 60.0 / self.limit.per_minute

    def _evict(self, now: float) -> None:
        full = [c for c in self._buckets if self._tokens(c, now) >= self.limit.burst]
        for client in full:
            del self._buckets[client]
        while len(self._buckets) >= self.max_clients:  # all busy: drop the oldest entries
            del self._buckets[next(iter(self._buckets))]


def seconds_header(seconds: float) -> str:
    """The Retry-After header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
