"""Middlewares: request ids, SCIM and plain error bodies, the body size limit, and source
lookup with authentication."""

from __future__ import annotations

from aiohttp import web

from scimhost.http.actor import request_id_of
from scimhost.http.keys import HOST, OPEN_ROUTES, PRINCIPAL, SOURCE, SOURCE_SLUG
from scimhost.scim.errors import ScimError
from scimhost.source_paths import SOURCE_PATH, SOURCE_WITHOUT_VERSION, base_path, is_scim_path


@web.middleware
async def request_ids(request: web.Request, handler) -> web.StreamResponse:
    """Give every response the request's id (X-Request-Id), errors included, so that a client's
    report can be matched with the access log and the events of its writes."""
    request_id = request_id_of(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers["X-Request-Id"] = request_id
        raise
    if not response.prepared:
        response.headers["X-Request-Id"] = request_id
    return response


@web.middleware
async def plain_errors(request: web.Request, handler) -> web.StreamResponse:
    """Answer an error outside the SCIM base (an unknown path, a wrong method) with a JSON body
    that says where the SCIM endpoints are, not aiohttp's plain text."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if is_scim_path(request.path) or exc.status < 400:
            raise
        body = {"status": exc.status, "detail": exc.reason}
        if exc.status == 404:
            body["hint"] = f"SCIM endpoints are at {base_path('<source slug>')}/ (ServiceProviderConfig, Users, ...)"
        return web.json_response(body, status=exc.status, headers=_kept_headers(exc))


def _kept_headers(exc: web.HTTPException) -> dict[str, str]:
    """The headers of an error worth keeping on its JSON form (Allow of a 405, the request id)."""
    return {name: exc.headers[name] for name in ("Allow", "X-Request-Id") if name in exc.headers}


@web.middleware
async def scim_errors(request: web.Request, handler) -> web.StreamResponse:
    """Hand exceptions under SCIM paths to the `handle_exception` hook."""
    try:
        return await handler(request)
    except Exception as exc:
        if not is_scim_path(request.path):
            raise
        if isinstance(exc, web.HTTPException) and exc.status < 400:
            raise
        response = request.app[HOST].plugins.hook.handle_exception(request=request, exc=exc)
        if response is None:
            raise
        return response


@web.middleware
async def body_limit(request: web.Request, handler) -> web.StreamResponse:
    """Refuse a declared body over the limit before reading it.

    A chunked body has no length up front; aiohttp's `client_max_size` stops it while reading.
    """
    limit = request.app[HOST].settings.server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ScimError(413, f"Request body is larger than the limit of {limit} bytes")
    return await handler(request)


@web.middleware
async def source_auth(request: web.Request, handler) -> web.StreamResponse:
    """Find the source the path names and authenticate the request for that source only."""
    if not is_scim_path(request.path):
        return await handler(request)
    match = SOURCE_PATH.match(request.path)
    host = request.app[HOST]
    source = host.sources.get(match["slug"]) if match else None
    if source is not None:
        request[SOURCE_SLUG] = source.slug
    if source is None:
        near = SOURCE_WITHOUT_VERSION.match(request.path)
        if match is None and near and near["slug"] in host.sources:
            base = base_path(near["slug"])  # the configured slug, not the client's text
            raise ScimError(404, f"Not a SCIM path: the base URL of source '{near['slug']}' is {base}")
        raise ScimError(404, "No such source")
    # The source's limits come first: a refused request costs no credential check, no body read
    # and no storage work. Unauthenticated requests count against the source they name too.
    refusal = host.limiter.admit(source.slug)
    if refusal is not None:
        host.metrics.rate_limited.labels(source.slug, refusal.reason).inc()
        what = "requests per second" if refusal.reason == "rate" else "requests in progress at once"
        raise ScimError(
            429,
            f"Too many {what} for source '{source.slug}': retry after {refusal.retry_after} s",
            headers={"Retry-After": str(refusal.retry_after)},
        )
    try:
        return await _authenticated(request, handler, host, source)
    finally:
        host.limiter.release(source.slug)


async def _authenticated(request: web.Request, handler, host, source) -> web.StreamResponse:
    if request.match_info.route in request.app[OPEN_ROUTES]:
        request[SOURCE] = source  # a plugin route that authenticates its clients itself
        return await handler(request)
    for name in source.settings.auth:
        principal = await host.auth_schemes[name].authenticate(source, request.headers)
        if principal is not None:
            request[SOURCE] = source
            request[PRINCIPAL] = principal
            return await handler(request)
    reason = "invalid_credentials" if "Authorization" in request.headers else "missing_credentials"
    host.metrics.auth_failures.labels(source.slug, reason).inc()
    # Schemes may share a challenge (two kinds of Bearer token): each is said once.
    challenges = ", ".join(dict.fromkeys(host.auth_schemes[name].challenge for name in source.settings.auth))
    raise ScimError(401, "Authentication required", headers={"WWW-Authenticate": challenges})
