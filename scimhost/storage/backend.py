"""The interface a storage backend plugin implements (`register_storage_backends`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

from scimhost.scim.index import IndexEntry
from scimhost.scim.query import ResourceQuery

# What a write did, as the event log records it.
# "remap": the record changed because the mappings did (`scimhost records remap`).
# "restore": a soft-deleted resource came back (its id kept, a new version).
Action = Literal["create", "replace", "patch", "delete", "remap", "restore"]

# `sort`: list_resources honours ResourceQuery.sort (sortBy). `cursor_paging`: it honours
# cursor_paging, after and before (RFC 9865). `soft_delete`: delete_resource(soft=True) keeps
# the resource aside, and the deleted_* / restore_resource / purge_deleted methods work.
FEATURES = frozenset({"sort", "cursor_paging", "soft_delete"})


class StorageError(Exception):
    """The store failed in a way the client cannot fix (answered 503 / reported by `check`)."""


class StoreMissing(StorageError):
    """The store does not exist yet. `creatable`: `scimhost migrate` makes it (an SQLite file);
    otherwise the operator must first (a PostgreSQL database), as the message says how."""

    def __init__(self, message: str, *, creatable: bool) -> None:
        super().__init__(message)
        self.creatable = creatable


@dataclass(frozen=True)
class ServiceAccount:
    """The account a source's token authenticates as."""

    source: str
    username: str
    created: datetime
    token_created: datetime | None
    # The replaced token that still works until then (a rotation's grace period), if any.
    previous_expires: datetime | None = None

    @property
    def has_token(self) -> bool:
        return self.token_created is not None


@dataclass(frozen=True)
class SourceActivity:
    """What a source received since a moment, summed over every serving process."""

    requests: int = 0
    errors: int = 0
    last_request: datetime | None = None
    last_error_at: datetime | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class Credential:
    """A credential an auth scheme plugin keeps for a source (a client secret, an issued access
    token): the hash of its secret part, never the value."""

    # The scheme's name for what it is ("oauth_client_secret", "oauth_access_token").
    kind: str
    # The public part that finds it, unique per source and kind.
    id: str
    # Hex SHA-256 of the secret part (high-entropy values: a fast hash is enough).
    secret_hash: str
    created: datetime
    expires: datetime | None = None
    # An issued token that `scimhost sources revoke` ends with the source's bearer tokens
    # (revoke_tokens), rather than a long-lived credential revoked one by one.
    session: bool = False
    last_used: datetime | None = None


@dataclass(frozen=True)
class FailedRequest:
    """A request a source's client was answered with an error (400 or more), as it was told."""

    at: datetime
    method: str
    # The path without its query string (filters hold people's names and emails).
    path: str
    status: int
    scim_type: str | None = None
    detail: str = ""
    request_id: str | None = None


