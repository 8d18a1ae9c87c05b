"""The SQLite connections the tortoise backend runs its statements on, beside tortoise's own.

aiosqlite, which tortoise uses, sends every statement to its thread and back: about 140 µs a
statement on the project's machine, where the statement itself (a lookup by primary key) takes
about 10 µs. A request of five statements spent most of its time in that hand-off. So, on
SQLite only (docs/decisions.md, "SQLite hot paths"):

- a read runs first right on the event loop's thread, on a connection that neither waits for
  a lock nor runs long: SQLite's progress handler cuts it off after READ_BUDGET steps of its
  virtual machine. Lookups by key, a filter served by an index, a page of a list all finish
  within it; a read that is cut off (or finds SQLite busy) runs again on one of a small pool
  of reader threads, each with its own connection, beside each other and beside a write (WAL);
- a write transaction runs whole without a hand-off per statement: a unit of work
  (statements.py) is a generator of statements, answered here synchronously on one cursor from
  BEGIN to COMMIT. Small ones (one resource's rows, a few hundred microseconds each) ready in
  the same turn of the event loop run together right on the loop's thread, each in a savepoint
  of one transaction (a grouped commit: the pages they share reach the WAL once), when the
  write lock is free, and are tried again about a millisecond later while another process
  holds it; a large one, or one that kept finding the lock taken, runs on a writer thread
  that waits for the lock. (A writer thread alone was
  measured too: the hand-off plus the contention for the GIL with the busy loop thread cost
  more than the statements.) `BEGIN IMMEDIATE` takes the write lock up front, so two
  processes never deadlock upgrading a read lock. The loop's connection leaves checkpoints to
  the writer thread, so the loop never waits for their writes and fsync.

Tortoise keeps the schema and the migrations.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from scimhost.builtin.tortoise_storage.database import Database
from scimhost.builtin.tortoise_storage.dialects import SQLITE
from scimhost.builtin.tortoise_storage.statements import (
    Command,
    ConstraintViolation,
    Query,
    Row,
    Statement,
    Work,
    run,
    single,
)
from scimhost.storage.backend import StorageError

log = logging.getLogger(__name__)
T = TypeVar("T")
# Commits on the loop's connection between two checkpoints (about a thousand WAL pages at the
# dozen pages a small write dirties, like SQLite's own automatic checkpoint).
CHECKPOINT_EVERY = 100
# Tries of a small write on the loop's thread while another process holds the lock (about a
# millisecond apart) before it waits on the writer thread.
INLINE_ATTEMPTS = 50
# SQLite VM steps a read may take on the loop's thread (well under a millisecond here) before it
# is cut off and run on a reader thread instead; counted every PROGRESS_STEP steps.
READ_BUDGET = 50_000
PROGRESS_STEP = 1000
# WAL frames (pages) past which a checkpoint starts the WAL over (about 16 MB of 4 KB pages).
RESTART_FRAMES = 4000
# How long a RESTART checkpoint may wait for the lock and for readers before it gives up.
RESTART_WAIT_MS = 20


class SqliteDatabase(Database):
    """One process's own connections to an SQLite file: a loop reader, reader threads, a writer."""

    dialect = SQLITE

    def __init__(self, path: str, *, busy_timeout_ms: int, readers: int = 2) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._opened: list[sqlite3.Connection] = []
        self._opened_lock = threading.Lock()
        self._local = threading.local()
        self._loop_reader = self._connect(busy_timeout_ms=0, query_only=True)
        self._steps = 0
        self._loop_reader.set_progress_handler(self._count_steps, PROGRESS_STEP)
        # Writes on the loop's thread never wait in SQLite for the lock (see `transaction`).
        self._loop_writer = self._connect(busy_timeout_ms=0, query_only=False)
        self._loop_writer.execute("PRAGMA wal_autocheckpoint = 0")
        self._commits_since_checkpoint = 0
        self._checkpoint: asyncio.Future | None = None
        self._inline_paused = False
        # Small transactions waiting to be committed together, and the task committing them.
        self._queued: list[tuple[Work[Any], asyncio.Future[Any]]] = []
        self._committer: asyncio.Future[None] | None = None
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="scimhost-sqlite-read")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="scimhost-sqlite-write")

    def _connect(self, *, busy_timeout_ms: int, query_only: bool) -> sqlite3.Connection:
        # Autocommit (isolation_level None): a read sees the newest commit, a write transaction
        # is begun and ended explicitly. The connection is used by one thread at a time.
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA synchronous = NORMAL")
        if query_only:
            connection.execute("PRAGMA query_only = ON")
        with self._opened_lock:
            self._opened.append(connection)
        return connection

    def _thread_connection(self, *, query_only: bool) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self._connect(
                busy_timeout_ms=self.busy_timeout_ms, query_only=query_only
            )
        return connection

    async def rows(self, query: Query) -> list[Row]:
        try:
            rows = self.read(query.sql, query.values)
            return rows if rows is not None else await self.scan(query.sql, query.values)
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite {self.path}: {exc}") from exc

    async def execute(self, command: Command, *, small: bool = True) -> int:
        changed: int = await self.run(single(command), small=small)
        return changed

    async def run(self, work: Work[T], *, small: bool = True) -> T:
        try:
            return await self.transaction(work, small=small)
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite {self.path}: {exc}") from exc

    def read(self, query: str, values: Sequence[Any]) -> list[Row] | None:
        """Rows of a read run right here, if SQLite answers it within READ_BUDGET steps of its
        virtual machine (a lookup by key takes a few hundred); None if it was cut off there, or
        SQLite was busy: the caller then runs it on a reader thread with `scan`."""
        self._steps = 0
        try:
            return _rows(self._loop_reader, query, values)
        except sqlite3.OperationalError as exc:
            if _busy(exc) or "interrupted" in str(exc):
                return None
            raise

    def _count_steps(self) -> int:
        self._steps += 1
        return self._steps > READ_BUDGET // PROGRESS_STEP  # nonzero interrupts the statement

    async def scan(self, query: str, values: Sequence[Any]) -> list[Row]:
        """Rows of any read, run on a reader thread."""

        def read() -> list[Row]:
            return _rows(self._thread_connection(query_only=True), query, values)

        return await asyncio.get_running_loop().run_in_executor(self._readers, read)

    async def transaction(self, work: Work[T], *, small: bool = True) -> T:
        """`work` as one transaction: committed when it returns, rolled back when it raises.

        Small transactions (one resource's rows) ready in the same turn of the event loop are
        committed together on the loop's thread (`_commit_groups`); a large one, or any while
        a RESTART checkpoint is under way, runs on the writer thread, which waits for the lock
        up to the busy timeout."""
        if small and not self._inline_paused:
            answered: asyncio.Future[T] = asyncio.get_running_loop().create_future()
            self._queued.append((work, answered))
            if self._committer is None or self._committer.done():
                self._committer = asyncio.ensure_future(self._commit_groups())
            return await answered
        return await self._on_writer_thread(work)

    async def _on_writer_thread(self, work: Work[T]) -> T:
        def run() -> T:
            return _transaction(self._thread_connection(query_only=False), work)

        return await asyncio.get_running_loop().run_in_executor(self._writer, run)

    async def _commit_groups(self) -> None:
        """Commit the queued small transactions, each group in one transaction of the loop's
        connection: COMMIT writes the WAL pages that a group's writes share (the index's leaf
        pages, the event log's last page) once, instead of once per write.

        Each unit runs in its own savepoint, so one that raises (a uniqueness conflict, a
        version mismatch) is rolled back alone and the others commit; each caller is answered
        after the COMMIT. The write lock is held only while a group runs, which never awaits
        (units of work cannot), as for a single transaction: another process waits no longer.
        While another process holds the lock, the group is tried again about a millisecond
        later; after INLINE_ATTEMPTS tries, or during a RESTART checkpoint, it runs on the
        writer thread, which waits for the lock (and queues behind the checkpoint)."""
        attempts = 0
        while self._queued:
            group, self._queued = self._queued, []
            works = [work for work, _ in group]
            on_thread = attempts >= INLINE_ATTEMPTS or self._inline_paused
            try:
                if on_thread:
                    attempts = 0
                    outcomes = await asyncio.get_running_loop().run_in_executor(
                        self._writer, self._group_waiting, works
                    )
                else:
                    outcomes = _group(self._loop_writer, works, inline=True)
            except _LockTaken:
                # Another process's write holds the lock for a fraction of a millisecond: try
                # again shortly rather than in SQLite's busy handler, whose sleeps grow to
                # 100 ms and gave writes with two workers a p99 of half a second.
                self._queued[:0] = group
                attempts += 1
                await asyncio.sleep(random.uniform(0.2, 1.0) / 1000)
                continue
            except Exception as exc:  # the whole group was rolled back: every caller hears why
                for _, answered in group:
                    if not answered.done():
                        answered.set_exception(exc)
                continue
            attempts = 0
            for (_, answered), (result, error) in zip(group, outcomes, strict=True):
                if answered.done():  # the caller was cancelled; its write is committed all the same
                    continue
                if error is not None:
                    answered.set_exception(error)
                else:
                    answered.set_result(result)
            if not on_thread:  # the writer thread's connection checkpoints by itself
                self._commits_since_checkpoint += 1
                if self._commits_since_checkpoint >= CHECKPOINT_EVERY:
                    self._checkpoint_soon()

    def _group_waiting(self, works: list[Work[Any]]) -> list[tuple[Any, Exception | None]]:
        """`_group` on the writer thread's connection, which waits for the lock."""
        return _group(self._thread_connection(query_only=False), works, inline=False)

    def _checkpoint_soon(self) -> None:
        """Copy the WAL back into the database on the writer thread, so the loop never waits for
        a checkpoint's writes and fsync (the loop's connection does not checkpoint itself).

        A PASSIVE checkpoint runs beside the writes but, racing a steady stream of them, never
        catches up, so the WAL is never started over (it grew by a megabyte a second and reads
        slowed with it). Once the WAL passes RESTART_FRAMES, writes are sent to the writer
        thread, where they queue behind a RESTART checkpoint that copies the little PASSIVE
        left and lets the next write start the WAL over. (Leaving the loop writing meanwhile
        made the RESTART sleep in SQLite's busy handler while it held the lock: stalls of a
        tenth of a second.)"""
        if self._checkpoint is not None and not self._checkpoint.done():
            return
        self._commits_since_checkpoint = 0
        self._checkpoint = asyncio.ensure_future(self._checkpoint_wal())

    async def _checkpoint_wal(self) -> None:
        loop = asyncio.get_running_loop()

        def checkpoint(mode: str) -> int:
            connection = self._thread_connection(query_only=False)
            # While a RESTART waits for the lock or for readers, it holds off every writer of
            # every process: it may wait only briefly, and gives up (to be tried again a hundred
            # commits later) rather than stall the other processes' writes.
            if mode == "RESTART":
                connection.execute(f"PRAGMA busy_timeout = {RESTART_WAIT_MS}")
            try:
                return connection.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()[1]
            except sqlite3.Error as exc:
                log.warning("SQLite %s checkpoint of %s failed: %s", mode, self.path, exc)
                return 0
            finally:
                connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")

        if await loop.run_in_executor(self._writer, checkpoint, "PASSIVE") < RESTART_FRAMES:
            return
        self._inline_paused = True
        try:
            await loop.run_in_executor(self._writer, checkpoint, "RESTART")
        finally:
            self._inline_paused = False

    async def close(self) -> None:
        """Let queued writes and a running checkpoint finish, stop the threads, close every
        connection."""
        if self._committer is not None:
            await asyncio.gather(self._committer, return_exceptions=True)
        if self._checkpoint is not None:
            await asyncio.gather(self._checkpoint, return_exceptions=True)
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        self._readers.shutdown(wait=True)
        self._writer.shutdown(wait=True)
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            connection.close()


