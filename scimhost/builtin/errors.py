"""Built-in plugin: renders every error under a SCIM path as a SCIM error body (RFC 7644 §3.12)."""

from __future__ import annotations

import logging

from aiohttp import web

from scimhost.hookspecs import hookimpl
from scimhost.http.keys import SOURCE
from scimhost.http.responses import scim_json
from scimhost.scim.errors import ScimError
from scimhost.storage.backend import StorageError, UnsupportedFilter

log = logging.getLogger("scimhost.errors")

# aiohttp's own HTTP errors, as SCIM errors; their reason phrases are the detail.
_HTTP_DETAILS = {
    404: "No such endpoint",
    405: "Method not allowed on this endpoint",
    413: "Request body too large",
}


def as_scim_error(request: web.Request, exc: BaseException) -> ScimError:
    """The SCIM error an exception is answered with."""
    if isinstance(exc, ScimError):
        return exc
    if isinstance(exc, web.HTTPException) and exc.status >= 400:
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "WWW-Authenticate", "Retry-After")}
        detail = _HTTP_DETAILS.get(exc.status, exc.reason)
        return ScimError(exc.status, detail, headers=headers)
    source = request.get(SOURCE)
    slug = source.slug if source else "-"
    if isinstance(exc, ConnectionError):
        # The client went away mid-request; nobody reads the answer.
        log.info("client disconnected during %s %s (source %s)", request.method, request.path, slug)
        return ScimError(400, "The connection was lost while reading the request")
    if isinstance(exc, UnsupportedFilter):
        return ScimError(400, str(exc) or "The store cannot answer this filter exactly", scim_type="invalidFilter")
    if isinstance(exc, StorageError):
        log.error("storage failed serving %s %s (source %s): %s", request.method, request.path, slug, exc)
        return ScimError(503, "Storage is unavailable", headers={"Retry-After": "5"})
    log.error("unexpected error serving %s %s (source %s)", request.method, request.path, slug, exc_info=exc)
    return ScimError(500, "Internal server error")


@hookimpl(trylast=True)
def handle_exception(request: web.Request, exc: BaseException) -> web.StreamResponse:
    error = as_scim_error(request, exc)
    response = scim_json(error.to_body(), status=error.status, headers=error.headers)
    if error.headers.get("Connection") == "close":
        response.force_close()  # the rest of the request will never be read
    return response
