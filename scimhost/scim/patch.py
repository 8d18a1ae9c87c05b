"""The PATCH engine (RFC 7644 §3.5.2): a PatchOp applied to a resource document, purely.

`apply_patch` returns the new document and, for an attribute kept as rows (Group `members`),
the ordered membership operations, so that adding one member to a huge group never reads or
rewrites the others. All operations apply to a copy: if one fails, the caller stores nothing.

Tolerated (what real clients send; docs/clients.md): `op` in any case; path-less add/replace whose keys are plain, dotted
(`name.givenName`) or URN-qualified (`urn:...:User:employeeNumber`); a value-path
add/replace that matches nothing creates the entry from the filter's `eq` terms
(`emails[type eq "work"].value`); member removal by value filter and by value list; path-less
keys naming readOnly attributes (`id`, `meta`, `schemas`) ignored; a readOnly path whose value
does not change is a no-op.

RFC 7644 §3.5.2.3: `replace` (like `add`) of a single complex attribute or an extension object
changes the sub-attributes given and leaves the others as they are.

With `keep_unknown` (the source keeps attributes no schema declares), a path-less key or a
`path` that names no declared attribute names a kept top-level key, and `KEY:sub` a
sub-attribute of a kept object (`urn:...:CustomExtension:2.0:User:costCenter`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from scimhost.scim.errors import ScimError
from scimhost.scim.evaluate import match_value
from scimhost.scim.filter import And, AttrPath, Compare, Node, Or, PatchPath, parse_attr_path, parse_path
from scimhost.scim.names import is_attribute_name, is_kept_key, is_schema_urn, is_sub_attribute_name
from scimhost.scim.resource_types import Resolved, ResourceType
from scimhost.scim.schema import Attribute
from scimhost.scim.validation import is_undeclared

PATCH_OP_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
MAX_OPERATIONS = 1000


@dataclass(frozen=True)
class MemberOp:
    """One change to a row-stored attribute, applied in order: add or remove these values, or
    make the set exactly these values (`set`, which an empty list clears)."""

    kind: Literal["add", "remove", "set"]
    values: tuple[dict[str, Any], ...]


@dataclass
class PatchResult:
    document: dict[str, Any]
    member_ops: list[MemberOp] = field(default_factory=list)


def invalid_path(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidPath")


def invalid_value(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidValue")


def no_target(detail: str) -> ScimError:
    return ScimError(400, detail, "noTarget")


def mutability(detail: str) -> ScimError:
    return ScimError(400, detail, "mutability")


def parse_patch_request(body: Any, *, max_operations: int = MAX_OPERATIONS) -> list[dict[str, Any]]:
    """The operations of a PatchOp body, each as {"op", "path", "value"} with `op` lower-cased."""
    if not isinstance(body, dict):
        raise ScimError(400, "The request body must be a PatchOp JSON object", "invalidSyntax")
    schemas = body.get("schemas")
    if schemas is not None and (not isinstance(schemas, list) or PATCH_OP_SCHEMA not in schemas):
        raise ScimError(400, f"'schemas' must contain {PATCH_OP_SCHEMA}", "invalidSyntax")
    operations = next((v for k, v in body.items() if k.lower() == "operations"), None)
    if not isinstance(operations, list) or not operations:
        raise ScimError(400, "'Operations' must be a non-empty array", "invalidSyntax")
    if len(operations) > max_operations:
        raise ScimError(413, f"The PATCH has {len(operations)} operations; at most {max_operations} are accepted")
    parsed = []
    for index, operation in enumerate(operations):
        if not isinstance(operation, dict):
            raise ScimError(400, f"Operations[{index}] must be an object", "invalidSyntax")
        fields = {k.lower(): v for k, v in operation.items()}
        op = fields.get("op")
        if not isinstance(op, str) or op.lower() not in ("add", "replace", "remove"):
            raise ScimError(400, f"Operations[{index}].op must be add, replace or remove", "invalidSyntax")
        path = fields.get("path")
        if path is not None and not isinstance(path, str):
            raise invalid_path(f"Operations[{index}].path must be a string")
        if path is not None and not path.strip():
            path = None
        if op.lower() != "remove" and "value" not in fields:
            raise invalid_value(f"Operations[{index}]: '{op}' needs a value")
        parsed.append({"op": op.lower(), "path": path, "value": fields.get("value")})
    return parsed


def _copy(document: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of a JSON document; a JSON round trip is several times faster than deepcopy."""
    try:
        copied: dict[str, Any] = orjson.loads(orjson.dumps(document))
        return copied
    except (TypeError, orjson.JSONEncodeError):  # not JSON-shaped (a huge integer, say)
        return copy.deepcopy(document)


