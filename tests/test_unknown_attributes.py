"""Attributes no schema declares (Entra custom extensions, Okta custom URNs, SCIM 1.1-style
URNs): kept, returned, patched and mapped by default; refused or dropped when the source says so."""

from __future__ import annotations

import logging
from urllib.parse import quote

import pytest
from helpers import ScimClient, make_config, patch_op, snapshot

from scimhost.app import create_app
from scimhost.http.keys import HOST

# The example every operator of the mapping feature starts from, verbatim.
SEED_PAYLOAD = {
    "schemas": ["urn:scim:schemas:core:2.0", "urn:scim:schemas:extension:enterprise:2.0"],
    "userName": "foo.bar",
    "name": {"familyName": "bar", "givenName": "foo", "formatted": "foo.bar"},
    "emails": [{"value": "foo.bar@authentik.company", "type": "work", "primary": True}],
    "title": "",
    "urn:scim:schemas:extension:enterprise:2.0": {"department": ""},
}
ENTRA = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User"
OKTA = "urn:okta:custom:user:1.0"


async def source(aiohttp_client, storage_url, *, policy: str | None = None, mappings=()) -> ScimClient:
    settings = {"slug": "demo", "name": "Demo", "mappings": list(mappings)}
    if policy is not None:
        settings["unknown_attributes"] = policy
    config = make_config(storage_url, [settings])
    config["mappings"] = {"mode": "process", "workers": 1, "timeout_seconds": 5.0, "memory_mb": 256}
    app = create_app(config)
    client = await aiohttp_client(app)
    return ScimClient(client, "demo", await app[HOST].issue_token("demo"))


def storage_of(scim: ScimClient):
    return scim.client.app[HOST].storage


async def test_the_seed_payload_is_stored_whole_and_reaches_the_mappings(aiohttp_client, storage_url):
    mappings = [
        {
            "name": "dept",
            "expression": "{'department': urn_scim_schemas_extension_enterprise_2_0['department'], 'kinds': schemas}",
        }
    ]
    scim = await source(aiohttp_client, storage_url, mappings=mappings)
    created = await scim.json("POST", "/Users", SEED_PAYLOAD, expect=201)
    assert created["urn:scim:schemas:extension:enterprise:2.0"] == {"department": ""}
    assert "urn:scim:schemas:extension:enterprise:2.0" in created["schemas"]
    read = await scim.json("GET", f"/Users/{created['id']}")
    assert read == created
    for key in ("userName", "name", "emails", "urn:scim:schemas:extension:enterprise:2.0"):
        assert read[key] == SEED_PAYLOAD[key]
    record = await storage_of(scim).get_record("demo", "User", created["id"])
    assert record["department"] == ""
    assert record["attributes"]["urn:scim:schemas:extension:enterprise:2.0"] == {"department": ""}
    # A value that says something, through PATCH of the kept object's sub-attribute.
    await scim.json(
        "PATCH",
        f"/Users/{created['id']}",
        patch_op({"op": "replace", "path": "urn:scim:schemas:extension:enterprise:2.0:department", "value": "Sales"}),
    )
    record = await storage_of(scim).get_record("demo", "User", created["id"])
    assert record["department"] == "Sales"


async def test_an_entra_custom_extension_is_kept_patched_and_mapped(aiohttp_client, storage_url):
    variable = "urn_ietf_params_scim_schemas_extension_CustomExtensionName_2_0_User"
    scim = await source(
        aiohttp_client,
        storage_url,
        mappings=[{"name": "cost", "expression": f"{{'cost_center': ({variable} or {{}}).get('costCenter')}}"}],
    )
    created = await scim.json(
        "POST", "/Users", {"userName": "entra", ENTRA: {"costCenter": "CC-1", "badge": "7"}}, expect=201
    )
    assert created[ENTRA] == {"costCenter": "CC-1", "badge": "7"} and ENTRA in created["schemas"]
    # Entra's PATCH: the URN-qualified path of one attribute of the extension.
    patched = await scim.json(
        "PATCH", f"/Users/{created['id']}", patch_op({"op": "Replace", "path": f"{ENTRA}:costCenter", "value": "CC-2"})
    )
    assert patched[ENTRA] == {"costCenter": "CC-2", "badge": "7"}
    record = await storage_of(scim).get_record("demo", "User", created["id"])
    assert record["cost_center"] == "CC-2"
    # Path-less, as Entra also sends it: the URN-qualified key of one attribute.
    patched = await scim.json(
        "PATCH", f"/Users/{created['id']}", patch_op({"op": "Add", "value": {f"{ENTRA}:costCenter": "CC-3"}})
    )
    assert patched[ENTRA] == {"costCenter": "CC-3", "badge": "7"}
    patched = await scim.json("PATCH", f"/Users/{created['id']}", patch_op({"op": "remove", "path": f"{ENTRA}:badge"}))
    assert patched[ENTRA] == {"costCenter": "CC-3"}


