"""Fixtures: real apps on real databases (a SQLite file, and a fresh PostgreSQL schema)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from helpers import ScimClient, make_config

from scimhost.app import create_app
from scimhost.http.keys import HOST

# Real databases (also used by the plugins' tests): a copy of a migrated SQLite file or PostgreSQL database.
from scimhost.testing_databases import (  # noqa: F401
    IN_CI,
    POSTGRES_URL,
    database,
    empty_storage_url,
    postgres_database_url,
    postgres_schema_url,
    postgres_template,
    postgres_url,
    sqlite_template,
    storage_url,
)


@pytest.fixture
def config(storage_url: str) -> dict:
    return make_config(storage_url)


@pytest.fixture
async def client(aiohttp_client, config):
    """A test client of an app with sources `demo` and `other`."""
    return await aiohttp_client(create_app(config))


@pytest.fixture
def issue_token(client) -> Callable[[str], Any]:
    """Issue a token for a source of `client`'s app, as `scimhost sources token` does."""

    async def issue(slug: str = "demo") -> str:
        return await client.app[HOST].issue_token(slug)

    return issue


@pytest.fixture
async def scim(client, issue_token) -> ScimClient:
    """The `demo` source of `client`'s app, authenticated."""
    return ScimClient(client, "demo", await issue_token("demo"))


@pytest.fixture
async def seeded(scim):
    """The `demo` source holding one user in one group: (client, user, group)."""
    user = await scim.create_user("bjensen", title="Boss", emails=[{"value": "b@x", "type": "work"}])
    group = await scim.create_group("Eng", [user["id"]])
    return scim, user, group
