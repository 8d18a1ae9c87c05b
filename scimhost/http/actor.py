"""Who a request writes as, for the event log: the authenticated scheme and account, the
request's id and the client's address."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from scimhost.http.keys import PRINCIPAL, REQUEST_ID

# A client's own request id (X-Request-Id) is used when it looks like one.
MAX_REQUEST_ID = 128


def request_id_of(request: web.BaseRequest) -> str:
    """The request's id, chosen once: the one the access log, the response's X-Request-Id and
    the events of its writes carry."""
    if REQUEST_ID not in request:
        given = request.headers.get("X-Request-Id", "")
        ok = 0 < len(given) <= MAX_REQUEST_ID and given.isprintable()
        request[REQUEST_ID] = given if ok else uuid.uuid4().hex
    return request[REQUEST_ID]


def actor_of(request: web.Request) -> dict[str, Any]:
    principal = request.get(PRINCIPAL)
    return {
        "scheme": principal.scheme if principal else None,
        "account": principal.account if principal else None,
        "request_id": request_id_of(request),
        "client": request.remote,
    }
