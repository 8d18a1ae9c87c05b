"""People's names for the resources that events and memberships name by id, for the pages."""

from __future__ import annotations

from typing import Any

from scimhost.host import Host
from scimhost.storage.backend import StoredEvent

# Names read per member change of one event; the rest are counted ("and 40 more").
MEMBERS_NAMED = 10


def display_name(document: dict[str, Any] | None) -> str | None:
    """What a person calls a resource: its userName or displayName, else its externalId."""
    if not document:
        return None
    for key in ("userName", "displayName", "externalId"):
        value = document.get(key)
        if isinstance(value, str) and value:
            return value
    return None


class Names:
    """Names of one source's resources by id, each read from the store at most once per page
    (through the source's scope, as every read is)."""

    def __init__(self, host: Host) -> None:
        self._host = host
        self._known: dict[tuple[str, str], tuple[str | None, str | None]] = {}

    async def of(self, slug: str, resource_id: str) -> str | None:
        return (await self.type_and_name(slug, resource_id))[1]

    async def type_and_name(self, slug: str, resource_id: str) -> tuple[str | None, str | None]:
        """The resource type and name of an id of the source (None for what is not known)."""
        key = (slug, resource_id)
        if key not in self._known:
            self._known[key] = await self._read(slug, resource_id)
        return self._known[key]

    async def _read(self, slug: str, resource_id: str) -> tuple[str | None, str | None]:
        source = self._host.sources.get(slug)
        for type_name in source.catalog.resource_types if source else ():
            found = await self._host.storage.get_resource(slug, type_name, resource_id, members=False, groups=False)
            if found is not None:
                return type_name, display_name(found.document)
        # Deleted: the last document its events kept.
        for event in await self._host.storage.list_events(slug, resource_id=resource_id, newest_first=True, limit=5):
            if event.resource:
                return event.resource_type, display_name(event.resource)
        return None, None

    async def of_event(self, event: StoredEvent) -> str | None:
        """The name of the resource an event changed (after the change, or before a delete)."""
        return display_name(event.resource) or await self.of(event.source, event.resource_id)

    async def member_changes(self, event: StoredEvent) -> dict[str, Any] | None:
        """An event's membership change with its members named: `added` and `removed` as
        [{"id", "type", "name"}] (the first MEMBERS_NAMED), with how many more; or the replaced
        count."""
        if not event.members:
            return None
        named: dict[str, Any] = {"replaced": bool(event.members.get("replaced")), "count": event.members.get("count")}
        for kind in ("added", "removed"):
            ids = [i for i in event.members.get(kind) or [] if isinstance(i, str)]
            named[kind] = []
            for member_id in ids[:MEMBERS_NAMED]:
                type_name, name = await self.type_and_name(event.source, member_id)
                named[kind].append({"id": member_id, "type": type_name or "User", "name": name})
            named[f"more_{kind}"] = max(0, len(ids) - MEMBERS_NAMED)
        return named
