"""Soft-deleted resources: the statements that find, list and purge what is kept aside (the
write path moves resources in and out, writes.py)."""

from __future__ import annotations

from datetime import datetime

import orjson

from scimhost.builtin.tortoise_storage.database import Database
from scimhost.builtin.tortoise_storage.rows import moment
from scimhost.builtin.tortoise_storage.scope import Scope
from scimhost.builtin.tortoise_storage.statements import Params, Row
from scimhost.storage.backend import DeletedResource

COLUMNS = "d.id, d.resource_type, d.external_id, d.name_key, d.data, d.record, d.version, d.created, d.deleted"


class Deleted:
    """The soft-deleted resources of one database, each statement scoped to one source and type."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def params(self) -> Params:
        return Params(self.database.dialect)

    async def list(self, scope: Scope, *, limit: int, before: datetime | None) -> list[DeletedResource]:
        p = self.params()
        condition = f"d.deleted < {p(before)}" if before is not None else ""
        rows = await self.database.rows(
            p.query(
                f"SELECT {COLUMNS} FROM scimhost_deleted_resource d WHERE {scope.where(p, 'd', condition)} "
                f"ORDER BY d.deleted DESC, d.id LIMIT {p(max(limit, 0))}"
            )
        )
        return [_deleted(row) for row in rows]

    async def find(
        self, scope: Scope, *, resource_id: str | None, external_id: str | None, name_key: str | None
    ) -> DeletedResource | None:
        p = self.params()
        conditions = [
            f"d.{column} = {p(value)}"
            for column, value in (("id", resource_id), ("external_id", external_id), ("name_key", name_key))
            if value is not None
        ]
        if not conditions:
            return None
        rows = await self.database.rows(
            p.query(
                f"SELECT {COLUMNS} FROM scimhost_deleted_resource d WHERE {scope.where(p, 'd', ' AND '.join(conditions))} "
                "ORDER BY d.deleted DESC LIMIT 1"
            )
        )
        return _deleted(rows[0]) if rows else None

    async def purge(self, scope: Scope, *, before: datetime, batch: int) -> int:
        purged = 0
        while True:
            p = self.params()
            chosen = (
                f"SELECT d.id FROM scimhost_deleted_resource d WHERE {scope.where(p, 'd', f'd.deleted < {p(before)}', typed=False)} "
                f"LIMIT {p(batch)}"
            )
            count = await self.database.execute(
                p.command(f"DELETE FROM scimhost_deleted_resource WHERE id IN ({chosen})")
            )
            purged += count
            if count < batch:
                return purged


def _deleted(row: Row) -> DeletedResource:
    return DeletedResource(
        id=row["id"],
        resource_type=row["resource_type"],
        external_id=row["external_id"],
        name_key=row["name_key"],
        document=orjson.loads(row["data"]),
        record=orjson.loads(row["record"]) if row["record"] is not None else None,
        version=int(row["version"]),
        created=moment(row["created"]),
        deleted=moment(row["deleted"]),
    )
