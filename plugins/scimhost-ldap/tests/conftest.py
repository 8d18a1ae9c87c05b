"""A throwaway slapd for the whole session (slapd is missing: a failure under CI=true, else a
skip), and per test an empty base entry of its own on it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import ldap
import pytest
from scimhost_ldap.settings import LdapSettings
from scimhost_ldap.slapd import Slapd, available
from scimhost_ldap.store import LdapStore

from scimhost.testing_databases import (  # noqa: F401 - fixtures
    database,
    postgres_database_url,
    postgres_schema_url,
    postgres_template,
    postgres_url,
    sqlite_template,
    storage_url,
)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PASSWORD_ENV = "SCIMHOST_TEST_LDAP_PASSWORD"


@pytest.fixture(scope="session")
def slapd() -> Iterator[Slapd]:
    missing = available()
    if missing:
        if IN_CI:
            pytest.fail(missing)
        pytest.skip(missing)
    with Slapd.running() as server:
        yield server


@pytest.fixture
def ldap_settings(slapd: Slapd, monkeypatch) -> LdapSettings:
    """Settings of a store under a base entry made for this test alone."""
    base = f"ou=t{uuid.uuid4().hex[:12]},{slapd.suffix}"
    raw = ldap.initialize(slapd.url)
    raw.simple_bind_s(slapd.root_dn, slapd.root_password)
    raw.add_s(base, [("objectClass", [b"organizationalUnit"]), ("ou", [base.split(",")[0][3:].encode()])])
    raw.unbind_s()
    monkeypatch.setenv(PASSWORD_ENV, slapd.root_password)
    return LdapSettings(url=slapd.url, bind_dn=slapd.root_dn, bind_password_env=PASSWORD_ENV, base_dn=base)


@pytest.fixture
async def ldap_store(ldap_settings: LdapSettings) -> LdapStore:
    store = LdapStore(ldap_settings, base_dir=Path.cwd())
    await store.open()
    yield store
    await store.close()
