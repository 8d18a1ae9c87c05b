"""The one place that scopes SQL to one source: every statement on resources, index rows,
unique values and membership rows takes its WHERE clause from a Scope.

A source's token must reach only that source's data. Written by care, that held until a filter's
top-level `or` was appended after `source = ? AND resource_type = ? AND` without parentheses and
every other source's users matched. So no statement writes its own scope: it asks a Scope for
`alias.source = ? [AND alias.resource_type = ?] AND (condition)`, and the caller's condition
always lands inside parentheses, whatever operators it holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Scope:
    """One source's slice of the store, optionally narrowed to one resource type."""

    source: str
    resource_type: str | None = None

    def of_type(self, resource_type: str) -> Scope:
        return Scope(self.source, resource_type)

    def where(self, alias: str, condition: str = "", values: Sequence[Any] = (), *, typed: bool = True) -> tuple[str, list[Any]]:
        """`alias.source = ?` (and `alias.resource_type = ?` when this scope has a type and the
        table has the column, `typed`) AND the caller's condition, parenthesized."""
        sql = f"{alias}.source = ?"
        bound: list[Any] = [self.source]
        if typed and self.resource_type is not None:
            sql += f" AND {alias}.resource_type = ?"
            bound.append(self.resource_type)
        if condition:
            sql += f" AND ({condition})"
            bound.extend(values)
        return sql, bound

    def members(self, alias: str = "m", condition: str = "", values: Sequence[Any] = ()) -> tuple[str, list[Any]]:
        """The WHERE clause of a statement on membership rows (which carry a source, no type)."""
        return self.where(alias, condition, values, typed=False)
