"""A conformance suite any storage backend plugin can run against itself.

In the plugin's tests, import the suite and provide one fixture, `conformance_backend`: an
async fixture yielding an opened (migrated), empty backend instance.

    from scimhost.testing import *  # noqa: F401,F403

    @pytest.fixture
    async def conformance_backend(tmp_path):
        backend = MyBackend(MySettings(...), base_dir=tmp_path)
        await backend.open()
        yield backend
        await backend.close()

Every `test_conformance_*` function below is then collected and run against that backend:
CRUD, versions, uniqueness, membership, filters, paging, transactions and concurrency. The
built-in tortoise backend runs it on SQLite and PostgreSQL (tests/test_conformance.py).
"""

from __future__ import annotations

import asyncio

import pytest

from scimhost.builtin.core_schemas import (
    ENTERPRISE_USER_SCHEMA,
    GROUP_RESOURCE_TYPE,
    GROUP_SCHEMA,
    USER_RESOURCE_TYPE,
    USER_SCHEMA,
)
from scimhost.scim.catalog import build_catalog
from scimhost.scim.extensions import SchemaExtension
from scimhost.scim.filter import parse_filter
from scimhost.scim.query import ResourceQuery, index_entries, resolve_filter
from scimhost.scim.validation import validate_resource
from scimhost.storage.backend import (
    MemberChange,
    ResourceNotFound,
    ResourceWrite,
    UniquenessConflict,
    UnknownMembers,
    VersionMismatch,
)

_CATALOG = build_catalog(
    [USER_SCHEMA, GROUP_SCHEMA], [USER_RESOURCE_TYPE, GROUP_RESOURCE_TYPE], [SchemaExtension("User", ENTERPRISE_USER_SCHEMA)]
)
USER = _CATALOG.resource_types["User"]
GROUP = _CATALOG.resource_types["Group"]
SOURCE = "conformance"


def user_write(user_name: str, **attributes) -> ResourceWrite:
    """What the host would store for a user document."""
    document = validate_resource({"userName": user_name, **attributes}, USER)
    return ResourceWrite(
        document=document,
        external_id=document.get("externalId"),
        display=document.get("displayName") or user_name,
        unique_values={"userName": user_name.lower()},
        index=tuple(index_entries(document, USER)),
        record={"username": user_name},
    )


def group_write(name: str) -> ResourceWrite:
    document = validate_resource({"displayName": name}, GROUP)
    return ResourceWrite(
        document=document, external_id=None, display=name, unique_values={"displayName": name.lower()},
        index=tuple(index_entries(document, GROUP)),
    )


def query(filter_text: str | None = None, **fields) -> ResourceQuery:
    node = resolve_filter(parse_filter(filter_text), USER) if filter_text else None
    return ResourceQuery(filter=node, **fields)


async def test_conformance_create_read_update_delete(conformance_backend):
    store = conformance_backend
    created = await store.create_resource(SOURCE, "User", user_write("alice", title="Boss"))
    assert created.version == 1
    stored = await store.get_resource(SOURCE, "User", created.id)
    assert stored.document["userName"] == "alice" and stored.document["title"] == "Boss"
    assert stored.groups == [] and stored.members == []
    assert await store.get_record(SOURCE, "User", created.id) == {"username": "alice"}
    updated = await store.update_resource(SOURCE, "User", created.id, expected_version=1, write=user_write("alice", title="CEO"))
    assert updated.version == 2 and updated.document["title"] == "CEO"
    with pytest.raises(VersionMismatch):
        await store.update_resource(SOURCE, "User", created.id, expected_version=1, write=user_write("alice"))
    assert (await store.get_resource(SOURCE, "User", created.id)).document["title"] == "CEO"
    with pytest.raises(VersionMismatch):
        await store.delete_resource(SOURCE, "User", created.id, expected_version=1)
    await store.delete_resource(SOURCE, "User", created.id, expected_version=2)
    assert await store.get_resource(SOURCE, "User", created.id) is None
    with pytest.raises(ResourceNotFound):
        await store.delete_resource(SOURCE, "User", created.id)
    with pytest.raises(ResourceNotFound):
        await store.update_resource(SOURCE, "User", created.id, expected_version=None, write=user_write("alice"))