async def test_an_okta_custom_urn_is_kept_replaced_by_put_and_removed(aiohttp_client, storage_url):
    scim = await source(
        aiohttp_client,
        storage_url,
        mappings=[{"name": "okta", "expression": "{'tier': (urn_okta_custom_user_1_0 or {}).get('tier')}"}],
    )
    created = await scim.json(
        "POST", "/Users", {"userName": "okta", OKTA: {"tier": "gold"}, "nickname2": "x"}, expect=201
    )
    assert created[OKTA] == {"tier": "gold"} and created["nickname2"] == "x"
    assert (await storage_of(scim).get_record("demo", "User", created["id"]))["tier"] == "gold"
    replaced = await scim.json("PUT", f"/Users/{created['id']}", {"userName": "okta", OKTA: {"tier": "silver"}})
    assert replaced[OKTA] == {"tier": "silver"} and "nickname2" not in replaced  # PUT replaces
    assert (await storage_of(scim).get_record("demo", "User", created["id"]))["tier"] == "silver"
    patched = await scim.json("PATCH", f"/Users/{created['id']}", patch_op({"op": "remove", "path": OKTA}))
    assert OKTA not in patched and OKTA not in patched["schemas"]
    assert (await storage_of(scim).get_record("demo", "User", created["id"]))["tier"] is None
    response = await scim.request("PATCH", f"/Users/{created['id']}", patch_op({"op": "remove", "path": OKTA}))
    assert response.status == 400 and (await response.json(content_type=None))["scimType"] == "noTarget"


async def test_kept_attributes_follow_attributes_and_excluded_attributes(aiohttp_client, storage_url):
    scim = await source(aiohttp_client, storage_url)
    created = await scim.json("POST", "/Users", {"userName": "p", OKTA: {"tier": "gold"}}, expect=201)
    only = await scim.json("GET", f"/Users/{created['id']}?attributes=userName")
    assert OKTA not in only
    named = await scim.json("GET", f"/Users/{created['id']}?attributes=userName,{quote(OKTA)}")
    assert named[OKTA] == {"tier": "gold"}
    without = await scim.json("GET", f"/Users/{created['id']}?excludedAttributes={quote(OKTA)}")
    assert OKTA not in without and without["userName"] == "p"


async def test_filters_cannot_reach_kept_attributes(aiohttp_client, storage_url):
    scim = await source(aiohttp_client, storage_url)
    await scim.json("POST", "/Users", {"userName": "f", OKTA: {"tier": "gold"}, "plain": "x"}, expect=201)
    for text in (f'{OKTA}:tier eq "gold"', 'plain eq "x"'):
        response = await scim.request("GET", "/Users?filter=" + quote(text))
        body = await response.json(content_type=None)
        assert (response.status, body["scimType"]) == (400, "invalidFilter"), body


async def test_reject_refuses_undeclared_attributes_naming_them(aiohttp_client, storage_url):
    scim = await source(aiohttp_client, storage_url, policy="reject")
    for body in (SEED_PAYLOAD, {"userName": "e", ENTRA: {"a": 1}}, {"userName": "o", "favourite": 1}):
        response = await scim.request("POST", "/Users", body)
        error = await response.json(content_type=None)
        assert (response.status, error["scimType"]) == (400, "invalidValue")
        assert "no schema declares" in error["detail"]
    assert "urn:scim:schemas:extension:enterprise:2.0" in error["detail"] or "favourite" in error["detail"]
    assert (await scim.json("GET", "/Users"))["totalResults"] == 0
    user = await scim.create_user("declared")
    response = await scim.request("PATCH", f"/Users/{user['id']}", patch_op({"op": "add", "value": {OKTA: {"a": 1}}}))
    assert response.status == 400
    assert await scim.json("GET", f"/Users/{user['id']}") == user


async def test_drop_ignores_undeclared_attributes_and_logs_them(aiohttp_client, storage_url, caplog):
    scim = await source(aiohttp_client, storage_url, policy="drop")
    with caplog.at_level(logging.INFO, logger="scimhost.resource_service"):
        created = await scim.json("POST", "/Users", SEED_PAYLOAD, expect=201)
    assert "urn:scim:schemas:extension:enterprise:2.0" not in created
    assert created["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:User"]
    logged = [r.getMessage() for r in caplog.records if "no schema declares" in r.getMessage()]
    assert logged and "demo" in logged[0] and "urn:scim:schemas:extension:enterprise:2.0" in logged[0]


