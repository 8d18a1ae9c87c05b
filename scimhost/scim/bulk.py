"""Bulk requests (RFC 7644 §3.7): parsing, `bulkId` references, and the order operations run in.

Operations may reference resources that other operations of the same request create
(`"value": "bulkId:qwerty"`, or a path `/Groups/bulkId:qwerty`), in any order: an operation
runs once every bulkId it references has been created. References that can never resolve (a
cycle, or a bulkId no POST defines) fail those operations with 409.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from scimhost.scim.errors import ScimError

BULK_REQUEST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
METHODS = ("POST", "PUT", "PATCH", "DELETE")
_REFERENCE = re.compile(r"^bulkId:(.+)$")


@dataclass
class BulkOperation:
    """One operation as sent, with the bulkIds it references."""

    index: int
    method: str
    path: str
    bulk_id: str | None
    version: str | None
    data: Any
    references: set[str]


def invalid(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidSyntax")


def parse_bulk_request(body: Any, *, max_operations: int) -> tuple[list[BulkOperation], int | None]:
    """The operations and `failOnErrors` of a BulkRequest; 413 beyond `max_operations`."""
    if not isinstance(body, dict):
        raise invalid("The request body must be a BulkRequest object")
    schemas = body.get("schemas")
    if schemas is not None and (not isinstance(schemas, list) or BULK_REQUEST_SCHEMA not in schemas):
        raise invalid(f"'schemas' must contain {BULK_REQUEST_SCHEMA}")
    fields = {k.lower(): v for k, v in body.items()}
    operations = fields.get("operations")
    if not isinstance(operations, list) or not operations:
        raise invalid("'Operations' must be a non-empty array")
    if len(operations) > max_operations:
        raise ScimError(
            413, f"The bulk request has {len(operations)} operations; at most {max_operations} are accepted"
        )
    fail_on_errors = fields.get("failonerrors")
    if fail_on_errors is not None and (
        isinstance(fail_on_errors, bool) or not isinstance(fail_on_errors, int) or fail_on_errors < 1
    ):
        raise ScimError(400, "failOnErrors must be a positive integer", "invalidValue")
    parsed = []
    seen_ids: set[str] = set()
    for index, raw in enumerate(operations):
        if not isinstance(raw, dict):
            raise invalid(f"Operations[{index}] must be an object")
        op = {k.lower(): v for k, v in raw.items()}
        method = op.get("method")
        if not isinstance(method, str) or method.upper() not in METHODS:
            raise invalid(f"Operations[{index}].method must be one of {', '.join(METHODS)}")
        method = method.upper()
        path = op.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise invalid(f"Operations[{index}].path must be a path such as /Users or /Users/<id>")
        bulk_id = op.get("bulkid")
        if method == "POST":
            if not isinstance(bulk_id, str) or not bulk_id:
                raise invalid(f"Operations[{index}]: a POST needs a bulkId")
            if bulk_id in seen_ids:
                raise invalid(f"Operations[{index}]: bulkId {bulk_id!r} is used twice")
            seen_ids.add(bulk_id)
        elif bulk_id is not None and not isinstance(bulk_id, str):
            raise invalid(f"Operations[{index}].bulkId must be a string")
        data = op.get("data")
        if method != "DELETE" and not isinstance(data, dict):
            raise invalid(f"Operations[{index}]: {method} needs a data object")
        version = op.get("version")
        parsed.append(
            BulkOperation(
                index,
                method,
                path,
                bulk_id,
                version if isinstance(version, str) else None,
                data,
                references(path) | references(data),
            )
        )
    return parsed, fail_on_errors


def references(value: Any) -> set[str]:
    """Every bulkId a path or document references."""
    found: set[str] = set()
    if isinstance(value, str):
        for part in value.split("/"):
            match = _REFERENCE.match(part)
            if match:
                found.add(match[1])
    elif isinstance(value, dict):
        for item in value.values():
            found |= references(item)
    elif isinstance(value, list):
        for item in value:
            found |= references(item)
    return found


def substitute(value: Any, ids: dict[str, str]) -> Any:
    """`value` with every `bulkId:x` replaced by the id the POST with bulkId x created."""
    if isinstance(value, str):
        return "/".join(_resolve(part, ids) for part in value.split("/"))
    if isinstance(value, dict):
        return {key: substitute(item, ids) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, ids) for item in value]
    return value


def _resolve(part: str, ids: dict[str, str]) -> str:
    match = _REFERENCE.match(part)
    return ids.get(match[1], part) if match else part
