"""The resource store role: resources, their membership, records and index rows, and queries."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, ClassVar

from scimhost.scim.index import IndexEntry
from scimhost.scim.query import Field, QCompare, ResourceQuery
from scimhost.storage.store import Store
from scimhost.storage.values import (
    DeletedResource,
    EventDraft,
    MemberChange,
    ResourcePage,
    ResourceWrite,
    StoredResource,
)


class ResourceStore(Store):
    """Keeps the sources' users and groups. `purge_source` deletes the source's resources with
    their records, index rows, unique values and memberships.

    The `event` argument of the writes is given only to a store that is also the outbox (a
    StorageBackend): it records the event in the write's own transaction. A store that is not
    the outbox never receives one (scimhost.storage.composed records it around the write)."""

    # The optional features the store implements (FEATURES). The host answers
    # ServiceProviderConfig from them and refuses requests that need a missing one with a 400;
    # the storage contract skips their tests, naming the feature.
    features: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    async def create_resource(
        self,
        source: str,
        resource_type: str,
        write: ResourceWrite,
        members: Sequence[str] = (),
        *,
        event: EventDraft | None = None,
    ) -> StoredResource:
        """Store a new resource (and its members, and `event` in the event log) in one
        transaction.

        Members must be resources (of any type) of the same source, and a group never contains
        itself; membership keeps the order ids were first added. Raises UniquenessConflict or
        UnknownMembers, storing nothing."""

    @abstractmethod
    async def get_resource(
        self, source: str, resource_type: str, resource_id: str, *, members: bool = True, groups: bool = True
    ) -> StoredResource | None:
        """The resource, with its members / groups when asked (not read at all otherwise)."""

    @abstractmethod
    def iter_members(self, source: str, group_id: str, *, batch: int = 1000) -> AsyncIterator[list[dict[str, Any]]]:
        """The members ({"value", "type", "display"}) of the source's group, in insertion order,
        a batch at a time, so a group of any size is read in bounded memory. Nothing for a
        group of another source."""

    async def count_members(self, source: str, group_id: str) -> int:
        """How many members the source's group has (0 for a group of another source). This
        default walks `iter_members`; a backend that can count in the store should."""
        total = 0
        async for batch in self.iter_members(source, group_id):
            total += len(batch)
        return total

    async def stale_index(
        self, source: str, resource_type: str, fingerprint: str, *, after: str | None = None, limit: int = 200
    ) -> list[StoredResource]:
        """Resources of the type stored under another index fingerprint than `fingerprint` (or
        none), in id order after `after`: their index rows may not be what their documents give
        now. A backend that keeps no index rows of its own (it filters documents) has none."""
        return []

    async def reindex_resource(
        self,
        source: str,
        resource_type: str,
        resource_id: str,
        *,
        version: int,
        index: Sequence[IndexEntry],
        unique_values: dict[str, str],
        fingerprint: str,
    ) -> bool:
        """Bring the resource's index rows and unique values to `index` and `unique_values`,
        computed under `fingerprint`, if it is still at `version`: no new version and no event
        (the resource did not change). False when it moved on (its write rebuilt them); raises
        UniquenessConflict when a value is taken."""
        return True

    async def find_by_unique_value(
        self, source: str, resource_type: str, attribute: str, value: str
    ) -> StoredResource | None:
        """The source's resource of the type holding `value` (normalised, as in
        ResourceWrite.unique_values) of the `uniqueness: server` attribute, if any, without
        members or groups. This default filters with list_resources; a store that can look it
        up directly (an LDAP entry named by it) should."""
        query = ResourceQuery(filter=QCompare(Field("attr", attribute.lower()), "eq", value), count=1)
        page = await self.list_resources(source, resource_type, query, members=False, groups=False)
        return page.resources[0] if page.resources else None

    @abstractmethod
    async def get_record(self, source: str, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        """The directory record stored with the resource, if any."""

    @abstractmethod
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
        """Apply a write and membership changes in one transaction, bumping the version, and
        record `event` in the event log in the same transaction, after the version bump (so
        per resource the events' order is the order of the commits).

        `write` None keeps the document. With `expected_version`, the write happens only if the
        stored version is still that one. Member changes follow create_resource's rules (an id
        of another source, of nothing, or of the group itself is UnknownMembers); adding a
        member twice keeps one row, removing one that is not there does nothing. Raises ResourceNotFound, VersionMismatch,
        UniquenessConflict or UnknownMembers, changing nothing. Returns the resource without
        members; with its groups if the backend read them in the same transaction, else with
        `groups` None (the host then reads them)."""

    @abstractmethod
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
        """Delete the resource and every membership row naming it (and record `event`), in one
        transaction. With `soft` (feature `soft_delete`) the resource is kept aside as a
        DeletedResource: gone from every read, its unique values free, restorable.

        Raises ResourceNotFound or VersionMismatch."""

    # --- soft-deleted resources (feature `soft_delete`) ---------------------------------------

    async def deleted_resources(
        self, source: str, resource_type: str, *, limit: int = 100, before: datetime | None = None
    ) -> list[DeletedResource]:
        """The source's soft-deleted resources of the type, most recently deleted first (deleted
        before `before`, when given)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement soft_delete")

    async def find_deleted(
        self,
        source: str,
        resource_type: str,
        *,
        resource_id: str | None = None,
        external_id: str | None = None,
        name_key: str | None = None,
    ) -> DeletedResource | None:
        """The most recently deleted resource of the source and type with that id, externalId
        (exact) or name key (lower-cased userName / displayName), if one is kept."""
        raise NotImplementedError(f"{type(self).__name__} does not implement soft_delete")

    async def restore_resource(
        self,
        source: str,
        resource_type: str,
        resource_id: str,
        write: ResourceWrite,
        members: Sequence[str] = (),
        *,
        event: EventDraft | None = None,
    ) -> StoredResource:
        """Bring a soft-deleted resource back with `write` as its content (a replacement): the
        same id, its version one more than when deleted, its creation time kept; `members` and
        `event` as in create_resource, in one transaction.

        Raises ResourceNotFound (not kept), UniquenessConflict (its values are taken now),
        UnknownMembers."""
        raise NotImplementedError(f"{type(self).__name__} does not implement soft_delete")

    async def purge_deleted(self, source: str, *, before: datetime, batch: int = 1000) -> int:
        """Forget the source's resources soft-deleted before `before`, a batch per transaction;
        how many (their events stay in the log until it is pruned)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement soft_delete")

    @abstractmethod
    async def list_resources(
        self, source: str, resource_type: str, query: ResourceQuery, *, members: bool = True, groups: bool = True
    ) -> ResourcePage:
        """The resources matching `query.filter`, counted and paged in the store (never
        filtered in Python), ordered by `query.sort` then creation order."""

    # --- the event log -------------------------------------------------------------------------
