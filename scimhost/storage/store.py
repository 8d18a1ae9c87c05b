"""The part every storage role shares: a name, typed settings, a lifecycle, purging a source."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar


class Store(ABC):
    """What every role of storage has: a name, typed settings, a lifecycle. Every method of a
    store is safe to call from many tasks at once."""

    name: ClassVar[str]
    # Dataclass typing the backend's `[storage.<name>]` table.
    settings_type: ClassVar[type]

    def __init__(self, options: Any, *, base_dir: Path) -> None:
        """`options` is an instance of `settings_type`; relative paths resolve against `base_dir`."""
        self.options = options
        self.base_dir = base_dir

    # --- lifecycle -------------------------------------------------------------------------

    @abstractmethod
    async def open(self, *, migrate: bool = True, create: bool = True) -> None:
        """Connect; with `migrate`, first bring the schema up to date (keeping existing data).

        A store that does not exist (an SQLite file not yet made without `create`, a PostgreSQL
        database never created) is a StoreMissing and nothing is created: administrative commands only read and change
        data in a store that `scimhost migrate` or `serve` made."""

    @abstractmethod
    async def close(self) -> None:
        """Release every connection."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise StorageError unless the store answers a trivial query."""

    @abstractmethod
    async def pending_migrations(self) -> list[str]:
        """Names of schema migrations not yet applied (works on a store opened without migrate)."""

    @abstractmethod
    def describe(self) -> str:
        """Where the data lives, for logs and `check`, with any password left out."""

    @abstractmethod
    async def purge_source(self, source: str) -> dict[str, int]:
        """Delete everything this store keeps for a source (each role says what that is); how
        many of each kind were deleted."""
