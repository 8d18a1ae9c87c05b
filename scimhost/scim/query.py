"""Queries the core hands to storage: filters resolved against a resource type.

A filter's attribute paths are resolved here, once, into `Field`s with the comparison values
already normalised the way index entries are (lower-cased unless `caseExact`, booleans and
dateTimes in one canonical text form, numbers as numbers). A backend only translates this tree
to its query language; it never sees attribute names it would have to interpret.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from scimhost.scim.errors import ScimError
from scimhost.scim.filter import (
    And,
    AttrPath,
    Compare,
    Node,
    Not,
    Or,
    Present,
    ValuePath,
    invalid_filter,
    parse_attr_path,
)
from scimhost.scim.index import normalise_datetime, normalise_text
from scimhost.scim.resource_types import ResourceType
from scimhost.scim.schema import Attribute

# Where a field lives: the attribute index, a resource column, or the membership rows (the
# member's or group's id; and, within a `members[...]` value filter, the member's type).
FieldKind = Literal["attr", "id", "created", "lastModified", "member", "group", "member_type"]


@dataclass(frozen=True, slots=True)
class Field:
    kind: FieldKind
    key: str = ""  # index path for kind "attr": lower-cased, `urn:...:attr.sub` for extensions
    numeric: bool = False  # compared as numbers (integer, decimal)


@dataclass(frozen=True, slots=True)
class QCompare:
    field: Field
    op: str
    value: Any  # normalised text, or a number when field.numeric


@dataclass(frozen=True, slots=True)
class QPresent:
    field: Field


@dataclass(frozen=True, slots=True)
class QAnd:
    terms: tuple[QNode, ...]


@dataclass(frozen=True, slots=True)
class QOr:
    terms: tuple[QNode, ...]


@dataclass(frozen=True, slots=True)
class QNot:
    expr: QNode


@dataclass(frozen=True, slots=True)
class QValuePath:
    """Some one value of a multi-valued attribute matches `filter`, whose fields all belong to
    that attribute (`emails[type eq "work" and value eq "x"]` needs both on the same value).

    For `members` and `groups` (kept as membership rows, not index entries) `attribute` is
    "members" or "groups" and the filter's fields are `member`/`group` and `member_type`: one
    membership row must match it."""

    attribute: str  # index path prefix of the multi-valued attribute
    filter: QNode
    membership: bool = False


@dataclass(frozen=True, slots=True)
class QConstant:
    """A comparison whose answer is known without the store: one on an attribute the resource
    type does not define (RFC 7644 §3.4.2.2: as if the attribute had no value, so `pr` and `eq`
    are false). `fold` removes these before a query reaches a backend."""

    value: bool


QNode = QCompare | QPresent | QAnd | QOr | QNot | QValuePath | QConstant


@dataclass(frozen=True, slots=True)
class SortKey:
    """`sortBy` resolved: the field, its order, and for a multi-valued attribute the path of
    the `primary` flag whose value sorts first (RFC 7644 §3.4.2.3)."""

    field: Field
    descending: bool = False
    primary_path: str | None = None


@dataclass(frozen=True)
class ResourceQuery:
    """What a list or search asks of the store.

    Index paging uses `start_index`; cursor paging (RFC 9865) gives `after` or `before`, the
    (created, id) position of the last or first resource of the previous page."""

    filter: QNode | None = None
    sort: SortKey | None = None
    start_index: int = 1
    count: int = 100
    cursor_paging: bool = False
    after: tuple[datetime, str] | None = None
    before: tuple[datetime, str] | None = None


@dataclass
class Undefined:
    """The attribute paths of a search across resource types that one type does not define;
    that type treats them as having no value (RFC 7644 §3.4.2.2), in the filter and for sorting."""

    filter_paths: set[str] = field(default_factory=set)
    sort_path: str | None = None


def millisecond_range(value: datetime) -> tuple[datetime, datetime]:
    """The millisecond a meta.created / meta.lastModified filter value names, as [start, end):
    timestamps are rendered at millisecond precision (the store keeps microseconds), so a client
    filtering on a value it read must get that resource. `eq` is the whole range; `gt` starts at
    its end, `ge` at its start, `lt` ends at its start, `le` at its end."""
    start = value.replace(microsecond=value.microsecond // 1000 * 1000)
    return start, start + timedelta(milliseconds=1)


# --- filter resolution ----------------------------------------------------------------------------

_META_COLUMNS: dict[str, FieldKind] = {"created": "created", "lastmodified": "lastModified"}


def resolve_filter(node: Node, resource_type: ResourceType, undefined: Undefined | None = None) -> QNode:
    """The filter with its paths resolved against `resource_type`; 400 invalidFilter on an
    unsupported comparison, and on an unknown attribute unless `undefined` is given.

    With `undefined` (a search across resource types), a path the type does not define is
    recorded there and treated as having no value (RFC 7644 §3.4.2.2): the comparison becomes a
    `QConstant`, false for `pr` and `eq`, true for `ne`, which `fold` removes."""
    if isinstance(node, And):
        return QAnd(tuple(resolve_filter(t, resource_type, undefined) for t in node.terms))
    if isinstance(node, Or):
        return QOr(tuple(resolve_filter(t, resource_type, undefined) for t in node.terms))
    if isinstance(node, Not):
        return QNot(resolve_filter(node.expr, resource_type, undefined))
    if isinstance(node, ValuePath):
        return _resolve_value_path(node, resource_type, undefined)
    # (An attribute the type defines but that cannot be filtered on stays an error.)
    if undefined is not None and resource_type.resolve(node.path) is None:
        undefined.filter_paths.add(str(node.path))
        return _absent(node)
    field, attribute = _resolve_field(node.path, resource_type)
    if field.kind == "member_type":  # `members.type eq "User"` is `members[type eq "User"]`
        inner = replace(node, path=AttrPath(None, node.path.sub or "type"))
        return _resolve_value_path(ValuePath(AttrPath(None, "members"), inner), resource_type)
    if isinstance(node, Present):
        return QPresent(field)
    return _compare(field, attribute, node.op, node.value)


def _absent(node: Compare | Present) -> QConstant:
    """A comparison on an attribute without a value: `pr`, `eq` and the others false; `ne` (not
    `eq`) and `eq null` (not `pr`) true."""
    if isinstance(node, Present):
        return QConstant(False)
    if node.value is None:
        if node.op not in ("eq", "ne"):
            raise invalid_filter(f"'{node.op}' cannot compare with null")
        return QConstant(node.op == "eq")
    return QConstant(node.op == "ne")


def fold(node: QNode) -> QNode | bool:
    """The filter without `QConstant`s: True when it matches every resource, False when none,
    else an equivalent tree a backend translates."""
    if isinstance(node, QConstant):
        return node.value
    if isinstance(node, QNot):
        inner = fold(node.expr)
        return (not inner) if isinstance(inner, bool) else QNot(inner)
    if isinstance(node, (QAnd, QOr)):
        # `and`: a false term decides, true ones drop out; `or` the other way round.
        deciding = isinstance(node, QOr)
        terms = []
        for term in node.terms:
            folded = fold(term)
            if folded is deciding:
                return deciding
            if not isinstance(folded, bool):
                terms.append(folded)
        if not terms:
            return not deciding
        return terms[0] if len(terms) == 1 else type(node)(tuple(terms))
    # A value path holds no constants: _resolve_value_path folds its filter.
    return node


def _resolve_field(path: AttrPath, resource_type: ResourceType) -> tuple[Field, Attribute]:
    resolved = resource_type.resolve(path)
    if resolved is None or resolved.attribute is None:
        raise invalid_filter(f"unknown attribute '{path}' in {resource_type.name}")
    attribute, sub = resolved.attribute, resolved.sub
    name = attribute.name.lower()
    if resolved.schema is None:  # common attributes
        if name == "id":
            return Field("id"), attribute
        if name == "meta":
            if sub is None or sub.name.lower() not in _META_COLUMNS:
                raise invalid_filter(f"'{path}' cannot be filtered on; use meta.created or meta.lastModified")
            return Field(_META_COLUMNS[sub.name.lower()]), sub
    if not resolved.is_extension and attribute.type == "complex" and attribute.multi_valued:
        if name in ("members", "groups"):
            # Membership rows hold the id and the member's type; the rest (display, $ref) would
            # need every member read.
            value = sub or attribute.sub("value")
            assert value is not None, "members and groups have a value sub-attribute"
            return _membership_field(name, value), value
    prefix = resolved.extension_urn.lower() + ":" if resolved.extension_urn else ""
    if attribute.type == "complex":
        if sub is None:
            # RFC 7644 §3.4.2.2: a complex multi-valued attribute compares its `value`.
            sub = attribute.sub("value")
            if sub is None:
                raise invalid_filter(f"'{path}' is complex; filter on one of its sub-attributes")
        target = sub
        key = f"{prefix}{name}.{sub.name.lower()}"
    else:
        target = attribute
        key = prefix + name
    if target.mutability == "writeOnly" or target.returned == "never":
        raise invalid_filter(f"'{path}' cannot be filtered on")
    return _attribute_field(resource_type, key, target, str(path)), target


def _attribute_field(resource_type: ResourceType, key: str, target: Attribute, shown: str) -> Field:
    """The field of an attribute answered from index rows; 400 when the type keeps none for it."""
    if not resource_type.indexes(key):
        raise invalid_filter(
            f"'{shown}' is not indexed for {resource_type.name} on this server ([[indexes]]), "
            "so it cannot be filtered or sorted on"
        )
    return Field("attr", key, numeric=target.type in ("integer", "decimal"))


def _compare(field: Field, attribute: Attribute, op: str, value: Any) -> QNode:
    if value is None:
        if op == "eq":
            return QNot(QPresent(field))
        if op == "ne":
            return QPresent(field)
        raise invalid_filter(f"'{op}' cannot compare with null")
    kind = attribute.type
    if kind == "boolean":
        if op not in ("eq", "ne"):
            raise invalid_filter(f"'{op}' does not apply to the boolean '{attribute.name}'")
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise invalid_filter(f"'{attribute.name}' is a boolean: compare it with true or false")
    elif kind in ("integer", "decimal"):
        if op in ("co", "sw", "ew"):
            raise invalid_filter(f"'{op}' does not apply to the number '{attribute.name}'")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise invalid_filter(f"'{attribute.name}' is a number")
        return _negated(op, QCompare(field, "eq" if op == "ne" else op, float(value)))
    elif kind == "dateTime":
        if op in ("co", "sw", "ew"):
            raise invalid_filter(f"'{op}' does not apply to the dateTime '{attribute.name}'")
        if not isinstance(value, str):
            raise invalid_filter(f"'{attribute.name}' is a dateTime: compare it with a quoted date")
    elif not isinstance(value, str):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise invalid_filter(f"'{attribute.name}' is a string: compare it with a quoted value")
        value = str(value)
    if field.kind in ("id", "member", "group", "member_type"):
        text = value
    elif field.kind in ("created", "lastModified"):
        text = normalise_datetime(value)
    else:
        text = normalise_text(attribute, value)
    return _negated(op, QCompare(field, "eq" if op == "ne" else op, text))


def _negated(op: str, node: QCompare) -> QNode:
    # `ne` is "not eq": true for resources without the attribute, as the in-memory evaluator.
    return QNot(node) if op == "ne" else node


def _resolve_value_path(node: ValuePath, resource_type: ResourceType, undefined: Undefined | None = None) -> QNode:
    resolved = resource_type.resolve(node.path)
    if undefined is not None and resolved is None:
        # Recorded as each path it compares, so that `emails[nosuch eq "x"]` is known to name
        # an attribute no type defines however many types lack `emails` altogether.
        undefined.filter_paths.update(f"{node.path}.{leaf}" for leaf in _compared_paths(node.filter))
        return QConstant(False)  # no value of an attribute without values matches anything
    if resolved is None or resolved.attribute is None or resolved.sub is not None:
        raise invalid_filter(f"unknown attribute '{node.path}' in {resource_type.name}")
    attribute = resolved.attribute
    if not attribute.multi_valued:
        raise invalid_filter(f"'{node.path}' is not multi-valued; write '{node.path}.sub op value' instead")
    prefix = resolved.extension_urn.lower() + ":" if resolved.extension_urn else ""
    base = prefix + attribute.name.lower()
    membership = not resolved.is_extension and base in ("members", "groups") and attribute.type == "complex"
    value_path = str(node.path)

    def inner(sub_node: Node) -> QNode:
        if isinstance(sub_node, And):
            return QAnd(tuple(inner(t) for t in sub_node.terms))
        if isinstance(sub_node, Or):
            return QOr(tuple(inner(t) for t in sub_node.terms))
        if isinstance(sub_node, Not):
            return QNot(inner(sub_node.expr))
        if isinstance(sub_node, ValuePath):
            raise invalid_filter("a value filter cannot hold another")
        path = sub_node.path
        if path.urn or path.sub:
            raise invalid_filter(f"'{path}' is not a sub-attribute of '{attribute.name}'")
        if attribute.type == "complex":
            sub = attribute.sub(path.attr)
            if sub is None and undefined is not None:
                undefined.filter_paths.add(f"{value_path}.{path.attr}")
                return _absent(sub_node)
            if sub is None:
                raise invalid_filter(f"'{attribute.name}' has no sub-attribute '{path.attr}'")
            target, key = sub, f"{base}.{sub.name.lower()}"
        else:
            if path.attr.lower() != "value" and undefined is not None:
                undefined.filter_paths.add(f"{value_path}.{path.attr}")
                return _absent(sub_node)
            if path.attr.lower() != "value":
                raise invalid_filter(f"'{attribute.name}' has no sub-attribute '{path.attr}'")
            target, key = attribute, base
        if membership:
            field = _membership_field(base, target)
            if isinstance(sub_node, Present):
                return QPresent(field)
            node = _compare(field, target, sub_node.op, sub_node.value)
            if field.kind == "member_type" and isinstance(node, QCompare):
                # Stored as the resource type's name; the schema's canonical values say "User".
                node = QCompare(
                    field, node.op, {"user": "User", "group": "Group"}.get(str(node.value).lower(), node.value)
                )
            return node
        field = _attribute_field(resource_type, key, target, f"{value_path}.{path.attr}")
        if isinstance(sub_node, Present):
            return QPresent(field)
        return _compare(field, target, sub_node.op, sub_node.value)

    resolved_filter = inner(node.filter)
    if undefined is None:
        return QValuePath(base, resolved_filter, membership=membership)
    folded = fold(resolved_filter)
    if folded is True:  # true of any value: the attribute has some value
        if membership:
            return QPresent(Field("member" if base == "members" else "group"))
        if attribute.type != "complex":
            return QPresent(Field("attr", base))
        subs = [s for s in attribute.sub_attributes.values() if s.returned != "never" and s.mutability != "writeOnly"]
        return QOr(tuple(QPresent(Field("attr", f"{base}.{s.name.lower()}")) for s in subs))
    if folded is False:
        return QConstant(False)
    return QValuePath(base, folded, membership=membership)


def _compared_paths(node: Node) -> list[str]:
    """The paths a filter's comparisons name."""
    if isinstance(node, (And, Or)):
        return [path for term in node.terms for path in _compared_paths(term)]
    if isinstance(node, Not):
        return _compared_paths(node.expr)
    if isinstance(node, ValuePath):
        return [f"{node.path}.{path}" for path in _compared_paths(node.filter)]
    return [str(node.path)]


