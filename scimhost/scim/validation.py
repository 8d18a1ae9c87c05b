"""Validation of resource documents by attribute characteristics (RFC 7643 §2, §7).

`validate_resource` takes what a client sent (POST, PUT, or the result of a PATCH) and returns
the document to store: attribute names in their schema spelling, values of the right type,
readOnly input and unknown attributes dropped, nulls treated as absent, immutable and required
attributes checked. Tolerances real clients need (SCIM-NOTES.md) live here, not in handlers:
booleans sent as "True"/"False", a bare string for a single complex attribute with a `value`
(Entra's `manager`), `$ref: null`, unknown schema URNs.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timezone
from typing import Any

from scimhost.scim.errors import ScimError
from scimhost.scim.resource_types import ResourceType
from scimhost.scim.schema import Attribute, Schema

MAX_MULTI_VALUES = 100_000


def invalid_value(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidValue")


def validate_resource(body: Any, resource_type: ResourceType, *, existing: dict[str, Any] | None = None) -> dict[str, Any]:
    """The document to store for `body`; `existing` is the stored document on replace.

    Raises ScimError 400 (invalidValue, invalidSyntax or mutability).
    """
    if not isinstance(body, dict):
        raise ScimError(400, "The request body must be a JSON object", "invalidSyntax")
    schemas = body.get("schemas")
    if schemas is not None and (not isinstance(schemas, list) or not all(isinstance(s, str) for s in schemas)):
        raise invalid_value("'schemas' must be an array of schema URNs")

    result: dict[str, Any] = {}
    core = resource_type.schema
    for key, value in body.items():
        if value is None:
            continue
        attribute = core.attribute(key)
        if attribute is not None:
            _put(result, attribute, value, attribute.name)
            continue
        extension = resource_type.extension(key)
        if extension is not None:
            if not isinstance(value, dict):
                raise invalid_value(f"'{extension.id}' must be an object")
            cleaned = _validate_object(value, extension, extension.id)
            if cleaned:
                result[extension.id] = cleaned
            continue
        if key.lower() == "externalid":
            if not isinstance(value, str):
                raise invalid_value("'externalId' must be a string")
            result["externalId"] = value
        # Anything else (id, meta, schemas, unknown attributes and URNs) is ignored.

    _check_required(result, core, "")
    for extension, required in resource_type.extensions:
        if extension.id in result:
            _check_required(result[extension.id], extension, extension.id + ":")
        elif required:
            raise invalid_value(f"the extension '{extension.id}' is required")
    if existing is not None:
        _check_immutable(result, existing, core, "")
        for extension, _ in resource_type.extensions:
            _check_immutable(result.get(extension.id, {}), existing.get(extension.id, {}), extension,
                             extension.id + ":")
    result["schemas"] = [core.id] + [s.id for s, _ in resource_type.extensions if s.id in result]
    return result


def _validate_object(value: dict, schema: Schema, where: str) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for key, item in value.items():
        if item is None:
            continue
        attribute = schema.attribute(key)
        if attribute is not None:
            _put(cleaned, attribute, item, f"{where}:{attribute.name}")
    return cleaned


def _put(target: dict, attribute: Attribute, value: Any, where: str) -> None:
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
                moment.astimezone(timezone.utc)  # stored and compared in UTC: it must have one
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


def _check_required(doc: dict, schema: Schema, prefix: str) -> None:
    for attribute in schema.attributes.values():
        if attribute.required and attribute.mutability != "readOnly" and _blank(doc.get(attribute.name)):
            raise invalid_value(f"'{prefix}{attribute.name}' is required" + (
                " and must not be empty" if attribute.name in doc else ""))


def _blank(value: Any) -> bool:
    """Absent, or a string of nothing but whitespace: no value for a required attribute."""
    return value is None or (isinstance(value, str) and not value.strip())


def _check_immutable(new: dict, old: dict, schema: Schema, prefix: str) -> None:
    """An immutable attribute, once set, keeps its value (RFC 7643 §2.2)."""
    for attribute in schema.attributes.values():
        if attribute.mutability == "immutable" and attribute.name in old and new.get(attribute.name) != old[attribute.name]:
            raise ScimError(400, f"'{prefix}{attribute.name}' is immutable", "mutability")
