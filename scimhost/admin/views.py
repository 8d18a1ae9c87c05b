"""What the admin pages and their JSON API show, read from the store (the same for both)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from scimhost.admin.names import Names, display_name
from scimhost.delivery.dispatcher import LEASE
from scimhost.delivery.envelope import event_json
from scimhost.delivery.status import sink_status
from scimhost.host import Host
from scimhost.resource_service import ResourceService
from scimhost.scim.errors import ScimError
from scimhost.scim.listing import ListParams
from scimhost.scim.query import ResourceQuery
from scimhost.scim.render import Projection
from scimhost.sources import Source
from scimhost.storage.backend import StorageError, StoredEvent

PAGE_SIZE = 50
MEMBERS_SHOWN = 200
HISTORY_SHOWN = 200
# Keys never shown, at any depth: a mapping may copy a password into a record.
HIDDEN_KEYS = frozenset({"password"})


class NotFound(Exception):
    """No such source, resource type, resource or event."""


def hidden(value: Any) -> Any:
    """`value` without any key in HIDDEN_KEYS, at any depth."""
    if isinstance(value, dict):
        return {k: hidden(v) for k, v in value.items() if k.lower() not in HIDDEN_KEYS}
    if isinstance(value, list):
        return [hidden(v) for v in value]
    return value


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


async def overview(host: Host) -> dict[str, Any]:
    """Storage, each source (token state, counts, activity), each sink, the dispatcher."""
    storage: dict[str, Any] = {"description": host.storage.describe(), "reachable": True, "error": None}
    try:
        await host.storage.ping()
    except StorageError as exc:
        storage.update(reachable=False, error=str(exc))
        return {"storage": storage, "sources": [], "sinks": [], "dispatcher": None}
    now = datetime.now(UTC)
    accounts = {a.source: a for a in await host.storage.service_accounts()}
    sources = []
    for source in host.sources.values():
        account = accounts.get(source.slug)
        activity = await host.storage.source_activity(source.slug, since=now - timedelta(hours=1))
        newest = await host.storage.list_events(source.slug, newest_first=True, limit=1)
        if source.token_from_env:
            token = {"state": "env", "issued": None, "env": source.settings.token_env}
        elif account is not None and account.has_token:
            token = {"state": "issued", "issued": _time(account.token_created)}
        else:
            token = {"state": "none", "issued": None}
        token["command"] = host.settings.command(f"sources token {source.slug}")
        expires = (
            account.previous_expires
            if account and account.previous_expires and account.previous_expires > now
            else None
        )
        token["previous_expires"] = _time(expires)
        sources.append(
            {
                "slug": source.slug,
                "name": source.name,
                "base_url": source.base_url,
                "token": token if "bearer" in source.settings.auth else None,
                "auth": [
                    {
                        "scheme": name,
                        "details": [dataclasses.asdict(d) for d in await host.auth_schemes[name].details(source)],
                    }
                    for name in source.settings.auth
                    if name in host.auth_schemes
                ],
                "counts": {name: await _count(host, source, name) for name in source.catalog.resource_types},
                "last_write": _time(newest[0].created) if newest else None,
                "last_request": _time(activity.last_request),
                "requests_last_hour": activity.requests,
                "errors_last_hour": activity.errors,
                "last_error": activity.last_error,
                "last_error_at": _time(activity.last_error_at),
            }
        )
    return {
        "storage": storage,
        "sources": sources,
        "sinks": await sinks(host, now),
        "dispatcher": {"lease_holder": await host.storage.lease_holder(LEASE, now=now)},
    }


async def sinks(host: Host, now: datetime) -> list[dict[str, Any]]:
    result = []
    for settings in host.settings.events.sinks:
        stats = await host.storage.sink_stats(settings.name)
        result.append(sink_status(settings.name, settings.type, stats, now))
    return result


async def _count(host: Host, source: Source, resource_type: str) -> int:
    page = await host.storage.list_resources(
        source.slug, resource_type, ResourceQuery(count=0), members=False, groups=False
    )
    return page.total


# The failed requests page looks back this far, as the overview's error count does.
FAILURES_SINCE = timedelta(hours=1)
FAILURES_SHOWN = 100


async def failures(host: Host, slug: str) -> dict[str, Any]:
    """A source's failed requests of the last hour, newest first, as the clients were told."""
    source = source_of(host, slug)
    since = datetime.now(UTC) - FAILURES_SINCE
    found = await host.storage.failed_requests(slug, since=since, limit=FAILURES_SHOWN + 1)
    return {
        "source": {"slug": source.slug, "name": source.name, "base_url": source.base_url},
        "since": _time(since),
        "failures": [{**dataclasses.asdict(f), "at": _time(f.at)} for f in found[:FAILURES_SHOWN]],
        "more": len(found) > FAILURES_SHOWN,
    }


