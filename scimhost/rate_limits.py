"""Per-source rate limits: a token bucket (requests per second, burst) and a cap on concurrent
requests, so that one source flooding the host never slows another.

Each process keeps its own buckets and takes its share of a source's limits (`share`, one over
the number of serve workers), so the limits hold for the host as a whole without a shared
counter (docs/decisions.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimits:
    """One source's limits; 0 turns a limit off."""

    rate_per_second: float
    burst: int
    max_concurrent: int

    def shared(self, share: float) -> RateLimits:
        """This process's part of the limits when `1 / share` processes serve the source."""
        return RateLimits(
            self.rate_per_second * share,
            max(1, math.ceil(self.burst * share)) if self.burst else 0,
            max(1, math.ceil(self.max_concurrent * share)) if self.max_concurrent else 0,
        )


@dataclass(frozen=True)
class Refusal:
    """Why a request was refused, and how many whole seconds until one would be admitted."""

    reason: str  # "rate" or "concurrency"
    retry_after: int


class TokenBucket:
    """`rate` tokens a second up to `capacity`; each request takes one."""

    def __init__(self, rate: float, capacity: int, now: float) -> None:
        self.rate = rate
        self.capacity = float(capacity)
        self.tokens = float(capacity)
        self.updated = now

    def take(self, now: float) -> float:
        """Take a token: 0.0 when one was free, else the seconds until one is."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class SourceLimiter:
    """Admits or refuses each source's requests by its limits (one per process)."""

    def __init__(
        self,
        limits: Mapping[str, RateLimits],
        *,
        share: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.limits = {slug: own.shared(share) for slug, own in limits.items()}
        now = clock()
        self._buckets = {
            slug: TokenBucket(own.rate_per_second, own.burst or 1, now)
            for slug, own in self.limits.items()
            if own.rate_per_second
        }
        self._running = dict.fromkeys(self.limits, 0)

    def admit(self, slug: str) -> Refusal | None:
        """Count a request of the source in, or say why not. An admitted request must be
        `release`d when it has been answered."""
        own = self.limits.get(slug)
        if own is None:
            return None
        if own.max_concurrent and self._running[slug] >= own.max_concurrent:
            return Refusal("concurrency", 1)
        bucket = self._buckets.get(slug)
        if bucket is not None:
            wait = bucket.take(self.clock())
            if wait:
                return Refusal("rate", max(1, math.ceil(wait)))
        self._running[slug] += 1
        return None

    def release(self, slug: str) -> None:
        if slug in self._running:
            self._running[slug] -= 1
