"""The outbox's intents (scimhost_intent): writes made in another resource store, recorded
before the write and settled into their event after it."""

from __future__ import annotations

from datetime import datetime

from scimhost.builtin.tortoise_storage.database import Database
from scimhost.builtin.tortoise_storage.rows import moment
from scimhost.builtin.tortoise_storage.scope import Scope
from scimhost.builtin.tortoise_storage.statements import Params, Row, Work
from scimhost.builtin.tortoise_storage.writes import Writes
from scimhost.storage.intents import draft_from_json, draft_json
from scimhost.storage.values import Intent, IntentBusy

COLUMNS = "id, source, resource_type, key, action, resource_id, before_version, external_id, event, opened"


class Intents:
    """Opens, settles, abandons and lists intents."""

    def __init__(self, database: Database, writes: Writes) -> None:
        self.database = database
        self.writes = writes

    def params(self) -> Params:
        return Params(self.database.dialect)

    async def open(self, intent: Intent) -> None:
        p = self.params()
        values = (
            intent.id,
            intent.source,
            intent.resource_type,
            intent.key,
            intent.action,
            intent.resource_id,
            intent.before_version,
            intent.external_id,
            draft_json(intent.event),
            intent.opened,
        )
        # The unique (source, resource_type, key) is the lock: a second writer inserts nothing.
        inserted = await self.database.execute(
            p.command(
                f"INSERT INTO scimhost_intent ({COLUMNS}) VALUES ({p.each(values)}) "
                "ON CONFLICT (source, resource_type, key) DO NOTHING"
            )
        )
        if not inserted:
            raise IntentBusy(intent.key)

    async def settle(
        self, intent_id: str, *, resource_id: str, version: int | None, external_id: str | None, now: datetime
    ) -> bool:
        return await self.database.run(self._settle(intent_id, resource_id, version, external_id, now))

    def _settle(
        self, intent_id: str, resource_id: str, version: int | None, external_id: str | None, now: datetime
    ) -> Work[bool]:
        p = self.params()
        rows = yield p.query(f"DELETE FROM scimhost_intent WHERE id = {p(intent_id)} RETURNING {COLUMNS}")
        if not rows:
            return False
        intent = _intent(rows[0])
        scope = Scope(intent.source, intent.resource_type)
        yield from self.writes.insert_event(scope, resource_id, version, external_id, intent.event, now)
        return True

    async def abandon(self, intent_id: str) -> None:
        p = self.params()
        await self.database.execute(p.command(f"DELETE FROM scimhost_intent WHERE id = {p(intent_id)}"))

    async def opened_before(self, before: datetime, limit: int) -> list[Intent]:
        p = self.params()
        rows = await self.database.rows(
            p.query(
                f"SELECT {COLUMNS} FROM scimhost_intent WHERE opened < {p(before)} ORDER BY opened, id LIMIT {p(limit)}"
            )
        )
        return [_intent(row) for row in rows]


def _intent(row: Row) -> Intent:
    before = row["before_version"]
    opened = moment(row["opened"])
    return Intent(
        id=row["id"],
        source=row["source"],
        resource_type=row["resource_type"],
        key=row["key"],
        action=row["action"],
        resource_id=row["resource_id"],
        before_version=None if before is None else int(before),
        external_id=row["external_id"],
        event=draft_from_json(row["event"]),
        opened=opened,
    )
