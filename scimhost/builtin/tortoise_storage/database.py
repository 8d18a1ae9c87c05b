"""What the backend asks of a database connection: reads, single statements and units of work.

Two implementations: sqlite_database.py (the backend's own sqlite3 connections) and
postgres_database.py (tortoise's asyncpg pool).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TypeVar

from scimhost.builtin.tortoise_storage.dialects import Dialect
from scimhost.builtin.tortoise_storage.statements import Command, Query, Row, Work

T = TypeVar("T")


class Database(ABC):
    """One process's way of running statements on the store."""

    dialect: Dialect

    @abstractmethod
    async def rows(self, query: Query) -> list[Row]:
        """The rows of a read, outside any transaction."""

    @abstractmethod
    async def execute(self, command: Command, *, small: bool = True) -> int:
        """Run one statement as its own transaction; how many rows it changed."""

    @abstractmethod
    async def run(self, work: Work[T], *, small: bool = True) -> T:
        """`work` as one transaction: committed when it returns, rolled back when it raises.
        `small`: it changes a bounded number of rows (SQLite may run it on the event loop)."""

    @abstractmethod
    async def close(self) -> None:
        """Release what this object opened."""
