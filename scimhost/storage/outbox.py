"""The outbox role: the event log, the delivery queue with its pauses and leases, and the
intents of writes made in another resource store."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from scimhost.storage.store import Store
from scimhost.storage.values import ClaimedDelivery, FinishedDelivery, Intent, SinkStats, StoredEvent


class Outbox(Store):
    """Keeps every committed change as an event and hands it to the sinks. `purge_source`
    deletes the source's events, their deliveries and its open intents."""

    @abstractmethod
    async def list_events(
        self,
        source: str,
        *,
        resource_type: str | None = None,
        resource_id: str | None = None,
        since: datetime | None = None,
        after_seq: int | None = None,
        before_seq: int | None = None,
        newest_first: bool = False,
        limit: int = 100,
    ) -> list[StoredEvent]:
        """The source's events in sequence order (oldest first, or newest first when asked),
        narrowed as asked."""

    @abstractmethod
    async def get_event(self, source: str, event_id: str | int) -> StoredEvent | None:
        """One of the source's events, by its id (`evt_...`) or its sequence number."""

    @abstractmethod
    async def prune_events(self, source: str, *, before: datetime, batch: int = 1000) -> int:
        """Delete the source's events created before `before` that no sink still has to receive
        (their finished deliveries with them), a batch per transaction; how many."""

    # --- deliveries (the dispatcher's queue) -----------------------------------------------------

    @abstractmethod
    async def claim_deliveries(
        self, sink: str, *, now: datetime, limit: int, lease_seconds: float
    ) -> list[ClaimedDelivery]:
        """Take up to `limit` due deliveries of the sink, at most one per resource and only the
        oldest unfinished one of each (per resource, events go out in commit order), marking
        them in flight until `now + lease_seconds`. A delivery whose lease ran out (its
        dispatcher died) is due again."""

    @abstractmethod
    async def finish_delivery(
        self,
        sink: str,
        event_seq: int,
        *,
        state: Literal["done", "pending", "dead"],
        now: datetime,
        next_attempt: datetime | None = None,
        status: int | None = None,
        error: str | None = None,
    ) -> None:
        """Record the outcome of an attempt: done, pending again from `next_attempt`, or dead."""

    async def finish_deliveries(self, sink: str, finished: Sequence[FinishedDelivery], *, now: datetime) -> None:
        """Record the outcomes of a claim's attempts. The dispatcher calls this once per claimed
        batch; a backend that can record them in one transaction overrides it (this default
        records them one by one)."""
        for outcome in finished:
            await self.finish_delivery(
                sink,
                outcome.event_seq,
                state=outcome.state,
                now=now,
                next_attempt=outcome.next_attempt,
                status=outcome.status,
                error=outcome.error,
            )

    async def finish_and_claim(
        self,
        sink: str,
        finished: Sequence[FinishedDelivery],
        *,
        now: datetime,
        limit: int,
        lease_seconds: float,
    ) -> list[ClaimedDelivery]:
        """Record `finished` (as finish_deliveries does), then claim (as claim_deliveries does):
        what the dispatcher does after each round of attempts. A backend that can do both in one
        transaction overrides it (the built-in store does: one transaction instead of two)."""
        if finished:
            await self.finish_deliveries(sink, finished, now=now)
        return await self.claim_deliveries(sink, now=now, limit=limit, lease_seconds=lease_seconds)

    @abstractmethod
    async def deliveries_of(self, source: str, event_seq: int) -> list[dict[str, Any]]:
        """The deliveries of one of the source's events: sink, state, attempts, last_status,
        last_error, done_at."""

    @abstractmethod
    async def reclaim_inflight(self, sink: str, *, now: datetime) -> int:
        """Make every in-flight delivery of the sink pending and due now, attempts kept; how
        many. A dispatcher that has just taken the lease calls it: only one dispatcher runs
        per database, so what is in flight was left by one that died."""

    @abstractmethod
    async def requeue_deliveries(
        self,
        sink: str,
        *,
        now: datetime,
        states: Sequence[str],
        since: datetime | None = None,
        seqs: Sequence[int] | None = None,
    ) -> int:
        """Make the sink's deliveries in `states` (narrowed to events since `since`, or these
        sequence numbers) pending and due now, their attempts counted from 0 again (a backoff
        ended); how many. Replaying done ones sends the same event ids again."""

    @abstractmethod
    async def sink_stats(self, sink: str) -> SinkStats:
        """Counts by state, the oldest pending delivery's event time, the last error, pause
        state, and the pending deliveries that failed before (count, most attempts, soonest
        next attempt)."""

    @abstractmethod
    async def paused_sinks(self) -> dict[str, str | None]:
        """The paused sinks, with the reason each was paused."""

    @abstractmethod
    async def set_sink_paused(self, sink: str, paused: bool, *, reason: str | None, now: datetime) -> None:
        """Pause (no deliveries are claimed) or resume a sink."""

    @abstractmethod
    async def take_lease(self, name: str, owner: str, *, now: datetime, seconds: float) -> bool:
        """Hold (or renew) the named lease until `now + seconds` unless another owner holds it
        unexpired; whether `owner` holds it now."""

    @abstractmethod
    async def release_lease(self, name: str, owner: str) -> None:
        """Give the lease up if `owner` holds it."""

    @abstractmethod
    async def lease_holder(self, name: str, *, now: datetime) -> str | None:
        """Who holds the named lease unexpired, if anyone."""

    # --- intents of writes in another resource store (scimhost.storage.composed) ------------------

    @abstractmethod
    async def open_intent(self, intent: Intent) -> None:
        """Record the intent. Raises IntentBusy, recording nothing, while another open intent
        of the same source and resource type holds its key."""

    @abstractmethod
    async def settle_intent(
        self,
        intent_id: str,
        *,
        resource_id: str,
        version: int | None,
        external_id: str | None,
        now: datetime,
    ) -> bool:
        """The write happened: in one transaction, record the intent's event (for that resource
        and version, with a pending delivery per sink, as a write's event is) and close the
        intent. False, recording nothing, when the intent is not open (settled or abandoned)."""

    @abstractmethod
    async def abandon_intent(self, intent_id: str) -> None:
        """The write did not happen: close the intent without an event."""

    @abstractmethod
    async def open_intents(self, *, opened_before: datetime, limit: int = 100) -> list[Intent]:
        """Open intents recorded before `opened_before`, oldest first (left by a process that
        died, or by a write whose outcome it could not know)."""
