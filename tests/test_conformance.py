"""The storage contract (scimhost.testing) kept by the built-in tortoise backend, on SQLite and
PostgreSQL, exactly as a third-party backend author runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from scimhost.builtin.tortoise_storage.backend import TortoiseBackend, TortoiseSettings
from scimhost.testing import StorageContract


class TestTortoiseBackend(StorageContract):
    @pytest.fixture
    async def backend(self, storage_url):
        backend = TortoiseBackend(TortoiseSettings(url=storage_url), base_dir=Path.cwd())
        await backend.open()
        yield backend
        await backend.close()
