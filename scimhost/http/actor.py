"""Who a request writes as, for the event log: the authenticated scheme and account, the
request's id and the client's address."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from scimhost.http.keys import PRINCIPAL

# A client's own request id (X-Request-Id) is recorded when it looks like one.
MAX_REQUEST_ID = 128


def actor_of(request: web.Request) -> dict[str, Any]:
    principal = request.get(PRINCIPAL)
    given = request.headers.get("X-Request-Id", "")
    request_id = given if 0 < len(given) <= MAX_REQUEST_ID and given.isprintable() else uuid.uuid4().hex
    return {
        "scheme": principal.scheme if principal else None,
        "account": principal.account if principal else None,
        "request_id": request_id,
        "client": request.remote,
    }