NOT_NAMES = ["../../x", "a b", "<script>", "$ref", "1abc", "urn:x:", "x.y", "urn:a:b:c.d.e", ""]


async def test_kept_keys_must_be_attribute_names_or_urns(aiohttp_client, storage_url):
    """RFC 7643 §2.1 ATTRNAME, or a schema URN: any other key is 400 invalidSyntax naming it, on
    POST and PUT, at the top or inside a kept object, and nothing is stored."""
    scim = await source(aiohttp_client, storage_url)
    user = await scim.create_user("kept", nickname2="n", **{OKTA: {"tier": "gold"}})
    before = await snapshot(scim)
    bodies = [({"userName": "bad", key: "x"}, key) for key in NOT_NAMES]
    bodies += [
        ({"userName": "bad", OKTA: {"a b": 1}}, "a b"),
        ({"userName": "bad", "custom": {"ok": {"<b>": 1}}}, "<b>"),
    ]
    bodies += [({"userName": "bad", "custom": [{"x.y": 1}]}, "x.y")]
    for body, named in bodies:
        for method, path in (("POST", "/Users"), ("PUT", f"/Users/{user['id']}")):
            response = await scim.request(method, path, body)
            error = await response.json(content_type=None)
            assert (response.status, error["scimType"]) == (400, "invalidSyntax"), (method, body)
            assert repr(named) in error["detail"], error["detail"]
    assert await snapshot(scim) == before
    # What is a name is kept: letters, digits, '-' and '_'; URNs with versions; `$ref` inside.
    fine = {"userName": "fine", "x-y_2": 1, "urn:okta:custom:user:1.0": {"ref": {"$ref": "https://x", "v": 1}}}
    created = await scim.json("POST", "/Users", fine, expect=201)
    assert created["x-y_2"] == 1 and created["urn:okta:custom:user:1.0"] == fine["urn:okta:custom:user:1.0"]


@pytest.mark.parametrize(
    "path", ["x.y.z", "../../id", "a b", "$ref", "1abc", "urn:x:", "nickname2.a.b", f"{OKTA}:tier.a.b", "<x>"]
)
async def test_a_patch_path_that_is_no_attribute_path_is_invalid_path(aiohttp_client, storage_url, path):
    """RFC 7644 §3.10: `attrPath` is a name with at most one sub-attribute (URN-qualified or not);
    anything else is 400 invalidPath, and the stored resource is as it was."""
    scim = await source(aiohttp_client, storage_url)
    user = await scim.create_user("patched", nickname2="n", **{OKTA: {"tier": "gold"}})
    for op in ("add", "replace", "remove"):
        response = await scim.request("PATCH", f"/Users/{user['id']}", patch_op({"op": op, "path": path, "value": "x"}))
        error = await response.json(content_type=None)
        assert (response.status, error["scimType"]) == (400, "invalidPath"), (op, error)
    response = await scim.request("PATCH", f"/Users/{user['id']}", patch_op({"op": "add", "value": {path: "x"}}))
    assert response.status == 400 and (await response.json(content_type=None))["scimType"] in (
        "invalidSyntax",
        "invalidPath",
    )
    assert await scim.json("GET", f"/Users/{user['id']}") == user


async def test_patch_reaches_one_sub_attribute_of_a_kept_object(aiohttp_client, storage_url):
    scim = await source(aiohttp_client, storage_url)
    user = await scim.create_user("subs")
    patched = await scim.json(
        "PATCH", f"/Users/{user['id']}", patch_op({"op": "add", "path": "badge.colour", "value": "red"})
    )
    assert patched["badge"] == {"colour": "red"} and "badge.colour" not in patched
    patched = await scim.json(
        "PATCH", f"/Users/{user['id']}", patch_op({"op": "add", "path": "Badge.size", "value": 3})
    )
    assert patched["badge"] == {"colour": "red", "size": 3}
    patched = await scim.json("PATCH", f"/Users/{user['id']}", patch_op({"op": "remove", "path": "badge.colour"}))
    assert patched["badge"] == {"size": 3}
    patched = await scim.json("PATCH", f"/Users/{user['id']}", patch_op({"op": "remove", "path": "badge.size"}))
    assert "badge" not in patched  # an object left empty goes
    response = await scim.request("PATCH", f"/Users/{user['id']}", patch_op({"op": "remove", "path": "badge.size"}))
    assert (await response.json(content_type=None))["scimType"] == "noTarget"


