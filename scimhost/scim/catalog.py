"""A source's catalog: its resource types, with the schemas and extensions it accepts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from scimhost.scim.errors import ScimError
from scimhost.scim.extensions import SchemaExtension
from scimhost.scim.filter import parse_attr_path
from scimhost.scim.resource_types import ResourceType
from scimhost.scim.schema import Schema, SchemaDefinitionError, schema_from_json


@dataclass(frozen=True)
class Catalog:
    """Resource types by name and by endpoint, and every schema they use by URN."""

    resource_types: dict[str, ResourceType]
    schemas: dict[str, Schema]

    def by_endpoint(self, endpoint: str) -> ResourceType | None:
        for resource_type in self.resource_types.values():
            if resource_type.endpoint == endpoint:
                return resource_type
        return None

    def schema(self, urn: str) -> Schema | None:
        """A schema by URN, in any case."""
        lowered = urn.lower()
        for schema in self.schemas.values():
            if schema.id.lower() == lowered:
                return schema
        return None


def build_catalog(
    schemas: Iterable[dict[str, Any]],
    resource_types: Iterable[dict[str, Any]],
    extensions: Iterable[SchemaExtension],
    *,
    accepted_extensions: Iterable[str] | None = None,
) -> Catalog:
    """Join schema documents, resource type documents and extensions into a catalog.

    `accepted_extensions` limits the extensions to those URNs (None: all of them). Raises
    SchemaDefinitionError naming what is inconsistent.
    """
    parsed = {}
    for doc in schemas:
        schema = schema_from_json(doc, f"schema {doc.get('id', '?') if isinstance(doc, dict) else '?'}")
        parsed[schema.id] = schema
    accepted = None if accepted_extensions is None else {urn.lower() for urn in accepted_extensions}
    extensions_by_type: dict[str, list[tuple[Schema, bool]]] = {}
    seen_extensions = set()
    for extension in extensions:
        schema = schema_from_json(extension.schema, f"extension {extension.schema.get('id', '?')}")
        seen_extensions.add(schema.id.lower())
        if accepted is not None and schema.id.lower() not in accepted:
            continue
        extensions_by_type.setdefault(extension.resource_type, []).append((schema, extension.required))
    if accepted is not None:
        unknown = sorted(accepted - seen_extensions)
        if unknown:
            raise SchemaDefinitionError(f"no schema extension is registered or declared with URN {unknown[0]!r}")

    types = {}
    for doc in resource_types:
        name, core = doc["name"], doc["schema"]
        if core not in parsed:
            raise SchemaDefinitionError(f"resource type {name!r} uses schema {core!r}, which nothing registers")
        attached = tuple(extensions_by_type.pop(name, ()))
        for schema, _ in attached:
            if schema.id in parsed:
                raise SchemaDefinitionError(f"extension {schema.id!r} has the URN of a core schema")
        types[name] = ResourceType(
            name=name,
            endpoint=doc["endpoint"],
            description=doc.get("description", ""),
            schema=parsed[core],
            extensions=attached,
        )
    if extensions_by_type:
        orphan = next(iter(extensions_by_type))
        raise SchemaDefinitionError(f"a schema extension is attached to resource type {orphan!r}, which does not exist")
    all_schemas = dict(parsed)
    for resource_type in types.values():
        for schema, _ in resource_type.extensions:
            all_schemas[schema.id] = schema
    return Catalog(resource_types=types, schemas=all_schemas)


def with_indexes(catalog: Catalog, indexed: Mapping[str, Iterable[str]], *, strict: bool = True) -> Catalog:
    """The catalog with, by resource type name, the attribute paths that get index rows (a type
    left out keeps all). `strict`: a path naming nothing is a SchemaDefinitionError; else it is
    left out (an extension this catalog does not accept)."""
    types = dict(catalog.resource_types)
    for name, paths in indexed.items():
        if name in types:
            types[name] = replace(types[name], indexed=index_paths(types[name], paths, strict=strict))
    return replace(catalog, resource_types=types)


def index_paths(resource_type: ResourceType, paths: Iterable[str], *, strict: bool = True) -> frozenset[str]:
    """The index paths (index.py's form) of attribute paths as a filter names them."""
    keys = set()
    for text in paths:
        try:
            resolved = resource_type.resolve(parse_attr_path(text))
        except ScimError:
            resolved = None
        if resolved is None or resolved.attribute is None:
            if strict:
                raise SchemaDefinitionError(f"{resource_type.name} has no attribute {text!r}")
            continue
        prefix = resolved.extension_urn.lower() + ":" if resolved.extension_urn else ""
        key = prefix + resolved.attribute.name.lower()
        keys.add(key if resolved.sub is None else f"{key}.{resolved.sub.name.lower()}")
    return frozenset(keys)
