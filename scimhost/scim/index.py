"""The attribute index rows of a stored document (what filters run against), and the
fingerprint of the configuration they were computed under."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from scimhost.scim.filter import invalid_filter
from scimhost.scim.schema import Attribute, Schema

if TYPE_CHECKING:
    from scimhost.scim.resource_types import ResourceType

# The version of the rules below: raise it whenever `index_entries` would compute different
# rows for the same document and configuration, so that every stored resource counts as stale.
INDEX_FORMAT = 1


@dataclass(frozen=True, slots=True)
class IndexEntry:
    path: str
    item: int  # which value of a multi-valued attribute (0 for single-valued ones)
    text: str | None
    number: float | None


def index_entries(document: dict[str, Any], resource_type: ResourceType) -> list[IndexEntry]:
    """The attribute index rows of a stored document (what filters run against)."""
    entries: list[IndexEntry] = []
    _add_schema_entries(entries, document, resource_type.schema.attributes.values(), "", resource_type)
    external_id = document.get("externalId")
    if isinstance(external_id, str) and resource_type.indexes("externalid"):
        entries.append(IndexEntry("externalid", 0, external_id, None))
    for extension, _ in resource_type.extensions:
        part = document.get(extension.id)
        if isinstance(part, dict):
            _add_schema_entries(entries, part, extension.attributes.values(), extension.id.lower() + ":", resource_type)
    return entries


def index_difference(
    previous: dict[str, Any], document: dict[str, Any], resource_type: ResourceType
) -> tuple[tuple[IndexEntry, ...], tuple[IndexEntry, ...]]:
    """The index rows to remove and to add to go from `previous`'s rows to `document`'s, from
    the top-level attributes that differ (the others give the same rows)."""
    changed = {key for key in previous.keys() | document.keys() if previous.get(key) != document.get(key)}
    before = index_entries({key: previous[key] for key in changed if key in previous}, resource_type)
    after = index_entries({key: document[key] for key in changed if key in document}, resource_type)
    kept = set(before) & set(after)
    return tuple(e for e in before if e not in kept), tuple(e for e in after if e not in kept)


def _add_schema_entries(
    entries: list[IndexEntry],
    container: dict[str, Any],
    attributes: Iterable[Attribute],
    prefix: str,
    resource_type: ResourceType,
) -> None:
    for attribute in attributes:
        value = container.get(attribute.name)
        if value is None or attribute.returned == "never" or attribute.mutability == "writeOnly":
            continue
        key = prefix + attribute.name.lower()
        values = value if attribute.multi_valued and isinstance(value, list) else [value]
        if attribute.type == "complex":
            subs = [(sub, f"{key}.{sub.name.lower()}") for sub in attribute.sub_attributes.values()]
            subs = [(sub, path) for sub, path in subs if resource_type.indexes(path)]
            for item, single in enumerate(values):
                if isinstance(single, dict):
                    for sub, path in subs:
                        sub_value = single.get(sub.name)
                        if sub_value is not None:
                            entries.append(_entry(path, item, sub, sub_value))
        elif resource_type.indexes(key):
            for item, single in enumerate(values):
                entries.append(_entry(key, item, attribute, single))


def _entry(path: str, item: int, attribute: Attribute, value: Any) -> IndexEntry:
    if attribute.type in ("integer", "decimal") and isinstance(value, (int, float)) and not isinstance(value, bool):
        return IndexEntry(path, item, None, float(value))
    return IndexEntry(path, item, normalise_text(attribute, value), None)


def unique_values(document: dict[str, Any], resource_type: ResourceType) -> dict[str, str]:
    """Normalised values of the single-valued `uniqueness: server/global` attributes, keyed
    by attribute name (URN-qualified for extension attributes)."""
    values = {}
    schemas = [(resource_type.schema, document, "")]
    schemas += [(ext, document.get(ext.id) or {}, ext.id + ":") for ext, _ in resource_type.extensions]
    for schema, container, prefix in schemas:
        for attribute in schema.attributes.values():
            if attribute.uniqueness == "none" or attribute.multi_valued or attribute.type == "complex":
                continue
            value = container.get(attribute.name)
            if isinstance(value, bool) or value is None:
                continue
            text = value if isinstance(value, str) else str(value)
            values[prefix + attribute.name] = text if attribute.case_exact else text.lower()
    return values


def index_fingerprint(resource_type: ResourceType) -> str:
    """A short digest of everything `index_entries` depends on besides the document: the rules'
    version, the schemas and extensions (each attribute's characteristics) and the indexed set.
    Rows stored under another fingerprint may differ from what the document gives now."""
    schemas = [resource_type.schema, *(schema for schema, _ in resource_type.extensions)]
    shape = {
        "format": INDEX_FORMAT,
        "schemas": [[schema.id, [_shape(a) for a in schema.attributes.values()]] for schema in schemas],
        "indexed": None if resource_type.indexed is None else sorted(resource_type.indexed),
    }
    return hashlib.sha256(orjson.dumps(shape)).hexdigest()[:16]


def _shape(attribute: Attribute) -> list[Any]:
    """An attribute's characteristics that decide its index rows and unique value."""
    return [
        attribute.name,
        attribute.type,
        attribute.multi_valued,
        attribute.case_exact,
        attribute.mutability,
        attribute.returned,
        attribute.uniqueness,
        [_shape(sub) for sub in attribute.sub_attributes.values()],
    ]


def indexable_paths(resource_type: ResourceType) -> list[str]:
    """Every index path the type's schemas can give rows for (complex attributes by their
    sub-attributes)."""
    paths = ["externalid"]
    schemas: list[tuple[Schema, str]] = [(resource_type.schema, "")]
    schemas += [(schema, schema.id.lower() + ":") for schema, _ in resource_type.extensions]
    for schema, prefix in schemas:
        for attribute in schema.attributes.values():
            key = prefix + attribute.name.lower()
            if attribute.type == "complex":
                paths += [f"{key}.{sub.name.lower()}" for sub in attribute.sub_attributes.values()]
            else:
                paths.append(key)
    return paths


def normalise_text(attribute: Attribute, value: Any) -> str:
    """The text form of a value in the index and in comparisons."""
    if attribute.type == "boolean":
        if isinstance(value, str):
            return "true" if value.lower() == "true" else "false"
        return "true" if value else "false"
    if attribute.type == "dateTime":
        return normalise_datetime(value)
    text = value if isinstance(value, str) else str(value)
    return text if attribute.case_exact else text.lower()


def normalise_datetime(value: Any) -> str:
    """A dateTime as UTC text with microseconds, so text order is time order."""
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        # (In UTC, 0001-01-01T00:00:00-01:00 falls before the first representable moment.)
        # isoformat, not strftime("%Y"), which writes the year 1 as "1", out of text order.
        return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    except (ValueError, OverflowError):
        raise invalid_filter(f"{value!r} is not a dateTime this server can compare") from None
