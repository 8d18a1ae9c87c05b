"""The dispatcher: moves each sink's due deliveries to the sink and records the outcomes.

One dispatcher is active per database: it holds the `dispatcher` lease, renewed while it runs,
so any serve process may run one and a process that dies hands over within the lease time. It
wakes at once when this process commits a write, and polls otherwise (another process's writes).
Per resource the store hands out only the oldest unfinished delivery, so events of one resource
reach a sink in commit order while many resources are in flight at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from scimhost.delivery.envelope import envelope
from scimhost.delivery.schedule import RetrySchedule
from scimhost.delivery.sink import EventSink, Outcome
from scimhost.storage.backend import ClaimedDelivery, FinishedDelivery, StorageBackend, StorageError

log = logging.getLogger("scimhost.delivery")
LEASE = "dispatcher"


@dataclass(frozen=True)
class DispatchSettings:
    """How the dispatcher paces itself."""

    poll_seconds: float = 0.5
    lease_seconds: float = 15.0
    # How long a claimed delivery stays claimed; a dispatcher that died releases it after this.
    inflight_seconds: float = 120.0


def utcnow() -> datetime:
    return datetime.now(UTC)


class Dispatcher:
    """Delivers the event log to the configured sinks."""

    def __init__(
        self,
        storage: StorageBackend,
        sinks: Mapping[str, tuple[EventSink, int]],
        *,
        owner: str,
        settings: DispatchSettings = DispatchSettings(),
        schedule: RetrySchedule = RetrySchedule(),
        clock: Callable[[], datetime] = utcnow,
        after_send: Callable[[], None] = lambda: None,
        outcome: Callable[[str, str], None] = lambda sink, outcome: None,
    ) -> None:
        """`sinks`: sink name -> (the sink, how many of its deliveries may be in flight at once)."""
        self.storage = storage
        self.sinks = dict(sinks)
        self.owner = owner
        self.settings = settings
        self.schedule = schedule
        self.clock = clock
        # Called between a sink's answer and recording it (a test-only fault point).
        self.after_send = after_send
        # Told of each attempt's result: (sink, "done" | "retry" | "dead" | "paused").
        self.outcome = outcome
        self._wake = asyncio.Event()
        self._holding = False
        self._lease_checked: datetime | None = None

    def wake(self) -> None:
        """A write committed in this process: look for work now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Hold the lease and deliver until cancelled."""
        try:
            while True:
                busy = False
                try:
                    await self._check_lease()
                    if self._holding:
                        busy = await self.run_once() > 0
                except StorageError as exc:
                    log.warning("dispatcher: the store failed: %s", exc)
                if not busy:
                    self._wake.clear()
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.settings.poll_seconds)
        finally:
            if self._holding:
                with contextlib.suppress(StorageError):
                    await self.storage.release_lease(LEASE, self.owner)

    async def _check_lease(self) -> None:
        """Take or renew the lease, a third of its time after the last try (not on every pass:
        each try is a write to the store)."""
        now = self.clock()
        renew_every = self.settings.lease_seconds / 3
        if self._lease_checked is not None and (now - self._lease_checked).total_seconds() < renew_every:
            return
        was_holding = self._holding
        self._holding = await self.storage.take_lease(LEASE, self.owner, now=now, seconds=self.settings.lease_seconds)
        self._lease_checked = now
        if self._holding and not was_holding:
            await self._reclaim()

    async def _reclaim(self) -> None:
        """Just took the lease: what is in flight was left by a dispatcher that died (one runs
        per database), so it is due again now rather than when its claim would lapse."""
        for name in self.sinks:
            count = await self.storage.reclaim_inflight(name, now=self.clock())
            if count:
                log.info("sink %s: %d deliveries left in flight by a stopped dispatcher are due again", name, count)

    async def run_once(self) -> int:
        """One pass over every sink: claim its due heads and deliver them; how many were tried."""
        paused = await self.storage.paused_sinks()
        passes = [
            self._deliver_due(name, sink, limit) for name, (sink, limit) in self.sinks.items() if name not in paused
        ]
        return sum(await asyncio.gather(*passes))

    async def _deliver_due(self, name: str, sink: EventSink, limit: int) -> int:
        claimed = await self.storage.claim_deliveries(
            name, now=self.clock(), limit=limit, lease_seconds=self.settings.inflight_seconds
        )
        if not claimed:
            return 0
        try:
            outcomes = await sink.deliver([envelope(c.event) for c in claimed])
            if len(outcomes) != len(claimed):
                raise RuntimeError(f"it answered {len(outcomes)} outcomes for {len(claimed)} events")
        except Exception as exc:  # a broken sink must not stop the others, nor lose anything
            log.exception("sink %s failed to deliver %d events", name, len(claimed))
            outcomes = [Outcome.retry(f"the sink failed: {type(exc).__name__}: {exc}")] * len(claimed)
        self.after_send()
        now = self.clock()
        recorded = [
            self._finished(name, delivery, outcome, now) for delivery, outcome in zip(claimed, outcomes, strict=True)
        ]
        pause = next((outcome for outcome in outcomes if outcome.kind == "pause"), None)
        if pause is not None:
            log.warning("sink %s paused: %s", name, pause.detail)
            await self.storage.set_sink_paused(name, True, reason=pause.detail, now=now)
        # One call (one transaction in the built-in store) records the whole batch.
        await self.storage.finish_deliveries(name, [finished for finished, _ in recorded], now=now)
        for _, label in recorded:
            self.outcome(name, label)
        return len(claimed)

    def _finished(
        self, sink: str, delivery: ClaimedDelivery, outcome: Outcome, now: datetime
    ) -> tuple[FinishedDelivery, str]:
        """What to record of one attempt, and its outcome's label (done, retry, dead, paused)."""
        seq = delivery.event.seq
        if outcome.kind == "delivered":
            return FinishedDelivery(seq, "done", status=outcome.status), "done"
        if outcome.kind == "pause":
            # The event stays pending, due at once when an operator resumes the sink.
            return FinishedDelivery(
                seq, "pending", next_attempt=now, status=outcome.status, error=outcome.detail
            ), "paused"
        retry_at = None
        if outcome.kind == "retry":
            retry_at = self.schedule.next_attempt(delivery.attempts, now, retry_after=outcome.after)
        if retry_at is not None:
            finished = FinishedDelivery(
                seq, "pending", next_attempt=retry_at, status=outcome.status, error=outcome.detail
            )
            return finished, "retry"
        why = (
            outcome.detail
            if outcome.kind == "permanent"
            else f"gave up after {delivery.attempts} attempts: {outcome.detail}"
        )
        log.warning(
            "sink %s: event %s (%s %s) is dead: %s",
            sink,
            delivery.event.id,
            delivery.event.resource_type,
            delivery.event.resource_id,
            why,
        )
        return FinishedDelivery(seq, "dead", status=outcome.status, error=why), "dead"
