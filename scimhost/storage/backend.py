"""The interface a storage backend plugin implements (`register_storage_backends`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar


class StorageError(Exception):
    """The store failed in a way the client cannot fix (answered 503 / reported by `check`)."""


@dataclass(frozen=True)
class ServiceAccount:
    """The account a source's token authenticates as."""

    source: str
    username: str
    created: datetime
    token_created: datetime | None

    @property
    def has_token(self) -> bool:
        return self.token_created is not None


class StorageBackend(ABC):
    """Keeps the host's state; every method is safe to call from many tasks at once."""

    name: ClassVar[str]
    # Dataclass typing the backend's `[storage.<name>]` table.
    settings_type: ClassVar[type]

    def __init__(self, options: Any, *, base_dir: Path) -> None:
        """`options` is an instance of `settings_type`; relative paths resolve against `base_dir`."""
        self.options = options
        self.base_dir = base_dir

    # --- lifecycle -------------------------------------------------------------------------

    @abstractmethod
    async def open(self, *, migrate: bool = True) -> None:
        """Connect; with `migrate`, first bring the schema up to date (keeping existing data)."""

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

    # --- service accounts and tokens -------------------------------------------------------

    @abstractmethod
    async def ensure_service_account(self, source: str, username: str) -> ServiceAccount:
        """The source's service account, created if it does not exist yet."""

    @abstractmethod
    async def service_accounts(self) -> list[ServiceAccount]:
        """Every service account, ordered by source slug."""

    @abstractmethod
    async def token_hash(self, source: str) -> str | None:
        """The hash of the source's current token, if one was issued."""

    @abstractmethod
    async def set_token_hash(self, source: str, token_hash: str) -> None:
        """Replace the source's token; the old one stops working at once."""
