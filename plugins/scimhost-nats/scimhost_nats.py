"""scimhost event sink: each event published to NATS JetStream, deduplicated by its event id."""

from __future__ import annotations

import asyncio
import re
import string
from dataclasses import dataclass
from typing import Any

import nats
import orjson
from nats.aio.client import Client
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError

from scimhost.delivery.sink import EventSink, Outcome
from scimhost.hookspecs import hookimpl

FIELDS = {"source", "resource_type", "action", "lifecycle", "resource_id"}
STREAM_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class NatsSettings:
    """The NATS sink's keys of its `[[events.sinks]]` entry."""

    servers: tuple[str, ...] = ("nats://127.0.0.1:4222",)
    stream: str = "SCIMHOST"
    # Where each event goes; placeholders: {source}, {resource_type}, {action}, {lifecycle}
    # ("deactivated", "reactivated" or "none"), {resource_id}.
    subject: str = "scimhost.{source}.{resource_type}.{action}"
    create_stream: bool = True
    duplicate_window_seconds: float = 600.0
    timeout_seconds: float = 10.0
    # Events published per attempt, their acknowledgements awaited together (1: one at a time).
    batch_size: int = 100

    def __post_init__(self) -> None:
        if not self.servers or not all(s.startswith(("nats://", "tls://")) for s in self.servers):
            raise ValueError("servers: must list nats:// or tls:// URLs")
        if not STREAM_NAME.match(self.stream):
            raise ValueError("stream: must be 1-64 characters of A-Z, a-z, 0-9, '_' and '-'")
        names = {name for _, name, _, _ in string.Formatter().parse(self.subject) if name is not None}
        if not names <= FIELDS:
            raise ValueError(f"subject: unknown placeholders {', '.join(sorted(names - FIELDS))}")
        if not 0 < self.timeout_seconds <= 300 or self.duplicate_window_seconds <= 0:
            raise ValueError("timeout_seconds: must be more than 0 and at most 300")
        if not 1 <= self.batch_size <= 1000:
            raise ValueError("batch_size: must be 1 to 1000")

    @property
    def subjects(self) -> str:
        """The stream's subject filter: the template with each placeholder as a wildcard."""
        return re.sub(r"\{[a-z_]+\}", "*", self.subject)


class NatsSink(EventSink):
    """Publishes each event to JetStream; delivered once the publish is acknowledged."""

    name = "nats"
    settings_type = NatsSettings

    def attempt_seconds(self) -> float:
        # A (re)connect may take twice the timeout before the publish's own timeout.
        return 3 * self.options.timeout_seconds

    def batch_size(self) -> int:
        return int(self.options.batch_size)

    async def start(self) -> None:
        self._connection: Client | None = None
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def _jetstream(self):
        """The JetStream context, connecting (and creating the stream) on first use, so that a
        NATS that is down at start delays deliveries instead of stopping the server."""
        async with self._lock:
            if self._connection is None or self._connection.is_closed:
                # A few reconnect attempts only: a connection that gives up closes, and the next
                # delivery connects afresh (an unbounded count would also retry the first
                # connect forever, holding the deliveries instead of answering "retry").
                connection = await asyncio.wait_for(
                    nats.connect(
                        servers=list(self.options.servers),
                        connect_timeout=self.options.timeout_seconds,
                        allow_reconnect=True,
                        max_reconnect_attempts=3,
                        reconnect_time_wait=0.5,
                    ),
                    self.options.timeout_seconds * 2,
                )
                jetstream = connection.jetstream(timeout=self.options.timeout_seconds)
                if self.options.create_stream:
                    try:
                        await jetstream.stream_info(self.options.stream)
                    except NotFoundError:
                        await jetstream.add_stream(
                            StreamConfig(
                                name=self.options.stream,
                                subjects=[self.options.subjects],
                                storage=StorageType.FILE,
                                duplicate_window=self.options.duplicate_window_seconds,
                            )
                        )
                self._connection, self._js = connection, jetstream
            return self._js

    async def deliver(self, envelopes: list[dict[str, Any]]) -> list[Outcome]:
        try:
            jetstream = await self._jetstream()
        except Exception as exc:  # down, unreachable, refused: the events wait and retry
            if self._connection is not None and not self._connection.is_closed:
                await self._connection.close()
            self._connection = None
            return [Outcome.retry(f"NATS is not reachable: {type(exc).__name__}: {exc}")] * len(envelopes)
        return list(await asyncio.gather(*(self._publish(jetstream, e) for e in envelopes)))

    async def _publish(self, jetstream, envelope: dict[str, Any]) -> Outcome:
        data = envelope["data"]
        subject = self.options.subject.format(  # (a `scimhost webhooks test` ping has no resource)
            source=data.get("source") or "none",
            resource_type=(data.get("resourceType") or "none").lower(),
            action=data.get("action") or "none",
            resource_id=data.get("resourceId") or "none",
            lifecycle=data.get("lifecycle") or "none",
        )
        try:
            ack = await jetstream.publish(
                subject,
                orjson.dumps(envelope),
                headers={"Nats-Msg-Id": data["id"]},
                timeout=self.options.timeout_seconds,
            )
        except Exception as exc:  # no ack: it may or may not be stored; the retry dedups
            return Outcome.retry(f"no JetStream acknowledgement: {type(exc).__name__}: {exc}")
        return Outcome.delivered(None) if ack.stream else Outcome.retry("an acknowledgement without a stream")


@hookimpl
def register_event_sinks():
    return [NatsSink]
