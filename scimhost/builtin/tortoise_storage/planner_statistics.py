"""PostgreSQL's planner statistics of the tables an initial sync fills, kept fresh by the host.

PostgreSQL plans from statistics that only ANALYZE gathers, and autovacuum runs it late (or
never, where an operator turned it off for an import). A table that was never analyzed is
planned with default selectivities: `source = ? AND resource_type = ?` looks as if it picked a
handful of rows, so a filter was planned as a walk over every resource of the source with a
probe per row, and each lookup of an initial sync cost what the store already held (9 ms at 200
users, 800 ms at 3 000). One ANALYZE fixes the plans at once; this keeps that true without the
operator: every CHECK_EVERY committed writes of this process, the tables whose rows changed by
more than autovacuum's own rule since their last analysis (never analyzed, or 50 rows plus a
fifth of the table) are analyzed, in the background, one pass at a time.
"""

from __future__ import annotations

import asyncio
import logging

from scimhost.builtin.tortoise_storage.database import Database
from scimhost.builtin.tortoise_storage.statements import Command, Query
from scimhost.storage.backend import StorageError

log = logging.getLogger("scimhost.storage")

TABLES = ("scimhost_resource", "scimhost_attr", "scimhost_unique", "scimhost_member")
CHECK_EVERY = 200
THRESHOLD_ROWS = 50
THRESHOLD_SHARE = 0.2


class PlannerStatistics:
    """Counts this process's resource writes and has stale tables analyzed now and then."""

    def __init__(self, database: Database, *, check_every: int = CHECK_EVERY) -> None:
        self.database = database
        self.check_every = check_every
        self._writes = 0
        self._pass: asyncio.Task[list[str]] | None = None

    def wrote(self) -> None:
        """One resource write committed."""
        self._writes += 1
        if self._writes >= self.check_every and self._pass is None:
            self._writes = 0
            self._pass = asyncio.get_running_loop().create_task(self.refresh(), name="scimhost-analyze")
            self._pass.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[list[str]]) -> None:
        self._pass = None

    async def refresh(self) -> list[str]:
        """Analyze the tables whose statistics are missing or stale; their names."""
        try:
            rows = await self.database.rows(
                Query(
                    "SELECT relname, n_mod_since_analyze, n_live_tup, last_analyze, last_autoanalyze "
                    "FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname = ANY($1)",
                    [list(TABLES)],
                )
            )
            stale = [
                str(row["relname"])
                for row in rows
                if (row["last_analyze"] is None and row["last_autoanalyze"] is None and row["n_mod_since_analyze"])
                or row["n_mod_since_analyze"] > THRESHOLD_ROWS + THRESHOLD_SHARE * row["n_live_tup"]
            ]
            if stale:
                # Names from TABLES only (the query returns nothing else), never from input.
                await self.database.execute(Command("ANALYZE " + ", ".join(sorted(stale)), []))
            return sorted(stale)
        except StorageError as exc:  # statistics are an optimisation: a failure costs only speed
            log.warning("analyzing the resource tables failed: %s", exc)
            return []

    async def close(self) -> None:
        """Let a pass under way finish (it holds a pooled connection)."""
        if self._pass is not None:
            await asyncio.gather(self._pass, return_exceptions=True)
