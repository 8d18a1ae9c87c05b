"""Resolved SCIM filters (scimhost.scim.query) as SQL over the attribute index.

A filter becomes two pieces of one statement:

- a *condition* on the resource row `r`, exact for any filter: each comparison is a correlated
  EXISTS over the resource's index rows (`and`, `or`, `not` are SQL's own), and a value path
  needs its comparisons on the same value (`a.item = i.item`);
- an optional *driver*: a SELECT of candidate ids served by an index (`userName eq`, a prefix,
  a range), a superset of the matches. `r.id IN (driver)` lets the database start from a few
  index entries instead of every resource; the condition then decides exactly.

Every sub-select and driver is scoped to the source and resource type by the Scope (scope.py),
and the caller puts the whole condition inside the scope's parentheses. Values are always bound
parameters; only fixed SQL fragments are ever concatenated.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

# Counts the rows of a driver (capped), so the cheapest of several can lead.
Estimate = Callable[[str, list[Any]], Awaitable[int]]

from scimhost.builtin.tortoise_storage.scope import Scope
from scimhost.scim.query import QAnd, QCompare, QNode, QNot, QOr, QPresent, QValuePath, millisecond_range

_ORDER_OPS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
# A membership value filter's attribute: (the column naming the resource, the other column).
_MEMBERSHIP = {"members": ("group_id", "member_id"), "groups": ("member_id", "group_id")}
_COLUMNS = {"id": "r.id", "created": "r.created", "lastModified": "r.last_modified"}
# Above every character, so [prefix, prefix + TOP) is the range of texts starting with prefix.
_TOP = "\U0010ffff"


class FilterSQL:
    """Builds the SQL of one filter for one source and resource type."""

    def __init__(self, dialect: str, scope: Scope) -> None:
        assert scope.resource_type is not None, "a filter runs on one resource type"
        self.dialect = dialect
        self.scope = scope

    async def where(self, node: QNode, estimate: Estimate) -> tuple[str, list[Any]]:
        """A condition on `r` selecting exactly the matching resources, led by an index driver
        when the filter has one."""
        condition, values = self.condition(node)
        driver = await self.driver(node, estimate)
        if driver is None:
            return condition, values
        driver_sql, driver_values = driver
        return f"r.id IN ({driver_sql}) AND ({condition})", driver_values + values

    # --- exact conditions -----------------------------------------------------------------------

    def condition(self, node: QNode, item: str | None = None) -> tuple[str, list[Any]]:
        if isinstance(node, (QAnd, QOr)):
            joiner = " AND " if isinstance(node, QAnd) else " OR "
            parts, values = [], []
            for term in node.terms:
                sql, term_values = self.condition(term, item)
                parts.append(f"({sql})")
                values += term_values
            return joiner.join(parts), values
        if isinstance(node, QNot):
            sql, values = self.condition(node.expr, item)
            return f"NOT ({sql})", values
        if isinstance(node, QValuePath) and node.membership:
            this, _ = _MEMBERSHIP[node.attribute]
            inner, values = self._membership_condition(node.filter, node.attribute)
            where, bound = self.scope.members("m", f"m.{this} = r.id AND ({inner})", values)
            return f"EXISTS (SELECT 1 FROM scimhost_member m WHERE {where})", bound
        if isinstance(node, QValuePath):
            inner, values = self.condition(node.filter, item="i.item")
            attribute = node.attribute
            where, bound = self.scope.where(
                "i", f"i.resource_id = r.id AND (i.path = ? OR (i.path > ? AND i.path < ?)) AND ({inner})",
                [attribute, attribute + ".", attribute + "/", *values],
            )
            return f"EXISTS (SELECT 1 FROM scimhost_attr i WHERE {where})", bound
        field = node.field
        if field.kind == "attr":
            same_item = f" AND a.item = {item}" if item else ""
            if isinstance(node, QPresent):
                compare, values = "", []
            else:
                column = "a.value_num" if field.numeric else "a.value_text"
                compare, values = self._compare(column, node.op, node.value, text=not field.numeric)
                compare = f" AND {compare}"
            where, bound = self.scope.where("a", f"a.resource_id = r.id AND a.path = ?{same_item}{compare}", [field.key, *values])
            return f"EXISTS (SELECT 1 FROM scimhost_attr a WHERE {where})", bound
        if field.kind in _COLUMNS:
            if isinstance(node, QPresent):
                return "1 = 1", []
            if field.kind == "id":
                return self._compare(_COLUMNS["id"], node.op, node.value, text=True)
            return _compare_moment(_COLUMNS[field.kind], node.op, datetime.fromisoformat(node.value))
        # Membership rows: Group members.value and User groups.value.
        this, other = ("group_id", "member_id") if field.kind == "member" else ("member_id", "group_id")
        compare, values = ("", []) if isinstance(node, QPresent) else self._compare(f"m.{other}", node.op, node.value, text=True)
        where, bound = self.scope.members("m", f"m.{this} = r.id" + (f" AND {compare}" if compare else ""), values)
        return f"EXISTS (SELECT 1 FROM scimhost_member m WHERE {where})", bound

    def _membership_condition(self, node: QNode, attribute: str) -> tuple[str, list[Any]]:
        """A condition on one membership row `m` (inside a `members[...]` / `groups[...]` filter)."""
        if isinstance(node, (QAnd, QOr)):
            parts, values = [], []
            for term in node.terms:
                sql, term_values = self._membership_condition(term, attribute)
                parts.append(f"({sql})")
                values += term_values
            return (" AND " if isinstance(node, QAnd) else " OR ").join(parts), values
        if isinstance(node, QNot):
            sql, values = self._membership_condition(node.expr, attribute)
            return f"NOT ({sql})", values
        _, other = _MEMBERSHIP[attribute]
        column = "m.member_type" if node.field.kind == "member_type" else f"m.{other}"
        if isinstance(node, QPresent):
            return f"{column} IS NOT NULL", []
        return self._compare(column, node.op, node.value, text=True)

    # --- index drivers --------------------------------------------------------------------------

    async def driver(self, node: QNode, estimate: Estimate) -> tuple[str, list[Any]] | None:
        """A SELECT of candidate resource ids (a superset of the matches) an index serves."""
        if isinstance(node, QAnd):
            # Any one term narrows the set: lead with the one that selects fewest rows
            # (`type eq "work"` matches most users, `value eq "x@y"` one).
            drivers = [d for d in [await self.driver(term, estimate) for term in node.terms] if d is not None]
            if len(drivers) > 1:
                sizes = [await estimate(*driver) for driver in drivers]
                return drivers[sizes.index(min(sizes))]
            return drivers[0] if drivers else None
        if isinstance(node, QOr):
            parts, values = [], []
            for term in node.terms:
                driver = await self.driver(term, estimate)
                if driver is None:
                    return None
                parts.append(f"SELECT resource_id FROM ({driver[0]}) AS d{len(parts)}")
                values += driver[1]
            return " UNION ".join(parts), values
        if isinstance(node, QValuePath):
            return await self.driver(node.filter, estimate)
        if isinstance(node, QNot) or not isinstance(node, QCompare):
            return None
        field = node.field
        if field.kind == "id" and node.op == "eq":
            where, values = self.scope.where("r", "r.id = ?", [node.value])
            return f"SELECT r.id AS resource_id FROM scimhost_resource r WHERE {where}", values
        if field.kind in ("member", "group") and node.op == "eq":
            this, other = ("group_id", "member_id") if field.kind == "member" else ("member_id", "group_id")
            where, values = self.scope.members("m", f"m.{other} = ?", [node.value])
            return f"SELECT m.{this} AS resource_id FROM scimhost_member m WHERE {where}", values
        if field.kind != "attr":
            return None
        column = "a.value_num" if field.numeric else "a.value_text"
        # Ranges compare text by code point: SQLite's binary order, PostgreSQL's "C" collation
        # (which migration 0003 indexes).
        ordered = column + (' COLLATE "C"' if self.dialect == "postgres" and not field.numeric else "")
        if node.op == "eq":
            condition, values = f"{column} = ?", [node.value]
        elif node.op in _ORDER_OPS:
            condition, values = f"{ordered} {_ORDER_OPS[node.op]} ?", [node.value]
        elif node.op == "sw" and node.value:
            condition, values = f"{ordered} >= ? AND {ordered} < ?", [node.value, node.value + _TOP]
        else:
            return None
        where, bound = self.scope.where("a", f"a.path = ? AND {condition}", [field.key, *values])
        return f"SELECT a.resource_id FROM scimhost_attr a WHERE {where}", bound

    # --- comparisons ----------------------------------------------------------------------------

    def _compare(self, column: str, op: str, value: Any, *, text: bool) -> tuple[str, list[Any]]:
        if op == "eq":
            return f"{column} = ?", [value]
        if op in _ORDER_OPS:
            if text and self.dialect == "postgres":
                # Code-point order, as SQLite and the in-memory evaluator compare text.
                return f'{column} COLLATE "C" {_ORDER_OPS[op]} ?', [value]
            return f"{column} {_ORDER_OPS[op]} ?", [value]
        if value == "":
            return f"{column} IS NOT NULL", []
        # co, sw, ew: exact substring tests (LIKE is case-insensitive in SQLite and needs
        # escaping); case-insensitive attributes are already lower-cased on both sides.
        if self.dialect == "postgres":
            if op == "co":
                return f"strpos({column}, ?) > 0", [value]
            if op == "sw":
                return f"left({column}, ?) = ?", [len(value), value]
            return f"right({column}, ?) = ?", [len(value), value]
        if op == "co":
            return f"instr({column}, ?) > 0", [value]
        if op == "sw":
            return f"substr({column}, 1, ?) = ?", [len(value), value]
        return f"substr({column}, -?) = ?", [len(value), value]


def _compare_moment(column: str, op: str, value: datetime) -> tuple[str, list[Any]]:
    """meta.created / meta.lastModified compared at the millisecond they are rendered with."""
    start, end = millisecond_range(value)
    if op == "eq":
        return f"({column} >= ? AND {column} < ?)", [start, end]
    bound = {"gt": (">=", end), "ge": (">=", start), "lt": ("<", start), "le": ("<", end)}[op]
    return f"{column} {bound[0]} ?", [bound[1]]
