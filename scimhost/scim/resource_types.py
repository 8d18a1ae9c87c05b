"""Resource types (RFC 7643 §6) with their core schema and extensions, and attribute resolution.

One `ResourceType` is what validation, the PATCH engine, filters, projection and discovery all
read, so an extension added to it is validated, addressable and discoverable at once.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from scimhost.scim.filter import AttrPath
from scimhost.scim.index import index_fingerprint
from scimhost.scim.schema import COMMON_ATTRIBUTES, Attribute, Schema

RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"


@dataclass(frozen=True, slots=True)
class Resolved:
    """Where an attribute path points: the schema (None for common attributes), the attribute,
    and the sub-attribute if the path names one. `attribute` is None for a whole-extension path."""

    schema: Schema | None
    attribute: Attribute | None
    sub: Attribute | None = None
    is_extension: bool = False

    @property
    def extension_urn(self) -> str | None:
        """The URN under which the attribute lives in a document, for extension attributes."""
        return self.schema.id if self.schema is not None and self.is_extension else None

    @property
    def target(self) -> Attribute | None:
        return self.sub or self.attribute


@dataclass(frozen=True)
class ResourceType:
    """A resource type as one source serves it."""

    name: str
    endpoint: str
    description: str
    schema: Schema
    extensions: tuple[tuple[Schema, bool], ...] = ()  # (schema, required)
    # The index paths (index.py's form: lower-cased, "emails.value", an extension's attributes
    # after its URN) that get index rows; a complex attribute's path covers its sub-attributes.
    # None: every attribute a filter may name.
    indexed: frozenset[str] | None = None

    def indexes(self, path: str) -> bool:
        """Whether attribute index rows are kept for this index path."""
        if self.indexed is None or path in self.indexed:
            return True
        parent, dot, _ = path.rpartition(".")
        return bool(dot) and parent in self.indexed

    @functools.cached_property
    def index_fingerprint(self) -> str:
        """The fingerprint of the configuration this type's index rows are computed under."""
        return index_fingerprint(self)

    @property
    def membership_attribute(self) -> str | None:
        """The name of the multi-valued `members` attribute (Group), whose values are kept as
        membership rows rather than in the document; None for types without one."""
        members = self.schema.attribute("members")
        return members.name if members is not None and members.multi_valued else None

    @property
    def groups_from_memberships(self) -> bool:
        """Whether the type's read-only `groups` (User) is derived from other types' membership
        rows rather than stored."""
        groups = self.schema.attribute("groups")
        return groups is not None and groups.mutability == "readOnly"

    def extension(self, urn: str) -> Schema | None:
        """The extension schema with this URN, in any case."""
        lowered = urn.lower()
        for schema, _ in self.extensions:
            if schema.id.lower() == lowered:
                return schema
        return None

    def top_level(self, name: str) -> Attribute | None:
        """A core or common attribute by (case-insensitive) name."""
        return self.schema.attribute(name) or COMMON_ATTRIBUTES.get(name.lower())

    def resolve(self, path: AttrPath) -> Resolved | None:
        """The attribute a path names, or None if it names nothing in this resource type."""
        if path.urn is not None:
            whole = f"{path.urn}:{path.attr}"
            if path.sub is None:
                extension = self.extension(whole)
                if extension is not None:
                    return Resolved(extension, None, is_extension=True)
            if path.urn.lower() == self.schema.id.lower():
                schema, is_extension = self.schema, False
                attribute = self.schema.attribute(path.attr)
            else:
                extension = self.extension(path.urn)
                if extension is None:
                    return None
                schema, is_extension = extension, True
                attribute = extension.attribute(path.attr)
        else:
            attribute = self.schema.attribute(path.attr)
            schema, is_extension = self.schema, False
            if attribute is None:
                attribute = COMMON_ATTRIBUTES.get(path.attr.lower())
                schema = None
        if attribute is None:
            return None
        if path.sub is None:
            return Resolved(schema, attribute, None, is_extension)
        sub = attribute.sub(path.sub)
        if sub is None:
            return None
        return Resolved(schema, attribute, sub, is_extension)

    def to_json(self, location: str) -> dict[str, Any]:
        """The ResourceType resource."""
        doc: dict[str, Any] = {
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": self.name,
            "name": self.name,
            "endpoint": self.endpoint,
            "description": self.description,
            "schema": self.schema.id,
            "meta": {"resourceType": "ResourceType", "location": location},
        }
        if self.extensions:
            doc["schemaExtensions"] = [
                {"schema": schema.id, "required": required} for schema, required in self.extensions
            ]
        return doc
