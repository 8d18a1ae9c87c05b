"""scimhost storage backend `ldap`: Users and Groups as entries of an LDAP directory (the
resource store role; accounts and events stay in the built-in store)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import uuid
import weakref
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

import ldap
import orjson
from ldap.controls.libldap import AssertionControl, MatchedValuesControl
from ldap.controls.readentry import PostReadControl
from ldap.controls.sss import SSSRequestControl
from ldap.controls.vlv import VLVRequestControl
from ldap.filter import escape_filter_chars

from scimhost.scim.errors import ScimError
from scimhost.scim.query import ResourceQuery
from scimhost.storage.backend import (
    EventDraft,
    MemberChange,
    ResourceNotFound,
    ResourcePage,
    ResourceStore,
    ResourceWrite,
    StorageError,
    StoredResource,
    UniquenessConflict,
    UnknownMembers,
    VersionMismatch,
)
from scimhost_ldap.connection import Answer, Pool
from scimhost_ldap.entries import (
    CREATED,
    DOCUMENT,
    OWN_CLASS,
    READ_ATTRIBUTES,
    RECORD,
    VERSION,
    generalized_time,
    mapped_values,
    now_ms,
    own_values,
    stored,
)
from scimhost_ldap.filters import TRUE, FilterTranslator
from scimhost_ldap.settings import GROUP_ATTRIBUTES, USER_ATTRIBUTES, LdapSettings
from scimhost_ldap.transaction import in_transaction
from scimhost_ldap.tree import NAMING, Tree

log = logging.getLogger(__name__)

OBJECT_CLASSES = {"User": [b"inetOrgPerson", OWN_CLASS.encode()], "Group": [b"groupOfNames", OWN_CLASS.encode()]}
SORT_CONTROL, VLV_CONTROL = "1.2.840.113556.1.4.473", "2.16.840.1.113730.3.4.9"
ASSERTION_CONTROL, POST_READ_CONTROL, TXN_EXTENSION = "1.3.6.1.1.12", "1.3.6.1.1.13.2", "1.3.6.1.1.21.1"
# Optimistic retries of a write whose entry changed under it (no If-Match from the client).
RETRIES = 20
# Ids resolved per search.
CHUNK = 200
KEEPER = "ou=scimhost-keep"
MAX_OFFSET = 2**31 - 1


class LdapStore(ResourceStore):
    """Each source's Users and Groups under its own subtree of the directory."""

    name = "ldap"
    settings_type = LdapSettings
    features = frozenset({"sort"})

    def __init__(self, options: LdapSettings, *, base_dir: Any) -> None:
        super().__init__(options, base_dir=base_dir)
        self.settings = options
        self._pool: Pool | None = None
        self._made: set[str] = set()
        self.transactions = False
        # Writes of one resource in this process queue here rather than race on its version
        # (the assertion still decides between processes).
        self._writing: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = weakref.WeakValueDictionary()
        self.attributes = {
            "User": _merged(
                {"username": "uid", "externalid": "scimhostExternalId", **USER_ATTRIBUTES}, options.user_attributes
            ),
            "Group": _merged(
                {"displayname": "cn", "externalid": "scimhostExternalId", **GROUP_ATTRIBUTES}, options.group_attributes
            ),
        }

    # --- lifecycle -------------------------------------------------------------------------------

    async def open(self, *, migrate: bool = True, create: bool = True) -> None:
        password = os.environ.get(self.settings.bind_password_env, "")
        self._pool = Pool(
            self.settings.url,
            self.settings.bind_dn,
            password,
            size=self.settings.pool_size,
            timeout=self.settings.timeout_seconds,
            sorted_per_connection=self.settings.sorted_searches_per_connection,
        )
        root = await self._search("", ldap.SCOPE_BASE, TRUE, ["supportedControl", "supportedExtension"])
        attrs = root[0][1] if root else {}
        controls = {value.decode() for value in attrs.get("supportedControl", [])}
        missing = {SORT_CONTROL, VLV_CONTROL, ASSERTION_CONTROL, POST_READ_CONTROL} - controls
        if missing:
            raise StorageError(f"{self.describe()} lacks the controls {', '.join(sorted(missing))} (sssvlv overlay?)")
        self.transactions = TXN_EXTENSION in {value.decode() for value in attrs.get("supportedExtension", [])}
        problems = await self.pending_migrations()
        if problems:
            raise StorageError(f"{self.describe()}: {'; '.join(problems)}")

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    async def ping(self) -> None:
        await self._search("", ldap.SCOPE_BASE, TRUE, ["1.1"])

    async def pending_migrations(self) -> list[str]:
        """What the directory lacks: scimhost's schema (scimhost.schema, loaded by the operator:
        a store cannot add schema to a directory) and the base entry."""
        problems = []
        subschema = await self._search("cn=Subschema", ldap.SCOPE_BASE, TRUE, ["objectClasses"])
        classes = b" ".join(subschema[0][1].get("objectClasses", [])) if subschema else b""
        if b"'" + OWN_CLASS.encode() + b"'" not in classes:
            problems.append("the scimhost schema is not loaded (scimhost_ldap/scimhost.schema)")
        if not await self._search(self.settings.base_dn, ldap.SCOPE_BASE, TRUE, ["1.1"]):
            problems.append(f"the base entry {self.settings.base_dn} does not exist")
        return problems

    def describe(self) -> str:
        return f"LDAP directory {self.settings.url} under {self.settings.base_dn}"

    # --- the directory -------------------------------------------------------------------------

    @property
    def pool(self) -> Pool:
        if self._pool is None:
            raise StorageError("storage is not open")
        return self._pool

    def tree(self, source: str) -> Tree:
        return Tree.of(self.settings, source)

    async def _search(
        self, base: str, scope: int, filterstr: str, attrs: list[str], controls: list[Any] | None = None
    ) -> list[tuple[str, dict[str, list[bytes]]]]:
        return (await self._search_answer(base, scope, filterstr, attrs, controls)).entries

    async def _search_answer(
        self, base: str, scope: int, filterstr: str, attrs: list[str], controls: list[Any] | None = None
    ) -> Answer:
        try:
            return await self.pool.call(
                lambda raw: raw.search_ext(base, scope, filterstr, attrs, serverctrls=controls or None),
                sorted_search=any(isinstance(c, VLVRequestControl) for c in controls or ()),
            )
        except ldap.NO_SUCH_OBJECT:
            return Answer([], [])
        except ldap.VLV_ERROR:
            raise
        except ldap.LDAPError as exc:
            raise StorageError(f"the directory refused a search: {exc}") from None

    async def _ensure_tree(self, tree: Tree) -> None:
        if tree.base in self._made:
            return
        # Each container also gets a child that is never deleted: OpenLDAP 2.5's back-mdb
        # fails a transaction that deletes a container's last child (MDB_NOTFOUND at commit).
        keepers = [f"{KEEPER},{container}" for container in tree.containers.values()]
        for dn in (tree.base, *tree.containers.values(), *keepers):
            rdn_attribute, value = dn.split(",", 1)[0].split("=", 1)
            entry = [("objectClass", [b"organizationalUnit"]), (rdn_attribute, [value.encode()])]
            try:
                await self.pool.call(functools.partial(_add, dn=dn, entry=entry))
            except ldap.ALREADY_EXISTS:
                pass
        self._made.add(tree.base)

    async def _entry(
        self, tree: Tree, resource_type: str, resource_id: str, attrs: list[str]
    ) -> tuple[str, dict] | None:
        """The entry of the source's resource with that id, if there is one."""
        if not _is_uuid(resource_id):
            return None
        found = await self._search(
            tree.container(resource_type), ldap.SCOPE_ONELEVEL, f"(entryUUID={resource_id})", attrs
        )
        return found[0] if found else None

    async def _dns_of(self, tree: Tree, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """id -> (DN, resource type) of those of `ids` that are the source's Users or Groups."""
        found: dict[str, tuple[str, str]] = {}
        wanted = [i for i in dict.fromkeys(ids) if _is_uuid(i)]
        for start in range(0, len(wanted), CHUNK):
            terms = "".join(f"(entryUUID={i})" for i in wanted[start : start + CHUNK])
            for resource_type in ("User", "Group"):
                for dn, attrs in await self._search(
                    tree.container(resource_type), ldap.SCOPE_ONELEVEL, f"(|{terms})", ["entryUUID"]
                ):
                    found[attrs["entryUUID"][0].decode()] = (dn, resource_type)
        return found

    async def _described(self, tree: Tree, dns: Sequence[str]) -> list[dict[str, Any]]:
        """Members ({"value", "type", "display"}) for these DNs, in their order; DNs of no
        entry of the source (the empty-group placeholder) left out."""
        by_dn: dict[str, dict[str, Any]] = {}
        for resource_type in ("User", "Group"):
            names = [tree.rdn_value(dn) for dn in dns if tree.type_of(dn) == resource_type]
            attribute, _ = NAMING[resource_type]
            for start in range(0, len(names), CHUNK):
                terms = "".join(f"({attribute}={escape_filter_chars(n)})" for n in names[start : start + CHUNK])
                for dn, attrs in await self._search(
                    tree.container(resource_type),
                    ldap.SCOPE_ONELEVEL,
                    f"(|{terms})",
                    ["entryUUID", "displayName", attribute],
                ):
                    display = (attrs.get("displayName") or attrs.get(attribute) or [b""])[0].decode()
                    by_dn[dn.lower()] = {
                        "value": attrs["entryUUID"][0].decode(),
                        "type": resource_type,
                        "display": display,
                    }
        return [by_dn[dn.lower()] for dn in dns if dn.lower() in by_dn]

    async def _groups_of(self, tree: Tree, dn: str) -> list[dict[str, Any]]:
        return (await self._groups_of_each(tree, [dn]))[dn.lower()]

    async def _groups_of_each(self, tree: Tree, dns: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """Lower-cased DN -> the groups naming it, for a page of users in one search per chunk:
        matched values send back only the `member` values asked about, not each group's all."""
        groups: dict[str, list[dict[str, Any]]] = {dn.lower(): [] for dn in dns}
        for start in range(0, len(dns), CHUNK):
            terms = "".join(f"(member={escape_filter_chars(dn)})" for dn in dns[start : start + CHUNK])
            found = await self._search(
                tree.container("Group"),
                ldap.SCOPE_ONELEVEL,
                f"(|{terms})",
                ["entryUUID", "cn", "member"],
                [MatchedValuesControl(True, f"({terms}(entryUUID=*)(cn=*))")],
            )
            for _, attrs in found:
                group = {"value": attrs["entryUUID"][0].decode(), "display": attrs["cn"][0].decode()}
                for member in attrs.get("member", []):
                    groups.setdefault(member.decode().lower(), []).append(group)
        return groups

    async def _member_values(self, dn: str) -> list[str]:
        found = await self._search(dn, ldap.SCOPE_BASE, TRUE, ["member"])
        return [v.decode() for v in found[0][1].get("member", [])] if found else []

    # --- reads -------------------------------------------------------------------------------------

    async def get_resource(
        self, source: str, resource_type: str, resource_id: str, *, members: bool = True, groups: bool = True
    ) -> StoredResource | None:
        if resource_type not in NAMING:
            return None
        tree = self.tree(source)
        attrs = READ_ATTRIBUTES + (["member"] if members and resource_type == "Group" else [])
        entry = await self._entry(tree, resource_type, resource_id, attrs)
        if entry is None:
            return None
        return await self._complete(tree, resource_type, entry, members=members, groups=groups)

    async def _complete(
        self, tree: Tree, resource_type: str, entry: tuple[str, dict], *, members: bool, groups: bool
    ) -> StoredResource:
        dn, attrs = entry
        resource = stored(resource_type, attrs)
        extra: dict[str, Any] = {}
        if members:
            values = [v.decode() for v in attrs.get("member", [])]
            extra["members"] = await self._described(tree, values) if resource_type == "Group" else []
        if groups:
            extra["groups"] = await self._groups_of(tree, dn) if resource_type == "User" else []
        return replace(resource, **extra) if extra else resource

    async def find_by_unique_value(
        self, source: str, resource_type: str, attribute: str, value: str
    ) -> StoredResource | None:
        if resource_type not in NAMING or attribute != NAMING[resource_type][1]:
            return await super().find_by_unique_value(source, resource_type, attribute, value)
        # The name is the entry's RDN: one base read, compared by the directory's own rule
        # (the one that keeps names unique).
        found = await self._search(self.tree(source).dn(resource_type, value), ldap.SCOPE_BASE, TRUE, READ_ATTRIBUTES)
        return stored(resource_type, found[0][1]) if found else None

    async def get_record(self, source: str, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        if resource_type not in NAMING:
            return None
        entry = await self._entry(self.tree(source), resource_type, resource_id, [RECORD])
        if entry is None or not entry[1].get(RECORD):
            return None
        return orjson.loads(entry[1][RECORD][0])

    async def iter_members(
        self, source: str, group_id: str, *, batch: int = 1000
    ) -> AsyncIterator[list[dict[str, Any]]]:
        tree = self.tree(source)
        entry = await self._entry(tree, "Group", group_id, ["member"])
        if entry is None:
            return
        dns = [v.decode() for v in entry[1].get("member", [])]
        for start in range(0, len(dns), batch):
            described = await self._described(tree, dns[start : start + batch])
            if described:
                yield described

    async def count_members(self, source: str, group_id: str) -> int:
        entry = await self._entry(self.tree(source), "Group", group_id, ["member"])
        if entry is None:
            return 0
        return sum(1 for v in entry[1].get("member", []) if v.decode() != self.settings.empty_member)

    async def list_resources(
        self, source: str, resource_type: str, query: ResourceQuery, *, members: bool = True, groups: bool = True
    ) -> ResourcePage:
        if resource_type not in NAMING:
            return ResourcePage(0, [])
        tree = self.tree(source)
        translator = self._translator(tree, resource_type)
        filterstr = await translator.filter(query.filter)
        sort = SSSRequestControl(criticality=True, ordering_rules=translator.sort_keys(query.sort))
        attrs = READ_ATTRIBUTES + (["member"] if members and resource_type == "Group" else [])
        base, search = tree.container(resource_type), f"(&(objectClass={OWN_CLASS}){filterstr})"
        # VLV offsets are 32-bit; one past every entry is an offset range error: the page is
        # empty then, and a one-entry view from the start gives the total.
        start = min(max(query.start_index, 1), MAX_OFFSET)
        count = max(query.count, 1)
        try:
            vlv = VLVRequestControl(True, before_count=0, after_count=count - 1, offset=start, content_count=0)
            answer = await self._search_answer(base, ldap.SCOPE_ONELEVEL, search, attrs, [sort, vlv])
        except ldap.VLV_ERROR:
            vlv = VLVRequestControl(True, before_count=0, after_count=0, offset=1, content_count=0)
            answer = await self._search_answer(base, ldap.SCOPE_ONELEVEL, search, ["1.1"], [sort, vlv])
            answer = Answer([], answer.controls)
        total = next((int(c.contentCount) for c in answer.controls if hasattr(c, "contentCount")), len(answer.entries))
        if query.count <= 0 or query.start_index > total or not answer.entries:
            return ResourcePage(total, [])
        # A page of users reads their groups in one search, not one per user.
        paged_groups = groups and resource_type == "User"
        of_each = await self._groups_of_each(tree, [dn for dn, _ in answer.entries]) if paged_groups else {}
        resources = [
            await self._complete(tree, resource_type, entry, members=members, groups=groups and not paged_groups)
            for entry in answer.entries
        ]
        if paged_groups:
            resources = [
                replace(r, groups=[dict(g) for g in of_each.get(dn.lower(), [])])
                for r, (dn, _) in zip(resources, answer.entries, strict=True)
            ]
        return ResourcePage(total, resources)

    def _translator(self, tree: Tree, resource_type: str) -> FilterTranslator:
        async def resolve(resource_id: str) -> str | None:
            found = await self._dns_of(tree, [resource_id])
            return found[resource_id][0] if resource_id in found else None

        async def member_dns(group_id: str) -> list[str] | None:
            entry = await self._entry(tree, "Group", group_id, ["member"])
            return [v.decode() for v in entry[1].get("member", [])] if entry else None

        return FilterTranslator(
            self.attributes[resource_type],
            placeholder=self.settings.empty_member,
            resolve=resolve,
            member_dns=member_dns,
        )

    # --- writes ------------------------------------------------------------------------------------

    async def create_resource(
        self,
        source: str,
        resource_type: str,
        write: ResourceWrite,
        members: Sequence[str] = (),
        *,
        event: EventDraft | None = None,
    ) -> StoredResource:
        _no_event(event)
        tree = self.tree(source)
        await self._ensure_tree(tree)
        member_dns = await self._member_dns(tree, members, group_id=None)
        now = now_ms()
        values = {
            "objectClass": OBJECT_CLASSES[resource_type],
            **mapped_values(resource_type, write.document, self.attributes[resource_type]),
            **own_values(write.document, write.record, now),
            VERSION: [b"1"],
            CREATED: [generalized_time(now).encode()],
        }
        if resource_type == "Group":
            values["member"] = [dn.encode() for dn in member_dns] or [self.settings.empty_member.encode()]
        dn = tree.dn(resource_type, _name(resource_type, write.document))
        entry = [(k, v) for k, v in values.items() if v]
        try:
            answer = await self.pool.call(
                lambda raw: raw.add_ext(dn, entry, serverctrls=[PostReadControl(True, ["entryUUID"])])
            )
        except ldap.ALREADY_EXISTS:
            raise UniquenessConflict(NAMING[resource_type][1]) from None
        except ldap.LDAPError as exc:
            raise _refused(exc) from None
        resource_id = _post_read(answer)["entryUUID"][0].decode()
        return StoredResource(resource_id, resource_type, write.document, 1, now, now)

    async def _member_dns(self, tree: Tree, ids: Sequence[str], *, group_id: str | None) -> list[str]:
        """The DNs of member ids, in order; UnknownMembers for any that is not the source's, or
        is the group itself."""
        found = await self._dns_of(tree, ids)
        unknown = [i for i in dict.fromkeys(ids) if i not in found or i == group_id]
        if unknown:
            raise UnknownMembers(unknown)
        return [found[i][0] for i in dict.fromkeys(ids)]

    async def update_resource(
        self,
        source: str,
        resource_type: str,
        resource_id: str,
        *,
        expected_version: int | None,
        write: ResourceWrite | None,
        member_changes: Sequence[MemberChange] = (),
        event: EventDraft | None = None,
    ) -> StoredResource:
        _no_event(event)
        if resource_type not in NAMING:
            raise ResourceNotFound()
        async with self._one_writer(source, resource_id):
            return await self._update(source, resource_type, resource_id, expected_version, write, member_changes)

    @contextlib.asynccontextmanager
    async def _one_writer(self, source: str, resource_id: str) -> AsyncIterator[None]:
        lock = self._writing.get((source, resource_id))
        if lock is None:
            lock = self._writing[(source, resource_id)] = asyncio.Lock()
        async with lock:
            yield

    async def _update(
        self,
        source: str,
        resource_type: str,
        resource_id: str,
        expected_version: int | None,
        write: ResourceWrite | None,
        member_changes: Sequence[MemberChange],
    ) -> StoredResource:
        tree = self.tree(source)
        for _ in range(RETRIES):
            # Adding members needs only whether those are there already (and the placeholder):
            # a big group's other values are not read.
            adds_only = bool(member_changes) and all(change.kind == "add" for change in member_changes)
            wanted = READ_ATTRIBUTES if adds_only else [*READ_ATTRIBUTES, "member"]
            entry = await self._entry(tree, resource_type, resource_id, wanted)
            if entry is None:
                raise ResourceNotFound()
            dn, attrs = entry
            current = stored(resource_type, attrs)
            if expected_version is not None and current.version != expected_version:
                raise VersionMismatch()
            changes = await self._modifications(
                tree, resource_type, resource_id, attrs, write, member_changes, group_dn=dn if adds_only else None
            )
            new_dn = dn
            if write is not None:
                name = _name(resource_type, write.document)
                if tree.rdn_value(dn) != name:
                    new_dn = tree.dn(resource_type, name)
            try:
                if new_dn == dn:
                    version = await self._modify(dn, current.version, changes)
                else:
                    version = await self._rename(tree, resource_type, dn, new_dn, current.version, changes)
            except ldap.ASSERTION_FAILED:
                if expected_version is not None:
                    raise VersionMismatch() from None
                continue  # another write came first: do it again over what it left
            except ldap.ALREADY_EXISTS:
                raise UniquenessConflict(NAMING[resource_type][1]) from None
            except ldap.NO_SUCH_OBJECT:
                raise ResourceNotFound() from None
            except ldap.LDAPError as exc:
                raise _refused(exc) from None
            document = write.document if write is not None else current.document
            return StoredResource(
                resource_id, resource_type, document, version, current.created, now_ms(), members=None, groups=None
            )
        raise StorageError(f"the entry {dn} kept changing under {RETRIES} attempts to write it")

    async def _modifications(
        self,
        tree: Tree,
        resource_type: str,
        resource_id: str,
        attrs: dict[str, list[bytes]],
        write: ResourceWrite | None,
        member_changes: Sequence[MemberChange],
        *,
        group_dn: str | None = None,
    ) -> list[tuple[int, str, list[bytes] | None]]:
        changes: list[tuple[int, str, list[bytes] | None]] = [(ldap.MOD_INCREMENT, VERSION, [b"1"])]
        document = write.document if write is not None else orjson.loads(attrs[DOCUMENT][0])
        if write is not None:
            mapped = mapped_values(resource_type, write.document, self.attributes[resource_type])
            naming = NAMING[resource_type][0]
            changes += [(ldap.MOD_REPLACE, name, values) for name, values in mapped.items() if name != naming]
        own = own_values(document, write.record if write is not None else _record(attrs), now_ms())
        changes += [(ldap.MOD_REPLACE, name, values) for name, values in own.items()]
        if member_changes:
            changes += await self._member_modifications(tree, resource_id, attrs, member_changes, group_dn=group_dn)
        return changes

    async def _member_modifications(
        self,
        tree: Tree,
        group_id: str,
        attrs: dict[str, list[bytes]],
        member_changes: Sequence[MemberChange],
        *,
        group_dn: str | None = None,
    ) -> list[tuple[int, str, list[bytes] | None]]:
        """The `member` values to add and delete for the changes, in order, against the group's
        present values (never the placeholder with a real member, always it alone without).
        With `group_dn` (additions only), `attrs` holds no members: those of the added that
        are present, and the placeholder, are read with the matched-values control."""
        placeholder = self.settings.empty_member.lower()
        if group_dn is not None:
            adding = [
                dn for change in member_changes for dn in await self._member_dns(tree, change.ids, group_id=group_id)
            ]
            attrs = {"member": await self._present_values(group_dn, [*adding, self.settings.empty_member])}
        present = [v.decode() for v in attrs.get("member", [])]
        target: dict[str, str] = {dn.lower(): dn for dn in present if dn.lower() != placeholder}
        for change in member_changes:
            if change.kind == "remove":
                found = await self._dns_of(tree, change.ids)
                for resource_id in change.ids:
                    if resource_id in found:
                        target.pop(found[resource_id][0].lower(), None)
                continue
            dns = await self._member_dns(tree, change.ids, group_id=group_id)
            if change.kind == "set":
                target = {}
            for dn in dns:
                target.setdefault(dn.lower(), dn)
        if not target:
            target = {placeholder: self.settings.empty_member}
        before = {dn.lower() for dn in present}
        added = [dn for key, dn in target.items() if key not in before]
        removed = [dn for dn in present if dn.lower() not in target]
        changes: list[tuple[int, str, list[bytes] | None]] = []
        if added:
            changes.append((ldap.MOD_ADD, "member", [dn.encode() for dn in added]))
        if removed:
            changes.append((ldap.MOD_DELETE, "member", [dn.encode() for dn in removed]))
        return changes

    async def _present_values(self, dn: str, values: Sequence[str]) -> list[bytes]:
        """Which of `values` the entry's `member` holds (RFC 3876 matched values: only those
        are sent back)."""
        present: list[bytes] = []
        for start in range(0, len(values), CHUNK):
            terms = "".join(f"(member={escape_filter_chars(v)})" for v in values[start : start + CHUNK])
            matched = MatchedValuesControl(True, f"({terms})")
            found = await self._search(dn, ldap.SCOPE_BASE, TRUE, ["member"], [matched])
            present += found[0][1].get("member", []) if found else []
        return present

    async def _modify(self, dn: str, version: int, changes: list[tuple[int, str, list[bytes] | None]]) -> int:
        answer = await self.pool.call(
            lambda raw: raw.modify_ext(
                dn,
                changes,
                serverctrls=[AssertionControl(True, f"({VERSION}={version})"), PostReadControl(True, [VERSION])],
            )
        )
        return int(_post_read(answer)[VERSION][0])

    async def _rename(
        self,
        tree: Tree,
        resource_type: str,
        dn: str,
        new_dn: str,
        version: int,
        changes: list[tuple[int, str, list[bytes] | None]],
    ) -> int:
        """Move the entry to its new name and write it, and rewrite every group's member value
        naming it: in one transaction where the directory has them, else in that order."""
        new_rdn = new_dn.split(",", 1)[0]
        holders = await self._search(
            tree.container("Group"), ldap.SCOPE_ONELEVEL, f"(member={escape_filter_chars(dn)})", ["1.1"]
        )
        assertion = AssertionControl(True, f"({VERSION}={version})")
        updates = [
            lambda raw, ctrls: raw.rename(dn, new_rdn, None, 1, serverctrls=[assertion, *ctrls]),
            lambda raw, ctrls: raw.modify_ext(new_dn, changes, serverctrls=ctrls),
        ]
        for holder, _ in holders:
            moved = holder if holder.lower() != dn.lower() else new_dn
            swap = [(ldap.MOD_DELETE, "member", [dn.encode()]), (ldap.MOD_ADD, "member", [new_dn.encode()])]
            updates.append(functools.partial(_modify, dn=moved, changes=swap))
        await self._apply(updates)
        found = await self._search(new_dn, ldap.SCOPE_BASE, TRUE, [VERSION])
        return int(found[0][1][VERSION][0])

    async def _apply(self, updates: list[Any]) -> None:
        async with self.pool.connection() as connection:
            if self.transactions:
                await in_transaction(connection, updates)
                return
            for update in updates:  # the documented order: the step most likely to fail first
                await connection.call(functools.partial(update, ctrls=[]))

    async def delete_resource(
        self,
        source: str,
        resource_type: str,
        resource_id: str,
        *,
        expected_version: int | None = None,
        event: EventDraft | None = None,
        soft: bool = False,
    ) -> None:
        _no_event(event)
        if soft:
            raise NotImplementedError("the LDAP store does not implement soft_delete")
        if resource_type not in NAMING:
            raise ResourceNotFound()
        tree = self.tree(source)
        entry = await self._entry(tree, resource_type, resource_id, [VERSION])
        if entry is None:
            raise ResourceNotFound()
        dn, attrs = entry
        version = int(attrs[VERSION][0])
        if expected_version is not None and version != expected_version:
            raise VersionMismatch()
        holders = await self._search(
            tree.container("Group"), ldap.SCOPE_ONELEVEL, f"(member={escape_filter_chars(dn)})", ["member"]
        )
        updates: list[Any] = []
        for holder, holder_attrs in holders:
            if holder.lower() == dn.lower():
                continue
            left = [v for v in holder_attrs.get("member", []) if v.decode().lower() != dn.lower()]
            change = [(ldap.MOD_DELETE, "member", [dn.encode()])]
            if not left:
                change.insert(0, (ldap.MOD_ADD, "member", [self.settings.empty_member.encode()]))
            updates.append(functools.partial(_modify, dn=holder, changes=change))
        assertion = AssertionControl(True, f"({VERSION}={version})")
        updates.append(lambda raw, ctrls: raw.delete_ext(dn, serverctrls=[assertion, *ctrls]))
        try:
            await self._apply(updates)
        except ldap.ASSERTION_FAILED:
            if expected_version is not None:
                raise VersionMismatch() from None
            await self.delete_resource(source, resource_type, resource_id)
        except ldap.NO_SUCH_OBJECT:
            raise ResourceNotFound() from None
        except ldap.LDAPError as exc:
            raise _refused(exc) from None

    async def purge_source(self, source: str) -> dict[str, int]:
        tree = self.tree(source)
        deleted = {"users": 0, "groups": 0}
        entries = await self._search(tree.base, ldap.SCOPE_SUBTREE, TRUE, ["1.1"])
        # Deepest first: a container goes after what it holds.
        for dn, _ in sorted(entries, key=lambda e: e[0].count(","), reverse=True):
            kind = (
                None
                if dn.lower().startswith(KEEPER)
                else {"User": "users", "Group": "groups"}.get(tree.type_of(dn) or "")
            )
            try:
                await self.pool.call(functools.partial(_delete, dn=dn))
            except ldap.NO_SUCH_OBJECT:
                continue
            if kind:
                deleted[kind] += 1
        self._made.discard(tree.base)
        return deleted


def _add(raw: Any, *, dn: str, entry: list[tuple[str, list[bytes]]]) -> int:
    return int(raw.add_ext(dn, entry))


def _delete(raw: Any, *, dn: str) -> int:
    return int(raw.delete_ext(dn))


def _modify(raw: Any, ctrls: list[Any], *, dn: str, changes: list[Any]) -> int:
    return int(raw.modify_ext(dn, changes, serverctrls=ctrls))


def _merged(defaults: dict[str, str], overrides: dict[str, str]) -> dict[str, str]:
    merged = {**defaults, **{k.lower(): v for k, v in overrides.items()}}
    return {k: v for k, v in merged.items() if v}


def _name(resource_type: str, document: dict[str, Any]) -> str:
    return str(document[NAMING[resource_type][1]])


def _post_read(answer: Answer) -> dict[str, list[bytes]]:
    for control in answer.controls:
        if isinstance(control, PostReadControl) or getattr(control, "controlType", "") == POST_READ_CONTROL:
            return control.entry
    raise StorageError("the directory sent no post-read entry")


def _record(attrs: dict[str, list[bytes]]) -> dict[str, Any] | None:
    return orjson.loads(attrs[RECORD][0]) if attrs.get(RECORD) else None


def _no_event(event: EventDraft | None) -> None:
    if event is not None:
        raise TypeError("the LDAP store is not an outbox: its writes take no event (ComposedStorage records it)")


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def _refused(exc: ldap.LDAPError) -> Exception:
    """A directory's refusal of a write: the value broke its schema (400), or it failed (503)."""
    if isinstance(exc, (ldap.INVALID_SYNTAX, ldap.OBJECT_CLASS_VIOLATION, ldap.CONSTRAINT_VIOLATION)):
        info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
        detail = "; ".join(str(info[k]) for k in ("desc", "info") if info.get(k))
        return ScimError(400, f"The directory refused a value: {detail}", "invalidValue")
    if isinstance(exc, ldap.SERVER_DOWN):
        return StorageError("the directory does not answer")
    return StorageError(f"the directory refused the write: {exc}")
