"""Reading request bodies and request headers the SCIM way."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
from aiohttp import web

from scimhost.http.keys import HOST, STOPPING
from scimhost.scim.errors import ScimError
from scimhost.scim.limits import refuse_nul

JSON_TYPES = ("application/scim+json", "application/json")
_VERSION = re.compile(r"[0-9]{1,17}")


async def read_json(request: web.Request) -> Any:
    """The JSON body; 400 invalidSyntax when it is not JSON, 413 when it is too large.

    Accepts application/scim+json, application/json (any charset) and a body without a
    Content-Type (RFC 7644 §3.1 and what real clients send).
    """
    content_type = request.headers.get("Content-Type")
    if content_type and request.content_type not in JSON_TYPES:
        raise ScimError(415, f"Content-Type must be application/scim+json, not {request.content_type}")
    try:
        if request.content.is_eof():
            raw = await request.read()  # the whole body came with the head: nothing to wait for
        else:
            raw = await _read_arriving_body(request)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[HOST].settings.server.max_body_bytes
        raise ScimError(413, f"Request body is larger than the limit of {limit} bytes") from None
    if not raw.strip():
        raise ScimError(400, "The request body is empty", "invalidSyntax")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ScimError(400, f"The request body is not valid JSON: {exc}", "invalidSyntax") from None
    if b"\\u0000" in raw:  # JSON can only carry a NUL escaped; only then is the body walked
        refuse_nul(body, "The request body")
    return body


async def _read_arriving_body(request: web.Request) -> bytes:
    """A body still arriving, read within `[server] body_timeout`; given up when the server
    starts shutting down, so a half-sent body never holds the shutdown up."""
    stopping = request.app[STOPPING]
    if stopping.is_set():
        raise _shutting_down()
    timeout = request.app[HOST].settings.server.body_timeout
    reading = asyncio.ensure_future(request.read())
    stopped = asyncio.ensure_future(stopping.wait())
    try:
        done, _ = await asyncio.wait((reading, stopped), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not reading.done():
            reading.cancel()
    if reading in done:
        return reading.result()
    if stopped in done:
        raise _shutting_down()
    raise ScimError(408, f"The request body did not arrive within {timeout:g} seconds", headers={"Connection": "close"})


def _shutting_down() -> ScimError:
    return ScimError(
        503, "The server is shutting down; send the request again", headers={"Retry-After": "1", "Connection": "close"}
    )


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
    # ASCII digits only: str.isdigit() and int() also take "١" or "１".
    return int(tag) if _VERSION.fullmatch(tag) else None


def none_match(request: web.Request, current: str) -> bool:
    """Whether If-None-Match names the current ETag (weak comparison), so 304 applies."""
    header = request.headers.get("If-None-Match")
    if header is None:
        return False
    if header.strip() == "*":
        return True
    wanted = parse_etag(current)
    return any(parse_etag(tag) == wanted for tag in header.split(","))
