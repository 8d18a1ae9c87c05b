"""Filters evaluated in memory, on one resource document or on one value of a multi-valued
attribute (PATCH value paths). Comparison honours the attribute's type and `caseExact`.

Listing never filters in Python: the store runs filters as SQL. This evaluator serves PATCH
value filters and is the reference the SQL translation is tested against.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from scimhost.scim.filter import And, AttrPath, Compare, Node, Not, Or, Present, ValuePath, invalid_filter
from scimhost.scim.resource_types import ResourceType
from scimhost.scim.schema import Attribute

# Given a path, the attribute it names and the values it has in the evaluated document.
Lookup = Callable[[AttrPath], tuple[Attribute, list[Any]]]


def match_value(node: Node, item: Any, attribute: Attribute) -> bool:
    """Whether one value of multi-valued `attribute` matches a value filter (`type eq "work"`)."""

    def lookup(path: AttrPath) -> tuple[Attribute, list[Any]]:
        if path.urn is not None or path.sub is not None:
            raise invalid_filter(f"'{path}' is not a sub-attribute of '{attribute.name}'")
        if attribute.type != "complex":
            if path.attr.lower() != "value":
                raise invalid_filter(f"'{attribute.name}' has no sub-attribute '{path.attr}'")
            return attribute, [item]
        sub = attribute.sub(path.attr)
        if sub is None:
            raise invalid_filter(f"'{attribute.name}' has no sub-attribute '{path.attr}'")
        value = item.get(sub.name) if isinstance(item, dict) else None
        return sub, _values(value)

    return _evaluate(node, lookup)


def match_resource(node: Node, doc: dict[str, Any], resource_type: ResourceType) -> bool:
    """Whether a whole resource document matches a filter."""

    def lookup(path: AttrPath) -> tuple[Attribute, list[Any]]:
        resolved = resource_type.resolve(path)
        if resolved is None or resolved.attribute is None:
            raise invalid_filter(f"unknown attribute '{path}'")
        container = doc.get(resolved.extension_urn, {}) if resolved.extension_urn else doc
        if resolved.schema is None and resolved.attribute.name == "meta":
            container = doc
        value = container.get(resolved.attribute.name) if isinstance(container, dict) else None
        sub = resolved.sub
        if sub is None and resolved.attribute.type == "complex" and resolved.attribute.sub("value") is not None:
            sub = resolved.attribute.sub("value")  # RFC 7644 §3.4.2.2: `emails co "x"` compares value
        if sub is None:
            return resolved.attribute, _values(value)
        subs = [v.get(sub.name) for v in _values(value) if isinstance(v, dict)]
        return sub, [s for v in subs for s in _values(v)]

    def value_path(path: AttrPath, inner: Node) -> bool:
        resolved = resource_type.resolve(path)
        if resolved is None or resolved.attribute is None or resolved.sub is not None:
            raise invalid_filter(f"unknown attribute '{path}'")
        container = doc.get(resolved.extension_urn, {}) if resolved.extension_urn else doc
        values = _values(container.get(resolved.attribute.name))
        return any(match_value(inner, item, resolved.attribute) for item in values)

    return _evaluate(node, lookup, value_path)


def _values(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _evaluate(node: Node, lookup: Lookup, value_path: Callable[[AttrPath, Node], bool] | None = None) -> bool:
    if isinstance(node, And):
        return all(_evaluate(term, lookup, value_path) for term in node.terms)
    if isinstance(node, Or):
        return any(_evaluate(term, lookup, value_path) for term in node.terms)
    if isinstance(node, Not):
        return not _evaluate(node.expr, lookup, value_path)
    if isinstance(node, Present):
        _, values = lookup(node.path)
        return any(v not in (None, "", [], {}) for v in values)
    if isinstance(node, Compare):
        attribute, values = lookup(node.path)
        if node.value is None:
            present = any(v is not None for v in values)
            if node.op == "eq":
                return not present
            if node.op == "ne":
                return present
            raise invalid_filter(f"'{node.op}' cannot compare with null")
        expected = comparable(attribute, node.value, node.op)
        if node.op == "ne":
            return not any(_compare("eq", comparable(attribute, v, "eq"), expected) for v in values)
        return any(_compare(node.op, comparable(attribute, v, node.op), expected) for v in values)
    if isinstance(node, ValuePath):
        if value_path is None:
            raise invalid_filter("a value filter cannot hold another")
        return value_path(node.path, node.filter)
    raise TypeError(f"unknown filter node {node!r}")  # pragma: no cover


def comparable(attribute: Attribute, value: Any, op: str) -> Any:
    """A value in the form it is compared in for this attribute; raises on a meaningless filter."""
    kind = attribute.type
    if kind == "complex":
        raise invalid_filter(f"'{attribute.name}' is complex; compare one of its sub-attributes")
    if kind == "boolean":
        if op not in ("eq", "ne"):
            raise invalid_filter(f"'{op}' does not apply to the boolean '{attribute.name}'")
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise invalid_filter(f"'{attribute.name}' is a boolean")
        return value
    if kind in ("integer", "decimal"):
        if op in ("co", "sw", "ew"):
            raise invalid_filter(f"'{op}' does not apply to the number '{attribute.name}'")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise invalid_filter(f"'{attribute.name}' is a number")
        return value
    if kind == "dateTime":
        if not isinstance(value, str):
            raise invalid_filter(f"'{attribute.name}' is a dateTime")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise invalid_filter(f"{value!r} is not a dateTime") from None
        if op in ("co", "sw", "ew"):
            raise invalid_filter(f"'{op}' does not apply to the dateTime '{attribute.name}'")
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if isinstance(value, bool) or not isinstance(value, str):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        else:
            raise invalid_filter(f"'{attribute.name}' is a string")
    return value if attribute.case_exact else value.lower()


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if op == "eq":
        return bool(actual == expected)
    if op == "co":
        return bool(expected in actual)
    if op == "sw":
        return bool(actual.startswith(expected))
    if op == "ew":
        return bool(actual.endswith(expected))
    if op == "gt":
        return bool(actual > expected)
    if op == "ge":
        return bool(actual >= expected)
    if op == "lt":
        return bool(actual < expected)
    if op == "le":
        return bool(actual <= expected)
    raise invalid_filter(f"unknown operator '{op}'")  # pragma: no cover
