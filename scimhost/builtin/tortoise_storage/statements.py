"""Statements as the backend builds them, and transactions as plain generators of statements.

A statement's values are bound as the text is written: `p(value)` records the value and returns
its placeholder in the database's own style (`?3` on SQLite, `$3` on PostgreSQL), so client
input only ever travels as a bound value and no text is rewritten afterwards. Placeholders are
numbered, so fragments may be written in any order and a value used twice is bound once.

A transaction (a *unit of work*) is a generator: it yields each statement and receives its
answer (rows for a Query, the number of rows changed for a Command), and returns its result.
It cannot await anything, so the same write path runs synchronously on an SQLite cursor (on the
event loop's thread or a writer thread) and asynchronously on a PostgreSQL connection; a
constraint the database enforces comes back into it as ConstraintViolation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from scimhost.builtin.tortoise_storage.dialects import Dialect

T = TypeVar("T")
Row = dict[str, Any]
# Ids per statement: well under SQLite's and PostgreSQL's limits on bound parameters.
CHUNK = 500


@dataclass(frozen=True, slots=True)
class Query:
    """A statement answered with its rows (SELECT, or a write with RETURNING).

    `atomic`: the first statement of its work and the whole of its changes, so a database may
    run it without a transaction around it (on PostgreSQL one round trip instead of three).
    After it the work only reads, and it raises only when the statement changed nothing."""

    sql: str
    values: Sequence[Any]
    atomic: bool = False


@dataclass(frozen=True, slots=True)
class Command:
    """A statement answered with the number of rows it changed."""

    sql: str
    values: Sequence[Any]


Statement = Query | Command
# A transaction: yields statements, is sent each one's answer, returns its result.
Work = Generator[Statement, Any, T]


class ConstraintViolation(Exception):
    """The database refused a row: a unique key, a foreign key or a NOT NULL column. `detail`:
    PostgreSQL's, naming the key's values ("Key (a, b)=(x, y) already exists.")."""

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail


class Params:
    """The bound values of one statement; calling it binds one and returns its placeholder."""

    __slots__ = ("dialect", "values")

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        values = self.values
        values.append(value)
        return f"{self.dialect.prefix}{len(values)}"

    def each(self, values: Iterable[Any]) -> str:
        """Placeholders of several values, comma-separated (an IN list, a row of VALUES)."""
        first = len(self.values) + 1
        self.values.extend(values)
        return self.dialect.marks(first, len(self.values) - first + 1)

    def query(self, sql: str, *, atomic: bool = False) -> Query:
        return Query(sql, self.values, atomic)

    def command(self, sql: str) -> Command:
        return Command(sql, self.values)


def single(statement: Statement) -> Work[Any]:
    """A transaction of one statement, answering what it answers."""
    return (yield statement)


def run(work: Work[T], answer: Callable[[Statement], Any]) -> T:
    """Drive `work` to its result, each statement answered by `answer` (synchronously)."""
    reply: Any = None
    refused: ConstraintViolation | None = None
    while True:
        try:
            statement = work.throw(refused) if refused is not None else work.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        try:
            reply, refused = answer(statement), None
        except ConstraintViolation as exc:
            reply, refused = None, exc


async def run_async(
    work: Work[T], answer: Callable[[Statement], Awaitable[Any]], *, first: Statement | None = None
) -> T:
    """Drive `work` to its result, each statement answered by awaiting `answer` (`first`: the
    statement the work has yielded already)."""
    reply: Any = None
    refused: ConstraintViolation | None = None
    while True:
        try:
            if first is not None:
                statement, first = first, None
            else:
                statement = work.throw(refused) if refused is not None else work.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        try:
            reply, refused = await answer(statement), None
        except ConstraintViolation as exc:
            reply, refused = None, exc


def chunks(items: Sequence[Any]) -> list[Sequence[Any]]:
    """`items` in slices of CHUNK, a statement each."""
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
