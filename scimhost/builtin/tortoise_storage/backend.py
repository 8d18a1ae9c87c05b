"""The built-in storage backend: tortoise-orm on SQLite (embedded default) or PostgreSQL.

Tortoise owns the schema, the migrations and the connections. Queries are built SQL run on
tortoise's connection with bound parameters (the model API costs most of the request budget on
hot paths such as the token check every request makes; docs/decisions.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import fcntl
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from tortoise.backends.base.config_generator import expand_db_url
from tortoise.context import TortoiseContext
import orjson
from tortoise.exceptions import BaseORMException, DBConnectionError, IntegrityError, OperationalError
from tortoise.migrations.executor import MigrationExecutor

from scimhost.builtin.tortoise_storage.deliveries import DeliveryQueue
from scimhost.builtin.tortoise_storage.filter_sql import FilterSQL as _FilterSQL
from scimhost.builtin.tortoise_storage.rows import EVENT_COLUMNS, as_datetime, stored_event
from scimhost.builtin.tortoise_storage.scope import Scope
from scimhost.builtin.tortoise_storage.sqlite_direct import SqliteDirect
from scimhost.scim.query import ResourceQuery, SortKey
from scimhost.storage.backend import (
    KEEP,
    EventDraft,
    MemberChange,
    ResourceNotFound,
    ResourcePage,
    ResourceWrite,
    ServiceAccount,
    SourceActivity,
    StorageBackend,
    StorageError,
    StoredEvent,
    StoredResource,
    UniquenessConflict,
    UnknownMembers,
    VersionMismatch,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

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
# Ids per statement: well under SQLite's and PostgreSQL's limits on bound parameters.
CHUNK = 500
# Rows a write may change and still count as small (see _atomic).
SMALL_WRITE_ROWS = 200
RESOURCE_COLUMNS = "id, resource_type, data, version, created, last_modified"


@dataclass(frozen=True)
class TortoiseSettings:
    """The `[storage.tortoise]` table."""

    # sqlite://PATH (relative paths resolve against the config file's folder) or
    # postgres://user:password@host:5432/database
    url: str = "sqlite://./scimhost.sqlite3"
    # PostgreSQL connection pool bounds, per host process.
    min_connections: int = 1
    max_connections: int = 10
    # SQLite: how long a writer waits for the lock held by another process.
    busy_timeout_ms: int = 5000

    def __post_init__(self) -> None:
        scheme = urlsplit(self.url).scheme
        if scheme not in ("sqlite", "postgres", "postgresql", "asyncpg"):
            raise ValueError("url: must start with sqlite:// or postgres://")
        if not 1 <= self.min_connections <= self.max_connections:
            raise ValueError("max_connections: must be at least min_connections (and both at least 1)")
        if self.busy_timeout_ms < 0:
            raise ValueError("busy_timeout_ms: must not be negative")


class TortoiseBackend(DeliveryQueue, StorageBackend):
    """State in one SQL database reached through tortoise-orm."""

    name = "tortoise"
    settings_type = TortoiseSettings
    features = frozenset({"sort", "cursor_paging"})

    def __init__(self, options: TortoiseSettings, *, base_dir: Path) -> None:
        super().__init__(options, base_dir=base_dir)
        self._config = self._tortoise_config()
        self._dialect = "sqlite" if self._config["engine"].endswith("sqlite") else "postgres"
        self._ctx: TortoiseContext | None = None
        # SQLite's hot paths run on the backend's own connections (sqlite_direct.py).
        self._direct: SqliteDirect | None = None
        self._sql_cache: dict[str, str] = {}

    # --- configuration -----------------------------------------------------------------------

    def _tortoise_config(self) -> dict[str, Any]:
        url = self.options.url
        parts = urlsplit(url)
        if parts.scheme == "sqlite":
            raw_path = url[len("sqlite://") :].split("?", 1)[0]
            if raw_path != ":memory:":
                path = Path(raw_path).expanduser()
                if not path.is_absolute():
                    path = (self.base_dir / path).resolve()
                raw_path = str(path)
            # Pragmas, applied in this order: the busy timeout first, so that a second process
            # waits for the write lock (switching to WAL takes it) instead of failing at once;
            # WAL lets readers run beside the writer.
            credentials: dict[str, Any] = {
                "file_path": raw_path,
                "busy_timeout": str(self.options.busy_timeout_ms),
            }
            credentials.update(dict(parse_qsl(parts.query)))
            credentials.setdefault("journal_mode", "WAL")
            credentials.setdefault("synchronous", "NORMAL")
            credentials.setdefault("foreign_keys", "ON")
            return {"engine": "tortoise.backends.sqlite", "credentials": credentials}
        if parts.scheme in ("postgresql", "asyncpg"):
            url = "postgres" + url[len(parts.scheme) :]
        config = expand_db_url(url)
        config["credentials"].setdefault("minsize", self.options.min_connections)
        config["credentials"].setdefault("maxsize", self.options.max_connections)
        config["credentials"]["reset"] = _release_connection
        return config

    def describe(self) -> str:
        credentials = self._config["credentials"]
        if self._dialect == "sqlite":
            return f"SQLite {credentials['file_path']}"
        host = credentials.get("host") or "localhost"
        port = credentials.get("port") or 5432
        schema = f" (schema {credentials['schema']})" if credentials.get("schema") else ""
        return f"PostgreSQL {credentials.get('user') or ''}@{host}:{port}/{credentials.get('database')}{schema}"

    # --- lifecycle -----------------------------------------------------------------------------

    async def open(self, *, migrate: bool = True, create: bool = True) -> None:
        file_path = self._config["credentials"].get("file_path")
        if not create and self._dialect == "sqlite" and file_path != ":memory:" and not Path(file_path).exists():
            raise StorageError(f"{self.describe()} does not exist (`scimhost migrate` or `scimhost serve` creates it)")
        ctx = TortoiseContext()
        try:
            async with self._sqlite_open_lock(create=create):
                with ctx:  # tortoise resolves connections through the current context while it inits
                    await ctx.init(config={"connections": {"default": self._config}, "apps": APPS})
                self._ctx = ctx
                self._task_context = contextvars.copy_context()
                self._task_context.run(ctx.__enter__)
                await self.ping()
                if migrate:
                    await self._migrate()
                if self._dialect == "sqlite" and file_path != ":memory:":
                    self._direct = SqliteDirect(file_path, busy_timeout_ms=self.options.busy_timeout_ms)
        except BaseException as exc:
            await ctx.close_connections()
            self._ctx = None
            if isinstance(exc, Exception) and not isinstance(exc, StorageError):
                raise StorageError(f"{self.describe()} cannot be opened: {exc}") from exc
            raise

    async def close(self) -> None:
        if self._direct is not None:
            direct, self._direct = self._direct, None
            await direct.close()
        if self._ctx is not None:
            ctx, self._ctx = self._ctx, None
            await ctx.close_connections()

    async def ping(self) -> None:
        try:
            await self._db().execute_query("SELECT 1")
        except (OSError, BaseORMException, asyncio.TimeoutError) as exc:
            raise StorageError(f"{self.describe()} does not answer: {exc}") from exc
        except Exception as exc:  # asyncpg and sqlite raise their own hierarchies
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
    def _active(self):
        # Tortoise's migration executor finds connections through the current context.
        assert self._ctx is not None, "storage is not open"
        with self._ctx:
            yield

    @contextlib.asynccontextmanager
    async def _postgres_migration_lock(self) -> AsyncIterator[None]:
        """Serialise migrations between processes and hosts sharing a PostgreSQL database."""
        if self._dialect != "postgres":
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
        if self._dialect != "sqlite" or file_path == ":memory:" or (
            not create and not Path(file_path + ".open-lock").exists()
        ):
            yield
            return
        Path(file_path).parent.mkdir(parents=True, exist_ok=True)
        with open(file_path + ".open-lock", "a+b") as lock_file:
            await asyncio.to_thread(fcntl.flock, lock_file.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)

    async def _atomic(self, body: Callable[[Any], Awaitable[T]], *, small: bool = True) -> T:
        """Run `body(tx)` in one transaction; commit when it returns, roll back when it raises.

        `small`: the transaction writes a bounded number of rows (SQLite may run it on the
        event loop's thread, sqlite_direct.py).

        Tortoise finds the transaction's connection through its current context, which it keeps
        in a context variable; so the body runs as a task in a copy of a context where this
        backend's TortoiseContext is current, isolated from concurrent transactions.
        """

        if self._direct is not None:
            try:
                return await self._direct.transaction(body, small=small)
            except OperationalError as exc:
                raise StorageError(f"{self.describe()}: {exc}") from exc

        async def run() -> T:
            async with self._db()._in_transaction() as tx:
                return await body(tx)

        try:
            return await asyncio.create_task(run(), context=self._task_context.copy())
        except (OperationalError, DBConnectionError, OSError) as exc:
            raise StorageError(f"{self.describe()}: {exc}") from exc

    def _db(self):
        if self._ctx is None:
            raise StorageError("storage is not open")
        return self._ctx.db()

    def _sql(self, text: str) -> str:
        """`text` written with `?` placeholders, in this database's placeholder style."""
        cached = self._sql_cache.get(text)
        if cached is None:
            if self._dialect == "postgres":
                pieces = text.split("?")
                cached = pieces[0] + "".join(f"${i}{p}" for i, p in enumerate(pieces[1:], 1))
            else:
                cached = text
            if len(self._sql_cache) < 512:  # filters give many shapes; keep the common ones
                self._sql_cache[text] = cached
        return cached

    async def _execute(self, text: str, values: list[Any]) -> int:
        """Run one statement outside a transaction; how many rows it changed."""
        try:
            changed, _ = await self._db().execute_query(self._sql(text), values)
        except (BaseORMException, OSError) as exc:
            raise StorageError(f"{self.describe()}: {exc}") from exc
        return changed

    async def _rows(self, text: str, values: list[Any]) -> list[dict[str, Any]]:
        """The rows of a read (on SQLite, on the loop's thread when it is short; sqlite_direct.py)."""
        try:
            if self._direct is not None:
                rows = self._direct.read(text, values)
                return rows if rows is not None else await self._direct.scan(text, values)
            return await self._db().execute_query_dict(self._sql(text), values)
        except (OperationalError, DBConnectionError, OSError) as exc:
            raise StorageError(f"{self.describe()}: {exc}") from exc

    # --- service accounts and tokens ---------------------------------------------------------

    async def ensure_service_account(self, source: str, username: str) -> ServiceAccount:
        await self._db().execute_query(
            self._sql(
                "INSERT INTO scimhost_service_account (source, username, created) VALUES (?, ?, ?) "
                "ON CONFLICT (source) DO NOTHING"
            ),
            [source, username, _now()],
        )
        rows = await self._rows(
            "SELECT source, username, created, token_created, previous_expires FROM scimhost_service_account WHERE source = ?",
            [source],
        )
        return _service_account(rows[0])

    async def service_accounts(self) -> list[ServiceAccount]:
        rows = await self._rows(
            "SELECT source, username, created, token_created, previous_expires FROM scimhost_service_account ORDER BY source",
            [],
        )
        return [_service_account(row) for row in rows]

    async def token_hashes(self, source: str, *, now: datetime) -> tuple[str, ...]:
        rows = await self._rows(
            "SELECT token_hash, previous_hash, previous_expires FROM scimhost_service_account WHERE source = ?",
            [source],
        )
        if not rows:
            return ()
        row = rows[0]
        hashes = [row["token_hash"]] if row["token_hash"] else []
        expires = as_datetime(row["previous_expires"])
        if row["previous_hash"] and expires is not None and now < expires:
            hashes.append(row["previous_hash"])
        return tuple(hashes)

    async def set_token_hash(self, source: str, token_hash: str, *, grace_until: datetime | None = None) -> None:
        if grace_until is None:
            sql = ("UPDATE scimhost_service_account SET token_hash = ?, token_created = ?, previous_hash = NULL, "
                   "previous_expires = NULL WHERE source = ?")
            values = [token_hash, _now(), source]
        else:
            sql = ("UPDATE scimhost_service_account SET previous_hash = token_hash, previous_expires = ?, "
                   "token_hash = ?, token_created = ? WHERE source = ?")
            values = [grace_until, token_hash, _now(), source]
        if not await self._execute(sql, values):
            raise StorageError(f"source {source!r} has no service account")

    async def revoke_tokens(self, source: str) -> None:
        await self._execute(
            "UPDATE scimhost_service_account SET token_hash = NULL, token_created = NULL, previous_hash = NULL, "
            "previous_expires = NULL WHERE source = ?",
            [source],
        )

    # --- per-source activity ---------------------------------------------------------------------

    async def record_activity(
        self, source: str, minute: datetime, *, requests: int, errors: int,
        last_error_at: datetime | None = None, last_error: str | None = None,
    ) -> None:
        await self._execute(
            (
                "INSERT INTO scimhost_source_activity (source, minute, requests, errors, last_error_at, last_error) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (source, minute) DO UPDATE SET "
                "requests = scimhost_source_activity.requests + excluded.requests, "
                "errors = scimhost_source_activity.errors + excluded.errors, "
                "last_error = CASE WHEN excluded.last_error_at IS NOT NULL AND (scimhost_source_activity.last_error_at "
                "IS NULL OR excluded.last_error_at > scimhost_source_activity.last_error_at) THEN excluded.last_error "
                "ELSE scimhost_source_activity.last_error END, "
                "last_error_at = CASE WHEN excluded.last_error_at IS NOT NULL AND (scimhost_source_activity.last_error_at "
                "IS NULL OR excluded.last_error_at > scimhost_source_activity.last_error_at) THEN excluded.last_error_at "
                "ELSE scimhost_source_activity.last_error_at END"
            ),
            [source, minute, requests, errors, last_error_at, last_error],
        )

    async def source_activity(self, source: str, *, since: datetime) -> SourceActivity:
        where, values = Scope(source).where("a", "a.minute >= ?", [since], typed=False)
        totals = await self._rows(
            f"SELECT SUM(a.requests) AS requests, SUM(a.errors) AS errors FROM scimhost_source_activity a WHERE {where}",
            values,
        )
        where, values = Scope(source).where("a", typed=False)
        last = await self._rows(
            f"SELECT MAX(a.minute) AS minute FROM scimhost_source_activity a WHERE {where}", values
        )
        where, values = Scope(source).where("a", "a.last_error_at IS NOT NULL", typed=False)
        error = await self._rows(
            f"SELECT a.last_error_at, a.last_error FROM scimhost_source_activity a WHERE {where} "
            "ORDER BY a.last_error_at DESC LIMIT 1",
            values,
        )
        return SourceActivity(
            requests=int(totals[0]["requests"] or 0),
            errors=int(totals[0]["errors"] or 0),
            last_request=as_datetime(last[0]["minute"]) if last else None,
            last_error_at=as_datetime(error[0]["last_error_at"]) if error else None,
            last_error=error[0]["last_error"] if error else None,
        )

    async def prune_activity(self, *, before: datetime) -> int:
        return await self._execute("DELETE FROM scimhost_source_activity WHERE minute < ?", [before])

    async def purge_source(self, source: str) -> dict[str, int]:
        scope = Scope(source)

        async def body(tx) -> dict[str, int]:
            deleted: dict[str, int] = {}

            async def delete(kind: str | None, table: str, alias: str = "t") -> None:
                where, values = scope.where(alias, typed=False)
                changed, _ = await tx.execute_query(self._sql(f"DELETE FROM {table} AS {alias} WHERE {where}"), values)
                if kind is not None:
                    deleted[kind] = deleted.get(kind, 0) + changed

            # Rows that name resources first, then the resources themselves.
            for table in ("scimhost_member", "scimhost_attr", "scimhost_unique", "scimhost_count"):
                await delete(None, table)
            for resource_type, kind in (("User", "users"), ("Group", "groups")):
                where, values = scope.of_type(resource_type).where("t")
                changed, _ = await tx.execute_query(self._sql(f"DELETE FROM scimhost_resource AS t WHERE {where}"), values)
                deleted[kind] = changed
            await delete("other resources", "scimhost_resource")
            await delete("deliveries", "scimhost_delivery")
            await delete("events", "scimhost_event")
            await delete("activity rows", "scimhost_source_activity")
            await delete("service accounts", "scimhost_service_account")
            return deleted

        return await self._atomic(body, small=False)

    # --- resources -----------------------------------------------------------------------------
    # Every statement below takes its WHERE clause from a Scope (scope.py): no statement on
    # resources, index rows, unique values or membership rows names its source by itself.

    async def create_resource(
        self, source: str, resource_type: str, write: ResourceWrite, members: Sequence[str] = (),
        *, event: EventDraft | None = None,
    ) -> StoredResource:
        scope = Scope(source, resource_type)
        resource_id = str(uuid.uuid4())
        now = _now()
        password = None if write.password_hash is KEEP else write.password_hash

        async def body(tx) -> None:
            await tx.execute_query(
                self._sql(
                    "INSERT INTO scimhost_resource (id, source, resource_type, external_id, display, data, "
                    "record, password_hash, version, created, last_modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)"
                ),
                [resource_id, source, resource_type, write.external_id, write.display,
                 orjson.dumps(write.document).decode(), _json_or_none(write.record), password, now, now],
            )
            await self._insert_unique(tx, scope, resource_id, write.unique_values)
            await self._insert_index(tx, scope, resource_id, write.index)
            await self._count(tx, scope, 1)
            if members:
                await self._change_members(tx, scope, resource_id, [MemberChange("add", tuple(members))])
            if event is not None:
                await self._insert_event(tx, scope, resource_id, 1, write.external_id, event, now)

        await self._atomic(body, small=len(members) + len(write.index) <= SMALL_WRITE_ROWS)
        return StoredResource(resource_id, resource_type, write.document, 1, now, now)

    async def get_resource(
        self, source: str, resource_type: str, resource_id: str, *, members: bool = True, groups: bool = True
    ) -> StoredResource | None:
        scope = Scope(source, resource_type)
        # The groups a user is in come in the same statement, as one JSON array.
        columns = RESOURCE_COLUMNS + (f", {self._groups_column()} AS groups" if groups else "")
        where, values = scope.where("r", "r.id = ?", [resource_id])
        rows = await self._rows(f"SELECT {columns} FROM scimhost_resource r WHERE {where}", values)
        if not rows:
            return None
        stored = _stored(rows[0])
        if members:
            [stored] = await self._with_members(scope, [stored])
        if groups:
            stored = dataclasses.replace(stored, groups=_groups(rows[0]["groups"]))
        return stored

    async def get_record(self, source: str, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        where, values = Scope(source, resource_type).where("r", "r.id = ?", [resource_id])
        rows = await self._rows(f"SELECT record FROM scimhost_resource r WHERE {where}", values)
        return orjson.loads(rows[0]["record"]) if rows and rows[0]["record"] else None

    async def iter_members(
        self, source: str, group_id: str, *, batch: int = 1000
    ) -> AsyncIterator[list[dict[str, Any]]]:
        scope = Scope(source)
        last = -1
        while True:
            where, values = scope.members("m", "m.group_id = ? AND m.id > ?", [group_id, last])
            rows = await self._rows(
                "SELECT m.id, m.member_id, m.member_type, r.display FROM scimhost_member m "
                f"JOIN scimhost_resource r ON r.id = m.member_id AND r.source = m.source WHERE {where} "
                "ORDER BY m.id LIMIT ?",
                [*values, batch],
            )
            if not rows:
                return
            last = rows[-1]["id"]
            yield [
                _without_none({"value": row["member_id"], "type": row["member_type"], "display": row["display"]})
                for row in rows
            ]
            if len(rows) < batch:
                return

    def _groups_column(self) -> str:
        """A subquery: the groups of the resource `r` (a scoped row) as a JSON array of
        {value, display}, from membership rows of r's own source."""
        if self._dialect == "postgres":
            return (
                "(SELECT COALESCE(json_agg(json_build_object('value', m.group_id, 'display', g.display) "
                "ORDER BY m.id), '[]'::json)::text FROM scimhost_member m "
                "JOIN scimhost_resource g ON g.id = m.group_id AND g.source = m.source "
                "WHERE m.member_id = r.id AND m.source = r.source)"
            )
        return (
            "(SELECT json_group_array(json_object('value', o.group_id, 'display', o.display)) FROM "
            "(SELECT m.group_id, g.display FROM scimhost_member m "
            "JOIN scimhost_resource g ON g.id = m.group_id AND g.source = m.source "
            "WHERE m.member_id = r.id AND m.source = r.source ORDER BY m.id) AS o)"
        )

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
        now = _now()
        assignments = "version = version + 1, last_modified = ?"
        set_values: list[Any] = [now]
        if write is not None:
            assignments += ", external_id = ?, display = ?, data = ?, record = ?"
            set_values += [write.external_id, write.display, orjson.dumps(write.document).decode(),
                           _json_or_none(write.record)]
            if write.password_hash is not KEEP:
                assignments += ", password_hash = ?"
                set_values.append(write.password_hash)
        condition, condition_values = "id = ?", [resource_id]
        if expected_version is not None:
            condition += " AND version = ?"
            condition_values.append(expected_version)
        where, where_values = scope.where("scimhost_resource", condition, condition_values)
        # Adding and removing members touch only membership rows, so the version is bumped last:
        # the resource's row (which every change of the group locks) is then held only for the
        # end of the transaction, and concurrent member changes of one group run side by side
        # on PostgreSQL. Their ids are written in sorted order, so two of them never wait for
        # each other's rows in opposite orders.
        rows_first = write is None and all(change.kind != "set" for change in member_changes)

        async def bump_version(tx) -> None:
            changed, _ = await tx.execute_query(
                self._sql(f"UPDATE scimhost_resource SET {assignments} WHERE {where}"), set_values + where_values
            )
            if not changed:
                raise await self._why_unchanged(tx, scope, resource_id)

        async def body(tx) -> list[dict[str, Any]]:
            if rows_first:
                await self._change_members(tx, scope, resource_id, member_changes, in_order=False)
                await bump_version(tx)
            else:
                await bump_version(tx)
                if write is not None:
                    await self._update_unique(tx, scope, resource_id, write.unique_values)
                    await self._update_index(tx, scope, resource_id, write.index)
                if member_changes:
                    await self._change_members(tx, scope, resource_id, member_changes)
            # With its groups, so that a response needs no second read.
            read_where, read_values = scope.where("r", "r.id = ?", [resource_id])
            rows = await tx.execute_query_dict(
                self._sql(
                    f"SELECT {RESOURCE_COLUMNS}, r.external_id, {self._groups_column()} AS groups "
                    f"FROM scimhost_resource r WHERE {read_where}"
                ),
                read_values,
            )
            if event is not None:  # after the version bump: the row is held until the commit
                await self._insert_event(tx, scope, resource_id, rows[0]["version"], rows[0]["external_id"], event, now)
            return rows

        rows = len(write.index) if write is not None else 0
        rows += sum(len(change.ids) for change in member_changes)
        try:
            row = (await self._atomic(body, small=rows <= SMALL_WRITE_ROWS))[0]
        except UnknownMembers:
            # A group deleted while its members changed fails the new rows' foreign key, as a
            # member deleted meanwhile does: the group's absence is the answer (404, not 400).
            if await self.get_resource(source, resource_type, resource_id, members=False, groups=False) is None:
                raise ResourceNotFound() from None
            raise
        return dataclasses.replace(_stored(row), groups=_groups(row["groups"]))

    async def delete_resource(
        self, source: str, resource_type: str, resource_id: str, *, expected_version: int | None = None,
        event: EventDraft | None = None,
    ) -> None:
        scope = Scope(source, resource_type)
        condition, condition_values = "id = ?", [resource_id]
        if expected_version is not None:
            condition += " AND version = ?"
            condition_values.append(expected_version)
        where, values = scope.where("scimhost_resource", condition, condition_values)

        async def body(tx) -> None:
            # Membership and uniqueness rows go with it (ON DELETE CASCADE).
            deleted = await tx.execute_query_dict(
                self._sql(f"DELETE FROM scimhost_resource WHERE {where} RETURNING external_id"), values
            )
            if not deleted:
                raise await self._why_unchanged(tx, scope, resource_id)
            await self._count(tx, scope, -1)
            if event is not None:
                await self._insert_event(tx, scope, resource_id, None, deleted[0]["external_id"], event, _now())

        small = True
        if self._direct is not None:
            # The cascade takes a group's membership rows with it: a big group is a large write,
            # which SQLite must not run on the event loop's thread.
            member_where, member_values = scope.members("m", "m.group_id = ?", [resource_id])
            many = await self._rows(
                f"SELECT COUNT(*) AS n FROM (SELECT 1 FROM scimhost_member m WHERE {member_where} LIMIT ?) AS c",
                [*member_values, SMALL_WRITE_ROWS + 1],
            )
            small = int(many[0]["n"]) <= SMALL_WRITE_ROWS
        await self._atomic(body, small=small)

    async def _why_unchanged(self, tx, scope: Scope, resource_id: str) -> Exception:
        """After a conditional write changed no row: the resource is gone, or its version moved."""
        where, values = scope.where("r", "r.id = ?", [resource_id])
        exists = await tx.execute_query_dict(self._sql(f"SELECT version FROM scimhost_resource r WHERE {where}"), values)
        return VersionMismatch() if exists else ResourceNotFound()

    async def list_resources(
        self, source: str, resource_type: str, query: ResourceQuery, *, members: bool = True, groups: bool = True
    ) -> ResourcePage:
        scope = Scope(source, resource_type)
        condition, condition_values = "", []
        if query.filter is not None:
            condition, condition_values = await _FilterSQL(self._dialect, scope).where(query.filter, self._estimate)
        # The filter's condition, whatever its operators, inside the scope's parentheses.
        where, values = scope.where("r", condition, condition_values)

        async def count_all() -> int:
            if query.filter is None:
                count_where, count_values = scope.where("c")
                counted = await self._rows(f"SELECT c.count AS n FROM scimhost_count c WHERE {count_where}", count_values)
                return int(counted[0]["n"]) if counted else 0
            counted = await self._rows(f"SELECT COUNT(*) AS n FROM scimhost_resource r WHERE {where}", values)
            return int(counted[0]["n"])

        if query.count <= 0:
            return ResourcePage(await count_all(), [])
        columns = ", ".join("r." + c for c in RESOURCE_COLUMNS.split(", "))
        if groups:
            columns += f", {self._groups_column()} AS groups"  # in the same statement, as for one
        order_values: list[Any] = []
        backwards = query.before is not None
        if query.sort is not None:
            key, key_values = self._sort_expression(scope, query.sort)
            order_values = key_values + key_values  # the key appears twice below
            direction = "DESC" if query.sort.descending else "ASC"
            order = f"({key}) IS NULL, ({key}) {direction}, r.created, r.id"
        else:
            order = "r.created DESC, r.id DESC" if backwards else "r.created, r.id"
        cursor_mode = query.cursor_paging
        page_where, page_values = where, list(values)
        # Row values, so that the (source, resource_type, created, id) index seeks to the cursor.
        if query.after is not None:
            page_where += " AND (r.created, r.id) > (?, ?)"
            page_values += [query.after[0], query.after[1]]
        elif query.before is not None:
            page_where += " AND (r.created, r.id) < (?, ?)"
            page_values += [query.before[0], query.before[1]]
        if cursor_mode:
            limit, offset = query.count + 1, 0
        else:
            limit, offset = query.count, max(query.start_index, 1) - 1
        rows = await self._rows(
            f"SELECT {columns} FROM scimhost_resource r WHERE {page_where} ORDER BY {order} LIMIT ? OFFSET ?",
            [*page_values, *order_values, limit, offset],
        )
        # A page that starts at the first match and is not full holds every match: no count.
        if query.after is None and query.before is None and offset == 0 and len(rows) <= query.count and (
            cursor_mode or len(rows) < query.count
        ):
            total = len(rows)
        else:
            total = await count_all()
        more = cursor_mode and len(rows) > query.count
        rows = rows[: query.count]
        if backwards:
            rows.reverse()
        stored = [
            dataclasses.replace(_stored(r), groups=_groups(r["groups"])) if groups else _stored(r) for r in rows
        ]
        resources = await self._with_members(scope, stored) if members else stored
        if backwards:
            return ResourcePage(total, resources, more_after=True, more_before=more)
        return ResourcePage(total, resources, more_after=more, more_before=query.after is not None)

    # --- the event log ---------------------------------------------------------------------------

    async def _insert_event(
        self, tx, scope: Scope, resource_id: str, version: int | None, external_id: str | None,
        event: EventDraft, now: datetime,
    ) -> None:
        inserted = await tx.execute_query_dict(
            self._sql(
                "INSERT INTO scimhost_event (id, created, source, resource_type, resource_id, external_id, action, "
                "version, actor, changed, members, resource, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "RETURNING seq"
            ),
            [f"evt_{uuid.uuid4().hex}", now, scope.source, scope.resource_type, resource_id, external_id,
             event.action, version, orjson.dumps(event.actor).decode(), orjson.dumps(event.changed).decode(),
             _json_or_none(event.members), _json_or_none(event.resource), _json_or_none(event.record)],
        )
        if event.sinks:
            # One pending delivery per sink, in the same transaction: nothing committed is
            # ever without its deliveries, nothing rolled back ever has any.
            rows = ", ".join("(?, ?, ?, ?, 'pending', 0, ?)" for _ in event.sinks)
            key = f"{scope.resource_type}/{resource_id}"
            values = [v for sink in event.sinks for v in (sink, inserted[0]["seq"], scope.source, key, now)]
            await tx.execute_query(
                self._sql(
                    "INSERT INTO scimhost_delivery (sink, event_seq, source, key, state, attempts, next_attempt) "
                    f"VALUES {rows}"
                ),
                values,
            )

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
        narrowing = {"e.resource_id = ?": resource_id, "e.created >= ?": since, "e.seq > ?": after_seq,
                     "e.seq < ?": before_seq}
        conditions = ["1 = 1", *(condition for condition, value in narrowing.items() if value is not None)]
        values = [value for value in narrowing.values() if value is not None]
        where, bound = Scope(source, resource_type).where("e", " AND ".join(conditions), values)
        order = "DESC" if newest_first else "ASC"
        rows = await self._rows(
            f"SELECT {EVENT_COLUMNS} FROM scimhost_event e WHERE {where} ORDER BY e.seq {order} LIMIT ?",
            [*bound, max(limit, 0)],
        )
        return [stored_event(row) for row in rows]

    async def get_event(self, source: str, event_id: str | int) -> StoredEvent | None:
        column = "e.seq" if isinstance(event_id, int) else "e.id"
        where, values = Scope(source).where("e", f"{column} = ?", [event_id])
        rows = await self._rows(f"SELECT {EVENT_COLUMNS} FROM scimhost_event e WHERE {where}", values)
        return stored_event(rows[0]) if rows else None

    async def prune_events(self, source: str, *, before: datetime, batch: int = 1000) -> int:
        # Only events no sink still has to receive; their finished deliveries go with them.
        where, values = Scope(source).where(
            "e", "e.created < ? AND NOT EXISTS (SELECT 1 FROM scimhost_delivery d WHERE d.event_seq = e.seq "
            "AND d.state IN ('pending', 'inflight'))", [before],
        )
        chosen = f"SELECT e.seq FROM scimhost_event e WHERE {where} ORDER BY e.seq LIMIT ?"
        pruned = 0
        while True:
            async def body(tx) -> int:
                seqs = [row["seq"] for row in await tx.execute_query_dict(self._sql(chosen), [*values, batch])]
                if not seqs:
                    return 0
                marks = ", ".join("?" * len(seqs))
                await tx.execute_query(self._sql(f"DELETE FROM scimhost_delivery WHERE event_seq IN ({marks})"), seqs)
                changed, _ = await tx.execute_query(self._sql(f"DELETE FROM scimhost_event WHERE seq IN ({marks})"), seqs)
                return changed

            changed = await self._atomic(body, small=batch <= SMALL_WRITE_ROWS)
            pruned += changed
            if changed < batch:
                return pruned

    async def _count(self, tx, scope: Scope, delta: int) -> None:
        await tx.execute_query(
            self._sql(
                "INSERT INTO scimhost_count (source, resource_type, count) VALUES (?, ?, ?) "
                "ON CONFLICT (source, resource_type) DO UPDATE SET count = scimhost_count.count + ?"
            ),
            [scope.source, scope.resource_type, max(delta, 0), delta],
        )

    async def _estimate(self, sql: str, values: list[Any]) -> int:
        """How many rows a driver selects, counting no further than a thousand."""
        rows = await self._rows(f"SELECT COUNT(*) AS n FROM ({sql} LIMIT 1001) AS e", values)
        return int(rows[0]["n"])

    def _sort_expression(self, scope: Scope, sort: SortKey) -> tuple[str, list[Any]]:
        field = sort.field
        if field.kind != "attr":
            return {"id": "r.id", "created": "r.created", "lastModified": "r.last_modified"}[field.kind], []
        column = "a.value_num" if field.numeric else "a.value_text"
        if self._dialect == "postgres" and not field.numeric:
            column += ' COLLATE "C"'
        primary_first = ""
        primary_values: list[Any] = []
        if sort.primary_path:
            primary_where, primary_values = scope.where(
                "p", "p.resource_id = a.resource_id AND p.item = a.item AND p.path = ? AND p.value_text = 'true'",
                [sort.primary_path],
            )
            primary_first = f"(SELECT COUNT(*) FROM scimhost_attr p WHERE {primary_where}) DESC, "
        where, values = scope.where("a", "a.resource_id = r.id AND a.path = ?", [field.key])
        # The primary value of a multi-valued attribute sorts; else its first value.
        return (
            f"SELECT {column} FROM scimhost_attr a WHERE {where} ORDER BY {primary_first}a.item LIMIT 1",
            values + primary_values,
        )

    async def _with_members(self, scope: Scope, resources: list[StoredResource]) -> list[StoredResource]:
        """The resources (groups) with their members read, a chunk of groups per statement."""
        ids = [r.id for r in resources]
        by_group: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
        for chunk in _chunks(ids):
            where, values = scope.members("m", f"m.group_id IN ({', '.join('?' * len(chunk))})", chunk)
            for row in await self._rows(
                "SELECT m.group_id, m.member_id, m.member_type, r.display FROM scimhost_member m "
                f"JOIN scimhost_resource r ON r.id = m.member_id AND r.source = m.source WHERE {where} ORDER BY m.id",
                values,
            ):
                by_group[row["group_id"]].append(
                    _without_none({"value": row["member_id"], "type": row["member_type"], "display": row["display"]})
                )
        return [dataclasses.replace(r, members=by_group[r.id]) for r in resources]

    async def _insert_index(self, tx, scope: Scope, resource_id: str, entries) -> None:
        for start in range(0, len(entries), CHUNK // 8):
            chunk = entries[start : start + CHUNK // 8]
            rows = ", ".join("(?, ?, ?, ?, ?, ?, ?)" for _ in chunk)
            values = [
                v
                for e in chunk
                for v in (resource_id, scope.source, scope.resource_type, e.path, e.item, e.text, e.number)
            ]
            await tx.execute_query(
                self._sql(
                    "INSERT INTO scimhost_attr (resource_id, source, resource_type, path, item, value_text, value_num) "
                    f"VALUES {rows}"
                ),
                values,
            )

    async def _update_index(self, tx, scope: Scope, resource_id: str, entries) -> None:
        """Bring a resource's index rows to `entries`, touching only the rows that differ.

        Rewriting every row of a user (about 16, each in three indexes) made a one-attribute
        PATCH cost a millisecond on SQLite; the difference is usually one row."""
        stale: dict[tuple, list[int]] = {}
        where, values = scope.where("a", "a.resource_id = ?", [resource_id])
        for row in await tx.execute_query_dict(
            self._sql(f"SELECT a.id, a.path, a.item, a.value_text, a.value_num FROM scimhost_attr a WHERE {where}"),
            values,
        ):
            key = (row["path"], row["item"], row["value_text"], _float_or_none(row["value_num"]))
            stale.setdefault(key, []).append(row["id"])
        added = []
        for entry in entries:
            ids = stale.get((entry.path, entry.item, entry.text, _float_or_none(entry.number)))
            if ids:
                ids.pop()  # unchanged: keep the row
            else:
                added.append(entry)
        removed = [row_id for ids in stale.values() for row_id in ids]
        for start in range(0, len(removed), CHUNK):
            chunk = removed[start : start + CHUNK]
            where, values = scope.where("scimhost_attr", f"id IN ({', '.join('?' * len(chunk))})", chunk)
            await tx.execute_query(self._sql(f"DELETE FROM scimhost_attr WHERE {where}"), values)
        await self._insert_index(tx, scope, resource_id, added)

    async def _update_unique(self, tx, scope: Scope, resource_id: str, values: dict[str, str]) -> None:
        """Bring a resource's unique values to `values`, touching only those that changed."""
        where, where_values = scope.where("u", "u.resource_id = ?", [resource_id])
        current = {
            row["attribute"]: (row["id"], row["value"])
            for row in await tx.execute_query_dict(
                self._sql(f"SELECT u.id, u.attribute, u.value FROM scimhost_unique u WHERE {where}"), where_values
            )
        }
        removed = [row_id for attribute, (row_id, value) in current.items() if values.get(attribute) != value]
        for row_id in removed:
            delete_where, delete_values = scope.where("scimhost_unique", "id = ?", [row_id])
            await tx.execute_query(self._sql(f"DELETE FROM scimhost_unique WHERE {delete_where}"), delete_values)
        added = {a: v for a, v in values.items() if a not in current or current[a][1] != v}
        await self._insert_unique(tx, scope, resource_id, added)

    async def _insert_unique(self, tx, scope: Scope, resource_id: str, values: dict[str, str]) -> None:
        for attribute, value in values.items():
            try:
                await tx.execute_query(
                    self._sql(
                        "INSERT INTO scimhost_unique (source, resource_type, attribute, value, resource_id) "
                        "VALUES (?, ?, ?, ?, ?)"
                    ),
                    [scope.source, scope.resource_type, attribute, value, resource_id],
                )
            except IntegrityError:
                raise UniquenessConflict(attribute) from None

    async def _change_members(
        self, tx, scope: Scope, group_id: str, changes: Sequence[MemberChange], *, in_order: bool = True
    ) -> None:
        """Apply membership changes; `in_order` False writes each change's ids sorted (see
        update_resource) instead of in the order the client gave them."""
        for change in changes:
            ids = list(dict.fromkeys(change.ids)) if in_order else sorted(set(change.ids))
            if change.kind == "remove":
                for chunk in _chunks(ids):
                    where, values = scope.members(
                        "scimhost_member", f"group_id = ? AND member_id IN ({', '.join('?' * len(chunk))})",
                        [group_id, *chunk],
                    )
                    await tx.execute_query(self._sql(f"DELETE FROM scimhost_member WHERE {where}"), values)
                continue
            if change.kind == "set":
                await self._set_members(tx, scope, group_id, ids)
                continue
            types = await self._member_types(tx, scope, [group_id, *ids])
            if types.get(group_id) != scope.resource_type:
                raise ResourceNotFound()  # not a group of this source (or deleted meanwhile)
            missing = [i for i in ids if i not in types or i == group_id]
            if missing:
                raise UnknownMembers(missing)
            for chunk in _chunks(ids):
                rows = ", ".join("(?, ?, ?, ?)" for _ in chunk)
                values = [v for member in chunk for v in (group_id, member, types[member], scope.source)]
                try:
                    await tx.execute_query(
                        self._sql(
                            f"INSERT INTO scimhost_member (group_id, member_id, member_type, source) VALUES {rows} "
                            "ON CONFLICT (group_id, member_id) DO NOTHING"
                        ),
                        values,
                    )
                except IntegrityError:
                    # A member (or the group) was deleted after it was checked: the foreign key
                    # refused it (update_resource tells which).
                    raise UnknownMembers(list(chunk)) from None

    async def _set_members(self, tx, scope: Scope, group_id: str, ids: list[str]) -> None:
        """Make the group's members exactly `ids`, the difference computed in the database: the
        list travels as one parameter, rows that stay are not touched, new ones keep its order."""
        wanted, wanted_value = self._id_list(ids)
        known, known_values = scope.where("r", "r.id = w.member_id", typed=False)
        missing = await tx.execute_query_dict(
            self._sql(
                f"SELECT w.member_id FROM ({wanted}) AS w WHERE w.member_id = ? OR NOT EXISTS "
                f"(SELECT 1 FROM scimhost_resource r WHERE {known}) LIMIT 100"
            ),
            [wanted_value, group_id, *known_values],
        )
        if missing:
            raise UnknownMembers([row["member_id"] for row in missing])
        where, values = scope.members(
            "scimhost_member", f"group_id = ? AND member_id NOT IN (SELECT member_id FROM ({wanted}) AS w)",
            [group_id, wanted_value],
        )
        await tx.execute_query(self._sql(f"DELETE FROM scimhost_member WHERE {where}"), values)
        new_where, new_values = scope.where(
            "r",
            "NOT EXISTS (SELECT 1 FROM scimhost_member m WHERE m.group_id = ? AND m.member_id = w.member_id)",
            [group_id],
            typed=False,
        )
        try:
            await tx.execute_query(
                self._sql(
                    "INSERT INTO scimhost_member (group_id, member_id, member_type, source) "
                    f"SELECT ?, r.id, r.resource_type, r.source FROM ({wanted}) AS w "
                    f"JOIN scimhost_resource r ON r.id = w.member_id WHERE {new_where} "
                    "ORDER BY w.position ON CONFLICT (group_id, member_id) DO NOTHING"
                ),
                [group_id, wanted_value, *new_values],
            )
        except IntegrityError:
            raise UnknownMembers(ids[:100]) from None  # a member was deleted after it was checked

    def _id_list(self, ids: list[str]) -> tuple[str, Any]:
        """A subquery of (member_id, position) rows from a list of ids bound as one parameter."""
        if self._dialect == "postgres":
            return "SELECT member_id, position FROM unnest(?::varchar[]) WITH ORDINALITY AS u(member_id, position)", ids
        return "SELECT value AS member_id, key AS position FROM json_each(?)", orjson.dumps(ids).decode()

    async def _member_types(self, tx, scope: Scope, ids: list[str]) -> dict[str, str]:
        """The resource types of those of `ids` that are resources of the scope's source."""
        types = {}
        for chunk in _chunks(ids):
            where, values = scope.where("r", f"r.id IN ({', '.join('?' * len(chunk))})", chunk, typed=False)
            rows = await tx.execute_query_dict(
                self._sql(f"SELECT r.id, r.resource_type FROM scimhost_resource r WHERE {where}"), values
            )
            types.update({row["id"]: row["resource_type"] for row in rows})
        return types


async def _release_connection(connection) -> None:
    """What asyncpg runs when a connection goes back to the pool. Its default also resets
    session state (advisory locks, LISTEN, settings) in one more round trip per query; this
    backend leaves no session state behind (the migration lock is released explicitly), so only
    an unfinished transaction is rolled back."""
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


def _groups(column: str) -> list[dict[str, Any]]:
    """The groups subquery's JSON array as {value, display} dicts."""
    return [_without_none(group) for group in orjson.loads(column)]


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def _json_or_none(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _chunks(items: Sequence[str]) -> list[Sequence[str]]:
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]


def _without_none(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if v is not None}


def _stored(row: dict[str, Any]) -> StoredResource:
    return StoredResource(
        id=row["id"],
        resource_type=row["resource_type"],
        document=orjson.loads(row["data"]),
        version=row["version"],
        created=as_datetime(row["created"]),
        last_modified=as_datetime(row["last_modified"]),
    )


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _service_account(row: dict[str, Any]) -> ServiceAccount:
    return ServiceAccount(
        source=row["source"],
        username=row["username"],
        created=as_datetime(row["created"]),
        token_created=as_datetime(row["token_created"]),
        previous_expires=as_datetime(row.get("previous_expires")),
    )
