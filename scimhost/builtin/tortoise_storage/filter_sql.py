"""Resolved SCIM filters (scimhost.scim.query) as SQL over the attribute index.

Every node becomes a SELECT of matching resource ids: a comparison selects index rows, `and`
is INTERSECT, `or` is UNION, `not` is "all resources EXCEPT". A value path works on
(resource, item) pairs, so `emails[type eq "work" and value eq "x"]` needs both on the same
email. Values are always bound parameters; only fixed SQL fragments are ever concatenated.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from scimhost.scim.query import Field, QAnd, QCompare, QNode, QNot, QOr, QPresent, QValuePath

_ORDER_OPS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


class FilterSQL:
    """Builds the SQL of one filter for one source and resource type."""

    def __init__(self, dialect: str, source: str, resource_type: str) -> None:
        self.dialect = dialect
        self.source = source
        self.resource_type = resource_type
        self.counter = 0

    def resources(self, node: QNode) -> tuple[str, list[Any]]:
        """`SELECT resource_id ...` of the resources that match."""
        if isinstance(node, QAnd):
            return self._compound(node.terms, "INTERSECT", self.resources)
        if isinstance(node, QOr):
            return self._compound(node.terms, "UNION", self.resources)
        if isinstance(node, QNot):
            inner, values = self.resources(node.expr)
            every = "SELECT id AS resource_id FROM scimhost_resource WHERE source = ? AND resource_type = ?"
            return (
                f"{every} EXCEPT {self._simple(inner)}",
                [self.source, self.resource_type, *values],
            )
        if isinstance(node, QValuePath):
            items, values = self.items(node.filter, node.attribute)
            return f"SELECT resource_id FROM ({items}) AS {self._alias()}", values
        return self._leaf(node)

    def items(self, node: QNode, attribute: str) -> tuple[str, list[Any]]:
        """`SELECT resource_id, item ...` of the values of a multi-valued attribute that match."""
        if isinstance(node, QAnd):
            return self._compound(node.terms, "INTERSECT", lambda n: self.items(n, attribute), columns="resource_id, item")
        if isinstance(node, QOr):
            return self._compound(node.terms, "UNION", lambda n: self.items(n, attribute), columns="resource_id, item")
        if isinstance(node, QNot):
            inner, values = self.items(node.expr, attribute)
            every = (
                "SELECT resource_id, item FROM scimhost_attr WHERE source = ? AND resource_type = ? "
                "AND (path = ? OR (path > ? AND path < ?))"
            )
            return (
                f"{every} EXCEPT SELECT resource_id, item FROM ({inner}) AS {self._alias()}",
                [self.source, self.resource_type, attribute, attribute + ".", attribute + "/", *values],
            )
        condition, values = self._attr_condition(node)
        return (
            "SELECT resource_id, item FROM scimhost_attr WHERE source = ? AND resource_type = ? AND " + condition,
            [self.source, self.resource_type, *values],
        )

    # --- pieces ------------------------------------------------------------------------------------

    def _alias(self) -> str:
        self.counter += 1
        return f"q{self.counter}"

    def _simple(self, sql: str, columns: str = "resource_id") -> str:
        # SQLite cannot parenthesise the operands of INTERSECT/UNION/EXCEPT, so each compound
        # operand is wrapped as a plain SELECT over a subquery.
        return f"SELECT {columns} FROM ({sql}) AS {self._alias()}"

    def _compound(self, terms, operator: str, build, columns: str = "resource_id") -> tuple[str, list[Any]]:
        parts, values = [], []
        for term in terms:
            sql, term_values = build(term)
            parts.append(self._simple(sql, columns))
            values += term_values
        return f" {operator} ".join(parts), values

    def _leaf(self, node: QCompare | QPresent) -> tuple[str, list[Any]]:
        field = node.field
        scope = [self.source, self.resource_type]
        if field.kind == "attr":
            condition, values = self._attr_condition(node)
            return (
                "SELECT resource_id FROM scimhost_attr WHERE source = ? AND resource_type = ? AND " + condition,
                scope + values,
            )
        if field.kind in ("id", "created", "lastModified"):
            column = {"id": "id", "created": "created", "lastModified": "last_modified"}[field.kind]
            base = "SELECT id AS resource_id FROM scimhost_resource WHERE source = ? AND resource_type = ?"
            if isinstance(node, QPresent):
                return base, scope
            value: Any = node.value
            if field.kind != "id":
                value = datetime.fromisoformat(value)
            condition, values = self._compare(column, node.op, value, text=field.kind == "id")
            return f"{base} AND {condition}", scope + values
        # Membership: Group members.value and User groups.value.
        this, other = ("group_id", "member_id") if field.kind == "member" else ("member_id", "group_id")
        base = (
            f"SELECT m.{this} AS resource_id FROM scimhost_member m JOIN scimhost_resource r ON r.id = m.{this} "
            "WHERE r.source = ? AND r.resource_type = ?"
        )
        if isinstance(node, QPresent):
            return base, scope
        condition, values = self._compare(f"m.{other}", node.op, node.value, text=True)
        return f"{base} AND {condition}", scope + values

    def _attr_condition(self, node: QCompare | QPresent) -> tuple[str, list[Any]]:
        field: Field = node.field
        if isinstance(node, QPresent):
            return "path = ?", [field.key]
        column = "value_num" if field.numeric else "value_text"
        condition, values = self._compare(column, node.op, node.value, text=not field.numeric)
        return f"path = ? AND {condition}", [field.key, *values]

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
