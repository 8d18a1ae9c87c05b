"""An event's JSON shape, and the envelope every sink sends it in: the Standard Webhooks body
shape, `{"type", "timestamp", "data"}`, with the event id (what consumers deduplicate on) and the
version (what they order by)."""

from __future__ import annotations

from typing import Any

from scimhost.storage.backend import StoredEvent

_PAST = {
    "create": "created",
    "replace": "replaced",
    "patch": "patched",
    "delete": "deleted",
    "remap": "remapped",
    "restore": "restored",
}


def event_type(event: StoredEvent) -> str:
    """`user.created`, `group.patched`, ...: the resource type, lower-cased, and the action."""
    return f"{event.resource_type.lower()}.{_PAST.get(event.action, event.action)}"


def lifecycle(event: StoredEvent) -> str | None:
    """ "deactivated" when the write turned `active` from true (or unset) to false,
    "reactivated" when it turned it from false back to true (or unset), or restored an active
    soft-deleted resource; else None. A consumer
    that must end a person's sessions and tokens downstream can act on exactly these."""
    if event.action == "restore":  # deprovisioned, now assigned again
        return "reactivated" if (event.resource or {}).get("active") is not False else None
    change = event.changed.get("active")
    if event.action not in ("replace", "patch") or not isinstance(change, dict):
        return None
    was, now = change.get("old") is not False, change.get("new") is not False
    if was and not now:
        return "deactivated"
    if now and not was:
        return "reactivated"
    return None


def timestamp(event: StoredEvent) -> str:
    return event.created.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_json(event: StoredEvent) -> dict[str, Any]:
    """An event's JSON shape, the one every view shows (docs/events.md "What an event holds"):
    a sink's envelope `data`, `scimhost events`, the admin API."""
    return {
        "id": event.id,
        "seq": event.seq,
        "created": timestamp(event),
        "source": event.source,
        "resourceType": event.resource_type,
        "resourceId": event.resource_id,
        "externalId": event.external_id,
        "action": event.action,
        "lifecycle": lifecycle(event),
        "version": event.version,
        "etag": f'W/"{event.version}"' if event.version is not None else None,
        "changed": event.changed,
        "members": event.members,
        "actor": event.actor,
        "resource": event.resource,
        "record": event.record,
        "operations": event.operations,
    }


def envelope(event: StoredEvent) -> dict[str, Any]:
    """What a sink sends: the Standard Webhooks body with the event as its `data`."""
    return {"type": event_type(event), "timestamp": timestamp(event), "data": event_json(event)}
