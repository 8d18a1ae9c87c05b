"""The dispatcher: moves each sink's due deliveries to the sink and records the outcomes.

One dispatcher is active per database: it holds the `dispatcher` lease, renewed on its own
timer while it runs, so any serve process may run one and a process that dies hands over within
the lease time. Each sink runs on its own (`SinkRunner`: its own task, its own claims), and
within a sink every delivery is its own attempt: a slot freed by one resource is refilled at
once from the due heads, so a slow receiver or a slow resource holds back only that resource's
later events. Per resource the store hands out only the oldest unfinished delivery, so events of
one resource reach a sink in commit order while many resources are in flight at once.
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
    # How long a claimed delivery stays claimed at least; a dispatcher that died releases it
    # after this. A sink whose attempts may take longer gets twice its longest attempt.
    inflight_seconds: float = 120.0
    # The longest attempt of a sink that does not say (EventSink.attempt_seconds).
    attempt_seconds: float = 60.0
    # Added to a sink's own timeout before the dispatcher gives up on an attempt itself.
    attempt_grace_seconds: float = 5.0


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
        self.owner = owner
        self.settings = settings
        self.schedule = schedule
        self.clock = clock
        # Called between a sink's answer and recording it (a test-only fault point).
        self.after_send = after_send
        # Told of each attempt's result: (sink, "done" | "retry" | "dead" | "paused").
        self.outcome = outcome
        # A polled sink's receiver claims its deliveries itself.
        self.runners = {
            name: SinkRunner(self, name, sink, limit) for name, (sink, limit) in sinks.items() if not sink.polled
        }
        self._holding = False

    def wake(self) -> None:
        """A write committed in this process: look for work now rather than at the next poll."""
        for runner in self.runners.values():
            runner.changed.set()

    async def run(self) -> None:
        """Hold the lease and deliver until cancelled: the lease on this task's timer, each sink
        on a task of its own while the lease is held."""
        tasks: list[asyncio.Task[None]] = []
        loop = asyncio.get_running_loop()
        held_until = 0.0
        try:
            while True:
                try:
                    holding = await self.storage.take_lease(
                        LEASE, self.owner, now=self.clock(), seconds=self.settings.lease_seconds
                    )
                except StorageError as exc:
                    log.warning("dispatcher: the store failed to renew the lease: %s", exc)
                    # Still ours until the last renewal runs out.
                    holding = bool(tasks) and loop.time() < held_until
                else:
                    if holding:
                        held_until = loop.time() + self.settings.lease_seconds
                if holding and not tasks:
                    await self._reclaim()
                    tasks = [
                        asyncio.create_task(runner.run(), name=f"scimhost-sink-{name}")
                        for name, runner in self.runners.items()
                    ]
                elif not holding and tasks:
                    log.warning("dispatcher %s: lost the lease; delivery stops here", self.owner)
                    await _cancel(tasks)
                    tasks = []
                self._holding = holding
                await asyncio.sleep(self.settings.lease_seconds / 3)
        finally:
            await _cancel(tasks)
            if self._holding:
                with contextlib.suppress(StorageError):
                    await self.storage.release_lease(LEASE, self.owner)

    async def _reclaim(self) -> None:
        """Just took the lease: what is in flight was left by a dispatcher that died (one runs
        per database), so it is due again now rather than when its claim would lapse."""
        for name in self.runners:
            count = await self.storage.reclaim_inflight(name, now=self.clock())
            if count:
                log.info("sink %s: %d deliveries left in flight by a stopped dispatcher are due again", name, count)

    async def run_once(self) -> int:
        """One pass over every sink, all attempts awaited (for tests and one-shot commands):
        claim its due heads, deliver and record them; how many were tried."""
        paused = await self.storage.paused_sinks()
        passes = [runner.pass_once() for name, runner in self.runners.items() if name not in paused]
        return sum(await asyncio.gather(*passes))


class SinkRunner:
    """One sink's deliveries: up to `limit` attempts in flight, each refilled when it ends."""

    def __init__(self, dispatcher: Dispatcher, name: str, sink: EventSink, limit: int) -> None:
        self.dispatcher = dispatcher
        self.name = name
        self.sink = sink
        self.limit = limit
        settings = dispatcher.settings
        own = sink.attempt_seconds()
        self.attempt_limit = (own if own is not None else settings.attempt_seconds) + settings.attempt_grace_seconds
        # Longer than any attempt can last, so a delivery is never claimed again while its
        # first attempt still runs.
        self.inflight_seconds = max(settings.inflight_seconds, 2 * self.attempt_limit)
        self.batch = max(1, sink.batch_size())
        # Deliveries by event seq, until their outcome is recorded: each with its attempt (one
        # task may carry a batch) and its place in that attempt's outcomes.
        self.running: dict[int, tuple[ClaimedDelivery, asyncio.Task[list[Outcome]], int]] = {}
        # Set when an attempt ends or a write commits: look again.
        self.changed = asyncio.Event()
        self._paused_now, self._paused_checked = False, float("-inf")

    async def run(self) -> None:
        """Deliver until cancelled; what has ended is recorded on the way out."""
        try:
            while True:
                self.changed.clear()
                try:
                    if await self._paused():
                        await self._record()
                    else:
                        await self._claim()  # recording what ended, in the same call
                except StorageError as exc:
                    log.warning("sink %s: the store failed: %s", self.name, exc)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), self.dispatcher.settings.poll_seconds)
        finally:
            attempts = list({id(task): task for _, task, _ in self.running.values() if not task.done()}.values())
            await _cancel(attempts)
            with contextlib.suppress(StorageError):
                await self._record()

    async def _paused(self) -> bool:
        """Whether an operator (or a pause outcome) paused the sink, read from the store at most
        once per poll interval: each round of attempts would otherwise read it again."""
        loop_time = asyncio.get_running_loop().time()
        if loop_time >= self._paused_checked + self.dispatcher.settings.poll_seconds:
            self._paused_checked = loop_time
            self._paused_now = self.name in await self.dispatcher.storage.paused_sinks()
        return self._paused_now

    async def pass_once(self) -> int:
        """Claim, await every attempt, record; how many attempts were started."""
        started = await self._claim()
        if self.running:
            await asyncio.wait({task for _, task, _ in self.running.values()})
        await self._record()
        return started

    async def _claim(self) -> int:
        """Record the attempts that ended and claim deliveries for the free slots, in one call."""
        dispatcher = self.dispatcher
        ended, finished = await self._ended()
        if ended and any(outcome.kind == "pause" for _, _, outcome in ended):
            await self._record()  # paused: record only, and claim nothing
            return 0
        ended_attempts = {id(self.running[seq][1]) for seq, _, _ in ended}
        free = self.limit - len({id(task) for _, task, _ in self.running.values()}) + len(ended_attempts)
        if free <= 0:
            return 0
        claimed = await dispatcher.storage.finish_and_claim(
            self.name,
            [record for record, _ in finished],
            now=dispatcher.clock(),
            limit=free * self.batch,
            lease_seconds=self.inflight_seconds,
        )
        self._settled(ended, finished)
        # Claimed again while its attempt runs (a clock jumped): never sent twice.
        fresh = [delivery for delivery in claimed if delivery.event.seq not in self.running]
        for start in range(0, len(fresh), self.batch):
            batch = fresh[start : start + self.batch]
            task = asyncio.create_task(self._attempt(batch), name=f"scimhost-sink-{self.name}-{batch[0].event.seq}")
            task.add_done_callback(lambda _: self.changed.set())
            for place, delivery in enumerate(batch):
                self.running[delivery.event.seq] = (delivery, task, place)
        return len(fresh)

    async def _attempt(self, deliveries: list[ClaimedDelivery]) -> list[Outcome]:
        """Send events (one, or a batch for a sink that takes them); an outcome each (a sink
        that raises, answers wrongly or takes longer than it may has its events retried: a broken
        sink must not stop the others, nor lose anything)."""
        try:
            async with asyncio.timeout(self.attempt_limit):
                outcomes = await self.sink.deliver([envelope(delivery.event) for delivery in deliveries])
            if len(outcomes) != len(deliveries):
                raise RuntimeError(f"it answered {len(outcomes)} outcomes for {len(deliveries)} events")
        except TimeoutError:
            outcomes = [Outcome.retry(f"the sink gave no outcome within {self.attempt_limit:g}s")] * len(deliveries)
        except Exception as exc:
            log.exception("sink %s failed to deliver event %s", self.name, deliveries[0].event.id)
            outcomes = [Outcome.retry(f"the sink failed: {type(exc).__name__}: {exc}")] * len(deliveries)
        self.dispatcher.after_send()
        return outcomes

    async def _ended(self) -> tuple[list[tuple[int, ClaimedDelivery, Outcome]], list[tuple[FinishedDelivery, str]]]:
        """The attempts that ended, and what to record of each with its label."""
        ended = [
            (seq, delivery, task.result()[place])
            for seq, (delivery, task, place) in self.running.items()
            if task.done() and not task.cancelled()
        ]
        dispatcher = self.dispatcher
        now = dispatcher.clock()
        return ended, [
            _finished(self.name, delivery, outcome, now, dispatcher.schedule) for _, delivery, outcome in ended
        ]

    async def _record(self) -> None:
        """Record every ended attempt's outcome in one call (one transaction in the built-in
        store), then free their slots."""
        ended, recorded = await self._ended()
        if not ended:
            return
        dispatcher = self.dispatcher
        now = dispatcher.clock()
        pause = next((outcome for _, _, outcome in ended if outcome.kind == "pause"), None)
        if pause is not None:
            log.warning("sink %s paused: %s", self.name, pause.detail)
            await dispatcher.storage.set_sink_paused(self.name, True, reason=pause.detail, now=now)
            self._paused_now, self._paused_checked = True, asyncio.get_running_loop().time()
        await dispatcher.storage.finish_deliveries(self.name, [finished for finished, _ in recorded], now=now)
        self._settled(ended, recorded)

    def _settled(
        self, ended: list[tuple[int, ClaimedDelivery, Outcome]], recorded: list[tuple[FinishedDelivery, str]]
    ) -> None:
        """Free the slots of attempts whose outcomes are recorded."""
        for seq, _, _ in ended:
            del self.running[seq]
        for _, label in recorded:
            self.dispatcher.outcome(self.name, label)


