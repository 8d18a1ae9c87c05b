"""Handlers of the resource endpoints (`/Users`, `/Groups`, ... of each source)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from scimhost.http.actor import actor_of
from scimhost.http.bodies import if_match_version, none_match, read_json
from scimhost.http.keys import HOST, SOURCE
from scimhost.http.responses import scim_json
from scimhost.resource_service import ResourceService
from scimhost.scim.listing import params_from_query, params_from_search
from scimhost.scim.render import Projection, etag, parse_attribute_list
from scimhost.source_search import search_source


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
        headers={
            "ETag": current,
            "Location": service.location(stored.id),
            "Content-Type": "application/scim+json; charset=utf-8",
        }
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


def resource_handlers(type_name: str) -> dict[str, Handler]:
    """The handlers of one resource type's collection and item endpoints."""

    async def create(request: web.Request) -> web.Response:
        service = _service(request, type_name)
        projection = _projection(request, service)
        stored = await service.create(await read_json(request))
        return _resource_response(service, await service.complete(stored, projection), projection, status=201)

    async def list_(request: web.Request) -> web.Response:
        service = _service(request, type_name)
        return scim_json(await service.list(params_from_query(request.query, **_page_limits(request))))

    async def search(request: web.Request) -> web.Response:
        service = _service(request, type_name)
        return scim_json(await service.list(params_from_search(await read_json(request), **_page_limits(request))))

    async def get(request: web.Request) -> web.StreamResponse:
        service = _service(request, type_name)
        projection = _projection(request, service)
        if service.streams(projection):
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
        return _resource_response(service, await service.complete(stored, projection), projection)

    async def patch(request: web.Request) -> web.Response:
        service = _service(request, type_name)
        projection = _projection(request, service)
        version = if_match_version(request)
        stored = await service.patch(request.match_info["id"], await read_json(request), version)
        if service.answers_patch_without_body():
            return web.Response(status=204, headers={"ETag": etag(stored.version)})
        return _resource_response(service, await service.complete(stored, projection), projection)

    async def delete(request: web.Request) -> web.Response:
        service = _service(request, type_name)
        await service.delete(request.match_info["id"], if_match_version(request))
        return web.Response(status=204)

    return {
        "create": create,
        "list": list_,
        "search": search,
        "get": get,
        "replace": replace,
        "patch": patch,
        "delete": delete,
    }


async def search_all(request: web.Request) -> web.Response:
    """POST /.search at the source root: one ListResponse across every resource type."""
    params = params_from_search(await read_json(request), **_page_limits(request))
    return scim_json(await search_source(request.app[HOST], request[SOURCE], params))
