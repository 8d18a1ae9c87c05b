"""A source with on_delete = "soft": a DELETE hides the resource from every read a client can
make and frees its values; a POST with its externalId restores it (same id, a new version,
event `restore`); it is purged after the source's retention. Through HTTP on both databases."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from helpers import ScimClient, make_config, patch_op

from scimhost.app import create_app
from scimhost.cli import main
from scimhost.config import ConfigError
from scimhost.host import load_host
from scimhost.http.keys import HOST
from scimhost.retention import purge_expired_deleted


def soft_config(storage_url: str, **source) -> dict:
    return make_config(
        storage_url,
        sources=[
            {"slug": "demo", "name": "Demo", "on_delete": "soft", **source},
            {"slug": "other", "name": "Other"},
        ],
    )


async def soft_source(aiohttp_client, storage_url, **source):
    client = await aiohttp_client(create_app(soft_config(storage_url, **source)))
    scim = ScimClient(client, "demo", await client.app[HOST].issue_token("demo"))
    return client, scim


async def test_a_soft_deleted_user_is_gone_from_everything_a_client_reads(aiohttp_client, storage_url):
    client, scim = await soft_source(aiohttp_client, storage_url)
    user = await scim.create_user("leaver", externalId="ext-1", title="Boss")
    stayer = await scim.create_user("stayer")
    group = await scim.create_group("Eng", members=[user["id"], stayer["id"]])
    assert (await scim.request("DELETE", f"/Users/{user['id']}")).status == 204
    for method, body in (
        ("GET", None),
        ("PUT", {"userName": "leaver"}),
        ("PATCH", patch_op({"op": "add", "path": "title", "value": "x"})),
        ("DELETE", None),
    ):
        assert (await scim.request(method, f"/Users/{user['id']}", body)).status == 404, method
    listed = await scim.json("GET", "/Users")
    assert [u["id"] for u in listed["Resources"]] == [stayer["id"]] and listed["totalResults"] == 1
    for filter_text in ('userName eq "leaver"', 'externalId eq "ext-1"', 'title eq "Boss"', f'id eq "{user["id"]}"'):
        assert (await scim.json("GET", f"/Users?filter={filter_text}"))["totalResults"] == 0, filter_text
    found = await scim.json(
        "POST",
        "/.search",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": 'userName eq "leaver" or displayName eq "Eng"',
        },
    )
    assert [r["id"] for r in found["Resources"]] == [group["id"]]
    members = (await scim.json("GET", f"/Groups/{group['id']}"))["members"]
    assert [m["value"] for m in members] == [stayer["id"]]
    assert (await scim.json("GET", f'/Groups?filter=members.value eq "{user["id"]}"'))["totalResults"] == 0
    # Adding it back to a group is adding an unknown member.
    refused = await scim.request(
        "PATCH", f"/Groups/{group['id']}", patch_op({"op": "add", "path": "members", "value": [{"value": user["id"]}]})
    )
    assert refused.status == 400
    # Kept aside: the records command lists it as soft-deleted.


async def test_a_post_with_its_external_id_restores_it_with_the_same_id(aiohttp_client, storage_url):
    client, scim = await soft_source(aiohttp_client, storage_url)
    user = await scim.create_user("leaver", externalId="ext-1", title="Boss", active=True)
    group = await scim.create_group("Eng", members=[user["id"]])
    await scim.json(
        "PATCH", f"/Users/{user['id']}", patch_op({"op": "replace", "path": "active", "value": False}), expect=200
    )
    assert (await scim.request("DELETE", f"/Users/{user['id']}")).status == 204
    back = await scim.json(
        "POST", "/Users", {"userName": "returner", "externalId": "ext-1", "active": True}, expect=201
    )
    assert back["id"] == user["id"] and back["meta"]["version"] == 'W/"3"'
    assert back["meta"]["created"] == user["meta"]["created"]
    assert back["userName"] == "returner" and "title" not in back  # the body applied as a PUT
    fetched = await scim.json("GET", f"/Users/{user['id']}")
    assert fetched["userName"] == "returner" and fetched["meta"]["version"] == 'W/"3"'
    # Its memberships are what the identity provider sends again.
    assert (await scim.json("GET", f"/Groups/{group['id']}")).get("members", []) == []
    await scim.json(
        "PATCH",
        f"/Groups/{group['id']}",
        patch_op({"op": "add", "path": "members", "value": [{"value": user["id"]}]}),
        expect=204,
    )
    assert [g["value"] for g in (await scim.json("GET", f"/Users/{user['id']}"))["groups"]] == [group["id"]]
    events = await client.app[HOST].storage.list_events("demo", resource_id=user["id"])
    assert [e.action for e in events] == ["create", "patch", "delete", "restore"]
    from scimhost.delivery.envelope import event_json

    assert event_json(events[-1])["lifecycle"] == "reactivated"
    # Restored, it is live again: its old userName is taken by it under its new one only.
    assert (await scim.request("POST", "/Users", {"userName": "returner"})).status == 409


async def test_a_deleted_users_name_is_free_and_a_new_user_with_it_is_new(aiohttp_client, storage_url):
    client, scim = await soft_source(aiohttp_client, storage_url)
    user = await scim.create_user("reused", externalId="ext-old")
    assert (await scim.request("DELETE", f"/Users/{user['id']}")).status == 204
    fresh = await scim.create_user("reused", externalId="ext-new")
    assert fresh["id"] != user["id"] and fresh["meta"]["version"] == 'W/"1"'
    no_external = await scim.request("DELETE", f"/Users/{fresh['id']}")
    assert no_external.status == 204
    third = await scim.create_user("reused")  # no externalId: restores nothing by default
    assert third["id"] not in (user["id"], fresh["id"])
    kept = await client.app[HOST].storage.deleted_resources("demo", "User")
    assert {k.id for k in kept} == {user["id"], fresh["id"]}


async def test_a_source_may_restore_by_user_name(aiohttp_client, storage_url):
    client, scim = await soft_source(aiohttp_client, storage_url, restore_by=["externalId", "userName"])
    user = await scim.create_user("Named")
    assert (await scim.request("DELETE", f"/Users/{user['id']}")).status == 204
    back = await scim.create_user("named")  # names match ignoring case
    assert back["id"] == user["id"] and back["meta"]["version"] == 'W/"2"'


async def test_a_source_that_deletes_hard_keeps_nothing(aiohttp_client, storage_url):
    client = await aiohttp_client(create_app(make_config(storage_url)))
    scim = ScimClient(client, "demo", await client.app[HOST].issue_token("demo"))
    user = await scim.create_user("gone", externalId="ext-1")
    assert (await scim.request("DELETE", f"/Users/{user['id']}")).status == 204
    assert await client.app[HOST].storage.deleted_resources("demo", "User") == []
    again = await scim.create_user("gone", externalId="ext-1")
    assert again["id"] != user["id"]


async def test_soft_deleted_resources_are_purged_after_the_sources_retention(aiohttp_client, storage_url):
    client, scim = await soft_source(aiohttp_client, storage_url, soft_delete_days=30)
    host = client.app[HOST]
    user = await scim.create_user("old", externalId="ext-1")
    assert (await scim.request("DELETE", f"/Users/{user['id']}")).status == 204
    now = datetime.now(UTC)
    assert await purge_expired_deleted(host, now=now + timedelta(days=29)) == {"demo": 0, "other": 0}
    assert len(await host.storage.deleted_resources("demo", "User")) == 1
    assert await purge_expired_deleted(host, now=now + timedelta(days=31)) == {"demo": 1, "other": 0}
    assert await host.storage.deleted_resources("demo", "User") == []
    # Purged, nothing comes back: the same externalId makes a new user.
    assert (await scim.create_user("old", externalId="ext-1"))["id"] != user["id"]
    # The history stays in the event log until it is pruned.
    assert [e.action for e in await host.storage.list_events("demo", resource_id=user["id"])] == ["create", "delete"]


async def test_the_commands_list_restore_and_purge_soft_deleted_resources(
    tmp_path, storage_url, capsys, aiohttp_client
):
    path = tmp_path / "scimhost.toml"
    path.write_text(
        f'[storage.tortoise]\nurl = "{storage_url}"\n[[sources]]\nslug = "demo"\nname = "Demo"\non_delete = "soft"\n'
    )
    client = await aiohttp_client(create_app(path))
    scim = ScimClient(client, "demo", await client.app[HOST].issue_token("demo"))
    users = [await scim.create_user(name) for name in ("a", "b")]
    for user in users:
        assert (await scim.request("DELETE", f"/Users/{user['id']}")).status == 204
    config = ["-c", str(path)]

    def run(*args):
        return asyncio.to_thread(main, [*config, *args])

    assert await run("records", "list", "demo", "User", "--deleted", "--json") == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [entry["id"] for entry in listed] == [users[1]["id"], users[0]["id"]]
    assert listed[0]["record"]["username"] == "b" and listed[0]["deleted"]
    assert await run("sources", "restore", "demo", "User", users[0]["id"]) == 0
    assert f"Restored User {users[0]['id']} of source demo, version 2." in capsys.readouterr().out
    assert (await scim.json("GET", f"/Users/{users[0]['id']}"))["userName"] == "a"
    assert await run("sources", "restore", "demo", "User", users[0]["id"]) == 1  # kept no more
    assert "--deleted" in capsys.readouterr().err
    assert await run("sources", "purge-deleted", "demo") == 0
    assert "Purged 0 resources of source demo (soft-deleted over 30 days ago)" in capsys.readouterr().out
    assert await run("sources", "purge-deleted", "demo", "--all") == 0
    assert "Purged 1 resource of source demo" in capsys.readouterr().out
    events = await client.app[HOST].storage.list_events("demo", resource_id=users[0]["id"])
    assert events[-1].action == "restore" and events[-1].actor["account"] == "scimhost sources restore"


def test_soft_delete_on_a_backend_without_it_is_a_config_error(tmp_path):
    import types

    from scimhost.builtin.tortoise_storage.backend import TortoiseBackend
    from scimhost.hookspecs import hookimpl

    class HardOnly(TortoiseBackend):
        name = "hard-only"
        features = frozenset({"sort", "cursor_paging"})

    plugin = ("hard-only", types.SimpleNamespace(register_storage_backends=hookimpl(lambda: [HardOnly])))
    config = soft_config(f"sqlite://{tmp_path}/db.sqlite3")
    config["storage"] = {"backend": "hard-only", "hard-only": {"url": f"sqlite://{tmp_path}/db.sqlite3"}}
    with pytest.raises(
        ConfigError, match=r"sources\[0\].on_delete: storage backend 'hard-only' does not support soft delete"
    ):
        load_host(config, plugins=[plugin])


def test_soft_delete_settings_are_checked(tmp_path):
    config = soft_config(
        f"sqlite://{tmp_path}/db.sqlite3", on_delete="archive", restore_by=["email"], soft_delete_days=0
    )
    with pytest.raises(ConfigError) as excinfo:
        load_host(config)
    text = str(excinfo.value)
    assert "on_delete: must be one of delete, soft" in text
    assert "restore_by: 'email' is not one of externalId, userName, displayName" in text
    assert "soft_delete_days: must be between 1 and 36500" in text


async def test_another_sources_post_never_restores_this_sources_resource(aiohttp_client, storage_url):
    config = make_config(
        storage_url,
        sources=[
            {"slug": "demo", "name": "Demo", "on_delete": "soft", "restore_by": ["externalId", "userName"]},
            {"slug": "other", "name": "Other", "on_delete": "soft", "restore_by": ["externalId", "userName"]},
        ],
    )
    client = await aiohttp_client(create_app(config))
    host = client.app[HOST]
    demo = ScimClient(client, "demo", await host.issue_token("demo"))
    other = ScimClient(client, "other", await host.issue_token("other"))
    user = await demo.create_user("shared", externalId="ext-shared")
    assert (await demo.request("DELETE", f"/Users/{user['id']}")).status == 204
    theirs = await other.create_user("shared", externalId="ext-shared")
    assert theirs["id"] != user["id"] and theirs["meta"]["version"] == 'W/"1"'
    assert (await other.request("GET", f"/Users/{user['id']}")).status == 404
    assert [k.id for k in await host.storage.deleted_resources("demo", "User")] == [user["id"]]
    assert await host.storage.deleted_resources("other", "User") == []
