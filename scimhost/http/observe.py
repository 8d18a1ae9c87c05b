"""Every SCIM request counted: Prometheus metrics, and the source's activity for the admin page."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import orjson
from aiohttp import web

from scimhost.http.keys import HOST, REQUEST_ID, ROUTE_LABELS, SOURCE
from scimhost.metrics import method_label
from scimhost.source_paths import ROUTE_ROOT, SOURCE_PATH, is_scim_path, path_within
from scimhost.storage.backend import FailedRequest


@web.middleware
async def observed(request: web.Request, handler) -> web.StreamResponse:
    """Count and time each SCIM request by source, route, method and status (outermost, so the
    status is the one the client got)."""
    if not is_scim_path(request.path):
        return await handler(request)
    started = time.perf_counter()
    status, response = 500, None
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        _record(request, status, response, time.perf_counter() - started)


def _record(request: web.Request, status: int, response: web.StreamResponse | None, seconds: float) -> None:
    host = request.app[HOST]
    source = request.get(SOURCE)  # set once the request authenticated
    if source is not None:
        slug = source.slug
    else:
        match = SOURCE_PATH.match(request.path)
        # Only configured slugs become label values; anything else a client typed is "unknown".
        slug = match["slug"] if match and match["slug"] in host.sources else "unknown"
    host.metrics.request(slug, route_label(request), method_label(request.method), str(status), seconds)
    if slug != "unknown":
        failed = _failed_request(request, slug, status, response) if status >= 400 else None
        host.activity.request(slug, failed=failed)


def route_label(request: web.Request) -> str:
    """The endpoint the request matched (`Users`, `Groups/.search`, `Bulk`...), from the route
    table, never from the path the client sent; `unmatched` when no route matched."""
    return request.app[ROUTE_LABELS].get(request.match_info.route.resource, "unmatched")


def label_routes(app: web.Application) -> None:
    """Name each SCIM route's endpoint once, when the routes are set up."""
    labels = {}
    for resource in app.router.resources():
        canonical = resource.canonical
        if canonical.startswith(ROUTE_ROOT + "/"):
            endpoint = canonical[len(ROUTE_ROOT) + 1 :]
            labels[resource] = endpoint.removesuffix("/{id}").removesuffix("/{name}")
    app[ROUTE_LABELS] = labels


def _failed_request(request: web.Request, slug: str, status: int, response: web.StreamResponse | None) -> FailedRequest:
    """The request as the failed requests list shows it: its path below the source's base URL
    (no query string: filters hold people's names), and the scimType and detail the client was
    told."""
    scim_type, detail = None, ""
    body = getattr(response, "body", None)
    if isinstance(body, (bytes, bytearray)) and body[:1] == b"{":
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            doc = {}
        if isinstance(doc, dict):
            scim_type = doc.get("scimType") if isinstance(doc.get("scimType"), str) else None
            detail = str(doc.get("detail") or "")[:500]
    return FailedRequest(
        at=datetime.now(UTC),
        method=method_label(request.method),
        path=path_within(request.path, slug)[:500],
        status=status,
        scim_type=scim_type,
        detail=detail,
        request_id=request.get(REQUEST_ID),
    )