def _finished(
    sink: str, delivery: ClaimedDelivery, outcome: Outcome, now: datetime, schedule: RetrySchedule
) -> tuple[FinishedDelivery, str]:
    """What to record of one attempt, and its outcome's label (done, retry, dead, paused)."""
    seq = delivery.event.seq
    if outcome.kind == "delivered":
        return FinishedDelivery(seq, "done", status=outcome.status), "done"
    if outcome.kind == "pause":
        # The event stays pending, due at once when an operator resumes the sink.
        return FinishedDelivery(seq, "pending", next_attempt=now, status=outcome.status, error=outcome.detail), "paused"
    retry_at = None
    if outcome.kind == "retry":
        retry_at = schedule.next_attempt(delivery.attempts, now, retry_after=outcome.after)
    if retry_at is not None:
        return FinishedDelivery(
            seq, "pending", next_attempt=retry_at, status=outcome.status, error=outcome.detail
        ), "retry"
    why = (
        outcome.detail
        if outcome.kind == "permanent"
        else f"gave up after {delivery.attempts} attempts: {outcome.detail}"
    )
    event = delivery.event
    log.warning("sink %s: event %s (%s %s) is dead: %s", sink, event.id, event.resource_type, event.resource_id, why)
    return FinishedDelivery(seq, "dead", status=outcome.status, error=why), "dead"


async def _cancel(tasks: list[asyncio.Task]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