def source_of(host: Host, slug: str) -> Source:
    source = host.sources.get(slug)
    if source is None:
        raise NotFound(f"no source {slug!r} is configured")
    return source


def _service(host: Host, slug: str, type_name: str) -> ResourceService:
    source = source_of(host, slug)
    resource_type = source.catalog.resource_types.get(type_name)
    if resource_type is None:
        raise NotFound(f"no resource type {type_name!r}")
    return ResourceService(host, source, resource_type)


async def resources(host: Host, slug: str, type_name: str, filter_text: str, cursor: str) -> dict[str, Any]:
    """One page of a source's resources of a type, filtered through the SCIM query engine.

    A bad filter or cursor is reported in `error` (as the SCIM endpoint would answer it)."""
    service = _service(host, slug, type_name)
    source = service.source
    result: dict[str, Any] = {
        "source": {"slug": source.slug, "name": source.name, "base_url": source.base_url},
        "types": list(source.catalog.resource_types),
        "type": type_name,
        "filter": filter_text,
        "resources": [],
        "total": 0,
        "next_cursor": None,
        "previous_cursor": None,
        "error": None,
        "deleted": await _deleted(host, source, type_name),
    }
    params = ListParams(filter=filter_text or None, count=PAGE_SIZE, cursor=cursor, excluded_attributes=["members"])
    try:
        listing = await service.list(params)
    except ScimError as exc:
        result["error"] = f"{exc.scim_type + ': ' if exc.scim_type else ''}{exc.detail}"
        return result
    has_active = service.type.schema.attribute("active") is not None
    result["total"] = listing["totalResults"]
    result["next_cursor"] = listing.get("nextCursor")
    result["previous_cursor"] = listing.get("previousCursor")
    for doc in listing["Resources"]:
        result["resources"].append(
            {
                "id": doc["id"],
                "name": display_name(doc) or doc["id"],
                "external_id": doc.get("externalId"),
                # Not sent: what the record holds (active unless the client says otherwise).
                "active": doc.get("active", True) if has_active else None,
                "active_sent": "active" in doc,
                "last_modified": doc.get("meta", {}).get("lastModified"),
            }
        )
    return result


async def _deleted(host: Host, source: Source, type_name: str) -> list[dict[str, Any]]:
    """The newest soft-deleted resources of the type (kept until restored or purged)."""
    if "soft_delete" not in host.storage.features:
        return []
    kept = await host.storage.deleted_resources(source.slug, type_name, limit=PAGE_SIZE)
    return [
        {
            "id": k.id,
            "name": display_name(k.document) or k.id,
            "external_id": k.external_id,
            "deleted": _time(k.deleted),
            "purged": _time(k.deleted + timedelta(days=source.settings.soft_delete_days)),
        }
        for k in kept
    ]


