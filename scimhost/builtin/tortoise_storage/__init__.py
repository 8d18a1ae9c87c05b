"""Built-in plugin: the tortoise storage backend (embedded SQLite by default, or PostgreSQL)."""

from scimhost.builtin.tortoise_storage.backend import TortoiseBackend
from scimhost.hookspecs import hookimpl


@hookimpl
def register_storage_backends():
    return [TortoiseBackend]