async def test_drop_drops_keys_that_are_not_names_and_logs_them(aiohttp_client, storage_url, caplog):
    scim = await source(aiohttp_client, storage_url, policy="drop")
    with caplog.at_level(logging.INFO, logger="scimhost.resource_service"):
        created = await scim.json("POST", "/Users", {"userName": "d", "a b": 1, "../../x": 2}, expect=201)
    assert "a b" not in created and "../../x" not in created
    stored = await storage_of(scim).get_resource("demo", "User", created["id"])
    assert "a b" not in stored.document and "../../x" not in stored.document
    assert any("'a b'" in r.getMessage() and "'../../x'" in r.getMessage() for r in caplog.records)


async def test_a_patch_leaves_a_key_kept_before_the_name_rule_alone(aiohttp_client, storage_url):
    """A key an earlier version kept stays readable and does not block PATCHes that leave it be."""
    from dataclasses import replace

    scim = await source(aiohttp_client, storage_url)
    user = await scim.create_user("legacy")
    storage = storage_of(scim)
    stored = await storage.get_resource("demo", "User", user["id"])
    service_write = __import__("scimhost.testing", fromlist=["user_write"]).user_write("legacy")
    legacy = replace(service_write, document={**stored.document, "old key": 1})
    await storage.update_resource("demo", "User", user["id"], expected_version=None, write=legacy)
    patched = await scim.json(
        "PATCH", f"/Users/{user['id']}", patch_op({"op": "replace", "path": "title", "value": "T"})
    )
    assert patched["title"] == "T" and patched["old key"] == 1
    response = await scim.request(
        "PATCH", f"/Users/{user['id']}", patch_op({"op": "replace", "path": "old key", "value": 2})
    )
    assert (await response.json(content_type=None))["scimType"] == "invalidPath"


def test_check_reports_declared_keys_that_share_a_variable(tmp_path, capsys):
    from scimhost.cli import main

    config = cli_config(tmp_path, f"sqlite://{tmp_path}/db.sqlite3", "{}")
    extension = {"name": "Twin", "description": "", "attributes": []}
    with open(config, "a") as file:
        for urn in ("urn:example:twin:2.0:User", "urn:example:twin:2_0:User"):
            file.write(
                f'[[schema_extensions]]\nresource_type = "User"\nschema = {{ id = "{urn}", name = "{extension["name"]}", description = "", attributes = [] }}\n'
            )
    assert main(["-c", config, "migrate"]) == 0
    assert main(["-c", config, "check"]) == 0
    err = capsys.readouterr().err
    assert "'urn:example:twin:2.0:User' is no expression variable" in err
    assert "'urn:example:twin:2_0:User' also becomes 'urn_example_twin_2_0_User'" in err


async def test_mistakes_about_declared_schemas_are_not_kept(aiohttp_client, storage_url):
    """`name.nosuch` or an unknown attribute of a declared extension is not new data."""
    scim = await source(aiohttp_client, storage_url)
    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    created = await scim.json(
        "POST",
        "/Users",
        {"userName": "m", f"{enterprise}:nosuch": "x", f"{enterprise}:department": "Sales"},
        expect=201,
    )
    assert f"{enterprise}:nosuch" not in created and created[enterprise] == {"department": "Sales"}
    response = await scim.request(
        "PATCH", f"/Users/{created['id']}", patch_op({"op": "add", "path": "name.nosuch", "value": 1})
    )
    assert response.status == 400


def test_unknown_attributes_setting_is_checked(tmp_path):
    from scimhost.config import ConfigError
    from scimhost.host import load_host

    config = make_config(f"sqlite://{tmp_path}/x.sqlite3", [{"slug": "a", "name": "A", "unknown_attributes": "maybe"}])
    with pytest.raises(ConfigError, match="unknown_attributes: must be one of keep, reject, drop"):
        load_host(config)


async def test_a_name_the_document_lacks_is_none_declared_or_not(aiohttp_client, storage_url):
    """A mapping written for optional attributes never fails a write because a client omits them."""
    scim = await source(
        aiohttp_client,
        storage_url,
        mappings=[
            {
                "name": "optional",
                "expression": "{'title': title, 'tier': urn_okta_custom_user_1_0, "
                "'n': len([x for x in (emails or [])])}",
            }
        ],
    )
    user = await scim.create_user("bare")
    record = await storage_of(scim).get_record("demo", "User", user["id"])
    assert (record["title"], record["tier"], record["n"]) == (None, None, 0)