def apply_patch(
    document: dict[str, Any],
    operations: list[dict[str, Any]],
    resource_type: ResourceType,
    *,
    members_attribute: str | None = None,
    keep_unknown: bool = False,
) -> PatchResult:
    """Apply parsed operations to a copy of `document` (the stored form, without `meta`).

    `members_attribute` names the attribute kept as rows (Group `members`): its changes come back
    as `member_ops` instead of being written into the document. `keep_unknown`: paths and keys
    naming no declared attribute change kept top-level keys (else they are errors or ignored).
    """
    engine = _Engine(_copy(document), resource_type, members_attribute, keep_unknown)
    for index, operation in enumerate(operations):
        try:
            engine.apply(operation["op"], operation["path"], operation["value"])
        except ScimError as exc:
            exc.detail = f"Operations[{index}]: {exc.detail}"
            raise
    return PatchResult(engine.doc, engine.member_ops)


class _Engine:
    def __init__(
        self,
        doc: dict[str, Any],
        resource_type: ResourceType,
        members_attribute: str | None,
        keep_unknown: bool = False,
    ) -> None:
        self.doc = doc
        self.type = resource_type
        self.members_attribute = members_attribute.lower() if members_attribute else None
        self.keep_unknown = keep_unknown
        self.member_ops: list[MemberOp] = []

    def apply(self, op: str, path: str | None, value: Any) -> None:
        if path is None:
            if op == "remove":
                raise no_target("'remove' needs a path")
            if not isinstance(value, dict):
                raise invalid_value(f"'{op}' without a path needs an object value")
            for key, item in value.items():
                self.apply_key(op, key, item)
            return
        if self.keep_unknown and self.apply_kept(op, path, value):
            return
        parsed = parse_path(path)
        resolved = self.resolve(parsed.attr)
        if resolved.attribute is None:  # the whole extension object
            self.apply_extension(op, resolved, value, parsed)
            return
        if self.is_row(resolved):
            self.apply_members(op, parsed, value)
            return
        if parsed.filter is not None:
            self.apply_filtered(op, resolved, parsed, value)
        else:
            self.apply_plain(op, resolved, value)

    # --- path-less keys --------------------------------------------------------------------------

    def apply_key(self, op: str, key: str, value: Any) -> None:
        """One key of a path-less add/replace: plain, dotted, URN-qualified or an extension URN."""
        extension = self.type.extension(key)
        if extension is not None:
            self.apply_extension(op, Resolved(extension, None, is_extension=True), value, None, pathless=True)
            return
        try:
            attr_path = parse_attr_path(key, invalid_path)
        except ScimError:
            attr_path = None
        resolved = self.type.resolve(attr_path) if attr_path is not None else None
        if attr_path is None or resolved is None or resolved.attribute is None:
            if self.keep_unknown and is_undeclared(key, self.type):
                if is_kept_key(key) or _is_attr_path(key):
                    self.apply_kept(op, key, value)
                else:  # not a name: validation refuses it (or drops it) as in a POST body
                    self.doc[key] = value
            return  # else unknown attributes are ignored, as in a POST body
        if self.target(resolved).mutability == "readOnly" or resolved.attribute.mutability == "readOnly":
            return  # Okta sends id (and Entra meta) back in path-less replaces
        if self.is_row(resolved):
            self.apply_members(op, PatchPath(attr_path), value)
            return
        self.apply_plain(op, resolved, value)

    def apply_extension(
        self, op: str, resolved: Resolved, value: Any, parsed: PatchPath | None, pathless: bool = False
    ) -> None:
        schema = resolved.schema
        assert schema is not None, "an extension path has its schema"
        urn = schema.id
        if parsed is not None and parsed.filter is not None:
            raise invalid_path(f"'{urn}' is a schema, not a multi-valued attribute")
        if op == "remove":
            if urn not in self.doc:
                raise no_target(f"'{urn}' has no value")
            del self.doc[urn]
            return
        if value is None:
            return
        if not isinstance(value, dict):
            raise invalid_value(f"the value for '{urn}' must be an object")
        for key, item in value.items():
            attribute = schema.attribute(key)
            if attribute is None:
                continue
            inner = Resolved(schema, attribute, None, True)
            if attribute.mutability == "readOnly":
                continue
            self.apply_plain(op, inner, item)

    # --- plain attribute paths -------------------------------------------------------------------

    def apply_plain(self, op: str, resolved: Resolved, value: Any) -> None:
        attribute, sub = _attribute(resolved), resolved.sub
        container = self.container(resolved, create=(op != "remove"))
        if self.unchanged_read_only(resolved, container, value, op):
            return
        name = attribute.name
        if sub is not None:
            if attribute.multi_valued:
                # emails.value: every value of the attribute (RFC 7644 §3.5.2, no filter given)
                items = container.get(name) if container is not None else None
                if not items:
                    if op == "remove":
                        raise no_target(f"'{attribute.name}' has no value")
                    raise no_target(f"'{attribute.name}' has no values to set '{sub.name}' on")
                for item in items:
                    self.set_sub(item, sub, op, value)
                return
            if op == "remove":
                current = container.get(name) if container is not None else None
                if isinstance(current, dict):
                    current.pop(sub.name, None)
                    if not current:
                        container.pop(name, None)
                self.drop_empty_extension(resolved)
                return
            current = container.setdefault(name, {})
            if not isinstance(current, dict):
                current = container[name] = {}
            self.set_sub(current, sub, op, value)
            return
        if op == "remove":
            if container is not None and name in container:
                if attribute.multi_valued and isinstance(value, list) and value:
                    container[name] = [i for i in container[name] if not _listed(i, value)]
                    if not container[name]:
                        del container[name]
                else:
                    del container[name]
            self.drop_empty_extension(resolved)
            return
        if value is None:
            return
        if attribute.multi_valued:
            values = value if isinstance(value, list) else [value]
            if op == "replace":
                container[name] = values
            else:
                existing = container.get(name) or []
                if not isinstance(existing, list):
                    existing = [existing]
                for item in values:
                    if item not in existing:
                        if isinstance(item, dict) and item.get("primary") in (True, "true", "True"):
                            for other in existing:
                                if isinstance(other, dict):
                                    other.pop("primary", None)
                        existing.append(item)
                container[name] = existing
            return
        if attribute.type == "complex" and isinstance(value, dict):
            # add and replace alike: the sub-attributes given change, the others stay
            current = container.get(name)
            if isinstance(current, dict):
                current.update(value)
                return
        container[name] = value

    def set_sub(self, item: Any, sub: Attribute, op: str, value: Any) -> None:
        if not isinstance(item, dict):
            return
        if sub.mutability == "readOnly":
            if op == "remove" or item.get(sub.name) != value:
                raise mutability(f"'{sub.name}' is readOnly")
            return
        if op == "remove" or value is None:
            item.pop(sub.name, None)
        else:
            item[sub.name] = value

    # --- value filters ---------------------------------------------------------------------------

    def apply_filtered(self, op: str, resolved: Resolved, parsed: PatchPath, value: Any) -> None:
        attribute, node = _attribute(resolved), parsed.filter
        assert node is not None, "only a path with a value filter comes here"
        if not attribute.multi_valued or resolved.sub is not None:
            raise invalid_path(f"'{parsed.attr}' is not a multi-valued attribute")
        sub = attribute.sub(parsed.sub) if parsed.sub else None
        if parsed.sub and sub is None:
            raise invalid_path(f"'{attribute.name}' has no sub-attribute '{parsed.sub}'")
        if attribute.mutability == "readOnly" or (sub is not None and sub.mutability == "readOnly"):
            raise mutability(f"'{attribute.name}' is readOnly")
        container = self.container(resolved, create=(op != "remove"))
        items = (container or {}).get(attribute.name) or []
        matched = [item for item in items if match_value(node, item, attribute)]
        if op == "remove":
            if not matched:
                raise no_target(f"no value of '{attribute.name}' matches the filter")
            if sub is not None:
                for item in matched:
                    item.pop(sub.name, None)
            else:
                container[attribute.name] = [i for i in items if not any(i is m for m in matched)]
                if not container[attribute.name]:
                    del container[attribute.name]
                self.drop_empty_extension(resolved)
            return
        if not matched:
            # Entra: add/replace emails[type eq "work"].value creates the work email.
            created = _entry_from_filter(node, attribute)
            if created is None:
                raise no_target(f"no value of '{attribute.name}' matches the filter")
            container.setdefault(attribute.name, []).append(created)
            matched = [created]
        for item in matched:
            if sub is not None:
                item[sub.name] = value
            elif isinstance(value, dict):
                if op == "replace":
                    item.clear()
                item.update(value)
            else:
                raise invalid_value(f"the value for '{parsed.attr}[...]' must be an object")

    # --- row-stored members --------------------------------------------------------------------

    def apply_members(self, op: str, parsed: PatchPath, value: Any) -> None:
        if parsed.sub is not None or parsed.attr.sub is not None:
            raise invalid_path("members can only be added, replaced or removed as a whole")
        if parsed.filter is not None:
            if op != "remove":
                raise invalid_path("a filtered members path can only be removed")
            ids = _member_ids_from_filter(parsed.filter)
            if ids is None:
                raise invalid_path('members can be selected by value only, as members[value eq "id"]')
            self.member_ops.append(MemberOp("remove", tuple({"value": i} for i in ids)))
            return
        if op == "remove":
            if value is None:
                self.member_ops.append(MemberOp("set", ()))
            else:
                self.member_ops.append(MemberOp("remove", _member_values(value)))
            return
        values = _member_values(value)
        self.member_ops.append(MemberOp("set" if op == "replace" else "add", values))

    # --- kept (undeclared) attributes ------------------------------------------------------------

    def apply_kept(self, op: str, path: str, value: Any) -> bool:
        """Apply an operation to a kept key if `path` names no declared attribute (`kept_chain`);
        False when the path is a declared one's."""
        path = path.strip()
        if "[" in path or not is_undeclared(path, self.type):
            return False
        chain = self.kept_chain(path)
        top = self.kept_key(chain[0]) or chain[0]
        container, parents = self.doc, []
        for depth, key in enumerate(chain[:-1]):
            name = top if depth == 0 else _key_in(container, key)
            child = container.get(name)
            if child is None:
                if op == "remove":
                    raise no_target(f"'{path}' has no value")
                child = container[name] = {}
            elif not isinstance(child, dict):
                raise invalid_path(f"'{path}': '{name}' has no sub-attributes")
            parents.append((container, name))
            container = child
        last = top if len(chain) == 1 else _key_in(container, chain[-1])
        self.set_kept(container, last, op, value)
        for parent, name in reversed(parents):  # a kept object left empty goes with its last value
            if not parent[name]:
                del parent[name]
        return True

    def kept_chain(self, path: str) -> list[str]:
        """The keys from the document down to what a kept path names: `key` or `key.sub`; a URN
        (a kept object, or a URN-qualified key); `URN:attr` inside the kept object of that URN;
        `URN:attr.sub`. 400 invalidPath for a path that is not an attribute path (RFC 7644
        §3.10: `../../id`, `a b`), or goes more than one sub-attribute deep (`x.y.z`)."""
        if is_schema_urn(path) and (self.kept_key(path) is not None or not _is_attr_path(path)):
            return [path]
        parsed = parse_attr_path(path, invalid_path)
        if parsed.urn is None:
            if not is_attribute_name(parsed.attr):
                raise invalid_path(f"{path!r} is not an attribute path")
            chain = [parsed.attr]
        else:
            base, parent = f"{parsed.urn}:{parsed.attr}", self.kept_key(parsed.urn)
            if self.kept_key(base) is None and parent is not None and isinstance(self.doc[parent], dict):
                chain = [parent, parsed.attr]
            else:
                chain = [base]
        if parsed.sub is not None:
            if not is_sub_attribute_name(parsed.sub):
                raise invalid_path(f"{path!r} is not an attribute path")
            chain.append(parsed.sub)
        return chain

    def kept_key(self, path: str) -> str | None:
        """The top-level key of the document that `path` names (any case), unless declared."""
        lowered = path.lower()
        for key in self.doc:
            if key.lower() == lowered and is_undeclared(key, self.type):
                return key
        return None

    @staticmethod
    def set_kept(container: dict[str, Any], key: str, op: str, value: Any) -> None:
        if op == "remove":
            if key not in container:
                raise no_target(f"'{key}' has no value")
            del container[key]
        elif value is None:
            container.pop(key, None)
        elif isinstance(value, dict) and isinstance(container.get(key), dict):
            container[key] = {**container[key], **value}  # like a complex attribute: merge
        elif op == "add" and isinstance(value, list) and isinstance(container.get(key), list):
            container[key] = container[key] + [v for v in value if v not in container[key]]
        else:
            container[key] = value

    # --- helpers ---------------------------------------------------------------------------------

    def resolve(self, attr_path: AttrPath) -> Resolved:
        resolved = self.type.resolve(attr_path)
        if resolved is None:
            raise invalid_path(f"'{attr_path}' is not an attribute of {self.type.name}")
        return resolved

    def is_row(self, resolved: Resolved) -> bool:
        return (
            self.members_attribute is not None
            and not resolved.is_extension
            and resolved.attribute is not None
            and resolved.attribute.name.lower() == self.members_attribute
        )

    def target(self, resolved: Resolved) -> Attribute:
        return resolved.sub or _attribute(resolved)

    def container(self, resolved: Resolved, create: bool) -> dict[str, Any]:
        """The object holding the attribute: the document, or its extension's object (added to
        the document when absent and `create`; else an empty object outside the document)."""
        urn = resolved.extension_urn
        if urn is None:
            return self.doc
        if urn not in self.doc:
            if not create:
                return {}
            self.doc[urn] = {}
        return self.doc[urn]  # type: ignore[no-any-return]

    def drop_empty_extension(self, resolved: Resolved) -> None:
        urn = resolved.extension_urn
        if urn is not None and self.doc.get(urn) == {}:
            del self.doc[urn]

    def unchanged_read_only(self, resolved: Resolved, container: dict[str, Any], value: Any, op: str) -> bool:
        """True for a readOnly attribute "set" to its own value (Okta echoes `id`): no change.
        Raises for any real change of a readOnly attribute."""
        for attribute in (resolved.attribute, resolved.sub):
            if attribute is None or attribute.mutability != "readOnly":
                continue
            if op != "remove" and _current(container, resolved) == value:
                return True
            raise mutability(f"'{attribute.name}' is readOnly")
        return False


