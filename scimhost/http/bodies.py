"""Reading request bodies and request headers the SCIM way."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from scimhost.http.keys import HOST
from scimhost.scim.errors import ScimError

JSON_TYPES = ("application/scim+json", "application/json")


async def read_json(request: web.Request) -> Any:
    """The JSON body; 400 invalidSyntax when it is not JSON, 413 when it is too large.

    Accepts application/scim+json, application/json (any charset) and a body without a
    Content-Type (RFC 7644 §3.1 and what real clients send).
    """
    content_type = request.headers.get("Content-Type")
    if content_type and request.content_type not in JSON_TYPES:
        raise ScimError(415, f"Content-Type must be application/scim+json, not {request.content_type}")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[HOST].settings.server.max_body_bytes
        raise ScimError(413, f"Request body is larger than the limit of {limit} bytes") from None
    if not raw.strip():
        raise ScimError(400, "The request body is empty", "invalidSyntax")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ScimError(400, f"The request body is not valid JSON: {exc}", "invalidSyntax") from None


def if_match_version(request: web.Request) -> int | None:
    """The version an If-Match header requires (None: no header or `*`); 412 if none can match."""
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    version = parse_etag(header)
    if version is None:
        raise ScimError(412, "If-Match does not name a version of this resource")
    return version


def parse_etag(value: str) -> int | None:
    """The version in `W/"3"` or `"3"` (the first of a list), or None."""
    tag = value.split(",")[0].strip()
    if tag.startswith("W/"):
        tag = tag[2:]
    tag = tag.strip('"')
    return int(tag) if tag.isdigit() and len(tag) < 18 else None


def none_match(request: web.Request, current: str) -> bool:
    """Whether If-None-Match names the current ETag (weak comparison), so 304 applies."""
    header = request.headers.get("If-None-Match")
    if header is None:
        return False
    if header.strip() == "*":
        return True
    wanted = parse_etag(current)
    return any(parse_etag(tag) == wanted for tag in header.split(","))
