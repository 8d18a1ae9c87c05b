"""Statements on PostgreSQL, over the asyncpg pool tortoise opened (its public
`acquire_connection`): each read on a pooled connection, each unit of work in one transaction."""

from __future__ import annotations

from typing import Any, TypeVar

import asyncpg

from scimhost.builtin.tortoise_storage.database import Database
from scimhost.builtin.tortoise_storage.dialects import POSTGRES
from scimhost.builtin.tortoise_storage.statements import (
    Command,
    ConstraintViolation,
    Query,
    Row,
    Statement,
    Work,
    run_async,
    single,
)
from scimhost.storage.backend import StorageError

T = TypeVar("T")


class PostgresDatabase(Database):
    """Statements on tortoise's connection pool to one PostgreSQL database."""

    dialect = POSTGRES

    def __init__(self, client: Any, describe: str) -> None:
        self._client = client  # tortoise's asyncpg client, which owns the pool
        self._describe = describe

    async def rows(self, query: Query) -> list[Row]:
        try:
            async with self._client.acquire_connection() as connection:
                return [dict(row) for row in await connection.fetch(query.sql, *query.values)]
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise StorageError(f"{self._describe}: {exc}") from exc

    async def execute(self, command: Command, *, small: bool = True) -> int:
        changed: int = await self.run(single(command))
        return changed

    async def run(self, work: Work[T], *, small: bool = True) -> T:
        try:
            async with self._client.acquire_connection() as connection:
                first = next(work)
                if isinstance(first, Query) and first.atomic:
                    # The whole write in one statement: no BEGIN and COMMIT round trips.
                    return await run_async(work, lambda statement: _answer(connection, statement), first=first)
                async with connection.transaction():
                    return await run_async(work, lambda statement: _answer(connection, statement), first=first)
        except StopIteration as done:
            return done.value
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise StorageError(f"{self._describe}: {exc}") from exc

    async def close(self) -> None:
        pass  # the pool is tortoise's, closed with its connections


async def _answer(connection: asyncpg.Connection, statement: Statement) -> Any:
    """A Query's rows, or how many rows a Command changed (from the command's status, "UPDATE 3")."""
    try:
        if isinstance(statement, Query):
            return [dict(row) for row in await connection.fetch(statement.sql, *statement.values)]
        status = await connection.execute(statement.sql, *statement.values)
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise ConstraintViolation(str(exc), getattr(exc, "detail", None)) from exc
    count = status.rsplit(" ", 1)[-1]
    return int(count) if count.isdigit() else 0


async def release_connection(connection: asyncpg.Connection) -> None:
    """What asyncpg runs when a connection goes back to the pool. Its default also resets
    session state (advisory locks, LISTEN, settings) in one more round trip per query; this
    backend leaves no session state behind (the migration lock is released explicitly), so only
    an unfinished transaction is rolled back."""
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")
