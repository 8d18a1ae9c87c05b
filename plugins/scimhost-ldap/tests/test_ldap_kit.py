"""The LDAP store keeps the resource store's contract on a real slapd, alone and composed with
the built-in store as accounts and outbox (every rule of StorageContract, and the crash rules)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scimhost.builtin.tortoise_storage.backend import TortoiseBackend, TortoiseSettings
from scimhost.storage.composed import ComposedStorage
from scimhost.testing import CompositionContract, ResourceStoreContract


class TestLdapResourceStore(ResourceStoreContract):
    @pytest.fixture
    async def backend(self, ldap_store):
        yield ldap_store


class TestLdapComposedWithTheBuiltInStore(CompositionContract):
    @pytest.fixture
    async def backend(self, ldap_store, sqlite_template, tmp_path):
        outbox_file = tmp_path / "outbox.db"
        shutil.copyfile(sqlite_template, outbox_file)
        outbox = TortoiseBackend(TortoiseSettings(url=f"sqlite://{outbox_file}"), base_dir=Path.cwd())
        await outbox.open()
        yield ComposedStorage(ldap_store, outbox, outbox)
        await outbox.close()