async def test_conformance_resources_are_scoped_by_source_and_type(conformance_backend):
    store = conformance_backend
    created = await store.create_resource(SOURCE, "User", user_write("alice"))
    assert await store.get_resource("elsewhere", "User", created.id) is None
    assert await store.get_resource(SOURCE, "Group", created.id) is None
    await store.create_resource("elsewhere", "User", user_write("alice"))  # unique per source only


async def test_conformance_uniqueness(conformance_backend):
    store = conformance_backend
    first = await store.create_resource(SOURCE, "User", user_write("alice"))
    with pytest.raises(UniquenessConflict) as excinfo:
        await store.create_resource(SOURCE, "User", user_write("ALICE"))
    assert excinfo.value.attribute == "userName"
    bob = await store.create_resource(SOURCE, "User", user_write("bob"))
    with pytest.raises(UniquenessConflict):
        await store.update_resource(SOURCE, "User", bob.id, expected_version=None, write=user_write("alice"))
    assert (await store.get_resource(SOURCE, "User", bob.id)).document["userName"] == "bob"
    await store.delete_resource(SOURCE, "User", first.id)
    await store.create_resource(SOURCE, "User", user_write("alice"))


async def test_conformance_membership(conformance_backend):
    store = conformance_backend
    users = [await store.create_resource(SOURCE, "User", user_write(f"u{i}")) for i in range(4)]
    ids = [u.id for u in users]
    group = await store.create_resource(SOURCE, "Group", group_write("g"), members=ids[:2])

    async def members() -> list[str]:
        return sorted(m["value"] for m in (await store.get_resource(SOURCE, "Group", group.id)).members)

    assert await members() == sorted(ids[:2])
    await store.update_resource(SOURCE, "Group", group.id, expected_version=None, write=None,
                                member_changes=[MemberChange("add", (ids[2], ids[0])), MemberChange("remove", (ids[1], "absent"))])
    assert await members() == sorted([ids[0], ids[2]])
    await store.update_resource(SOURCE, "Group", group.id, expected_version=None, write=None,
                                member_changes=[MemberChange("set", (ids[3],))])
    assert await members() == [ids[3]]
    assert [g["value"] for g in (await store.get_resource(SOURCE, "User", ids[3])).groups] == [group.id]
    without = await store.get_resource(SOURCE, "Group", group.id, members=False)
    assert without.members is None
    await store.delete_resource(SOURCE, "User", ids[3])
    assert await members() == []


async def test_conformance_setting_members(conformance_backend):
    """`set` makes the membership exactly the list: members that stay keep their place, new ones
    follow in the list's order, and an unknown id (or the group itself) changes nothing."""
    store = conformance_backend
    ids = [(await store.create_resource(SOURCE, "User", user_write(f"s{i}"))).id for i in range(5)]
    group = await store.create_resource(SOURCE, "Group", group_write("g"), members=ids[:3])

    async def members() -> list[str]:
        return [m["value"] for m in (await store.get_resource(SOURCE, "Group", group.id)).members]

    await store.update_resource(SOURCE, "Group", group.id, expected_version=None, write=None,
                                member_changes=[MemberChange("set", (ids[4], ids[2], ids[3], ids[1], ids[4]))])
    assert await members() == [ids[1], ids[2], ids[4], ids[3]]
    for wrong in ("missing", group.id):
        with pytest.raises(UnknownMembers):
            await store.update_resource(SOURCE, "Group", group.id, expected_version=None, write=None,
                                        member_changes=[MemberChange("set", (ids[0], wrong))])
        assert await members() == [ids[1], ids[2], ids[4], ids[3]]
    await store.update_resource(SOURCE, "Group", group.id, expected_version=None, write=None,
                                member_changes=[MemberChange("set", ())])
    assert await members() == []


async def test_conformance_failed_writes_change_nothing(conformance_backend):
    store = conformance_backend
    user = await store.create_resource(SOURCE, "User", user_write("u"))
    with pytest.raises(UnknownMembers):
        await store.create_resource(SOURCE, "Group", group_write("g"), members=[user.id, "missing"])
    total = (await store.list_resources(SOURCE, "Group", ResourceQuery())).total
    assert total == 0
    group = await store.create_resource(SOURCE, "Group", group_write("g"))
    with pytest.raises(UnknownMembers):
        await store.update_resource(SOURCE, "Group", group.id, expected_version=None, write=group_write("renamed"),
                                    member_changes=[MemberChange("add", ("missing",))])
    stored = await store.get_resource(SOURCE, "Group", group.id)
    assert stored.document["displayName"] == "g" and stored.version == 1 and stored.members == []


