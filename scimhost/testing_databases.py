"""Pytest fixtures of real databases for the tests of scimhost and of its plugins: a SQLite file
and a fresh PostgreSQL schema (import them into a test module or conftest to use them)."""

from __future__ import annotations

import asyncio
import os
import uuid

import asyncpg
import pytest

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


@pytest.fixture
def storage_url(database: str, tmp_path, request) -> str:
    """A storage URL of an empty database, on SQLite and on PostgreSQL."""
    if database == "sqlite":
        return f"sqlite://{tmp_path}/scimhost.sqlite3"
    return request.getfixturevalue("postgres_schema_url")
