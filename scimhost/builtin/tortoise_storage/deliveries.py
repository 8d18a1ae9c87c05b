"""The delivery queue's statements: claiming the head delivery of each resource, recording
outcomes, requeueing, sink pauses and the dispatcher's lease.

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

from scimhost.builtin.tortoise_storage.database import Database
from scimhost.builtin.tortoise_storage.dialects import POSTGRES
from scimhost.builtin.tortoise_storage.rows import EVENT_COLUMNS, as_datetime, stored_event
from scimhost.builtin.tortoise_storage.scope import Scope
from scimhost.builtin.tortoise_storage.statements import Command, Params, Row, Work
from scimhost.storage.backend import ClaimedDelivery, FinishedDelivery, SinkStats

UNFINISHED = "('pending', 'inflight')"
# How many newly written deliveries a claim looks at, at most (a burst is marked over a few).
EXAMINE_BATCH = 500
# How often a claim first repairs marks that two dispatchers at once could have left wrong.
SWEEP_EVERY = 5.0
# PostgreSQL plans the head-of-key claim from table statistics. A queue that filled up faster than
# autovacuum analyzes it (an initial sync) looks empty to the planner, which then scans every
# unfinished row once per candidate: 500 ms a claim at 2 000 pending, against 2 ms once analyzed.
# A claim slower than this has the table analyzed, at most once per ANALYZE_EVERY seconds.
SLOW_CLAIM_SECONDS = 0.05
ANALYZE_EVERY = 60.0


class DeliveryQueue:
    """Delivery rows (written with each event, see writes.py) as a queue, on one database."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._analyzed = float("-inf")
        self._swept: dict[str, float] = {}  # per sink: when a claim last checked the waiting ones

    def params(self) -> Params:
        return Params(self.database.dialect)

    async def claim_deliveries(
        self,
        sink: str,
        *,
        now: datetime,
        limit: int,
        lease_seconds: float,
        finished: Sequence[FinishedDelivery] = (),
    ) -> list[ClaimedDelivery]:
        """Claim as the interface says, after recording `finished` in the same transaction."""
        lease_until = now + timedelta(seconds=lease_seconds)

        sweep = time.monotonic() - self._swept.get(sink, float("-inf")) >= SWEEP_EVERY
        if sweep:
            self._swept[sink] = time.monotonic()

        def claim() -> Work[list[Row]]:
            if finished:
                yield from self._finish(sink, finished, now)
            if sweep:
                # The marks are right as long as one dispatcher claims and finishes at a time;
                # two at once (one whose lease lapsed while it still ran) could leave a waiting
                # delivery with no head before it. Such a one is looked at again.
                # (Ordered by event, so that SQLite reads the waiting deliveries' own index.)
                p = self.params()
                sink_value = p(sink)
                yield p.command(
                    "UPDATE scimhost_delivery SET head = NULL WHERE id IN (SELECT w.id FROM scimhost_delivery w "
                    f"WHERE w.sink = {sink_value} AND w.head = 0 AND w.state = 'pending' AND NOT EXISTS (SELECT 1 "
                    f"FROM scimhost_delivery e WHERE e.sink = {sink_value} AND e.key = w.key "
                    f"AND e.state IN {UNFINISHED} AND e.event_seq < w.event_seq) ORDER BY w.event_seq)"
                )
            # First look at the deliveries written since the last claim (migration 0013): a
            # delivery is a head when no earlier one of its key (resource) is unfinished.
            # The test reads states only, so a batch marks correctly in any order, and a later
            # delivery of a key never becomes visible before an earlier one (a resource's
            # writes commit in sequence order), so none is marked a head too early.
            p = self.params()
            yield p.command(
                "UPDATE scimhost_delivery SET head = CASE WHEN EXISTS (SELECT 1 FROM scimhost_delivery e "
                "WHERE e.sink = scimhost_delivery.sink AND e.key = scimhost_delivery.key "
                f"AND e.state IN {UNFINISHED} AND e.event_seq < scimhost_delivery.event_seq) THEN 0 ELSE 1 END "
                f"WHERE id IN (SELECT u.id FROM scimhost_delivery u WHERE u.sink = {p(sink)} AND u.head IS NULL "
                f"AND u.state = 'pending' ORDER BY u.event_seq LIMIT {p(EXAMINE_BATCH)})"
            )
            # Due: in flight with a lapsed lease (its dispatcher died; always a head), or a
            # pending head whose time has come, read from the due heads' index. (No order for
            # the lapsed: SQLite would walk the sink's whole history in event order for it.)
            p = self.params()
            sink_value, now_value, limit_value = p(sink), p(now), p(limit)
            due_sql = (
                "SELECT id FROM (SELECT id FROM scimhost_delivery WHERE sink = "
                f"{sink_value} AND state = 'inflight' AND lease_until < {now_value} LIMIT {limit_value}) AS l "
                "UNION ALL SELECT id FROM (SELECT id FROM scimhost_delivery WHERE sink = "
                f"{sink_value} AND head = 1 AND state = 'pending' AND next_attempt <= {now_value} "
                f"ORDER BY next_attempt, event_seq LIMIT {limit_value}) AS h"
            )
            if self.database.dialect is POSTGRES:
                # Taken and read in one statement (SQLite has no data-modifying CTEs).
                return (
                    yield p.query(
                        f"WITH due AS ({due_sql} LIMIT {limit_value}), taken AS (UPDATE scimhost_delivery SET "
                        f"state = 'inflight', lease_until = {p(lease_until)}, attempts = attempts + 1 "
                        "WHERE id IN (SELECT id FROM due) RETURNING event_seq, attempts) "
                        f"SELECT {EVENT_COLUMNS}, d.attempts FROM taken d JOIN scimhost_event e "
                        "ON e.seq = d.event_seq ORDER BY e.seq"
                    )
                )
            due: list[Row] = yield p.query(due_sql)
            if not due:
                return []
            ids = [row["id"] for row in due[:limit]]
            p = self.params()
            yield p.command(
                f"UPDATE scimhost_delivery SET state = 'inflight', lease_until = {p(lease_until)}, "
                f"attempts = attempts + 1 WHERE id IN ({p.each(ids)})"
            )
            p = self.params()
            claimed: list[Row] = yield p.query(
                f"SELECT {EVENT_COLUMNS}, d.attempts FROM scimhost_delivery d "
                f"JOIN scimhost_event e ON e.seq = d.event_seq WHERE d.id IN ({p.each(ids)}) ORDER BY e.seq"
            )
            return claimed

        started = time.monotonic()
        rows = await self.database.run(claim())
        if self.database.dialect is POSTGRES and time.monotonic() - started > SLOW_CLAIM_SECONDS:
            await self._refresh_queue_statistics()
        return [ClaimedDelivery(stored_event(row), int(row["attempts"])) for row in rows]

    async def _refresh_queue_statistics(self) -> None:
        now = time.monotonic()
        if now - self._analyzed < ANALYZE_EVERY:
            return
        self._analyzed = now
        await self.database.execute(Command("ANALYZE scimhost_delivery", []))

    async def finish_deliveries(self, sink: str, finished: Sequence[FinishedDelivery], *, now: datetime) -> None:
        await self.database.run(self._finish(sink, finished, now))

    def _finish(self, sink: str, finished: Sequence[FinishedDelivery], now: datetime) -> Work[None]:
        """Record the outcomes of attempts (a unit of work, alone or before a claim)."""
        # The usual outcome, delivered with one status, is one statement for the batch.
        delivered: dict[int | None, list[int]] = {}
        for outcome in finished:
            if outcome.state == "done" and not outcome.error:
                delivered.setdefault(outcome.status, []).append(outcome.event_seq)
                continue
            p = self.params()
            assignments = (
                f"state = {p(outcome.state)}, lease_until = NULL, last_status = {p(outcome.status)}, "
                f"last_error = {p(outcome.error[:2000] if outcome.error else None)}"
            )
            if outcome.state == "done":
                assignments += f", done_at = {p(now)}"
            if outcome.state == "pending":
                assignments += f", next_attempt = {p(outcome.next_attempt or now)}"
            yield p.command(
                f"UPDATE scimhost_delivery SET {assignments} "
                f"WHERE sink = {p(sink)} AND event_seq = {p(outcome.event_seq)}"
            )
        for status, seqs in delivered.items():
            p = self.params()
            yield p.command(
                f"UPDATE scimhost_delivery SET state = 'done', lease_until = NULL, last_status = {p(status)}, "
                f"last_error = NULL, done_at = {p(now)} WHERE sink = {p(sink)} AND event_seq IN ({p.each(seqs)})"
            )
        ended = [outcome.event_seq for outcome in finished if outcome.state != "pending"]
        if ended:
            # Each ended delivery's resource: its next unfinished delivery becomes the head
            # (one not looked at yet is left to the next claim, which will find it one).
            # CROSS JOIN keeps SQLite reading the ended ones by their key, not walking
            # the sink's deliveries (the list of a claim holds one per resource).
            p = self.params()
            sink_value = p(sink)
            yield p.command(
                "UPDATE scimhost_delivery SET head = 1 WHERE head = 0 AND id IN (SELECT (SELECT n.id "
                "FROM scimhost_delivery n WHERE n.sink = f.sink AND n.key = f.key "
                f"AND n.state IN {UNFINISHED} AND n.event_seq > f.event_seq ORDER BY n.event_seq LIMIT 1) "
                f"FROM ({self.database.dialect.number_list(p, ended)}) AS s CROSS JOIN scimhost_delivery f "
                f"WHERE f.sink = {sink_value} AND f.event_seq = s.value)"
            )

    async def deliveries_of(self, source: str, event_seq: int) -> list[dict[str, Any]]:
        p = self.params()
        where = Scope(source).where(p, "d", f"d.event_seq = {p(event_seq)}", typed=False)
        rows = await self.database.rows(
            p.query(
                "SELECT d.sink, d.state, d.attempts, d.last_status, d.last_error, d.done_at FROM scimhost_delivery d "
                f"WHERE {where} ORDER BY d.sink"
            )
        )
        return [{**row, "done_at": as_datetime(row["done_at"])} for row in rows]

    async def reclaim_inflight(self, sink: str, *, now: datetime) -> int:
        p = self.params()
        return await self.database.execute(
            p.command(
                f"UPDATE scimhost_delivery SET state = 'pending', next_attempt = {p(now)}, lease_until = NULL "
                f"WHERE sink = {p(sink)} AND state = 'inflight'"
            ),
            small=False,
        )

    async def requeue_deliveries(
        self,
        sink: str,
        *,
        now: datetime,
        states: Sequence[str],
        since: datetime | None = None,
        seqs: Sequence[int] | None = None,
    ) -> int:
        p = self.params()
        conditions = [f"state IN ({p.each(states)})"]
        if since is not None:
            conditions.append(f"event_seq IN (SELECT e.seq FROM scimhost_event e WHERE e.created >= {p(since)})")
        if seqs is not None:
            conditions.append(f"event_seq IN ({p.each(seqs)})" if seqs else "1 = 0")
        requeue = p.command(
            f"UPDATE scimhost_delivery SET state = 'pending', next_attempt = {p(now)}, lease_until = NULL, "
            f"attempts = 0 WHERE sink = {p(sink)} AND {' AND '.join(conditions)}"
        )

        def work() -> Work[int]:
            count: int = yield requeue
            # An event sent again may be older than a resource's waiting head: every waiting
            # delivery of the sink is looked at again, oldest first, by the next claims.
            p = self.params()
            yield p.command(f"UPDATE scimhost_delivery SET head = NULL WHERE sink = {p(sink)} AND state = 'pending'")
            return count

        return await self.database.run(work(), small=False)

    async def sink_stats(self, sink: str) -> SinkStats:
        p = self.params()
        counts = {
            row["state"]: int(row["n"])
            for row in await self.database.rows(
                p.query(f"SELECT state, COUNT(*) AS n FROM scimhost_delivery WHERE sink = {p(sink)} GROUP BY state")
            )
        }
        p = self.params()
        oldest = await self.database.rows(
            p.query(
                "SELECT MIN(e.created) AS oldest FROM scimhost_delivery d JOIN scimhost_event e ON e.seq = d.event_seq "
                f"WHERE d.sink = {p(sink)} AND d.state IN {UNFINISHED}"
            )
        )
        p = self.params()
        error = await self.database.rows(
            p.query(
                f"SELECT last_error FROM scimhost_delivery WHERE sink = {p(sink)} AND last_error IS NOT NULL "
                "ORDER BY event_seq DESC LIMIT 1"
            )
        )
        p = self.params()
        [retrying] = await self.database.rows(
            p.query(
                "SELECT COUNT(*) AS n, MAX(attempts) AS most, MIN(next_attempt) AS soonest FROM scimhost_delivery "
                f"WHERE sink = {p(sink)} AND state = 'pending' AND attempts > 0"
            )
        )
        p = self.params()
        paused = await self.database.rows(
            p.query(f"SELECT paused, reason FROM scimhost_sink_state WHERE name = {p(sink)}")
        )
        return SinkStats(
            sink=sink,
            pending=counts.get("pending", 0),
            inflight=counts.get("inflight", 0),
            dead=counts.get("dead", 0),
            done=counts.get("done", 0),
            oldest_pending=as_datetime(oldest[0]["oldest"]) if oldest else None,
            last_error=error[0]["last_error"] if error else None,
            paused=bool(paused and paused[0]["paused"]),
            paused_reason=paused[0]["reason"] if paused else None,
            retrying=int(retrying["n"]),
            most_attempts=int(retrying["most"] or 0),
            next_attempt=as_datetime(retrying["soonest"]),
        )

    async def paused_sinks(self) -> dict[str, str | None]:
        p = self.params()
        rows = await self.database.rows(
            p.query(f"SELECT name, reason FROM scimhost_sink_state WHERE paused = {p(True)}")
        )
        return {row["name"]: row["reason"] for row in rows}

    async def set_sink_paused(self, sink: str, paused: bool, *, reason: str | None, now: datetime) -> None:
        p = self.params()
        await self.database.execute(
            p.command(
                f"INSERT INTO scimhost_sink_state (name, paused, reason, updated) VALUES ({p.each((sink, paused, reason, now))}) "
                "ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, reason = excluded.reason, "
                "updated = excluded.updated"
            )
        )

    async def take_lease(self, name: str, owner: str, *, now: datetime, seconds: float) -> bool:
        until = now + timedelta(seconds=seconds)

        def take() -> Work[bool]:
            # Take it if it is free, lapsed, or ours already; otherwise change nothing.
            p = self.params()
            yield p.command(
                f"INSERT INTO scimhost_lease (name, owner, until) VALUES ({p.each((name, owner, until))}) "
                "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until "
                f"WHERE scimhost_lease.until < {p(now)} OR scimhost_lease.owner = excluded.owner"
            )
            p = self.params()
            rows = yield p.query(f"SELECT owner FROM scimhost_lease WHERE name = {p(name)}")
            return bool(rows) and rows[0]["owner"] == owner

        return await self.database.run(take())

    async def release_lease(self, name: str, owner: str) -> None:
        p = self.params()
        await self.database.execute(
            p.command(f"DELETE FROM scimhost_lease WHERE name = {p(name)} AND owner = {p(owner)}")
        )

    async def lease_holder(self, name: str, *, now: datetime) -> str | None:
        p = self.params()
        rows = await self.database.rows(p.query(f"SELECT owner, until FROM scimhost_lease WHERE name = {p(name)}"))
        if rows and (until := as_datetime(rows[0]["until"])) is not None and until > now:
            return str(rows[0]["owner"])
        return None