async def resource(host: Host, slug: str, type_name: str, resource_id: str, members_page: int = 1) -> dict[str, Any]:
    """A resource: the stored document, the directory record, memberships (a page of a group's
    members, with their count) and change history."""
    service = _service(host, slug, type_name)
    has_members = service.membership_attribute is not None
    projection = Projection(service.type, None, ["members"] if has_members else None)
    try:
        stored = await service.get(resource_id, projection)
    except ScimError:
        return await _kept_resource(host, service, resource_id)
    document = service.render(stored, projection)
    members: list[dict[str, Any]] = []
    members_total = members_pages = 0
    if has_members:
        members_total = await host.storage.count_members(slug, resource_id)
        members_pages = max(1, -(-members_total // MEMBERS_SHOWN))
        members_page = min(max(1, members_page), members_pages)
        page = 0
        async for batch in host.storage.iter_members(slug, resource_id, batch=MEMBERS_SHOWN):
            page += 1
            if page == members_page:
                members = batch
                break
    events = await host.storage.list_events(
        slug, resource_type=type_name, resource_id=resource_id, newest_first=True, limit=HISTORY_SHOWN
    )
    names = Names(host)
    return {
        "source": {"slug": service.source.slug, "name": service.source.name},
        "type": type_name,
        "id": resource_id,
        "name": display_name(document) or resource_id,
        "document": hidden(document),
        "record": hidden(await host.storage.get_record(slug, type_name, resource_id)),
        "groups": document.get("groups", []),
        "members": members,
        "members_total": members_total,
        "members_page": members_page,
        "members_pages": members_pages,
        "history": [await event_summary(e, names) for e in events],
        "deleted": None,
    }


async def _kept_resource(host: Host, service: ResourceService, resource_id: str) -> dict[str, Any]:
    """A soft-deleted resource's page: what it was when deleted, its history, how to restore it."""
    slug, type_name = service.source.slug, service.type.name
    kept = None
    if "soft_delete" in host.storage.features:
        kept = await host.storage.find_deleted(slug, type_name, resource_id=resource_id)
    if kept is None:
        raise NotFound(f"no {type_name} {resource_id!r} in source {slug!r}")
    events = await host.storage.list_events(
        slug, resource_type=type_name, resource_id=resource_id, newest_first=True, limit=HISTORY_SHOWN
    )
    names = Names(host)
    return {
        "source": {"slug": slug, "name": service.source.name},
        "type": type_name,
        "id": resource_id,
        "name": display_name(kept.document) or resource_id,
        "document": hidden(kept.document),
        "record": hidden(kept.record),
        "groups": [],
        "members": [],
        "members_total": 0,
        "members_page": 1,
        "members_pages": 1,
        "history": [await event_summary(e, names) for e in events],
        "deleted": {
            "at": _time(kept.deleted),
            "purged": _time(kept.deleted + timedelta(days=service.source.settings.soft_delete_days)),
            "restore": host.settings.command(f"sources restore {slug} {type_name} {resource_id}"),
        },
    }


# What a list of events shows of each (the shape of event_json; the document and record only on
# an event's own page, hidden values masked).
SUMMARY_KEYS = (
    "seq",
    "id",
    "created",
    "source",
    "resourceType",
    "resourceId",
    "action",
    "lifecycle",
    "version",
    "actor",
)


async def event_summary(event: StoredEvent, names: Names) -> dict[str, Any]:
    """An event as a list shows it: what (the resource named), who, when, and the diff with
    the members added and removed named."""
    shown = event_json(event)
    return {
        **{key: shown[key] for key in SUMMARY_KEYS},
        "resourceName": await names.of_event(event),
        "diff": diff(event),
        "members": await names.member_changes(event),
    }


def diff(event: StoredEvent) -> list[dict[str, Any]]:
    """Attribute, value before and value after, for each attribute the event changed."""
    changed = hidden(event.changed)
    return [
        {"attribute": name, "old": change.get("old"), "new": change.get("new")}
        if isinstance(change, dict)
        else {"attribute": name, "old": None, "new": change}
        for name, change in changed.items()
    ]


async def changes(host: Host, before: int | None) -> dict[str, Any]:
    """The newest events across sources (each source read through its own scope)."""
    events: list[StoredEvent] = []
    for slug in host.sources:
        # One more than a page from each: the page's events are among them, and whether any
        # older one exists is known (with PAGE_SIZE from one source, it never was).
        events += await host.storage.list_events(slug, newest_first=True, before_seq=before, limit=PAGE_SIZE + 1)
    events.sort(key=lambda e: e.seq, reverse=True)
    shown = events[:PAGE_SIZE]
    names = Names(host)
    return {
        "events": [await event_summary(e, names) for e in shown],
        "next_before": shown[-1].seq if len(events) > PAGE_SIZE else None,
    }


async def event(host: Host, slug: str, seq: int) -> dict[str, Any]:
    """One event: the diff, who made it, the resource and record after it, its deliveries."""
    source_of(host, slug)
    found = await host.storage.get_event(slug, seq)
    if found is None:
        raise NotFound(f"no event {seq} in source {slug!r}")
    deliveries = await host.storage.deliveries_of(slug, seq)
    return {
        **(await event_summary(found, Names(host))),
        "externalId": found.external_id,
        "resource": hidden(found.resource),
        "record": hidden(found.record),
        "deliveries": [
            {key: _time(value) if isinstance(value, datetime) else value for key, value in d.items()}
            for d in deliveries
        ],
    }


def as_json(value: Any) -> Any:
    """Dataclasses and times in a view as JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return as_json(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value
