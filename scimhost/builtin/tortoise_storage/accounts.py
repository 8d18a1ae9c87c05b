"""Service accounts and their token hashes, and each source's request activity and failed
requests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from scimhost.builtin.tortoise_storage.database import Database
from scimhost.builtin.tortoise_storage.rows import as_datetime, moment
from scimhost.builtin.tortoise_storage.scope import Scope
from scimhost.builtin.tortoise_storage.statements import Params, Row
from scimhost.storage.backend import FailedRequest, ServiceAccount, SourceActivity, StorageError

ACCOUNT_COLUMNS = "source, username, created, token_created, previous_expires"


class Accounts:
    """The credentials and activity statements on one database."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def params(self) -> Params:
        return Params(self.database.dialect)

    async def ensure_service_account(self, source: str, username: str) -> ServiceAccount:
        p = self.params()
        await self.database.execute(
            p.command(
                "INSERT INTO scimhost_service_account (source, username, created) "
                f"VALUES ({p.each((source, username, _now()))}) ON CONFLICT (source) DO NOTHING"
            )
        )
        p = self.params()
        rows = await self.database.rows(
            p.query(f"SELECT {ACCOUNT_COLUMNS} FROM scimhost_service_account a WHERE {Scope(source).rows(p, 'a')}")
        )
        return _service_account(rows[0])

    async def service_accounts(self) -> list[ServiceAccount]:
        p = self.params()
        rows = await self.database.rows(
            p.query(f"SELECT {ACCOUNT_COLUMNS} FROM scimhost_service_account ORDER BY source")
        )
        return [_service_account(row) for row in rows]

    async def token_hashes(self, source: str, *, now: datetime) -> tuple[str, ...]:
        p = self.params()
        rows = await self.database.rows(
            p.query(
                "SELECT a.token_hash, a.previous_hash, a.previous_expires FROM scimhost_service_account a "
                f"WHERE {Scope(source).rows(p, 'a')}"
            )
        )
        if not rows:
            return ()
        row = rows[0]
        hashes = [row["token_hash"]] if row["token_hash"] else []
        expires = as_datetime(row["previous_expires"])
        if row["previous_hash"] and expires is not None and now < expires:
            hashes.append(row["previous_hash"])
        return tuple(hashes)

    async def set_token_hash(self, source: str, token_hash: str, *, grace_until: datetime | None) -> None:
        p = self.params()
        if grace_until is None:
            assignments = (
                f"token_hash = {p(token_hash)}, token_created = {p(_now())}, previous_hash = NULL, "
                "previous_expires = NULL"
            )
        else:
            assignments = (
                f"previous_hash = token_hash, previous_expires = {p(grace_until)}, "
                f"token_hash = {p(token_hash)}, token_created = {p(_now())}"
            )
        changed = await self.database.execute(
            p.command(f"UPDATE scimhost_service_account AS a SET {assignments} WHERE {Scope(source).rows(p, 'a')}")
        )
        if not changed:
            raise StorageError(f"source {source!r} has no service account")

    async def revoke_tokens(self, source: str) -> None:
        p = self.params()
        await self.database.execute(
            p.command(
                "UPDATE scimhost_service_account AS a SET token_hash = NULL, token_created = NULL, "
                f"previous_hash = NULL, previous_expires = NULL WHERE {Scope(source).rows(p, 'a')}"
            )
        )

    # --- per-source activity ---------------------------------------------------------------------

    async def record_activity(
        self,
        source: str,
        minute: datetime,
        *,
        requests: int,
        errors: int,
        last_error_at: datetime | None,
        last_error: str | None,
    ) -> None:
        p = self.params()
        newer_error = (
            "excluded.last_error_at IS NOT NULL AND (scimhost_source_activity.last_error_at IS NULL "
            "OR excluded.last_error_at > scimhost_source_activity.last_error_at)"
        )
        await self.database.execute(
            p.command(
                "INSERT INTO scimhost_source_activity (source, minute, requests, errors, last_error_at, last_error) "
                f"VALUES ({p.each((source, minute, requests, errors, last_error_at, last_error))}) "
                "ON CONFLICT (source, minute) DO UPDATE SET "
                "requests = scimhost_source_activity.requests + excluded.requests, "
                "errors = scimhost_source_activity.errors + excluded.errors, "
                f"last_error = CASE WHEN {newer_error} THEN excluded.last_error "
                "ELSE scimhost_source_activity.last_error END, "
                f"last_error_at = CASE WHEN {newer_error} THEN excluded.last_error_at "
                "ELSE scimhost_source_activity.last_error_at END"
            )
        )

    async def source_activity(self, source: str, *, since: datetime) -> SourceActivity:
        scope = Scope(source)
        p = self.params()
        totals = await self.database.rows(
            p.query(
                "SELECT SUM(a.requests) AS requests, SUM(a.errors) AS errors FROM scimhost_source_activity a "
                f"WHERE {scope.rows(p, 'a', f'a.minute >= {p(since)}')}"
            )
        )
        p = self.params()
        last = await self.database.rows(
            p.query(f"SELECT MAX(a.minute) AS minute FROM scimhost_source_activity a WHERE {scope.rows(p, 'a')}")
        )
        p = self.params()
        error = await self.database.rows(
            p.query(
                "SELECT a.last_error_at, a.last_error FROM scimhost_source_activity a "
                f"WHERE {scope.rows(p, 'a', 'a.last_error_at IS NOT NULL')} "
                "ORDER BY a.last_error_at DESC LIMIT 1"
            )
        )
        return SourceActivity(
            requests=int(totals[0]["requests"] or 0),
            errors=int(totals[0]["errors"] or 0),
            last_request=as_datetime(last[0]["minute"]) if last else None,
            last_error_at=as_datetime(error[0]["last_error_at"]) if error else None,
            last_error=error[0]["last_error"] if error else None,
        )

    async def record_failed_requests(self, source: str, failures: Sequence[FailedRequest]) -> None:
        for failure in failures:
            p = self.params()
            values = (
                source,
                failure.at,
                failure.method,
                failure.path,
                failure.status,
                failure.scim_type,
                failure.detail,
                failure.request_id,
            )
            await self.database.execute(
                p.command(
                    "INSERT INTO scimhost_failed_request "
                    "(source, at, method, path, status, scim_type, detail, request_id) "
                    f"VALUES ({p.each(values)})"
                )
            )

    async def failed_requests(self, source: str, *, since: datetime, limit: int = 100) -> list[FailedRequest]:
        p = self.params()
        rows = await self.database.rows(
            p.query(
                "SELECT f.at, f.method, f.path, f.status, f.scim_type, f.detail, f.request_id "
                f"FROM scimhost_failed_request f WHERE {Scope(source).rows(p, 'f', f'f.at >= {p(since)}')} "
                f"ORDER BY f.at DESC, f.id DESC LIMIT {p(limit)}"
            )
        )
        return [
            FailedRequest(
                at=moment(row["at"]),
                method=row["method"],
                path=row["path"],
                status=int(row["status"]),
                scim_type=row["scim_type"],
                detail=row["detail"],
                request_id=row["request_id"],
            )
            for row in rows
        ]

    async def prune_activity(self, *, before: datetime) -> int:
        p = self.params()
        minutes = await self.database.execute(
            p.command(f"DELETE FROM scimhost_source_activity WHERE minute < {p(before)}")
        )
        p = self.params()
        failures = await self.database.execute(p.command(f"DELETE FROM scimhost_failed_request WHERE at < {p(before)}"))
        return minutes + failures


def _now() -> datetime:
    return datetime.now(UTC)


def _service_account(row: Row) -> ServiceAccount:
    return ServiceAccount(
        source=row["source"],
        username=row["username"],
        created=moment(row["created"]),
        token_created=as_datetime(row["token_created"]),
        previous_expires=as_datetime(row.get("previous_expires")),
    )
