"""Handlers of the resource endpoints (`/Users`, `/Groups`, ... of each source)."""

from __future__ import annotations

from aiohttp import web

from scimhost.http.bodies import if_match_version, none_match, read_json
from scimhost.http.keys import HOST, SOURCE
from scimhost.http.responses import scim_json
from scimhost.resources import ResourceService
from scimhost.scim.errors import ScimError
from scimhost.scim.render import LIST_RESPONSE_SCHEMA, Projection, etag, parse_attribute_list

DEFAULT_COUNT = 100
MAX_COUNT = 1000


def _service(request: web.Request, type_name: str) -> ResourceService:
    source = request[SOURCE]
    return ResourceService(request.app[HOST], source, source.catalog.resource_types[type_name])


def _projection(request: web.Request, service: ResourceService) -> Projection:
    return Projection(
        service.type,
        parse_attribute_list(request.query.get("attributes")),
        parse_attribute_list(request.query.get("excludedAttributes")),
    )


def _integer(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ScimError(400, f"{name} must be an integer", "invalidValue") from None


def _resource_response(service: ResourceService, stored, projection: Projection, status: int = 200) -> web.Response:
    location = service.location(stored.id)
    headers = {"ETag": etag(stored.version), "Location": location}
    return scim_json(service.render(stored, projection), status=status, headers=headers)


def resource_handlers(type_name: str) -> dict[str, object]:
    """The handlers of one resource type's collection and item endpoints."""

    async def create(request: web.Request) -> web.Response:
        service = _service(request, type_name)
        projection = _projection(request, service)
        stored = await service.create(await read_json(request))
        stored = await service.get(stored.id, projection)
        return _resource_response(service, stored, projection, status=201)

    async def list_(request: web.Request) -> web.Response:
        service = _service(request, type_name)
        projection = _projection(request, service)
        start_index = max(_integer(request, "startIndex", 1), 1)
        count = min(max(_integer(request, "count", DEFAULT_COUNT), 0), MAX_COUNT)
        total, items = await service.list(start_index, count, projection, request.query.get("filter"))
        return scim_json(
            {
                "schemas": [LIST_RESPONSE_SCHEMA],
                "totalResults": total,
                "startIndex": start_index,
                "itemsPerPage": len(items),
                "Resources": [service.render(item, projection) for item in items],
            }
        )

    async def get(request: web.Request) -> web.StreamResponse:
        service = _service(request, type_name)
        projection = _projection(request, service)
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
        stored = await service.get(stored.id, projection)
        return _resource_response(service, stored, projection)

    async def patch(request: web.Request) -> web.Response:
        service = _service(request, type_name)
        projection = _projection(request, service)
        version = if_match_version(request)
        stored = await service.patch(request.match_info["id"], await read_json(request), version)
        if service.row_attribute is not None:
            # RFC 7644 §3.5.2 allows 204; a 200 would have to carry every member of the group.
            return web.Response(status=204, headers={"ETag": etag(stored.version)})
        stored = await service.get(stored.id, projection)
        return _resource_response(service, stored, projection)

    async def delete(request: web.Request) -> web.Response:
        service = _service(request, type_name)
        await service.delete(request.match_info["id"], if_match_version(request))
        return web.Response(status=204)

    return {"create": create, "list": list_, "get": get, "replace": replace, "patch": patch, "delete": delete}