def _attribute(resolved: Resolved) -> Attribute:
    """The attribute a path resolved to (callers have ruled out a whole-extension path)."""
    assert resolved.attribute is not None, "a whole extension has no attribute"
    return resolved.attribute


def _current(container: dict[str, Any], resolved: Resolved) -> Any:
    value = container.get(_attribute(resolved).name)
    if resolved.sub is not None and isinstance(value, dict):
        return value.get(resolved.sub.name)
    return value


def _listed(item: Any, listed: list[Any]) -> bool:
    """Whether a value is among those listed for removal (by `value` for complex values)."""
    for candidate in listed:
        if isinstance(item, dict) and isinstance(candidate, dict) and "value" in candidate:
            if item.get("value") == candidate.get("value"):
                return True
        elif item == candidate:
            return True
    return False


def _entry_from_filter(node: Node, attribute: Attribute) -> dict[str, Any] | None:
    """The value an unmatched `attr[sub eq "x" and ...]` describes, or None if it describes none."""
    terms = node.terms if isinstance(node, And) else (node,)
    entry: dict[str, Any] = {}
    for term in terms:
        if not isinstance(term, Compare) or term.op != "eq" or term.path.urn or term.path.sub:
            return None
        sub = attribute.sub(term.path.attr)
        if sub is None:
            return None
        entry[sub.name] = term.value
    return entry


