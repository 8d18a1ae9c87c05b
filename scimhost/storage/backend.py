"""The interface a storage backend plugin implements (`register_storage_backends`): the roles
a store can take, the all-in-one StorageBackend, and the values that cross the interface (every
name a plugin needs, importable from here).

A deployment composes three roles (docs/storage.md): a ResourceStore (users and groups), an
AccountStore (service accounts, credentials, activity) and an Outbox (events and deliveries). A
plugin implements one or more of them; the host takes the built-in store for the roles the
configured backend lacks. A StorageBackend implements all three in one store, where a write and
its event commit in one transaction.
"""

from __future__ import annotations

from scimhost.storage.accounts import AccountStore
from scimhost.storage.outbox import Outbox
from scimhost.storage.resources import ResourceStore
from scimhost.storage.store import Store
from scimhost.storage.values import (
    FEATURES,
    KEEP,
    Action,
    ClaimedDelivery,
    Credential,
    DeletedResource,
    EventDraft,
    FailedRequest,
    FinishedDelivery,
    Intent,
    IntentBusy,
    Keep,
    MemberChange,
    ResourceNotFound,
    ResourcePage,
    ResourceWrite,
    ServiceAccount,
    SinkStats,
    SourceActivity,
    StorageError,
    StoredEvent,
    StoredResource,
    StoreMissing,
    UniquenessConflict,
    UnknownMembers,
    UnsupportedFilter,
    VersionMismatch,
)

ROLES = ("resources", "accounts", "outbox")
ROLE_TYPES: dict[str, type] = {"resources": ResourceStore, "accounts": AccountStore, "outbox": Outbox}


class StorageBackend(ResourceStore, AccountStore, Outbox):
    """Every role in one store: a write's event is recorded in the write's own transaction.
    `purge_source` deletes everything stored for the source, in every role."""


def roles_of(store_type: type[Store]) -> tuple[str, ...]:
    """The roles a store class implements, in ROLES order."""
    return tuple(role for role in ROLES if issubclass(store_type, ROLE_TYPES[role]))


__all__ = [
    "ROLES",
    "ROLE_TYPES",
    "AccountStore",
    "Outbox",
    "ResourceStore",
    "StorageBackend",
    "Store",
    "roles_of",
    "Action",
    "ClaimedDelivery",
    "Credential",
    "DeletedResource",
    "EventDraft",
    "FEATURES",
    "FailedRequest",
    "FinishedDelivery",
    "Intent",
    "IntentBusy",
    "KEEP",
    "Keep",
    "MemberChange",
    "ResourceNotFound",
    "ResourcePage",
    "ResourceWrite",
    "ServiceAccount",
    "SinkStats",
    "SourceActivity",
    "StorageError",
    "StoreMissing",
    "StoredEvent",
    "StoredResource",
    "UniquenessConflict",
    "UnknownMembers",
    "UnsupportedFilter",
    "VersionMismatch",
]
