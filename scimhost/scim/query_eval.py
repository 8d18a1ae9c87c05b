"""Resolved queries (scim/query.py) evaluated in memory on one stored resource: the semantics a
backend's translation must give, usable as is by a backend that cannot push filters down, and
the oracle the storage tests compare a backend's answers with.

A resource is seen as the store sees it: its id and timestamps, its attribute index entries
(`index_entries`: normalised text or numbers, `item` telling the values of a multi-valued
attribute apart) and its membership rows. The rules, which the built-in SQL follows too:

- A comparison on an attribute matches when some entry at that path satisfies it; `pr` when
  the path has any entry. An entry without a text (or, for a numeric field, a number) satisfies
  no comparison.
- Text compares by code point (`gt`, `lt`...); `co`, `sw`, `ew` are substring tests on values
  already lower-cased unless `caseExact`; `co ""` (and `sw`, `ew`) matches any value.
- `meta.created` and `meta.lastModified` compare at the millisecond they are rendered with.
- A value path (`emails[type eq "work" and value co "x"]`) needs its whole filter true of one
  value (one `item`); `members[...]` / `groups[...]` of one membership row.
- `not` negates exactly (there is no unknown).
- In a search across resource types, a comparison on an attribute the type does not define is
  as if the attribute had no value (`QConstant`: `pr` and `eq` false, `ne` true).
- Sorting (`in_sort_order`): the primary value of a multi-valued attribute, else its first;
  resources without a value last when ascending, first when descending (RFC 7644 §3.4.2.3);
  ties keep creation order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from scimhost.scim.index import IndexEntry
from scimhost.scim.query import (
    QAnd,
    QCompare,
    QConstant,
    QNode,
    QNot,
    QOr,
    QPresent,
    QValuePath,
    SortKey,
    millisecond_range,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Candidate:
    """One stored resource as a filter sees it."""

    id: str
    created: datetime
    last_modified: datetime
    entries: Sequence[IndexEntry]
    # A group's membership rows: (member id, member type).
    members: Sequence[tuple[str, str]] = ()
    # A user's groups: the ids of the groups it is a member of.
    groups: Sequence[str] = ()


def matches(node: QNode, candidate: Candidate) -> bool:
    """Whether the resource matches the resolved filter."""
    return _matches(node, candidate, None)


def _matches(node: QNode, candidate: Candidate, item: int | None) -> bool:
    if isinstance(node, QConstant):
        return node.value
    if isinstance(node, QAnd):
        return all(_matches(term, candidate, item) for term in node.terms)
    if isinstance(node, QOr):
        return any(_matches(term, candidate, item) for term in node.terms)
    if isinstance(node, QNot):
        return not _matches(node.expr, candidate, item)
    if isinstance(node, QValuePath):
        if node.membership:
            # A groups[...] filter compares only the group's id (query.py refuses its type).
            rows = candidate.members if node.attribute == "members" else [(g, "") for g in candidate.groups]
            return any(_membership_row_matches(node.filter, row) for row in rows)
        prefix = node.attribute + "."
        items = {e.item for e in candidate.entries if e.path == node.attribute or e.path.startswith(prefix)}
        return any(_matches(node.filter, candidate, value_item) for value_item in sorted(items))
    field = node.field
    if field.kind == "attr":
        entries = [e for e in candidate.entries if e.path == field.key and (item is None or e.item == item)]
        if isinstance(node, QPresent):
            return bool(entries)
        return any(
            _compare(e.number if field.numeric else e.text, node.op, node.value, text=not field.numeric)
            for e in entries
        )
    if field.kind == "id":
        return True if isinstance(node, QPresent) else _compare(candidate.id, node.op, node.value, text=True)
    if field.kind in ("created", "lastModified"):
        if isinstance(node, QPresent):
            return True
        moment = candidate.created if field.kind == "created" else candidate.last_modified
        return _compare_moment(moment, node.op, datetime.fromisoformat(node.value))
    ids = [member for member, _ in candidate.members] if field.kind == "member" else list(candidate.groups)
    if isinstance(node, QPresent):
        return bool(ids)
    return any(_compare(other, node.op, node.value, text=True) for other in ids)


def _membership_row_matches(node: QNode, row: tuple[str, str]) -> bool:
    """A `members[...]` / `groups[...]` filter on one row: (the other resource's id, its type)."""
    if isinstance(node, QAnd):
        return all(_membership_row_matches(term, row) for term in node.terms)
    if isinstance(node, QOr):
        return any(_membership_row_matches(term, row) for term in node.terms)
    if isinstance(node, QNot):
        return not _membership_row_matches(node.expr, row)
    assert isinstance(node, (QCompare, QPresent)), "a value filter holds no other"
    value = row[1] if node.field.kind == "member_type" else row[0]
    if isinstance(node, QPresent):
        return value is not None
    return _compare(value, node.op, node.value, text=True)


def _compare(stored: Any, op: str, value: Any, *, text: bool) -> bool:
    if stored is None:
        return False
    if op == "eq":
        return bool(stored == value)
    if op == "gt":
        return bool(stored > value)
    if op == "ge":
        return bool(stored >= value)
    if op == "lt":
        return bool(stored < value)
    if op == "le":
        return bool(stored <= value)
    if not text:
        return False
    if op == "co":
        return bool(value in stored)
    if op == "sw":
        return bool(stored.startswith(value))
    if op == "ew":
        return bool(stored.endswith(value))
    raise ValueError(f"unknown comparison {op!r}")


def _compare_moment(stored: datetime, op: str, value: datetime) -> bool:
    start, end = millisecond_range(value)
    if op == "eq":
        return start <= stored < end
    if op == "gt":
        return stored >= end
    if op == "ge":
        return stored >= start
    if op == "lt":
        return stored < start
    if op == "le":
        return stored < end
    raise ValueError(f"unknown comparison {op!r}")


def sort_value(candidate: Candidate, sort: SortKey) -> Any:
    """The value a resource sorts by (None when it has none): for a multi-valued attribute its
    primary value, else its first."""
    field = sort.field
    if field.kind == "id":
        return candidate.id
    if field.kind == "created":
        return candidate.created
    if field.kind == "lastModified":
        return candidate.last_modified
    entries = [e for e in candidate.entries if e.path == field.key]
    if sort.primary_path:
        primary = {e.item for e in candidate.entries if e.path == sort.primary_path and e.text == "true"}
        entries.sort(key=lambda e: (e.item not in primary, e.item))
    else:
        entries.sort(key=lambda e: e.item)
    if not entries:
        return None
    return entries[0].number if field.numeric else entries[0].text


def in_sort_order(items: Sequence[T], candidate: Callable[[T], Candidate], sort: SortKey | None) -> list[T]:
    """`items` in the order a list answers them: by creation (then id) without a sort; with one,
    by `sort_value`, missing values last when ascending and first when descending, ties in
    creation order."""
    seen = [(candidate(i), i) for i in items]
    seen.sort(key=lambda pair: (pair[0].created, pair[0].id))
    if sort is None:
        return [i for _, i in seen]
    ordered = sorted_by_value(seen, lambda pair: sort_value(pair[0], sort), descending=sort.descending)
    return [i for _, i in ordered]


def sorted_by_value(items: Sequence[T], value: Callable[[T], Any], *, descending: bool) -> list[T]:
    """Items already in their tie order, sorted by `value` (None: no value) the RFC's way: stable,
    so ties keep their order; the valueless last when ascending, first when descending."""
    valued, valueless = [], []
    for item in items:
        v = value(item)
        if v is None:
            valueless.append(item)
        else:
            valued.append((v, item))
    valued.sort(key=lambda pair: pair[0], reverse=descending)
    ordered = [i for _, i in valued]
    return valueless + ordered if descending else ordered + valueless
