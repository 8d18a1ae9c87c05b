"""The backend conformance suite (scimhost.testing) run against the built-in tortoise backend,
on SQLite and PostgreSQL, exactly as a third-party backend author runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from scimhost.builtin.tortoise_storage.backend import TortoiseBackend, TortoiseSettings
from scimhost.testing import *  # noqa: F401,F403


@pytest.fixture
async def conformance_backend(storage_url):
    backend = TortoiseBackend(TortoiseSettings(url=storage_url), base_dir=Path.cwd())
    await backend.open()
    yield backend
    await backend.close()
