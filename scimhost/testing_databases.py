"""Pytest fixtures of real databases for the tests of scimhost and of its plugins: a SQLite file
and a fresh PostgreSQL database (import them into a test module or conftest to use them)."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from scimhost.builtin.tortoise_storage.backend import TortoiseBackend
from scimhost.builtin.tortoise_storage.settings import TortoiseSettings

POSTGRES_URL = os.environ.get("SCIMHOST_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _postgres_unreachable() -> str | None:
    async def probe() -> None:
        connection = await asyncpg.connect(POSTGRES_URL, timeout=5)
        await connection.close()

    try:
        asyncio.run(probe())
    except Exception as exc:  # any failure means the same: no PostgreSQL to test against
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL test database; unreachable is a failure under CI=true, else a skip."""
    problem = _postgres_unreachable()
    if problem:
        message = f"PostgreSQL at {POSTGRES_URL} is unreachable ({problem})"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return POSTGRES_URL


@pytest.fixture
async def postgres_schema_url(postgres_url: str):
    """A URL whose connections use a new, empty schema, dropped after the test."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    connection = await asyncpg.connect(postgres_url)
    try:
        await connection.execute(f'CREATE SCHEMA "{schema}"')
        yield f"{postgres_url}?schema={schema}"
    finally:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await connection.close()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request) -> str:
    return request.param


def _migrate(url: str) -> None:
    async def run() -> None:
        store = TortoiseBackend(TortoiseSettings(url=url), base_dir=Path.cwd())
        await store.open()
        await store.close()

    asyncio.run(run())


# Migrating a new database costs a third of a second of CPU (tortoise rebuilds its model state
# at every migration); a copy of one migrated per session costs a few milliseconds.


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "scimhost.sqlite3"
    _migrate(f"sqlite://{path}")
    return path


def _database_url(server_url: str, name: str) -> str:
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _admin(postgres_url: str, *statements: str) -> None:
    connection = await asyncpg.connect(postgres_url)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


class PostgresDatabases:
    """New databases copied from a migrated template, made and dropped ahead on a thread of their own.

    A copy costs PostgreSQL about 150 ms and a drop up to as much; two threads do them while
    the tests run, so a test waits only when it outpaces the server. Copies are made one at a
    time: PostgreSQL refuses to copy a template another copy is reading.
    """

    AHEAD = 3

    def __init__(self, server_url: str, template: str) -> None:
        self.server_url = server_url
        self.template = template
        self._creating = ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-databases-create")
        self._dropping = ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-databases-drop")
        self._made: deque[Future[str]] = deque()

    def _create(self) -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        asyncio.run(_admin(self.server_url, f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'))
        return name

    def _drop(self, name: str) -> None:
        # A test's app may still be closing (pytest can tear this fixture down before the app's
        # client): wait for its connections to end rather than cut them, for a while.
        for _ in range(40):
            try:
                asyncio.run(_admin(self.server_url, f'DROP DATABASE IF EXISTS "{name}"'))
                return
            except asyncpg.ObjectInUseError:
                time.sleep(0.25)
        asyncio.run(_admin(self.server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def take(self) -> str:
        """The URL of a database of the current schema and no data; `release` it after."""
        while len(self._made) <= self.AHEAD:
            self._made.append(self._creating.submit(self._create))
        return _database_url(self.server_url, self._made.popleft().result())

    def release(self, url: str) -> None:
        self._dropping.submit(self._drop, urlsplit(url).path.lstrip("/"))

    def close(self) -> None:
        for made in self._made:
            self._dropping.submit(self._drop, made.result())
        self._creating.shutdown(wait=True)
        self._dropping.shutdown(wait=True)


@pytest.fixture(scope="session")
def postgres_template(postgres_url: str) -> Iterator[PostgresDatabases]:
    """Copies of one PostgreSQL database migrated for the session."""
    name = f"scimhost_template_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(postgres_url, f'CREATE DATABASE "{name}"'))
    databases = PostgresDatabases(postgres_url, name)
    try:
        _migrate(_database_url(postgres_url, name))
        yield databases
    finally:
        databases.close()
        asyncio.run(_admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def postgres_database_url(postgres_template: PostgresDatabases) -> Iterator[str]:
    """A URL of a new PostgreSQL database holding the current schema and no data, dropped after."""
    url = postgres_template.take()
    try:
        yield url
    finally:
        postgres_template.release(url)


@pytest.fixture
def storage_url(database: str, tmp_path, request) -> str:
    """A storage URL of a database holding the current schema and no data, on SQLite and PostgreSQL."""
    if database == "sqlite":
        path = tmp_path / "scimhost.sqlite3"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite://{path}"
    return request.getfixturevalue("postgres_database_url")


@pytest.fixture
def empty_storage_url(database: str, tmp_path, request) -> str:
    """A storage URL of a database that was never migrated, on SQLite (no file yet) and PostgreSQL."""
    if database == "sqlite":
        return f"sqlite://{tmp_path}/scimhost.sqlite3"
    return request.getfixturevalue("postgres_schema_url")
