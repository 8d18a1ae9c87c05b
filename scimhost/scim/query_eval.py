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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scimhost.scim.query import IndexEntry, QAnd, QCompare, QNode, QNot, QOr, QPresent, QValuePath, millisecond_range


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