def _member_ids_from_filter(node: Node) -> list[str] | None:
    """The ids of `value eq "a"` or `value eq "a" or value eq "b"`; None for any other filter."""
    terms = node.terms if isinstance(node, Or) else (node,)
    ids = []
    for term in terms:
        if (
            not isinstance(term, Compare)
            or term.op != "eq"
            or term.path.attr.lower() != "value"
            or term.path.urn
            or term.path.sub
            or not isinstance(term.value, str)
        ):
            return None
        ids.append(term.value)
    return ids


def _member_values(value: Any) -> tuple[dict[str, Any], ...]:
    values = value if isinstance(value, list) else [value]
    result = []
    for index, item in enumerate(values):
        if isinstance(item, str):
            item = {"value": item}
        if not isinstance(item, dict) or not isinstance(item.get("value"), str) or not item["value"]:
            raise invalid_value(f"members[{index}] must be an object with a string 'value'")
        result.append(item)
    return tuple(result)


def _key_in(container: dict[str, Any], name: str) -> str:
    """The key of `container` that `name` names in any case (attribute names are
    case-insensitive), or `name` itself when there is none."""
    lowered = name.lower()
    return next((key for key in container if key.lower() == lowered), name)


def _is_attr_path(text: str) -> bool:
    try:
        parse_attr_path(text, invalid_path)
    except ScimError:
        return False
    return True
