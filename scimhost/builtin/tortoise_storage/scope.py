"""The one place that scopes SQL to one source: every statement that reads or changes one
source's rows (resources, index rows, unique values, membership rows, its service account and
token hashes, credentials, activity and failed requests) takes its WHERE clause from a Scope.
Statements over every source (the event log's and delivery queue's housekeeping, pruning by
age) name no source at all.

A source's token must reach only that source's data. Written by care, that held until a filter's
top-level `or` was appended after `source = ? AND resource_type = ? AND` without parentheses and
every other source's users matched. So no statement writes its own scope: it asks a Scope for
`alias.source = $1 [AND alias.resource_type = $2] AND (condition)`, and the caller's condition
always lands inside parentheses, whatever operators it holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from scimhost.builtin.tortoise_storage.statements import Params


@dataclass(frozen=True)
class Scope:
    """One source's slice of the store, optionally narrowed to one resource type."""

    source: str
    resource_type: str | None = None

    def of_type(self, resource_type: str) -> Scope:
        return Scope(self.source, resource_type)

    def where(self, p: Params, alias: str, condition: str = "", *, typed: bool = True) -> str:
        """`alias.source = ?` (and `alias.resource_type = ?` when this scope has a type and the
        table has the column, `typed`) AND the caller's condition, parenthesized. The
        condition's values are bound in `p` already."""
        sql = f"{alias}.source = {p(self.source)}"
        if typed and self.resource_type is not None:
            sql += f" AND {alias}.resource_type = {p(self.resource_type)}"
        if condition:
            sql += f" AND ({condition})"
        return sql

    def members(self, p: Params, alias: str = "m", condition: str = "") -> str:
        """The WHERE clause of a statement on membership rows (which carry a source, no type)."""
        return self.where(p, alias, condition, typed=False)

    def rows(self, p: Params, alias: str, condition: str = "") -> str:
        """The WHERE clause of a statement on a per-source table without a resource type
        (service accounts, credentials, activity, failed requests)."""
        return self.where(p, alias, condition, typed=False)
