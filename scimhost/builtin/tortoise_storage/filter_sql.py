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

from scimhost.builtin.tortoise_storage.dialects import Dialect
from scimhost.builtin.tortoise_storage.scope import Scope
from scimhost.builtin.tortoise_storage.statements import Params
from scimhost.scim.query import QAnd, QCompare, QNode, QNot, QOr, QPresent, QValuePath, millisecond_range

# SQL text written with its values bound into whichever statement it ends up in.
Fragment = Callable[[Params], str]
# Counts the rows of a driver (capped), so the cheapest of several can lead.
Estimate = Callable[[Fragment], Awaitable[int]]

_ORDER_OPS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
# A membership value filter's attribute: (the column naming the resource, the other column).
_MEMBERSHIP = {"members": ("group_id", "member_id"), "groups": ("member_id", "group_id")}
_COLUMNS = {"id": "r.id", "created": "r.created", "lastModified": "r.last_modified"}
# Above every character, so [prefix, prefix + TOP) is the range of texts starting with prefix.
_TOP = "\U0010ffff"


class FilterSQL:
    """Builds the SQL of one filter for one source and resource type."""

    def __init__(self, dialect: Dialect, scope: Scope) -> None:
        assert scope.resource_type is not None, "a filter runs on one resource type"
        self.dialect = dialect
        self.scope = scope

    async def where(self, node: QNode, estimate: Estimate) -> Fragment:
        """A condition on `r` selecting exactly the matching resources, led by an index driver
        when the filter has one."""
        driver = await self.driver(node, estimate)
        if driver is None:
            return lambda p: self.condition(p, node)
        return lambda p: f"{self.dialect.id_among('r.id', driver(p))} AND ({self.condition(p, node)})"

    # --- exact conditions -----------------------------------------------------------------------

    def condition(self, p: Params, node: QNode, item: str | None = None) -> str:
        if isinstance(node, (QAnd, QOr)):
            joiner = " AND " if isinstance(node, QAnd) else " OR "
            return joiner.join(f"({self.condition(p, term, item)})" for term in node.terms)
        if isinstance(node, QNot):
            return f"NOT ({self.condition(p, node.expr, item)})"
        if isinstance(node, QValuePath) and node.membership:
            this, _ = _MEMBERSHIP[node.attribute]
            inner = self._membership_condition(p, node.filter, node.attribute)
            where = self.scope.members(p, "m", f"m.{this} = r.id AND ({inner})")
            return f"EXISTS (SELECT 1 FROM scimhost_member m WHERE {where})"
        if isinstance(node, QValuePath):
            attribute = node.attribute
            paths = f"i.path = {p(attribute)} OR (i.path > {p(attribute + '.')} AND i.path < {p(attribute + '/')})"
            inner = self.condition(p, node.filter, item="i.item")
            where = self.scope.where(p, "i", f"i.resource_id = r.id AND ({paths}) AND ({inner})")
            return f"EXISTS (SELECT 1 FROM scimhost_attr i WHERE {where})"
        assert isinstance(node, (QCompare, QPresent))
        field = node.field
        if field.kind == "attr":
            condition = f"a.resource_id = r.id AND a.path = {p(field.key)}"
            if item:
                condition += f" AND a.item = {item}"
            if isinstance(node, QCompare):
                column = "a.value_num" if field.numeric else "a.value_text"
                if node.op == "eq" and not field.numeric:
                    # Equality is the same in every deterministic collation; by code point it is
                    # served by the text index drivers use (PostgreSQL's "C" one).
                    column = self.dialect.code_point_order(column)
                condition += " AND " + self._compare(p, column, node.op, node.value, text=not field.numeric)
            return f"EXISTS (SELECT 1 FROM scimhost_attr a WHERE {self.scope.where(p, 'a', condition)})"
        if field.kind in _COLUMNS:
            if isinstance(node, QPresent):
                return "1 = 1"
            if field.kind == "id":
                return self._compare(p, _COLUMNS["id"], node.op, node.value, text=True)
            return _compare_moment(p, _COLUMNS[field.kind], node.op, datetime.fromisoformat(node.value))
        # Membership rows: Group members.value and User groups.value.
        this, other = ("group_id", "member_id") if field.kind == "member" else ("member_id", "group_id")
        condition = f"m.{this} = r.id"
        if isinstance(node, QCompare):
            condition += " AND " + self._compare(p, f"m.{other}", node.op, node.value, text=True)
        return f"EXISTS (SELECT 1 FROM scimhost_member m WHERE {self.scope.members(p, 'm', condition)})"

    def _membership_condition(self, p: Params, node: QNode, attribute: str) -> str:
        """A condition on one membership row `m` (inside a `members[...]` / `groups[...]` filter)."""
        if isinstance(node, (QAnd, QOr)):
            joiner = " AND " if isinstance(node, QAnd) else " OR "
            return joiner.join(f"({self._membership_condition(p, term, attribute)})" for term in node.terms)
        if isinstance(node, QNot):
            return f"NOT ({self._membership_condition(p, node.expr, attribute)})"
        assert isinstance(node, (QCompare, QPresent))
        _, other = _MEMBERSHIP[attribute]
        column = "m.member_type" if node.field.kind == "member_type" else f"m.{other}"
        if isinstance(node, QPresent):
            return f"{column} IS NOT NULL"
        return self._compare(p, column, node.op, node.value, text=True)

    # --- index drivers --------------------------------------------------------------------------

    async def driver(self, node: QNode, estimate: Estimate) -> Fragment | None:
        """A SELECT of candidate resource ids (a superset of the matches) an index serves."""
        if isinstance(node, QAnd):
            # Any one term narrows the set: lead with the one that selects fewest rows
            # (`type eq "work"` matches most users, `value eq "x@y"` one).
            drivers = [d for d in [await self.driver(term, estimate) for term in node.terms] if d is not None]
            if len(drivers) > 1:
                sizes = [await estimate(driver) for driver in drivers]
                return drivers[sizes.index(min(sizes))]
            return drivers[0] if drivers else None
        if isinstance(node, QOr):
            terms = []
            for term in node.terms:
                driver = await self.driver(term, estimate)
                if driver is None:
                    return None
                terms.append(driver)
            return lambda p: " UNION ".join(
                f"SELECT resource_id FROM ({term(p)}) AS d{n}" for n, term in enumerate(terms)
            )
        if isinstance(node, QValuePath):
            return await self.driver(node.filter, estimate)
        if not isinstance(node, QCompare):
            return None
        return self._compare_driver(node)

    def _compare_driver(self, node: QCompare) -> Fragment | None:
        scope, field, value = self.scope, node.field, node.value
        if field.kind == "id" and node.op == "eq":
            return lambda p: (
                f"SELECT r.id AS resource_id FROM scimhost_resource r WHERE {scope.where(p, 'r', f'r.id = {p(value)}')}"
            )
        if field.kind in ("member", "group") and node.op == "eq":
            this, other = ("group_id", "member_id") if field.kind == "member" else ("member_id", "group_id")
            return lambda p: (
                f"SELECT m.{this} AS resource_id FROM scimhost_member m "
                f"WHERE {scope.members(p, 'm', f'm.{other} = {p(value)}')}"
            )
        if field.kind != "attr":
            return None
        column = "a.value_num" if field.numeric else "a.value_text"
        # Ranges compare text by code point: SQLite's binary order, PostgreSQL's "C" collation
        # (which migration 0003 indexes).
        ordered = column if field.numeric else self.dialect.code_point_order(column)

        def condition(p: Params) -> str:
            if node.op == "eq":
                # By code point too: the same equality, served by the one text index that serves
                # prefixes and ranges as well (on PostgreSQL, the "C" collation's).
                return f"{ordered} = {p(value)}"
            if node.op in _ORDER_OPS:
                return f"{ordered} {_ORDER_OPS[node.op]} {p(value)}"
            return f"{ordered} >= {p(value)} AND {ordered} < {p(value + _TOP)}"

        if node.op not in _ORDER_OPS and node.op != "eq" and not (node.op == "sw" and value):
            return None
        return lambda p: (
            "SELECT a.resource_id FROM scimhost_attr a "
            f"WHERE {scope.where(p, 'a', f'a.path = {p(field.key)} AND {condition(p)}')}"
        )

    # --- comparisons ----------------------------------------------------------------------------

    def _compare(self, p: Params, column: str, op: str, value: Any, *, text: bool) -> str:
        if op == "eq":
            return f"{column} = {p(value)}"
        if op in _ORDER_OPS:
            # Text by code point, as SQLite and the reference evaluator compare it.
            ordered = self.dialect.code_point_order(column) if text else column
            return f"{ordered} {_ORDER_OPS[op]} {p(value)}"
        if value == "":
            return f"{column} IS NOT NULL"
        # co, sw, ew: exact substring tests (LIKE is case-insensitive in SQLite and needs
        # escaping); case-insensitive attributes are already lower-cased on both sides.
        if op == "co":
            return self.dialect.contains(column, p, value)
        if op == "sw":
            return self.dialect.starts_with(column, p, value)
        return self.dialect.ends_with(column, p, value)


def _compare_moment(p: Params, column: str, op: str, value: datetime) -> str:
    """meta.created / meta.lastModified compared at the millisecond they are rendered with."""
    start, end = millisecond_range(value)
    if op == "eq":
        return f"({column} >= {p(start)} AND {column} < {p(end)})"
    comparison, bound = {"gt": (">=", end), "ge": (">=", start), "lt": ("<", start), "le": ("<", end)}[op]
    return f"{column} {comparison} {p(bound)}"
