"""The read and write flows of one resource type of one source: SCIM core, hooks and storage
joined, with no HTTP in sight (handlers parse the request, call this, render the answer)."""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import itertools
import logging
import random
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson

from scimhost.events import ResourceEvent, dispatch
from scimhost.host import Host
from scimhost.mapping.service import MappingFailed
from scimhost.passwords import hash_password
from scimhost.scim.changes import document_changes, member_changes, recorded_operations
from scimhost.scim.errors import ScimError
from scimhost.scim.filter import parse_filter
from scimhost.scim.index import index_difference, index_entries, unique_values
from scimhost.scim.limits import check_index_entries, plausible_id
from scimhost.scim.listing import ListParams, decode_cursor, encode_cursor, list_response
from scimhost.scim.patch import apply_patch, parse_patch_request
from scimhost.scim.query import ResourceQuery, Undefined, fold, resolve_filter, resolve_sort
from scimhost.scim.render import Projection, etag, member_reference, resource_document
from scimhost.scim.resource_types import ResourceType
from scimhost.scim.validation import undeclared_keys, validated_document
from scimhost.sources import Source
from scimhost.storage.backend import (
    KEEP,
    Action,
    DeletedResource,
    EventDraft,
    MemberChange,
    ResourceNotFound,
    ResourceWrite,
    StoredResource,
    UniquenessConflict,
    UnknownMembers,
    VersionMismatch,
)

log = logging.getLogger("scimhost.resource_service")

# A PATCH without If-Match re-reads and re-applies when another writer got in between, for up
# to this long, pausing a random time up to START * 2**try (at most MAX) between tries.
PATCH_RETRY_SECONDS = 10.0
PATCH_BACKOFF_START = 0.002
PATCH_BACKOFF_MAX = 0.1


def not_found(resource_type: ResourceType, resource_id: str) -> ScimError:
    shown = resource_id if plausible_id(resource_id) else "with that id"
    return ScimError(404, f"{resource_type.name} {shown} not found")


def precondition_failed() -> ScimError:
    return ScimError(412, "The resource has changed: its version does not match If-Match")


