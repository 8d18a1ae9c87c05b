"""What differs in the SQL text between SQLite and PostgreSQL, and nothing else.

Every statement of the backend is written once; where the two databases spell something
differently (placeholders, text order by code point, substring tests, JSON aggregation, a list
bound as one parameter), the statement asks its Dialect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from scimhost.builtin.tortoise_storage.statements import Params


class Dialect:
    """The spelling of one database's SQL."""

    name: str

    # Placeholders are this and the bound value's number (from 1).
    prefix: str

    def marks(self, first: int, count: int) -> str:
        """The comma-separated placeholders of `count` values bound from the `first`th on."""
        prefix = self.prefix
        return ", ".join([f"{prefix}{number}" for number in range(first, first + count)])

    def code_point_order(self, column: str) -> str:
        """`column` compared as text by code point (SCIM's order, the reference evaluator's)."""
        return column

    def id_among(self, column: str, subquery: str) -> str:
        """`column` is one of the ids `subquery` selects, written so the database looks each id
        up by its index whatever statistics it has (or lacks)."""
        return f"{column} IN ({subquery})"

    def contains(self, column: str, p: Params, value: str) -> str:
        raise NotImplementedError

    def starts_with(self, column: str, p: Params, value: str) -> str:
        raise NotImplementedError

    def ends_with(self, column: str, p: Params, value: str) -> str:
        raise NotImplementedError

    def groups_of(self, alias: str) -> str:
        """A subquery: the groups of the resource row `alias` as a JSON array of
        {value, display}, in the order it joined them, from membership rows of its own source."""
        raise NotImplementedError

    def id_list(self, p: Params, ids: list[str]) -> str:
        """A subquery of (member_id, position) rows from `ids`, bound as one value."""
        raise NotImplementedError

    def number_list(self, p: Params, numbers: list[int]) -> str:
        """A subquery of (value) rows from `numbers`, bound as one value."""
        raise NotImplementedError


class SQLite(Dialect):
    name = "sqlite"

    prefix = "?"  # numbered (?3): a value may be used twice, in any order

    def contains(self, column: str, p: Params, value: str) -> str:
        return f"instr({column}, {p(value)}) > 0"

    def starts_with(self, column: str, p: Params, value: str) -> str:
        return f"substr({column}, 1, {p(len(value))}) = {p(value)}"

    def ends_with(self, column: str, p: Params, value: str) -> str:
        return f"substr({column}, -{p(len(value))}) = {p(value)}"

    def groups_of(self, alias: str) -> str:
        return (
            "(SELECT json_group_array(json_object('value', o.group_id, 'display', o.display)) FROM "
            "(SELECT m.group_id, g.display FROM scimhost_member m "
            "JOIN scimhost_resource g ON g.id = m.group_id AND g.source = m.source "
            f"WHERE m.member_id = {alias}.id AND m.source = {alias}.source ORDER BY m.id) AS o)"
        )

    def id_list(self, p: Params, ids: list[str]) -> str:
        return f"SELECT value AS member_id, key AS position FROM json_each({p(orjson.dumps(ids).decode())})"

    def number_list(self, p: Params, numbers: list[int]) -> str:
        return f"SELECT value FROM json_each({p(orjson.dumps(numbers).decode())})"


class PostgreSQL(Dialect):
    name = "postgres"

    prefix = "$"

    def code_point_order(self, column: str) -> str:
        # Migration 0003 indexes value_text in the "C" collation for these comparisons.
        return f'{column} COLLATE "C"'

    def id_among(self, column: str, subquery: str) -> str:
        # An array computed once (an InitPlan), then primary-key probes: with `IN (subquery)` a
        # never-analyzed store was planned as a walk over every resource of the source with the
        # subquery run per row, so an initial sync's lookups grew with the store.
        return f"{column} = ANY(ARRAY({subquery}))"

    def contains(self, column: str, p: Params, value: str) -> str:
        return f"strpos({column}, {p(value)}) > 0"

    def starts_with(self, column: str, p: Params, value: str) -> str:
        return f"left({column}, {p(len(value))}) = {p(value)}"

    def ends_with(self, column: str, p: Params, value: str) -> str:
        return f"right({column}, {p(len(value))}) = {p(value)}"

    def groups_of(self, alias: str) -> str:
        return (
            "(SELECT COALESCE(json_agg(json_build_object('value', m.group_id, 'display', g.display) "
            "ORDER BY m.id), '[]'::json)::text FROM scimhost_member m "
            "JOIN scimhost_resource g ON g.id = m.group_id AND g.source = m.source "
            f"WHERE m.member_id = {alias}.id AND m.source = {alias}.source)"
        )

    def id_list(self, p: Params, ids: list[str]) -> str:
        return f"SELECT member_id, position FROM unnest({p(ids)}::varchar[]) WITH ORDINALITY AS u(member_id, position)"

    def number_list(self, p: Params, numbers: list[int]) -> str:
        return f"SELECT value FROM unnest({p(numbers)}::bigint[]) AS u(value)"


SQLITE = SQLite()
POSTGRES = PostgreSQL()
