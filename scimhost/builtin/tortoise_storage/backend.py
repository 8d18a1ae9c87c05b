from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import asyncpg
from tortoise.context import TortoiseContext
from tortoise.migrations.executor import MigrationExecutor

from scimhost.builtin.tortoise_storage.accounts import Accounts
from scimhost.builtin.tortoise_storage.credentials import Credentials
from scimhost.builtin.tortoise_storage.database import Database
from scimhost.builtin.tortoise_storage.deleted import Deleted
from scimhost.builtin.tortoise_storage.deliveries import DeliveryQueue
from scimhost.builtin.tortoise_storage.dialects import POSTGRES, SQLITE, Dialect
from scimhost.builtin.tortoise_storage.housekeeping import Housekeeping
from scimhost.builtin.tortoise_storage.intents import Intents
from scimhost.builtin.tortoise_storage.planner_statistics import PlannerStatistics
from scimhost.builtin.tortoise_storage.postgres_database import PostgresDatabase
from scimhost.builtin.tortoise_storage.postgres_writes import PostgresWrites
from scimhost.builtin.tortoise_storage.reads import Reads
from scimhost.builtin.tortoise_storage.rows import RESOURCE_COLUMNS, moment, stored_resource
from scimhost.builtin.tortoise_storage.scope import Scope
from scimhost.builtin.tortoise_storage.settings import TortoiseSettings, describe, tortoise_config
from scimhost.builtin.tortoise_storage.sqlite_database import SqliteDatabase
from scimhost.builtin.tortoise_storage.statements import Params
from scimhost.builtin.tortoise_storage.writes import SMALL_WRITE_ROWS, Writes
from scimhost.scim.index import IndexEntry
from scimhost.scim.query import ResourceQuery
from scimhost.storage.backend import (
    ClaimedDelivery,
    Credential,
    DeletedResource,
    EventDraft,
    FailedRequest,
    FinishedDelivery,
    Intent,
    MemberChange,
    ResourceNotFound,
    ResourcePage,
    ResourceWrite,
    ServiceAccount,
    SinkStats,
    SourceActivity,
    StorageBackend,
    StorageError,
    StoredEvent,
    StoredResource,
    StoreMissing,
    UnknownMembers,
)

log = logging.getLogger(__name__)

APP_LABEL = "scimhost"
APPS = {
    APP_LABEL: {
        "models": ["scimhost.builtin.tortoise_storage.models"],
        "default_connection": "default",
        "migrations": "scimhost.builtin.tortoise_storage.migrations",
    }
}
# Any constant works; it only has to be the same in every process of every host.
PG_MIGRATION_LOCK = 0x5C1A_0057


