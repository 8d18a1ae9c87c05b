"""scimhost serving SCIM with its Users and Groups in slapd (`[storage] backend = "ldap"`, the
built-in store holding accounts and events): the client replays of tests/compat, renames,
membership, events, refusals, and a directory that is down."""

from __future__ import annotations

import sys
from pathlib import Path

import ldap
import pytest

from scimhost.app import create_app
from scimhost.http.keys import HOST
from scimhost.storage.composed import ComposedStorage

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))
from compat.test_entra import *  # noqa: E402, F403
from compat.test_okta import *  # noqa: E402, F403
from compat.test_other_clients import *  # noqa: E402, F403
from helpers import ScimClient, patch_op  # noqa: E402


def ldap_config(ldap_settings, storage_url: str) -> dict:
    return {
        "server": {"public_url": "https://scim.example.test"},
        "storage": {
            "backend": "ldap",
            "ldap": {
                "url": ldap_settings.url,
                "bind_dn": ldap_settings.bind_dn,
                "bind_password_env": ldap_settings.bind_password_env,
                "base_dn": ldap_settings.base_dn,
            },
            "tortoise": {"url": storage_url},
        },
        "sources": [{"slug": "demo", "name": "Demo source"}, {"slug": "other", "name": "Other source"}],
    }


@pytest.fixture
async def client(aiohttp_client, ldap_settings, storage_url):
    return await aiohttp_client(create_app(ldap_config(ldap_settings, storage_url)))


@pytest.fixture
async def scim(client) -> ScimClient:
    return ScimClient(client, "demo", await client.app[HOST].issue_token("demo"))


async def test_the_roles_are_the_directory_and_the_built_in_store(client, scim):
    storage = client.app[HOST].storage
    assert isinstance(storage, ComposedStorage) and storage.split
    assert storage.resources.name == "ldap" and storage.outbox.name == storage.accounts.name == "tortoise"
    config = await scim.json("GET", "/ServiceProviderConfig")
    assert config["sort"]["supported"] is True and config["filter"]["supported"] is True


async def test_a_rename_moves_the_entry_and_keeps_the_id_and_every_membership(scim, ldap_settings):
    user = await scim.create_user("alice@example.com", displayName="Alice")
    group = await scim.create_group("Engineering", [user["id"]])
    renamed = await scim.json(
        "PATCH", f"/Users/{user['id']}", patch_op({"op": "replace", "path": "userName", "value": "ally@example.com"})
    )
    assert renamed["id"] == user["id"] and renamed["userName"] == "ally@example.com"
    fetched = await scim.json("GET", f"/Groups/{group['id']}")
    assert [m["value"] for m in fetched["members"]] == [user["id"]]
    assert [g["value"] for g in (await scim.json("GET", f"/Users/{user['id']}"))["groups"]] == [group["id"]]
    # In the directory: the entry moved, and the group names its new DN.
    raw = ldap.initialize(ldap_settings.url)
    raw.simple_bind_s(ldap_settings.bind_dn, "secret")
    [(dn, attrs)] = raw.search_s(ldap_settings.base_dn, ldap.SCOPE_SUBTREE, f"(entryUUID={user['id']})", ["uid"])
    assert dn.startswith("uid=ally@example.com,ou=people,ou=demo,") and attrs["uid"] == [b"ally@example.com"]
    [(_, group_attrs)] = raw.search_s(ldap_settings.base_dn, ldap.SCOPE_SUBTREE, "(cn=Engineering)", ["member"])
    assert group_attrs["member"] == [dn.encode()]


async def test_every_write_is_an_event_in_the_built_in_store(scim, client):
    user = await scim.create_user("evt@example.com")
    await scim.json("PATCH", f"/Users/{user['id']}", patch_op({"op": "replace", "path": "title", "value": "CTO"}))
    await scim.request("DELETE", f"/Users/{user['id']}")
    events = await client.app[HOST].storage.list_events("demo")
    assert [(e.action, e.resource_id) for e in events] == [(a, user["id"]) for a in ("create", "patch", "delete")]
    assert events[0].version == 1 and events[1].version == 2 and events[2].version is None


async def test_an_empty_group_never_shows_its_placeholder(scim, ldap_settings):
    user = await scim.create_user("m@example.com")
    group = await scim.create_group("Empty", [])
    assert (await scim.json("GET", f"/Groups/{group['id']}")).get("members", []) == []
    await scim.json(
        "PATCH",
        f"/Groups/{group['id']}",
        patch_op({"op": "add", "path": "members", "value": [{"value": user["id"]}]}),
        expect=204,
    )
    await scim.json(
        "PATCH",
        f"/Groups/{group['id']}",
        patch_op({"op": "remove", "path": f'members[value eq "{user["id"]}"]'}),
        expect=204,
    )
    assert (await scim.json("GET", f"/Groups/{group['id']}")).get("members", []) == []
    found = await scim.json("GET", "/Groups?filter=members pr")
    assert found["totalResults"] == 0


async def test_a_filter_the_directory_cannot_answer_exactly_is_refused(scim):
    await scim.create_user("f@example.com", title="Boss")
    for text in ('title gt "A"', "name.familyName pr", 'emails[type eq "work"]', "title pr"):
        response = await scim.request("GET", f"/Users?filter={text}")
        body = await response.json()
        assert (response.status, body.get("scimType")) == (400, "invalidFilter"), text
    found = await scim.json("GET", '/Users?filter=title eq "boss" and userName sw "F@"')
    assert found["totalResults"] == 1


async def test_a_directory_that_is_down_answers_503_with_retry_after(aiohttp_client, ldap_settings, storage_url, slapd):
    app = create_app(ldap_config(ldap_settings, storage_url))
    client = await aiohttp_client(app)
    scim = ScimClient(client, "demo", await app[HOST].issue_token("demo"))
    await scim.create_user("before@example.com")
    store = app[HOST].storage.resources
    store.pool.close()
    store.pool.url = "ldap://127.0.0.1:9"  # nothing listens: every new connection is refused
    for method, path, body in (
        ("GET", "/Users", None),
        ("POST", "/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x@example.com"}),
    ):
        response = await scim.request(method, path, body)
        assert response.status == 503 and response.headers["Retry-After"], (method, await response.text())