def _membership_field(base: str, sub: Attribute) -> Field:
    """The field of a membership row a `members[...]` / `groups[...]` filter compares."""
    name = sub.name.lower()
    if name == "value":
        return Field("member" if base == "members" else "group")
    if name == "type" and base == "members":
        return Field("member_type")
    raise invalid_filter(
        f"a {base}[...] filter can compare value" + (" and type" if base == "members" else "") + f", not {sub.name}"
    )


def resolve_sort(
    sort_by: str, sort_order: str | None, resource_type: ResourceType, undefined: Undefined | None = None
) -> SortKey | None:
    """`sortBy` / `sortOrder` resolved; 400 invalidValue for an attribute that cannot sort, and
    for one the type does not define unless `undefined` is given: then it is recorded there and
    the answer is None (no resource of the type has a value to sort by)."""

    def invalid(detail: str) -> ScimError:
        return ScimError(400, detail, "invalidValue")

    order = (sort_order or "ascending").lower()
    if order not in ("ascending", "descending"):
        raise invalid("sortOrder must be ascending or descending")
    path = parse_attr_path(sort_by.strip(), lambda detail: invalid(f"sortBy: {detail}"))
    if undefined is not None and resource_type.resolve(path) is None:
        undefined.sort_path = str(path)
        return None
    try:
        field, attribute = _resolve_field(path, resource_type)
    except ScimError as exc:
        raise invalid(f"sortBy: {exc.detail}") from None
    if field.kind in ("member", "group", "member_type") or attribute.type == "complex":
        raise invalid(f"sortBy: '{path}' cannot be sorted on")
    primary = None
    resolved = resource_type.resolve(path)
    if resolved is not None and resolved.attribute is not None and resolved.attribute.multi_valued:
        if resolved.attribute.sub("primary") is not None:
            primary = field.key.rsplit(".", 1)[0] + ".primary"
    return SortKey(field, order == "descending", primary)
