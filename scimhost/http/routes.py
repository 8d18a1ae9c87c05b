"""URL routes of the host: health checks and each source's SCIM endpoints."""

from __future__ import annotations

from aiohttp import web

from scimhost.http import discovery
from scimhost.http.bulk import bulk
from scimhost.http.keys import HOST, OPEN_ROUTES
from scimhost.http.resources import resource_handlers, search_all
from scimhost.registry import RegistryError
from scimhost.source_paths import ROUTE_ROOT
from scimhost.storage.backend import StorageError


async def healthz(request: web.Request) -> web.Response:
    """Alive: the process answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready: the store answers."""
    try:
        await request.app[HOST].storage.ping()
    except StorageError as exc:
        return web.json_response({"status": "unavailable", "detail": str(exc)}, status=503)
    return web.json_response({"status": "ok"})


def setup_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/healthz", healthz, allow_head=True)
    router.add_get("/readyz", readyz, allow_head=True)
    router.add_get(ROUTE_ROOT + "/ServiceProviderConfig", discovery.service_provider_config_handler)
    router.add_get(ROUTE_ROOT + "/Schemas", discovery.schemas)
    router.add_get(ROUTE_ROOT + "/Schemas/{id}", discovery.schema)
    router.add_get(ROUTE_ROOT + "/ResourceTypes", discovery.resource_types)
    router.add_get(ROUTE_ROOT + "/ResourceTypes/{name}", discovery.resource_type)
    router.add_post(ROUTE_ROOT + "/.search", search_all)
    router.add_post(ROUTE_ROOT + "/Bulk", bulk)
    # Resource types come from `register_resource_types`; each gets its collection and items.
    for doc in app[HOST].registry.resource_types.values():
        handlers = resource_handlers(doc["name"])
        collection = ROUTE_ROOT + doc["endpoint"]
        router.add_get(collection, handlers["list"])
        router.add_post(collection, handlers["create"])
        router.add_post(collection + "/.search", handlers["search"])
        item = collection + "/{id}"
        router.add_get(item, handlers["get"])
        router.add_put(item, handlers["replace"])
        router.add_patch(item, handlers["patch"])
        router.add_delete(item, handlers["delete"])
    _plugin_routes(app)


def _plugin_routes(app: web.Application) -> None:
    """Mount the routes plugins registered, after the built-in ones (which they cannot shadow)."""
    taken = {(route.method, route.resource.canonical) for route in app.router.routes() if route.resource}
    open_routes = set()
    for plugin, route in app[HOST].registry.routes:
        path = ROUTE_ROOT + route.path if route.scope == "source" else route.path
        if (route.method, path) in taken:
            raise RegistryError([f"plugin {plugin!r}: the route {route.method} {path} is already served"])
        taken.add((route.method, path))
        added = app.router.add_route(route.method, path, route.handler)
        if route.scope == "source" and not route.authenticated:
            open_routes.add(added)
    app[OPEN_ROUTES] = frozenset(open_routes)
