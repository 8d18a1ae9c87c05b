"""Handlers of the resource endpoints (`/Users`, `/Groups`, ... of each source)."""

from __future__ import annotations

from dataclasses import replace

from aiohttp import web

from scimhost.http.actor import actor_of
from scimhost.http.bodies import if_match_version, none_match, read_json
from scimhost.http.keys import HOST, SOURCE
from scimhost.http.responses import scim_json
from scimhost.resource_service import ResourceService
from scimhost.scim.errors import ScimError
from scimhost.scim.listing import list_response, params_from_query, params_from_search
from scimhost.scim.render import Projection, etag, parse_attribute_list


def _service(request: web.Request, type_name: str) -> ResourceService:
    source = request[SOURCE]
    return ResourceService(request.app[HOST], source, source.catalog.resource_types[type_name], actor_of(request))


def _projection(request: web.Request, service: ResourceService) -> Projection:
    return Projection(
        service.type,
        parse_attribute_list(request.query.get("attributes")),
        parse_attribute_list(request.query.get("excludedAttributes")),
    )


async def _streamed(request: web.Request, service: ResourceService, projection: Projection) -> web.StreamResponse:
    """A group read whose members are written as they are read, in bounded memory."""
    stored, pieces = await service.stream(request.match_info["id"], projection)
    current = etag(stored.version)
    if none_match(request, current):
        return web.Response(status=304, headers={"ETag": current})
    response = web.StreamResponse(
        headers={"ETag": current, "Location": service.location(stored.id), "Content-Type": "application/scim+json; charset=utf-8"}
    )
    await response.prepare(request)
    async for piece in pieces:
        await response.write(piece)
    await response.write_eof()
    return response


def _page_limits(request: web.Request) -> dict[str, int]:
    limits = request.app[HOST].settings.limits
    return {"max_count": limits.max_results, "default_count": limits.default_page_size}


def _resource_response(service: ResourceService, stored, projection: Projection, status: int = 200) -> web.Response:
    location = service.location(stored.id)
    headers = {"ETag": etag(stored.version), "Location": location}
    return scim_json(service.render(stored, projection), status=status, headers=headers)


async def _complete(service: ResourceService, stored, projection: Projection):
    """A written resource with the row-derived attributes its response shows, read only when the
    write did not bring them back already."""
    relations = service.relations(projection)
    if (relations["members"] and stored.members is None) or (relations["groups"] and stored.groups is None):
        return await service.get(stored.id, projection)
    return stored


def resource_handlers(type_name: str) -> dict[str, object]:
    """The handlers of one resource type's collection and item endpoints."""

    async def create(request: web.Request) -> web.Response:
        service = _service(request, type_name)
        projection = _projection(request, service)
        stored = await service.create(await read_json(request))
        return _resource_response(service, await _complete(service, stored, projection), projection, status=201)

    async def list_(request: web.Request) -> web.Response:
        service = _service(request, type_name)
        return scim_json(await service.list(params_from_query(request.query, **_page_limits(request))))

    async def search(request: web.Request) -> web.Response:
        service = _service(request, type_name)
        return scim_json(await service.list(params_from_search(await read_json(request), **_page_limits(request))))

    async def get(request: web.Request) -> web.StreamResponse:
        service = _service(request, type_name)
        projection = _projection(request, service)
        if service.membership_attribute is not None and projection.wants_attribute(service.membership_attribute):
            return await _streamed(request, service, projection)
        stored = await service.get(request.match_info["id"], projection)
        current = etag(stored.version)
        if none_match(request, current):
            return web.Response(status=304, headers={"ETag": current})
        return _resource_response(service, stored, projection)

    async def replace(request: web.Request) -> web.Response:
        service = _service(request, type_name)
        projection = _projection(request, service)
        version = if_match_version(request)
        stored = await service.replace(request.match_info["id"], await read_json(request), version)
        return _resource_response(service, await _complete(service, stored, projection), projection)

    async def patch(request: web.Request) -> web.Response:
        service = _service(request, type_name)
        projection = _projection(request, service)
        version = if_match_version(request)
        stored = await service.patch(request.match_info["id"], await read_json(request), version)
        if service.membership_attribute is not None:
            # RFC 7644 §3.5.2 allows 204; a 200 would have to carry every member of the group.
            return web.Response(status=204, headers={"ETag": etag(stored.version)})
        return _resource_response(service, await _complete(service, stored, projection), projection)

    async def delete(request: web.Request) -> web.Response:
        service = _service(request, type_name)
        await service.delete(request.match_info["id"], if_match_version(request))
        return web.Response(status=204)

    return {
        "create": create, "list": list_, "search": search, "get": get, "replace": replace, "patch": patch,
        "delete": delete,
    }


async def search_all(request: web.Request) -> web.Response:
    """POST /.search at the source root: one ListResponse across every resource type.

    A resource type lacking an attribute the filter names contributes nothing (RFC 7644
    §3.4.2.1); a filter no resource type understands is an error. Results are grouped by
    resource type, in catalog order, and paged across them."""
    params = params_from_search(await read_json(request), **_page_limits(request))
    if params.cursor is not None:
        raise ScimError(400, "cursor paging is offered per resource type, not at the root", "invalidValue")
    source = request[SOURCE]
    services, first_error = [], None
    for name in source.catalog.resource_types:
        service = ResourceService(request.app[HOST], source, source.catalog.resource_types[name])
        try:
            service.query(params)
        except ScimError as exc:
            first_error = first_error or exc
            continue
        services.append(service)
    if not services and first_error is not None:
        raise first_error
    totals = [
        (await service.list(replace(params, count=0, attributes=["id"])))["totalResults"] for service in services
    ]
    resources: list = []
    skip, wanted = params.start_index - 1, params.count
    for service, total in zip(services, totals):
        if skip >= total:
            skip -= total
            continue
        if wanted <= 0:
            break
        page = await service.list(replace(params, start_index=skip + 1, count=wanted))
        resources += page["Resources"]
        wanted -= len(page["Resources"])
        skip = 0
    return scim_json(list_response(sum(totals), resources, start_index=params.start_index))