class _LockTaken(Exception):
    """BEGIN IMMEDIATE found the write lock taken."""


def _group(
    connection: sqlite3.Connection, works: list[Work[Any]], *, inline: bool
) -> list[tuple[Any, Exception | None]]:
    """Run `works` in one transaction on `connection`, each in a savepoint: (result, None) or
    (None, the exception it raised, its statements rolled back) for each. Inline, _LockTaken if
    the lock is taken; an error outside the units rolls back all of them."""
    if len(works) == 1:  # no savepoint needed
        try:
            return [(_transaction(connection, works[0], inline=inline), None)]
        except _LockTaken:
            raise
        except Exception as exc:  # rolled back
            return [(None, exc)]
    try:
        connection.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if inline and _busy(exc) and not connection.in_transaction:
            raise _LockTaken() from None
        raise
    outcomes: list[tuple[Any, Exception | None]] = []
    try:
        for work in works:
            connection.execute("SAVEPOINT unit")
            try:
                result = run(work, lambda statement: _answer(connection, statement))
            except Exception as exc:
                if not connection.in_transaction:  # SQLite gave the whole transaction up
                    raise
                connection.execute("ROLLBACK TO unit")
                outcomes.append((None, exc))
            else:
                outcomes.append((result, None))
            connection.execute("RELEASE unit")
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return outcomes


def _transaction(connection: sqlite3.Connection, work: Work[T], *, inline: bool = False) -> T:
    """Run `work` in one transaction on `connection`; inline, _LockTaken if the lock is taken."""
    try:
        connection.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if inline and _busy(exc) and not connection.in_transaction:
            raise _LockTaken() from None
        raise
    try:
        result = run(work, lambda statement: _answer(connection, statement))
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return result


def _answer(connection: sqlite3.Connection, statement: Statement) -> Any:
    """A Query's rows, or how many rows a Command changed."""
    try:
        if isinstance(statement, Query):
            return _rows(connection, statement.sql, statement.values)
        before = connection.total_changes
        connection.execute(statement.sql, statement.values)
        return connection.total_changes - before
    except sqlite3.IntegrityError as exc:
        raise ConstraintViolation(str(exc)) from exc


def _rows(connection: sqlite3.Connection, query: str, values: Sequence[Any]) -> list[Row]:
    cursor = connection.execute(query, values)
    rows = cursor.fetchall()
    if not rows:
        return []
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=False)) for row in rows]


def _busy(exc: Exception) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text
