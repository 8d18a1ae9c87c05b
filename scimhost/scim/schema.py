"""SCIM schemas (RFC 7643 §2, §7): attribute definitions read from Schema resources.

Schemas arrive as JSON-shaped dicts (from `register_schemas`, `register_schema_extensions` or
the TOML config); this module checks them and turns them into lookup structures. Attribute
names are case-insensitive everywhere (RFC 7643 §2.1), so lookups go through lower-cased keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

TYPES = ("string", "boolean", "decimal", "integer", "dateTime", "reference", "complex", "binary")
MUTABILITIES = ("readOnly", "readWrite", "immutable", "writeOnly")
RETURNED = ("always", "never", "default", "request")
UNIQUENESS = ("none", "server", "global")
ATTR_NAME = re.compile(r"^[A-Za-z$][A-Za-z0-9_$-]*$")
URN = re.compile(r"^urn:[A-Za-z0-9][A-Za-z0-9-]{0,31}:[A-Za-z0-9()+,\-.:=@;$_!*'%/?#]+$")


class SchemaDefinitionError(Exception):
    """A schema definition is invalid; the message names the attribute and the problem."""


@dataclass(frozen=True, slots=True)
class Attribute:
    """One attribute definition with its characteristics (RFC 7643 §2.2 defaults applied)."""

    name: str
    type: str = "string"
    multi_valued: bool = False
    required: bool = False
    case_exact: bool = False
    mutability: str = "readWrite"
    returned: str = "default"
    uniqueness: str = "none"
    canonical_values: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()
    description: str = ""
    sub_attributes: dict[str, Attribute] = field(default_factory=dict)  # lower-cased name ->

    def sub(self, name: str) -> Attribute | None:
        """The sub-attribute called `name`, in any case."""
        return self.sub_attributes.get(name.lower())

    def to_json(self) -> dict[str, Any]:
        """The attribute as it appears in a Schema resource."""
        doc: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "multiValued": self.multi_valued,
            "description": self.description,
            "required": self.required,
            "caseExact": self.case_exact,
            "mutability": self.mutability,
            "returned": self.returned,
            "uniqueness": self.uniqueness,
        }
        if self.canonical_values:
            doc["canonicalValues"] = list(self.canonical_values)
        if self.reference_types:
            doc["referenceTypes"] = list(self.reference_types)
        if self.sub_attributes:
            doc["subAttributes"] = [a.to_json() for a in self.sub_attributes.values()]
        return doc


@dataclass(frozen=True)
class Schema:
    """A Schema resource: its URN and its top-level attributes."""

    id: str
    name: str
    description: str
    attributes: dict[str, Attribute]  # lower-cased name -> attribute

    def attribute(self, name: str) -> Attribute | None:
        return self.attributes.get(name.lower())

    def to_json(self) -> dict[str, Any]:
        return {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": [a.to_json() for a in self.attributes.values()],
        }


def schema_from_json(doc: Any, where: str = "schema") -> Schema:
    """Check a Schema resource and build it; errors name the place (`where.attributes[2].type`)."""
    if not isinstance(doc, dict):
        raise SchemaDefinitionError(f"{where}: must be a JSON object")
    urn = doc.get("id")
    if not isinstance(urn, str) or not URN.match(urn):
        raise SchemaDefinitionError(f"{where}.id: must be a URN such as urn:example:scim:schemas:extension:Acme")
    attributes = doc.get("attributes")
    if not isinstance(attributes, list):
        raise SchemaDefinitionError(f"{where}.attributes: must be an array of attribute definitions")
    parsed = _attributes(attributes, f"{where}.attributes", depth=0)
    name = doc.get("name", "")
    description = doc.get("description", "")
    if not isinstance(name, str) or not isinstance(description, str):
        raise SchemaDefinitionError(f"{where}: name and description must be strings")
    return Schema(id=urn, name=name, description=description, attributes=parsed)


def _attributes(items: list[Any], where: str, depth: int) -> dict[str, Attribute]:
    result: dict[str, Attribute] = {}
    for index, item in enumerate(items):
        attribute = _attribute(item, f"{where}[{index}]", depth)
        key = attribute.name.lower()
        if key in result:
            raise SchemaDefinitionError(f"{where}[{index}].name: {attribute.name!r} is defined twice")
        result[key] = attribute
    return result


_BOOL_KEYS = {"multiValued": "multi_valued", "required": "required", "caseExact": "case_exact"}
_ENUM_KEYS = {"mutability": MUTABILITIES, "returned": RETURNED, "uniqueness": UNIQUENESS}


def _attribute(doc: Any, where: str, depth: int) -> Attribute:
    if not isinstance(doc, dict):
        raise SchemaDefinitionError(f"{where}: must be an object")
    known = {"name", "type", "subAttributes", "canonicalValues", "referenceTypes", "description"}
    known |= set(_BOOL_KEYS) | set(_ENUM_KEYS)
    for key in doc:
        if key not in known:
            raise SchemaDefinitionError(f"{where}.{key}: unknown attribute characteristic")
    name = doc.get("name")
    if not isinstance(name, str) or not ATTR_NAME.match(name):
        raise SchemaDefinitionError(f"{where}.name: must be a valid attribute name (RFC 7643 §2.1)")
    where = f"{where} ({name})"
    kwargs: dict[str, Any] = {"name": name}
    type_ = doc.get("type", "string")
    if type_ not in TYPES:
        raise SchemaDefinitionError(f"{where}.type: must be one of {', '.join(TYPES)}")
    kwargs["type"] = type_
    for key, attr in _BOOL_KEYS.items():
        if key in doc:
            if not isinstance(doc[key], bool):
                raise SchemaDefinitionError(f"{where}.{key}: must be true or false")
            kwargs[attr] = doc[key]
    for key, allowed in _ENUM_KEYS.items():
        if key in doc:
            if doc[key] not in allowed:
                raise SchemaDefinitionError(f"{where}.{key}: must be one of {', '.join(allowed)}")
            kwargs[key] = doc[key]
    for key, attr in (("canonicalValues", "canonical_values"), ("referenceTypes", "reference_types")):
        if key in doc:
            values = doc[key]
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise SchemaDefinitionError(f"{where}.{key}: must be an array of strings")
            kwargs[attr] = tuple(values)
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise SchemaDefinitionError(f"{where}.description: must be a string")
    kwargs["description"] = description
    subs = doc.get("subAttributes")
    if type_ == "complex":
        if depth > 0:
            # RFC 7643 §2.3.8: a complex attribute must not contain sub-attributes that are complex.
            raise SchemaDefinitionError(f"{where}.type: a sub-attribute cannot be complex")
        if not isinstance(subs, list) or not subs:
            raise SchemaDefinitionError(f"{where}.subAttributes: a complex attribute needs sub-attributes")
        kwargs["sub_attributes"] = _attributes(subs, f"{where}.subAttributes", depth + 1)
    elif subs:
        raise SchemaDefinitionError(f"{where}.subAttributes: only complex attributes have sub-attributes")
    return Attribute(**kwargs)


# Attributes every resource has (RFC 7643 §3.1); they are not part of any Schema resource.
COMMON_ATTRIBUTES: dict[str, Attribute] = {
    "id": Attribute("id", case_exact=True, mutability="readOnly", returned="always", uniqueness="server"),
    "externalid": Attribute("externalId", case_exact=True),
    "meta": Attribute(
        "meta",
        type="complex",
        mutability="readOnly",
        sub_attributes={
            a.name.lower(): a
            for a in (
                Attribute("resourceType", case_exact=True, mutability="readOnly"),
                Attribute("created", type="dateTime", mutability="readOnly"),
                Attribute("lastModified", type="dateTime", mutability="readOnly"),
                Attribute(
                    "location", type="reference", case_exact=True, mutability="readOnly", reference_types=("uri",)
                ),
                Attribute("version", case_exact=True, mutability="readOnly"),
            )
        },
    ),
}
