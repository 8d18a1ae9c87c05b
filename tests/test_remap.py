"""`scimhost records remap`: after a mapping changes, stored records follow it, each change an event."""

from __future__ import annotations

import asyncio

from helpers import ScimClient

from scimhost.app import create_app
from scimhost.cli import main
from scimhost.http.keys import HOST

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def write_config(path, storage_url: str, user_expression: str, group_expression: str = "{}") -> list[str]:
    """Sources demo and other with the same mappings; the arguments naming the file."""
    mappings = (
        f'[[sources.mappings]]\nname = "dept"\nexpression = "{user_expression}"\n'
        f'[[sources.mappings]]\nname = "label"\nresource_type = "Group"\nexpression = "{group_expression}"\n'
    )
    path.write_text(
        f'[mappings]\nworkers = 1\ntimeout_seconds = 10.0\n[storage.tortoise]\nurl = "{storage_url}"\n'
        '[[sources]]\nslug = "demo"\nname = "Demo"\n'
        + mappings
        + '[[sources]]\nslug = "other"\nname = "Other"\n'
        + mappings
    )
    return ["-c", str(path)]


DEPARTMENT = "(urn_ietf_params_scim_schemas_extension_enterprise_2_0_User or {}).get('department')"


async def test_remap_applies_the_changed_mappings_to_stored_records_as_events(
    tmp_path, storage_url, capsys, aiohttp_client
):
    path = tmp_path / "scimhost.toml"
    config = write_config(path, storage_url, "{'department': " + DEPARTMENT + "}")
    app = create_app(path)
    client = await aiohttp_client(app)
    host = app[HOST]
    clients = {slug: ScimClient(client, slug, await host.issue_token(slug)) for slug in ("demo", "other")}
    ids = {}
    for slug, scim in clients.items():  # the same people in both sources
        for name, dept in (("ann", "Sales"), ("bob", "research"), ("cy", None)):
            extra = {ENTERPRISE: {"department": dept}} if dept else {}
            ids[slug, name] = (await scim.create_user(name, **extra))["id"]
        ids[slug, "Eng"] = (await scim.create_group("Eng", [ids[slug, "ann"]]))["id"]
    before = {name: await clients["demo"].json("GET", f"/Users/{ids['demo', name]}") for name in ("ann", "bob", "cy")}
    events_before = len(await host.storage.list_events("demo"))

    # The operator changes the mappings: the department upper-cased, groups labelled.
    write_config(path, storage_url, "{'department': (" + DEPARTMENT + " or 'none').upper()}", "{'label': 'team'}")
    assert (
        await asyncio.to_thread(main, [*config, "records", "remap", "demo", "User", "--filter", 'userName ne "cy"'])
        == 0
    )
    assert capsys.readouterr().out == "demo User: 2 resources, 2 records changed, 0 unchanged\n"
    record = await host.storage.get_record("demo", "User", ids["demo", "ann"])
    assert record["department"] == "SALES"
    assert (await host.storage.get_record("demo", "User", ids["demo", "cy"]))["department"] is None  # not matched
    assert (await host.storage.get_record("other", "User", ids["other", "ann"]))[
        "department"
    ] == "Sales"  # other source

    # Each change is an event with the record before and after; the SCIM document is unchanged.
    remaps = [e for e in await host.storage.list_events("demo") if e.action == "remap"]
    assert [e.resource_id for e in remaps] == [ids["demo", "ann"], ids["demo", "bob"]]
    assert remaps[0].changed["record"]["old"]["department"] == "Sales"
    assert remaps[0].changed["record"]["new"]["department"] == "SALES" and remaps[0].record == record
    assert remaps[0].actor["account"] == "scimhost records remap"
    after = await clients["demo"].json("GET", f"/Users/{ids['demo', 'ann']}")
    assert {k: v for k, v in after.items() if k != "meta"} == {k: v for k, v in before["ann"].items() if k != "meta"}

    # Every type of the source, without a filter; what already matches is left alone.
    assert await asyncio.to_thread(main, [*config, "records", "remap", "demo"]) == 0
    out = capsys.readouterr().out
    assert "demo User: 3 resources, 1 record changed, 2 unchanged" in out
    assert "demo Group: 1 resource, 1 record changed, 0 unchanged" in out
    assert (await host.storage.get_record("demo", "Group", ids["demo", "Eng"]))["label"] == "team"
    assert len(await host.storage.list_events("demo")) == events_before + 4
    assert await asyncio.to_thread(main, [*config, "records", "remap", "demo"]) == 0
    assert "0 records changed" in capsys.readouterr().out  # run twice: nothing more
    assert len(await host.storage.list_events("demo")) == events_before + 4
    assert len([e for e in await host.storage.list_events("other") if e.action == "remap"]) == 0


async def test_a_mapping_that_fails_on_one_resource_names_it_and_remaps_the_rest(
    tmp_path, storage_url, capsys, aiohttp_client
):
    path = tmp_path / "scimhost.toml"
    config = write_config(path, storage_url, "{}")
    app = create_app(path)
    client = await aiohttp_client(app)
    scim = ScimClient(client, "demo", await app[HOST].issue_token("demo"))
    fine = (await scim.create_user("ann", title="Boss"))["id"]
    failing = (await scim.create_user("bob"))["id"]  # no title: the new mapping fails on him
    write_config(path, storage_url, "{'title': title.upper()}")
    assert await asyncio.to_thread(main, [*config, "records", "remap", "demo", "User"]) == 1
    captured = capsys.readouterr()
    assert f"error: User {failing}: Property mapping 'dept' of source 'demo' could not map this User" in captured.err
    assert "demo User: 2 resources, 1 record changed, 0 unchanged, 1 could not be mapped" in captured.out
    assert (await app[HOST].storage.get_record("demo", "User", fine))["title"] == "BOSS"
    assert "title" not in await app[HOST].storage.get_record("demo", "User", failing)  # as it was


async def test_remap_names_what_is_not_configured(tmp_path, storage_url, capsys):
    config = write_config(tmp_path / "scimhost.toml", storage_url, "{}")
    assert await asyncio.to_thread(main, [*config, "migrate"]) == 0
    capsys.readouterr()
    assert await asyncio.to_thread(main, [*config, "records", "remap", "nosuch"]) == 1
    assert "no source 'nosuch'" in capsys.readouterr().err
    assert await asyncio.to_thread(main, [*config, "records", "remap", "demo", "Usr"]) == 1
    assert "no resource type 'Usr'" in capsys.readouterr().err
