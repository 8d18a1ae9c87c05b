"""scimhost storage backend `memory`: everything in this process's memory, nothing kept across
restarts. The reference backend: what a storage plugin must do, in one readable module.

Every method changes its state without awaiting anything in between, so each write is atomic
on the event loop by construction (a real store needs transactions for that). Filters are
evaluated with the core's reference evaluator (`scimhost.scim.query_eval`), on the same index
entries the host hands every backend.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from scimhost.hookspecs import hookimpl
from scimhost.scim.query import ResourceQuery
from scimhost.scim.query_eval import Candidate, in_sort_order, matches
from scimhost.storage.backend import (
    ClaimedDelivery,
    Credential,
    DeletedResource,
    EventDraft,
    FailedRequest,
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
    StorageBackend,
    StorageError,
    StoredEvent,
    StoredResource,
    UniquenessConflict,
    UnknownMembers,
    VersionMismatch,
)

UNFINISHED = ("pending", "inflight")


@dataclass(frozen=True)
class MemorySettings:
    """The `[storage.memory]` table: nothing to set."""


@dataclass
class _Account:
    username: str
    created: datetime
    token_hash: str | None = None
    token_created: datetime | None = None
    previous_hash: str | None = None
    previous_expires: datetime | None = None


@dataclass
class _Resource:
    id: str
    source: str
    type: str
    write: ResourceWrite
    password_hash: str | None
    version: int
    created: datetime
    last_modified: datetime


@dataclass
class _Delivery:
    source: str
    key: str
    state: str = "pending"
    attempts: int = 0
    next_attempt: datetime = field(default_factory=lambda: datetime.now(UTC))
    lease_until: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None
    done_at: datetime | None = None


class MemoryBackend(StorageBackend):
    """All state in dicts; a source's data is keyed by its slug, so no lookup crosses sources."""

    name = "memory"
    settings_type = MemorySettings
    features = frozenset({"sort", "cursor_paging", "soft_delete", "all_filters"})

    def __init__(self, options: MemorySettings, *, base_dir: Path) -> None:
        super().__init__(options, base_dir=base_dir)
        self._open = False
        self._accounts: dict[str, _Account] = {}
        # (source, id) -> resource: every read names its source, so another source's ids miss.
        self._resources: dict[tuple[str, str], _Resource] = {}
        # Soft-deleted resources by (source, id).
        self._deleted: dict[tuple[str, str], DeletedResource] = {}
        # (source, type, attribute, normalised value) -> id of the resource holding it.
        self._unique: dict[tuple[str, str, str, str], str] = {}
        # (source, group id) -> {member id: (row number, member type)}, rows in insertion order.
        self._members: dict[tuple[str, str], dict[str, tuple[int, str]]] = {}
        self._rows = itertools.count(1)
        self._events: dict[int, StoredEvent] = {}
        self._seqs = itertools.count(1)
        self._deliveries: dict[tuple[str, int], _Delivery] = {}
        self._paused: dict[str, str | None] = {}
        self._leases: dict[str, tuple[str, datetime]] = {}
        self._activity: dict[tuple[str, datetime], list[Any]] = {}
        self._failures: list[tuple[str, FailedRequest]] = []
        self._credentials: dict[tuple[str, str, str], Credential] = {}
        self._intents: dict[str, Intent] = {}

    # --- lifecycle -------------------------------------------------------------------------

    async def open(self, *, migrate: bool = True, create: bool = True) -> None:
        self._open = True  # nothing to create or migrate: a new process starts empty

    async def close(self) -> None:
        self._open = False

    async def ping(self) -> None:
        if not self._open:
            raise StorageError("the memory store is not open")

    async def pending_migrations(self) -> list[str]:
        return []

    def describe(self) -> str:
        return "memory (nothing is kept across restarts)"

    # --- service accounts and tokens ---------------------------------------------------------

    async def ensure_service_account(self, source: str, username: str) -> ServiceAccount:
        account = self._accounts.setdefault(source, _Account(username, _now()))
        return _service_account(source, account)

    async def service_accounts(self) -> list[ServiceAccount]:
        return [_service_account(s, a) for s, a in sorted(self._accounts.items())]

    async def token_hashes(self, source: str, *, now: datetime) -> tuple[str, ...]:
        account = self._accounts.get(source)
        if account is None:
            return ()
        hashes = [account.token_hash] if account.token_hash else []
        if account.previous_hash and account.previous_expires and now < account.previous_expires:
            hashes.append(account.previous_hash)
        return tuple(hashes)

    async def set_token_hash(self, source: str, token_hash: str, *, grace_until: datetime | None = None) -> None:
        account = self._accounts.get(source)
        if account is None:
            raise StorageError(f"source {source!r} has no service account")
        account.previous_hash = account.token_hash if grace_until else None
        account.previous_expires = grace_until
        account.token_hash, account.token_created = token_hash, _now()

    async def revoke_tokens(self, source: str) -> None:
        account = self._accounts.get(source)
        if account is not None:
            account.token_hash = account.token_created = account.previous_hash = account.previous_expires = None
        self._credentials = {k: c for k, c in self._credentials.items() if not (k[0] == source and c.session)}

    # --- credentials of auth scheme plugins ------------------------------------------------------

    async def add_credential(self, source: str, credential: Credential) -> None:
        key = (source, credential.kind, credential.id)
        if key in self._credentials:
            raise StorageError(f"source {source!r} already has a {credential.kind} {credential.id!r}")
        self._credentials[key] = credential

    async def get_credential(self, source: str, kind: str, credential_id: str) -> Credential | None:
        return self._credentials.get((source, kind, credential_id))

    async def list_credentials(self, source: str, kind: str) -> list[Credential]:
        mine = [c for (s, k, _), c in self._credentials.items() if s == source and k == kind]
        return sorted(mine, key=lambda c: c.created)  # stable: equal times keep insertion order

    async def delete_credential(self, source: str, kind: str, credential_id: str) -> bool:
        return self._credentials.pop((source, kind, credential_id), None) is not None

    async def touch_credential(self, source: str, kind: str, credential_id: str, at: datetime) -> None:
        key = (source, kind, credential_id)
        found = self._credentials.get(key)
        if found is not None and (found.last_used is None or found.last_used < at):
            self._credentials[key] = dataclasses.replace(found, last_used=at)

    async def prune_credentials(self, *, before: datetime) -> int:
        old = [k for k, c in self._credentials.items() if c.expires is not None and c.expires < before]
        for key in old:
            del self._credentials[key]
        return len(old)

    # --- per-source activity -------------------------------------------------------------------

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
        row = self._activity.setdefault((source, minute), [0, 0, None, None])
        row[0] += requests
        row[1] += errors
        if last_error_at is not None and (row[2] is None or last_error_at > row[2]):
            row[2], row[3] = last_error_at, last_error

    async def source_activity(self, source: str, *, since: datetime) -> SourceActivity:
        rows = [(minute, row) for (s, minute), row in self._activity.items() if s == source]
        recent = [row for minute, row in rows if minute >= since]
        errors = [row for _, row in rows if row[2] is not None]
        last_error = max(errors, key=lambda row: row[2]) if errors else None
        return SourceActivity(
            requests=sum(row[0] for row in recent),
            errors=sum(row[1] for row in recent),
            last_request=max((minute for minute, _ in rows), default=None),
            last_error_at=last_error[2] if last_error else None,
            last_error=last_error[3] if last_error else None,
        )

    async def record_failed_requests(self, source: str, failures: Sequence[FailedRequest]) -> None:
        self._failures.extend((source, failure) for failure in failures)

    async def failed_requests(self, source: str, *, since: datetime, limit: int = 100) -> list[FailedRequest]:
        mine = [f for s, f in reversed(self._failures) if s == source and f.at >= since]
        return sorted(mine, key=lambda f: f.at, reverse=True)[:limit]  # stable: newest added first

    async def prune_activity(self, *, before: datetime) -> int:
        old = [key for key in self._activity if key[1] < before]
        for key in old:
            del self._activity[key]
        kept = [(s, f) for s, f in self._failures if f.at >= before]
        pruned, self._failures = len(self._failures) - len(kept), kept
        return len(old) + pruned

    async def purge_source(self, source: str) -> dict[str, int]:
        deleted: dict[str, int] = {"users": 0, "groups": 0, "other resources": 0}
        for key in [k for k in self._resources if k[0] == source]:
            kind = {"User": "users", "Group": "groups"}.get(self._resources.pop(key).type, "other resources")
            deleted[kind] += 1
        self._unique = {k: v for k, v in self._unique.items() if k[0] != source}
        self._members = {k: v for k, v in self._members.items() if k[0] != source}
        seqs = {seq for seq, event in self._events.items() if event.source == source}
        deleted["deliveries"] = len([k for k in self._deliveries if k[1] in seqs])
        self._deliveries = {k: d for k, d in self._deliveries.items() if k[1] not in seqs}
        deleted["events"] = len(seqs)
        intents = {k: i for k, i in self._intents.items() if i.source != source}
        deleted["open intents"], self._intents = len(self._intents) - len(intents), intents
        self._events = {seq: e for seq, e in self._events.items() if seq not in seqs}
        activity = {k: v for k, v in self._activity.items() if k[0] != source}
        deleted["activity rows"] = len(self._activity) - len(activity)
        self._activity = activity
        failures = [(s, f) for s, f in self._failures if s != source]
        deleted["failed requests"], self._failures = len(self._failures) - len(failures), failures
        credentials = {k: c for k, c in self._credentials.items() if k[0] != source}
        deleted["credentials"], self._credentials = len(self._credentials) - len(credentials), credentials
        deleted["service accounts"] = 1 if self._accounts.pop(source, None) else 0
        kept = {k: d for k, d in self._deleted.items() if k[0] != source}
        deleted["soft-deleted resources"], self._deleted = len(self._deleted) - len(kept), kept
        return deleted

    # --- intents of writes in another resource store ------------------------------------------------

    async def open_intent(self, intent: Intent) -> None:
        held = (intent.source, intent.resource_type, intent.key)
        if any((i.source, i.resource_type, i.key) == held for i in self._intents.values()):
            raise IntentBusy(intent.key)
        self._intents[intent.id] = copy.deepcopy(intent)

    async def settle_intent(
        self,
        intent_id: str,
        *,
        resource_id: str,
        version: int | None,
        external_id: str | None,
        now: datetime,
    ) -> bool:
        intent = self._intents.pop(intent_id, None)
        if intent is None:
            return False
        self._append_event(intent.source, intent.resource_type, resource_id, external_id, version, intent.event, now)
        return True

    async def abandon_intent(self, intent_id: str) -> None:
        self._intents.pop(intent_id, None)

    async def open_intents(self, *, opened_before: datetime, limit: int = 100) -> list[Intent]:
        old = sorted((i for i in self._intents.values() if i.opened < opened_before), key=lambda i: (i.opened, i.id))
        return copy.deepcopy(old[:limit])

    # --- resources -------------------------------------------------------------------------------

    async def create_resource(
        self,
        source: str,
        resource_type: str,
        write: ResourceWrite,
        members: Sequence[str] = (),
        *,
        event: EventDraft | None = None,
    ) -> StoredResource:
        resource_id = str(uuid.uuid4())
        # Check everything first, then change: a refused write leaves no trace.
        self._check_unique(source, resource_type, resource_id, write.unique_values)
        self._check_members(source, resource_id, members)
        now = _now()
        password = None if isinstance(write.password_hash, Keep) else write.password_hash
        resource = _Resource(resource_id, source, resource_type, copy.deepcopy(write), password, 1, now, now)
        self._resources[(source, resource_id)] = resource
        self._set_unique(source, resource_type, resource_id, write.unique_values)
        if members:
            self._apply_members(source, resource_id, [MemberChange("add", tuple(members))])
        if event is not None:
            self._record_event(resource, event, now)
        return self._stored(resource, members=False, groups=False)

    async def get_resource(
        self, source: str, resource_type: str, resource_id: str, *, members: bool = True, groups: bool = True
    ) -> StoredResource | None:
        resource = self._find(source, resource_type, resource_id)
        return self._stored(resource, members=members, groups=groups) if resource else None

    async def iter_members(
        self, source: str, group_id: str, *, batch: int = 1000
    ) -> AsyncIterator[list[dict[str, Any]]]:
        rows = self._member_rows(source, group_id)
        for start in range(0, len(rows), batch):
            yield rows[start : start + batch]

    async def get_record(self, source: str, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        resource = self._find(source, resource_type, resource_id)
        return copy.deepcopy(resource.write.record) if resource else None

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
        resource = self._found(source, resource_type, resource_id, expected_version)
        if write is not None:
            self._check_unique(source, resource_type, resource_id, write.unique_values)
        for change in member_changes:
            if change.kind != "remove":
                self._check_members(source, resource_id, change.ids)
        now = _now()
        if write is not None:
            self._clear_unique(source, resource_type, resource_id)
            self._set_unique(source, resource_type, resource_id, write.unique_values)
            password = resource.password_hash if isinstance(write.password_hash, Keep) else write.password_hash
            resource.write, resource.password_hash = copy.deepcopy(write), password
        self._apply_members(source, resource_id, member_changes)
        resource.version += 1
        resource.last_modified = now
        if event is not None:
            self._record_event(resource, event, now)
        return self._stored(resource, members=False, groups=True)

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
        resource = self._found(source, resource_type, resource_id, expected_version)
        if soft:
            document = copy.deepcopy(resource.write.document)
            name = document.get("userName") or document.get("displayName")
            self._deleted[(source, resource_id)] = DeletedResource(
                resource_id,
                resource_type,
                resource.write.external_id,
                name.lower() if isinstance(name, str) else None,
                document,
                copy.deepcopy(resource.write.record),
                resource.version,
                resource.created,
                _now(),
            )
        del self._resources[(source, resource_id)]
        self._clear_unique(source, resource_type, resource_id)
        self._members.pop((source, resource_id), None)
        for rows in (rows for (s, _), rows in self._members.items() if s == source):
            rows.pop(resource_id, None)  # it is no longer anybody's member
        if event is not None:
            self._record_event(resource, event, _now(), deleted=True)

    async def deleted_resources(
        self, source: str, resource_type: str, *, limit: int = 100, before: datetime | None = None
    ) -> list[DeletedResource]:
        found = [
            d
            for (s, _), d in self._deleted.items()
            if s == source and d.resource_type == resource_type and (before is None or d.deleted < before)
        ]
        found.sort(key=lambda d: d.deleted, reverse=True)
        return copy.deepcopy(found[: max(limit, 0)])

    async def find_deleted(
        self,
        source: str,
        resource_type: str,
        *,
        resource_id: str | None = None,
        external_id: str | None = None,
        name_key: str | None = None,
    ) -> DeletedResource | None:
        if resource_id is None and external_id is None and name_key is None:
            return None
        found = [
            d
            for (s, _), d in self._deleted.items()
            if s == source
            and d.resource_type == resource_type
            and (resource_id is None or d.id == resource_id)
            and (external_id is None or d.external_id == external_id)
            and (name_key is None or d.name_key == name_key)
        ]
        return copy.deepcopy(max(found, key=lambda d: d.deleted)) if found else None

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
        kept = self._deleted.get((source, resource_id))
        if kept is None or kept.resource_type != resource_type:
            raise ResourceNotFound()
        self._check_unique(source, resource_type, resource_id, write.unique_values)
        self._check_members(source, resource_id, members)
        now = _now()
        password = None if isinstance(write.password_hash, Keep) else write.password_hash
        resource = _Resource(
            resource_id, source, resource_type, copy.deepcopy(write), password, kept.version + 1, kept.created, now
        )
        del self._deleted[(source, resource_id)]
        self._resources[(source, resource_id)] = resource
        self._set_unique(source, resource_type, resource_id, write.unique_values)
        if members:
            self._apply_members(source, resource_id, [MemberChange("add", tuple(members))])
        if event is not None:
            self._record_event(resource, event, now)
        return self._stored(resource, members=False, groups=False)

    async def purge_deleted(self, source: str, *, before: datetime, batch: int = 1000) -> int:
        old = [k for k, d in self._deleted.items() if k[0] == source and d.deleted < before]
        for key in old:
            del self._deleted[key]
        return len(old)

    async def list_resources(
        self, source: str, resource_type: str, query: ResourceQuery, *, members: bool = True, groups: bool = True
    ) -> ResourcePage:
        found = [r for (s, _), r in self._resources.items() if s == source and r.type == resource_type]
        if query.filter is not None:
            found = [r for r in found if matches(query.filter, self._candidate(r))]
        total = len(found)
        if query.count <= 0:
            return ResourcePage(total, [])
        found = in_sort_order(found, self._candidate, query.sort)

        def page(items: list[_Resource]) -> list[StoredResource]:
            return [self._stored(r, members=members, groups=groups) for r in items]

        if query.after is not None:
            following = [r for r in found if (r.created, r.id) > query.after]
            return ResourcePage(
                total, page(following[: query.count]), more_after=len(following) > query.count, more_before=True
            )
        if query.before is not None:
            preceding = [r for r in found if (r.created, r.id) < query.before]
            shown = preceding[-query.count :]
            return ResourcePage(total, page(shown), more_after=True, more_before=len(preceding) > query.count)
        if query.cursor_paging:
            return ResourcePage(total, page(found[: query.count]), more_after=len(found) > query.count)
        start = max(query.start_index, 1) - 1
        return ResourcePage(total, page(found[start : start + query.count]))

    # --- the event log -------------------------------------------------------------------------

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
        chosen = [
            e
            for e in self._events.values()
            if e.source == source
            and (resource_type is None or e.resource_type == resource_type)
            and (resource_id is None or e.resource_id == resource_id)
            and (since is None or e.created >= since)
            and (after_seq is None or e.seq > after_seq)
            and (before_seq is None or e.seq < before_seq)
        ]
        chosen.sort(key=lambda e: e.seq, reverse=newest_first)
        return [copy.deepcopy(e) for e in chosen[: max(limit, 0)]]  # the caller's own copies

    async def get_event(self, source: str, event_id: str | int) -> StoredEvent | None:
        for event in self._events.values():
            if event.source == source and (
                event.seq == event_id if isinstance(event_id, int) else event.id == event_id
            ):
                return copy.deepcopy(event)
        return None

    async def prune_events(self, source: str, *, before: datetime, batch: int = 1000) -> int:
        owed = {seq for (_, seq), d in self._deliveries.items() if d.state in UNFINISHED}
        old = [s for s, e in self._events.items() if e.source == source and e.created < before and s not in owed]
        for seq in old:
            del self._events[seq]
        self._deliveries = {k: d for k, d in self._deliveries.items() if k[1] not in old}
        return len(old)

    # --- deliveries ------------------------------------------------------------------------------

    async def claim_deliveries(
        self, sink: str, *, now: datetime, limit: int, lease_seconds: float
    ) -> list[ClaimedDelivery]:
        claimed: list[ClaimedDelivery] = []
        seen_keys: set[str] = set()
        for (name, seq), delivery in sorted(self._deliveries.items(), key=lambda item: item[0][1]):
            if name != sink or delivery.state not in UNFINISHED or len(claimed) >= limit:
                continue
            # Only the oldest unfinished delivery of a resource goes: per resource, in order.
            if delivery.key in seen_keys:
                continue
            seen_keys.add(delivery.key)
            due = (delivery.state == "pending" and delivery.next_attempt <= now) or (
                delivery.state == "inflight" and delivery.lease_until is not None and delivery.lease_until < now
            )
            if due:
                delivery.state, delivery.attempts = "inflight", delivery.attempts + 1
                delivery.lease_until = now + timedelta(seconds=lease_seconds)
                claimed.append(ClaimedDelivery(copy.deepcopy(self._events[seq]), delivery.attempts))
        return claimed

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
        delivery = self._deliveries.get((sink, event_seq))
        if delivery is None:
            return
        delivery.state, delivery.lease_until = state, None
        delivery.last_status, delivery.last_error = status, error[:2000] if error else None
        if state == "done":
            delivery.done_at = now
        if state == "pending":
            delivery.next_attempt = next_attempt or now

    async def deliveries_of(self, source: str, event_seq: int) -> list[dict[str, Any]]:
        return [
            {
                "sink": sink,
                "state": d.state,
                "attempts": d.attempts,
                "last_status": d.last_status,
                "last_error": d.last_error,
                "done_at": d.done_at,
            }
            for (sink, seq), d in sorted(self._deliveries.items())
            if seq == event_seq and d.source == source
        ]

    async def reclaim_inflight(self, sink: str, *, now: datetime) -> int:
        inflight = [d for (name, _), d in self._deliveries.items() if name == sink and d.state == "inflight"]
        for delivery in inflight:
            delivery.state, delivery.next_attempt, delivery.lease_until = "pending", now, None
        return len(inflight)

    async def requeue_deliveries(
        self,
        sink: str,
        *,
        now: datetime,
        states: Sequence[str],
        since: datetime | None = None,
        seqs: Sequence[int] | None = None,
    ) -> int:
        chosen = [
            d
            for (name, seq), d in self._deliveries.items()
            if name == sink
            and d.state in states
            and (since is None or self._events[seq].created >= since)
            and (seqs is None or seq in seqs)
        ]
        for delivery in chosen:
            delivery.state, delivery.next_attempt, delivery.lease_until, delivery.attempts = "pending", now, None, 0
        return len(chosen)

    async def sink_stats(self, sink: str) -> SinkStats:
        mine = sorted(((seq, d) for (name, seq), d in self._deliveries.items() if name == sink), key=lambda x: x[0])
        states = [d.state for _, d in mine]
        unfinished = [self._events[seq].created for seq, d in mine if d.state in UNFINISHED]
        errors = [d.last_error for _, d in mine if d.last_error is not None]
        retrying = [d for _, d in mine if d.state == "pending" and d.attempts > 0]
        return SinkStats(
            sink=sink,
            pending=states.count("pending"),
            inflight=states.count("inflight"),
            dead=states.count("dead"),
            done=states.count("done"),
            oldest_pending=min(unfinished, default=None),
            last_error=errors[-1] if errors else None,
            paused=sink in self._paused,
            paused_reason=self._paused.get(sink),
            retrying=len(retrying),
            most_attempts=max((d.attempts for d in retrying), default=0),
            next_attempt=min((d.next_attempt for d in retrying), default=None),
        )

    async def paused_sinks(self) -> dict[str, str | None]:
        return dict(self._paused)

    async def set_sink_paused(self, sink: str, paused: bool, *, reason: str | None, now: datetime) -> None:
        if paused:
            self._paused[sink] = reason
        else:
            self._paused.pop(sink, None)

    async def take_lease(self, name: str, owner: str, *, now: datetime, seconds: float) -> bool:
        holder = self._leases.get(name)
        if holder is None or holder[1] < now or holder[0] == owner:
            self._leases[name] = (owner, now + timedelta(seconds=seconds))
        return self._leases[name][0] == owner

    async def release_lease(self, name: str, owner: str) -> None:
        if self._leases.get(name, ("", None))[0] == owner:
            del self._leases[name]

    async def lease_holder(self, name: str, *, now: datetime) -> str | None:
        holder = self._leases.get(name)
        return holder[0] if holder and holder[1] > now else None

    # --- helpers ---------------------------------------------------------------------------------

    def _find(self, source: str, resource_type: str, resource_id: str) -> _Resource | None:
        resource = self._resources.get((source, resource_id))
        return resource if resource is not None and resource.type == resource_type else None

    def _found(self, source: str, resource_type: str, resource_id: str, expected_version: int | None) -> _Resource:
        resource = self._find(source, resource_type, resource_id)
        if resource is None:
            raise ResourceNotFound()
        if expected_version is not None and resource.version != expected_version:
            raise VersionMismatch()
        return resource

    def _check_unique(self, source: str, resource_type: str, resource_id: str, values: dict[str, str]) -> None:
        for attribute, value in values.items():
            holder = self._unique.get((source, resource_type, attribute, value))
            if holder is not None and holder != resource_id:
                raise UniquenessConflict(attribute)

    def _set_unique(self, source: str, resource_type: str, resource_id: str, values: dict[str, str]) -> None:
        for attribute, value in values.items():
            self._unique[(source, resource_type, attribute, value)] = resource_id

    def _clear_unique(self, source: str, resource_type: str, resource_id: str) -> None:
        for key in [
            k for k, holder in self._unique.items() if holder == resource_id and k[:2] == (source, resource_type)
        ]:
            del self._unique[key]

    def _check_members(self, source: str, group_id: str, ids: Sequence[str]) -> None:
        """Members must be resources of the same source, and never the group itself."""
        missing = [i for i in dict.fromkeys(ids) if i == group_id or (source, i) not in self._resources]
        if missing:
            raise UnknownMembers(missing)

    def _apply_members(self, source: str, group_id: str, changes: Sequence[MemberChange]) -> None:
        rows = self._members.setdefault((source, group_id), {})
        for change in changes:
            if change.kind == "remove":
                for member in change.ids:
                    rows.pop(member, None)
                continue
            if change.kind == "set":
                wanted = set(change.ids)
                for member in [m for m in rows if m not in wanted]:
                    del rows[member]
            for member in dict.fromkeys(change.ids):
                if member not in rows:
                    rows[member] = (next(self._rows), self._resources[(source, member)].type)

    def _member_rows(self, source: str, group_id: str) -> list[dict[str, Any]]:
        rows = sorted(self._members.get((source, group_id), {}).items(), key=lambda item: item[1][0])
        return [
            _without_none(
                {"value": member, "type": member_type, "display": self._resources[(source, member)].write.display}
            )
            for member, (_, member_type) in rows
        ]

    def _group_rows(self, source: str, member_id: str) -> list[dict[str, Any]]:
        rows = sorted(
            (rows[member_id][0], group_id)
            for (s, group_id), rows in self._members.items()
            if s == source and member_id in rows
        )
        return [
            _without_none({"value": group_id, "display": self._resources[(source, group_id)].write.display})
            for _, group_id in rows
        ]

    def _stored(self, resource: _Resource, *, members: bool, groups: bool) -> StoredResource:
        return StoredResource(
            resource.id,
            resource.type,
            copy.deepcopy(resource.write.document),
            resource.version,
            resource.created,
            resource.last_modified,
            members=self._member_rows(resource.source, resource.id) if members else None,
            groups=self._group_rows(resource.source, resource.id) if groups else None,
        )

    def _candidate(self, resource: _Resource) -> Candidate:
        rows = self._members.get((resource.source, resource.id), {})
        return Candidate(
            id=resource.id,
            created=resource.created,
            last_modified=resource.last_modified,
            entries=resource.write.index,
            members=[(m, t) for m, (_, t) in rows.items()],
            groups=[g["value"] for g in self._group_rows(resource.source, resource.id)],
        )

    def _record_event(self, resource: _Resource, draft: EventDraft, now: datetime, *, deleted: bool = False) -> None:
        self._append_event(
            resource.source,
            resource.type,
            resource.id,
            resource.write.external_id,
            None if deleted else resource.version,
            draft,
            now,
        )

    def _append_event(
        self,
        source: str,
        resource_type: str,
        resource_id: str,
        external_id: str | None,
        version: int | None,
        draft: EventDraft,
        now: datetime,
    ) -> None:
        seq = next(self._seqs)
        self._events[seq] = StoredEvent(
            seq=seq,
            id=f"evt_{uuid.uuid4().hex}",
            created=now,
            source=source,
            resource_type=resource_type,
            resource_id=resource_id,
            external_id=external_id,
            action=draft.action,
            version=version,
            actor=copy.deepcopy(draft.actor),
            changed=copy.deepcopy(draft.changed),
            members=copy.deepcopy(draft.members),
            resource=copy.deepcopy(draft.resource),
            record=copy.deepcopy(draft.record),
            operations=copy.deepcopy(draft.operations),
        )
        for sink in draft.sinks:
            self._deliveries[(sink, seq)] = _Delivery(source, f"{resource_type}/{resource_id}", next_attempt=now)


def _now() -> datetime:
    return datetime.now(UTC)


def _without_none(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if v is not None}


def _service_account(source: str, account: _Account) -> ServiceAccount:
    return ServiceAccount(source, account.username, account.created, account.token_created, account.previous_expires)


@hookimpl
def register_storage_backends():
    return [MemoryBackend]
