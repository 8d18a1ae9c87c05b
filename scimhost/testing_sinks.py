"""The sink contract: the rules every event sink plugin must keep, one test each, against the
plugin's real receiver (an HTTP endpoint, a broker).

In the sink's tests, subclass `SinkContract` and give the subclass two fixtures:

- `sink`: an async fixture yielding a started sink instance that delivers to the receiver;
- `receiver`: a `SinkReceiver`, what the test reads back from that receiver and how it makes
  it fail for a while.

    from scimhost.testing import SinkContract

    class TestMySink(SinkContract):
        @pytest.fixture
        async def sink(self, my_receiver):
            sink = MySink(MySettings(url=my_receiver.url), sink_name="contract")
            await sink.start()
            yield sink
            await sink.close()

        @pytest.fixture
        def receiver(self, my_receiver):
            return my_receiver

`stored_event` builds the events the contract sends; sink authors' own tests may use it too.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

from scimhost.delivery.envelope import envelope
from scimhost.delivery.sink import EventSink
from scimhost.storage.backend import StoredEvent


def stored_event(
    seq: int = 1,
    *,
    event_id: str | None = None,
    source: str = "demo",
    resource_type: str = "User",
    resource_id: str = "u1",
    action: str = "create",
    version: int | None = 1,
    resource: dict[str, Any] | None = None,
) -> StoredEvent:
    """An event of the log as the dispatcher hands it to a sink (a fresh id unless given)."""
    return StoredEvent(
        seq,
        event_id or f"evt_{uuid.uuid4().hex}",
        datetime.now(UTC),
        source,
        resource_type,
        resource_id,
        None,
        action,
        version,
        {"type": "service_account", "username": f"scimhost-source-{source}"},
        {},
        None,
        resource if resource is not None else {"userName": f"user-{resource_id}"},
        {},
    )


class SinkReceiver(Protocol):
    """The contract's view of the receiver a sink delivers to."""

    async def received_ids(self) -> list[str]:
        """The event ids the receiver holds, in arrival order, a copy it keeps twice listed twice."""
        ...

    def outage(self) -> contextlib.AbstractAsyncContextManager[None]:
        """While it lasts, the receiver fails deliveries in a way that passes (a 503, a broker
        without its stream); after it, it accepts them again."""
        ...


class SinkContract:
    """The rules every event sink must keep, one test each (see the module docstring)."""

    async def test_one_outcome_per_event_in_order_and_each_received(
        self, sink: EventSink, receiver: SinkReceiver
    ) -> None:
        events = [stored_event(seq, resource_id=f"u{seq}") for seq in range(1, 6)]
        outcomes = await sink.deliver([envelope(e) for e in events])
        assert [o.kind for o in outcomes] == ["delivered"] * 5
        assert sorted(await receiver.received_ids()) == sorted(e.id for e in events)

    async def test_a_transient_failure_is_a_retry_and_the_retry_delivers(
        self, sink: EventSink, receiver: SinkReceiver
    ) -> None:
        event = stored_event()
        async with receiver.outage():
            [outcome] = await sink.deliver([envelope(event)])
            assert outcome.kind == "retry" and outcome.detail
        [outcome] = await sink.deliver([envelope(event)])
        assert outcome.kind == "delivered"
        assert set(await receiver.received_ids()) == {event.id}

    async def test_a_replayed_event_carries_its_id_so_it_is_taken_once(
        self, sink: EventSink, receiver: SinkReceiver
    ) -> None:
        """At-least-once delivery sends an event again after a lost outcome or an operator's
        replay: both sends succeed and carry the one event id the receiver deduplicates on."""
        event = stored_event()
        for _ in range(2):
            [outcome] = await sink.deliver([envelope(event)])
            assert outcome.kind == "delivered"
        ids = await receiver.received_ids()
        assert set(ids) == {event.id} and 1 <= len(ids) <= 2

    async def test_events_of_many_resources_at_once(self, sink: EventSink, receiver: SinkReceiver) -> None:
        """The dispatcher calls `deliver` concurrently, one event per call."""
        import asyncio

        events = [stored_event(seq, resource_id=f"r{seq}") for seq in range(1, 21)]
        results = await asyncio.gather(*(sink.deliver([envelope(e)]) for e in events))
        assert [[o.kind for o in r] for r in results] == [["delivered"]] * 20
        assert sorted(await receiver.received_ids()) == sorted(e.id for e in events)

    async def test_it_says_how_long_an_attempt_may_take(self, sink: EventSink, receiver: SinkReceiver) -> None:
        seconds = sink.attempt_seconds()
        assert seconds is None or 0 < seconds <= 3600
