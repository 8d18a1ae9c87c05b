"""One sink's delivery state as every view shows it (admin overview, metrics, `deliveries status`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from scimhost.storage.backend import SinkStats


def sink_status(name: str, sink_type: str, stats: SinkStats, now: datetime) -> dict[str, Any]:
    """The sink's counts and state. `pending` is every delivery not finished yet: waiting for
    its first or next attempt, or in flight (`inflight`, the part being attempted now)."""
    return {
        "name": name,
        "type": sink_type,
        "state": stats.state,
        "pending": stats.pending + stats.inflight,
        "inflight": stats.inflight,
        "dead": stats.dead,
        "done": stats.done,
        # The oldest unfinished delivery's event: how far behind the sink is.
        "oldest_pending_seconds": round(max((now - stats.oldest_pending).total_seconds(), 0.0), 3)
        if stats.oldest_pending
        else None,
        "paused": stats.paused,
        "paused_reason": stats.paused_reason,
        "retrying": stats.retrying,
        "most_attempts": stats.most_attempts,
        "next_attempt": stats.next_attempt.isoformat(timespec="seconds") if stats.next_attempt else None,
        "last_error": stats.last_error,
    }
