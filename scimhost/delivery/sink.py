"""The interface an event sink plugin implements (`register_event_sinks`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal


@dataclass(frozen=True)
class Outcome:
    """What became of one event at a sink.

    - delivered: the sink has it (a 2xx, a publish ack);
    - retry: try again later, not before `after` seconds when the receiver said so;
    - permanent: it will never be accepted (the delivery is dead, visible and retryable);
    - pause: the receiver asked to stop (410 Gone): the sink is paused until an operator
      resumes it, and the event stays pending.
    """

    kind: Literal["delivered", "retry", "permanent", "pause"]
    status: int | None = None
    detail: str | None = None
    after: float | None = None

    @classmethod
    def delivered(cls, status: int | None = None) -> Outcome:
        return cls("delivered", status)

    @classmethod
    def retry(cls, detail: str, *, status: int | None = None, after: float | None = None) -> Outcome:
        return cls("retry", status, detail, after)

    @classmethod
    def permanent(cls, detail: str, *, status: int | None = None) -> Outcome:
        return cls("permanent", status, detail)

    @classmethod
    def pause(cls, detail: str, *, status: int | None = None) -> Outcome:
        return cls("pause", status, detail)


class EventSink(ABC):
    """A durable delivery target: receives event envelopes, answers one Outcome each.

    One instance serves one `[[events.sinks]]` entry. The dispatcher calls `deliver` once per
    event, many calls at once (up to the sink's `concurrency`), never two of one resource at a
    time: their order is kept by handing out the next only after the previous one's outcome.
    It must not raise for a failed delivery, but answer `retry` or `permanent` for it.
    """

    name: ClassVar[str]
    # Dataclass typing the sink's own keys of its `[[events.sinks]]` entry.
    settings_type: ClassVar[type]
    # True for a sink whose receiver fetches its deliveries itself (through a route the plugin
    # adds, claiming and finishing them in the store): the dispatcher then leaves them alone.
    polled: ClassVar[bool] = False

    @classmethod
    def environment_problems(cls, options: Any) -> list[str]:
        """What the process environment lacks for this sink to deliver (a secret not set), one
        line each. Checked only by the commands that deliver, so that administering the host
        never needs a sink's secrets."""
        return []

    @classmethod
    def provider_config(cls, options: Any) -> dict[str, Any]:
        """What the sink adds to the ServiceProviderConfig of each source whose events it
        takes (a SET sink: `securityEvents`); lists of several sinks are joined."""
        return {}

    def __init__(self, options: Any, *, sink_name: str) -> None:
        self.options = options
        self.sink_name = sink_name
        # The host's public URL (its `[server] public_url`), set by the host before `start`.
        self.public_url = ""

    def attempt_seconds(self) -> float | None:
        """The longest one `deliver` call may take (its timeouts), or None to take the
        dispatcher's default. The dispatcher gives up on an attempt a little after it, and keeps
        a claimed delivery claimed for longer, so it is never sent twice while still running."""
        return None

    def batch_size(self) -> int:
        """How many events one `deliver` call may carry (each of another resource). 1, the
        default, makes each event an attempt of its own (a slow one holds back no other); a sink
        whose receiver takes many at once (NATS: publishes in flight, acks awaited together)
        returns more, and the dispatcher hands it that many per attempt."""
        return 1

    async def start(self) -> None:
        """Connect (called once by the dispatcher before the first delivery)."""

    async def close(self) -> None:
        """Release connections."""

    @abstractmethod
    async def deliver(self, envelopes: list[dict[str, Any]]) -> list[Outcome]:
        """Deliver each envelope (scimhost.delivery.envelope); one outcome per envelope, in order."""
