"""The write path on PostgreSQL: the common writes as one statement each, one round trip.

A create, an update whose stored rows the host knows (writes.py `_change_index`), and a
member addition or removal each become one statement of data-modifying CTEs over arrays: the
resource row, its unique values and index rows, membership rows, the count, the event and its
deliveries. Run on its own (statements.py `atomic`), PostgreSQL makes it atomic without BEGIN
and COMMIT: one round trip where there were seven to ten, and one statement text per shape,
which asyncpg prepares once per connection. A write either fails whole (a unique value taken, a
member that is not one of the source's resources) or changes nothing (the version moved, the
resource is gone); the work then finds out which with reads, as the sequential path does.

Everything else (a group created with members, a replacement of a membership, a write whose
rows must be read first) takes the sequential path of writes.py. Every statement on a source's
rows still takes its WHERE clause from a Scope.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import orjson

from scimhost.builtin.tortoise_storage.rows import RESOURCE_COLUMNS
from scimhost.builtin.tortoise_storage.scope import Scope
from scimhost.builtin.tortoise_storage.statements import CHUNK, ConstraintViolation, Params, Row, Work
from scimhost.builtin.tortoise_storage.writes import EVENT_INSERT_COLUMNS, Writes, event_row, json_or_none, version_bump
from scimhost.scim.index import IndexEntry
from scimhost.storage.backend import (
    KEEP,
    EventDraft,
    MemberChange,
    ResourceWrite,
    UniquenessConflict,
    UnknownMembers,
)


class PostgresWrites(Writes):
    """Writes.py's units of work, the common ones as a single statement."""

    def create(
        self,
        scope: Scope,
        resource_id: str,
        write: ResourceWrite,
        members: Sequence[str],
        event: EventDraft | None,
        now: datetime,
    ) -> Work[None]:
        if members:
            yield from super().create(scope, resource_id, write, members, event, now)
            return
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
            1,
            now,
            now,
            write.index_fingerprint,
        )
        parts = [
            "r AS (INSERT INTO scimhost_resource (id, source, resource_type, external_id, display, data, record, "
            f"password_hash, version, created, last_modified, index_fingerprint) VALUES ({p.each(row)}) "
            "RETURNING id, external_id)",
            self._unique_rows(p, scope, p(resource_id), write.unique_values, "r"),
            self._index_rows(p, scope, p(resource_id), write.index, "r"),
            "c AS (INSERT INTO scimhost_count (source, resource_type, count) "
            f"VALUES ({p(scope.source)}, {p(scope.resource_type)}, 1) "
            "ON CONFLICT (source, resource_type) DO UPDATE SET count = scimhost_count.count + 1)",
        ]
        if event is not None:
            parts += self._event_rows(
                p, scope, resource_id, event, now, "r", version="1", external_id=write.external_id
            )
        try:
            yield p.query(f"WITH {', '.join(parts)} SELECT 1", atomic=True)
        except ConstraintViolation as exc:
            raise UniquenessConflict(_taken_attribute(exc, write.unique_values)) from None

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
        known = (
            write is not None
            and expected_version is not None
            and write.index_change is not None
            and write.previous_unique_values is not None
            and sum(map(len, write.index_change)) <= CHUNK
        )
        member_only = (
            write is None
            and len(member_changes) == 1
            and member_changes[0].kind in ("add", "remove")
            and 0 < len(member_changes[0].ids) <= CHUNK
        )
        if not (known and not member_changes) and not member_only:
            return (yield from super().update(scope, resource_id, expected_version, write, member_changes, event, now))
        p = self.params()
        assignments, condition = version_bump(p, resource_id, expected_version, write, now)
        parts = [
            f"b AS (UPDATE scimhost_resource SET {assignments} "
            f"WHERE {scope.where(p, 'scimhost_resource', condition)} RETURNING *)"
        ]
        ids: list[str] = []
        if write is not None:
            parts += self._changed_rows(p, scope, resource_id, write)
        else:
            # After the group's row is locked (`b`), as every write of it does (writes.py).
            change = member_changes[0]
            ids = sorted(set(change.ids))
            if resource_id in ids:
                raise UnknownMembers([resource_id])
            parts.append(self._member_rows(p, scope, change.kind, ids))
        if event is not None:
            parts += self._event_rows(p, scope, resource_id, event, now, "b", version="b.version", external_id=None)
        sql = (
            f"WITH {', '.join(parts)} SELECT {RESOURCE_COLUMNS}, r.external_id, {self.dialect.groups_of('r')} "
            "AS groups FROM b AS r"
        )
        try:
            rows = yield p.query(sql, atomic=True)
        except ConstraintViolation as exc:
            if write is not None:
                raise UniquenessConflict(_taken_attribute(exc, write.unique_values)) from None
            # A member that is not one of the source's resources (its type came out NULL), or
            # one deleted meanwhile: find out which, after the fact.
            types = yield from self._resource_types(scope, ids)
            raise UnknownMembers([i for i in ids if i not in types] or ids) from None
        if not rows:
            raise (yield from self._why_unchanged(scope, resource_id))
        return rows[0]

    # --- the parts of a statement ----------------------------------------------------------------

    def _unique_rows(self, p: Params, scope: Scope, resource_id: str, values: dict[str, str], after: str) -> str:
        """A CTE inserting unique values (`resource_id`: its placeholder), for each row of `after`."""
        return (
            "u AS (INSERT INTO scimhost_unique (source, resource_type, attribute, value, resource_id) "
            f"SELECT {p(scope.source)}, {p(scope.resource_type)}, x.attribute, x.value, {resource_id} "
            f"FROM {after}, unnest({p(list(values))}::text[], {p(list(values.values()))}::text[]) AS x(attribute, value))"
        )

    def _index_rows(self, p: Params, scope: Scope, resource_id: str, entries: Sequence[IndexEntry], after: str) -> str:
        return (
            "a AS (INSERT INTO scimhost_attr (resource_id, source, resource_type, path, item, value_text, value_num) "
            f"SELECT {resource_id}, {p(scope.source)}, {p(scope.resource_type)}, x.path, x.item, x.text, x.number "
            f"FROM {after}, unnest({p([e.path for e in entries])}::text[], {p([e.item for e in entries])}::int[], "
            f"{p([e.text for e in entries])}::text[], {p([e.number for e in entries])}::float8[]) "
            "AS x(path, item, text, number))"
        )

    def _changed_rows(self, p: Params, scope: Scope, resource_id: str, write: ResourceWrite) -> list[str]:
        """CTEs bringing the unique values and index rows from the previous version's to the
        write's, once the version bump (`b`) found the row."""
        assert write.index_change is not None and write.previous_unique_values is not None
        previous_unique, unique = write.previous_unique_values, write.unique_values
        gone = [a for a, v in previous_unique.items() if unique.get(a) != v]
        added_unique = {a: v for a, v in unique.items() if previous_unique.get(a) != v}
        removed, added = write.index_change
        parts = []
        if gone:
            where = scope.where(
                p, "scimhost_unique", f"resource_id = {p(resource_id)} AND attribute = ANY({p(gone)}::text[])"
            )
            parts.append(f"ud AS (DELETE FROM scimhost_unique USING b WHERE {where})")
        if added_unique:
            parts.append(self._unique_rows(p, scope, "b.id", added_unique, "b"))
        if removed:
            # The rows whose (path, item, text, number) is one of the removed entries'.
            matches = (
                f"SELECT * FROM unnest({p([e.path for e in removed])}::text[], {p([e.item for e in removed])}::int[], "
                f"{p([e.text for e in removed])}::text[], {p([e.number for e in removed])}::float8[]) "
                "AS x(path, item, text, number)"
            )
            where = scope.where(
                p,
                "t",
                f"t.resource_id = {p(resource_id)} AND EXISTS (SELECT 1 FROM ({matches}) AS x WHERE x.path = t.path "
                "AND x.item = t.item AND x.text IS NOT DISTINCT FROM t.value_text "
                "AND x.number IS NOT DISTINCT FROM t.value_num)",
            )
            parts.append(f"ad AS (DELETE FROM scimhost_attr t USING b WHERE {where})")
        if added:
            parts.append(self._index_rows(p, scope, "b.id", added, "b"))
        return parts

    def _member_rows(self, p: Params, scope: Scope, kind: str, ids: list[str]) -> str:
        """A CTE adding or removing the group's members `ids`, once `b` found and locked the
        group. An id that is no resource of the source joins to a NULL type, which the NOT NULL
        column refuses."""
        if kind == "remove":
            where = scope.members(p, "m", f"m.group_id = b.id AND m.member_id = ANY({p(ids)}::varchar[])")
            return f"m AS (DELETE FROM scimhost_member m USING b WHERE {where})"
        known = scope.where(p, "r", "r.id = w.member_id", typed=False)
        return (
            "m AS (INSERT INTO scimhost_member (group_id, member_id, member_type, source) "
            f"SELECT b.id, w.member_id, r.resource_type, {p(scope.source)} FROM b "
            f"CROSS JOIN unnest({p(ids)}::varchar[]) AS w(member_id) "
            f"LEFT JOIN scimhost_resource r ON {known} ORDER BY w.member_id "
            "ON CONFLICT (group_id, member_id) DO NOTHING)"
        )

    def _event_rows(
        self,
        p: Params,
        scope: Scope,
        resource_id: str,
        event: EventDraft,
        now: datetime,
        after: str,
        *,
        version: str,
        external_id: str | None,
    ) -> list[str]:
        """CTEs inserting the event and its deliveries, for the row `after` wrote. `version`: the
        SQL of its version; the external id is `after`'s unless given."""
        row = event_row(scope, resource_id, None, external_id, event, now)
        values = [p(value) for value in row[:5]]
        values.append(p(external_id) if external_id is not None else f"{after}.external_id")
        values += [p(row[6]), version, *(p(value) for value in row[8:])]
        parts = [
            f"e AS (INSERT INTO scimhost_event ({EVENT_INSERT_COLUMNS}) SELECT {', '.join(values)} FROM {after} RETURNING seq)"
        ]
        if event.sinks:
            parts.append(
                "d AS (INSERT INTO scimhost_delivery (sink, event_seq, source, key, state, attempts, next_attempt) "
                f"SELECT s.sink, e.seq, {p(scope.source)}, {p(f'{scope.resource_type}/{resource_id}')}, 'pending', 0, "
                f"{p(now)} FROM e, unnest({p(list(event.sinks))}::text[]) AS s(sink))"
            )
        return parts


def _taken_attribute(exc: ConstraintViolation, values: dict[str, str]) -> str:
    """Which of `values` the unique index refused, from PostgreSQL's detail: "Key (source,
    resource_type, attribute, value)=(demo, User, userName, bjensen) already exists." (slugs,
    type and attribute names hold no ", ")."""
    detail = exc.detail or ""
    if ")=(" in detail:
        fields = detail.split(")=(", 1)[1].split(", ", 3)
        if len(fields) == 4 and fields[2] in values:
            return fields[2]
    return next(iter(values), "id")
