"""When a failed delivery is tried again, and when it is given up (dead)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

# Standard Webhooks' schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h,
# 24 h after each failure (about three days in all).
STANDARD_DELAYS = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)


@dataclass(frozen=True)
class RetrySchedule:
    """Delays after the 1st, 2nd, ... failure, each varied by up to `jitter` either way so that
    retries of many deliveries do not arrive together; past the last one the delivery is dead."""

    delays: tuple[float, ...] = STANDARD_DELAYS
    jitter: float = 0.2

    def next_attempt(
        self, attempts: int, now: datetime, *, retry_after: float | None = None, rng: random.Random | None = None
    ) -> datetime | None:
        """When to try again after `attempts` failed attempts; None: give up.

        A receiver's `Retry-After` can lengthen the wait, never shorten it."""
        if attempts > len(self.delays):
            return None
        delay = self.delays[attempts - 1] * (1 + (rng or random).uniform(-self.jitter, self.jitter))
        if retry_after is not None:
            delay = max(delay, retry_after)
        return now + timedelta(seconds=delay)