class Keep:
    """Marks a field of a write that keeps its stored value (the password on a PUT without one)."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = Keep()


@dataclass(frozen=True)
class StoredResource:
    """A resource as stored: its document (without id, meta and row-stored attributes)."""

    id: str
    resource_type: str
    document: dict[str, Any]
    version: int
    created: datetime
    last_modified: datetime
    # Group members ({"value", "type", "display"}) and User groups ({"value", "display"}),
    # each None when the read did not ask for them.
    members: list[dict[str, Any]] | None = None
    groups: list[dict[str, Any]] | None = None
    # The fingerprint of the index configuration its index rows and unique values were computed
    # under (ResourceWrite.index_fingerprint of its last write); None when unknown.
    index_fingerprint: str | None = None


@dataclass(frozen=True)
class ResourceWrite:
    """What a create or update stores, computed by the host from a validated document."""

    document: dict[str, Any]
    external_id: str | None
    display: str | None
    # Normalised values of `uniqueness: server` attributes, by attribute name.
    unique_values: dict[str, str] = field(default_factory=dict)
    password_hash: str | None | Keep = KEEP
    # The attribute index rows filters run against (scimhost.scim.index.index_entries).
    index: tuple[IndexEntry, ...] = ()
    # The directory record the source's property mappings made of the document.
    record: dict[str, Any] | None = None
    # The configuration `index` and `unique_values` were computed under (ResourceType's
    # index_fingerprint), stored with the resource.
    index_fingerprint: str | None = None
    # An update's knowledge of what is stored, computed under the fingerprint the version it
    # replaces (its expected version) was stored with: the index rows to remove and to add, and
    # that version's unique values. A store may write these differences without reading its
    # rows back; None: unknown (the store brings its rows to `index` and `unique_values`).
    index_change: tuple[tuple[IndexEntry, ...], tuple[IndexEntry, ...]] | None = None
    previous_unique_values: dict[str, str] | None = None


@dataclass(frozen=True)
class MemberChange:
    """One change of a group's membership, applied in order within the write's transaction.

    `set` makes the membership exactly `ids` (an empty tuple clears it), touching only the
    rows that differ."""

    kind: Literal["add", "remove", "set"]
    ids: tuple[str, ...]


@dataclass(frozen=True)
class EventDraft:
    """The change a write records in the event log, inserted in the write's own transaction
    (so a write that does not commit records nothing). The host builds it; the store adds the
    sequence number, the event id, the time, the resource id and the version after the write."""

    action: Action
    # Who: {"scheme", "account", "request_id", "client"}.
    actor: dict[str, Any]
    # What changed: attribute -> {"old", "new"} (writeOnly values only as {"changed": true}).
    changed: dict[str, Any]
    # Membership: {"added": [ids], "removed": [ids]} or {"replaced": true, "count": N}; or None.
    members: dict[str, Any] | None = None
    # The document and the directory record after the write (None on delete).
    resource: dict[str, Any] | None = None
    record: dict[str, Any] | None = None
    # The sinks the event goes to: one pending delivery each, written with the event.
    sinks: tuple[str, ...] = ()
    # A PATCH's operations as the client sent them, writeOnly values left out (None otherwise).
    operations: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class StoredEvent:
    """One entry of the event log: a committed change of a resource."""

    seq: int
    id: str
    created: datetime
    source: str
    resource_type: str
    resource_id: str
    external_id: str | None
    action: str
    version: int | None
    actor: dict[str, Any]
    changed: dict[str, Any]
    members: dict[str, Any] | None
    resource: dict[str, Any] | None
    record: dict[str, Any] | None
    # A PATCH's operations (EventDraft.operations).
    operations: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class DeletedResource:
    """A soft-deleted resource: invisible to SCIM and holding no unique values, its document,
    record and history kept until it is restored or purged."""

    id: str
    resource_type: str
    external_id: str | None
    # userName or displayName as stored, what a source may restore by (lower-cased).
    name_key: str | None
    document: dict[str, Any]
    record: dict[str, Any] | None
    version: int
    created: datetime
    deleted: datetime


@dataclass(frozen=True)
class ClaimedDelivery:
    """An event handed to the dispatcher for one sink, and how many times it was tried (this
    attempt included)."""

    event: StoredEvent
    attempts: int


@dataclass(frozen=True)
class FinishedDelivery:
    """The outcome of one attempt, to record (`finish_deliveries`): done, pending again from
    `next_attempt`, or dead."""

    event_seq: int
    state: Literal["done", "pending", "dead"]
    next_attempt: datetime | None = None
    status: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class SinkStats:
    """The state of one sink's deliveries."""

    sink: str
    pending: int
    inflight: int
    dead: int
    done: int
    oldest_pending: datetime | None
    last_error: str | None
    paused: bool
    paused_reason: str | None
    # Pending deliveries that failed before and wait for their next attempt: how many, the most
    # attempts one of them has had, and the soonest time one is tried again.
    retrying: int = 0
    most_attempts: int = 0
    next_attempt: datetime | None = None

    @property
    def state(self) -> Literal["paused", "retrying", "dead", "healthy"]:
        """What an operator reads first: paused by someone, failing and trying again, with
        deliveries given up on, or healthy."""
        if self.paused:
            return "paused"
        if self.retrying:
            return "retrying"
        return "dead" if self.dead else "healthy"


@dataclass(frozen=True)
class ResourcePage:
    """One page of a query: the total that match, and (cursor paging) whether pages follow
    after this one or come before it."""

    total: int
    resources: list[StoredResource]
    more_after: bool = False
    more_before: bool = False


class ResourceNotFound(Exception):
    """No resource with that id (of that type, in that source)."""


class VersionMismatch(Exception):
    """The resource changed since the version the write was based on."""


class UniquenessConflict(Exception):
    """A `uniqueness: server` value is already used by another resource."""

    def __init__(self, attribute: str) -> None:
        super().__init__(attribute)
        self.attribute = attribute


class UnknownMembers(Exception):
    """Member ids that are not resources of the same source."""

    def __init__(self, ids: Sequence[str]) -> None:
        super().__init__(", ".join(ids))
        self.ids = list(ids)


