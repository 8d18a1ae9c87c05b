"""What a write changed, as the event log records it: attribute differences (writeOnly values
masked) and membership changes (capped, so an event about a huge group stays small)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# Member ids an event lists before it says only how many there were.
MEMBER_CAP = 1000
_NOT_COMPARED = ("schemas", "id", "meta")


def document_changes(old: dict[str, Any], new: dict[str, Any], *, password_changed: bool = False) -> dict[str, Any]:
    """Top-level attributes whose value differs: name -> {"old", "new"} (None for absent).

    writeOnly values never appear: a password set or changed is {"changed": true}."""
    changes: dict[str, Any] = {}
    for key in dict.fromkeys([*old, *new]):
        if key in _NOT_COMPARED:
            continue
        before, after = old.get(key), new.get(key)
        if before != after:
            changes[key] = {"old": before, "new": after}
    if password_changed:
        changes["password"] = {"changed": True}
    return changes


def member_changes(changes: Iterable[tuple[str, Iterable[str]]]) -> dict[str, Any] | None:
    """A summary of (kind, ids) membership changes in order: ids added and removed, or, when the
    list was replaced, how many members it holds (and which, up to MEMBER_CAP)."""
    added: dict[str, None] = {}
    removed: dict[str, None] = {}
    replaced: list[str] | None = None
    for kind, ids in changes:
        ids = list(dict.fromkeys(ids))
        if kind == "set":
            replaced, added, removed = ids, {}, {}
        elif kind == "add":
            for member in ids:
                removed.pop(member, None)
                added[member] = None
        else:
            for member in ids:
                added.pop(member, None)
                removed[member] = None
    summary: dict[str, Any] = {}
    if replaced is not None:
        summary["replaced"] = True
        summary["count"] = len(replaced)
        if len(replaced) <= MEMBER_CAP:
            summary["members"] = replaced
    for name, ids in (("added", list(added)), ("removed", list(removed))):
        if ids:
            summary[name] = ids if len(ids) <= MEMBER_CAP else {"count": len(ids)}
    return summary or None


def recorded_operations(operations: Any, write_only: Iterable[str]) -> list[dict[str, Any]] | None:
    """A PATCH's operations as the event log keeps them: as sent, less every writeOnly value
    (an operation on such an attribute is left out, and such keys of a path-less value); None
    when they name more than MEMBER_CAP member values, so an event about a huge group stays small."""
    hidden = {name.lower() for name in write_only}
    kept: list[dict[str, Any]] = []
    members = 0
    for operation in operations if isinstance(operations, list) else []:
        if not isinstance(operation, dict):
            continue
        fields = {key.lower(): value for key, value in operation.items()}
        path, value = fields.get("path"), fields.get("value")
        top = path.split("[", 1)[0].split(".", 1)[0].lower() if isinstance(path, str) and ":" not in path else None
        if top in hidden:
            continue
        entry: dict[str, Any] = {"op": fields.get("op")}
        if path is not None:
            entry["path"] = path
        if "value" in fields:
            if path is None and isinstance(value, dict):
                value = {k: v for k, v in value.items() if k.lower() not in hidden}
            entry["value"] = value
        if top == "members" or (path is None and isinstance(value, dict) and "members" in value):
            listed = value if top == "members" else (value or {}).get("members")
            members += len(listed) if isinstance(listed, list) else 1
        kept.append(entry)
    return kept if members <= MEMBER_CAP else None
