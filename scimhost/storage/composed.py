"""Storage composed of roles in different stores, keeping a write's event promise across them.

When the resource store is also the outbox, a write and its event commit in one transaction
and this class only passes calls through. When they are two systems (users in an LDAP
directory, events in the built-in store), a write with an event becomes three steps:

1. an **intent** is recorded in the outbox: the event draft, and the resource's version read
   just before (Outbox.open_intent). The intent holds its key (the resource's id, or for a
   create the unique value it claims) so no other write of that resource runs until it closes;
2. the write is made in the resource store;
3. the intent is **settled** into its event (with the version the write gave) in one outbox
   transaction, or **abandoned** when the store refused the write.

A process that dies between the steps leaves the intent open. Recovery (`recover_intents`, at
start and then periodically, for intents older than the longest a write may take) decides each
from what the resource store shows, and nothing else can have written the resource meanwhile
because the intent still holds it:

- update: applied iff the resource's version is neither the one read before the write nor the
  version of the resource's last event (that one belongs to a write that settled first);
- delete: applied iff the resource is gone and its last event is not a delete;
- restore: applied iff the resource is back and its last event is a delete;
- create: applied iff a resource holds the claimed unique value and it has no event yet (the
  value was checked free just before the intent was opened).

So an acknowledged write's event is never lost and no event is recorded for a write that did
not happen, as long as only scimhost writes the resources (docs/storage.md says what a write
made behind its back can do in the crash window).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from scimhost.scim.index import IndexEntry
from scimhost.scim.query import ResourceQuery
from scimhost.storage.backend import (
    AccountStore,
    ClaimedDelivery,
    Credential,
    DeletedResource,
    EventDraft,
    FailedRequest,
    FinishedDelivery,
    Intent,
    IntentBusy,
    MemberChange,
    Outbox,
    ResourceNotFound,
    ResourcePage,
    ResourceStore,
    ResourceWrite,
    ServiceAccount,
    SinkStats,
    SourceActivity,
    StorageBackend,
    StorageError,
    Store,
    StoredEvent,
    StoredResource,
    UniquenessConflict,
    UnknownMembers,
    UnsupportedFilter,
    VersionMismatch,
)

log = logging.getLogger(__name__)

# The store refused the write: it did not happen, the intent is abandoned.
REFUSED = (ResourceNotFound, VersionMismatch, UniquenessConflict, UnknownMembers, UnsupportedFilter)


def no_fault(point: str) -> None:
    """The fault hook of a production host: nothing."""


class ComposedStorage(StorageBackend):
    """The three roles, each from its own store (some may be the same object)."""

    name = "composed"
    settings_type = type(None)

    def __init__(
        self,
        resources: ResourceStore,
        accounts: AccountStore,
        outbox: Outbox,
        *,
        fault: Callable[[str], None] = no_fault,
        write_timeout: float = 20.0,
        intent_timeout: timedelta = timedelta(seconds=60),
        busy_seconds: float = 10.0,
    ) -> None:
        self.options = None
        self.base_dir = resources.base_dir
        self.resources = resources
        self.accounts = accounts
        self.outbox = outbox
        self.features = resources.features  # type: ignore[misc]
        self.fault = fault
        # A write in the resource store is given up after `write_timeout`; an intent older than
        # `intent_timeout` (well beyond it) belongs to a process that died or gave up.
        self.write_timeout = write_timeout
        self.intent_timeout = intent_timeout
        self.busy_seconds = busy_seconds

    @property
    def split(self) -> bool:
        """Whether resources and events live in different stores (writes go through intents)."""
        return self.resources is not self.outbox  # type: ignore[comparison-overlap]

    @property
    def stores(self) -> list[Store]:
        """Each distinct store once, in role order."""
        seen: list[Store] = []
        for store in (self.resources, self.accounts, self.outbox):
            if not any(store is s for s in seen):
                seen.append(store)
        return seen

    # --- lifecycle -------------------------------------------------------------------------------

    async def open(self, *, migrate: bool = True, create: bool = True) -> None:
        opened: list[Store] = []
        try:
            for store in self.stores:
                await store.open(migrate=migrate, create=create)
                opened.append(store)
        except BaseException:
            for store in opened:
                await store.close()
            raise

    async def close(self) -> None:
        for store in self.stores:
            await store.close()

    async def ping(self) -> None:
        for store in self.stores:
            await store.ping()

    async def pending_migrations(self) -> list[str]:
        return [name for store in self.stores for name in await store.pending_migrations()]

    def describe(self) -> str:
        parts = []
        for store in self.stores:
            roles = [
                role
                for role, held in (("resources", self.resources), ("accounts", self.accounts), ("outbox", self.outbox))
                if held is store
            ]
            parts.append(f"{' and '.join(roles)}: {store.describe()}")
        return "; ".join(parts)

    async def purge_source(self, source: str) -> dict[str, int]:
        deleted: dict[str, int] = {}
        for store in self.stores:
            for kind, count in (await store.purge_source(source)).items():
                deleted[kind] = deleted.get(kind, 0) + count
        return deleted

    # --- writes: through intents when the resource store is not the outbox ----------------------

    async def create_resource(
        self,
        source: str,
        resource_type: str,
        write: ResourceWrite,
        members: Sequence[str] = (),
        *,
        event: EventDraft | None = None,
    ) -> StoredResource:
        if not self.split or event is None:
            return await self.resources.create_resource(source, resource_type, write, members, event=event)
        key = await self._free_unique_key(source, resource_type, write)
        intent = self._intent(source, resource_type, key, event, None, None, write.external_id)
        return await self._through_intent(
            intent, lambda: self.resources.create_resource(source, resource_type, write, members)
        )

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
        if not self.split or event is None:
            return await self.resources.restore_resource(
                source, resource_type, resource_id, write, members, event=event
            )
        intent = self._intent(source, resource_type, f"id:{resource_id}", event, resource_id, None, write.external_id)
        return await self._through_intent(
            intent, lambda: self.resources.restore_resource(source, resource_type, resource_id, write, members)
        )

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
        if not self.split or event is None:
            return await self.resources.update_resource(
                source,
                resource_type,
                resource_id,
                expected_version=expected_version,
                write=write,
                member_changes=member_changes,
                event=event,
            )
        before = await self.resources.get_resource(source, resource_type, resource_id, members=False, groups=False)
        if before is None:
            raise ResourceNotFound()
        external_id = write.external_id if write is not None else _external_id(before)
        intent = self._intent(
            source, resource_type, f"id:{resource_id}", event, resource_id, before.version, external_id
        )
        return await self._through_intent(
            intent,
            lambda: self.resources.update_resource(
                source,
                resource_type,
                resource_id,
                expected_version=expected_version,
                write=write,
                member_changes=member_changes,
            ),
        )

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
        if not self.split or event is None:
            await self.resources.delete_resource(
                source, resource_type, resource_id, expected_version=expected_version, event=event, soft=soft
            )
            return
        before = await self.resources.get_resource(source, resource_type, resource_id, members=False, groups=False)
        if before is None:
            raise ResourceNotFound()
        intent = self._intent(
            source, resource_type, f"id:{resource_id}", event, resource_id, before.version, _external_id(before)
        )

        async def delete() -> StoredResource:
            await self.resources.delete_resource(
                source, resource_type, resource_id, expected_version=expected_version, soft=soft
            )
            return before

        await self._through_intent(intent, delete)

    def _intent(
        self,
        source: str,
        resource_type: str,
        key: str,
        event: EventDraft,
        resource_id: str | None,
        before_version: int | None,
        external_id: str | None,
    ) -> Intent:
        return Intent(
            id=f"int_{uuid.uuid4().hex}",
            source=source,
            resource_type=resource_type,
            key=key,
            action=event.action,
            resource_id=resource_id,
            before_version=before_version,
            external_id=external_id,
            event=event,
            opened=_now(),
        )

    async def _free_unique_key(self, source: str, resource_type: str, write: ResourceWrite) -> str:
        """The key a create holds: the first of its unique values, checked free (a create that
        claims none holds a key of its own and cannot be recovered by lookup)."""
        if not write.unique_values:
            return f"new:{uuid.uuid4().hex}"
        attribute, value = min(write.unique_values.items())
        if await self._holder(source, resource_type, attribute, value) is not None:
            raise UniquenessConflict(attribute)
        return f"unique:{attribute}:{value}"

    async def _holder(self, source: str, resource_type: str, attribute: str, value: str) -> StoredResource | None:
        return await self.resources.find_by_unique_value(source, resource_type, attribute, value)

    async def _through_intent(self, intent: Intent, write: Callable[[], Any]) -> StoredResource:
        await self._open_intent(intent)
        try:
            self.fault("after_intent")
            async with asyncio.timeout(self.write_timeout):
                stored: StoredResource = await write()
        except REFUSED:
            await self.outbox.abandon_intent(intent.id)
            raise
        except (StorageError, TimeoutError) as exc:
            # The outcome is unknown (the directory may have applied it): decide by reading,
            # now if the store answers, else later by recovery.
            try:
                await self._decide(intent)
            except StorageError:
                log.warning("the outcome of %s on %s is unknown; recovery will decide", intent.action, intent.key)
            if isinstance(exc, TimeoutError):
                raise StorageError(f"the resource store did not answer within {self.write_timeout:g} s") from exc
            raise
        self.fault("after_resource_write")
        version = None if intent.action == "delete" else stored.version
        try:
            await self.outbox.settle_intent(
                intent.id, resource_id=stored.id, version=version, external_id=intent.external_id, now=_now()
            )
        except StorageError:
            # The write happened and its intent is kept: recovery records the event later.
            log.exception("the event of %s on %s is left to recovery", intent.action, intent.key)
        return stored

    async def _open_intent(self, intent: Intent) -> None:
        deadline = asyncio.get_running_loop().time() + self.busy_seconds
        delay = 0.005
        while True:
            try:
                await self.outbox.open_intent(intent)
                return
            except IntentBusy:
                if asyncio.get_running_loop().time() + delay > deadline:
                    raise StorageError(f"another write of this {intent.resource_type} is still in progress") from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.2)

    # --- recovery ----------------------------------------------------------------------------------

    async def recover_intents(self, *, now: datetime | None = None) -> dict[str, int]:
        """Decide every intent older than `intent_timeout`: settled (the write happened) or
        abandoned; how many of each. Raises StorageError when a store does not answer."""
        if not self.split:
            return {"settled": 0, "abandoned": 0}
        cutoff = (now or _now()) - self.intent_timeout
        counts = {"settled": 0, "abandoned": 0}
        while True:
            intents = await self.outbox.open_intents(opened_before=cutoff)
            for intent in intents:
                counts["settled" if await self._decide(intent) else "abandoned"] += 1
            if len(intents) < 100:
                return counts

    async def _decide(self, intent: Intent) -> bool:
        """Settle or abandon an open intent from what the resource store shows; whether the
        write happened."""
        applied, resource = await self._applied(intent)
        if not applied or resource is None:
            await self.outbox.abandon_intent(intent.id)
            log.info("recovery: %s on %s did not happen", intent.action, intent.key)
            return False
        version = None if intent.action == "delete" else resource.version
        await self.outbox.settle_intent(
            intent.id, resource_id=resource.id, version=version, external_id=intent.external_id, now=_now()
        )
        log.info("recovery: %s on %s happened; its event is recorded", intent.action, intent.key)
        return True

    async def _applied(self, intent: Intent) -> tuple[bool, StoredResource | None]:
        source, resource_type = intent.source, intent.resource_type
        if intent.key.startswith("unique:"):
            _, attribute, value = intent.key.split(":", 2)
            holder = await self._holder(source, resource_type, attribute, value)
            if holder is None:
                return False, None
            return await self._last_event(source, holder.id) is None, holder
        if intent.resource_id is None:
            return False, None  # a create that claimed no unique value cannot be found again
        current = await self.resources.get_resource(
            source, resource_type, intent.resource_id, members=False, groups=False
        )
        last = await self._last_event(source, intent.resource_id)
        gone = StoredResource(intent.resource_id, resource_type, {}, 0, intent.opened, intent.opened)
        if intent.action == "delete":
            return current is None and (last is None or last.action != "delete"), gone
        if intent.action == "restore":
            return current is not None and last is not None and last.action == "delete", current
        if current is None:
            return False, None
        settled_versions = {intent.before_version, last.version if last is not None else None}
        return current.version not in settled_versions, current

    async def _last_event(self, source: str, resource_id: str) -> StoredEvent | None:
        events = await self.outbox.list_events(source, resource_id=resource_id, newest_first=True, limit=1)
        return events[0] if events else None

    # --- resources: reads -------------------------------------------------------------------------

    async def get_resource(
        self, source: str, resource_type: str, resource_id: str, *, members: bool = True, groups: bool = True
    ) -> StoredResource | None:
        return await self.resources.get_resource(source, resource_type, resource_id, members=members, groups=groups)

    def iter_members(self, source: str, group_id: str, *, batch: int = 1000) -> AsyncIterator[list[dict[str, Any]]]:
        return self.resources.iter_members(source, group_id, batch=batch)

    async def count_members(self, source: str, group_id: str) -> int:
        return await self.resources.count_members(source, group_id)

    async def stale_index(
        self, source: str, resource_type: str, fingerprint: str, *, after: str | None = None, limit: int = 200
    ) -> list[StoredResource]:
        return await self.resources.stale_index(source, resource_type, fingerprint, after=after, limit=limit)

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
        return await self.resources.reindex_resource(
            source,
            resource_type,
            resource_id,
            version=version,
            index=index,
            unique_values=unique_values,
            fingerprint=fingerprint,
        )

    async def find_by_unique_value(
        self, source: str, resource_type: str, attribute: str, value: str
    ) -> StoredResource | None:
        return await self.resources.find_by_unique_value(source, resource_type, attribute, value)

    async def get_record(self, source: str, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        return await self.resources.get_record(source, resource_type, resource_id)

    async def list_resources(
        self, source: str, resource_type: str, query: ResourceQuery, *, members: bool = True, groups: bool = True
    ) -> ResourcePage:
        return await self.resources.list_resources(source, resource_type, query, members=members, groups=groups)

    async def deleted_resources(
        self, source: str, resource_type: str, *, limit: int = 100, before: datetime | None = None
    ) -> list[DeletedResource]:
        return await self.resources.deleted_resources(source, resource_type, limit=limit, before=before)

    async def find_deleted(
        self,
        source: str,
        resource_type: str,
        *,
        resource_id: str | None = None,
        external_id: str | None = None,
        name_key: str | None = None,
    ) -> DeletedResource | None:
        return await self.resources.find_deleted(
            source, resource_type, resource_id=resource_id, external_id=external_id, name_key=name_key
        )

    async def purge_deleted(self, source: str, *, before: datetime, batch: int = 1000) -> int:
        return await self.resources.purge_deleted(source, before=before, batch=batch)

    # --- accounts -----------------------------------------------------------------------------------

    async def ensure_service_account(self, source: str, username: str) -> ServiceAccount:
        return await self.accounts.ensure_service_account(source, username)

    async def service_accounts(self) -> list[ServiceAccount]:
        return await self.accounts.service_accounts()

    async def token_hashes(self, source: str, *, now: datetime) -> tuple[str, ...]:
        return await self.accounts.token_hashes(source, now=now)

    async def set_token_hash(self, source: str, token_hash: str, *, grace_until: datetime | None = None) -> None:
        await self.accounts.set_token_hash(source, token_hash, grace_until=grace_until)

    async def revoke_tokens(self, source: str) -> None:
        await self.accounts.revoke_tokens(source)

    async def add_credential(self, source: str, credential: Credential) -> None:
        await self.accounts.add_credential(source, credential)

    async def get_credential(self, source: str, kind: str, credential_id: str) -> Credential | None:
        return await self.accounts.get_credential(source, kind, credential_id)

    async def list_credentials(self, source: str, kind: str) -> list[Credential]:
        return await self.accounts.list_credentials(source, kind)

    async def delete_credential(self, source: str, kind: str, credential_id: str) -> bool:
        return await self.accounts.delete_credential(source, kind, credential_id)

    async def touch_credential(self, source: str, kind: str, credential_id: str, at: datetime) -> None:
        await self.accounts.touch_credential(source, kind, credential_id, at)

    async def prune_credentials(self, *, before: datetime) -> int:
        return await self.accounts.prune_credentials(before=before)

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
        await self.accounts.record_activity(
            source, minute, requests=requests, errors=errors, last_error_at=last_error_at, last_error=last_error
        )

    async def source_activity(self, source: str, *, since: datetime) -> SourceActivity:
        return await self.accounts.source_activity(source, since=since)

    async def record_failed_requests(self, source: str, failures: Sequence[FailedRequest]) -> None:
        await self.accounts.record_failed_requests(source, failures)

    async def failed_requests(self, source: str, *, since: datetime, limit: int = 100) -> list[FailedRequest]:
        return await self.accounts.failed_requests(source, since=since, limit=limit)

    async def prune_activity(self, *, before: datetime) -> int:
        return await self.accounts.prune_activity(before=before)

    # --- the outbox ---------------------------------------------------------------------------------

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
        return await self.outbox.list_events(
            source,
            resource_type=resource_type,
            resource_id=resource_id,
            since=since,
            after_seq=after_seq,
            before_seq=before_seq,
            newest_first=newest_first,
            limit=limit,
        )

    async def get_event(self, source: str, event_id: str | int) -> StoredEvent | None:
        return await self.outbox.get_event(source, event_id)

    async def prune_events(self, source: str, *, before: datetime, batch: int = 1000) -> int:
        return await self.outbox.prune_events(source, before=before, batch=batch)

    async def claim_deliveries(
        self, sink: str, *, now: datetime, limit: int, lease_seconds: float
    ) -> list[ClaimedDelivery]:
        return await self.outbox.claim_deliveries(sink, now=now, limit=limit, lease_seconds=lease_seconds)

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
        await self.outbox.finish_delivery(
            sink, event_seq, state=state, now=now, next_attempt=next_attempt, status=status, error=error
        )

    async def finish_deliveries(self, sink: str, finished: Sequence[FinishedDelivery], *, now: datetime) -> None:
        await self.outbox.finish_deliveries(sink, finished, now=now)

    async def finish_and_claim(
        self,
        sink: str,
        finished: Sequence[FinishedDelivery],
        *,
        now: datetime,
        limit: int,
        lease_seconds: float,
    ) -> list[ClaimedDelivery]:
        return await self.outbox.finish_and_claim(sink, finished, now=now, limit=limit, lease_seconds=lease_seconds)

    async def deliveries_of(self, source: str, event_seq: int) -> list[dict[str, Any]]:
        return await self.outbox.deliveries_of(source, event_seq)

    async def reclaim_inflight(self, sink: str, *, now: datetime) -> int:
        return await self.outbox.reclaim_inflight(sink, now=now)

    async def requeue_deliveries(
        self,
        sink: str,
        *,
        now: datetime,
        states: Sequence[str],
        since: datetime | None = None,
        seqs: Sequence[int] | None = None,
    ) -> int:
        return await self.outbox.requeue_deliveries(sink, now=now, states=states, since=since, seqs=seqs)

    async def sink_stats(self, sink: str) -> SinkStats:
        return await self.outbox.sink_stats(sink)

    async def paused_sinks(self) -> dict[str, str | None]:
        return await self.outbox.paused_sinks()

    async def set_sink_paused(self, sink: str, paused: bool, *, reason: str | None, now: datetime) -> None:
        await self.outbox.set_sink_paused(sink, paused, reason=reason, now=now)

    async def take_lease(self, name: str, owner: str, *, now: datetime, seconds: float) -> bool:
        return await self.outbox.take_lease(name, owner, now=now, seconds=seconds)

    async def release_lease(self, name: str, owner: str) -> None:
        await self.outbox.release_lease(name, owner)

    async def lease_holder(self, name: str, *, now: datetime) -> str | None:
        return await self.outbox.lease_holder(name, now=now)

    async def open_intent(self, intent: Intent) -> None:
        await self.outbox.open_intent(intent)

    async def settle_intent(
        self,
        intent_id: str,
        *,
        resource_id: str,
        version: int | None,
        external_id: str | None,
        now: datetime,
    ) -> bool:
        return await self.outbox.settle_intent(
            intent_id, resource_id=resource_id, version=version, external_id=external_id, now=now
        )

    async def abandon_intent(self, intent_id: str) -> None:
        await self.outbox.abandon_intent(intent_id)

    async def open_intents(self, *, opened_before: datetime, limit: int = 100) -> list[Intent]:
        return await self.outbox.open_intents(opened_before=opened_before, limit=limit)


def _external_id(resource: StoredResource) -> str | None:
    value = resource.document.get("externalId")
    return value if isinstance(value, str) else None


def _now() -> datetime:
    return datetime.now(UTC)
