"""The index configuration: which attributes get index rows (`[[indexes]]`), and the fingerprint
that keeps an update from writing a difference against rows computed under another one."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import pytest
from helpers import ScimClient, make_config, patch_op, stored_rows

from scimhost.app import create_app
from scimhost.config import ConfigError
from scimhost.host import load_host
from scimhost.http.keys import HOST

BADGE = "urn:example:params:scim:schemas:extension:badge:2.0:User"


def badge_extension(*, case_exact: bool) -> dict:
    return {
        "resource_type": "User",
        "schema": {
            "id": BADGE,
            "name": "Badge",
            "attributes": [{"name": "code", "type": "string", "caseExact": case_exact}],
        },
    }


async def source(aiohttp_client, storage_url: str, **config_keys) -> ScimClient:
    config = {**make_config(storage_url, [{"slug": "demo", "name": "Demo"}]), **config_keys}
    app = create_app(config)
    client = await aiohttp_client(app)
    return ScimClient(client, "demo", await app[HOST].issue_token("demo"))


async def ids_matching(scim: ScimClient, expression: str) -> list[str]:
    listing = await scim.json("GET", f"/Users?filter={quote(expression)}")
    return [resource["id"] for resource in listing.get("Resources", [])]


async def index_paths_of(scim: ScimClient, resource_id: str) -> set[str]:
    rows = await stored_rows(
        scim.client.app[HOST].storage, "SELECT path FROM scimhost_attr WHERE resource_id = {}", resource_id
    )
    return {row["path"] for row in rows}


async def test_an_update_after_a_schema_change_rebuilds_rows_a_filter_would_match_wrongly(
    aiohttp_client, storage_url, monkeypatch
):
    """Rows computed under the old schema (`code` folded to lower case) are not diffed against
    what the new one gives (`code` case-exact): the PATCH of another attribute rebuilds them
    (the background pass that would rebuild them anyway is held off)."""
    import scimhost.app

    async def held_off(host) -> int:
        return 0

    monkeypatch.setattr(scimhost.app, "reindex_stale", held_off)
    before = await source(aiohttp_client, storage_url, schema_extensions=[badge_extension(case_exact=False)])
    user = await before.create_user(
        "bjensen", **{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", BADGE]}, **{BADGE: {"code": "AbC"}}
    )
    assert await ids_matching(before, f'{BADGE}:code eq "abc"') == [user["id"]]

    after = await source(aiohttp_client, storage_url, schema_extensions=[badge_extension(case_exact=True)])
    await after.json("PATCH", f"/Users/{user['id']}", patch_op({"op": "replace", "path": "title", "value": "Boss"}))
    assert await ids_matching(after, f'{BADGE}:code eq "AbC"') == [user["id"]]
    assert await ids_matching(after, f'{BADGE}:code eq "abc"') == []  # the old folded row is gone
    assert await ids_matching(after, 'title eq "boss"') == [user["id"]]


async def test_stale_rows_are_rebuilt_at_start_without_a_new_version_or_event(aiohttp_client, storage_url):
    before = await source(aiohttp_client, storage_url, schema_extensions=[badge_extension(case_exact=False)])
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", BADGE], BADGE: {"code": "AbC"}}
    user = await before.create_user("bjensen", **body)
    events = await before.client.app[HOST].storage.list_events("demo", limit=100)

    after = await source(aiohttp_client, storage_url, schema_extensions=[badge_extension(case_exact=True)])
    storage = after.client.app[HOST].storage
    fingerprint = after.client.app[HOST].sources["demo"].catalog.resource_types["User"].index_fingerprint
    for _ in range(200):  # the background pass after start
        if not await storage.stale_index("demo", "User", fingerprint):
            break
        await asyncio.sleep(0.02)
    assert await ids_matching(after, f'{BADGE}:code eq "AbC"') == [user["id"]]
    assert await ids_matching(after, f'{BADGE}:code eq "abc"') == []
    assert (await after.json("GET", f"/Users/{user['id']}"))["meta"]["version"] == user["meta"]["version"]
    assert await storage.list_events("demo", limit=100) == events


def test_migrate_rebuilds_stale_rows(tmp_path, capsys):
    from scimhost.cli import main

    store = tmp_path / "s.sqlite3"
    base = f'[storage.tortoise]\nurl = "sqlite://{store}"\n[[sources]]\nslug = "demo"\nname = "D"\n'
    config = tmp_path / "c.toml"
    config.write_text(base)
    assert main(["-c", str(config), "migrate"]) == 0
    host = load_host(make_config(f"sqlite://{store}", [{"slug": "demo", "name": "D"}]))

    async def write() -> None:
        from scimhost.resource_service import ResourceService

        await host.storage.open()
        try:
            source = host.sources["demo"]
            await ResourceService(host, source, source.catalog.resource_types["User"]).create({"userName": "u"})
        finally:
            await host.storage.close()

    asyncio.run(write())
    config.write_text(base + '[[indexes]]\nresource_type = "User"\nattributes = ["userName"]\n')
    capsys.readouterr()
    assert main(["-c", str(config), "migrate"]) == 0
    assert "rebuilt the index rows of 1 resources" in capsys.readouterr().out
    assert main(["-c", str(config), "migrate"]) == 0
    assert "rebuilt" not in capsys.readouterr().out


async def test_an_update_under_an_unchanged_configuration_writes_only_the_difference(aiohttp_client, storage_url):
    scim = await source(aiohttp_client, storage_url)
    user = await scim.create_user("bjensen", title="Boss", emails=[{"value": "b@x", "type": "work"}])
    storage = scim.client.app[HOST].storage
    ids_before = await stored_rows(
        storage, "SELECT id, path FROM scimhost_attr WHERE resource_id = {} ORDER BY id", user["id"]
    )
    await scim.json("PATCH", f"/Users/{user['id']}", patch_op({"op": "replace", "path": "title", "value": "Chief"}))
    ids_after = await stored_rows(
        storage, "SELECT id, path FROM scimhost_attr WHERE resource_id = {} ORDER BY id", user["id"]
    )
    kept = [row for row in ids_before if row["path"] != "title"]
    assert [row for row in ids_after if row["path"] != "title"] == kept  # untouched rows keep their ids
    assert await ids_matching(scim, 'title eq "chief"') == [user["id"]]
    assert await ids_matching(scim, 'title eq "boss"') == []


async def test_attributes_left_out_of_the_indexed_set_get_no_rows_and_cannot_be_filtered(aiohttp_client, storage_url):
    indexes = [{"resource_type": "User", "attributes": ["userName", "emails.value", "externalId"]}]
    scim = await source(aiohttp_client, storage_url, indexes=indexes)
    user = await scim.create_user(
        "bjensen", externalId="e-1", title="Boss", emails=[{"value": "b@x", "type": "work"}], name={"givenName": "B"}
    )
    assert await index_paths_of(scim, user["id"]) == {"username", "emails.value", "externalid"}
    assert await ids_matching(scim, 'emails.value eq "b@x" and externalId eq "e-1"') == [user["id"]]
    always = f'id eq "{user["id"]}" and meta.created pr'
    assert await ids_matching(scim, always) == [user["id"]]  # id and meta need no index rows
    for expression in ('title eq "boss"', 'emails.type eq "work"', 'name.givenName sw "b"', 'emails[type eq "work"]'):
        body = await scim.json("GET", f"/Users?filter={quote(expression)}", expect=400)
        assert body["scimType"] == "invalidFilter" and "not indexed" in body["detail"], expression
    body = await scim.json("GET", "/Users?sortBy=title", expect=400)
    assert "not indexed" in body["detail"]
    any_name = quote('displayName eq "x"')
    groups = await scim.json("GET", f"/Groups?filter={any_name}")  # Group keeps all
    assert groups["totalResults"] == 0


async def test_narrowing_the_indexed_set_drops_the_rows_of_the_next_write(aiohttp_client, storage_url):
    wide = await source(aiohttp_client, storage_url)
    user = await wide.create_user("bjensen", title="Boss")
    assert "title" in await index_paths_of(wide, user["id"])
    narrow = await source(aiohttp_client, storage_url, indexes=[{"resource_type": "User", "attributes": ["userName"]}])
    await narrow.json("PATCH", f"/Users/{user['id']}", patch_op({"op": "replace", "path": "nickName", "value": "B"}))
    assert await index_paths_of(narrow, user["id"]) == {"username"}


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"resource_type": "Device", "attributes": ["name"]}, "indexes[0].resource_type: no resource type 'Device'"),
        ({"resource_type": "User", "attributes": ["nosuch"]}, "indexes: User has no attribute 'nosuch'"),
    ],
)
def test_an_indexed_set_naming_nothing_is_a_config_error(tmp_path, entry, problem):
    config = {**make_config(f"sqlite://{tmp_path}/s.sqlite3"), "indexes": [entry]}
    with pytest.raises(ConfigError) as excinfo:
        load_host(config)
    assert problem in str(excinfo.value)


def test_check_reports_the_index_rows_a_configuration_gives(tmp_path, capsys):
    from scimhost.cli import main

    indexed = '[[indexes]]\nresource_type = "User"\nattributes = ["userName", "emails"]\n'
    for name, extra in (("all", ""), ("narrow", indexed)):
        config = tmp_path / f"{name}.toml"
        store = tmp_path / f"{name}.sqlite3"
        config.write_text(
            f'[storage.tortoise]\nurl = "sqlite://{store}"\n[[sources]]\nslug = "demo"\nname = "D"\n{extra}'
        )
        assert main(["-c", str(config), "migrate"]) == 0
        assert main(["-c", str(config), "check"]) == 0
    out = capsys.readouterr().out
    assert "index User: every attribute; a typical user gets 19 index rows" in out
    assert "index User: 5 of 66 attribute paths; a typical user gets 4 index rows" in out  # userName, 3 of emails
    assert out.count("index Group: every attribute; a typical group gets 2 index rows") == 2
