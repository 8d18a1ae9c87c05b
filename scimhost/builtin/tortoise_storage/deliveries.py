"""The delivery queue's statements: claiming the head delivery of each resource, recording
outcomes, requeueing, sink pauses and the dispatcher's lease (a mixin of TortoiseBackend).

The queue is the operator's side of the store: a sink may take several sources' events, so its
statements are scoped by sink, not by source (no request with a source's token reaches them).
Reading one source's deliveries goes through the Scope like every other per-source statement.

Per resource, events must reach a sink in commit order, and several deliveries are in flight
at once. A claim therefore takes, for each resource (`key`), only its oldest unfinished
delivery, and only when that one is due: a plain "oldest due rows first" claim (with
`SKIP LOCKED`) lets a retry of version 3 overtake version 4 of the same user.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from scimhost.builtin.tortoise_storage.rows import EVENT_COLUMNS, as_datetime, stored_event
from scimhost.builtin.tortoise_storage.scope import Scope
from scimhost.storage.backend import ClaimedDelivery, SinkStats

UNFINISHED = "('pending', 'inflight')"
# PostgreSQL plans the head-of-key claim from table statistics. A queue that filled up faster than
# autovacuum analyzes it (an initial sync) looks empty to the planner, which then scans every
# unfinished row once per candidate: 500 ms a claim at 2 000 pending, against 2 ms once analyzed.
# A claim slower than this has the table analyzed, at most once per ANALYZE_EVERY seconds.
SLOW_CLAIM_SECONDS = 0.05
ANALYZE_EVERY = 60.0


class DeliveryQueue:
    """Delivery rows (written with each event, see TortoiseBackend._insert_event) as a queue."""

    async def claim_deliveries(
        self, sink: str, *, now: datetime, limit: int, lease_seconds: float
    ) -> list[ClaimedDelivery]:
        lease_until = now + timedelta(seconds=lease_seconds)

        async def body(tx) -> list[dict[str, Any]]:
            # Due: pending and its time has come, or in flight with a lapsed lease (its
            # dispatcher died). Head: no earlier unfinished delivery of the same key.
            heads = await tx.execute_query_dict(
                self._sql(
                    "SELECT d.id, d.event_seq, d.attempts FROM scimhost_delivery d "
                    "WHERE d.sink = ? AND ((d.state = 'pending' AND d.next_attempt <= ?) "
                    "OR (d.state = 'inflight' AND d.lease_until < ?)) "
                    "AND NOT EXISTS (SELECT 1 FROM scimhost_delivery p WHERE p.sink = d.sink AND p.key = d.key "
                    f"AND p.event_seq < d.event_seq AND p.state IN {UNFINISHED}) "
                    "ORDER BY d.event_seq LIMIT ?"
                ),
                [sink, now, now, limit],
            )
            if not heads:
                return []
            marks = ", ".join("?" * len(heads))
            await tx.execute_query(
                self._sql(
                    "UPDATE scimhost_delivery SET state = 'inflight', lease_until = ?, attempts = attempts + 1 "
                    f"WHERE id IN ({marks})"
                ),
                [lease_until, *(row["id"] for row in heads)],
            )
            return await tx.execute_query_dict(
                self._sql(
                    f"SELECT {EVENT_COLUMNS}, d.attempts FROM scimhost_delivery d "
                    f"JOIN scimhost_event e ON e.seq = d.event_seq WHERE d.id IN ({marks}) ORDER BY e.seq"
                ),
                [row["id"] for row in heads],
            )

        started = time.monotonic()
        rows = await self._atomic(body)
        if self._dialect == "postgres" and time.monotonic() - started > SLOW_CLAIM_SECONDS:
            await self._refresh_queue_statistics()
        return [ClaimedDelivery(stored_event(row), int(row["attempts"])) for row in rows]

    async def _refresh_queue_statistics(self) -> None:
        now = time.monotonic()
        if now - getattr(self, "_queue_analyzed", float("-inf")) < ANALYZE_EVERY:
            return
        self._queue_analyzed = now
        await self._db().execute_query("ANALYZE scimhost_delivery")

    async def finish_delivery(
        self, sink: str, event_seq: int, *, state: str, now: datetime,
        next_attempt: datetime | None = None, status: int | None = None, error: str | None = None,
    ) -> None:
        assignments = "state = ?, lease_until = NULL, last_status = ?, last_error = ?"
        values: list[Any] = [state, status, error[:2000] if error else None]
        if state == "done":
            assignments += ", done_at = ?"
            values.append(now)
        if state == "pending":
            assignments += ", next_attempt = ?"
            values.append(next_attempt or now)

        async def body(tx) -> None:
            await tx.execute_query(
                self._sql(f"UPDATE scimhost_delivery SET {assignments} WHERE sink = ? AND event_seq = ?"),
                [*values, sink, event_seq],
            )

        await self._atomic(body)

    async def deliveries_of(self, source: str, event_seq: int) -> list[dict[str, Any]]:
        where, values = Scope(source).where("d", "d.event_seq = ?", [event_seq], typed=False)
        rows = await self._rows(
            "SELECT d.sink, d.state, d.attempts, d.last_status, d.last_error, d.done_at FROM scimhost_delivery d "
            f"WHERE {where} ORDER BY d.sink",
            values,
        )
        return [{**row, "done_at": as_datetime(row["done_at"])} for row in rows]

    async def reclaim_inflight(self, sink: str, *, now: datetime) -> int:
        async def body(tx) -> int:
            changed, _ = await tx.execute_query(
                self._sql(
                    "UPDATE scimhost_delivery SET state = 'pending', next_attempt = ?, lease_until = NULL "
                    "WHERE sink = ? AND state = 'inflight'"
                ),
                [now, sink],
            )
            return changed

        return await self._atomic(body, small=False)

    async def requeue_deliveries(
        self, sink: str, *, now: datetime, states: Sequence[str], since: datetime | None = None,
        seqs: Sequence[int] | None = None,
    ) -> int:
        conditions = [f"state IN ({', '.join('?' * len(states))})"]
        values: list[Any] = list(states)
        if since is not None:
            conditions.append("event_seq IN (SELECT e.seq FROM scimhost_event e WHERE e.created >= ?)")
            values.append(since)
        if seqs is not None:
            conditions.append(f"event_seq IN ({', '.join('?' * len(seqs))})" if seqs else "1 = 0")
            values += list(seqs)

        async def body(tx) -> int:
            changed, _ = await tx.execute_query(
                self._sql(
                    "UPDATE scimhost_delivery SET state = 'pending', next_attempt = ?, lease_until = NULL, "
                    f"attempts = 0 WHERE sink = ? AND {' AND '.join(conditions)}"
                ),
                [now, sink, *values],
            )
            return changed

        return await self._atomic(body, small=False)

    async def sink_stats(self, sink: str) -> SinkStats:
        counts = {
            row["state"]: int(row["n"])
            for row in await self._rows(
                "SELECT state, COUNT(*) AS n FROM scimhost_delivery WHERE sink = ? GROUP BY state", [sink]
            )
        }
        oldest = await self._rows(
            "SELECT MIN(e.created) AS oldest FROM scimhost_delivery d JOIN scimhost_event e ON e.seq = d.event_seq "
            f"WHERE d.sink = ? AND d.state IN {UNFINISHED}",
            [sink],
        )
        error = await self._rows(
            "SELECT last_error FROM scimhost_delivery WHERE sink = ? AND last_error IS NOT NULL "
            "ORDER BY event_seq DESC LIMIT 1",
            [sink],
        )
        paused = await self._rows("SELECT paused, reason FROM scimhost_sink_state WHERE name = ?", [sink])
        return SinkStats(
            sink=sink, pending=counts.get("pending", 0), inflight=counts.get("inflight", 0),
            dead=counts.get("dead", 0), done=counts.get("done", 0),
            oldest_pending=as_datetime(oldest[0]["oldest"]) if oldest else None,
            last_error=error[0]["last_error"] if error else None,
            paused=bool(paused and paused[0]["paused"]), paused_reason=paused[0]["reason"] if paused else None,
        )

    async def paused_sinks(self) -> dict[str, str | None]:
        rows = await self._rows("SELECT name, reason FROM scimhost_sink_state WHERE paused = ?", [True])
        return {row["name"]: row["reason"] for row in rows}

    async def set_sink_paused(self, sink: str, paused: bool, *, reason: str | None, now: datetime) -> None:
        async def body(tx) -> None:
            await tx.execute_query(
                self._sql(
                    "INSERT INTO scimhost_sink_state (name, paused, reason, updated) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, reason = excluded.reason, "
                    "updated = excluded.updated"
                ),
                [sink, paused, reason, now],
            )

        await self._atomic(body)

    async def take_lease(self, name: str, owner: str, *, now: datetime, seconds: float) -> bool:
        until = now + timedelta(seconds=seconds)

        async def body(tx) -> bool:
            # Take it if it is free, lapsed, or ours already; otherwise change nothing.
            await tx.execute_query(
                self._sql(
                    "INSERT INTO scimhost_lease (name, owner, until) VALUES (?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until "
                    "WHERE scimhost_lease.until < ? OR scimhost_lease.owner = excluded.owner"
                ),
                [name, owner, until, now],
            )
            rows = await tx.execute_query_dict(self._sql("SELECT owner FROM scimhost_lease WHERE name = ?"), [name])
            return bool(rows) and rows[0]["owner"] == owner

        return await self._atomic(body)

    async def release_lease(self, name: str, owner: str) -> None:
        async def body(tx) -> None:
            await tx.execute_query(
                self._sql("DELETE FROM scimhost_lease WHERE name = ? AND owner = ?"), [name, owner]
            )

        await self._atomic(body)

    async def lease_holder(self, name: str, *, now: datetime) -> str | None:
        rows = await self._rows("SELECT owner, until FROM scimhost_lease WHERE name = ?", [name])
        if rows and as_datetime(rows[0]["until"]) > now:
            return rows[0]["owner"]
        return None
