"""List and search requests (RFC 7644 §3.4.2, §3.4.3; RFC 9865 cursors) and ListResponses."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from scimhost.scim.errors import ScimError
from scimhost.scim.limits import plausible_id, refuse_nul
from scimhost.scim.render import LIST_RESPONSE_SCHEMA, parse_attribute_list

SEARCH_REQUEST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
DEFAULT_COUNT = 100
MAX_COUNT = 1000
# No store holds this many resources, and every store can skip this many rows (64-bit OFFSET):
# a startIndex beyond it asks for the same empty page past the end.
MAX_START_INDEX = 2**62
_ASCII_INTEGER = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class ListParams:
    """What a client asked for, from query parameters or a SearchRequest body."""

    filter: str | None = None
    sort_by: str | None = None
    sort_order: str | None = None
    start_index: int = 1
    count: int = DEFAULT_COUNT
    # RFC 9865: "" asks for the first page by cursor; None means index paging.
    cursor: str | None = None
    attributes: list[str] | None = None
    excluded_attributes: list[str] | None = None


def invalid_value(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidValue")


def _integer(name: str, raw: Any, default: int) -> int:
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return default
    if isinstance(raw, bool):
        raise invalid_value(f"{name} must be an integer")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)  # a JSON number past 64 bits arrives as a float: 1e+23
    # ASCII digits only: int() would also take "١" or "1_000".
    text = raw.strip() if isinstance(raw, str) else ""
    if not _ASCII_INTEGER.fullmatch(text):
        raise invalid_value(f"{name} must be an integer")
    return int(text)


def _params(get: Callable[[str], Any], max_count: int, default_count: int) -> ListParams:
    # RFC 7644 §3.4.2.4: startIndex below 1 is 1; a negative count is 0; above the maximum, the
    # maximum (ServiceProviderConfig filter.maxResults).
    start_index = min(max(_integer("startIndex", get("startIndex"), 1), 1), MAX_START_INDEX)
    count = min(max(_integer("count", get("count"), default_count), 0), max_count)
    filter_text = get("filter")
    if filter_text is not None and not isinstance(filter_text, str):
        raise ScimError(400, "filter must be a string", "invalidFilter")
    for name in ("sortBy", "sortOrder", "cursor"):
        value = get(name)
        if value is not None and not isinstance(value, str):
            raise invalid_value(f"{name} must be a string")
    return ListParams(
        filter=filter_text or None,
        sort_by=get("sortBy") or None,
        sort_order=get("sortOrder") or None,
        start_index=start_index,
        count=count,
        cursor=get("cursor"),
        attributes=parse_attribute_list(get("attributes")),
        excluded_attributes=parse_attribute_list(get("excludedAttributes")),
    )


def params_from_query(
    query: Mapping[str, str], *, max_count: int = MAX_COUNT, default_count: int = DEFAULT_COUNT
) -> ListParams:
    """List parameters from a query string (names are case-sensitive in the RFC; accepted in any case)."""
    refuse_nul(dict(query), "The query")
    lowered = {key.lower(): value for key, value in query.items()}
    return _params(lambda name: lowered.get(name.lower()), max_count, default_count)


def params_from_search(body: Any, *, max_count: int = MAX_COUNT, default_count: int = DEFAULT_COUNT) -> ListParams:
    """List parameters from a SearchRequest body (RFC 7644 §3.4.3)."""
    if not isinstance(body, dict):
        raise ScimError(400, "The request body must be a SearchRequest object", "invalidSyntax")
    schemas = body.get("schemas")
    if schemas is not None and (not isinstance(schemas, list) or SEARCH_REQUEST_SCHEMA not in schemas):
        raise ScimError(400, f"'schemas' must contain {SEARCH_REQUEST_SCHEMA}", "invalidSyntax")
    lowered = {key.lower(): value for key, value in body.items()}
    for name in ("attributes", "excludedattributes"):
        value = lowered.get(name)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            if not isinstance(value, str):
                raise invalid_value(f"{name} must be an array of attribute names")
    return _params(lambda name: lowered.get(name.lower()), max_count, default_count)


# --- cursors (RFC 9865) ---------------------------------------------------------------------------


def encode_cursor(direction: str, created: datetime, resource_id: str) -> str:
    """An opaque cursor: which way to go from which resource (its creation time and id)."""
    raw = orjson.dumps([direction, created.isoformat(), resource_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, datetime, str]:
    """(direction, created, id); 400 invalidCursor for anything this host did not make."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        direction, created, resource_id = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
        if direction not in ("after", "before") or not isinstance(resource_id, str) or not plausible_id(resource_id):
            raise ValueError(direction)
        return direction, datetime.fromisoformat(created), resource_id
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise ScimError(400, "The cursor is not one this server issued", "invalidCursor") from None


def list_response(
    total: int,
    resources: list[dict[str, Any]],
    *,
    start_index: int | None,
    next_cursor: str | None = None,
    previous_cursor: str | None = None,
) -> dict[str, Any]:
    """A ListResponse; index paging carries startIndex, cursor paging the cursors."""
    body: dict[str, Any] = {"schemas": [LIST_RESPONSE_SCHEMA], "totalResults": total, "itemsPerPage": len(resources)}
    if start_index is not None:
        body["startIndex"] = start_index
    if next_cursor:
        body["nextCursor"] = next_cursor
    if previous_cursor:
        body["previousCursor"] = previous_cursor
    body["Resources"] = resources
    return body
