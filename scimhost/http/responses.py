"""SCIM JSON responses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

MEDIA_TYPE = "application/scim+json"


def scim_json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A response carrying `body` as `application/scim+json`."""
    response = web.Response(
        body=orjson.dumps(body), status=status, content_type=MEDIA_TYPE, charset="utf-8", headers=headers
    )
    return response
