"""Handlers of the discovery endpoints (RFC 7644 §4), built from the source's catalog."""

from __future__ import annotations

from aiohttp import web

from scimhost.http.keys import HOST, SOURCE
from scimhost.http.responses import scim_json
from scimhost.scim.discovery import Capabilities, service_provider_config
from scimhost.scim.errors import ScimError
from scimhost.scim.render import LIST_RESPONSE_SCHEMA
from scimhost.sources import Source


def capabilities(request: web.Request, source: Source) -> Capabilities:
    """What this build implements, with the configured limits; a flag turns true in the change
    that implements the feature."""
    settings = request.app[HOST].settings
    limits = settings.limits
    features = request.app[HOST].storage.features
    return Capabilities(
        patch=True,
        bulk=True,
        bulk_max_operations=limits.max_bulk_operations,
        bulk_max_payload_size=settings.server.max_body_bytes,
        etag=True,
        change_password=source.settings.passwords == "hash",
        filter=True,
        filter_max_results=limits.max_results,
        sort="sort" in features,
        cursor="cursor_paging" in features,
        default_page_size=limits.default_page_size,
        max_page_size=limits.max_results,
    )


def _list(resources: list[dict]) -> dict:
    return {
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": len(resources),
        "startIndex": 1,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


def _no_filter(request: web.Request) -> None:
    # RFC 7644 §4: a filter on a discovery endpoint is refused rather than silently ignored.
    if "filter" in request.query:
        raise ScimError(403, "Discovery endpoints do not support filtering")


async def service_provider_config_handler(request: web.Request) -> web.Response:
    host = request.app[HOST]
    source = request[SOURCE]
    schemes = [host.auth_schemes[name].describe_for(source) for name in source.settings.auth]
    location = f"{source.base_url}/ServiceProviderConfig"
    document = service_provider_config(capabilities(request, source), schemes, location)
    for sink in host.settings.events.sinks:
        if sink.sources is None or source.slug in sink.sources:
            joined(document, host.registry.event_sinks[sink.type].provider_config(sink.options))
    return scim_json(document)


def joined(document: dict, extra: dict) -> None:
    """Add a sink's entries to a ServiceProviderConfig: tables merged, lists joined, a value
    already there kept."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(document.get(key), dict):
            joined(document[key], value)
        elif isinstance(value, list) and isinstance(document.get(key), list):
            document[key] += [item for item in value if item not in document[key]]
        else:
            document.setdefault(key, value)


def _schema_json(source, schema) -> dict:
    shown = schema.to_json()
    if source.settings.passwords != "hash":
        # Refused or dropped, the User's writeOnly `password` is not part of what this source
        # accepts.
        shown["attributes"] = [
            a
            for a in shown["attributes"]
            if not (a["name"].lower() == "password" and a.get("mutability") == "writeOnly")
        ]
    return {
        **shown,
        "meta": {"resourceType": "Schema", "location": f"{source.base_url}/Schemas/{schema.id}"},
    }


async def schemas(request: web.Request) -> web.Response:
    _no_filter(request)
    source = request[SOURCE]
    return scim_json(_list([_schema_json(source, s) for s in source.catalog.schemas.values()]))


async def schema(request: web.Request) -> web.Response:
    source = request[SOURCE]
    found = source.catalog.schema(request.match_info["id"])
    if found is None:
        raise ScimError(404, f"No schema {request.match_info['id']}")
    return scim_json(_schema_json(source, found))


async def resource_types(request: web.Request) -> web.Response:
    _no_filter(request)
    source = request[SOURCE]
    docs = [t.to_json(f"{source.base_url}/ResourceTypes/{t.name}") for t in source.catalog.resource_types.values()]
    return scim_json(_list(docs))


async def resource_type(request: web.Request) -> web.Response:
    source = request[SOURCE]
    found = source.catalog.resource_types.get(request.match_info["name"])
    if found is None:
        raise ScimError(404, f"No resource type {request.match_info['name']}")
    return scim_json(found.to_json(f"{source.base_url}/ResourceTypes/{found.name}"))