class ResourceService:
    """Create, read, replace, patch, delete and list resources of one type in one source."""

    def __init__(
        self, host: Host, source: Source, resource_type: ResourceType, actor: dict[str, Any] | None = None
    ) -> None:
        self.host = host
        self.source = source
        self.type = resource_type
        # Who writes, as the event log records it (scheme, account, request id, client).
        self.actor = actor or {"scheme": None, "account": source.service_account}
        self.storage = host.storage
        # Group members are kept as rows; User groups are derived from those rows.
        self.membership_attribute = resource_type.membership_attribute
        self.derives_groups = resource_type.groups_from_memberships
        # Attributes whose values are never recorded (the User's password).
        self.write_only = [a.name for a in resource_type.schema.attributes.values() if a.mutability == "writeOnly"]

    def location(self, resource_id: str) -> str:
        return f"{self.source.base_url}{self.type.endpoint}/{resource_id}"

    # --- reads -----------------------------------------------------------------------------------

    def relations(self, projection: Projection) -> dict[str, bool]:
        """Which row-derived attributes a response shows, so the store reads only those."""
        return {
            "members": self.membership_attribute is not None and projection.wants_attribute(self.membership_attribute),
            "groups": self.derives_groups and projection.wants_attribute("groups"),
        }

    async def get(self, resource_id: str, projection: Projection) -> StoredResource:
        self._known_id(resource_id)
        stored = await self.storage.get_resource(
            self.source.slug, self.type.name, resource_id, **self.relations(projection)
        )
        if stored is None:
            raise not_found(self.type, resource_id)
        return stored

    def projection(self, params: ListParams) -> Projection:
        return Projection(self.type, params.attributes, params.excluded_attributes)

    def query(self, params: ListParams) -> ResourceQuery:
        """The store query for list parameters; 400 for a bad filter, sortBy or cursor."""
        query = self.query_across_types(params, None)
        assert query is not None, "a filter resolved strictly is never known to match nothing"
        return query

    def query_across_types(self, params: ListParams, undefined: Undefined | None) -> ResourceQuery | None:
        """The store query of this type's part of a search across resource types: attributes the
        type does not define are recorded in `undefined` and have no value here (RFC 7644
        §3.4.2.2); None when the filter then matches nothing. Without `undefined`, `query`."""
        limits = self.host.settings.limits
        query_filter, matches_nothing = None, False
        if params.filter:
            parsed = parse_filter(params.filter, max_length=limits.max_filter_length, max_depth=limits.max_filter_depth)
            folded = fold(resolve_filter(parsed, self.type, undefined))
            query_filter = None if isinstance(folded, bool) else folded
            matches_nothing = folded is False
        features = self.storage.features
        if params.sort_by and "sort" not in features:
            raise ScimError(400, "sorting is not supported by this server (ServiceProviderConfig sort)", "invalidValue")
        if params.cursor is not None and "cursor_paging" not in features:
            raise ScimError(
                400, "cursor paging is not supported by this server (ServiceProviderConfig pagination)", "invalidValue"
            )
        sort = resolve_sort(params.sort_by, params.sort_order, self.type, undefined) if params.sort_by else None
        after = before = None
        if params.cursor:
            direction, created, resource_id = decode_cursor(params.cursor)
            if direction == "after":
                after = (created, resource_id)
            else:
                before = (created, resource_id)
        if params.cursor is not None and sort is not None:
            raise ScimError(
                400, "cursor paging follows creation order; it cannot be combined with sortBy", "invalidValue"
            )
        if matches_nothing:
            return None  # (only once sortBy is resolved too: a search across types judges both)
        return ResourceQuery(
            filter=query_filter,
            sort=sort,
            start_index=params.start_index,
            count=params.count,
            cursor_paging=params.cursor is not None,
            after=after,
            before=before,
        )

    async def list(self, params: ListParams, query: ResourceQuery | None = None) -> dict[str, Any]:
        """A ListResponse for list parameters (or the store query made of them), filtered and
        paged in the store."""
        if query is None:
            query = self.query(params)
        projection = self.projection(params)
        page = await self.storage.list_resources(self.source.slug, self.type.name, query, **self.relations(projection))
        resources = [self.render(item, projection) for item in page.resources]
        if not query.cursor_paging:
            return list_response(page.total, resources, start_index=params.start_index)
        first, last = (page.resources[0], page.resources[-1]) if page.resources else (None, None)
        return list_response(
            page.total,
            resources,
            start_index=None,
            next_cursor=encode_cursor("after", last.created, last.id) if page.more_after and last else None,
            previous_cursor=encode_cursor("before", first.created, first.id) if page.more_before and first else None,
        )

    def streams(self, projection: Projection) -> bool:
        """Whether a read with this projection is written as it is read (a group's members,
        however many, in bounded memory) rather than rendered whole."""
        return self.membership_attribute is not None and projection.wants_attribute(self.membership_attribute)

    async def complete(self, stored: StoredResource, projection: Projection) -> StoredResource:
        """A written resource with the row-derived attributes its response shows, read again only
        when the write did not bring them back already."""
        relations = self.relations(projection)
        if (relations["members"] and stored.members is None) or (relations["groups"] and stored.groups is None):
            return await self.get(stored.id, projection)
        return stored

    def answers_patch_without_body(self) -> bool:
        """A PATCH of a type with a membership attribute is answered 204 (RFC 7644 §3.5.2 allows
        it): a 200 would have to carry every member of the group."""
        return self.membership_attribute is not None

    async def stream(self, resource_id: str, projection: Projection) -> tuple[StoredResource, AsyncIterator[bytes]]:
        """A resource whose row-stored members are many, as JSON produced piece by piece: the
        document without members first, then the members a batch at a time."""
        self._known_id(resource_id)
        stored = await self.storage.get_resource(
            self.source.slug, self.type.name, resource_id, members=False, groups=False
        )
        if stored is None:
            raise not_found(self.type, resource_id)
        attribute = self.membership_attribute
        assert attribute is not None, "only resource types with row-stored members stream"
        head = orjson.dumps(self.render(stored, projection))

        async def pieces() -> AsyncIterator[bytes]:
            yield head[:-1] + f',"{self.membership_attribute}":['.encode()
            first = True
            async for batch in self.storage.iter_members(self.source.slug, stored.id):
                members = [member_reference(m, self.source.base_url) for m in batch]
                encoded = b",".join(orjson.dumps(m) for m in projection.select_values(attribute, members))
                if encoded:
                    yield encoded if first else b"," + encoded
                    first = False
            yield b"]}"

        return stored, pieces()

    def render(self, stored: StoredResource, projection: Projection) -> dict[str, Any]:
        doc = resource_document(
            self.type,
            stored.id,
            stored.document,
            version=stored.version,
            created=stored.created,
            last_modified=stored.last_modified,
            location=self.location(stored.id),
            members=stored.members if self.membership_attribute else None,
            groups=stored.groups if self.derives_groups else None,
            base_url=self.source.base_url,
        )
        return projection.apply(doc)

    # --- writes ----------------------------------------------------------------------------------

    async def create(self, body: Any) -> StoredResource:
        doc = self._validated(body)
        kept = await self._restorable(doc)
        if kept is not None:
            restored = await self._restore(kept, doc)
            if restored is not None:
                return restored
        members = self._take_members(doc)
        write = await self._prepare(doc, None, create=True)
        event = self._draft(
            "create",
            document_changes({}, write.document, password_changed=bool(write.password_hash)),
            member_changes([("add", members)]) if members else None,
            write.document,
            write.record,
        )
        try:
            stored = await self.storage.create_resource(self.source.slug, self.type.name, write, members, event=event)
        except UniquenessConflict as exc:
            raise self._conflict(exc) from None
        except UnknownMembers as exc:
            raise self._unknown_members(exc) from None
        await self._event("create", stored, write.record)
        # A new user belongs to no group; a new group without members has none. Only a group
        # created with members needs them read back (their display names).
        return dataclasses.replace(
            stored,
            groups=[] if self.derives_groups else None,
            members=None if members or self.membership_attribute is None else [],
        )

    async def _restorable(self, doc: dict[str, Any]) -> DeletedResource | None:
        """The soft-deleted resource a POST brings back: the source keeps deleted resources and
        the body matches one by a `restore_by` key (externalId exactly, names ignoring case)."""
        settings = self.source.settings
        if settings.on_delete != "soft":
            return None
        external_id = doc.get("externalId")
        if "externalId" in settings.restore_by and isinstance(external_id, str):
            found = await self.storage.find_deleted(self.source.slug, self.type.name, external_id=external_id)
            if found is not None:
                return found
        for key in ("userName", "displayName"):
            value = doc.get(key)
            if key in settings.restore_by and isinstance(value, str):
                found = await self.storage.find_deleted(self.source.slug, self.type.name, name_key=value.lower())
                if found is not None:
                    return found
        return None

    async def _restore(self, kept: DeletedResource, doc: dict[str, Any]) -> StoredResource | None:
        """Bring `kept` back with `doc` as its content (as a PUT would): the same id, a new
        version, the members the body lists; None when it is no longer kept (restored or purged
        meanwhile: the POST then creates)."""
        members = self._take_members(doc)
        write = await self._prepare(doc, kept.document, create=True)
        event = self._draft(
            "restore",
            document_changes(kept.document, write.document, password_changed=bool(write.password_hash)),
            member_changes([("add", members)]) if members else None,
            write.document,
            write.record,
        )
        try:
            stored = await self.storage.restore_resource(
                self.source.slug, self.type.name, kept.id, write, members, event=event
            )
        except ResourceNotFound:
            return None
        except UniquenessConflict as exc:
            raise self._conflict(exc) from None
        except UnknownMembers as exc:
            raise self._unknown_members(exc) from None
        await self._event("restore", stored, write.record)
        return dataclasses.replace(
            stored,
            groups=[] if self.derives_groups else None,
            members=None if members or self.membership_attribute is None else [],
        )

    async def restore_kept(self, resource_id: str) -> StoredResource:
        """Bring a soft-deleted resource back as it was (`scimhost sources restore`)."""
        kept = await self.storage.find_deleted(self.source.slug, self.type.name, resource_id=resource_id)
        if kept is None:
            raise not_found(self.type, resource_id)
        restored = await self._restore(kept, dict(kept.document))
        if restored is None:
            raise not_found(self.type, resource_id)
        return restored

    async def replace(self, resource_id: str, body: Any, if_match: int | None) -> StoredResource:
        self._known_id(resource_id)
        current = await self.storage.get_resource(
            self.source.slug, self.type.name, resource_id, members=False, groups=False
        )
        if current is None:
            raise not_found(self.type, resource_id)
        if if_match is not None and if_match != current.version:
            raise precondition_failed()
        doc = self._validated(body, current.document)
        changes = []
        if self.membership_attribute is not None:
            changes = [MemberChange("set", tuple(self._take_members(doc)))]
        write = await self._prepare(doc, current.document, create=False, stored=current)
        event = self._event_draft("replace", current.document, write, changes)
        stored = await self._update(resource_id, current.version, write, changes, event=event)
        await self._event("replace", stored, write.record)
        return stored

    async def patch(self, resource_id: str, body: Any, if_match: int | None) -> StoredResource:
        self._known_id(resource_id)
        operations = parse_patch_request(body, max_operations=self.host.settings.limits.max_patch_operations)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PATCH_RETRY_SECONDS
        for attempt in itertools.count():
            current = await self.storage.get_resource(
                self.source.slug, self.type.name, resource_id, members=False, groups=False
            )
            if current is None:
                raise not_found(self.type, resource_id)
            if if_match is not None and if_match != current.version:
                raise precondition_failed()
            # With its id, so that a PATCH echoing the unchanged id is recognised as no change.
            result = apply_patch(
                {**current.document, "id": current.id},
                operations,
                self.type,
                members_attribute=self.membership_attribute,
                keep_unknown=True,  # undeclared keys reach _validated, which keeps, refuses or drops them
            )
            changes = [MemberChange(op.kind, tuple(v["value"] for v in op.values)) for op in result.member_ops]
            doc = self._validated(result.document, current.document, patched=True)
            write = None
            if doc != current.document:
                write = await self._prepare(doc, current.document, create=False, stored=current)
            elif not changes:
                return current  # nothing changes: no new version
            # Member-only changes are row inserts and deletes: they need no version check, so
            # concurrent member PATCHes of one group never conflict and never lose anything.
            expected = current.version if (write is not None or if_match is not None) else None
            event = dataclasses.replace(
                self._event_draft("patch", current.document, write, changes),
                operations=recorded_operations(_operations_of(body), self.write_only),
            )
            try:
                stored = await self._update(
                    resource_id, expected, write, changes, retrying=if_match is None, event=event
                )
            except VersionMismatch:
                # Another writer got in between: read again and re-apply, after a random pause
                # that grows with each try, so that many writers of one resource spread out.
                if loop.time() >= deadline:
                    break
                await asyncio.sleep(random.uniform(0, min(PATCH_BACKOFF_START * 2**attempt, PATCH_BACKOFF_MAX)))
                continue
            await self._event("patch", stored, write.record if write is not None else None)
            return stored
        # Not 409: clients read 409 as "already exists". The race is the server's to resolve.
        raise ScimError(
            503, "The resource kept changing while the PATCH was applied; try again", headers={"Retry-After": "1"}
        )

    async def delete(self, resource_id: str, if_match: int | None) -> None:
        self._known_id(resource_id)
        try:
            await self.storage.delete_resource(
                self.source.slug,
                self.type.name,
                resource_id,
                expected_version=if_match,
                event=self._draft("delete", {}),
                soft=self.source.settings.on_delete == "soft",
            )
        except ResourceNotFound:
            raise not_found(self.type, resource_id) from None
        except VersionMismatch:
            raise precondition_failed() from None
        self.host.committed(self.source.slug, self.type.name, "delete")
        await dispatch(
            self.host.plugins,
            ResourceEvent(self.source.slug, self.type.name, "delete", resource_id, None),
        )

    async def remap(self, resource_id: str) -> bool:
        """Apply the source's current mappings to a stored resource: when its record changes,
        store it with a `remap` event (delivered like any write) and say True. A resource written
        or deleted meanwhile is left alone: that write applied the current mappings already."""
        current = await self.storage.get_resource(
            self.source.slug, self.type.name, resource_id, members=False, groups=False
        )
        if current is None:
            return False
        before = await self.storage.get_record(self.source.slug, self.type.name, resource_id)
        write = await self._prepare(dict(current.document), current.document, create=False, stored=current)
        if write.record == before:
            return False
        changed = {"record": {"old": before, "new": write.record}}
        event = self._draft("remap", changed, None, current.document, write.record)
        try:
            stored = await self._update(resource_id, current.version, write, [], retrying=True, event=event)
        except VersionMismatch:
            return False  # written meanwhile
        except ScimError as exc:
            if exc.status == 404:
                return False  # deleted meanwhile
            raise
        await self._event("remap", stored, write.record)
        return True

    # --- helpers ---------------------------------------------------------------------------------

    def _validated(self, body: Any, existing: dict[str, Any] | None = None, *, patched: bool = False) -> dict[str, Any]:
        """The document to store, with undeclared attributes kept, refused or dropped as the
        source's `unknown_attributes` says (`patched`: the body is `existing` after a PATCH,
        whose kept keys it left alone are not judged again)."""
        policy = self.source.settings.unknown_attributes
        if policy != "keep":
            unknown = undeclared_keys(body, self.type)
            if unknown and policy == "reject":
                raise ScimError(
                    400, f"{self.type.name} attributes that no schema declares: {_shown(unknown)}", "invalidValue"
                )
            if unknown:
                log.info(
                    "source %s: dropped %s attributes no schema declares: %s",
                    self.source.slug,
                    self.type.name,
                    _shown(unknown),
                )
        return validated_document(
            body,
            self.type,
            existing=existing,
            keep_unknown=policy == "keep",
            unchanged=existing if patched else None,
        )

    def _known_id(self, resource_id: str) -> None:
        """404 at once for an id no store could hold (a NUL, a control character, too long)."""
        if not plausible_id(resource_id):
            raise not_found(self.type, resource_id)

    async def _update(
        self,
        resource_id: str,
        expected_version: int | None,
        write: ResourceWrite | None,
        changes: Sequence[MemberChange],
        retrying: bool = False,
        event: EventDraft | None = None,
    ) -> StoredResource:
        try:
            return await self.storage.update_resource(
                self.source.slug,
                self.type.name,
                resource_id,
                expected_version=expected_version,
                write=write,
                member_changes=changes,
                event=event,
            )
        except ResourceNotFound:
            raise not_found(self.type, resource_id) from None
        except VersionMismatch:
            if retrying:
                raise
            raise precondition_failed() from None
        except UniquenessConflict as exc:
            raise self._conflict(exc) from None
        except UnknownMembers as exc:
            raise self._unknown_members(exc) from None

    def _event_draft(
        self, action: Action, before: dict[str, Any], write: ResourceWrite | None, changes: Sequence[MemberChange]
    ) -> EventDraft:
        """The event log entry of an update: what changed, and the document and record after it
        (a change of members only leaves the document, and so the record, as they were: the
        entry then carries the document, and no record)."""
        after = write.document if write is not None else before
        password_changed = write is not None and write.password_hash is not KEEP and write.password_hash is not None
        return self._draft(
            action,
            document_changes(before, after, password_changed=password_changed),
            member_changes((c.kind, c.ids) for c in changes),
            after,
            write.record if write is not None else None,
        )

    def _draft(
        self,
        action: Action,
        changed: dict[str, Any],
        members: dict[str, Any] | None = None,
        resource: dict[str, Any] | None = None,
        record: dict[str, Any] | None = None,
    ) -> EventDraft:
        """An event log entry of this source's write, with a delivery for each of its sinks."""
        return EventDraft(
            action,
            self.actor,
            changed,
            members,
            resource,
            record,
            sinks=self.host.settings.events.sinks_for(self.source.slug),
        )

    def _take_members(self, doc: dict[str, Any]) -> builtins.list[str]:
        if self.membership_attribute is None:
            return []
        return [m["value"] for m in doc.pop(self.membership_attribute, []) if isinstance(m, dict) and m.get("value")]

    async def _prepare(
        self,
        doc: dict[str, Any],
        previous: dict[str, Any] | None,
        *,
        create: bool,
        stored: StoredResource | None = None,
    ) -> ResourceWrite:
        """What a write stores; `stored`, the version an update replaces (read by the caller)."""
        self.host.plugins.hook.validate_resource(
            source=self.source, resource_type=self.type.name, resource=doc, previous=previous
        )
        password = doc.pop("password", None)
        if password is not None and self.source.settings.passwords != "hash":
            if self.source.settings.passwords == "refuse":
                raise ScimError(400, f"password: source '{self.source.slug}' does not accept passwords", "invalidValue")
            log.info('source %s: a %s\'s password was dropped (passwords = "drop")', self.source.slug, self.type.name)
            password = None
        # Refused before any mapping runs: a value too long to index (both stores agree).
        index, unique = tuple(index_entries(doc, self.type)), unique_values(doc, self.type)
        check_index_entries(index, unique)
        try:
            record = await self.host.mappings.record(self.source, self.type.name, doc)
        except MappingFailed as exc:
            log.warning("%s (%s %s)", exc, self.type.name, "create" if create else "update")
            raise ScimError(
                400,
                f"Property mapping {exc.mapping!r} of source {exc.source!r} could not map this {self.type.name}",
                "invalidValue",
            ) from None
        if password is not None:
            # scrypt takes tens of milliseconds: off the event loop.
            password_hash: Any = await asyncio.to_thread(hash_password, password)
        else:
            password_hash = None if create else KEEP
        fingerprint = self.type.index_fingerprint
        index_change = previous_unique_values = None
        if stored is not None and stored.index_fingerprint == fingerprint:
            # Its rows were computed from its document under this configuration: the store can
            # write the difference without reading them back. Only the attributes that changed
            # give different rows.
            index_change = index_difference(stored.document, doc, self.type)
            previous_unique_values = unique_values(stored.document, self.type)
        return ResourceWrite(
            document=doc,
            external_id=doc.get("externalId"),
            display=doc.get("displayName") or doc.get("userName"),
            unique_values=unique,
            password_hash=password_hash,
            index=index,
            record=record,
            index_fingerprint=fingerprint,
            index_change=index_change,
            previous_unique_values=previous_unique_values,
        )

    def _conflict(self, exc: UniquenessConflict) -> ScimError:
        return ScimError(409, f"{exc.attribute} is already used by another {self.type.name}", "uniqueness")

    def _unknown_members(self, exc: UnknownMembers) -> ScimError:
        shown = ", ".join(exc.ids[:5]) + (" ..." if len(exc.ids) > 5 else "")
        return ScimError(400, f"members must be Users or Groups of this source; unknown: {shown}", "invalidValue")

    async def _event(self, action: Action, stored: StoredResource, record: dict[str, Any] | None) -> None:
        """After a commit: the deliveries may go, and in-process `resource_event` hooks run."""
        self.host.committed(self.source.slug, self.type.name, action)
        await dispatch(
            self.host.plugins,
            ResourceEvent(
                self.source.slug,
                self.type.name,
                action,
                stored.id,
                etag(stored.version),
                resource=stored.document,
                record=record,
            ),
        )


def _operations_of(body: Any) -> Any:
    """The `Operations` of a PatchOp body (its key in any case, as the parser accepts it)."""
    if not isinstance(body, dict):
        return None
    return next((value for key, value in body.items() if key.lower() == "operations"), None)


def _shown(keys: list[str]) -> str:
    """Attribute names for a message or log line, a bounded number of them."""
    shown = ", ".join(repr(key[:100]) for key in keys[:10])
    return shown + (f" and {len(keys) - 10} more" if len(keys) > 10 else "")
