"""Validation of resource documents by attribute characteristics (RFC 7643 §2, §7).

`validated_document` takes what a client sent (POST, PUT, or the result of a PATCH) and returns
the document to store: attribute names in their schema spelling, values of the right type,
readOnly input and unknown attributes dropped, nulls treated as absent, immutable and required
attributes checked. Tolerances real clients need (docs/clients.md) live here, not in handlers:
booleans sent as "True"/"False", a bare string for a single complex attribute with a `value`
(Entra's `manager`), `$ref: null`, unknown schema URNs.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

from scimhost.scim.errors import ScimError
from scimhost.scim.names import is_kept_key, is_sub_attribute_name
from scimhost.scim.resource_types import ResourceType
from scimhost.scim.schema import Attribute, Schema

MAX_MULTI_VALUES = 100_000
# An attribute no schema declares is kept as sent (per source, `unknown_attributes = "keep"`),
# nested at most this deep; deeper is 400 invalidValue naming it.
MAX_KEPT_DEPTH = 16
# Top-level keys that are not attributes of the document but are never "unknown" either.
_PROTOCOL_KEYS = frozenset({"schemas", "id", "meta", "externalid"})
_ABSENT = object()


def invalid_value(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidValue")


def undeclared_keys(body: Any, resource_type: ResourceType) -> list[str]:
    """The top-level keys of a body that no schema of the resource type declares: extension
    objects of unregistered URNs, URN-qualified keys of them, plain unknown names."""
    if not isinstance(body, dict):
        return []
    return [key for key, value in body.items() if value is not None and is_undeclared(key, resource_type)]


def is_undeclared(key: str, resource_type: ResourceType) -> bool:
    """Whether a top-level key (or PATCH path) is outside every schema of the resource type: not
    a declared attribute, and not in a declared schema's namespace either (`name.nosuch` and
    `urn:...:enterprise:2.0:User:nosuch` are mistakes about declared schemas, not new data)."""
    if _declared(key, resource_type) is not None:
        return False
    urn, _, name = key.rpartition(":")
    if urn and (urn.lower() == resource_type.schema.id.lower() or resource_type.extension(urn) is not None):
        return False
    return urn != "" or resource_type.top_level(name.split(".", 1)[0]) is None


def _declared(key: str, resource_type: ResourceType) -> tuple[Schema, Attribute | None] | None:
    """(schema, attribute) a top-level key names: a core attribute (plain or qualified with the
    core URN), a whole extension (attribute None), or an extension attribute qualified with its
    URN; protocol keys (schemas, id, meta, externalId) map to the core schema. None: undeclared."""
    core = resource_type.schema
    lowered = key.lower()
    if lowered in _PROTOCOL_KEYS:
        return core, None
    attribute = core.attribute(key)
    if attribute is not None:
        return core, attribute
    extension = resource_type.extension(key)
    if extension is not None:
        return extension, None
    urn, _, name = key.rpartition(":")
    if urn:
        if urn.lower() == core.id.lower() and core.attribute(name) is not None:
            return core, core.attribute(name)
        extension = resource_type.extension(urn)
        if extension is not None and extension.attribute(name) is not None:
            return extension, extension.attribute(name)
    return None


def validated_document(
    body: Any,
    resource_type: ResourceType,
    *,
    existing: dict[str, Any] | None = None,
    keep_unknown: bool = False,
    unchanged: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The document to store for `body`; `existing` is the stored document on replace.

    `keep_unknown`: top-level keys no schema declares are kept as sent (undeclared_keys), and
    those holding an object under a URN are listed in `schemas`; otherwise they are dropped.
    A kept key must be an attribute name or a URN, and the keys inside it attribute names
    (`check_kept`), unless `unchanged` (the stored document a PATCH starts from) holds it with
    the same value: what an earlier version kept is not refused because the PATCH left it alone.
    Raises ScimError 400 (invalidValue, invalidSyntax or mutability).
    """
    if not isinstance(body, dict):
        raise ScimError(400, "The request body must be a JSON object", "invalidSyntax")
    schemas = body.get("schemas")
    if schemas is not None and (not isinstance(schemas, list) or not all(isinstance(s, str) for s in schemas)):
        raise invalid_value("'schemas' must be an array of schema URNs")

    result: dict[str, Any] = {}
    kept: dict[str, Any] = {}
    core = resource_type.schema
    for key, value in body.items():
        if value is None:
            continue
        declared = _declared(key, resource_type)
        if declared is None:
            if keep_unknown and is_undeclared(key, resource_type):
                if unchanged is None or unchanged.get(key, _ABSENT) != value:
                    check_kept(key, value)
                kept[key] = value
            continue
        schema, attribute = declared
        if schema is core:
            if attribute is not None:
                _put(result, attribute, value, attribute.name)
            elif key.lower() == "externalid":
                if not isinstance(value, str):
                    raise invalid_value("'externalId' must be a string")
                result["externalId"] = value
            # id, meta and schemas are the server's to set.
            continue
        if attribute is None:
            if not isinstance(value, dict):
                raise invalid_value(f"'{schema.id}' must be an object")
            cleaned = _validate_object(value, schema, schema.id)
            if cleaned:
                result.setdefault(schema.id, {}).update(cleaned)
            continue
        # `urn:...:User:employeeNumber` as a top-level key: the extension's attribute.
        part = result.setdefault(schema.id, {})
        _put(part, attribute, value, f"{schema.id}:{attribute.name}")
        if not part:
            del result[schema.id]

    _check_required(result, core, "")
    for extension, required in resource_type.extensions:
        if extension.id in result:
            _check_required(result[extension.id], extension, extension.id + ":")
        elif required:
            raise invalid_value(f"the extension '{extension.id}' is required")
    if existing is not None:
        _check_immutable(result, existing, core, "")
        for extension, _ in resource_type.extensions:
            _check_immutable(
                result.get(extension.id, {}), existing.get(extension.id, {}), extension, extension.id + ":"
            )
    result["schemas"] = [core.id] + [s.id for s, _ in resource_type.extensions if s.id in result]
    if kept:
        result.update(kept)
        result["schemas"] += [
            key for key, value in kept.items() if key.lower().startswith("urn:") and isinstance(value, dict)
        ]
    return result


