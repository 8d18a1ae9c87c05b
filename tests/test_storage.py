"""The built-in tortoise store: migrations, state, and failures, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scimhost.builtin.tortoise_storage.backend import TortoiseBackend, TortoiseSettings
from scimhost.builtin.tortoise_storage.statements import Params, Query
from scimhost.scim.query import ResourceQuery
from scimhost.storage.backend import ResourceWrite, StorageError


def backend(url: str) -> TortoiseBackend:
    return TortoiseBackend(TortoiseSettings(url=url), base_dir=Path.cwd())


async def test_fresh_database_is_migrated_on_open(empty_storage_url):
    store = backend(empty_storage_url)
    await store.open(migrate=False)
    try:
        assert await store.pending_migrations() == [
            "scimhost.0001_initial",
            "scimhost.0002_resources",
            "scimhost.0003_attribute_index",
            "scimhost.0004_directory_record",
            "scimhost.0005_member_order_index",
            "scimhost.0006_member_source",
            "scimhost.0007_event_log",
            "scimhost.0008_deliveries",
            "scimhost.0009_token_grace_and_activity",
            "scimhost.0010_sqlite_planner_statistics",
            "scimhost.0011_numbers_index",
            "scimhost.0012_unfinished_deliveries_index",
            "scimhost.0013_delivery_heads",
            "scimhost.0014_sqlite_resource_statistics",
            "scimhost.0015_failed_requests",
            "scimhost.0016_credentials",
            "scimhost.0017_deleted_resources",
            "scimhost.0018_event_operations",
            "scimhost.0019_index_fingerprint",
            "scimhost.0020_intents",
        ]
    finally:
        await store.close()
    await store.open()
    try:
        assert await store.pending_migrations() == []
    finally:
        await store.close()


async def test_models_and_migrations_agree(tmp_path):
    """Nothing in models.py lacks its migration (what `tortoise makemigrations` would write)."""
    from tortoise.migrations.autodetector import MigrationAutodetector

    from scimhost.builtin.tortoise_storage.backend import APPS

    store = backend(f"sqlite://{tmp_path}/db.sqlite3")
    await store.open()
    try:
        with store._active():
            pending = await MigrationAutodetector(store._ctx.apps, APPS).changes()
        assert [[op.describe() for op in writer.operations] for writer in pending] == []
    finally:
        await store.close()


async def test_reopening_keeps_data(storage_url):
    store = backend(storage_url)
    await store.open()
    await store.ensure_service_account("demo", "scimhost-source-demo")
    await store.set_token_hash("demo", "ab" * 32)
    await store.close()

    again = backend(storage_url)
    await again.open()
    try:
        assert await again.token_hashes("demo", now=datetime.now(UTC)) == ("ab" * 32,)
        [account] = await again.service_accounts()
        assert account.source == "demo" and account.has_token
        assert account.created.tzinfo is not None
    finally:
        await again.close()


async def test_processes_starting_together_migrate_once(storage_url):
    stores = [backend(storage_url) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        for store in stores:
            assert await store.pending_migrations() == []
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_service_account_is_created_once(storage_url):
    store = backend(storage_url)
    await store.open()
    try:
        first = await store.ensure_service_account("demo", "scimhost-source-demo")
        second = await store.ensure_service_account("demo", "scimhost-source-demo")
        assert first == second
        assert not first.has_token
        assert await store.token_hashes("demo", now=datetime.now(UTC)) == ()
        assert await store.token_hashes("nosuch", now=datetime.now(UTC)) == ()
        assert [a.source for a in await store.service_accounts()] == ["demo"]
    finally:
        await store.close()


async def test_token_of_unknown_source_cannot_be_set(storage_url):
    store = backend(storage_url)
    await store.open()
    try:
        with pytest.raises(StorageError):
            await store.set_token_hash("nosuch", "ab" * 32)
        assert await store.service_accounts() == []
    finally:
        await store.close()


async def test_closed_store_fails_cleanly(storage_url):
    store = backend(storage_url)
    with pytest.raises(StorageError):
        await store.ping()


async def test_unreachable_postgres_is_a_storage_error():
    store = backend("postgres://postgres@127.0.0.1:1/test")
    with pytest.raises(StorageError) as excinfo:
        await store.open()
    assert "127.0.0.1:1" in str(excinfo.value)


def test_sqlite_pragmas_make_a_concurrent_store(tmp_path):
    store = backend(f"sqlite://{tmp_path}/db.sqlite3")
    credentials = store._config["credentials"]
    assert credentials["journal_mode"] == "WAL"
    assert credentials["busy_timeout"] == "5000"


async def test_sqlite_uses_wal(tmp_path):
    store = backend(f"sqlite://{tmp_path}/db.sqlite3")
    await store.open()
    try:
        rows = await store.database.rows(Query("PRAGMA journal_mode", []))
        assert rows[0]["journal_mode"] == "wal"
        # Connections that may wait for another process's lock wait busy_timeout_ms; the loop's
        # own never wait (their work goes to a thread instead).
        rows = await store._db().execute_query_dict("PRAGMA busy_timeout")
        assert list(rows[0].values())[0] == 5000
        rows = await store.database.scan("PRAGMA busy_timeout", [])
        assert list(rows[0].values())[0] == 5000
        rows = await store.database.rows(Query("PRAGMA busy_timeout", []))
        assert list(rows[0].values())[0] == 0
    finally:
        await store.close()


def sqlite_backend(tmp_path, busy_timeout_ms: int = 5000) -> TortoiseBackend:
    url = f"sqlite://{tmp_path}/db.sqlite3"
    return TortoiseBackend(TortoiseSettings(url=url, busy_timeout_ms=busy_timeout_ms), base_dir=Path.cwd())


def user_write(name: str) -> ResourceWrite:
    return ResourceWrite({"userName": name}, None, name, unique_values={"userName": name})


async def test_sqlite_write_waits_for_another_process_holding_the_lock(tmp_path):
    store = sqlite_backend(tmp_path)
    await store.open()
    other = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # what a writer in another process holds
        write = asyncio.ensure_future(store.create_resource("demo", "User", user_write("waiter")))
        await asyncio.sleep(0.2)
        assert not write.done()  # waiting for the lock on the writer thread, not failed
        # ... and the loop still serves reads meanwhile.
        assert await store.token_hashes("demo", now=datetime.now(UTC)) == ()
        other.execute("COMMIT")
        created = await asyncio.wait_for(write, 5)
        assert (await store.get_resource("demo", "User", created.id)).document == {"userName": "waiter"}
    finally:
        other.close()
        await store.close()


async def test_sqlite_writes_ready_together_commit_together_and_one_that_fails_alone_is_undone(tmp_path, monkeypatch):
    """Grouped commits: small writes of one turn of the loop share a transaction, each in a
    savepoint; a uniqueness conflict rolls back that write only, and every caller hears its own
    outcome after the commit."""
    from scimhost.builtin.tortoise_storage import sqlite_database
    from scimhost.storage.backend import UniquenessConflict

    store = sqlite_backend(tmp_path)
    await store.open()
    try:
        groups = []
        group = sqlite_database._group

        def recording(connection, works, **options):
            groups.append(len(works))
            return group(connection, works, **options)

        monkeypatch.setattr(sqlite_database, "_group", recording)
        names = ["a", "b", "taken", "c", "taken", "d"]
        outcomes = await asyncio.gather(
            *(store.create_resource("demo", "User", user_write(name)) for name in names), return_exceptions=True
        )
        assert groups == [6]
        assert [type(o).__name__ for o in outcomes].count("UniquenessConflict") == 1
        assert isinstance(outcomes[4], UniquenessConflict)  # the second of the two, in order
        stored = await store.list_resources("demo", "User", ResourceQuery(count=100), members=False, groups=False)
        assert sorted(r.document["userName"] for r in stored.resources) == ["a", "b", "c", "d", "taken"]
        unique = await store.database.rows(Query("SELECT COUNT(*) AS n FROM scimhost_unique", []))
        assert unique[0]["n"] == 5  # the failed write left no row behind
    finally:
        await store.close()


async def test_sqlite_write_gives_up_after_the_busy_timeout_and_stores_nothing(tmp_path):
    store = sqlite_backend(tmp_path, busy_timeout_ms=100)
    await store.open()
    other = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StorageError, match="locked"):
            await store.create_resource("demo", "User", user_write("late"))
        other.execute("COMMIT")
        rows = await store.database.rows(Query("SELECT COUNT(*) AS n FROM scimhost_resource", []))
        assert rows[0]["n"] == 0
        await store.create_resource("demo", "User", user_write("late"))  # the lock is free again
    finally:
        other.close()
        await store.close()


async def test_sqlite_long_reads_leave_the_event_loop(tmp_path, monkeypatch):
    store = sqlite_backend(tmp_path)
    await store.open()
    try:
        on_threads = []
        original_scan = store.database.scan

        async def spy_scan(text, values):
            on_threads.append(text)
            return await original_scan(text, values)

        monkeypatch.setattr(store.database, "scan", spy_scan)
        assert await store.token_hashes("demo", now=datetime.now(UTC)) == ()  # a lookup by key stays on the loop
        assert on_threads == []
        long_read = (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?1) SELECT COUNT(*) AS n FROM c"
        )
        rows = await store.database.rows(Query(long_read, [300_000]))
        assert rows == [{"n": 300_000}]  # cut off on the loop, answered whole on a reader thread
        assert on_threads == [long_read]
    finally:
        await store.close()


STEADY_WRITES = 150


async def wal_frames_after_steady_writes(path: Path) -> int:
    store = TortoiseBackend(TortoiseSettings(url=f"sqlite://{path}/db.sqlite3"), base_dir=Path.cwd())
    await store.open()
    try:
        # Enough commits that several RESTART checkpoints are tried: one that finds the lock
        # taken on a loaded machine gives up after 20 ms, and the next one starts the WAL over.
        for index in range(STEADY_WRITES):
            await store.create_resource("demo", "User", user_write(f"steady{index}"))
            await asyncio.sleep(0)  # let a checkpoint task take its turn, as requests would
        if store.database._checkpoint is not None:
            await store.database._checkpoint
        assert (await store.list_resources("demo", "User", ResourceQuery())).total == STEADY_WRITES
        rows = await store.database.scan("PRAGMA wal_checkpoint(PASSIVE)", [])
        return rows[0]["log"]  # pages in the WAL since it last started over
    finally:
        await store.close()


async def test_sqlite_wal_starts_over_under_steady_writes(tmp_path, monkeypatch):
    from scimhost.builtin.tortoise_storage import sqlite_database

    (tmp_path / "without").mkdir()
    (tmp_path / "with").mkdir()
    monkeypatch.setattr(sqlite_database, "CHECKPOINT_EVERY", 10_000)
    without_checkpoints = await wal_frames_after_steady_writes(tmp_path / "without")
    # Checkpoints every few commits and a tiny WAL bound, so that a test-sized load crosses them.
    monkeypatch.setattr(sqlite_database, "CHECKPOINT_EVERY", 5)
    monkeypatch.setattr(sqlite_database, "RESTART_FRAMES", 20)
    # A RESTART that finds the lock or a reader gives up after RESTART_WAIT_MS (in service, so
    # as not to stall other processes' writes); on a loaded machine 20 ms can pass before this
    # test's own threads let go, which made the test fail by timing. Here it may wait.
    monkeypatch.setattr(sqlite_database, "RESTART_WAIT_MS", 10_000)
    with_checkpoints = await wal_frames_after_steady_writes(tmp_path / "with")
    assert without_checkpoints > 200  # every page of every transaction since the store opened
    assert with_checkpoints < without_checkpoints / 3, (with_checkpoints, without_checkpoints)


def test_password_is_left_out_of_descriptions():
    store = backend("postgres://scim:secret-pw@db.internal:5433/scim")
    assert "secret-pw" not in store.describe()
    assert "db.internal:5433/scim" in store.describe()


async def test_memberships_made_before_migration_0006_take_their_groups_source(empty_storage_url):
    """Membership rows written before they carried a source are scoped after the upgrade."""
    from tortoise.migrations.executor import MigrationExecutor, MigrationTarget

    from scimhost.builtin.tortoise_storage.backend import APPS

    store = backend(empty_storage_url)
    await store.open(migrate=False)
    try:
        with store._active():
            await MigrationExecutor(store._db(), APPS).migrate([MigrationTarget("scimhost", "0005_member_order_index")])
        db = store._db()
        user, group = str(uuid.uuid4()), str(uuid.uuid4())
        for rid, kind, display in ((user, "User", "bjensen"), (group, "Group", "Admins")):
            p = Params(store.dialect)
            await db.execute_query(
                "INSERT INTO scimhost_resource (id, source, resource_type, display, data, version, created, "
                f"last_modified) VALUES ({p(rid)}, 'demo', {p(kind)}, {p(display)}, '{{}}', 1, {p(_now())}, {p(_now())})",
                p.values,
            )
        p = Params(store.dialect)
        await db.execute_query(
            f"INSERT INTO scimhost_member (group_id, member_id, member_type) VALUES ({p(group)}, {p(user)}, 'User')",
            p.values,
        )
    finally:
        await store.close()

    upgraded = backend(empty_storage_url)
    await upgraded.open()
    try:
        stored = await upgraded.get_resource("demo", "Group", group)
        assert [m["value"] for m in stored.members] == [user]
        assert [g["value"] for g in (await upgraded.get_resource("demo", "User", user)).groups] == [group]
        assert await upgraded.get_resource("other", "Group", group) is None
    finally:
        await upgraded.close()


def _now() -> datetime:
    return datetime.now(UTC)


async def test_a_fresh_sqlite_database_reads_one_resources_rows_by_its_id(tmp_path):
    """Without statistics SQLite walked every index row of the source to find one resource's
    (a PATCH and every filter grew with the directory); migration 0010 gives it the shape."""
    from scimhost.builtin.tortoise_storage.dialects import SQLITE
    from scimhost.builtin.tortoise_storage.filter_sql import FilterSQL
    from scimhost.builtin.tortoise_storage.scope import Scope
    from scimhost.builtin.tortoise_storage.writes import Writes
    from scimhost.scim.filter import parse_filter
    from scimhost.scim.query import resolve_filter
    from scimhost.testing import KIT, USER

    store = sqlite_backend(tmp_path)
    await store.open()
    try:
        scope = Scope("demo", "User")
        writes = Writes(SQLITE)
        p = Params(SQLITE)
        condition = FilterSQL(SQLITE, scope).condition(p, resolve_filter(parse_filter('title eq "x"'), USER))
        statements = [
            next(writes._update_index(scope, "some-id", [])),  # the index rows of one resource
            next(writes._update_unique(scope, "some-id", {})),  # its unique values
            p.query(f"SELECT r.id FROM scimhost_resource r WHERE r.id = {p('some-id')} AND {condition}"),
        ]
        for statement in statements:
            plan = " ".join(
                row["detail"]
                for row in await store.database.rows(Query("EXPLAIN QUERY PLAN " + statement.sql, statement.values))
            )
            assert "(resource_id=?" in plan, (statement.sql, plan)
        # A comparison of numbers is served by the index of the rows that have one (0011).
        number = resolve_filter(parse_filter(f"{KIT}:level gt 2"), USER)
        p = Params(SQLITE)
        driver = FilterSQL(SQLITE, scope).driver(number, estimate=None)
        sql = (await driver)(p)
        plan = " ".join(
            row["detail"] for row in await store.database.rows(Query("EXPLAIN QUERY PLAN " + sql, p.values))
        )
        assert "idx_scimhost_attr_number" in plan, plan
    finally:
        await store.close()


def indexed_user(name: str) -> ResourceWrite:
    """A user with its attribute index rows, as the host writes it."""
    from scimhost.testing import user_write as kit_user_write

    return kit_user_write(name)


async def _lookup_plan(store: TortoiseBackend, filter_text: str) -> str:
    """The plan of the statement a filtered list runs (EXPLAIN on either database)."""
    from scimhost.scim.filter import parse_filter
    from scimhost.scim.query import resolve_filter
    from scimhost.testing import USER

    database, seen = store.database, []
    rows = database.rows

    async def recording(query):
        seen.append(query)
        return await rows(query)

    database.rows = recording  # type: ignore[method-assign]
    try:
        query = ResourceQuery(filter=resolve_filter(parse_filter(filter_text), USER))
        await store.list_resources("demo", "User", query, members=False, groups=True)
    finally:
        database.rows = rows  # type: ignore[method-assign]
    statement = next(q for q in seen if "FROM scimhost_resource r" in q.sql)
    explain = "EXPLAIN QUERY PLAN " if store.dialect.name == "sqlite" else "EXPLAIN "
    plan = await database.rows(Query(explain + statement.sql, statement.values))
    return "\n".join(str(row.get("detail") or row.get("QUERY PLAN")) for row in plan)


async def test_a_lookup_starts_from_the_ids_the_attribute_index_found(storage_url):
    """An initial sync's `userName eq` lookup cost what the store held when the resources were
    walked by source with the ids tested per row: SQLite (migration 0014) and a never-analyzed
    PostgreSQL (an array of ids, probed by primary key) start from the ids instead."""
    store = backend(storage_url)
    await store.open()
    try:
        for i in range(30):
            await store.create_resource("demo", "User", indexed_user(f"u{i}"))
        plan = await _lookup_plan(store, 'userName eq "u1"')
        if store.dialect.name == "sqlite":
            assert "sqlite_autoindex_scimhost_resource_1 (id=?)" in plan, plan
        else:
            assert "InitPlan" in plan and "ANY" in plan, plan
    finally:
        await store.close()


async def test_postgres_analyzes_the_tables_a_sync_fills(postgres_schema_url):
    """The host does not wait for autovacuum: after enough writes, tables never analyzed (or
    changed by more than a fifth since) are analyzed, and then not again until they change."""
    from scimhost.builtin.tortoise_storage.planner_statistics import PlannerStatistics

    store = backend(postgres_schema_url)
    await store.open()
    try:
        for i in range(30):
            await store.create_resource("demo", "User", indexed_user(f"u{i}"))
        statistics = PlannerStatistics(store.database)
        analyzed: list[str] = []
        for _ in range(50):  # the cumulative statistics reach pg_stat_user_tables within a second
            analyzed = await statistics.refresh()
            if analyzed:
                break
            await asyncio.sleep(0.1)
        assert {"scimhost_resource", "scimhost_attr", "scimhost_unique"} <= set(analyzed)
        rows = await store.database.rows(
            Query(
                "SELECT relname FROM pg_stat_user_tables WHERE schemaname = current_schema() "
                "AND last_analyze IS NOT NULL",
                [],
            )
        )
        assert {"scimhost_resource", "scimhost_attr"} <= {row["relname"] for row in rows}
        assert await statistics.refresh() == []  # nothing changed since
        # The backend runs a pass itself every CHECK_EVERY writes.
        store._statistics = PlannerStatistics(store.database, check_every=5)
        for i in range(5):
            await store.create_resource("demo", "User", indexed_user(f"v{i}"))
        assert store._statistics._pass is not None
        await store._statistics.close()
    finally:
        await store.close()


async def test_deleting_a_resource_deletes_its_index_rows(storage_url):
    """No index row outlives its resource (a filter would still not match it, but it would cost)."""
    from scimhost.testing import user_write as indexed_user

    store = backend(storage_url)
    await store.open()
    try:
        kept = await store.create_resource("demo", "User", indexed_user("kept"))
        gone = await store.create_resource("demo", "User", indexed_user("gone"))
        await store.delete_resource("demo", "User", gone.id)
        p = Params(store.dialect)
        count = f"SELECT COUNT(*) AS n FROM scimhost_attr WHERE resource_id = {p(gone.id)}"
        assert (await store.database.rows(p.query(count)))[0]["n"] == 0
        p = Params(store.dialect)
        count = f"SELECT COUNT(*) AS n FROM scimhost_attr WHERE resource_id = {p(kept.id)}"
        assert (await store.database.rows(p.query(count)))[0]["n"] > 0
    finally:
        await store.close()


async def test_a_claim_reads_index_ranges_of_new_and_due_deliveries_not_the_backlog(tmp_path, monkeypatch):
    """A claim walked every delivery a sink ever had, then (0012) the whole backlog; with heads
    marked (0013) it reads the deliveries written since the last claim and the due heads, and
    finishing one promotes its resource's next by the unfinished deliveries' index."""
    from scimhost.builtin.tortoise_storage import sqlite_database

    store = sqlite_backend(tmp_path)
    await store.open()
    try:
        seen = []
        answer = sqlite_database._answer

        def recording(connection, statement):
            seen.append(statement)
            return answer(connection, statement)

        monkeypatch.setattr(sqlite_database, "_answer", recording)
        await store.claim_deliveries("hook", now=datetime.now(UTC), limit=10, lease_seconds=30)
        await store.finish_delivery("hook", 1, state="done", now=datetime.now(UTC))
        plans = []
        for statement in seen:
            rows = await store.database.rows(Query("EXPLAIN QUERY PLAN " + statement.sql, statement.values))
            plans.append(" ".join(row["detail"] for row in rows))
        sweep, examine, due, finish, promote = plans
        assert "idx_scimhost_delivery_waiting (sink=?)" in sweep, sweep
        assert "idx_scimhost_delivery_unexamined (sink=?)" in examine, examine
        assert "idx_scimhost_delivery_unfinished_key (sink=? AND key=? AND event_seq<?)" in examine, examine
        assert "(sink=? AND state=?" in due, due  # in flight, lease lapsed
        assert "idx_scimhost_delivery_due_heads (sink=? AND next_attempt<?)" in due, due
        assert "(sink=? AND event_seq=?)" in finish, finish
        assert "sqlite_autoindex_scimhost_delivery_1 (sink=? AND event_seq=?)" in promote, promote
        assert "idx_scimhost_delivery_unfinished_key (sink=? AND key=? AND event_seq>?)" in promote, promote
        # No table is scanned: only the finished ones' list (a JSON array) and the two halves
        # of the due ones (each a range of an index) are read whole.
        scanned = {name for plan in plans for name in re.findall(r"SCAN (\w+)", plan)}
        assert scanned <= {"json_each", "s", "l", "h"}, plans
    finally:
        await store.close()


async def test_a_waiting_delivery_left_without_a_head_is_found_again(storage_url):
    """Two dispatchers at once (one whose lease lapsed while it still ran) could leave a
    delivery marked waiting with nothing unfinished before it; the claim's periodic check
    finds it, so it is delivered rather than held forever."""
    from scimhost.testing import draft
    from scimhost.testing import user_write as indexed_user

    store = backend(storage_url)
    await store.open()
    try:
        user = await store.create_resource("demo", "User", indexed_user("u"), event=draft("create", sinks=("hook",)))
        [first] = await store.claim_deliveries("hook", now=datetime.now(UTC), limit=5, lease_seconds=60)
        await store.finish_delivery("hook", first.event.seq, state="done", now=datetime.now(UTC), status=204)
        write = ResourceWrite({"userName": "u", "title": "2"}, None, "u", unique_values={"userName": "u"})
        await store.update_resource(
            "demo", "User", user.id, expected_version=None, write=write, event=draft("patch", sinks=("hook",))
        )
        p = Params(store.dialect)
        await store.database.execute(p.command(f"UPDATE scimhost_delivery SET head = 0 WHERE state = {p('pending')}"))
        assert await store.claim_deliveries("hook", now=datetime.now(UTC), limit=5, lease_seconds=60) == []
        store._deliveries._swept.clear()  # the check's time has come
        [second] = await store.claim_deliveries("hook", now=datetime.now(UTC), limit=5, lease_seconds=60)
        assert second.event.version == 2
    finally:
        await store.close()


def test_an_in_memory_sqlite_url_is_refused_naming_the_memory_backend():
    """Each of the backend's own connections would open a different empty database."""
    with pytest.raises(ValueError, match="memory backend"):
        TortoiseSettings(url="sqlite://:memory:")
