"""The values that cross the storage interface: what the host writes and reads, and the errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from scimhost.scim.index import IndexEntry

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


class UnsupportedFilter(Exception):
    """The store cannot answer this filter or sort exactly (an LDAP directory asked to order
    by an attribute without an ordering rule, say): the client gets 400 invalidFilter, never a
    wrong answer. The message says what is unsupported."""


@dataclass(frozen=True)
class Intent:
    """A write about to be made in a resource store that is not the outbox: recorded in the
    outbox first, settled into its event after the write, or abandoned. While it is open, no
    other write takes the same `key`, so an intent left by a crash can be decided by reading
    the resource (scimhost.storage.composed)."""

    id: str
    source: str
    resource_type: str
    # What the write holds while it runs: "id:<resource id>" for an update or delete,
    # "name:<lower-cased userName or displayName>" for a create (or restore).
    key: str
    action: Action
    # The resource's id (None for a create, until settled) and the version read before the
    # write (None for a create).
    resource_id: str | None
    before_version: int | None
    external_id: str | None
    event: EventDraft
    opened: datetime


class IntentBusy(Exception):
    """Another write holds the intent's key (the same resource, or a create of the same name)."""
