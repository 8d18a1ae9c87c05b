"""The Bulk endpoint (RFC 7644 §3.7): each operation runs through the same resource flows as
its single-request twin, atomically on its own."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from scimhost.http.actor import actor_of
from scimhost.http.bodies import parse_etag, read_json
from scimhost.http.keys import HOST, SOURCE
from scimhost.http.responses import scim_json
from scimhost.resource_service import ResourceService
from scimhost.scim.bulk import BULK_RESPONSE_SCHEMA, BulkOperation, parse_bulk_request, substitute
from scimhost.scim.errors import ScimError
from scimhost.scim.render import etag
from scimhost.storage.backend import StorageError

log = logging.getLogger("scimhost.bulk")


async def bulk(request: web.Request) -> web.Response:
    host = request.app[HOST]
    operations, fail_on_errors = parse_bulk_request(
        await read_json(request), max_operations=host.settings.limits.max_bulk_operations
    )
    actor = actor_of(request)  # one request id for every operation of the request
    created: dict[str, str] = {}  # bulkId -> id of the resource its POST created
    failed_bulk_ids: set[str] = set()
    results: dict[int, dict[str, Any]] = {}
    errors = 0
    pending = list(operations)
    # Run every operation whose references are resolved; repeat while that makes progress.
    while pending and not (fail_on_errors and errors >= fail_on_errors):
        ready = [op for op in pending if op.references <= created.keys() or op.references & failed_bulk_ids]
        if not ready:
            break
        for op in ready:
            if fail_on_errors and errors >= fail_on_errors:
                break
            pending.remove(op)
            if op.references & failed_bulk_ids:
                failed = ", ".join(sorted(op.references & failed_bulk_ids))
                result = _failure(
                    op, ScimError(409, f"the operation it references failed (bulkId {failed})", "invalidValue")
                )
            else:
                result = await _run(request, op, created, actor)
            results[op.index] = result
            if int(result["status"]) >= 400:
                errors += 1
                if op.bulk_id:
                    failed_bulk_ids.add(op.bulk_id)
    if not (fail_on_errors and errors >= fail_on_errors):
        for op in pending:  # what is left references bulkIds in a cycle, or that no POST defines
            missing = ", ".join(sorted(op.references - created.keys()))
            results[op.index] = _failure(
                op, ScimError(409, f"circular or unknown bulkId reference ({missing})", "invalidValue")
            )
    return scim_json({"schemas": [BULK_RESPONSE_SCHEMA], "Operations": [results[i] for i in sorted(results)]})


async def _run(
    request: web.Request, op: BulkOperation, created: dict[str, str], actor: dict[str, Any]
) -> dict[str, Any]:
    source = request[SOURCE]
    actor = {**actor, "bulk_id": op.bulk_id} if op.bulk_id else actor
    path = substitute(op.path, created)
    data = substitute(op.data, created)
    parts = [p for p in path.split("/") if p]
    resource_type = source.catalog.by_endpoint("/" + parts[0]) if parts else None
    location = None
    try:
        if resource_type is None or len(parts) > 2 or (op.method == "POST") != (len(parts) == 1):
            raise ScimError(404, f"{op.method} {op.path} names no endpoint", "invalidPath")
        service = ResourceService(request.app[HOST], source, resource_type, actor)
        if op.method == "POST":
            stored = await service.create(data)
            if op.bulk_id is not None:
                created[op.bulk_id] = stored.id
            return _success(op, "201", service.location(stored.id), etag(stored.version))
        resource_id = parts[1]
        location = service.location(resource_id)
        version = parse_etag(op.version) if op.version else None
        if op.version and version is None:
            raise ScimError(412, "version does not name a version of this resource")
        if op.method == "DELETE":
            await service.delete(resource_id, version)
            return _success(op, "204", location, None)
        if op.method == "PUT":
            stored = await service.replace(resource_id, data, version)
        else:
            stored = await service.patch(resource_id, data, version)
        return _success(op, "200", location, etag(stored.version))
    except ScimError as exc:
        return _failure(op, exc, location)
    except StorageError as exc:
        # Earlier operations committed: this one's failure is its own result, not the request's.
        log.error("storage failed in Bulk %s %s (source %s): %s", op.method, op.path, source.slug, exc)
        return _failure(op, ScimError(503, "Storage is unavailable", headers={"Retry-After": "5"}), location)


def _success(op: BulkOperation, status: str, location: str, version: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {"method": op.method, "location": location, "status": status}
    if op.bulk_id:
        result["bulkId"] = op.bulk_id
    if version:
        result["version"] = version
    return result


def _failure(op: BulkOperation, error: ScimError, location: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"method": op.method, "status": str(error.status), "response": error.to_body()}
    if op.bulk_id:
        result["bulkId"] = op.bulk_id
    if location:
        result["location"] = location
    return result
