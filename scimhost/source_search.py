"""A search across every resource type of one source (POST /.search at the source root)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from scimhost.host import Host
from scimhost.resource_service import ResourceService
from scimhost.scim.errors import ScimError
from scimhost.scim.filter import invalid_filter
from scimhost.scim.index import index_entries
from scimhost.scim.listing import ListParams, list_response
from scimhost.scim.query import ResourceQuery, Undefined
from scimhost.scim.query_eval import Candidate, sort_value, sorted_by_value
from scimhost.sources import Source
from scimhost.storage.backend import ResourcePage, StoredResource

# A sorted search across types merges each type's first startIndex + count - 1 resources; a
# page deeper than this is refused (one resource type's own endpoint pages as deep as it likes).
MAX_SORTED_DEPTH = 10_000


@dataclass(frozen=True)
class _Part:
    """One resource type's share of the search: its service and its store query (without a
    sort when the type lacks the attribute sortBy names: its resources then have no value)."""

    service: ResourceService
    query: ResourceQuery


async def search_source(host: Host, source: Source, params: ListParams) -> dict[str, Any]:
    """One ListResponse across the source's resource types.

    In each type an attribute the filter or sortBy names that the type does not define has no
    value (RFC 7644 §3.4.2.2): `pr` and `eq` on it are false, `ne` true, and the rest of the
    filter decides. A path no type defines is 400 (invalidFilter; invalidValue in sortBy).
    Without sortBy, results are grouped by resource type in catalog order; with it, merged across
    types in the sort's order (a type lacking the attribute has no values: last when ascending,
    first when descending). Paged by index (cursors are per type)."""
    if params.cursor is not None:
        raise ScimError(400, "cursor paging is offered per resource type, not at the root", "invalidValue")
    parts: list[_Part] = []
    undefined_everywhere: set[str] | None = None
    sort_undefined_everywhere = True
    for resource_type in source.catalog.resource_types.values():
        service = ResourceService(host, source, resource_type)
        undefined = Undefined()
        query = service.query_across_types(params, undefined)
        paths = undefined.filter_paths
        undefined_everywhere = paths if undefined_everywhere is None else undefined_everywhere & paths
        sort_undefined_everywhere = sort_undefined_everywhere and undefined.sort_path is not None
        if query is not None:
            parts.append(_Part(service, query))
    if undefined_everywhere:
        raise invalid_filter(f"unknown attribute '{min(undefined_everywhere)}' in every resource type")
    if params.sort_by and sort_undefined_everywhere:
        raise ScimError(400, f"sortBy: unknown attribute '{params.sort_by}' in every resource type", "invalidValue")
    if len(parts) == 1:
        return await parts[0].service.list(params, parts[0].query)
    totals = [(await _page(part, start_index=1, count=0)).total for part in parts]
    total = sum(totals)
    if params.sort_by and len(parts) > 1 and params.count > 0 and params.start_index <= total:
        resources = await _sorted_page(parts, params)
    else:
        resources = await _grouped_page(parts, totals, params)
    return list_response(total, resources, start_index=params.start_index)


async def _grouped_page(parts: list[_Part], totals: list[int], params: ListParams) -> list[dict[str, Any]]:
    """A page of the types' results one type after another."""
    resources: list[dict[str, Any]] = []
    skip, wanted = params.start_index - 1, params.count
    for part, total in zip(parts, totals, strict=True):
        if skip >= total:
            skip -= total
            continue
        if wanted <= 0:
            break
        page = await part.service.list(params, replace(part.query, start_index=skip + 1, count=wanted))
        resources += page["Resources"]
        wanted -= len(page["Resources"])
        skip = 0
    return resources


async def _sorted_page(parts: list[_Part], params: ListParams) -> list[dict[str, Any]]:
    """A page of the types' results merged in sortBy's order: each type's first
    startIndex + count - 1 (the most a page could need of it), sorted together the way one
    type's are (`query_eval.sorted_by_value`), then cut."""
    depth = params.start_index - 1 + params.count
    if depth > MAX_SORTED_DEPTH:
        raise ScimError(
            400,
            f"a sorted search across resource types pages at most {MAX_SORTED_DEPTH} results deep; "
            "search one resource type's endpoint to go further",
            "invalidValue",
        )
    fetched: list[tuple[Any, _Part, StoredResource]] = []
    for part in parts:
        resource_type, sort = part.service.type, part.query.sort
        for stored in (await _page(part, start_index=1, count=depth)).resources:
            value = None
            if sort is not None:
                candidate = Candidate(
                    stored.id, stored.created, stored.last_modified, index_entries(stored.document, resource_type)
                )
                value = sort_value(candidate, sort)
            # Numbers before texts should two types give one name different types.
            fetched.append((None if value is None else (isinstance(value, str), value), part, stored))
    fetched.sort(key=lambda row: (row[2].created, row[2].id))
    ordered = sorted_by_value(fetched, lambda row: row[0], descending=(params.sort_order or "").lower() == "descending")
    resources = []
    for _, part, stored in ordered[params.start_index - 1 : depth]:
        service = part.service
        projection = service.projection(params)
        relations = service.relations(projection)
        if any(relations.values()):  # the window was read without members and groups
            again = await service.storage.get_resource(service.source.slug, service.type.name, stored.id, **relations)
            if again is None:
                continue  # deleted meanwhile
            stored = again
        resources.append(service.render(stored, projection))
    return resources


async def _page(part: _Part, *, start_index: int, count: int) -> ResourcePage:
    """A page of the part's stored resources, without members and groups."""
    service = part.service
    query = replace(part.query, start_index=start_index, count=count)
    return await service.storage.list_resources(
        service.source.slug, service.type.name, query, members=False, groups=False
    )