def check_kept(key: str, value: Any) -> None:
    """A key no schema declares may be kept with this value: the key an attribute name or a URN,
    every key inside the value an attribute name (or `$ref`), nested at most MAX_KEPT_DEPTH deep;
    else 400 invalidSyntax (invalidValue for the depth) naming the key."""
    if not is_kept_key(key):
        raise ScimError(
            400,
            f"{key!r} is not an attribute name (a letter, then letters, digits, '-' or '_') "
            "nor a schema URN (urn:namespace:part...)",
            "invalidSyntax",
        )
    _check_kept_value(value, key, key, 1)


def _check_kept_value(value: Any, key: str, where: str, depth: int) -> None:
    if depth > MAX_KEPT_DEPTH:
        raise invalid_value(f"'{key}' is nested more than {MAX_KEPT_DEPTH} levels deep")
    if isinstance(value, dict):
        for name, item in value.items():
            if not is_sub_attribute_name(name):
                raise ScimError(400, f"{name!r} in '{where}' is not an attribute name", "invalidSyntax")
            _check_kept_value(item, key, f"{where}.{name}", depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_kept_value(item, key, where, depth + 1)


def _validate_object(value: dict[str, Any], schema: Schema, where: str) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for key, item in value.items():
        if item is None:
            continue
        attribute = schema.attribute(key)
        if attribute is not None:
            _put(cleaned, attribute, item, f"{where}:{attribute.name}")
    return cleaned


def _put(target: dict[str, Any], attribute: Attribute, value: Any, where: str) -> None:
    if attribute.mutability == "readOnly":
        return
    converted = coerce_attribute(attribute, value, where)
    if converted is not None:
        target[attribute.name] = converted


def coerce_attribute(attribute: Attribute, value: Any, where: str) -> Any:
    """`value` checked and converted for `attribute` (multi-valued or not); None if empty."""
    if not attribute.multi_valued:
        return coerce_value(attribute, value, where)
    if not isinstance(value, list):
        raise invalid_value(f"'{where}' is multi-valued and must be an array")
    if len(value) > MAX_MULTI_VALUES:
        raise invalid_value(f"'{where}' has more than {MAX_MULTI_VALUES} values")
    items = []
    for index, item in enumerate(value):
        if item is None:
            continue
        converted = coerce_value(attribute, item, f"{where}[{index}]")
        if converted is not None:
            items.append(converted)
    if attribute.type == "complex":
        primaries = sum(1 for item in items if item.get("primary") is True)
        if primaries > 1:
            raise invalid_value(f"'{where}' has more than one value with primary true")
    return items or None


def coerce_value(attribute: Attribute, value: Any, where: str) -> Any:
    """One (single) value checked and converted for `attribute`; None if it is empty."""
    kind = attribute.type
    if kind == "complex":
        if isinstance(value, str) and attribute.sub("value") is not None and not attribute.multi_valued:
            value = {"value": value}  # Entra sends "manager": "<id>"
        if not isinstance(value, dict):
            raise invalid_value(f"'{where}' must be an object")
        cleaned: dict[str, Any] = {}
        for key, item in value.items():
            if item is None:
                continue
            sub = attribute.sub(key)
            if sub is None or sub.mutability == "readOnly":
                continue
            converted = coerce_value(sub, item, f"{where}.{sub.name}")
            if converted is not None:
                cleaned[sub.name] = converted
        for sub in attribute.sub_attributes.values():
            if sub.required and sub.mutability != "readOnly" and _blank(cleaned.get(sub.name)):
                raise invalid_value(f"'{where}.{sub.name}' is required")
        return cleaned or None
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"  # Entra sends "True" / "False"
        raise invalid_value(f"'{where}' must be a boolean")
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise invalid_value(f"'{where}' must be an integer")
        return value
    if kind == "decimal":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise invalid_value(f"'{where}' must be a number")
        return value
    if not isinstance(value, str):
        raise invalid_value(f"'{where}' must be a string")
    if kind == "dateTime":
        try:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is not None:
                moment.astimezone(UTC)  # stored and compared in UTC: it must have one
        except (ValueError, OverflowError):
            raise invalid_value(f"'{where}' must be an xsd:dateTime such as 2024-05-01T12:00:00Z") from None
    elif kind == "binary":
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise invalid_value(f"'{where}' must be base64-encoded") from None
    if attribute.canonical_values:
        for canonical in attribute.canonical_values:
            if canonical.lower() == value.lower():
                return canonical
        raise invalid_value(f"'{where}' must be one of {', '.join(attribute.canonical_values)}")
    return value


def _check_required(doc: dict[str, Any], schema: Schema, prefix: str) -> None:
    for attribute in schema.attributes.values():
        if attribute.required and attribute.mutability != "readOnly" and _blank(doc.get(attribute.name)):
            raise invalid_value(
                f"'{prefix}{attribute.name}' is required" + (" and must not be empty" if attribute.name in doc else "")
            )


def _blank(value: Any) -> bool:
    """Absent, or a string of nothing but whitespace: no value for a required attribute."""
    return value is None or (isinstance(value, str) and not value.strip())


def _check_immutable(new: dict[str, Any], old: dict[str, Any], schema: Schema, prefix: str) -> None:
    """An immutable attribute, once set, keeps its value (RFC 7643 §2.2)."""
    for attribute in schema.attributes.values():
        if (
            attribute.mutability == "immutable"
            and attribute.name in old
            and new.get(attribute.name) != old[attribute.name]
        ):
            raise ScimError(400, f"'{prefix}{attribute.name}' is immutable", "mutability")
