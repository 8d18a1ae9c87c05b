"""The event log: one event per committed write, in the write's own transaction, none for a
write that did not commit; read and pruned with `scimhost events`. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import types
from datetime import UTC, datetime, timedelta

import pytest
from helpers import ScimClient, make_config, patch_op

from scimhost.app import create_app
from scimhost.hookspecs import hookimpl
from scimhost.http.keys import HOST
from scimhost.scim.errors import ScimError


async def events_of(scim: ScimClient, source: str = "demo", **filters):
    return await scim.client.app[HOST].storage.list_events(source, **filters)


@pytest.fixture
async def vetoing_scim(aiohttp_client, storage_url):
    """The `demo` source, with a plugin that vetoes users titled "vetoed" and a mapping that
    fails for users titled "unmappable"."""

    def veto(source, resource_type, resource, previous):
        if resource.get("title") == "vetoed":
            raise ScimError(400, "vetoed by policy", "invalidValue")

    config = make_config(
        storage_url,
        [
            {
                "slug": "demo",
                "name": "Demo",
                "mappings": [{"name": "strict", "expression": "{'t': 1 / 0 if title == 'unmappable' else title}"}],
            },
            {"slug": "other", "name": "Other"},
        ],
    )
    config["mappings"] = {"mode": "process", "workers": 1, "timeout_seconds": 5.0, "memory_mb": 256}
    app = create_app(config, plugins=[("veto", types.SimpleNamespace(validate_resource=hookimpl(veto)))])
    client = await aiohttp_client(app)
    return ScimClient(client, "demo", await app[HOST].issue_token("demo"))


async def test_every_committed_write_is_one_event_in_commit_order(vetoing_scim):
    scim = vetoing_scim
    user = await scim.json(
        "POST",
        "/Users",
        {"userName": "bjensen", "externalId": "x1", "title": "Boss", "password": "s3cret-Pa55"},
        expect=201,
        headers={"X-Request-Id": "req-123"},
    )
    await scim.json("PATCH", f"/Users/{user['id']}", patch_op({"op": "replace", "path": "title", "value": "CEO"}))
    await scim.json(
        "PUT",
        f"/Users/{user['id']}",
        {"userName": "bjensen", "externalId": "x1", "title": "CEO", "password": "n3w-Pa55word"},
    )
    group = await scim.create_group("Admins", [user["id"]])
    await scim.request("PATCH", f"/Groups/{group['id']}", patch_op({"op": "remove", "path": "members"}))
    await scim.request("DELETE", f"/Users/{user['id']}")

    events = await events_of(scim)
    assert [(e.action, e.resource_type, e.version) for e in events] == [
        ("create", "User", 1),
        ("patch", "User", 2),
        ("replace", "User", 3),
        ("create", "Group", 1),
        ("patch", "Group", 2),
        ("delete", "User", None),
    ]
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert len({e.id for e in events}) == 6 and all(e.id.startswith("evt_") for e in events)
    created, patched, replaced, group_created, members_removed, deleted = events
    assert created.actor["scheme"] == "bearer" and created.actor["account"] == "scimhost-source-demo"
    assert created.actor["request_id"] == "req-123" and created.actor["client"]
    assert created.external_id == "x1" and created.resource["userName"] == "bjensen"
    assert created.changed["password"] == {"changed": True}
    assert "s3cret" not in json.dumps(created.changed) + json.dumps(created.resource)
    assert created.record["t"] == "Boss"
    assert patched.changed == {"title": {"old": "Boss", "new": "CEO"}} and patched.record["t"] == "CEO"
    assert replaced.changed == {"password": {"changed": True}}
    assert group_created.members == {"added": [user["id"]]}
    assert members_removed.members == {"replaced": True, "count": 0, "members": []}
    assert members_removed.changed == {} and members_removed.record is None
    assert deleted.resource is None and deleted.record is None and deleted.external_id == "x1"
    assert [e.action for e in await events_of(scim, resource_id=user["id"])] == ["create", "patch", "replace", "delete"]


async def test_a_write_that_does_not_commit_records_nothing(vetoing_scim):
    scim = vetoing_scim
    user = await scim.create_user("taken")
    group = await scim.create_group("G")
    before = [e.id for e in await events_of(scim)]
    refused = [
        ("POST", "/Users", {"userName": "TAKEN"}, 409),  # uniqueness
        ("POST", "/Users", {"userName": "v", "title": "vetoed"}, 400),  # a plugin's veto
        ("POST", "/Users", {"userName": "m", "title": "unmappable"}, 400),  # a failing mapping
        ("POST", "/Users", {"userName": ""}, 400),  # invalid
        (
            "PATCH",
            f"/Groups/{group['id']}",
            patch_op({"op": "add", "path": "members", "value": [{"value": "nobody"}]}),
            400,
        ),
        ("PATCH", f"/Users/{user['id']}", patch_op({"op": "replace", "path": "title", "value": "x"}), 412),
        ("DELETE", f"/Users/{user['id']}", None, 412),
        ("PATCH", f"/Users/{user['id']}", patch_op({"op": "replace", "path": "userName", "value": "taken"}), 200),
    ]
    for method, path, body, status in refused:
        headers = {"If-Match": 'W/"7"'} if status == 412 else None
        response = await scim.request(method, path, body, headers=headers)
        assert response.status == status, (method, path, await response.text())
    # (the last PATCH changed nothing: no new version, no event)
    assert [e.id for e in await events_of(scim)] == before


async def test_a_sources_events_are_its_own(vetoing_scim):
    scim = vetoing_scim
    other = ScimClient(scim.client, "other", await scim.client.app[HOST].issue_token("other"))
    mine = await scim.create_user("same")
    theirs = await other.create_user("same")
    assert [e.resource_id for e in await events_of(scim, "demo")] == [mine["id"]]
    assert [e.resource_id for e in await events_of(scim, "other")] == [theirs["id"]]
    storage = scim.client.app[HOST].storage
    [their_event] = await events_of(scim, "other")
    assert await storage.get_event("demo", their_event.id) is None
    assert await storage.get_event("demo", their_event.seq) is None
    assert (await storage.get_event("other", their_event.seq)).id == their_event.id
    assert await events_of(scim, "demo", resource_id=theirs["id"]) == []


async def test_concurrent_patches_of_one_resource_are_logged_in_version_order(vetoing_scim):
    scim = vetoing_scim
    user = await scim.create_user("racer")
    await asyncio.gather(
        *(
            scim.request(
                "PATCH", f"/Users/{user['id']}", patch_op({"op": "replace", "path": "title", "value": f"t{i}"})
            )
            for i in range(12)
        )
    )
    versions = [e.version for e in await events_of(scim, resource_id=user["id"])]
    assert versions == list(range(1, 14))


async def test_events_commands_list_show_and_prune(tmp_path, storage_url, capsys, aiohttp_client):
    from scimhost.cli import main

    path = tmp_path / "scimhost.toml"
    path.write_text(
        f'[events]\nretention_days = 1\n[storage.tortoise]\nurl = "{storage_url}"\n'
        '[[sources]]\nslug = "demo"\nname = "Demo"\n[[sources]]\nslug = "hr"\nname = "HR"\n'
    )
    app = create_app(path)
    client = await aiohttp_client(app)
    demo = ScimClient(client, "demo", await app[HOST].issue_token("demo"))
    hr = ScimClient(client, "hr", await app[HOST].issue_token("hr"))
    user = await demo.create_user("a")
    await demo.json("PATCH", f"/Users/{user['id']}", patch_op({"op": "replace", "path": "title", "value": "x"}))
    await hr.create_user("b")

    config = ["-c", str(path)]
    assert await asyncio.to_thread(main, [*config, "events", "list", "--json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["source"], e["action"]) for e in listed] == [("demo", "create"), ("demo", "patch"), ("hr", "create")]
    assert await asyncio.to_thread(main, [*config, "events", "list", "--source", "hr", "--json"]) == 0
    assert [json.loads(line)["source"] for line in capsys.readouterr().out.splitlines()] == ["hr"]
    assert await asyncio.to_thread(main, [*config, "events", "show", str(listed[1]["seq"]), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["changed"] == {"title": {"old": None, "new": "x"}} and shown["id"] == listed[1]["id"]
    assert shown["deliveries"] == []  # no sinks configured
    assert await asyncio.to_thread(main, [*config, "events", "show", listed[2]["id"]]) == 0
    assert '"hr"' in capsys.readouterr().out
    assert await asyncio.to_thread(main, [*config, "events", "show", "evt_nosuch"]) == 1
    capsys.readouterr()
    # Nothing is a day old yet; then, seen from two days later, everything is.
    assert await asyncio.to_thread(main, [*config, "events", "prune", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pruned"] == {"demo": 0, "hr": 0}
    storage = app[HOST].storage
    later = datetime.now(UTC) + timedelta(days=2)
    assert await storage.prune_events("demo", before=later, batch=1) == 2
    assert await storage.list_events("demo") == [] and len(await storage.list_events("hr")) == 1
    # A reader that goes away (`events list | head`) ends the command quietly.
    import subprocess

    from serving import scimhost

    process = subprocess.Popen(
        scimhost(*config, "events", "list"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    process.stdout.close()  # before the command has written anything
    stderr = await asyncio.to_thread(process.stderr.read)
    assert await asyncio.to_thread(process.wait) == 141 and stderr == ""


def test_lifecycle_is_said_only_when_active_turns():
    from scimhost.delivery.envelope import lifecycle
    from scimhost.testing import stored_event

    def of(action, change):
        return lifecycle(dataclasses.replace(stored_event(action=action), changed={"active": change}))

    assert of("patch", {"old": True, "new": False}) == "deactivated"
    assert of("replace", {"old": None, "new": False}) == "deactivated"
    assert of("patch", {"old": False, "new": True}) == "reactivated"
    assert of("replace", {"old": False, "new": None}) == "reactivated"
    assert of("patch", {"old": False, "new": False}) is None
    assert of("create", {"old": None, "new": False}) is None  # created inactive: nothing turned
    assert lifecycle(stored_event(action="patch")) is None


def test_a_patch_event_keeps_its_operations_without_write_only_values():
    from scimhost.scim.changes import MEMBER_CAP, recorded_operations

    sent = [
        {"op": "replace", "path": "title", "value": "CEO"},
        {"Op": "replace", "Path": "password", "Value": "s3cret"},
        {"op": "replace", "value": {"displayName": "B", "Password": "s3cret"}},
        {"op": "remove", "path": 'emails[type eq "work"]'},
    ]
    assert recorded_operations(sent, ["password"]) == [
        {"op": "replace", "path": "title", "value": "CEO"},
        {"op": "replace", "value": {"displayName": "B"}},
        {"op": "remove", "path": 'emails[type eq "work"]'},
    ]
    many = [{"op": "add", "path": "members", "value": [{"value": str(i)} for i in range(MEMBER_CAP + 1)]}]
    assert recorded_operations(many, []) is None  # a huge group's change stays small


async def test_a_patch_events_operations_reach_the_log_and_the_envelope(scim, client):
    user = await scim.create_user("ops")
    body = patch_op(
        {"op": "replace", "path": "title", "value": "x"}, {"op": "add", "path": "password", "value": "p4ss"}
    )
    await scim.json("PATCH", f"/Users/{user['id']}", body)
    [_, patched] = await client.app[HOST].storage.list_events("demo", resource_id=user["id"])
    assert patched.operations == [{"op": "replace", "path": "title", "value": "x"}]
    from scimhost.delivery.envelope import envelope

    assert envelope(patched)["data"]["operations"] == patched.operations
    assert "p4ss" not in str(envelope(patched))