class TortoiseBackend(StorageBackend):
    """State in one SQL database reached through tortoise-orm."""

    name = "tortoise"
    settings_type = TortoiseSettings
    features = frozenset({"sort", "cursor_paging", "soft_delete", "all_filters"})

    def __init__(self, options: TortoiseSettings, *, base_dir: Path) -> None:
        super().__init__(options, base_dir=base_dir)
        self._config = tortoise_config(options, base_dir)
        self.dialect: Dialect = SQLITE if self._config["engine"].endswith("sqlite") else POSTGRES
        self._ctx: TortoiseContext | None = None
        self._database: Database | None = None
        self._accounts: Accounts
        self._reads: Reads
        self._writes: Writes
        self._housekeeping: Housekeeping
        self._deliveries: DeliveryQueue
        self._statistics: PlannerStatistics | None = None

    def describe(self) -> str:
        return describe(self._config)

    # --- lifecycle -----------------------------------------------------------------------------

    async def open(self, *, migrate: bool = True, create: bool = True) -> None:
        file_path = self._config["credentials"].get("file_path")
        if not create and self.dialect is SQLITE and not Path(file_path).exists():
            raise StoreMissing(f"{self.describe()} does not exist", creatable=True)
        ctx = TortoiseContext()
        try:
            async with self._sqlite_open_lock(create=create):
                with ctx:  # tortoise resolves connections through the current context while it inits
                    await ctx.init(config={"connections": {"default": self._config}, "apps": APPS})
                self._ctx = ctx
                await self._ping_tortoise()
                if migrate:
                    await self._migrate()
                self._use(self._open_database(file_path))
        except BaseException as exc:
            await self.close()
            await ctx.close_connections()
            if isinstance(exc, Exception) and not isinstance(exc, StorageError):
                raise StorageError(f"{self.describe()} cannot be opened: {exc}") from exc
            raise

    def _open_database(self, file_path: str | None) -> Database:
        if self.dialect is SQLITE:
            assert file_path is not None
            return SqliteDatabase(file_path, busy_timeout_ms=self.options.busy_timeout_ms)
        return PostgresDatabase(self._db(), self.describe())

    def _use(self, database: Database) -> None:
        self._database = database
        self._accounts = Accounts(database)
        self._credentials = Credentials(database)
        self._deleted = Deleted(database)
        self._reads = Reads(database)
        self._writes = PostgresWrites(database.dialect) if database.dialect is POSTGRES else Writes(database.dialect)
        self._housekeeping = Housekeeping(database.dialect)
        self._deliveries = DeliveryQueue(database)
        self._intents = Intents(database, self._writes)
        self._statistics = PlannerStatistics(database) if database.dialect is POSTGRES else None

    @property
    def database(self) -> Database:
        """Where statements run (for the backend's own modules, and tests that read raw rows)."""
        if self._database is None:
            raise StorageError("storage is not open")
        return self._database

    async def close(self) -> None:
        if self._statistics is not None:
            statistics, self._statistics = self._statistics, None
            await statistics.close()
        if self._database is not None:
            database, self._database = self._database, None
            await database.close()
        if self._ctx is not None:
            ctx, self._ctx = self._ctx, None
            await ctx.close_connections()

    async def _ping_tortoise(self) -> None:
        try:
            await self._db().execute_query("SELECT 1")
        except Exception as exc:  # tortoise, asyncpg and sqlite raise their own hierarchies
            if _caused_by(exc, asyncpg.InvalidCatalogNameError):
                credentials = self._config["credentials"]
                database = credentials.get("database")
                raise StoreMissing(
                    f"{self.describe()}: the database {database!r} does not exist on that server; create it "
                    f"(`createdb -h {credentials.get('host') or 'localhost'} -p {credentials.get('port') or 5432} "
                    f"-U {credentials.get('user') or 'postgres'} {database}`, or CREATE DATABASE in psql)",
                    creatable=False,
                ) from exc
            raise StorageError(f"{self.describe()} does not answer: {exc}") from exc

    async def ping(self) -> None:
        try:
            await self.database.rows(Params(self.database.dialect).query("SELECT 1"))
        except StorageError as exc:
            raise StorageError(f"{self.describe()} does not answer: {exc}") from exc

    async def pending_migrations(self) -> list[str]:
        with self._active():
            executor = MigrationExecutor(self._db(), APPS)
            return [f"{step.migration.app_label}.{step.migration.name}" for step in await executor.plan()]

    async def _migrate(self) -> None:
        async with self._postgres_migration_lock():
            with self._active():
                executor = MigrationExecutor(self._db(), APPS)
                plan = await executor.plan()
                for step in plan:
                    log.info("applying migration %s.%s", step.migration.app_label, step.migration.name)
                await executor.migrate()

    @contextlib.contextmanager
    def _active(self) -> Iterator[None]:
        # Tortoise's migration executor finds connections through the current context.
        assert self._ctx is not None, "storage is not open"
        with self._ctx:
            yield

    @contextlib.asynccontextmanager
    async def _postgres_migration_lock(self) -> AsyncIterator[None]:
        """Serialise migrations between processes and hosts sharing a PostgreSQL database."""
        if self.dialect is not POSTGRES:
            yield
            return
        async with self._db().acquire_connection() as connection:
            await connection.execute("SELECT pg_advisory_lock($1)", PG_MIGRATION_LOCK)
            try:
                yield
            finally:
                await connection.execute("SELECT pg_advisory_unlock($1)", PG_MIGRATION_LOCK)

    @contextlib.asynccontextmanager
    async def _sqlite_open_lock(self, *, create: bool) -> AsyncIterator[None]:
        """Serialise opening (connection pragmas and migrations) between processes on one file.

        Switching a file to WAL and changing its schema both need the database to themselves,
        and SQLite answers "database is locked" rather than waiting in those cases.
        """
        file_path = self._config["credentials"].get("file_path")
        # Without `create` the file exists, in WAL mode already: only the lock file would be new.
        if self.dialect is not SQLITE or (not create and not Path(file_path + ".open-lock").exists()):
            yield
            return
        Path(file_path).parent.mkdir(parents=True, exist_ok=True)
        with open(file_path + ".open-lock", "a+b") as lock_file:
            await asyncio.to_thread(fcntl.flock, lock_file.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)

    def _db(self) -> Any:
        if self._ctx is None:
            raise StorageError("storage is not open")
        return self._ctx.db()

    # --- credentials and activity (accounts.py) ------------------------------------------------

    async def ensure_service_account(self, source: str, username: str) -> ServiceAccount:
        return await self._accounts.ensure_service_account(source, username)

    async def service_accounts(self) -> list[ServiceAccount]:
        return await self._accounts.service_accounts()

    async def token_hashes(self, source: str, *, now: datetime) -> tuple[str, ...]:
        return await self._accounts.token_hashes(source, now=now)

    async def set_token_hash(self, source: str, token_hash: str, *, grace_until: datetime | None = None) -> None:
        await self._accounts.set_token_hash(source, token_hash, grace_until=grace_until)

    async def revoke_tokens(self, source: str) -> None:
        await self._accounts.revoke_tokens(source)
        await self._credentials.delete_sessions(source)

    # --- credentials of auth scheme plugins (credentials.py) -------------------------------------

    async def add_credential(self, source: str, credential: Credential) -> None:
        await self._credentials.add(source, credential)

    async def get_credential(self, source: str, kind: str, credential_id: str) -> Credential | None:
        return await self._credentials.get(source, kind, credential_id)

    async def list_credentials(self, source: str, kind: str) -> list[Credential]:
        return await self._credentials.list(source, kind)

    async def delete_credential(self, source: str, kind: str, credential_id: str) -> bool:
        return await self._credentials.delete(source, kind, credential_id)

    async def touch_credential(self, source: str, kind: str, credential_id: str, at: datetime) -> None:
        await self._credentials.touch(source, kind, credential_id, at)

    async def prune_credentials(self, *, before: datetime) -> int:
        return await self._credentials.prune(before=before)

    async def record_activity(
        self,
        source: str,
        minute: datetime,
        *,
        requests: int,
        errors: int,
        last_error_at: datetime | None = None,
        last_error: str | None = None,
    ) -> None:
        await self._accounts.record_activity(
            source, minute, requests=requests, errors=errors, last_error_at=last_error_at, last_error=last_error
        )

    async def source_activity(self, source: str, *, since: datetime) -> SourceActivity:
        return await self._accounts.source_activity(source, since=since)

    async def record_failed_requests(self, source: str, failures: Sequence[FailedRequest]) -> None:
        await self._accounts.record_failed_requests(source, failures)

    async def failed_requests(self, source: str, *, since: datetime, limit: int = 100) -> list[FailedRequest]:
        return await self._accounts.failed_requests(source, since=since, limit=limit)

    async def prune_activity(self, *, before: datetime) -> int:
        return await self._accounts.prune_activity(before=before)

    async def purge_source(self, source: str) -> dict[str, int]:
        return await self.database.run(self._housekeeping.purge_source(source), small=False)

    # --- resources (writes.py, reads.py) ------------------------------------------------------

    async def create_resource(
        self,
        source: str,
        resource_type: str,
        write: ResourceWrite,
        members: Sequence[str] = (),
        *,
        event: EventDraft | None = None,
    ) -> StoredResource:
        resource_id, now = str(uuid.uuid4()), _now()
        work = self._writes.create(Scope(source, resource_type), resource_id, write, members, event, now)
        await self.database.run(work, small=len(members) + len(write.index) <= SMALL_WRITE_ROWS)
        self._wrote()
        return StoredResource(resource_id, resource_type, write.document, 1, now, now)

    async def get_resource(
        self, source: str, resource_type: str, resource_id: str, *, members: bool = True, groups: bool = True
    ) -> StoredResource | None:
        return await self._reads.get_resource(Scope(source, resource_type), resource_id, members=members, groups=groups)

    async def stale_index(
        self, source: str, resource_type: str, fingerprint: str, *, after: str | None = None, limit: int = 200
    ) -> list[StoredResource]:
        scope = Scope(source, resource_type)
        p = Params(self.dialect)
        condition = f"(r.index_fingerprint IS NULL OR r.index_fingerprint <> {p(fingerprint)})"
        if after is not None:
            condition += f" AND r.id > {p(after)}"
        rows = await self.database.rows(
            p.query(
                f"SELECT {RESOURCE_COLUMNS} FROM scimhost_resource r WHERE {scope.where(p, 'r', condition)} "
                f"ORDER BY r.id LIMIT {p(limit)}"
            )
        )
        return [stored_resource(row) for row in rows]

    async def reindex_resource(
        self,
        source: str,
        resource_type: str,
        resource_id: str,
        *,
        version: int,
        index: Sequence[IndexEntry],
        unique_values: dict[str, str],
        fingerprint: str,
    ) -> bool:
        work = self._writes.reindex(
            Scope(source, resource_type), resource_id, version, index, unique_values, fingerprint
        )
        return await self.database.run(work, small=len(index) <= SMALL_WRITE_ROWS)

    async def get_record(self, source: str, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        return await self._reads.get_record(Scope(source, resource_type), resource_id)

    def iter_members(self, source: str, group_id: str, *, batch: int = 1000) -> AsyncIterator[list[dict[str, Any]]]:
        return self._reads.iter_members(Scope(source), group_id, batch)

    async def count_members(self, source: str, group_id: str) -> int:
        return await self._reads.count_members(Scope(source), group_id)

    async def update_resource(
        self,
        source: str,
        resource_type: str,
        resource_id: str,
        *,
        expected_version: int | None,
        write: ResourceWrite | None,
        member_changes: Sequence[MemberChange] = (),
        event: EventDraft | None = None,
    ) -> StoredResource:
        scope = Scope(source, resource_type)
        work = self._writes.update(scope, resource_id, expected_version, write, member_changes, event, _now())
        rows = len(write.index) if write is not None else 0
        rows += sum(len(change.ids) for change in member_changes)
        try:
            row = await self.database.run(work, small=rows <= SMALL_WRITE_ROWS)
        except UnknownMembers:
            # A group deleted while its members changed fails the new rows' foreign key, as a
            # member deleted meanwhile does: the group's absence is the answer (404, not 400).
            if await self.get_resource(source, resource_type, resource_id, members=False, groups=False) is None:
                raise ResourceNotFound() from None
            raise
        self._wrote()
        return stored_resource(row, groups=True)

    async def delete_resource(
        self,
        source: str,
        resource_type: str,
        resource_id: str,
        *,
        expected_version: int | None = None,
        event: EventDraft | None = None,
        soft: bool = False,
    ) -> None:
        scope = Scope(source, resource_type)
        small = True
        if self.dialect is SQLITE:
            # The cascade takes a group's membership rows with it: a big group is a large write,
            # which SQLite must not run on the event loop's thread.
            p = Params(self.database.dialect)
            where = scope.members(p, "m", f"m.group_id = {p(resource_id)}")
            many = await self.database.rows(
                p.query(
                    f"SELECT COUNT(*) AS n FROM (SELECT 1 FROM scimhost_member m WHERE {where} "
                    f"LIMIT {p(SMALL_WRITE_ROWS + 1)}) AS c"
                )
            )
            small = int(many[0]["n"]) <= SMALL_WRITE_ROWS
        work = self._writes.delete(scope, resource_id, expected_version, event, _now(), soft=soft)
        await self.database.run(work, small=small)
        self._wrote()

    # --- soft-deleted resources (deleted.py; moved in and out by writes.py) -------------------

    async def deleted_resources(
        self, source: str, resource_type: str, *, limit: int = 100, before: datetime | None = None
    ) -> list[DeletedResource]:
        return await self._deleted.list(Scope(source, resource_type), limit=limit, before=before)

    async def find_deleted(
        self,
        source: str,
        resource_type: str,
        *,
        resource_id: str | None = None,
        external_id: str | None = None,
        name_key: str | None = None,
    ) -> DeletedResource | None:
        return await self._deleted.find(
            Scope(source, resource_type), resource_id=resource_id, external_id=external_id, name_key=name_key
        )

    async def restore_resource(
        self,
        source: str,
        resource_type: str,
        resource_id: str,
        write: ResourceWrite,
        members: Sequence[str] = (),
        *,
        event: EventDraft | None = None,
    ) -> StoredResource:
        now = _now()
        work = self._writes.restore(Scope(source, resource_type), resource_id, write, members, event, now)
        version, created = await self.database.run(work, small=len(members) + len(write.index) <= SMALL_WRITE_ROWS)
        self._wrote()
        return StoredResource(resource_id, resource_type, write.document, version, moment(created), now)

    async def purge_deleted(self, source: str, *, before: datetime, batch: int = 1000) -> int:
        return await self._deleted.purge(Scope(source), before=before, batch=batch)

    def _wrote(self) -> None:
        """A resource write committed (PostgreSQL's planner statistics follow the writes)."""
        if self._statistics is not None:
            self._statistics.wrote()

    async def list_resources(
        self, source: str, resource_type: str, query: ResourceQuery, *, members: bool = True, groups: bool = True
    ) -> ResourcePage:
        return await self._reads.list_resources(Scope(source, resource_type), query, members=members, groups=groups)

    # --- the event log ---------------------------------------------------------------------------

    async def list_events(
        self,
        source: str,
        *,
        resource_type: str | None = None,
        resource_id: str | None = None,
        since: datetime | None = None,
        after_seq: int | None = None,
        before_seq: int | None = None,
        newest_first: bool = False,
        limit: int = 100,
    ) -> list[StoredEvent]:
        return await self._reads.list_events(
            Scope(source, resource_type),
            resource_id=resource_id,
            since=since,
            after_seq=after_seq,
            before_seq=before_seq,
            newest_first=newest_first,
            limit=limit,
        )

    async def get_event(self, source: str, event_id: str | int) -> StoredEvent | None:
        return await self._reads.get_event(Scope(source), event_id)

    async def prune_events(self, source: str, *, before: datetime, batch: int = 1000) -> int:
        pruned = 0
        while True:
            changed = await self.database.run(
                self._housekeeping.prune_events(source, before, batch), small=batch <= SMALL_WRITE_ROWS
            )
            pruned += changed
            if changed < batch:
                return pruned

    # --- deliveries (deliveries.py) ----------------------------------------------------------------

    async def claim_deliveries(
        self, sink: str, *, now: datetime, limit: int, lease_seconds: float
    ) -> list[ClaimedDelivery]:
        return await self._deliveries.claim_deliveries(sink, now=now, limit=limit, lease_seconds=lease_seconds)

    async def finish_and_claim(
        self,
        sink: str,
        finished: Sequence[FinishedDelivery],
        *,
        now: datetime,
        limit: int,
        lease_seconds: float,
    ) -> list[ClaimedDelivery]:
        return await self._deliveries.claim_deliveries(
            sink, now=now, limit=limit, lease_seconds=lease_seconds, finished=finished
        )

    async def finish_delivery(
        self,
        sink: str,
        event_seq: int,
        *,
        state: Literal["done", "pending", "dead"],
        now: datetime,
        next_attempt: datetime | None = None,
        status: int | None = None,
        error: str | None = None,
    ) -> None:
        finished = FinishedDelivery(event_seq, state, next_attempt=next_attempt, status=status, error=error)
        await self._deliveries.finish_deliveries(sink, [finished], now=now)

    async def finish_deliveries(self, sink: str, finished: Sequence[FinishedDelivery], *, now: datetime) -> None:
        await self._deliveries.finish_deliveries(sink, finished, now=now)

    async def deliveries_of(self, source: str, event_seq: int) -> list[dict[str, Any]]:
        return await self._deliveries.deliveries_of(source, event_seq)

    async def reclaim_inflight(self, sink: str, *, now: datetime) -> int:
        return await self._deliveries.reclaim_inflight(sink, now=now)

    async def requeue_deliveries(
        self,
        sink: str,
        *,
        now: datetime,
        states: Sequence[str],
        since: datetime | None = None,
        seqs: Sequence[int] | None = None,
    ) -> int:
        return await self._deliveries.requeue_deliveries(sink, now=now, states=states, since=since, seqs=seqs)

    async def sink_stats(self, sink: str) -> SinkStats:
        return await self._deliveries.sink_stats(sink)

    async def paused_sinks(self) -> dict[str, str | None]:
        return await self._deliveries.paused_sinks()

    async def set_sink_paused(self, sink: str, paused: bool, *, reason: str | None, now: datetime) -> None:
        await self._deliveries.set_sink_paused(sink, paused, reason=reason, now=now)

    async def take_lease(self, name: str, owner: str, *, now: datetime, seconds: float) -> bool:
        return await self._deliveries.take_lease(name, owner, now=now, seconds=seconds)

    async def release_lease(self, name: str, owner: str) -> None:
        await self._deliveries.release_lease(name, owner)

    async def lease_holder(self, name: str, *, now: datetime) -> str | None:
        return await self._deliveries.lease_holder(name, now=now)

    # --- intents of writes in another resource store (intents.py) --------------------------------

    async def open_intent(self, intent: Intent) -> None:
        await self._intents.open(intent)

    async def settle_intent(
        self,
        intent_id: str,
        *,
        resource_id: str,
        version: int | None,
        external_id: str | None,
        now: datetime,
    ) -> bool:
        return await self._intents.settle(
            intent_id, resource_id=resource_id, version=version, external_id=external_id, now=now
        )

    async def abandon_intent(self, intent_id: str) -> None:
        await self._intents.abandon(intent_id)

    async def open_intents(self, *, opened_before: datetime, limit: int = 100) -> list[Intent]:
        return await self._intents.opened_before(opened_before, limit)


def _now() -> datetime:
    return datetime.now(UTC)


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether `kind` is in the exception's chain (tortoise wraps the driver's errors)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
