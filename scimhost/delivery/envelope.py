"""An event as every sink sends it: the Standard Webhooks body shape, `{"type", "timestamp",
"data"}`, with the event id (what consumers deduplicate on) and the version (what they order by)."""

from __future__ import annotations

from typing import Any

from scimhost.storage.backend import StoredEvent

_PAST = {"create": "created", "replace": "replaced", "patch": "patched", "delete": "deleted", "remap": "remapped"}


def event_type(event: StoredEvent) -> str:
    """`user.created`, `group.patched`, ...: the resource type, lower-cased, and the action."""
    return f"{event.resource_type.lower()}.{_PAST.get(event.action, event.action)}"


def timestamp(event: StoredEvent) -> str:
    return event.created.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(event: StoredEvent) -> dict[str, Any]:
    return {
        "type": event_type(event),
        "timestamp": timestamp(event),
        "data": {
            "id": event.id,
            "seq": event.seq,
            "source": event.source,
            "resourceType": event.resource_type,
            "resourceId": event.resource_id,
            "externalId": event.external_id,
            "action": event.action,
            "version": event.version,
            "etag": f'W/"{event.version}"' if event.version is not None else None,
            "changed": event.changed,
            "members": event.members,
            "actor": event.actor,
            "resource": event.resource,
            "record": event.record,
        },
    }
