"""The credentials auth scheme plugins keep per source (client secrets, issued access tokens)."""

from __future__ import annotations

from datetime import datetime

from scimhost.builtin.tortoise_storage.database import Database
from scimhost.builtin.tortoise_storage.rows import as_datetime, moment
from scimhost.builtin.tortoise_storage.scope import Scope
from scimhost.builtin.tortoise_storage.statements import Params, Row
from scimhost.storage.backend import Credential, StorageError

COLUMNS = "c.kind, c.credential_id, c.secret_hash, c.created, c.expires, c.session, c.last_used"


class Credentials:
    """The credential statements on one database, each scoped to one source."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def params(self) -> Params:
        return Params(self.database.dialect)

    async def add(self, source: str, credential: Credential) -> None:
        p = self.params()
        values = (
            source,
            credential.kind,
            credential.id,
            credential.secret_hash,
            credential.created,
            credential.expires,
            credential.session,
            credential.last_used,
        )
        added = await self.database.execute(
            p.command(
                "INSERT INTO scimhost_credential "
                "(source, kind, credential_id, secret_hash, created, expires, session, last_used) "
                f"VALUES ({p.each(values)}) ON CONFLICT (source, kind, credential_id) DO NOTHING"
            )
        )
        if not added:
            raise StorageError(f"source {source!r} already has a {credential.kind} {credential.id!r}")

    async def get(self, source: str, kind: str, credential_id: str) -> Credential | None:
        p = self.params()
        condition = f"c.kind = {p(kind)} AND c.credential_id = {p(credential_id)}"
        rows = await self.database.rows(
            p.query(f"SELECT {COLUMNS} FROM scimhost_credential c WHERE {Scope(source).rows(p, 'c', condition)}")
        )
        return _credential(rows[0]) if rows else None

    async def list(self, source: str, kind: str) -> list[Credential]:
        p = self.params()
        where = Scope(source).rows(p, "c", f"c.kind = {p(kind)}")
        rows = await self.database.rows(
            p.query(f"SELECT {COLUMNS} FROM scimhost_credential c WHERE {where} ORDER BY c.created, c.id")
        )
        return [_credential(row) for row in rows]

    async def delete(self, source: str, kind: str, credential_id: str) -> bool:
        p = self.params()
        condition = f"c.kind = {p(kind)} AND c.credential_id = {p(credential_id)}"
        where = Scope(source).rows(p, "c", condition)
        return bool(await self.database.execute(p.command(f"DELETE FROM scimhost_credential AS c WHERE {where}")))

    async def touch(self, source: str, kind: str, credential_id: str, at: datetime) -> None:
        p = self.params()
        condition = (
            f"c.kind = {p(kind)} AND c.credential_id = {p(credential_id)} "
            f"AND (c.last_used IS NULL OR c.last_used < {p(at)})"
        )
        where = Scope(source).rows(p, "c", condition)
        await self.database.execute(p.command(f"UPDATE scimhost_credential AS c SET last_used = {p(at)} WHERE {where}"))

    async def delete_sessions(self, source: str) -> int:
        p = self.params()
        where = Scope(source).rows(p, "c", f"c.session = {p(True)}")
        return await self.database.execute(p.command(f"DELETE FROM scimhost_credential AS c WHERE {where}"))

    async def prune(self, *, before: datetime) -> int:
        p = self.params()
        return await self.database.execute(
            p.command(f"DELETE FROM scimhost_credential WHERE expires IS NOT NULL AND expires < {p(before)}")
        )


def _credential(row: Row) -> Credential:
    return Credential(
        kind=row["kind"],
        id=row["credential_id"],
        secret_hash=row["secret_hash"],
        created=moment(row["created"]),
        expires=as_datetime(row["expires"]),
        session=bool(row["session"]),
        last_used=as_datetime(row["last_used"]),
    )
