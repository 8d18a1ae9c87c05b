"""The storage contract: the rules every storage backend plugin must keep, one test each (and,
from `scimhost.testing_sinks`, the sink contract `SinkContract` and `stored_event`).

In the backend's tests, subclass `StorageContract` and give the subclass one fixture, `backend`:
an async fixture yielding an opened (migrated), empty backend instance.

    import pytest
    from scimhost.testing import StorageContract

    class TestMyBackend(StorageContract):
        @pytest.fixture
        async def backend(self, tmp_path):
            backend = MyBackend(MySettings(...), base_dir=tmp_path)
            await backend.open()
            yield backend
            await backend.close()

Install `scimhost[testing]` for what the contract needs (pytest, pytest-aiohttp). The tests are
coroutines: run them with pytest-asyncio in auto mode (`asyncio_mode = "auto"` under
`[tool.pytest.ini_options]`; pytest-aiohttp brings pytest-asyncio), as the memory backend's
pyproject (plugins/scimhost-memory) does.

A store of fewer roles subclasses the part for each role instead: `ResourceStoreContract`,
`AccountStoreContract`, `OutboxContract` (its writes go through a StorageBackend whose outbox is
the one under test). A resource store meant to run beside the built-in outbox also subclasses
`CompositionContract`, with a `backend` fixture yielding a ComposedStorage of it and the
outbox: every rule below through the composition, plus crashes injected between the resource
write and its event (plugins/scimhost-ldap does both).

Every test of the class then runs against that backend: CRUD, versions, uniqueness, membership
(read in batches), filters (every operator on every attribute type, checked against the core's
reference evaluator `scimhost.scim.query_eval`; searches across resource types), sorting, index and cursor paging, tokens,
activity, transactions, concurrency, the event log and the delivery queue, purging a source,
what a backend returns being the caller's own copy (mutating it never changes the store), and
source isolation. The built-in tortoise backend keeps it on SQLite and PostgreSQL
(tests/test_conformance.py), the memory backend in plugins/scimhost-memory.

Isolation is the rule a backend must never break: every method that takes a source reads and
changes only that source's data (and only the named resource type), whatever the filter, id or
member list it is given. Two sources below hold the same userNames, emails and group names; a
filter whose top-level `or` escapes its scope, an id lookup or member list not scoped by source,
fails these tests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from scimhost.builtin.core_schemas import (
    ENTERPRISE_USER_SCHEMA,
    GROUP_RESOURCE_TYPE,
    GROUP_SCHEMA,
    USER_RESOURCE_TYPE,
    USER_SCHEMA,
    attr,
)
from scimhost.scim.catalog import build_catalog
from scimhost.scim.extensions import SchemaExtension
from scimhost.scim.filter import parse_filter
from scimhost.scim.index import index_entries
from scimhost.scim.query import ResourceQuery, resolve_filter, resolve_sort
from scimhost.scim.validation import validated_document
from scimhost.storage.backend import (
    Action,
    EventDraft,
    FinishedDelivery,
    Intent,
    IntentBusy,
    MemberChange,
    Outbox,
    ResourceNotFound,
    ResourcePage,
    ResourceWrite,
    StorageBackend,
    StorageError,
    StoredResource,
    UniquenessConflict,
    UnknownMembers,
    UnsupportedFilter,
    VersionMismatch,
)
from scimhost.storage.composed import ComposedStorage, no_fault
from scimhost.testing_sinks import SinkContract, SinkReceiver, stored_event  # noqa: F401 - re-exported

# An extension with an attribute of every other SCIM type, so that filters on each are tried.
KIT = "urn:example:params:scim:schemas:extension:kit:2.0:User"
ENTERPRISE = str(ENTERPRISE_USER_SCHEMA["id"])
KIT_SCHEMA = {
    "id": KIT,
    "name": "KitUser",
    "description": "Attributes of every type, for the conformance suite",
    "attributes": [
        attr("level", "integer"),
        attr("score", "decimal"),
        attr("hired", "dateTime"),
        attr("verified", "boolean"),
        attr("badge", "binary"),
        attr("homepage", "reference", references=["external"]),
        attr("code", case_exact=True),
    ],
}
_CATALOG = build_catalog(
    [USER_SCHEMA, GROUP_SCHEMA],
    [USER_RESOURCE_TYPE, GROUP_RESOURCE_TYPE],
    [SchemaExtension("User", ENTERPRISE_USER_SCHEMA), SchemaExtension("User", KIT_SCHEMA)],
)
USER = _CATALOG.resource_types["User"]
GROUP = _CATALOG.resource_types["Group"]
SOURCE = "conformance"
OTHER = "conformance-other"


def user_write(user_name: str, **attributes: Any) -> ResourceWrite:
    """What the host would store for a user document."""
    document = validated_document({"userName": user_name, **attributes}, USER)
    return ResourceWrite(
        document=document,
        external_id=document.get("externalId"),
        display=document.get("displayName") or user_name,
        unique_values={"userName": user_name.lower()},
        index=tuple(index_entries(document, USER)),
        record={"username": user_name},
    )


def group_write(name: str) -> ResourceWrite:
    document = validated_document({"displayName": name}, GROUP)
    return ResourceWrite(
        document=document,
        external_id=None,
        display=name,
        unique_values={"displayName": name.lower()},
        index=tuple(index_entries(document, GROUP)),
    )


async def _stored(
    store: StorageBackend, source: str, resource_type: str, resource_id: str, **parts: bool
) -> StoredResource:
    """A resource the test has stored (failing the test if the backend lost it)."""
    stored = await store.get_resource(source, resource_type, resource_id, **parts)
    assert stored is not None, f"{resource_type} {resource_id} is gone"
    return stored


async def _answered(
    store: StorageBackend, source: str, resource_type: str, query: ResourceQuery
) -> ResourcePage | None:
    """The page of a query, or None where a store that does not declare `all_filters` refused
    the filter (UnsupportedFilter: the client gets 400 invalidFilter, never a wrong answer)."""
    try:
        return await store.list_resources(source, resource_type, query)
    except UnsupportedFilter:
        if "all_filters" in store.features:
            raise
        return None


def requiring(backend: StorageBackend, feature: str) -> StorageBackend:
    """The backend, if it declares the optional feature (storage.backend.FEATURES); else the
    test is skipped, naming the feature."""
    if feature not in backend.features:
        pytest.skip(f"the backend does not declare the {feature!r} feature")
    return backend


def query(filter_text: str | None = None, **fields: Any) -> ResourceQuery:
    node = resolve_filter(parse_filter(filter_text), USER) if filter_text else None
    return ResourceQuery(filter=node, **fields)


# Filters of every operator on every attribute type, value paths, `not`, `pr`, case rules and
# membership; each is checked against the core's reference evaluator (scimhost.scim.query_eval).
TYPED_FILTERS = [
    f"{KIT}:level eq 3",
    f"{KIT}:level gt 2",
    f"{KIT}:level le 2",
    f"{KIT}:level pr",
    f"not ({KIT}:level ge 4)",
    f"{KIT}:score gt 1.5",
    f"{KIT}:score lt 1.5",
    f"{KIT}:score eq 2.25",
    f'{KIT}:hired gt "2024-01-01T00:00:00Z"',
    f'{KIT}:hired le "2023-06-30T12:00:00+02:00"',
    f'{KIT}:hired eq "2024-03-01T10:00:00Z"',
    f"{KIT}:verified eq true",
    f"{KIT}:verified eq false",
    f"not ({KIT}:verified eq true)",
    f'{KIT}:badge eq "QUJD"',
    f"{KIT}:badge pr",
    f'{KIT}:homepage sw "https://a."',
    f'{KIT}:homepage co "example"',
    f'{KIT}:code eq "AbC"',
    f'{KIT}:code eq "abc"',
    f'{KIT}:code sw "Ab"',
    'userName eq "USER3"',
    'userName sw "user1"',
    'userName ew "2"',
    'userName co "ser"',
    'userName gt "user4"',
    'userName ne "user0"',
    "title pr",
    "not (title pr)",
    'title eq ""',
    'title co ""',
    'emails[type eq "work" and value ew ".org"]',
    'emails[not (type eq "work")]',
    'emails.value co "3@"',
    "emails pr",
    "emails[primary eq true]",
    'name.givenName lt "M"',
    'active eq true and title sw "e"',
    f'({KIT}:level gt 1 or userName eq "user0") and not (active eq false)',
    'meta.created gt "2000-01-01T00:00:00Z"',
    'meta.lastModified lt "2000-01-01T00:00:00Z"',
    f'{ENTERPRISE_USER_SCHEMA["id"]}:department eq "sales"',
]


# --- isolation: a source reaches only its own data ---------------------------------------------


async def _two_sources(store: StorageBackend) -> dict[str, dict[str, list[str]]]:
    """The same users and groups in SOURCE and OTHER (OTHER has one user more): ids by source."""
    ids: dict[str, dict[str, list[str]]] = {}
    for source, extra in ((SOURCE, 0), (OTHER, 1)):
        users = [
            (
                await store.create_resource(
                    source,
                    "User",
                    user_write(
                        f"user{i}",
                        title="same",
                        emails=[{"value": f"user{i}@example.com", "type": "work"}],
                        **{ENTERPRISE: {"department": "Sales"}},
                    ),
                )
            ).id
            for i in range(3 + extra)
        ]
        group = (await store.create_resource(source, "Group", group_write("Admins"), members=users[:2])).id
        ids[source] = {"User": users, "Group": [group]}
    return ids


ISOLATION_FILTERS = [
    'userName eq "nobody" or userName pr',
    'title eq "same" or not (title eq "same")',
    'not (userName eq "nobody")',
    '(emails[type eq "work" or value co "example"]) or externalId pr',
    'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Sales" or title pr',
    'meta.created gt "2000-01-01T00:00:00Z" or id pr',
]


# --- the event log -----------------------------------------------------------------------------

ACTOR = {"scheme": "test", "account": "conformance", "request_id": "r1", "client": "127.0.0.1"}


def draft(action: Action, **fields: Any) -> EventDraft:
    return EventDraft(action, ACTOR, fields.pop("changed", {}), **fields)


# --- deliveries --------------------------------------------------------------------------------


def _at(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


async def _users_with_versions(
    store: StorageBackend, prefix: str, count: int, *, versions: int
) -> list[StoredResource]:
    """`count` users, each created and then updated to `versions`, every write with its event for
    the sink `hook`."""
    users = [
        await store.create_resource(SOURCE, "User", user_write(f"{prefix}{i}"), event=draft("create", sinks=("hook",)))
        for i in range(count)
    ]
    for user in users:
        await _versions_of(store, SOURCE, user, versions)
    return users


async def _versions_of(
    store: StorageBackend, source: str, user: StoredResource, count: int, sinks: tuple[str, ...] = ("hook",)
) -> None:
    """Versions 2..count of a user, each with its event for `sinks`."""
    for version in range(2, count + 1):
        write = user_write(user.document["userName"], title=str(version))
        await store.update_resource(
            source, "User", user.id, expected_version=None, write=write, event=draft("patch", sinks=sinks)
        )


class ResourceStoreContract:
    """The rules of the resource store role, one test each: CRUD, versions, uniqueness,
    membership, filters, sorting, paging, concurrency and source isolation. Give the subclass a
    `backend` fixture yielding an opened, empty ResourceStore."""

    async def test_create_read_update_delete(self, backend: StorageBackend) -> None:
        store = backend
        created = await store.create_resource(SOURCE, "User", user_write("alice", title="Boss"))
        assert created.version == 1
        stored = await _stored(store, SOURCE, "User", created.id)
        assert stored.document["userName"] == "alice" and stored.document["title"] == "Boss"
        assert stored.groups == [] and stored.members == []
        assert await store.get_record(SOURCE, "User", created.id) == {"username": "alice"}
        updated = await store.update_resource(
            SOURCE, "User", created.id, expected_version=1, write=user_write("alice", title="CEO")
        )
        assert updated.version == 2 and updated.document["title"] == "CEO"
        with pytest.raises(VersionMismatch):
            await store.update_resource(SOURCE, "User", created.id, expected_version=1, write=user_write("alice"))
        assert (await _stored(store, SOURCE, "User", created.id)).document["title"] == "CEO"
        with pytest.raises(VersionMismatch):
            await store.delete_resource(SOURCE, "User", created.id, expected_version=1)
        await store.delete_resource(SOURCE, "User", created.id, expected_version=2)
        assert await store.get_resource(SOURCE, "User", created.id) is None
        with pytest.raises(ResourceNotFound):
            await store.delete_resource(SOURCE, "User", created.id)
        with pytest.raises(ResourceNotFound):
            await store.update_resource(SOURCE, "User", created.id, expected_version=None, write=user_write("alice"))

    async def test_what_a_backend_returns_is_the_callers_own_copy(self, backend: StorageBackend) -> None:
        """Mutating a returned document, member list, record, page or event never changes what
        the store holds (nor does mutating a write after the call): callers edit what they read."""
        store = backend
        write = user_write("alice", emails=[{"value": "a@example.com", "type": "work"}], title="Boss")
        made = draft(
            "create", changed={"title": {"old": None, "new": "Boss"}}, resource={"userName": "alice", "title": "Boss"}
        )
        outbox = isinstance(store, Outbox)
        user = await store.create_resource(SOURCE, "User", write, event=made if outbox else None)
        write.document["title"] = "changed after the call"
        assert write.record is not None
        write.record["username"] = "changed after the call"
        group = await store.create_resource(SOURCE, "Group", group_write("Eng"), [user.id])
        for returned in (
            user,
            await store.get_resource(SOURCE, "User", user.id),
            *(await store.list_resources(SOURCE, "User", query())).resources,
        ):
            assert returned is not None
            returned.document["title"] = "mutated"
            returned.document["emails"][0]["value"] = "mutated@example.com"
            returned.document["new"] = 1
            if returned.groups:
                returned.groups[0]["display"] = "mutated"
                returned.groups.append({"value": "x", "display": "x"})
        for returned_group in (group, await store.get_resource(SOURCE, "Group", group.id)):
            assert returned_group is not None
            if returned_group.members:
                returned_group.members.append({"value": "x", "type": "User", "display": "x"})
                returned_group.members[0]["display"] = "mutated"
        record = await store.get_record(SOURCE, "User", user.id)
        assert record is not None
        record["username"] = "mutated"
        if outbox:
            [event] = await store.list_events(SOURCE)
            event.changed["title"]["new"] = "mutated"
            assert event.resource is not None
            event.resource["title"] = "mutated"
            fetched = await store.get_event(SOURCE, event.seq)
            assert fetched is not None and fetched.resource is not None
            fetched.resource["userName"] = "mutated"

        stored = await _stored(store, SOURCE, "User", user.id)
        assert stored.document["title"] == "Boss" and "new" not in stored.document
        assert stored.document["emails"] == [{"value": "a@example.com", "type": "work"}]
        assert [g["value"] for g in stored.groups or []] == [group.id]
        assert (stored.groups or [{}])[0].get("display") == "Eng"
        members = (await _stored(store, SOURCE, "Group", group.id)).members or []
        assert [(m["value"], m.get("display")) for m in members] == [(user.id, "alice")]
        assert await store.get_record(SOURCE, "User", user.id) == {"username": "alice"}
        if outbox:
            [again] = await store.list_events(SOURCE)
            assert again.changed == {"title": {"old": None, "new": "Boss"}}
            assert again.resource == {"userName": "alice", "title": "Boss"}

    # --- soft delete (feature soft_delete) -------------------------------------------------

    async def test_a_soft_deleted_resource_is_gone_from_every_read(self, backend: StorageBackend) -> None:
        store = requiring(backend, "soft_delete")
        user = await store.create_resource(SOURCE, "User", user_write("alice", externalId="ext-a", title="Boss"))
        other = await store.create_resource(SOURCE, "User", user_write("bob"))
        group = await store.create_resource(SOURCE, "Group", group_write("Eng"), [user.id, other.id])
        await store.delete_resource(SOURCE, "User", user.id, expected_version=1, event=draft("delete"), soft=True)
        assert await store.get_resource(SOURCE, "User", user.id) is None
        assert await store.get_record(SOURCE, "User", user.id) is None
        for filter_text in (None, 'userName eq "alice"', 'title eq "Boss"', 'externalId eq "ext-a"', "userName pr"):
            page = await store.list_resources(SOURCE, "User", query(filter_text))
            assert user.id not in [r.id for r in page.resources], filter_text
        assert (await store.list_resources(SOURCE, "User", query())).total == 1
        members = (await _stored(store, SOURCE, "Group", group.id)).members or []
        assert [m["value"] for m in members] == [other.id] and await store.count_members(SOURCE, group.id) == 1
        with pytest.raises(ResourceNotFound):
            await store.delete_resource(SOURCE, "User", user.id)
        with pytest.raises(ResourceNotFound):
            await store.update_resource(SOURCE, "User", user.id, expected_version=None, write=user_write("alice"))
        with pytest.raises(UnknownMembers):
            await store.update_resource(
                SOURCE,
                "Group",
                group.id,
                expected_version=None,
                write=None,
                member_changes=[MemberChange("add", (user.id,))],
            )
        # Kept aside, whole, and its events stay.
        [kept] = await store.deleted_resources(SOURCE, "User")
        assert (kept.id, kept.external_id, kept.name_key, kept.version) == (user.id, "ext-a", "alice", 1)
        assert kept.document["title"] == "Boss" and kept.record == {"username": "alice"}
        assert await store.deleted_resources(SOURCE, "Group") == []
        assert [e.action for e in await store.list_events(SOURCE, resource_id=user.id)] == ["delete"]

    async def test_a_soft_deleted_resources_unique_values_are_free(self, backend: StorageBackend) -> None:
        store = requiring(backend, "soft_delete")
        user = await store.create_resource(SOURCE, "User", user_write("alice"))
        await store.delete_resource(SOURCE, "User", user.id, soft=True)
        again = await store.create_resource(SOURCE, "User", user_write("alice"))
        assert again.id != user.id
        # ... so the kept one cannot come back while a live resource holds its userName.
        with pytest.raises(UniquenessConflict):
            await store.restore_resource(SOURCE, "User", user.id, user_write("alice"))
        assert (await store.find_deleted(SOURCE, "User", resource_id=user.id)) is not None

    async def test_find_deleted_by_id_external_id_or_name(self, backend: StorageBackend) -> None:
        store = requiring(backend, "soft_delete")
        first = await store.create_resource(SOURCE, "User", user_write("Alice", externalId="ext-1"))
        await store.delete_resource(SOURCE, "User", first.id, soft=True)
        second = await store.create_resource(SOURCE, "User", user_write("alice", externalId="ext-2"))
        await store.delete_resource(SOURCE, "User", second.id, soft=True)
        assert (await store.find_deleted(SOURCE, "User", external_id="ext-1")).id == first.id  # type: ignore[union-attr]
        assert (await store.find_deleted(SOURCE, "User", resource_id=second.id)).id == second.id  # type: ignore[union-attr]
        # The name key is lower-cased; the most recently deleted wins.
        assert (await store.find_deleted(SOURCE, "User", name_key="alice")).id == second.id  # type: ignore[union-attr]
        assert await store.find_deleted(SOURCE, "User", external_id="EXT-1") is None  # externalId is exact
        assert await store.find_deleted(SOURCE, "Group", external_id="ext-1") is None
        assert await store.find_deleted("elsewhere", "User", external_id="ext-1") is None
        assert await store.find_deleted(SOURCE, "User") is None
        assert [d.id for d in await store.deleted_resources(SOURCE, "User")] == [second.id, first.id]

    async def test_a_restore_keeps_the_id_and_moves_the_version_on(self, backend: StorageBackend) -> None:
        store = requiring(backend, "soft_delete")
        user = await store.create_resource(SOURCE, "User", user_write("alice", externalId="ext-a"))
        await store.update_resource(SOURCE, "User", user.id, expected_version=1, write=user_write("alice", title="x"))
        group = await store.create_resource(SOURCE, "Group", group_write("Eng"))
        await store.delete_resource(SOURCE, "User", user.id, soft=True)
        restored = await store.restore_resource(
            SOURCE, "User", user.id, user_write("alice", externalId="ext-a", title="back"), event=draft("restore")
        )
        assert (restored.id, restored.version, restored.created) == (user.id, 3, user.created)
        stored = await _stored(store, SOURCE, "User", user.id)
        assert stored.version == 3 and stored.document["title"] == "back" and stored.created == user.created
        assert (await store.list_resources(SOURCE, "User", query('title eq "back"'))).total == 1
        with pytest.raises(UniquenessConflict):
            await store.create_resource(SOURCE, "User", user_write("alice"))
        assert await store.find_deleted(SOURCE, "User", resource_id=user.id) is None
        with pytest.raises(ResourceNotFound):  # kept no more
            await store.restore_resource(SOURCE, "User", user.id, user_write("alice"))
        [event] = await store.list_events(SOURCE, resource_id=user.id)
        assert (event.action, event.version) == ("restore", 3)
        await store.update_resource(
            SOURCE,
            "Group",
            group.id,
            expected_version=None,
            write=None,
            member_changes=[MemberChange("add", (user.id,))],
        )
        assert [g["value"] for g in (await _stored(store, SOURCE, "User", user.id)).groups or []] == [group.id]

    async def test_purge_deleted_forgets_what_was_deleted_before_the_time(self, backend: StorageBackend) -> None:
        store = requiring(backend, "soft_delete")
        ids = []
        for name in ("a", "b", "c"):
            made = await store.create_resource(SOURCE, "User", user_write(name))
            await store.delete_resource(SOURCE, "User", made.id, soft=True)
            ids.append(made.id)
        elsewhere = await store.create_resource("elsewhere", "User", user_write("a"))
        await store.delete_resource("elsewhere", "User", elsewhere.id, soft=True)
        assert await store.purge_deleted(SOURCE, before=_at(-60)) == 0
        assert await store.purge_deleted(SOURCE, before=_at(5), batch=2) == 3
        assert await store.deleted_resources(SOURCE, "User") == []
        assert [d.id for d in await store.deleted_resources("elsewhere", "User")] == [elsewhere.id]
        with pytest.raises(ResourceNotFound):
            await store.restore_resource(SOURCE, "User", ids[0], user_write("a"))

    async def test_resources_are_scoped_by_source_and_type(self, backend: StorageBackend) -> None:
        store = backend
        created = await store.create_resource(SOURCE, "User", user_write("alice"))
        assert await store.get_resource("elsewhere", "User", created.id) is None
        assert await store.get_resource(SOURCE, "Group", created.id) is None
        await store.create_resource("elsewhere", "User", user_write("alice"))  # unique per source only

    async def test_uniqueness(self, backend: StorageBackend) -> None:
        store = backend
        first = await store.create_resource(SOURCE, "User", user_write("alice"))
        with pytest.raises(UniquenessConflict) as excinfo:
            await store.create_resource(SOURCE, "User", user_write("ALICE"))
        assert excinfo.value.attribute == "userName"
        bob = await store.create_resource(SOURCE, "User", user_write("bob"))
        with pytest.raises(UniquenessConflict):
            await store.update_resource(SOURCE, "User", bob.id, expected_version=None, write=user_write("alice"))
        assert (await _stored(store, SOURCE, "User", bob.id)).document["userName"] == "bob"
        await store.delete_resource(SOURCE, "User", first.id)
        await store.create_resource(SOURCE, "User", user_write("alice"))

    async def test_membership(self, backend: StorageBackend) -> None:
        store = backend
        users = [await store.create_resource(SOURCE, "User", user_write(f"u{i}")) for i in range(4)]
        ids = [u.id for u in users]
        group = await store.create_resource(SOURCE, "Group", group_write("g"), members=ids[:2])

        async def members() -> list[str]:
            return sorted(m["value"] for m in (await _stored(store, SOURCE, "Group", group.id)).members or [])

        assert await members() == sorted(ids[:2])
        await store.update_resource(
            SOURCE,
            "Group",
            group.id,
            expected_version=None,
            write=None,
            member_changes=[MemberChange("add", (ids[2], ids[0])), MemberChange("remove", (ids[1], "absent"))],
        )
        assert await members() == sorted([ids[0], ids[2]])
        await store.update_resource(
            SOURCE,
            "Group",
            group.id,
            expected_version=None,
            write=None,
            member_changes=[MemberChange("set", (ids[3],))],
        )
        assert await members() == [ids[3]]
        assert [g["value"] for g in (await _stored(store, SOURCE, "User", ids[3])).groups or []] == [group.id]
        without = await _stored(store, SOURCE, "Group", group.id, members=False)
        assert without.members is None
        await store.delete_resource(SOURCE, "User", ids[3])
        assert await members() == []

    async def test_setting_members(self, backend: StorageBackend) -> None:
        """`set` makes the membership exactly the list: members that stay keep their place, new ones
        follow in the list's order, and an unknown id (or the group itself) changes nothing."""
        store = backend
        ids = [(await store.create_resource(SOURCE, "User", user_write(f"s{i}"))).id for i in range(5)]
        group = await store.create_resource(SOURCE, "Group", group_write("g"), members=ids[:3])

        async def members() -> list[str]:
            return [m["value"] for m in (await _stored(store, SOURCE, "Group", group.id)).members or []]

        await store.update_resource(
            SOURCE,
            "Group",
            group.id,
            expected_version=None,
            write=None,
            member_changes=[MemberChange("set", (ids[4], ids[2], ids[3], ids[1], ids[4]))],
        )
        assert await members() == [ids[1], ids[2], ids[4], ids[3]]
        for wrong in ("missing", group.id):
            with pytest.raises(UnknownMembers):
                await store.update_resource(
                    SOURCE,
                    "Group",
                    group.id,
                    expected_version=None,
                    write=None,
                    member_changes=[MemberChange("set", (ids[0], wrong))],
                )
            assert await members() == [ids[1], ids[2], ids[4], ids[3]]
        await store.update_resource(
            SOURCE, "Group", group.id, expected_version=None, write=None, member_changes=[MemberChange("set", ())]
        )
        assert await members() == []

    async def test_failed_writes_change_nothing(self, backend: StorageBackend) -> None:
        store = backend
        user = await store.create_resource(SOURCE, "User", user_write("u"))
        with pytest.raises(UnknownMembers):
            await store.create_resource(SOURCE, "Group", group_write("g"), members=[user.id, "missing"])
        total = (await store.list_resources(SOURCE, "Group", ResourceQuery())).total
        assert total == 0
        group = await store.create_resource(SOURCE, "Group", group_write("g"))
        with pytest.raises(UnknownMembers):
            await store.update_resource(
                SOURCE,
                "Group",
                group.id,
                expected_version=None,
                write=group_write("renamed"),
                member_changes=[MemberChange("add", ("missing",))],
            )
        stored = await _stored(store, SOURCE, "Group", group.id)
        assert stored.document["displayName"] == "g" and stored.version == 1 and stored.members == []

    async def test_filters_and_paging(self, backend: StorageBackend) -> None:
        store = backend
        for i in range(6):
            await store.create_resource(
                SOURCE,
                "User",
                user_write(
                    f"user{i}",
                    title="even" if i % 2 == 0 else "odd",
                    emails=[{"value": f"u{i}@x.example", "type": "work"}],
                ),
            )
        page = await store.list_resources(SOURCE, "User", query('title eq "EVEN"'))
        assert page.total == 3 and [r.document["userName"] for r in page.resources] == ["user0", "user2", "user4"]
        found = await _answered(store, SOURCE, "User", query('emails[type eq "work" and value sw "u5"]'))
        assert found is None or [r.document["userName"] for r in found.resources] == ["user5"]
        page = await store.list_resources(SOURCE, "User", query(None, start_index=2, count=2))
        assert page.total == 6 and [r.document["userName"] for r in page.resources] == ["user1", "user2"]
        page = await store.list_resources(SOURCE, "User", query('not (title eq "odd")', count=0))
        assert page.total == 3 and page.resources == []

    async def test_sorting_puts_missing_values_last_ascending_first_descending_and_ties_in_creation_order(
        self, backend: StorageBackend
    ) -> None:
        store = requiring(backend, "sort")
        for name, title in (("u0", "b"), ("u1", None), ("u2", "a"), ("u3", "b"), ("u4", "C")):
            await store.create_resource(SOURCE, "User", user_write(name, **({"title": title} if title else {})))

        async def names(sort_by: str, order: str | None = None) -> list[str]:
            page = await store.list_resources(SOURCE, "User", query(None, sort=resolve_sort(sort_by, order, USER)))
            return [r.document["userName"] for r in page.resources]

        # Case-insensitive attributes sort by their lower-cased value, by code point.
        assert await names("title") == ["u2", "u0", "u3", "u4", "u1"]
        # RFC 7644 §3.4.2.3: no value sorts last when ascending, first when descending.
        assert await names("title", "descending") == ["u1", "u4", "u0", "u3", "u2"]  # ties stay in creation order
        assert await names("userName", "descending") == ["u4", "u3", "u2", "u1", "u0"]
        assert await names("meta.created") == ["u0", "u1", "u2", "u3", "u4"]

    async def test_cursor_pages_run_both_ways(self, backend: StorageBackend) -> None:
        store = requiring(backend, "cursor_paging")
        created = [await store.create_resource(SOURCE, "User", user_write(f"user{i}")) for i in range(7)]
        first = await store.list_resources(SOURCE, "User", query(None, count=4, cursor_paging=True))
        last = first.resources[-1]
        second = await store.list_resources(
            SOURCE, "User", query(None, count=4, cursor_paging=True, after=(last.created, last.id))
        )
        assert first.more_after and not second.more_after and not first.more_before and second.more_before
        names = [r.document["userName"] for r in first.resources + second.resources]
        assert names == [f"user{i}" for i in range(7)]
        middle = created[4]
        before = await store.list_resources(
            SOURCE, "User", query(None, count=3, cursor_paging=True, before=(middle.created, middle.id))
        )
        assert [r.document["userName"] for r in before.resources] == ["user1", "user2", "user3"]
        assert before.more_before and before.more_after and before.total == 7
        first = await store.list_resources(
            SOURCE, "User", query(None, count=3, cursor_paging=True, before=(created[3].created, created[3].id))
        )
        assert [r.document["userName"] for r in first.resources] == [
            "user0",
            "user1",
            "user2",
        ] and not first.more_before
        after = await store.list_resources(
            SOURCE, "User", query(None, count=3, cursor_paging=True, after=(middle.created, middle.id))
        )
        assert [r.document["userName"] for r in after.resources] == ["user5", "user6"] and not after.more_after

    async def test_members_are_read_in_bounded_batches_in_insertion_order(self, backend: StorageBackend) -> None:
        store = backend
        users = [await store.create_resource(SOURCE, "User", user_write(f"m{i}")) for i in range(7)]
        order = [u.id for u in users[3:]] + [u.id for u in users[:3]]
        group = await store.create_resource(SOURCE, "Group", group_write("g"), members=order)
        batches = [batch async for batch in store.iter_members(SOURCE, group.id, batch=3)]
        assert [len(b) for b in batches] == [3, 3, 1]
        assert [m["value"] for b in batches for m in b] == order
        assert batches[0][0] == {"value": order[0], "type": "User", "display": "m3"}
        assert [b async for b in store.iter_members(OTHER, group.id, batch=3)] == []  # another source: nothing
        assert await store.count_members(SOURCE, group.id) == 7
        assert await store.count_members(OTHER, group.id) == 0

    async def test_every_operator_on_every_attribute_type_agrees_with_the_reference(
        self, backend: StorageBackend
    ) -> None:
        import random

        from scimhost.scim.query_eval import Candidate, matches

        store = backend
        rng = random.Random(7643)
        ids = []
        for i in range(16):
            attributes: dict[str, Any] = {}
            if rng.random() < 0.8:
                attributes[KIT] = {
                    "level": rng.randint(0, 5),
                    "score": rng.choice([0.5, 1.5, 2.25, 3.0]),
                    "hired": rng.choice(["2023-06-30T10:00:00Z", "2024-03-01T10:00:00Z", "2025-01-01T00:00:00+01:00"]),
                    "verified": rng.random() < 0.5,
                    "badge": rng.choice(["QUJD", "REVG"]),
                    "homepage": rng.choice(["https://a.example.com/x", "https://b.example.org/"]),
                    "code": rng.choice(["AbC", "abc", "ABC"]),
                }
            if rng.random() < 0.7:
                attributes["title"] = rng.choice(["engineer", "Editor", "", "sales"])
            if rng.random() < 0.7:
                attributes["active"] = rng.random() < 0.5
            if rng.random() < 0.6:
                attributes["name"] = {"givenName": rng.choice(["Ann", "mike", "Zoe"])}
            if rng.random() < 0.8:
                attributes["emails"] = [
                    {
                        "value": f"u{i}{j}@{rng.choice(['a.com', 'b.org'])}",
                        "type": rng.choice(["work", "home"]),
                        **({"primary": True} if j == 0 and rng.random() < 0.5 else {}),
                    }
                    for j in range(rng.randint(1, 2))
                ]
            if rng.random() < 0.5:
                attributes[ENTERPRISE] = {"department": rng.choice(["Sales", "R&D"])}
            ids.append((await store.create_resource(SOURCE, "User", user_write(f"user{i}", **attributes))).id)
        candidates = []
        for resource_id in ids:
            stored = await _stored(store, SOURCE, "User", resource_id)
            candidates.append(
                Candidate(
                    stored.id,
                    stored.created,
                    stored.last_modified,
                    index_entries(stored.document, USER),
                    groups=[g["value"] for g in stored.groups or []],
                )
            )
        selected_some = answered = 0
        for text in TYPED_FILTERS:
            node = resolve_filter(parse_filter(text), USER)
            expected = sorted(c.id for c in candidates if matches(node, c))
            page = await _answered(store, SOURCE, "User", ResourceQuery(filter=node, count=100))
            if page is None:
                continue  # refused (400 invalidFilter), never answered wrongly
            answered += 1
            assert sorted(r.id for r in page.resources) == expected, text
            assert page.total == len(expected), text
            selected_some += 0 < len(expected) < len(ids)
        # The data makes most filters discriminate (and a store answering a subset, several).
        assert selected_some > (answered // 2 if "all_filters" in store.features else 3), (selected_some, answered)

    async def test_membership_filters_agree_with_the_reference(self, backend: StorageBackend) -> None:
        from scimhost.scim.query_eval import Candidate, matches

        store = backend
        users = [(await store.create_resource(SOURCE, "User", user_write(f"m{i}"))).id for i in range(5)]
        groups = [
            (await store.create_resource(SOURCE, "Group", group_write(f"g{i}"), members=chosen))
            for i, chosen in enumerate([users[:2], users[1:4], [], users[4:]])
        ]
        nested = await store.create_resource(SOURCE, "Group", group_write("nested"), members=[groups[0].id, users[0]])
        filters = {
            "Group": [
                "members pr",
                "not (members pr)",
                f'members.value eq "{users[1]}"',
                'members[type eq "Group"]',
                f'members[value eq "{users[0]}" and type eq "User"]',
                f'members[value ne "{users[1]}"]',
            ],
            "User": [
                "groups pr",
                f'groups.value eq "{groups[1].id}"',
                f'groups[value eq "{nested.id}"]',
                "not (groups pr)",
            ],
        }
        for type_name, texts in filters.items():
            resource_type = USER if type_name == "User" else GROUP
            everyone = (await store.list_resources(SOURCE, type_name, ResourceQuery(count=100))).resources
            candidates = [
                Candidate(
                    r.id,
                    r.created,
                    r.last_modified,
                    index_entries(r.document, resource_type),
                    members=[(m["value"], m["type"]) for m in r.members or []],
                    groups=[g["value"] for g in r.groups or []],
                )
                for r in everyone
            ]
            for text in texts:
                node = resolve_filter(parse_filter(text), resource_type)
                expected = sorted(c.id for c in candidates if matches(node, c))
                page = await _answered(store, SOURCE, type_name, ResourceQuery(filter=node, count=100))
                assert page is None or sorted(r.id for r in page.resources) == expected, text

    async def test_a_search_across_types_gives_attributes_a_type_lacks_no_value(self, backend: StorageBackend) -> None:
        """RFC 7644 §3.4.2.2: in a search across resource types, a comparison on an attribute a
        type does not define is false in that type (its `not` true) and the rest of the filter
        decides. The core folds such comparisons out (`scim.query.fold`); the backend answers
        what remains as the reference evaluator answers the whole filter."""
        from scimhost.scim.query import Undefined, fold
        from scimhost.scim.query_eval import Candidate, matches

        store = backend
        kinds: list[dict[str, Any]] = [
            {"title": "x", "emails": [{"value": "a@x", "type": "work"}]},
            {"displayName": "Guide"},
            {},
        ]
        users = [
            (await store.create_resource(SOURCE, "User", user_write(f"u{i}", **attributes))).id
            for i, attributes in enumerate(kinds)
        ]
        await store.create_resource(SOURCE, "Group", group_write("g-empty"))
        await store.create_resource(SOURCE, "Group", group_write("g-full"), members=users[:2])
        await store.create_resource(OTHER, "Group", group_write("g-other"))
        filters = [
            'userName sw "u1" or displayName sw "g"',
            "not (userName pr)",
            'userName ne "u0"',
            "userName eq null",
            'members pr or title eq "x"',
            'emails[type eq "work"] or members[type eq "User"]',
            'not (emails[type eq "work"]) and displayName pr',
            '(userName eq "u2" or members pr) and not (title pr)',
            'title eq "x" and not (members pr)',
        ]
        for type_name, resource_type in (("User", USER), ("Group", GROUP)):
            everyone = (await store.list_resources(SOURCE, type_name, ResourceQuery(count=100))).resources
            candidates = [
                Candidate(
                    r.id,
                    r.created,
                    r.last_modified,
                    index_entries(r.document, resource_type),
                    members=[(m["value"], m["type"]) for m in r.members or []],
                    groups=[g["value"] for g in r.groups or []],
                )
                for r in everyone
            ]
            for text in filters:
                node = resolve_filter(parse_filter(text), resource_type, Undefined())
                expected = sorted(c.id for c in candidates if matches(node, c))
                folded = fold(node)
                if folded is False:
                    found: list[str] = []
                else:
                    narrowed = ResourceQuery(filter=None if folded is True else folded, count=100)
                    page = await _answered(store, SOURCE, type_name, narrowed)
                    if page is None:
                        continue
                    found = sorted(r.id for r in page.resources)
                assert found == expected, (type_name, text)

    async def test_concurrent_member_changes_lose_nothing(self, backend: StorageBackend) -> None:
        store = backend
        users = [await store.create_resource(SOURCE, "User", user_write(f"u{i}")) for i in range(25)]
        group = await store.create_resource(SOURCE, "Group", group_write("g"))
        await asyncio.gather(
            *(
                store.update_resource(
                    SOURCE,
                    "Group",
                    group.id,
                    expected_version=None,
                    write=None,
                    member_changes=[MemberChange("add", (u.id,))],
                )
                for u in users
            )
        )
        stored = await _stored(store, SOURCE, "Group", group.id)
        assert sorted(m["value"] for m in stored.members or []) == sorted(u.id for u in users)
        assert stored.version == 26

    async def test_overlapping_member_changes_in_any_order(self, backend: StorageBackend) -> None:
        """Concurrent changes naming the same members in opposite orders all complete (no deadlock)
        and the result is what some serial order of them gives."""
        store = backend
        ids = [(await store.create_resource(SOURCE, "User", user_write(f"o{i}"))).id for i in range(12)]
        group = await store.create_resource(SOURCE, "Group", group_write("g"), members=ids[8:])
        forward, backward = tuple(ids[:8]), tuple(reversed(ids[:8]))
        changes = [
            [MemberChange("add", forward)],
            [MemberChange("add", backward)],
            [MemberChange("add", forward), MemberChange("remove", (ids[8], ids[9]))],
            [MemberChange("remove", (ids[9], ids[8])), MemberChange("add", backward)],
        ] * 3
        await asyncio.wait_for(
            asyncio.gather(
                *(
                    store.update_resource(
                        SOURCE, "Group", group.id, expected_version=None, write=None, member_changes=c
                    )
                    for c in changes
                )
            ),
            timeout=30,
        )
        stored = await _stored(store, SOURCE, "Group", group.id)
        assert sorted(m["value"] for m in stored.members or []) == sorted(ids[:8] + ids[10:])
        assert stored.version == 1 + len(changes)

    async def test_one_writer_wins_on_the_same_version(self, backend: StorageBackend) -> None:
        store = backend
        user = await store.create_resource(SOURCE, "User", user_write("u"))
        results = await asyncio.gather(
            *(
                store.update_resource(SOURCE, "User", user.id, expected_version=1, write=user_write("u", title=str(i)))
                for i in range(5)
            ),
            return_exceptions=True,
        )
        assert sum(not isinstance(r, Exception) for r in results) == 1
        assert all(isinstance(r, VersionMismatch) for r in results if isinstance(r, Exception))

    async def test_filters_never_reach_another_source(self, backend: StorageBackend) -> None:
        """Whatever its `or`, `not` and value paths, a filter selects only the source's own resources
        of the type asked for, and the total counts only them."""
        store = backend
        ids = await _two_sources(store)
        for text in ISOLATION_FILTERS:
            for paging in ({}, {"count": 2, "start_index": 2}, {"count": 2, "cursor_paging": True}):
                found = await _answered(store, SOURCE, "User", query(text, **paging))
                if found is None:
                    continue
                page = found
                assert {r.id for r in page.resources} <= set(ids[SOURCE]["User"]), text
                assert page.total == len(ids[SOURCE]["User"]), text

    async def test_id_and_membership_filters_never_reach_another_source(self, backend: StorageBackend) -> None:
        """`id eq`, `groups.value eq` and `members.value eq` naming another source's resources match nothing."""
        store = backend
        ids = await _two_sources(store)
        foreign_user, foreign_group = ids[OTHER]["User"][0], ids[OTHER]["Group"][0]
        for text in (
            f'id eq "{foreign_user}"',
            f'groups.value eq "{foreign_group}"',
            f'groups[value eq "{foreign_group}"]',
            f'id eq "{foreign_user}" or id eq "{ids[OTHER]["User"][1]}"',
        ):
            page = await store.list_resources(SOURCE, "User", query(text))
            assert (page.total, page.resources) == (0, []), text
        group_query = ResourceQuery(filter=resolve_filter(parse_filter(f'members.value eq "{foreign_user}"'), GROUP))
        page = await store.list_resources(SOURCE, "Group", group_query)
        assert (page.total, page.resources) == (0, [])
        group_query = ResourceQuery(filter=resolve_filter(parse_filter(f'id eq "{foreign_group}"'), GROUP))
        assert (await store.list_resources(SOURCE, "Group", group_query)).total == 0

    async def test_another_sources_resources_cannot_be_read(self, backend: StorageBackend) -> None:
        store = backend
        ids = await _two_sources(store)
        user, group = ids[OTHER]["User"][0], ids[OTHER]["Group"][0]
        assert await store.get_resource(SOURCE, "User", user) is None
        assert await store.get_resource(SOURCE, "Group", group) is None
        assert await store.get_resource(OTHER, "Group", user) is None  # nor another type's
        assert await store.get_record(SOURCE, "User", user) is None
        assert [batch async for batch in store.iter_members(SOURCE, group)] == []
        assert (await store.list_resources(SOURCE, "User", ResourceQuery())).total == len(ids[SOURCE]["User"])
        assert (await store.list_resources(OTHER, "User", ResourceQuery())).total == len(ids[OTHER]["User"])

    async def test_another_sources_resources_cannot_be_changed(self, backend: StorageBackend) -> None:
        """Updates, member changes and deletes naming another source's resources raise
        ResourceNotFound and change nothing there."""
        store = backend
        ids = await _two_sources(store)
        user, group = ids[OTHER]["User"][0], ids[OTHER]["Group"][0]
        before = [await store.get_resource(OTHER, "User", user), await store.get_resource(OTHER, "Group", group)]
        with pytest.raises(ResourceNotFound):
            await store.update_resource(SOURCE, "User", user, expected_version=None, write=user_write("pwned"))
        for changes in (
            [MemberChange("add", (ids[SOURCE]["User"][2],))],
            [MemberChange("remove", (ids[OTHER]["User"][0],))],
            [MemberChange("set", ())],
        ):
            with pytest.raises(ResourceNotFound):
                await store.update_resource(
                    SOURCE, "Group", group, expected_version=None, write=None, member_changes=changes
                )
        with pytest.raises(ResourceNotFound):
            await store.delete_resource(SOURCE, "User", user)
        with pytest.raises(ResourceNotFound):
            await store.delete_resource(SOURCE, "Group", group)
        after = [await store.get_resource(OTHER, "User", user), await store.get_resource(OTHER, "Group", group)]
        assert after == before

    async def test_another_sources_resources_cannot_become_members(self, backend: StorageBackend) -> None:
        """A group's members come from its own source only: another source's ids are unknown members."""
        store = backend
        ids = await _two_sources(store)
        group = ids[SOURCE]["Group"][0]
        for kind in ("add", "set"):
            with pytest.raises(UnknownMembers):
                await store.update_resource(
                    SOURCE,
                    "Group",
                    group,
                    expected_version=None,
                    write=None,
                    member_changes=[MemberChange(kind, (ids[OTHER]["User"][2],))],
                )
        with pytest.raises(UnknownMembers):
            await store.create_resource(SOURCE, "Group", group_write("Smugglers"), members=[ids[OTHER]["User"][0]])
        stored = await _stored(store, SOURCE, "Group", group)
        assert [m["value"] for m in stored.members or []] == ids[SOURCE]["User"][:2]
        assert [g["value"] for g in (await _stored(store, OTHER, "User", ids[OTHER]["User"][2])).groups or []] == []


class AccountStoreContract:
    """The rules of the account store role: tokens, credentials, activity and failed
    requests. Give the subclass a `backend` fixture yielding an opened, empty AccountStore."""

    async def test_tokens_rotate_with_grace_and_revoke(self, backend: StorageBackend) -> None:
        from datetime import datetime, timedelta

        store = backend
        now = datetime.now(UTC)
        account = await store.ensure_service_account(SOURCE, "scimhost-source-x")
        assert not account.has_token and await store.token_hashes(SOURCE, now=now) == ()
        await store.set_token_hash(SOURCE, "a" * 64)
        await store.set_token_hash(SOURCE, "b" * 64, grace_until=now + timedelta(hours=1))
        assert await store.token_hashes(SOURCE, now=now) == ("b" * 64, "a" * 64)
        assert await store.token_hashes(SOURCE, now=now + timedelta(hours=2)) == ("b" * 64,)
        [listed] = await store.service_accounts()
        assert listed.has_token and listed.previous_expires == now + timedelta(hours=1)
        await store.set_token_hash(SOURCE, "c" * 64)  # without grace: every earlier token ends
        assert await store.token_hashes(SOURCE, now=now) == ("c" * 64,)
        await store.revoke_tokens(SOURCE)
        assert await store.token_hashes(SOURCE, now=now) == ()
        assert await store.token_hashes(OTHER, now=now) == ()

    async def test_activity_adds_each_processes_counts_per_minute(self, backend: StorageBackend) -> None:
        from datetime import datetime, timedelta

        store = backend
        minute = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
        await store.record_activity(SOURCE, minute, requests=5, errors=1, last_error_at=minute, last_error="first")
        later = minute + timedelta(seconds=30)
        await store.record_activity(SOURCE, minute, requests=3, errors=1, last_error_at=later, last_error="newest")
        await store.record_activity(
            SOURCE,
            minute,
            requests=2,
            errors=1,
            last_error_at=minute + timedelta(seconds=5),
            last_error="older than the newest",
        )
        await store.record_activity(SOURCE, minute + timedelta(minutes=1), requests=1, errors=0)
        await store.record_activity(OTHER, minute, requests=100, errors=100, last_error_at=later, last_error="other")
        activity = await store.source_activity(SOURCE, since=minute)
        assert (activity.requests, activity.errors) == (11, 3)
        assert (activity.last_error, activity.last_error_at) == ("newest", later)
        assert activity.last_request == minute + timedelta(minutes=1)
        assert (await store.source_activity(SOURCE, since=minute + timedelta(minutes=1))).requests == 1
        assert await store.prune_activity(before=minute + timedelta(minutes=1)) == 2  # both sources' old minute
        assert (await store.source_activity(SOURCE, since=minute)).requests == 1
        assert (await store.source_activity(OTHER, since=minute)).requests == 0

    async def test_credentials_are_kept_hashed_per_source_and_kind(self, backend: StorageBackend) -> None:
        from scimhost.storage.backend import Credential, StorageError

        store = backend
        now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
        secret = Credential("oauth_client_secret", "s1", "a" * 64, now, expires=now + timedelta(days=365))
        later = Credential("oauth_client_secret", "s2", "b" * 64, now + timedelta(seconds=1))
        await store.add_credential(SOURCE, secret)
        await store.add_credential(SOURCE, later)
        await store.add_credential(OTHER, Credential("oauth_client_secret", "s1", "c" * 64, now))  # same id elsewhere
        with pytest.raises(StorageError):
            await store.add_credential(SOURCE, secret)  # the same kind and id twice in one source
        assert await store.get_credential(SOURCE, "oauth_client_secret", "s1") == secret
        elsewhere = await store.get_credential(OTHER, "oauth_client_secret", "s1")
        assert elsewhere is not None and elsewhere.secret_hash == "c" * 64
        assert await store.get_credential(SOURCE, "oauth_access_token", "s1") is None  # another kind
        assert [c.id for c in await store.list_credentials(SOURCE, "oauth_client_secret")] == ["s1", "s2"]
        assert await store.list_credentials(SOURCE, "oauth_access_token") == []

        used = now + timedelta(hours=1)
        await store.touch_credential(SOURCE, "oauth_client_secret", "s1", used)
        await store.touch_credential(SOURCE, "oauth_client_secret", "s1", now)  # never moves back
        touched = await store.get_credential(SOURCE, "oauth_client_secret", "s1")
        untouched = await store.get_credential(OTHER, "oauth_client_secret", "s1")
        assert touched is not None and touched.last_used == used
        assert untouched is not None and untouched.last_used is None

        assert await store.delete_credential(OTHER, "oauth_client_secret", "s2") is False  # not its own
        assert await store.delete_credential(SOURCE, "oauth_client_secret", "s2") is True
        assert [c.id for c in await store.list_credentials(SOURCE, "oauth_client_secret")] == ["s1"]

    async def test_session_credentials_end_with_the_sources_tokens_and_expired_ones_are_pruned(
        self, backend: StorageBackend
    ) -> None:
        from scimhost.storage.backend import Credential

        store = backend
        now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
        for source in (SOURCE, OTHER):
            await store.ensure_service_account(source, f"account-{source}")
            await store.add_credential(
                source,
                Credential("oauth_access_token", "t1", "a" * 64, now, expires=now + timedelta(hours=1), session=True),
            )
            await store.add_credential(source, Credential("oauth_client_secret", "s1", "b" * 64, now))
        await store.revoke_tokens(SOURCE)
        assert await store.get_credential(SOURCE, "oauth_access_token", "t1") is None
        assert await store.get_credential(SOURCE, "oauth_client_secret", "s1") is not None  # not a session
        assert await store.get_credential(OTHER, "oauth_access_token", "t1") is not None  # another source
        assert await store.prune_credentials(before=now + timedelta(minutes=59)) == 0
        assert await store.prune_credentials(before=now + timedelta(hours=2)) == 1  # OTHER's token expired
        assert await store.get_credential(OTHER, "oauth_client_secret", "s1") is not None  # never expires
        assert (await store.purge_source(OTHER))["credentials"] == 1
        assert await store.get_credential(OTHER, "oauth_client_secret", "s1") is None

    async def test_failed_requests_are_kept_per_source_newest_first_and_pruned(self, backend: StorageBackend) -> None:
        from scimhost.storage.backend import FailedRequest

        store = backend
        start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

        def failed(seconds: int, status: int = 400, **more: Any) -> FailedRequest:
            return FailedRequest(start + timedelta(seconds=seconds), "POST", "/source/scim/x/v2/Users", status, **more)

        first = failed(0, scim_type="invalidValue", detail="userName is required", request_id="r1")
        await store.record_failed_requests(SOURCE, [first, failed(30, 409, scim_type="uniqueness")])
        await store.record_failed_requests(SOURCE, [failed(90, 401)])  # another process, later
        await store.record_failed_requests(OTHER, [failed(60, 500)])
        kept = await store.failed_requests(SOURCE, since=start)
        assert [f.status for f in kept] == [401, 409, 400]  # newest first, this source's only
        assert kept[-1] == first  # every field as recorded
        assert [f.status for f in await store.failed_requests(SOURCE, since=start, limit=2)] == [401, 409]
        assert [f.status for f in await store.failed_requests(SOURCE, since=start + timedelta(seconds=30))] == [
            401,
            409,
        ]
        assert [f.status for f in await store.failed_requests(OTHER, since=start)] == [500]
        await store.prune_activity(before=start + timedelta(seconds=60))
        assert [f.status for f in await store.failed_requests(SOURCE, since=start)] == [401]
        assert [f.status for f in await store.failed_requests(OTHER, since=start)] == [500]
        assert (await store.purge_source(SOURCE))["failed requests"] == 1
        assert await store.failed_requests(SOURCE, since=start) == []
        assert len(await store.failed_requests(OTHER, since=start)) == 1


class OutboxContract:
    """The rules of the outbox role: each write's event, the delivery queue, pauses,
    leases and intents. The writes go through `backend`, a StorageBackend whose outbox is the
    one under test: an all-in-one backend, or a ComposedStorage of a resource store and it."""

    async def test_each_write_records_its_event_with_the_new_version(self, backend: StorageBackend) -> None:
        store = backend
        user = await store.create_resource(
            SOURCE,
            "User",
            user_write("ev", externalId="x"),
            event=draft("create", resource={"userName": "ev"}, record={"r": 1}),
        )
        await store.update_resource(
            SOURCE,
            "User",
            user.id,
            expected_version=1,
            write=user_write("ev", externalId="x", title="t"),
            event=draft("patch", changed={"title": {"old": None, "new": "t"}}),
        )
        group = await store.create_resource(
            SOURCE, "Group", group_write("g"), members=[user.id], event=draft("create", members={"added": [user.id]})
        )
        await store.update_resource(
            SOURCE,
            "Group",
            group.id,
            expected_version=None,
            write=None,
            member_changes=[MemberChange("remove", (user.id,))],
            event=draft("patch", members={"removed": [user.id]}),
        )
        await store.delete_resource(SOURCE, "User", user.id, event=draft("delete"))
        events = await store.list_events(SOURCE)
        assert [(e.action, e.resource_type, e.version) for e in events] == [
            ("create", "User", 1),
            ("patch", "User", 2),
            ("create", "Group", 1),
            ("patch", "Group", 2),
            ("delete", "User", None),
        ]
        first = events[0]
        assert first.resource_id == user.id and first.external_id == "x" and first.actor == ACTOR
        assert first.resource == {"userName": "ev"} and first.record == {"r": 1} and first.source == SOURCE
        assert events[1].changed == {"title": {"old": None, "new": "t"}} and events[3].members == {"removed": [user.id]}
        assert events[4].external_id == "x"
        assert [e.seq for e in events] == sorted({e.seq for e in events})
        by_id, by_seq = await store.get_event(SOURCE, first.id), await store.get_event(SOURCE, first.seq)
        assert by_id is not None and by_id.seq == first.seq
        assert by_seq is not None and by_seq.id == first.id
        assert [e.action for e in await store.list_events(SOURCE, resource_id=user.id)] == ["create", "patch", "delete"]
        assert [e.seq for e in await store.list_events(SOURCE, after_seq=events[2].seq)] == [
            events[3].seq,
            events[4].seq,
        ]

    async def test_a_write_that_fails_records_no_event(self, backend: StorageBackend) -> None:
        store = backend
        user = await store.create_resource(SOURCE, "User", user_write("once"), event=draft("create"))
        for attempt in (
            store.create_resource(SOURCE, "User", user_write("ONCE"), event=draft("create")),
            store.update_resource(
                SOURCE, "User", user.id, expected_version=7, write=user_write("once"), event=draft("patch")
            ),
            store.update_resource(
                SOURCE, "User", "missing", expected_version=None, write=user_write("x"), event=draft("patch")
            ),
            store.create_resource(SOURCE, "Group", group_write("g"), members=["missing"], event=draft("create")),
            store.delete_resource(SOURCE, "User", user.id, expected_version=9, event=draft("delete")),
        ):
            with pytest.raises((UniquenessConflict, VersionMismatch, ResourceNotFound, UnknownMembers)):
                await attempt
        assert [e.action for e in await store.list_events(SOURCE)] == ["create"]

    async def test_events_are_scoped_by_source_and_pruned(self, backend: StorageBackend) -> None:
        store = backend
        mine = await store.create_resource(SOURCE, "User", user_write("same"), event=draft("create"))
        theirs = await store.create_resource(OTHER, "User", user_write("same"), event=draft("create"))
        [their_event] = await store.list_events(OTHER)
        assert [e.resource_id for e in await store.list_events(SOURCE)] == [mine.id]
        assert await store.get_event(SOURCE, their_event.id) is None
        assert await store.list_events(SOURCE, resource_id=theirs.id) == []
        from datetime import datetime, timedelta

        later = datetime.now(UTC) + timedelta(seconds=5)
        assert await store.prune_events(SOURCE, before=later, batch=1) == 1
        assert await store.list_events(SOURCE) == [] and len(await store.list_events(OTHER)) == 1

    async def test_a_committed_event_is_pending_for_each_of_its_sinks(self, backend: StorageBackend) -> None:
        store = backend
        user = await store.create_resource(SOURCE, "User", user_write("u"), event=draft("create", sinks=("a", "b")))
        for sink in ("a", "b"):
            stats = await store.sink_stats(sink)
            assert (stats.pending, stats.inflight, stats.done, stats.dead) == (1, 0, 0, 0)
        with pytest.raises(UniquenessConflict):
            await store.create_resource(SOURCE, "User", user_write("U"), event=draft("create", sinks=("a",)))
        assert (await store.sink_stats("a")).pending == 1  # nothing for the write that failed
        [claimed] = await store.claim_deliveries("a", now=_at(1), limit=10, lease_seconds=60)
        assert claimed.event.resource_id == user.id and claimed.attempts == 1

    async def test_claims_take_only_the_oldest_unfinished_delivery_of_each_resource(
        self, backend: StorageBackend
    ) -> None:
        store = backend
        users = await _users_with_versions(store, "k", 3, versions=3)
        first = await store.claim_deliveries("hook", now=_at(1), limit=10, lease_seconds=60)
        assert sorted((c.event.resource_id, c.event.version) for c in first) == sorted((u.id, 1) for u in users)
        # While each head is in flight, nothing else of its resource is handed out.
        assert await store.claim_deliveries("hook", now=_at(1), limit=10, lease_seconds=60) == []
        # A retry of version 1, due later, keeps versions 2 and 3 of that user waiting.
        await store.finish_delivery(
            "hook", first[0].event.seq, state="pending", now=_at(1), next_attempt=_at(100), error="503"
        )
        for claimed in first[1:]:
            await store.finish_delivery("hook", claimed.event.seq, state="done", now=_at(1), status=200)
        second = await store.claim_deliveries("hook", now=_at(2), limit=10, lease_seconds=60)
        assert sorted((c.event.resource_id, c.event.version) for c in second) == sorted(
            (c.event.resource_id, 2) for c in first[1:]
        )
        for claimed in second:
            await store.finish_delivery("hook", claimed.event.seq, state="done", now=_at(2), status=200)
        retried = await store.claim_deliveries("hook", now=_at(200), limit=10, lease_seconds=60)
        by_user = {c.event.resource_id: (c.event.version, c.attempts) for c in retried}
        assert by_user[first[0].event.resource_id] == (1, 2)  # the retry, and nothing after it
        assert sorted(v or 0 for v, _ in by_user.values()) == [1, 3, 3]

    async def test_a_dead_delivery_lets_its_successors_go_and_can_be_retried(self, backend: StorageBackend) -> None:
        store = backend
        user = await store.create_resource(SOURCE, "User", user_write("d"), event=draft("create", sinks=("hook",)))
        await _versions_of(store, SOURCE, user, 2)
        [head] = await store.claim_deliveries("hook", now=_at(1), limit=10, lease_seconds=60)
        await store.finish_delivery("hook", head.event.seq, state="dead", now=_at(1), status=400, error="bad request")
        [successor] = await store.claim_deliveries("hook", now=_at(1), limit=10, lease_seconds=60)
        assert successor.event.version == 2
        stats = await store.sink_stats("hook")
        assert (stats.dead, stats.inflight, stats.last_error) == (1, 1, "bad request")
        assert await store.requeue_deliveries("hook", now=_at(2), states=("dead",)) == 1
        await store.finish_delivery("hook", successor.event.seq, state="done", now=_at(2), status=200)
        [again] = await store.claim_deliveries("hook", now=_at(3), limit=10, lease_seconds=60)
        assert again.event.id == head.event.id and again.attempts == 1

    async def test_outcomes_recorded_with_the_next_claim_let_successors_go_in_that_claim(
        self, backend: StorageBackend
    ) -> None:
        store = backend
        users = []
        for name in ("f1", "f2"):
            users.append(
                await store.create_resource(SOURCE, "User", user_write(name), event=draft("create", sinks=("hook",)))
            )
            await _versions_of(store, SOURCE, users[-1], 2)
        heads = await store.finish_and_claim("hook", [], now=_at(1), limit=10, lease_seconds=60)
        assert sorted(c.event.version or 0 for c in heads) == [1, 1]
        done, retried = heads
        outcomes = [
            FinishedDelivery(done.event.seq, "done", status=200),
            FinishedDelivery(retried.event.seq, "pending", next_attempt=_at(100), error="503"),
        ]
        claimed = await store.finish_and_claim("hook", outcomes, now=_at(2), limit=10, lease_seconds=60)
        # The delivered one's successor goes at once; the retried one holds its resource's back.
        assert [(c.event.resource_id, c.event.version) for c in claimed] == [(done.event.resource_id, 2)]
        stats = await store.sink_stats("hook")
        assert (stats.inflight, stats.last_error) == (1, "503")

    async def test_a_delivery_waiting_to_retry_is_shown_and_can_be_sent_now(self, backend: StorageBackend) -> None:
        store = backend
        await store.create_resource(SOURCE, "User", user_write("w"), event=draft("create", sinks=("hook",)))
        assert (await store.sink_stats("hook")).state == "healthy"
        second, later = _at(200), _at(1000)
        for now, next_attempt in ((_at(100), second), (second, later)):
            [claimed] = await store.claim_deliveries("hook", now=now, limit=5, lease_seconds=60)
            await store.finish_delivery(
                "hook", claimed.event.seq, state="pending", now=now, next_attempt=next_attempt, error="503"
            )
        stats = await store.sink_stats("hook")
        assert (stats.state, stats.retrying, stats.most_attempts, stats.next_attempt) == ("retrying", 1, 2, later)
        assert await store.claim_deliveries("hook", now=_at(300), limit=5, lease_seconds=60) == []
        # The operator pushes it: due now, its backoff ended.
        assert await store.requeue_deliveries("hook", now=_at(300), states=("pending",), seqs=[claimed.event.seq]) == 1
        assert (await store.sink_stats("hook")).state == "healthy"
        [again] = await store.claim_deliveries("hook", now=_at(300), limit=5, lease_seconds=60)
        assert again.event.seq == claimed.event.seq and again.attempts == 1

    async def test_finishing_a_claimed_batch_records_each_outcome(self, backend: StorageBackend) -> None:
        store = backend
        await _users_with_versions(store, "b", 3, versions=2)
        done, retried, dead = sorted(
            await store.claim_deliveries("hook", now=_at(1), limit=10, lease_seconds=60), key=lambda c: c.event.seq
        )
        await store.finish_deliveries(
            "hook",
            [
                FinishedDelivery(done.event.seq, "done", status=204),
                FinishedDelivery(retried.event.seq, "pending", next_attempt=_at(100), status=503, error="busy"),
                FinishedDelivery(dead.event.seq, "dead", status=400, error="bad request"),
            ],
            now=_at(1),
        )
        stats = await store.sink_stats("hook")
        assert (stats.done, stats.dead, stats.inflight, stats.pending) == (1, 1, 0, 4)
        # The done and the dead let their resources' version 2 go; the retry holds its back.
        after = await store.claim_deliveries("hook", now=_at(2), limit=10, lease_seconds=60)
        assert sorted((c.event.resource_id, c.event.version) for c in after) == sorted(
            [(done.event.resource_id, 2), (dead.event.resource_id, 2)]
        )

    async def test_a_requeued_event_goes_before_its_resources_waiting_ones(self, backend: StorageBackend) -> None:
        store = backend
        user = await store.create_resource(SOURCE, "User", user_write("q"), event=draft("create", sinks=("hook",)))
        [first] = await store.claim_deliveries("hook", now=_at(1), limit=5, lease_seconds=60)
        await store.finish_delivery("hook", first.event.seq, state="done", now=_at(1), status=204)
        await _versions_of(store, SOURCE, user, 2)
        [second] = await store.claim_deliveries("hook", now=_at(2), limit=5, lease_seconds=60)
        await store.finish_delivery(
            "hook", second.event.seq, state="pending", now=_at(2), next_attempt=_at(10), error="503"
        )
        # Version 1 sent again: it is the oldest unfinished of the user now, and goes first.
        assert await store.requeue_deliveries("hook", now=_at(3), states=("done",), seqs=[first.event.seq]) == 1
        [again] = await store.claim_deliveries("hook", now=_at(20), limit=5, lease_seconds=60)
        assert again.event.version == 1
        assert await store.claim_deliveries("hook", now=_at(21), limit=5, lease_seconds=60) == []
        await store.finish_delivery("hook", again.event.seq, state="done", now=_at(21), status=204)
        [then] = await store.claim_deliveries("hook", now=_at(22), limit=5, lease_seconds=60)
        assert then.event.version == 2

    async def test_a_lapsed_lease_makes_a_delivery_due_again(self, backend: StorageBackend) -> None:
        store = backend
        await store.create_resource(SOURCE, "User", user_write("l"), event=draft("create", sinks=("hook",)))
        [taken] = await store.claim_deliveries("hook", now=_at(0), limit=1, lease_seconds=30)
        assert await store.claim_deliveries("hook", now=_at(10), limit=1, lease_seconds=30) == []
        [again] = await store.claim_deliveries("hook", now=_at(31), limit=1, lease_seconds=30)
        assert again.event.id == taken.event.id and again.attempts == 2

    async def test_in_flight_deliveries_can_be_reclaimed_at_once(self, backend: StorageBackend) -> None:
        store = backend
        await store.create_resource(SOURCE, "User", user_write("c"), event=draft("create", sinks=("hook",)))
        [taken] = await store.claim_deliveries("hook", now=_at(0), limit=1, lease_seconds=300)
        assert await store.reclaim_inflight("hook", now=_at(1)) == 1
        [again] = await store.claim_deliveries("hook", now=_at(2), limit=1, lease_seconds=300)
        assert again.event.id == taken.event.id and again.attempts == 2

    async def test_replay_requeues_delivered_events_with_the_same_ids(self, backend: StorageBackend) -> None:
        store = backend
        user = await store.create_resource(SOURCE, "User", user_write("r"), event=draft("create", sinks=("hook",)))
        [claimed] = await store.claim_deliveries("hook", now=_at(1), limit=5, lease_seconds=60)
        await store.finish_delivery("hook", claimed.event.seq, state="done", now=_at(1), status=204)
        assert (await store.sink_stats("hook")).done == 1
        assert await store.requeue_deliveries("hook", now=_at(2), states=("done",), seqs=[claimed.event.seq]) == 1
        [replayed] = await store.claim_deliveries("hook", now=_at(3), limit=5, lease_seconds=60)
        assert replayed.event.id == claimed.event.id and replayed.event.resource_id == user.id

    async def test_pruning_keeps_events_a_sink_has_yet_to_receive(self, backend: StorageBackend) -> None:
        store = backend
        await store.create_resource(SOURCE, "User", user_write("kept"), event=draft("create", sinks=("hook",)))
        await store.create_resource(SOURCE, "User", user_write("gone"), event=draft("create", sinks=()))
        assert await store.prune_events(SOURCE, before=_at(5)) == 1
        [kept] = await store.list_events(SOURCE)
        [claimed] = await store.claim_deliveries("hook", now=_at(1), limit=5, lease_seconds=60)
        await store.finish_delivery("hook", claimed.event.seq, state="done", now=_at(1), status=200)
        assert await store.prune_events(SOURCE, before=_at(5)) == 1
        assert await store.list_events(SOURCE) == [] and (await store.sink_stats("hook")).done == 0

    async def test_pauses_and_the_dispatcher_lease(self, backend: StorageBackend) -> None:
        store = backend
        await store.set_sink_paused("hook", True, reason="410 Gone", now=_at(0))
        stats = await store.sink_stats("hook")
        assert stats.paused and stats.paused_reason == "410 Gone"
        await store.set_sink_paused("hook", False, reason=None, now=_at(1))
        assert not (await store.sink_stats("hook")).paused
        assert await store.take_lease("dispatcher", "one", now=_at(0), seconds=15)
        assert not await store.take_lease("dispatcher", "two", now=_at(5), seconds=15)
        assert await store.take_lease("dispatcher", "one", now=_at(10), seconds=15)  # renewed
        assert await store.lease_holder("dispatcher", now=_at(20)) == "one"
        assert await store.take_lease("dispatcher", "two", now=_at(30), seconds=15)  # lapsed
        await store.release_lease("dispatcher", "one")  # not the holder: nothing happens
        assert await store.lease_holder("dispatcher", now=_at(31)) == "two"
        await store.release_lease("dispatcher", "two")
        assert await store.lease_holder("dispatcher", now=_at(31)) is None


class StorageContract(ResourceStoreContract, AccountStoreContract, OutboxContract):
    """Every rule of every role, for a StorageBackend (all roles in one store), and
    purging a source across them. Subclass it in the backend's tests and give the subclass a
    `backend` fixture: an async fixture yielding an opened, empty backend (see the module
    docstring)."""

    async def test_purging_a_source_deletes_its_data_and_nothing_else(self, backend: StorageBackend) -> None:
        from datetime import datetime

        store = backend
        for source in (SOURCE, OTHER):
            await store.ensure_service_account(source, f"account-{source}")
            user = await store.create_resource(
                source, "User", user_write("same"), event=draft("create", sinks=("hook",))
            )
            await store.create_resource(source, "Group", group_write("same"), members=[user.id], event=draft("create"))
            await store.record_activity(source, datetime.now(UTC), requests=1, errors=0)
        kept = await store.list_resources(OTHER, "User", ResourceQuery())
        deleted = await store.purge_source(SOURCE)
        assert (deleted["users"], deleted["groups"], deleted["events"], deleted["deliveries"]) == (1, 1, 2, 1)
        assert deleted["service accounts"] == 1
        assert (await store.list_resources(SOURCE, "User", ResourceQuery())).total == 0
        assert await store.list_events(SOURCE) == []
        assert [a.source for a in await store.service_accounts()] == [OTHER]
        assert (await store.list_resources(OTHER, "User", ResourceQuery())).resources == kept.resources
        assert len(await store.list_events(OTHER)) == 2 and (await store.sink_stats("hook")).pending == 1
        [group] = (await store.list_resources(OTHER, "Group", ResourceQuery())).resources
        assert [m["value"] for m in group.members or []] == [kept.resources[0].id]

    # --- intents ---------------------------------------------------------------------------------

    async def test_an_intent_holds_its_key_until_settled_or_abandoned(self, backend: StorageBackend) -> None:
        store = backend
        first = _intent("id:r1")
        await store.open_intent(first)
        with pytest.raises(IntentBusy):
            await store.open_intent(_intent("id:r1"))
        await store.open_intent(_intent("id:r1", source=OTHER))  # another source's key is its own
        await store.open_intent(_intent("id:r2"))
        await store.abandon_intent(first.id)
        await store.open_intent(_intent("id:r1"))
        assert await store.list_events(SOURCE) == []

    async def test_settling_an_intent_records_its_event_once(self, backend: StorageBackend) -> None:
        store = backend
        intent = _intent("id:r1", sinks=("hook",))
        await store.open_intent(intent)
        later = _at(5)
        assert [i.id for i in await store.open_intents(opened_before=later)] == [intent.id]
        assert await store.open_intents(opened_before=intent.opened - timedelta(seconds=1)) == []
        [kept] = await store.open_intents(opened_before=later)
        assert kept == intent
        assert await store.settle_intent(intent.id, resource_id="r1", version=3, external_id="x", now=_at(0))
        assert not await store.settle_intent(intent.id, resource_id="r1", version=3, external_id="x", now=_at(0))
        [event] = await store.list_events(SOURCE)
        assert (event.resource_id, event.version, event.external_id, event.action) == ("r1", 3, "x", "patch")
        assert event.changed == {"title": {"old": None, "new": "t"}} and event.actor == ACTOR
        assert (await store.sink_stats("hook")).pending == 1
        assert await store.open_intents(opened_before=later) == []
        await store.open_intent(_intent("id:r1"))  # the key is free again


class InjectedCrash(BaseException):
    """The process 'dies' at a fault point (CompositionContract): nothing after it runs."""


class CompositionContract(StorageContract):
    """Every rule of StorageContract through a ComposedStorage whose resource store is not its
    outbox, and the promise across the two: a fault injected between the writes (the process
    dying there) loses no acknowledged event and records none for a write that did not happen.

    Give the subclass a `backend` fixture yielding an opened ComposedStorage (resources in the
    store under test; accounts and outbox in another), empty."""

    @staticmethod
    def crash_at(store: ComposedStorage, point: str) -> None:
        def fault(reached: str) -> None:
            if reached == point:
                store.fault = no_fault
                raise InjectedCrash(point)

        store.fault = fault

    @staticmethod
    async def recover(store: ComposedStorage) -> dict[str, int]:
        """Recovery as a later start runs it: every intent is older than the timeout by then."""
        return await store.recover_intents(now=datetime.now(UTC) + store.intent_timeout + timedelta(seconds=1))

    async def test_a_crash_before_the_write_records_no_event(self, backend: ComposedStorage) -> None:
        store = backend
        assert store.split, "the fixture must compose two stores"
        self.crash_at(store, "after_intent")
        with pytest.raises(InjectedCrash):
            await store.create_resource(SOURCE, "User", user_write("late"), event=draft("create", sinks=("hook",)))
        assert (await store.list_resources(SOURCE, "User", ResourceQuery())).total == 0
        assert await self.recover(store) == {"settled": 0, "abandoned": 1}
        assert await store.list_events(SOURCE) == [] and (await store.sink_stats("hook")).pending == 0
        user = await store.create_resource(SOURCE, "User", user_write("late"), event=draft("create"))
        self.crash_at(store, "after_intent")
        with pytest.raises(InjectedCrash):
            await store.update_resource(
                SOURCE,
                "User",
                user.id,
                expected_version=None,
                write=user_write("late", title="t"),
                event=draft("patch"),
            )
        assert await self.recover(store) == {"settled": 0, "abandoned": 1}
        assert [e.action for e in await store.list_events(SOURCE)] == ["create"]

    async def test_a_crash_after_the_write_records_its_event_at_recovery(self, backend: ComposedStorage) -> None:
        store = backend
        self.crash_at(store, "after_resource_write")
        with pytest.raises(InjectedCrash):
            await store.create_resource(SOURCE, "User", user_write("kept"), event=draft("create", sinks=("hook",)))
        [user] = (await store.list_resources(SOURCE, "User", ResourceQuery())).resources
        assert await store.list_events(SOURCE) == []
        assert await self.recover(store) == {"settled": 1, "abandoned": 0}
        [created] = await store.list_events(SOURCE)
        assert (created.action, created.resource_id, created.version) == ("create", user.id, user.version)
        assert (await store.sink_stats("hook")).pending == 1
        for action, step in (
            (
                "patch",
                lambda: store.update_resource(
                    SOURCE,
                    "User",
                    user.id,
                    expected_version=None,
                    write=user_write("kept", title="t"),
                    event=draft("patch"),
                ),
            ),
            ("delete", lambda: store.delete_resource(SOURCE, "User", user.id, event=draft("delete"))),
        ):
            self.crash_at(store, "after_resource_write")
            with pytest.raises(InjectedCrash):
                await step()
            assert await self.recover(store) == {"settled": 1, "abandoned": 0}
            assert (await store.list_events(SOURCE, newest_first=True, limit=1))[0].action == action
        events = await store.list_events(SOURCE)
        assert [e.action for e in events] == ["create", "patch", "delete"]
        assert events[1].version is not None and events[1].version != user.version and events[2].version is None
        assert await self.recover(store) == {"settled": 0, "abandoned": 0}

    async def test_an_open_intent_holds_its_resource_until_it_is_decided(self, backend: ComposedStorage) -> None:
        store = backend
        user = await store.create_resource(SOURCE, "User", user_write("held"), event=draft("create"))
        self.crash_at(store, "after_resource_write")
        with pytest.raises(InjectedCrash):
            await store.update_resource(
                SOURCE,
                "User",
                user.id,
                expected_version=None,
                write=user_write("held", title="1"),
                event=draft("patch"),
            )
        store.busy_seconds = 0.05
        with pytest.raises(StorageError):
            await store.update_resource(
                SOURCE,
                "User",
                user.id,
                expected_version=None,
                write=user_write("held", title="2"),
                event=draft("patch"),
            )
        with pytest.raises(StorageError):  # a delete of it, too
            await store.delete_resource(SOURCE, "User", user.id, event=draft("delete"))
        assert (await _stored(store, SOURCE, "User", user.id)).document.get("title") == "1"
        await self.recover(store)
        await store.update_resource(
            SOURCE, "User", user.id, expected_version=None, write=user_write("held", title="2"), event=draft("patch")
        )
        assert [e.action for e in await store.list_events(SOURCE)] == ["create", "patch", "patch"]

    async def test_recovery_gives_a_version_already_in_the_log_no_second_event(self, backend: ComposedStorage) -> None:
        # An intent opened from a stale read (another write settled between the read and the
        # intent) whose own write failed: the resource's version is that other write's.
        store = backend
        user = await store.create_resource(SOURCE, "User", user_write("raced"), event=draft("create"))
        await store.update_resource(
            SOURCE, "User", user.id, expected_version=None, write=user_write("raced", title="t"), event=draft("patch")
        )
        await store.outbox.open_intent(
            dataclasses.replace(_intent(f"id:{user.id}"), resource_id=user.id, before_version=user.version)
        )
        assert await self.recover(store) == {"settled": 0, "abandoned": 1}
        assert [e.action for e in await store.list_events(SOURCE)] == ["create", "patch"]

    async def test_a_create_of_a_taken_name_is_refused_before_any_intent(self, backend: ComposedStorage) -> None:
        store = backend
        await store.create_resource(SOURCE, "User", user_write("taken"), event=draft("create"))
        with pytest.raises(UniquenessConflict):
            await store.create_resource(SOURCE, "User", user_write("TAKEN"), event=draft("create"))
        assert await store.open_intents(opened_before=_at(5)) == []
        assert len(await store.list_events(SOURCE)) == 1


def _intent(key: str, *, source: str = SOURCE, sinks: tuple[str, ...] = ()) -> Intent:
    return Intent(
        id=f"int_{uuid.uuid4().hex}",
        source=source,
        resource_type="User",
        key=key,
        action="patch",
        resource_id=None,
        before_version=None,
        external_id=None,
        event=draft("patch", changed={"title": {"old": None, "new": "t"}}, sinks=sinks),
        opened=datetime.now(UTC),
    )
