"""SCIM events as Security Event Tokens (RFC 9967 over RFC 8417): which SETs one scimhost event
makes, their claims, and their signing."""

from __future__ import annotations

import time
import uuid
from typing import Any

from joserfc import jwt

from scimhost_set.keys import SigningKey

EVENT = "urn:ietf:params:scim:event:"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ENDPOINTS = {"User": "/Users", "Group": "/Groups"}
# What the sink can produce, for ServiceProviderConfig `securityEvents.eventUris`.
ACTIONS = {"create": "prov:create", "restore": "prov:create", "replace": "prov:put", "patch": "prov:patch"}
# RFC 9967 §5: a big group change goes as a notice (the receiver reads the group back) rather
# than a SET carrying thousands of members; past this many member values, or when the event log
# kept only the counts of a replaced member list.
MAX_MEMBER_VALUES = 1000


def event_uris(mode: str) -> list[str]:
    return [
        f"{EVENT}prov:create:{mode}",
        f"{EVENT}prov:put:{mode}",
        f"{EVENT}prov:patch:{mode}",
        f"{EVENT}prov:delete",
        f"{EVENT}prov:activate",
        f"{EVENT}prov:deactivate",
    ]


def endpoint(resource_type: str) -> str:
    return ENDPOINTS.get(resource_type, f"/{resource_type}s")


def payloads(data: dict[str, Any], mode: str) -> list[tuple[str, dict[str, Any]]]:
    """(event URI, payload) of each SET one event makes: none for a change of the directory
    record only (`remap`: nothing SCIM shows changed); the change itself; and `prov:activate`
    or `prov:deactivate` beside it when `active` turned."""
    action = data["action"]
    if action == "delete":
        return [(f"{EVENT}prov:delete", {})]
    if action not in ACTIONS:
        return []
    if mode == "full" and action == "patch" and _too_many_members(data.get("members") or {}):
        mode = "notice"
    uri = f"{EVENT}{ACTIONS[action]}:{mode}"
    payload: dict[str, Any] = {"version": data["etag"]}
    resource = {**(data.get("resource") or {}), "id": data["resourceId"]}
    if mode == "full":
        payload["data"] = _patch_data(data) if action == "patch" else resource
    else:
        payload["attributes"] = attributes(data, resource if action in ("create", "restore") else None)
    made = [(uri, payload)]
    lifecycle = data.get("lifecycle")
    if lifecycle == "deactivated":
        made.append((f"{EVENT}prov:deactivate", {}))
    elif lifecycle == "reactivated":
        made.append((f"{EVENT}prov:activate", {}))
    return made


def _too_many_members(members: dict[str, Any]) -> bool:
    if members.get("replaced"):
        listed = members.get("members")
        return listed is None or len(listed) > MAX_MEMBER_VALUES
    return len(members.get("added") or []) + len(members.get("removed") or []) > MAX_MEMBER_VALUES


def attributes(data: dict[str, Any], created: dict[str, Any] | None) -> list[str]:
    """The attribute paths a notice lists: every attribute of a new resource, else the ones
    the change touched (members among them when they changed)."""
    names = list(created) if created is not None else list(data.get("changed") or {})
    if data.get("members") and "members" not in names:
        names.append("members")
    return names


def _patch_data(data: dict[str, Any]) -> dict[str, Any]:
    """The PATCH request itself (RFC 9967 §2.4.2), as the event log kept it; for a change the
    log kept no operations of (a member change of a group, a remap), the equivalent PatchOp."""
    operations = data.get("operations")
    if operations is not None:
        return {"schemas": [PATCH_OP], "Operations": operations}
    return patch_op(data)


def patch_op(data: dict[str, Any]) -> dict[str, Any]:
    """The PatchOp equivalent to what the change did: each changed attribute replaced with its
    new value (removed when it has none), members added and removed; writeOnly values never."""
    operations: list[dict[str, Any]] = []
    for name, change in (data.get("changed") or {}).items():
        if not isinstance(change, dict) or "new" not in change:
            continue  # a writeOnly attribute ({"changed": true}) is never shown
        if change["new"] is None:
            operations.append({"op": "remove", "path": name})
        else:
            operations.append({"op": "replace", "path": name, "value": change["new"]})
    members = data.get("members") or {}
    if members.get("replaced"):
        listed = members.get("members")
        value = [{"value": member} for member in listed] if listed is not None else None
        if value is not None:
            operations.append({"op": "replace", "path": "members", "value": value})
    else:
        if members.get("added"):
            operations.append({"op": "add", "path": "members", "value": [{"value": m} for m in members["added"]]})
        for member in members.get("removed") or []:
            operations.append({"op": "remove", "path": f'members[value eq "{member}"]'})
    return {"schemas": [PATCH_OP], "Operations": operations}


def claims(data: dict[str, Any], uri: str, payload: dict[str, Any], *, issuer: str, audience: str) -> dict[str, Any]:
    """One SET's claims: a new `jti`, `txn` the event id (the same across retransmissions,
    receivers and the SETs of one change), the subject as `sub_id` (never `sub`)."""
    subject: dict[str, Any] = {
        "format": "scim",
        "uri": f"{endpoint(data['resourceType'])}/{data['resourceId']}",
        "id": data["resourceId"],
    }
    if data.get("externalId"):
        subject["externalId"] = data["externalId"]
    return {
        "jti": uuid.uuid4().hex,
        "iss": issuer,
        "aud": audience,
        "iat": int(time.time()),
        "txn": data["id"],
        "sub_id": subject,
        "events": {uri: payload},
    }


def signed(claims_: dict[str, Any], key: SigningKey) -> str:
    header = {"alg": key.algorithm, "kid": key.kid, "typ": "secevent+jwt"}
    return jwt.encode(header, claims_, key.key, algorithms=[key.algorithm])
