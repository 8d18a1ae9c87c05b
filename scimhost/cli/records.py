"""`scimhost records show|list|remap`: the directory records stored with resources."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator

from scimhost.cli.common import EXIT_FAILED, EXIT_OK, config_of, configured_source, open_existing, source_and_type
from scimhost.host import Host, load_host
from scimhost.resource_service import ResourceService
from scimhost.scim.errors import ScimError
from scimhost.scim.listing import ListParams, encode_cursor
from scimhost.storage.backend import StoredResource
from scimhost.timestamps import shown

RECORD_PAGE = 200


def cmd_records_show(args: argparse.Namespace) -> int:
    host = load_host(config_of(args), strict=False)
    source, resource_type = source_and_type(host, args.slug, args.resource_type)
    record = asyncio.run(_read_record(host, source.slug, resource_type.name, args.id))
    if record is None:
        print(
            f"error: {resource_type.name} {args.id} of source {source.slug!r} has no record "
            "(no such resource, or it was stored before records existed)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(json.dumps(record) if args.json else json.dumps(record, indent=2))
    return EXIT_OK


async def _read_record(host: Host, slug: str, resource_type: str, resource_id: str):
    await open_existing(host)
    try:
        return await host.storage.get_record(slug, resource_type, resource_id)
    finally:
        await host.storage.close()


async def matching(host: Host, service: ResourceService, filter_text: str | None) -> AsyncIterator[StoredResource]:
    """Every resource of the service's source and type that the filter matches, walked by cursor
    a page at a time (bounded memory)."""
    cursor: str | None = ""
    while cursor is not None:
        query = service.query(ListParams(filter=filter_text, count=RECORD_PAGE, cursor=cursor))
        page = await host.storage.list_resources(
            service.source.slug, service.type.name, query, members=False, groups=False
        )
        for resource in page.resources:
            yield resource
        last = page.resources[-1] if page.resources else None
        cursor = encode_cursor("after", last.created, last.id) if page.more_after and last else None


def cmd_records_list(args: argparse.Namespace) -> int:
    host = load_host(config_of(args), strict=False)
    source, resource_type = source_and_type(host, args.slug, args.resource_type)
    service = ResourceService(host, source, resource_type)
    if args.deleted:
        return asyncio.run(_list_deleted(host, service, args.json))
    try:
        return asyncio.run(_list_records(host, service, args.filter, args.json))
    except ScimError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return EXIT_FAILED


async def _list_records(host: Host, service: ResourceService, filter_text: str | None, as_json: bool) -> int:
    """Every matching resource's record, walked by cursor a page at a time (bounded memory)."""
    await open_existing(host)
    try:
        async for resource in matching(host, service, filter_text):
            record = await host.storage.get_record(service.source.slug, service.type.name, resource.id)
            if as_json:
                print(json.dumps({"id": resource.id, "record": record}))
            else:
                print(f"{resource.id}  {json.dumps(record)}")
    finally:
        await host.storage.close()
    return EXIT_OK


async def _list_deleted(host: Host, service: ResourceService, as_json: bool) -> int:
    """The soft-deleted resources of the source and type, newest first, with their records."""
    await open_existing(host)
    try:
        before = None
        while True:
            batch = await host.storage.deleted_resources(
                service.source.slug, service.type.name, limit=RECORD_PAGE, before=before
            )
            for kept in batch:
                deleted = kept.deleted.isoformat(timespec="seconds")
                if as_json:
                    print(json.dumps({"id": kept.id, "deleted": deleted, "record": kept.record}))
                else:
                    print(f"{kept.id}  soft-deleted {shown(deleted)}  {json.dumps(kept.record)}")
            if len(batch) < RECORD_PAGE:
                return EXIT_OK
            before = batch[-1].deleted
    finally:
        await host.storage.close()


def cmd_records_remap(args: argparse.Namespace) -> int:
    """Re-apply a source's current mappings to its stored resources (of one type, or every
    type), a page at a time; each record that changes is stored with a `remap` event."""
    host = load_host(config_of(args), strict=False)
    source = configured_source(host, args.slug)
    names = [args.resource_type] if args.resource_type else list(source.catalog.resource_types)
    services = []
    for name in names:
        _, resource_type = source_and_type(host, source.slug, name)
        services.append(ResourceService(host, source, resource_type, REMAP_ACTOR))
    try:
        failed = asyncio.run(_remap(host, services, args.filter))
    except ScimError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_FAILED if failed else EXIT_OK


# Who a remap writes as, in the event log.
REMAP_ACTOR = {"scheme": "cli", "account": "scimhost records remap", "request_id": None, "client": None}


async def _remap(host: Host, services: list[ResourceService], filter_text: str | None) -> int:
    """Remap every matching resource; how many could not be mapped (each named on stderr)."""
    await open_existing(host)
    failed = 0
    try:
        await host.mappings.start_for(services[0].source.slug)
        for service in services:
            seen = changed = errors = 0
            async for resource in matching(host, service, filter_text):
                seen += 1
                try:
                    changed += await service.remap(resource.id)
                except ScimError as exc:  # a mapping that fails on this resource
                    errors += 1
                    print(f"error: {service.type.name} {resource.id}: {exc.detail}", file=sys.stderr)
            plural = "" if seen == 1 else "s"
            print(
                f"{service.source.slug} {service.type.name}: {seen} resource{plural}, {changed} record"
                f"{'' if changed == 1 else 's'} changed, {seen - changed - errors} unchanged"
                + (f", {errors} could not be mapped" if errors else "")
            )
            failed += errors
    finally:
        await host.mappings.close()
        await host.storage.close()
    return failed