# --- the command line ---------------------------------------------------------------------------


def cli_config(tmp_path, storage_url: str, expression: str) -> str:
    path = tmp_path / "scimhost.toml"
    path.write_text(
        f'[mappings]\nworkers = 1\ntimeout_seconds = 10.0\n[storage.tortoise]\nurl = "{storage_url}"\n'
        '[[sources]]\nslug = "demo"\nname = "Demo"\n'
        f'[[sources.mappings]]\nname = "dept"\nexpression = "{expression}"\n'
    )
    return str(path)


def test_mappings_test_and_variables_see_the_seed_payloads_extension(tmp_path, capsys):
    import json

    from scimhost.cli import main

    config = cli_config(
        tmp_path,
        f"sqlite://{tmp_path}/db.sqlite3",
        "{'department': urn_scim_schemas_extension_enterprise_2_0['department']}",
    )
    payload = tmp_path / "seed.json"
    payload.write_text(
        json.dumps({**SEED_PAYLOAD, "urn:scim:schemas:extension:enterprise:2.0": {"department": "Sales"}})
    )
    assert main(["-c", config, "mappings", "test", "demo", "--input", str(payload), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["department"] == "Sales"
    # The command every user of the feature tries first: the extension object is a dict, merged in.
    assert (
        main(
            [
                "-c",
                config,
                "mappings",
                "test",
                "demo",
                "--input",
                str(payload),
                "--json",
                "--expression",
                "urn_scim_schemas_extension_enterprise_2_0",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["department"] == "Sales"
    assert main(["-c", config, "mappings", "variables", "demo", "--input", str(payload)]) == 0
    out = capsys.readouterr().out
    assert "urn_scim_schemas_extension_enterprise_2_0 urn:scim:schemas:extension:enterprise:2.0" in " ".join(
        out.split()
    )
    assert main(["-c", config, "mappings", "variables", "demo"]) == 0
    assert "urn_scim_schemas_extension_enterprise_2_0" not in capsys.readouterr().out


def test_check_warns_about_names_no_declared_schema_defines(tmp_path, capsys):
    from scimhost.cli import main

    config = cli_config(
        tmp_path, f"sqlite://{tmp_path}/db.sqlite3", "{'n': usrName, 'm': userName, 'l': len(emails or [])}"
    )
    assert main(["-c", config, "migrate"]) == 0
    assert main(["-c", config, "check"]) == 0
    err = capsys.readouterr().err
    assert "source 'demo' mapping 'dept' reads 'usrName'" in err
    assert "'userName'" not in err and "'len'" not in err and "'emails'" not in err


async def test_records_show_and_list(tmp_path, storage_url, capsys, aiohttp_client):
    import asyncio
    import json

    from scimhost.cli import main

    config = cli_config(
        tmp_path, storage_url, "{'department': (urn_scim_schemas_extension_enterprise_2_0 or {}).get('department')}"
    )
    app = create_app(tmp_path / "scimhost.toml")
    client = await aiohttp_client(app)
    scim = ScimClient(client, "demo", await app[HOST].issue_token("demo"))
    created = await scim.json("POST", "/Users", SEED_PAYLOAD, expect=201)
    for i in range(3):
        await scim.create_user(f"user{i}", **{"urn:scim:schemas:extension:enterprise:2.0": {"department": f"D{i}"}})

    assert (
        await asyncio.to_thread(main, ["-c", config, "records", "show", "demo", "User", created["id"], "--json"]) == 0
    )
    record = json.loads(capsys.readouterr().out)
    assert record["username"] == "foo.bar" and record["department"] == ""
    assert record["attributes"]["urn:scim:schemas:extension:enterprise:2.0"] == {"department": ""}
    assert await asyncio.to_thread(main, ["-c", config, "records", "show", "demo", "Group", created["id"]]) == 1
    assert "no record" in capsys.readouterr().err

    assert (
        await asyncio.to_thread(
            main, ["-c", config, "records", "list", "demo", "User", "--json", "--filter", 'userName sw "user"']
        )
        == 0
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["record"]["department"] for line in lines] == ["D0", "D1", "D2"]
    assert await asyncio.to_thread(main, ["-c", config, "records", "list", "demo", "User"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4
    assert (
        await asyncio.to_thread(main, ["-c", config, "records", "list", "demo", "User", "--filter", "userName zz"]) == 1
    )
    assert capsys.readouterr().err.startswith("error: ")
