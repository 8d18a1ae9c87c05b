"""The read path: a resource by id, pages of resources through a filter, a group's members, the
event log.

Every statement takes its WHERE clause from a Scope (scope.py), the filter's condition inside
the scope's parentheses whatever its operators.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import orjson

from scimhost.builtin.tortoise_storage.database import Database
from scimhost.builtin.tortoise_storage.filter_sql import FilterSQL, Fragment
from scimhost.builtin.tortoise_storage.rows import (
    EVENT_COLUMNS,
    RESOURCE_COLUMNS,
    member,
    stored_event,
    stored_resource,
)
from scimhost.builtin.tortoise_storage.scope import Scope
from scimhost.builtin.tortoise_storage.statements import Params, chunks
from scimhost.scim.query import ResourceQuery, SortKey
from scimhost.storage.backend import ResourcePage, StoredEvent, StoredResource


class Reads:
    """The reads of resources and events on one database."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.dialect = database.dialect

    def params(self) -> Params:
        return Params(self.dialect)

    async def get_resource(
        self, scope: Scope, resource_id: str, *, members: bool, groups: bool
    ) -> StoredResource | None:
        p = self.params()
        # The groups a user is in come in the same statement, as one JSON array.
        columns = RESOURCE_COLUMNS + (f", {self.dialect.groups_of('r')} AS groups" if groups else "")
        rows = await self.database.rows(
            p.query(
                f"SELECT {columns} FROM scimhost_resource r WHERE {scope.where(p, 'r', f'r.id = {p(resource_id)}')}"
            )
        )
        if not rows:
            return None
        stored = stored_resource(rows[0], groups=groups)
        if members:
            [stored] = await self._with_members(scope, [stored])
        return stored

    async def get_record(self, scope: Scope, resource_id: str) -> dict[str, Any] | None:
        p = self.params()
        rows = await self.database.rows(
            p.query(f"SELECT r.record FROM scimhost_resource r WHERE {scope.where(p, 'r', f'r.id = {p(resource_id)}')}")
        )
        return orjson.loads(rows[0]["record"]) if rows and rows[0]["record"] else None

    async def count_members(self, scope: Scope, group_id: str) -> int:
        p = self.params()
        where = scope.members(p, "m", f"m.group_id = {p(group_id)}")
        rows = await self.database.rows(p.query(f"SELECT COUNT(*) AS n FROM scimhost_member m WHERE {where}"))
        return int(rows[0]["n"])

    async def iter_members(self, scope: Scope, group_id: str, batch: int) -> AsyncIterator[list[dict[str, Any]]]:
        last = -1
        while True:
            p = self.params()
            where = scope.members(p, "m", f"m.group_id = {p(group_id)} AND m.id > {p(last)}")
            rows = await self.database.rows(
                p.query(
                    "SELECT m.id, m.member_id, m.member_type, r.display FROM scimhost_member m "
                    f"JOIN scimhost_resource r ON r.id = m.member_id AND r.source = m.source WHERE {where} "
                    f"ORDER BY m.id LIMIT {p(batch)}"
                )
            )
            if not rows:
                return
            last = rows[-1]["id"]
            yield [member(row) for row in rows]
            if len(rows) < batch:
                return

    async def _with_members(self, scope: Scope, resources: list[StoredResource]) -> list[StoredResource]:
        """The resources (groups) with their members read, a chunk of groups per statement."""
        by_group: dict[str, list[dict[str, Any]]] = {r.id: [] for r in resources}
        for chunk in chunks(list(by_group)):
            p = self.params()
            where = scope.members(p, "m", f"m.group_id IN ({p.each(chunk)})")
            for row in await self.database.rows(
                p.query(
                    "SELECT m.group_id, m.member_id, m.member_type, r.display FROM scimhost_member m "
                    f"JOIN scimhost_resource r ON r.id = m.member_id AND r.source = m.source WHERE {where} ORDER BY m.id"
                )
            ):
                by_group[row["group_id"]].append(member(row))
        return [dataclasses.replace(r, members=by_group[r.id]) for r in resources]

    # --- pages -------------------------------------------------------------------------------------

    async def list_resources(self, scope: Scope, query: ResourceQuery, *, members: bool, groups: bool) -> ResourcePage:
        condition: Fragment | None = None
        if query.filter is not None:
            condition = await FilterSQL(self.dialect, scope).where(query.filter, self._estimate)

        def where(p: Params) -> str:
            # The filter's condition, whatever its operators, inside the scope's parentheses.
            return scope.where(p, "r", condition(p) if condition is not None else "")

        async def count_all() -> int:
            p = self.params()
            if condition is None:
                counted = await self.database.rows(
                    p.query(f"SELECT c.count AS n FROM scimhost_count c WHERE {scope.where(p, 'c')}")
                )
                return int(counted[0]["n"]) if counted else 0
            counted = await self.database.rows(
                p.query(f"SELECT COUNT(*) AS n FROM scimhost_resource r WHERE {where(p)}")
            )
            return int(counted[0]["n"])

        if query.count <= 0:
            return ResourcePage(await count_all(), [])
        p = self.params()
        columns = RESOURCE_COLUMNS
        if groups:
            columns += f", {self.dialect.groups_of('r')} AS groups"  # in the same statement, as for one
        backwards = query.before is not None
        if query.sort is not None:
            key = self._sort_expression(p, scope, query.sort)
            # RFC 7644 §3.4.2.3: resources without a value last when ascending, first when descending.
            if query.sort.descending:
                order = f"({key}) IS NOT NULL, ({key}) DESC, r.created, r.id"
            else:
                order = f"({key}) IS NULL, ({key}) ASC, r.created, r.id"
        else:
            order = "r.created DESC, r.id DESC" if backwards else "r.created, r.id"
        page_where = where(p)
        # Row values, so that the (source, resource_type, created, id) index seeks to the cursor.
        if query.after is not None:
            page_where += f" AND (r.created, r.id) > ({p(query.after[0])}, {p(query.after[1])})"
        elif query.before is not None:
            page_where += f" AND (r.created, r.id) < ({p(query.before[0])}, {p(query.before[1])})"
        if query.cursor_paging:
            limit, offset = query.count + 1, 0
        else:
            limit, offset = query.count, max(query.start_index, 1) - 1
        rows = await self.database.rows(
            p.query(
                f"SELECT {columns} FROM scimhost_resource r WHERE {page_where} ORDER BY {order} "
                f"LIMIT {p(limit)} OFFSET {p(offset)}"
            )
        )
        # A page that starts at the first match and is not full holds every match: no count.
        if (
            query.after is None
            and query.before is None
            and offset == 0
            and len(rows) <= query.count
            and (query.cursor_paging or len(rows) < query.count)
        ):
            total = len(rows)
        else:
            total = await count_all()
        more = query.cursor_paging and len(rows) > query.count
        rows = rows[: query.count]
        if backwards:
            rows.reverse()
        stored = [stored_resource(row, groups=groups) for row in rows]
        resources = await self._with_members(scope, stored) if members else stored
        if backwards:
            return ResourcePage(total, resources, more_after=True, more_before=more)
        return ResourcePage(total, resources, more_after=more, more_before=query.after is not None)

    async def _estimate(self, driver: Fragment) -> int:
        """How many rows a driver selects, counting no further than a thousand."""
        p = self.params()
        rows = await self.database.rows(p.query(f"SELECT COUNT(*) AS n FROM ({driver(p)} LIMIT 1001) AS e"))
        return int(rows[0]["n"])

    def _sort_expression(self, p: Params, scope: Scope, sort: SortKey) -> str:
        """A subquery of the value `r` sorts by: the primary value of a multi-valued attribute,
        else its first."""
        field = sort.field
        if field.kind != "attr":
            return {"id": "r.id", "created": "r.created", "lastModified": "r.last_modified"}[field.kind]
        column = "a.value_num" if field.numeric else self.dialect.code_point_order("a.value_text")
        primary_first = ""
        if sort.primary_path:
            primary = scope.where(
                p,
                "p",
                "p.resource_id = a.resource_id AND p.item = a.item "
                f"AND p.path = {p(sort.primary_path)} AND p.value_text = 'true'",
            )
            primary_first = f"(SELECT COUNT(*) FROM scimhost_attr p WHERE {primary}) DESC, "
        where = scope.where(p, "a", f"a.resource_id = r.id AND a.path = {p(field.key)}")
        return f"SELECT {column} FROM scimhost_attr a WHERE {where} ORDER BY {primary_first}a.item LIMIT 1"

    # --- the event log ---------------------------------------------------------------------------

    async def list_events(
        self,
        scope: Scope,
        *,
        resource_id: str | None,
        since: datetime | None,
        after_seq: int | None,
        before_seq: int | None,
        newest_first: bool,
        limit: int,
    ) -> list[StoredEvent]:
        p = self.params()
        narrowing = {"e.resource_id": ("=", resource_id), "e.created": (">=", since), "e.seq": (">", after_seq)}
        conditions = ["1 = 1"]
        conditions += [f"{column} {op} {p(value)}" for column, (op, value) in narrowing.items() if value is not None]
        if before_seq is not None:
            conditions.append(f"e.seq < {p(before_seq)}")
        order = "DESC" if newest_first else "ASC"
        rows = await self.database.rows(
            p.query(
                f"SELECT {EVENT_COLUMNS} FROM scimhost_event e WHERE {scope.where(p, 'e', ' AND '.join(conditions))} "
                f"ORDER BY e.seq {order} LIMIT {p(max(limit, 0))}"
            )
        )
        return [stored_event(row) for row in rows]

    async def get_event(self, scope: Scope, event_id: str | int) -> StoredEvent | None:
        p = self.params()
        column = "e.seq" if isinstance(event_id, int) else "e.id"
        rows = await self.database.rows(
            p.query(
                f"SELECT {EVENT_COLUMNS} FROM scimhost_event e WHERE {scope.where(p, 'e', f'{column} = {p(event_id)}')}"
            )
        )
        return stored_event(rows[0]) if rows else None
