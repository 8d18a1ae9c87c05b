"""Storage composed of two stores (scimhost.storage.composed): the whole storage contract and
the crash rules of CompositionContract, with resources in one built-in store (SQLite or
PostgreSQL) and accounts and the outbox in another (SQLite)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scimhost.builtin.tortoise_storage.backend import TortoiseBackend, TortoiseSettings
from scimhost.storage.composed import ComposedStorage
from scimhost.testing import CompositionContract


class TestTwoBuiltInStores(CompositionContract):
    @pytest.fixture
    async def backend(self, storage_url, sqlite_template, tmp_path):
        outbox_file = tmp_path / "outbox.db"
        shutil.copyfile(sqlite_template, outbox_file)
        resources = TortoiseBackend(TortoiseSettings(url=storage_url), base_dir=Path.cwd())
        outbox = TortoiseBackend(TortoiseSettings(url=f"sqlite://{outbox_file}"), base_dir=Path.cwd())
        store = ComposedStorage(resources, outbox, outbox)
        await store.open()
        yield store
        await store.close()
