"""Resources as clients see them: `id`, `meta` and derived attributes added, then projected by
`attributes` / `excludedAttributes` with `returned` semantics (RFC 7644 §3.4.2.5, RFC 7643 §7)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

from scimhost.scim.filter import parse_attr_path
from scimhost.scim.resource_types import ResourceType
from scimhost.scim.schema import Attribute, Schema

LIST_RESPONSE_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


def etag(version: int) -> str:
    """The weak ETag of a resource version (RFC 7644 §3.14)."""
    return f'W/"{version}"'


def timestamp(moment: datetime) -> str:
    """An xsd:dateTime in UTC with millisecond precision."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"  # drop "+00:00"


def resource_document(
    resource_type: ResourceType,
    resource_id: str,
    document: dict[str, Any],
    *,
    version: int,
    created: datetime,
    last_modified: datetime,
    location: str,
    members: list[dict[str, Any]] | None = None,
    groups: list[dict[str, Any]] | None = None,
    base_url: str = "",
) -> dict[str, Any]:
    """The full resource: stored document plus id, meta and row-derived attributes."""
    doc: dict[str, Any] = {"schemas": document.get("schemas", [resource_type.schema.id]), "id": resource_id}
    for key, value in document.items():
        if key != "schemas":
            doc[key] = value
    if members is not None:
        doc["members"] = [member_reference(m, base_url) for m in members]
    if groups is not None:
        doc["groups"] = [{**g, "$ref": f"{base_url}/Groups/{g['value']}", "type": "direct"} for g in groups]
    doc["meta"] = {
        "resourceType": resource_type.name,
        "created": timestamp(created),
        "lastModified": timestamp(last_modified),
        "location": location,
        "version": etag(version),
    }
    return doc


def member_reference(member: dict[str, Any], base_url: str) -> dict[str, Any]:
    """A `members` value with its `$ref` to the member's resource."""
    kind = "Groups" if member.get("type") == "Group" else "Users"
    return {**member, "$ref": f"{base_url}/{kind}/{member['value']}"}


def parse_attribute_list(value: str | Iterable[str] | None) -> list[str] | None:
    """`attributes` / `excludedAttributes` as a list of paths (comma-separated in a query)."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    paths = [item.strip() for item in items if isinstance(item, str) and item.strip()]
    return paths or None


class Projection:
    """Which attributes a response carries, from `attributes` and `excludedAttributes`."""

    def __init__(self, resource_type: ResourceType, attributes: list[str] | None, excluded: list[str] | None) -> None:
        self.type = resource_type
        self.attributes = self._requests(attributes) if attributes else None
        self.excluded = self._requests(excluded) if excluded else {}
        # Kept attributes no schema declares are selected by their exact key (any case).
        self._named = {a.strip().lower() for a in attributes or ()}
        self._excluded_names = {a.strip().lower() for a in excluded or ()}

    def _requests(self, paths: list[str]) -> dict[tuple[str | None, str], set[str] | None]:
        """(schema id or None for core/common, attribute lower) -> sub-attributes (None: whole)."""
        requests: dict[tuple[str | None, str], set[str] | None] = {}
        for text in paths:
            try:
                path = parse_attr_path(text)
            except Exception:
                continue  # an unparsable name selects nothing
            resolved = self.type.resolve(path)
            if resolved is None:
                continue
            if resolved.attribute is None:  # a whole extension
                assert resolved.schema is not None
                requests[(resolved.schema.id, "*")] = None
                continue
            key = (resolved.extension_urn, resolved.attribute.name.lower())
            if resolved.sub is None:
                requests[key] = None
            elif key not in requests or requests[key] is not None:
                requests[key] = {*(requests.get(key) or ()), resolved.sub.name.lower()}
        return requests

    def wants_attribute(self, name: str) -> bool:
        """Whether a response will show core attribute `name` at all (reads skip loading it)."""
        attribute = self.type.top_level(name)
        if attribute is None:
            return True
        return self._selection(attribute, None) is not False

    def select_values(self, name: str, values: list[Any]) -> list[Any]:
        """Values of the core multi-valued attribute `name`, projected like `apply` would."""
        attribute = self.type.top_level(name)
        return self._select(attribute, values, None) if attribute is not None else values

    def apply(self, doc: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in doc.items():
            if key == "schemas":
                result[key] = value
                continue
            attribute = self.type.top_level(key)
            if attribute is not None:
                selected = self._select(attribute, value, None)
                if selected is not None:
                    result[key] = selected
                continue
            extension = self.type.extension(key)
            if extension is not None:
                if isinstance(value, dict):
                    part = self._select_extension(extension, value)
                    if part:
                        result[key] = part
                continue
            # A kept attribute no schema declares: returned by default, like a declared one.
            lowered = key.lower()
            wanted = lowered in self._named if self.attributes is not None else lowered not in self._excluded_names
            if wanted:
                result[key] = value
        return result

    def _select_extension(self, extension: Schema, value: dict[str, Any]) -> dict[str, Any]:
        whole = self.attributes is not None and (extension.id, "*") in self.attributes
        excluded_whole = (extension.id, "*") in self.excluded
        part = {}
        for name, item in value.items():
            attribute = extension.attribute(name)
            if attribute is None:
                continue
            if whole and attribute.returned not in ("never", "request"):
                part[name] = item
                continue
            if excluded_whole and attribute.returned != "always":
                continue
            selected = self._select(attribute, item, extension.id)
            if selected is not None:
                part[name] = selected
        return part

    def _selection(self, attribute: Attribute, schema_id: str | None) -> set[str] | None | Literal[False]:
        """False: leave out; None: the whole value; a set: only these sub-attributes."""
        if attribute.returned == "never":
            return False
        if attribute.returned == "always":
            return None
        key = (schema_id, attribute.name.lower())
        if self.attributes is not None:
            if key not in self.attributes:
                return False
            return self.attributes[key]
        if attribute.returned == "request":
            return False
        if key in self.excluded:
            excluded = self.excluded[key]
            return False if excluded is None else {"-" + s for s in excluded}
        return None

    def _select(self, attribute: Attribute, value: Any, schema_id: str | None) -> Any:
        selection = self._selection(attribute, schema_id)
        if selection is False:
            return None
        if attribute.type != "complex":
            return value
        return _filter_subs(attribute, value, selection)


def _filter_subs(attribute: Attribute, value: Any, selection: set[str] | None) -> Any:
    never = {name for name, sub in attribute.sub_attributes.items() if sub.returned == "never"}
    if selection is None and not never:
        return value  # the common case: nothing to take out
    excluded = {s[1:] for s in selection if s.startswith("-")} if selection else set()
    included = {s for s in selection if not s.startswith("-")} if selection else set()

    def pick(item: Any) -> Any:
        if not isinstance(item, dict):
            return item
        kept = {}
        for name, sub_value in item.items():
            lowered = name.lower()
            if lowered in never:
                continue
            if (lowered in excluded or (included and lowered not in included)) and (
                (sub := attribute.sub_attributes.get(lowered)) is None or sub.returned != "always"
            ):
                continue
            kept[name] = sub_value
        return kept

    if isinstance(value, list):
        return [pick(item) for item in value]
    return pick(value)
