"""The write path: each write of a resource as one unit of work (statements.py) over the
resource row, its index rows, its unique values, its membership rows and its event.

Every statement takes its WHERE clause from a Scope (scope.py): no statement on resources,
index rows, unique values or membership rows names its source by itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from scimhost.builtin.tortoise_storage.dialects import Dialect
from scimhost.builtin.tortoise_storage.rows import RESOURCE_COLUMNS
from scimhost.builtin.tortoise_storage.scope import Scope
from scimhost.builtin.tortoise_storage.statements import CHUNK, ConstraintViolation, Params, Row, Work, chunks
from scimhost.scim.index import IndexEntry
from scimhost.storage.backend import (
    KEEP,
    EventDraft,
    MemberChange,
    ResourceNotFound,
    ResourceWrite,
    UniquenessConflict,
    UnknownMembers,
    VersionMismatch,
)

# Rows a write may change and still count as small (run on SQLite's fast path, sqlite_database.py).
SMALL_WRITE_ROWS = 200


class Writes:
    """The units of work that change resources, for one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    def params(self) -> Params:
        return Params(self.dialect)

    # --- resources -------------------------------------------------------------------------------

    def create(
        self,
        scope: Scope,
        resource_id: str,
        write: ResourceWrite,
        members: Sequence[str],
        event: EventDraft | None,
        now: datetime,
    ) -> Work[None]:
        yield from self._insert(scope, resource_id, write, members, event, now, version=1, created=now)

    def restore(
        self,
        scope: Scope,
        resource_id: str,
        write: ResourceWrite,
        members: Sequence[str],
        event: EventDraft | None,
        now: datetime,
    ) -> Work[tuple[int, Any]]:
        """Take a soft-deleted resource out of keeping and store `write` as it, one version on;
        the new version and the creation time kept."""
        p = self.params()
        kept = yield p.query(
            f"DELETE FROM scimhost_deleted_resource WHERE {scope.where(p, 'scimhost_deleted_resource', f'id = {p(resource_id)}')} "
            "RETURNING version, created"
        )
        if not kept:
            raise ResourceNotFound()
        version = int(kept[0]["version"]) + 1
        yield from self._insert(
            scope, resource_id, write, members, event, now, version=version, created=kept[0]["created"]
        )
        return version, kept[0]["created"]

    def _insert(
        self,
        scope: Scope,
        resource_id: str,
        write: ResourceWrite,
        members: Sequence[str],
        event: EventDraft | None,
        now: datetime,
        *,
        version: int,
        created: Any,
    ) -> Work[None]:
        p = self.params()
        password = None if write.password_hash is KEEP else write.password_hash
        row = (
            resource_id,
            scope.source,
            scope.resource_type,
            write.external_id,
            write.display,
            orjson.dumps(write.document).decode(),
            json_or_none(write.record),
            password,
            version,
            created,
            now,
            write.index_fingerprint,
        )
        yield p.command(
            "INSERT INTO scimhost_resource (id, source, resource_type, external_id, display, data, record, "
            f"password_hash, version, created, last_modified, index_fingerprint) VALUES ({p.each(row)})"
        )
        yield from self._insert_unique(scope, resource_id, write.unique_values)
        yield from self._insert_index(scope, resource_id, write.index)
        yield from self._count(scope, 1)
        if members:
            yield from self._change_members(scope, resource_id, [MemberChange("add", tuple(members))])
        if event is not None:
            yield from self.insert_event(scope, resource_id, version, write.external_id, event, now)

    def update(
        self,
        scope: Scope,
        resource_id: str,
        expected_version: int | None,
        write: ResourceWrite | None,
        member_changes: Sequence[MemberChange],
        event: EventDraft | None,
        now: datetime,
    ) -> Work[Row]:
        """The resource's row after the update, with its groups (`groups` column) and external id."""
        # The resource's row is locked first (the version bump), by every write of it: two
        # changes of one group's members then never hold membership rows the other waits for
        # while waiting for the group (PostgreSQL found such deadlocks when member additions
        # and removals bumped the version last). Member-only changes write their ids sorted.
        yield from self._bump_version(scope, resource_id, expected_version, write, now)
        member_only = write is None and all(change.kind != "set" for change in member_changes)
        if write is not None:
            known = expected_version is not None  # so the version read is the version replaced
            if known and write.previous_unique_values is not None:
                yield from self._change_unique(scope, resource_id, write.previous_unique_values, write.unique_values)
            else:
                yield from self._update_unique(scope, resource_id, write.unique_values)
            if known and write.index_change is not None:
                yield from self._change_index(scope, resource_id, *write.index_change)
            else:
                yield from self._update_index(scope, resource_id, write.index)
        if member_changes:
            yield from self._change_members(scope, resource_id, member_changes, in_order=not member_only)
        # With its groups, so that a response needs no second read.
        p = self.params()
        [row] = yield p.query(
            f"SELECT {RESOURCE_COLUMNS}, r.external_id, {self.dialect.groups_of('r')} AS groups "
            f"FROM scimhost_resource r WHERE {scope.where(p, 'r', f'r.id = {p(resource_id)}')}"
        )
        if event is not None:  # after the version bump: the row is held until the commit
            yield from self.insert_event(scope, resource_id, row["version"], row["external_id"], event, now)
        return row

    def reindex(
        self,
        scope: Scope,
        resource_id: str,
        version: int,
        index: Sequence[IndexEntry],
        unique_values: dict[str, str],
        fingerprint: str,
    ) -> Work[bool]:
        """Rebuild a resource's rows from what is stored (no new version), if still at `version`."""
        p = self.params()
        where = scope.where(p, "scimhost_resource", f"id = {p(resource_id)} AND version = {p(version)}")
        changed = yield p.command(f"UPDATE scimhost_resource SET index_fingerprint = {p(fingerprint)} WHERE {where}")
        if not changed:
            return False
        yield from self._update_unique(scope, resource_id, unique_values)
        yield from self._update_index(scope, resource_id, index)
        return True

    def _bump_version(
        self,
        scope: Scope,
        resource_id: str,
        expected_version: int | None,
        write: ResourceWrite | None,
        now: datetime,
    ) -> Work[None]:
        p = self.params()
        assignments, condition = version_bump(p, resource_id, expected_version, write, now)
        changed = yield p.command(
            f"UPDATE scimhost_resource SET {assignments} WHERE {scope.where(p, 'scimhost_resource', condition)}"
        )
        if not changed:
            raise (yield from self._why_unchanged(scope, resource_id))

    def delete(
        self,
        scope: Scope,
        resource_id: str,
        expected_version: int | None,
        event: EventDraft | None,
        now: datetime,
        *,
        soft: bool = False,
    ) -> Work[None]:
        p = self.params()
        condition = f"id = {p(resource_id)}"
        if expected_version is not None:
            condition += f" AND version = {p(expected_version)}"
        # Membership and uniqueness rows go with it (ON DELETE CASCADE).
        deleted = yield p.query(
            f"DELETE FROM scimhost_resource WHERE {scope.where(p, 'scimhost_resource', condition)} "
            "RETURNING external_id, data, record, version, created"
        )
        if not deleted:
            raise (yield from self._why_unchanged(scope, resource_id))
        if soft:
            # Kept aside whole, in the same transaction: no index or unique rows, so no read
            # of the source can find it, and its values are free.
            gone = deleted[0]
            document = orjson.loads(gone["data"])
            name = document.get("userName") or document.get("displayName")
            p = self.params()
            kept = (
                resource_id,
                scope.source,
                scope.resource_type,
                gone["external_id"],
                name.lower() if isinstance(name, str) else None,
                gone["data"],
                gone["record"],
                gone["version"],
                gone["created"],
                now,
            )
            yield p.command(
                "INSERT INTO scimhost_deleted_resource (id, source, resource_type, external_id, name_key, data, "
                f"record, version, created, deleted) VALUES ({p.each(kept)})"
            )
        yield from self._count(scope, -1)
        if event is not None:
            yield from self.insert_event(scope, resource_id, None, deleted[0]["external_id"], event, now)

    def _why_unchanged(self, scope: Scope, resource_id: str) -> Work[Exception]:
        """After a conditional write changed no row: the resource is gone, or its version moved."""
        p = self.params()
        exists = yield p.query(
            f"SELECT r.version FROM scimhost_resource r WHERE {scope.where(p, 'r', f'r.id = {p(resource_id)}')}"
        )
        return VersionMismatch() if exists else ResourceNotFound()

    def _count(self, scope: Scope, delta: int) -> Work[None]:
        p = self.params()
        yield p.command(
            "INSERT INTO scimhost_count (source, resource_type, count) "
            f"VALUES ({p(scope.source)}, {p(scope.resource_type)}, {p(max(delta, 0))}) "
            f"ON CONFLICT (source, resource_type) DO UPDATE SET count = scimhost_count.count + {p(delta)}"
        )

    # --- index rows and unique values --------------------------------------------------------

    def _insert_index(self, scope: Scope, resource_id: str, entries: Sequence[IndexEntry]) -> Work[None]:
        for start in range(0, len(entries), CHUNK // 8):
            p = self.params()
            rows = ", ".join(
                f"({p.each((resource_id, scope.source, scope.resource_type, e.path, e.item, e.text, e.number))})"
                for e in entries[start : start + CHUNK // 8]
            )
            yield p.command(
                "INSERT INTO scimhost_attr (resource_id, source, resource_type, path, item, value_text, value_num) "
                f"VALUES {rows}"
            )

    def _update_index(self, scope: Scope, resource_id: str, entries: Sequence[IndexEntry]) -> Work[None]:
        """Bring a resource's index rows to `entries`, touching only the rows that differ.

        Rewriting every row of a user (about 16, each in three indexes) made a one-attribute
        PATCH cost a millisecond on SQLite; the difference is usually one row."""
        stale: dict[tuple[Any, ...], list[int]] = {}
        p = self.params()
        for row in (
            yield p.query(
                "SELECT a.id, a.path, a.item, a.value_text, a.value_num FROM scimhost_attr a "
                f"WHERE {scope.where(p, 'a', f'a.resource_id = {p(resource_id)}')}"
            )
        ):
            key = (row["path"], row["item"], row["value_text"], _float_or_none(row["value_num"]))
            stale.setdefault(key, []).append(row["id"])
        added = []
        for entry in entries:
            ids = stale.get((entry.path, entry.item, entry.text, _float_or_none(entry.number)))
            if ids:
                ids.pop()  # unchanged: keep the row
            else:
                added.append(entry)
        removed = [row_id for ids in stale.values() for row_id in ids]
        for chunk in chunks(removed):
            p = self.params()
            yield p.command(
                f"DELETE FROM scimhost_attr WHERE {scope.where(p, 'scimhost_attr', f'id IN ({p.each(chunk)})')}"
            )
        yield from self._insert_index(scope, resource_id, added)

    def _change_index(
        self, scope: Scope, resource_id: str, removed: Sequence[IndexEntry], added: Sequence[IndexEntry]
    ) -> Work[None]:
        """Remove and add a resource's index rows as the host computed the difference (a
        resource's rows differ in path or item, so a value names one row)."""
        for start in range(0, len(removed), CHUNK // 8):
            p = self.params()
            matches = " OR ".join(_entry_match(p, entry) for entry in removed[start : start + CHUNK // 8])
            where = scope.where(p, "scimhost_attr", f"resource_id = {p(resource_id)} AND ({matches})")
            yield p.command(f"DELETE FROM scimhost_attr WHERE {where}")
        yield from self._insert_index(scope, resource_id, added)

    def _change_unique(
        self, scope: Scope, resource_id: str, previous: dict[str, str], values: dict[str, str]
    ) -> Work[None]:
        """Bring a resource's unique values from `previous` (those of the version being
        replaced) to `values` without reading them."""
        gone = [attribute for attribute, value in previous.items() if values.get(attribute) != value]
        if gone:
            p = self.params()
            where = scope.where(
                p, "scimhost_unique", f"resource_id = {p(resource_id)} AND attribute IN ({p.each(gone)})"
            )
            yield p.command(f"DELETE FROM scimhost_unique WHERE {where}")
        yield from self._insert_unique(scope, resource_id, {a: v for a, v in values.items() if previous.get(a) != v})

    def _update_unique(self, scope: Scope, resource_id: str, values: dict[str, str]) -> Work[None]:
        """Bring a resource's unique values to `values`, touching only those that changed."""
        p = self.params()
        current = {
            row["attribute"]: (row["id"], row["value"])
            for row in (
                yield p.query(
                    "SELECT u.id, u.attribute, u.value FROM scimhost_unique u "
                    f"WHERE {scope.where(p, 'u', f'u.resource_id = {p(resource_id)}')}"
                )
            )
        }
        for attribute, (row_id, value) in current.items():
            if values.get(attribute) != value:
                p = self.params()
                yield p.command(
                    f"DELETE FROM scimhost_unique WHERE {scope.where(p, 'scimhost_unique', f'id = {p(row_id)}')}"
                )
        added = {a: v for a, v in values.items() if a not in current or current[a][1] != v}
        yield from self._insert_unique(scope, resource_id, added)

    def _insert_unique(self, scope: Scope, resource_id: str, values: dict[str, str]) -> Work[None]:
        for attribute, value in values.items():
            p = self.params()
            try:
                yield p.command(
                    "INSERT INTO scimhost_unique (source, resource_type, attribute, value, resource_id) "
                    f"VALUES ({p.each((scope.source, scope.resource_type, attribute, value, resource_id))})"
                )
            except ConstraintViolation:
                raise UniquenessConflict(attribute) from None

    # --- membership --------------------------------------------------------------------------------

    def _change_members(
        self, scope: Scope, group_id: str, changes: Sequence[MemberChange], *, in_order: bool = True
    ) -> Work[None]:
        """Apply membership changes; `in_order` False writes each change's ids sorted (see
        update) instead of in the order the client gave them."""
        for change in changes:
            ids = list(dict.fromkeys(change.ids)) if in_order else sorted(set(change.ids))
            if change.kind == "remove":
                for chunk in chunks(ids):
                    p = self.params()
                    where = scope.members(
                        p, "scimhost_member", f"group_id = {p(group_id)} AND member_id IN ({p.each(chunk)})"
                    )
                    yield p.command(f"DELETE FROM scimhost_member WHERE {where}")
            elif change.kind == "set":
                yield from self._set_members(scope, group_id, ids)
            else:
                yield from self._add_members(scope, group_id, ids)

    def _add_members(self, scope: Scope, group_id: str, ids: list[str]) -> Work[None]:
        types = yield from self._resource_types(scope, [group_id, *ids])
        if types.get(group_id) != scope.resource_type:
            raise ResourceNotFound()  # not a group of this source (or deleted meanwhile)
        missing = [i for i in ids if i not in types or i == group_id]
        if missing:
            raise UnknownMembers(missing)
        for chunk in chunks(ids):
            p = self.params()
            rows = ", ".join(f"({p.each((group_id, member, types[member], scope.source))})" for member in chunk)
            try:
                yield p.command(
                    f"INSERT INTO scimhost_member (group_id, member_id, member_type, source) VALUES {rows} "
                    "ON CONFLICT (group_id, member_id) DO NOTHING"
                )
            except ConstraintViolation:
                # A member (or the group) was deleted after it was checked: the foreign key
                # refused it (the backend's update tells which).
                raise UnknownMembers(list(chunk)) from None

    def _set_members(self, scope: Scope, group_id: str, ids: list[str]) -> Work[None]:
        """Make the group's members exactly `ids`, the difference computed in the database: the
        list travels as one parameter, rows that stay are not touched, new ones keep its order."""
        p = self.params()
        known = scope.where(p, "r", "r.id = w.member_id", typed=False)
        missing = yield p.query(
            f"SELECT w.member_id FROM ({self.dialect.id_list(p, ids)}) AS w WHERE w.member_id = {p(group_id)} "
            f"OR NOT EXISTS (SELECT 1 FROM scimhost_resource r WHERE {known}) LIMIT 100"
        )
        if missing:
            raise UnknownMembers([row["member_id"] for row in missing])
        p = self.params()
        wanted = self.dialect.id_list(p, ids)
        where = scope.members(
            p,
            "scimhost_member",
            f"group_id = {p(group_id)} AND member_id NOT IN (SELECT member_id FROM ({wanted}) AS w)",
        )
        yield p.command(f"DELETE FROM scimhost_member WHERE {where}")
        p = self.params()
        new = scope.where(
            p,
            "r",
            f"NOT EXISTS (SELECT 1 FROM scimhost_member m WHERE m.group_id = {p(group_id)} AND m.member_id = w.member_id)",
            typed=False,
        )
        try:
            # The group's id bound twice: PostgreSQL deduces a type per use (text, varchar).
            yield p.command(
                "INSERT INTO scimhost_member (group_id, member_id, member_type, source) "
                f"SELECT {p(group_id)}, r.id, r.resource_type, r.source FROM ({self.dialect.id_list(p, ids)}) AS w "
                f"JOIN scimhost_resource r ON r.id = w.member_id WHERE {new} "
                "ORDER BY w.position ON CONFLICT (group_id, member_id) DO NOTHING"
            )
        except ConstraintViolation:
            raise UnknownMembers(ids[:100]) from None  # a member was deleted after it was checked

    def _resource_types(self, scope: Scope, ids: list[str]) -> Work[dict[str, str]]:
        """The resource types of those of `ids` that are resources of the scope's source."""
        types = {}
        for chunk in chunks(ids):
            p = self.params()
            where = scope.where(p, "r", f"r.id IN ({p.each(chunk)})", typed=False)
            rows = yield p.query(f"SELECT r.id, r.resource_type FROM scimhost_resource r WHERE {where}")
            types.update({row["id"]: row["resource_type"] for row in rows})
        return types

    # --- the event log ---------------------------------------------------------------------------

    def insert_event(
        self,
        scope: Scope,
        resource_id: str,
        version: int | None,
        external_id: str | None,
        event: EventDraft,
        now: datetime,
    ) -> Work[None]:
        p = self.params()
        row = event_row(scope, resource_id, version, external_id, event, now)
        insert = f"INSERT INTO scimhost_event ({EVENT_INSERT_COLUMNS}) VALUES ({p.each(row)})"
        if not event.sinks:
            yield p.command(insert)
            return
        [inserted] = yield p.query(insert + " RETURNING seq")
        if event.sinks:
            # One pending delivery per sink, in the same transaction: nothing committed is
            # ever without its deliveries, nothing rolled back ever has any.
            p = self.params()
            key = f"{scope.resource_type}/{resource_id}"
            rows = ", ".join(
                f"({p.each((sink, inserted['seq'], scope.source, key))}, 'pending', 0, {p(now)})"
                for sink in event.sinks
            )
            yield p.command(
                "INSERT INTO scimhost_delivery (sink, event_seq, source, key, state, attempts, next_attempt) "
                f"VALUES {rows}"
            )


EVENT_INSERT_COLUMNS = (
    "id, created, source, resource_type, resource_id, external_id, action, version, actor, changed, members, "
    "resource, record, operations"
)


def event_row(
    scope: Scope, resource_id: str, version: int | None, external_id: str | None, event: EventDraft, now: datetime
) -> tuple[Any, ...]:
    """The values of an event's row, in EVENT_INSERT_COLUMNS order."""
    return (
        f"evt_{uuid.uuid4().hex}",
        now,
        scope.source,
        scope.resource_type,
        resource_id,
        external_id,
        event.action,
        version,
        orjson.dumps(event.actor).decode(),
        orjson.dumps(event.changed).decode(),
        json_or_none(event.members),
        json_or_none(event.resource),
        json_or_none(event.record),
        json_or_none(event.operations),
    )


def version_bump(
    p: Params, resource_id: str, expected_version: int | None, write: ResourceWrite | None, now: datetime
) -> tuple[str, str]:
    """The SET list and the condition (without its scope) of an update's bump of the resource's
    row: one version on, and the write's columns when it has a new document."""
    assignments = f"version = version + 1, last_modified = {p(now)}"
    if write is not None:
        assignments += (
            f", external_id = {p(write.external_id)}, display = {p(write.display)}, "
            f"data = {p(orjson.dumps(write.document).decode())}, record = {p(json_or_none(write.record))}, "
            f"index_fingerprint = {p(write.index_fingerprint)}"
        )
        if write.password_hash is not KEEP:
            assignments += f", password_hash = {p(write.password_hash)}"
    condition = f"id = {p(resource_id)}"
    if expected_version is not None:
        condition += f" AND version = {p(expected_version)}"
    return assignments, condition


def json_or_none(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _entry_match(p: Params, entry: IndexEntry) -> str:
    """The condition matching one index row of a resource by its value."""
    text = "value_text IS NULL" if entry.text is None else f"value_text = {p(entry.text)}"
    number = "value_num IS NULL" if entry.number is None else f"value_num = {p(entry.number)}"
    return f"(path = {p(entry.path)} AND item = {p(entry.item)} AND {text} AND {number})"


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)