class StorageBackend(ABC):
    """Keeps the host's state; every method is safe to call from many tasks at once."""

    name: ClassVar[str]
    # Dataclass typing the backend's `[storage.<name>]` table.
    settings_type: ClassVar[type]
    # The optional features the backend implements (FEATURES). The host answers
    # ServiceProviderConfig from them and refuses requests that need a missing one with a 400;
    # the storage contract skips their tests, naming the feature.
    features: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, options: Any, *, base_dir: Path) -> None:
        """`options` is an instance of `settings_type`; relative paths resolve against `base_dir`."""
        self.options = options
        self.base_dir = base_dir

    # --- lifecycle -------------------------------------------------------------------------

    @abstractmethod
    async def open(self, *, migrate: bool = True, create: bool = True) -> None:
        """Connect; with `migrate`, first bring the schema up to date (keeping existing data).

        A store that does not exist (an SQLite file not yet made without `create`, a PostgreSQL
        database never created) is a StoreMissing and nothing is created: administrative commands only read and change
        data in a store that `scimhost migrate` or `serve` made."""

    @abstractmethod
    async def close(self) -> None:
        """Release every connection."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise StorageError unless the store answers a trivial query."""

    @abstractmethod
    async def pending_migrations(self) -> list[str]:
        """Names of schema migrations not yet applied (works on a store opened without migrate)."""

    @abstractmethod
    def describe(self) -> str:
        """Where the data lives, for logs and `check`, with any password left out."""

    # --- service accounts and tokens -------------------------------------------------------

    @abstractmethod
    async def ensure_service_account(self, source: str, username: str) -> ServiceAccount:
        """The source's service account, created if it does not exist yet."""

    @abstractmethod
    async def service_accounts(self) -> list[ServiceAccount]:
        """Every service account, ordered by source slug."""

    @abstractmethod
    async def token_hashes(self, source: str, *, now: datetime) -> tuple[str, ...]:
        """The hashes of the tokens that open the source at `now`: the current one, if issued,
        and the one it replaced while its grace period lasts."""

    @abstractmethod
    async def set_token_hash(self, source: str, token_hash: str, *, grace_until: datetime | None = None) -> None:
        """Replace the source's token. The old one stops working at once, or with
        `grace_until` keeps working until then (an older previous token ends at once)."""

    @abstractmethod
    async def revoke_tokens(self, source: str) -> None:
        """End every token of the source at once: the current one, any in grace, and every
        session credential (issued access tokens)."""

    # --- credentials of auth scheme plugins ------------------------------------------------------

    @abstractmethod
    async def add_credential(self, source: str, credential: Credential) -> None:
        """Keep a credential of the source. Raises StorageError if the source has one of the
        same kind and id."""

    @abstractmethod
    async def get_credential(self, source: str, kind: str, credential_id: str) -> Credential | None:
        """The source's credential of that kind and id (expired ones too), or None; never
        another source's."""

    @abstractmethod
    async def list_credentials(self, source: str, kind: str) -> list[Credential]:
        """The source's credentials of a kind, oldest first."""

    @abstractmethod
    async def delete_credential(self, source: str, kind: str, credential_id: str) -> bool:
        """Delete one credential of the source; whether it existed."""

    @abstractmethod
    async def touch_credential(self, source: str, kind: str, credential_id: str, at: datetime) -> None:
        """Record that a credential was used at `at` (never moving `last_used` back)."""

    @abstractmethod
    async def prune_credentials(self, *, before: datetime) -> int:
        """Delete every source's credentials that expired before `before`; how many."""

    # --- per-source activity ---------------------------------------------------------------------

    @abstractmethod
    async def record_activity(
        self,
        source: str,
        minute: datetime,
        *,
        requests: int,
        errors: int,
        last_error_at: datetime | None = None,
        last_error: str | None = None,
    ) -> None:
        """Add one process's counts of a minute to the source's activity (each process adds
        its own; the newest error of the minute wins)."""

    @abstractmethod
    async def source_activity(self, source: str, *, since: datetime) -> SourceActivity:
        """The source's requests and errors since `since`, its last request's minute and its
        last error ever kept (activity older than `before` in prune_activity is gone)."""

    @abstractmethod
    async def record_failed_requests(self, source: str, failures: Sequence[FailedRequest]) -> None:
        """Keep these failed requests of the source (every process adds its own)."""

    @abstractmethod
    async def failed_requests(self, source: str, *, since: datetime, limit: int = 100) -> list[FailedRequest]:
        """The source's failed requests at or after `since`, newest first, at most `limit`."""

    @abstractmethod
    async def prune_activity(self, *, before: datetime) -> int:
        """Delete every source's activity of minutes before `before`, and its failed requests
        from before then; how many rows."""

    @abstractmethod
    async def purge_source(self, source: str) -> dict[str, int]:
        """Delete everything stored for a source: resources (with their records, index rows,
        unique values and memberships), events and their deliveries, activity and failed
        requests, the service account with its tokens, and its credentials. How many of each were deleted, by kind."""

    # --- resources ---------------------------------------------------------------------------

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

    @abstractmethod
    async def list_events(
        self,
        source: str,
        *,
        resource_type: str | None = None,
        resource_id: str | None = None,
        since: datetime | None = None,
        after_seq: int | None = None,
        before_seq: int | None = None,
        newest_first: bool = False,
        limit: int = 100,
    ) -> list[StoredEvent]:
        """The source's events in sequence order (oldest first, or newest first when asked),
        narrowed as asked."""

    @abstractmethod
    async def get_event(self, source: str, event_id: str | int) -> StoredEvent | None:
        """One of the source's events, by its id (`evt_...`) or its sequence number."""

    @abstractmethod
    async def prune_events(self, source: str, *, before: datetime, batch: int = 1000) -> int:
        """Delete the source's events created before `before` that no sink still has to receive
        (their finished deliveries with them), a batch per transaction; how many."""

    # --- deliveries (the dispatcher's queue) -----------------------------------------------------

    @abstractmethod
    async def claim_deliveries(
        self, sink: str, *, now: datetime, limit: int, lease_seconds: float
    ) -> list[ClaimedDelivery]:
        """Take up to `limit` due deliveries of the sink, at most one per resource and only the
        oldest unfinished one of each (per resource, events go out in commit order), marking
        them in flight until `now + lease_seconds`. A delivery whose lease ran out (its
        dispatcher died) is due again."""

    @abstractmethod
    async def finish_delivery(
        self,
        sink: str,
        event_seq: int,
        *,
        state: Literal["done", "pending", "dead"],
        now: datetime,
        next_attempt: datetime | None = None,
        status: int | None = None,
        error: str | None = None,
    ) -> None:
        """Record the outcome of an attempt: done, pending again from `next_attempt`, or dead."""

    async def finish_deliveries(self, sink: str, finished: Sequence[FinishedDelivery], *, now: datetime) -> None:
        """Record the outcomes of a claim's attempts. The dispatcher calls this once per claimed
        batch; a backend that can record them in one transaction overrides it (this default
        records them one by one)."""
        for outcome in finished:
            await self.finish_delivery(
                sink,
                outcome.event_seq,
                state=outcome.state,
                now=now,
                next_attempt=outcome.next_attempt,
                status=outcome.status,
                error=outcome.error,
            )

    async def finish_and_claim(
        self,
        sink: str,
        finished: Sequence[FinishedDelivery],
        *,
        now: datetime,
        limit: int,
        lease_seconds: float,
    ) -> list[ClaimedDelivery]:
        """Record `finished` (as finish_deliveries does), then claim (as claim_deliveries does):
        what the dispatcher does after each round of attempts. A backend that can do both in one
        transaction overrides it (the built-in store does: one transaction instead of two)."""
        if finished:
            await self.finish_deliveries(sink, finished, now=now)
        return await self.claim_deliveries(sink, now=now, limit=limit, lease_seconds=lease_seconds)

    @abstractmethod
    async def deliveries_of(self, source: str, event_seq: int) -> list[dict[str, Any]]:
        """The deliveries of one of the source's events: sink, state, attempts, last_status,
        last_error, done_at."""

    @abstractmethod
    async def reclaim_inflight(self, sink: str, *, now: datetime) -> int:
        """Make every in-flight delivery of the sink pending and due now, attempts kept; how
        many. A dispatcher that has just taken the lease calls it: only one dispatcher runs
        per database, so what is in flight was left by one that died."""

    @abstractmethod
    async def requeue_deliveries(
        self,
        sink: str,
        *,
        now: datetime,
        states: Sequence[str],
        since: datetime | None = None,
        seqs: Sequence[int] | None = None,
    ) -> int:
        """Make the sink's deliveries in `states` (narrowed to events since `since`, or these
        sequence numbers) pending and due now, their attempts counted from 0 again (a backoff
        ended); how many. Replaying done ones sends the same event ids again."""

    @abstractmethod
    async def sink_stats(self, sink: str) -> SinkStats:
        """Counts by state, the oldest pending delivery's event time, the last error, pause
        state, and the pending deliveries that failed before (count, most attempts, soonest
        next attempt)."""

    @abstractmethod
    async def paused_sinks(self) -> dict[str, str | None]:
        """The paused sinks, with the reason each was paused."""

    @abstractmethod
    async def set_sink_paused(self, sink: str, paused: bool, *, reason: str | None, now: datetime) -> None:
        """Pause (no deliveries are claimed) or resume a sink."""

    @abstractmethod
    async def take_lease(self, name: str, owner: str, *, now: datetime, seconds: float) -> bool:
        """Hold (or renew) the named lease until `now + seconds` unless another owner holds it
        unexpired; whether `owner` holds it now."""

    @abstractmethod
    async def release_lease(self, name: str, owner: str) -> None:
        """Give the lease up if `owner` holds it."""

    @abstractmethod
    async def lease_holder(self, name: str, *, now: datetime) -> str | None:
        """Who holds the named lease unexpired, if anyone."""
