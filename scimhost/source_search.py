"""A search across every resource type of one source (POST /.search at the source root)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from scimhost.host import Host
from scimhost.resource_service import ResourceService
from scimhost.scim.errors import ScimError
from scimhost.scim.listing import ListParams, list_response
from scimhost.sources import Source


async def search_source(host: Host, source: Source, params: ListParams) -> dict[str, Any]:
    """One ListResponse across the source's resource types.

    A resource type lacking an attribute the filter names contributes nothing (RFC 7644
    §3.4.2.1); a filter no resource type understands is an error. Results are grouped by
    resource type, in catalog order, and paged across them by index (cursors are per type)."""
    if params.cursor is not None:
        raise ScimError(400, "cursor paging is offered per resource type, not at the root", "invalidValue")
    services, first_error = [], None
    for resource_type in source.catalog.resource_types.values():
        service = ResourceService(host, source, resource_type)
        try:
            service.query(params)
        except ScimError as exc:
            first_error = first_error or exc
            continue
        services.append(service)
    if not services and first_error is not None:
        raise first_error
    totals = [(await service.list(replace(params, count=0, attributes=["id"])))["totalResults"] for service in services]
    resources: list = []
    skip, wanted = params.start_index - 1, params.count
    for service, total in zip(services, totals, strict=False):
        if skip >= total:
            skip -= total
            continue
        if wanted <= 0:
            break
        page = await service.list(replace(params, start_index=skip + 1, count=wanted))
        resources += page["Resources"]
        wanted -= len(page["Resources"])
        skip = 0
    return list_response(sum(totals), resources, start_index=params.start_index)
