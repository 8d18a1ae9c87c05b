"""Deleting in bulk, for operators: a source's old events, or everything a source holds."""

from __future__ import annotations

from datetime import datetime

from scimhost.builtin.tortoise_storage.dialects import Dialect
from scimhost.builtin.tortoise_storage.scope import Scope
from scimhost.builtin.tortoise_storage.statements import Params, Work


class Housekeeping:
    """The units of work that delete in bulk, for one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    def params(self) -> Params:
        return Params(self.dialect)

    def prune_events(self, source: str, before: datetime, batch: int) -> Work[int]:
        """Up to `batch` of a source's events older than `before` that no sink still has to
        receive, with their finished deliveries; how many events went."""
        p = self.params()
        where = Scope(source).where(
            p,
            "e",
            f"e.created < {p(before)} AND NOT EXISTS (SELECT 1 FROM scimhost_delivery d "
            "WHERE d.event_seq = e.seq AND d.state IN ('pending', 'inflight'))",
        )
        rows = yield p.query(f"SELECT e.seq FROM scimhost_event e WHERE {where} ORDER BY e.seq LIMIT {p(batch)}")
        seqs = [row["seq"] for row in rows]
        if not seqs:
            return 0
        p = self.params()
        yield p.command(f"DELETE FROM scimhost_delivery WHERE event_seq IN ({p.each(seqs)})")
        p = self.params()
        changed: int = yield p.command(f"DELETE FROM scimhost_event WHERE seq IN ({p.each(seqs)})")
        return changed

    def purge_source(self, source: str) -> Work[dict[str, int]]:
        """Delete everything a source holds; how many rows of each kind went."""
        scope = Scope(source)
        deleted: dict[str, int] = {}
        # Rows that name resources first, then the resources themselves.
        tables = [
            (None, "scimhost_member"),
            (None, "scimhost_attr"),
            (None, "scimhost_unique"),
            (None, "scimhost_count"),
            ("users", "User"),
            ("groups", "Group"),
            ("other resources", "scimhost_resource"),
            ("deliveries", "scimhost_delivery"),
            ("events", "scimhost_event"),
            ("open intents", "scimhost_intent"),
            ("activity rows", "scimhost_source_activity"),
            ("failed requests", "scimhost_failed_request"),
            ("credentials", "scimhost_credential"),
            ("soft-deleted resources", "scimhost_deleted_resource"),
            ("service accounts", "scimhost_service_account"),
        ]
        for kind, table in tables:
            p = self.params()
            if table in ("User", "Group"):
                where = scope.of_type(table).where(p, "t")
                table = "scimhost_resource"
            else:
                where = scope.where(p, "t", typed=False)
            changed = yield p.command(f"DELETE FROM {table} AS t WHERE {where}")
            if kind is not None:
                deleted[kind] = deleted.get(kind, 0) + changed
        return deleted