async def test_conformance_filters_and_paging(conformance_backend):
    store = conformance_backend
    for i in range(6):
        await store.create_resource(SOURCE, "User", user_write(f"user{i}", title="even" if i % 2 == 0 else "odd",
                                                               emails=[{"value": f"u{i}@x.example", "type": "work"}]))
    page = await store.list_resources(SOURCE, "User", query('title eq "EVEN"'))
    assert page.total == 3 and [r.document["userName"] for r in page.resources] == ["user0", "user2", "user4"]
    page = await store.list_resources(SOURCE, "User", query('emails[type eq "work" and value sw "u5"]'))
    assert [r.document["userName"] for r in page.resources] == ["user5"]
    page = await store.list_resources(SOURCE, "User", query(None, start_index=2, count=2))
    assert page.total == 6 and [r.document["userName"] for r in page.resources] == ["user1", "user2"]
    page = await store.list_resources(SOURCE, "User", query('not (title eq "odd")', count=0))
    assert page.total == 3 and page.resources == []
    first = await store.list_resources(SOURCE, "User", query(None, count=4, cursor_paging=True))
    last = first.resources[-1]
    second = await store.list_resources(SOURCE, "User", query(None, count=4, cursor_paging=True, after=(last.created, last.id)))
    assert first.more_after and not second.more_after
    names = [r.document["userName"] for r in first.resources + second.resources]
    assert names == [f"user{i}" for i in range(6)]


async def test_conformance_concurrent_member_changes_lose_nothing(conformance_backend):
    store = conformance_backend
    users = [await store.create_resource(SOURCE, "User", user_write(f"u{i}")) for i in range(25)]
    group = await store.create_resource(SOURCE, "Group", group_write("g"))
    await asyncio.gather(*(
        store.update_resource(SOURCE, "Group", group.id, expected_version=None, write=None,
                              member_changes=[MemberChange("add", (u.id,))])
        for u in users
    ))
    stored = await store.get_resource(SOURCE, "Group", group.id)
    assert sorted(m["value"] for m in stored.members) == sorted(u.id for u in users)
    assert stored.version == 26


async def test_conformance_overlapping_member_changes_in_any_order(conformance_backend):
    """Concurrent changes naming the same members in opposite orders all complete (no deadlock)
    and the result is what some serial order of them gives."""
    store = conformance_backend
    ids = [(await store.create_resource(SOURCE, "User", user_write(f"o{i}"))).id for i in range(12)]
    group = await store.create_resource(SOURCE, "Group", group_write("g"), members=ids[8:])
    forward, backward = tuple(ids[:8]), tuple(reversed(ids[:8]))
    changes = [
        [MemberChange("add", forward)], [MemberChange("add", backward)],
        [MemberChange("add", forward), MemberChange("remove", (ids[8], ids[9]))],
        [MemberChange("remove", (ids[9], ids[8])), MemberChange("add", backward)],
    ] * 3
    await asyncio.wait_for(asyncio.gather(*(
        store.update_resource(SOURCE, "Group", group.id, expected_version=None, write=None, member_changes=c)
        for c in changes
    )), timeout=30)
    stored = await store.get_resource(SOURCE, "Group", group.id)
    assert sorted(m["value"] for m in stored.members) == sorted(ids[:8] + ids[10:])
    assert stored.version == 1 + len(changes)


async def test_conformance_one_writer_wins_on_the_same_version(conformance_backend):
    store = conformance_backend
    user = await store.create_resource(SOURCE, "User", user_write("u"))
    results = await asyncio.gather(
        *(store.update_resource(SOURCE, "User", user.id, expected_version=1, write=user_write("u", title=str(i)))
          for i in range(5)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, VersionMismatch) for r in results if isinstance(r, Exception))


__all__ = [name for name in list(globals()) if name.startswith("test_conformance_")]
