"""URL routes of the host: health checks and each source's SCIM endpoints."""

from __future__ import annotations

from aiohttp import web

from scimhost.http.keys import HOST, SOURCE
from scimhost.http.responses import scim_json
from scimhost.scim.discovery import Capabilities, service_provider_config
from scimhost.sources import SCIM_PREFIX
from scimhost.storage.backend import StorageError

SOURCE_ROOT = SCIM_PREFIX + "/{slug}/v2"

# What this build implements; a flag turns true in the change that implements the feature.
CAPABILITIES = Capabilities()


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


async def get_service_provider_config(request: web.Request) -> web.Response:
    host = request.app[HOST]
    source = request[SOURCE]
    schemes = [host.auth_schemes[name].describe() for name in source.settings.auth]
    body = service_provider_config(CAPABILITIES, schemes, f"{source.base_url}/ServiceProviderConfig")
    return scim_json(body)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz, allow_head=True)
    app.router.add_get("/readyz", readyz, allow_head=True)
    app.router.add_get(SOURCE_ROOT + "/ServiceProviderConfig", get_service_provider_config)
