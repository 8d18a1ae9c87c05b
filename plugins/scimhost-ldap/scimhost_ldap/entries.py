"""SCIM resources as directory entries and back: the mapped attributes a directory's other
readers use, and beside them the document and record as JSON, so nothing the client sent is
lost on the way through the directory."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from scimhost.storage.backend import StoredResource
from scimhost_ldap.settings import BOOLEAN_ATTRIBUTES

DOCUMENT, RECORD, EXTERNAL_ID = "scimhostDocument", "scimhostRecord", "scimhostExternalId"
VERSION, CREATED, MODIFIED = "scimhostVersion", "scimhostCreated", "scimhostModified"
OWN_CLASS = "scimhostResource"
# What every read of a resource asks for (a group's members are read apart, in batches).
READ_ATTRIBUTES = ["entryUUID", DOCUMENT, VERSION, CREATED, MODIFIED]


def values_at(document: dict[str, Any], key: str) -> list[str]:
    """The non-empty string values at an index path ("emails.value", "name.givenname", an
    extension's "urn:...:user:department"), every value of a multi-valued attribute."""
    node: Any = document
    path = key
    if key.startswith("urn:"):
        schema, _, path = key.rpartition(":")
        node = _get(document, schema)
    for part in path.split("."):
        if isinstance(node, list):
            node = [_get(item, part) for item in node if isinstance(item, dict)]
        else:
            node = _get(node, part)
    items = node if isinstance(node, list) else [node]
    return [str(item) for item in items if isinstance(item, (str, int)) and not isinstance(item, bool) and item != ""]


def _get(node: Any, name: str) -> Any:
    if not isinstance(node, dict):
        return None
    for key, value in node.items():
        if key.lower() == name.lower():
            return value
    return None


def mapped_values(resource_type: str, document: dict[str, Any], attributes: dict[str, str]) -> dict[str, list[bytes]]:
    """The entry's attributes that mirror the document (each mapped one, empty when the
    document has no value), its naming and required attributes included."""
    values: dict[str, list[bytes]] = {ldap_name: [] for ldap_name in attributes.values()}
    for key, ldap_name in attributes.items():
        if ldap_name in BOOLEAN_ATTRIBUTES:
            flag = _get(document, key)
            values[ldap_name] = [b"TRUE" if flag else b"FALSE"] if isinstance(flag, bool) else []
        else:
            values[ldap_name] += [v.encode() for v in values_at(document, key)]
    if resource_type == "User":
        user_name = str(document["userName"])
        values["uid"] = [user_name.encode()]
        # inetOrgPerson requires cn and sn: the best the document has.
        common = values_at(document, "name.formatted") or values_at(document, "displayname") or [user_name]
        values["cn"] = [common[0].encode()]
        values["sn"] = [(values_at(document, "name.familyname") or [user_name])[0].encode()]
    else:
        values["cn"] = [str(document["displayName"]).encode()]
    values[EXTERNAL_ID] = [document["externalId"].encode()] if document.get("externalId") else []
    return values


def own_values(document: dict[str, Any], record: dict[str, Any] | None, modified: datetime) -> dict[str, list[bytes]]:
    """The scimhost attributes a write sets besides the version."""
    return {
        DOCUMENT: [orjson.dumps(document)],
        RECORD: [orjson.dumps(record)] if record is not None else [],
        MODIFIED: [generalized_time(modified).encode()],
    }


def generalized_time(moment: datetime) -> str:
    """GeneralizedTime to the millisecond, in UTC."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y%m%d%H%M%S") + f".{moment.microsecond // 1000:03d}Z"


def parse_time(value: bytes) -> datetime:
    text = value.decode().rstrip("Z")
    whole, _, fraction = text.partition(".")
    moment = datetime.strptime(whole, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    return moment.replace(microsecond=int((fraction + "000000")[:6])) if fraction else moment


def now_ms() -> datetime:
    """Now, to the millisecond (what the directory keeps)."""
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def stored(resource_type: str, attrs: dict[str, list[bytes]]) -> StoredResource:
    """A resource as read from its entry (members and groups not read)."""
    return StoredResource(
        id=attrs["entryUUID"][0].decode(),
        resource_type=resource_type,
        document=orjson.loads(attrs[DOCUMENT][0]),
        version=int(attrs[VERSION][0]),
        created=parse_time(attrs[CREATED][0]),
        last_modified=parse_time(attrs[MODIFIED][0]),
    )
