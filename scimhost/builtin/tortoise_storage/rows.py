"""The store's rows as the storage interface's types (SQLite and PostgreSQL hand values back
in different forms)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from scimhost.builtin.tortoise_storage.statements import Row
from scimhost.storage.backend import StoredEvent, StoredResource

# The columns of an event, as `stored_event` reads them (table alias `e`).
EVENT_COLUMNS = ", ".join(
    "e." + c
    for c in (
        "seq",
        "id",
        "created",
        "source",
        "resource_type",
        "resource_id",
        "external_id",
        "action",
        "version",
        "actor",
        "changed",
        "members",
        "resource",
        "record",
        "operations",
    )
)


def as_datetime(value: Any) -> datetime | None:
    """SQLite hands timestamps back as text, PostgreSQL as datetimes."""
    if value is None or isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# The columns of a resource, as `stored_resource` reads them (table alias `r`).
RESOURCE_COLUMNS = "r.id, r.resource_type, r.data, r.version, r.created, r.last_modified, r.index_fingerprint"


def moment(value: Any) -> datetime:
    """A timestamp of a NOT NULL column."""
    parsed = as_datetime(value)
    if parsed is None:
        raise ValueError("a NOT NULL timestamp column held NULL")
    return parsed


def stored_event(row: dict[str, Any]) -> StoredEvent:
    def loaded(name: str) -> Any:
        return orjson.loads(row[name]) if row[name] is not None else None

    return StoredEvent(
        seq=int(row["seq"]),
        id=row["id"],
        created=moment(row["created"]),
        source=row["source"],
        resource_type=row["resource_type"],
        resource_id=row["resource_id"],
        external_id=row["external_id"],
        action=row["action"],
        version=row["version"],
        actor=loaded("actor"),
        changed=loaded("changed"),
        members=loaded("members"),
        resource=loaded("resource"),
        record=loaded("record"),
        operations=loaded("operations"),
    )


def stored_resource(row: Row, *, groups: bool = False) -> StoredResource:
    """A resource row (RESOURCE_COLUMNS, and `groups` when asked) as the interface's type."""
    return StoredResource(
        id=row["id"],
        resource_type=row["resource_type"],
        document=orjson.loads(row["data"]),
        version=row["version"],
        created=moment(row["created"]),
        last_modified=moment(row["last_modified"]),
        groups=[_without_none(group) for group in orjson.loads(row["groups"])] if groups else None,
        index_fingerprint=row["index_fingerprint"],
    )


def member(row: Row) -> dict[str, Any]:
    """A membership row joined with its member (`member_id`, `member_type`, `display`)."""
    return _without_none({"value": row["member_id"], "type": row["member_type"], "display": row["display"]})


def _without_none(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if v is not None}
