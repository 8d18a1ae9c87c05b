"""`scimhost records show|list`: the directory records stored with resources."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from scimhost.cli.common import EXIT_FAILED, EXIT_OK, config_of, open_existing, source_and_type
from scimhost.host import Host, load_host
from scimhost.resource_service import ResourceService
from scimhost.scim.errors import ScimError
from scimhost.scim.listing import ListParams, encode_cursor

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


def cmd_records_list(args: argparse.Namespace) -> int:
    host = load_host(config_of(args), strict=False)
    source, resource_type = source_and_type(host, args.slug, args.resource_type)
    service = ResourceService(host, source, resource_type)
    try:
        return asyncio.run(_list_records(host, service, args.filter, args.json))
    except ScimError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return EXIT_FAILED


async def _list_records(host: Host, service: ResourceService, filter_text: str | None, as_json: bool) -> int:
    """Every matching resource's record, walked by cursor a page at a time (bounded memory)."""
    await open_existing(host)
    try:
        cursor: str | None = ""
        while cursor is not None:
            query = service.query(ListParams(filter=filter_text, count=RECORD_PAGE, cursor=cursor))
            page = await host.storage.list_resources(
                service.source.slug, service.type.name, query, members=False, groups=False
            )
            for resource in page.resources:
                record = await host.storage.get_record(service.source.slug, service.type.name, resource.id)
                if as_json:
                    print(json.dumps({"id": resource.id, "record": record}))
                else:
                    print(f"{resource.id}  {json.dumps(record)}")
            last = page.resources[-1] if page.resources else None
            cursor = encode_cursor("after", last.created, last.id) if page.more_after and last else None
    finally:
        await host.storage.close()
    return EXIT_OK
