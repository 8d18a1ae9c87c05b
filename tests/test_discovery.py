"""Discovery is true, per source; a schema extension from TOML is discoverable, validated and
patchable by a URN-qualified path."""

from __future__ import annotations

import json
import tomllib

import pytest
from helpers import ScimClient, make_config, patch_op

from scimhost.app import create_app
from scimhost.config import ConfigError
from scimhost.host import load_host
from scimhost.http.keys import HOST

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ACME = "urn:example:params:scim:schemas:extension:acme:2.0:User"

ACME_TOML = f"""
[[schema_extensions]]
resource_type = "User"
[schema_extensions.schema]
id = "{ACME}"
name = "AcmeUser"
description = "Acme badge data"
attributes = [
  {{ name = "badgeNumber", type = "string", caseExact = true }},
  {{ name = "clearance", type = "integer" }},
  {{ name = "badgeIssued", type = "dateTime" }},
]
"""


async def test_service_provider_config_tells_what_is_implemented(scim):
    config = await scim.json("GET", "/ServiceProviderConfig")
    assert config["patch"]["supported"] is True
    assert config["etag"]["supported"] is True
    assert config["changePassword"]["supported"] is True
    assert config["bulk"] == {"supported": True, "maxOperations": 1000, "maxPayloadSize": 1048576}
    assert config["filter"] == {"supported": True, "maxResults": 1000}
    assert config["sort"]["supported"] is True
    assert config["pagination"]["cursor"] is True and config["pagination"]["maxPageSize"] == 1000


async def test_schemas_and_resource_types(scim):
    schemas = await scim.json("GET", "/Schemas")
    ids = [s["id"] for s in schemas["Resources"]]
    assert ids == [
        "urn:ietf:params:scim:schemas:core:2.0:User",
        "urn:ietf:params:scim:schemas:core:2.0:Group",
        ENTERPRISE,
    ]
    assert schemas["totalResults"] == 3
    user = await scim.json("GET", "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User")
    attributes = {a["name"]: a for a in user["attributes"]}
    assert attributes["userName"]["uniqueness"] == "server" and attributes["userName"]["required"] is True
    assert attributes["password"]["returned"] == "never" and attributes["password"]["mutability"] == "writeOnly"
    assert attributes["groups"]["mutability"] == "readOnly"
    assert user["meta"]["location"].endswith("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User")

    types = await scim.json("GET", "/ResourceTypes")
    assert [t["name"] for t in types["Resources"]] == ["User", "Group"]
    user_type = await scim.json("GET", "/ResourceTypes/User")
    assert user_type["schemaExtensions"] == [{"schema": ENTERPRISE, "required": False}]
    assert user_type["endpoint"] == "/Users"
    await scim.json("GET", "/ResourceTypes/Nope", expect=404)
    await scim.json("GET", "/Schemas/urn:nope", expect=404)
    await scim.json("GET", "/Schemas?filter=id+eq+%22x%22", expect=403)


async def test_extension_declared_in_toml(aiohttp_client, storage_url):
    config = {**make_config(storage_url), **tomllib.loads(ACME_TOML)}
    app = create_app(config)
    client = await aiohttp_client(app)
    scim = ScimClient(client, "demo", await app[HOST].issue_token("demo"))

    schemas = await scim.json("GET", "/Schemas")
    assert ACME in [s["id"] for s in schemas["Resources"]]
    acme = await scim.json("GET", f"/Schemas/{ACME}")
    assert [a["name"] for a in acme["attributes"]] == ["badgeNumber", "clearance", "badgeIssued"]
    assert acme["attributes"][0]["caseExact"] is True
    user_type = await scim.json("GET", "/ResourceTypes/User")
    assert {"schema": ACME, "required": False} in user_type["schemaExtensions"]

    # validated
    error = await scim.json("POST", "/Users", {"userName": "u", ACME: {"clearance": "top"}}, expect=400)
    assert error["scimType"] == "invalidValue" and "clearance" in error["detail"]
    user = await scim.create_user("u", **{ACME: {"badgeNumber": "B-1", "clearance": 3, "unknown": 1}})
    assert user[ACME] == {"badgeNumber": "B-1", "clearance": 3}
    assert ACME in user["schemas"]

    # patchable by URN-qualified paths, with and without a path
    patched = await scim.json(
        "PATCH",
        f"/Users/{user['id']}",
        patch_op(
            {"op": "replace", "path": f"{ACME}:clearance", "value": 5},
            {"op": "add", "value": {f"{ACME}:badgeIssued": "2024-05-01T12:00:00Z"}},
            {"op": "remove", "path": f"{ACME}:badgeNumber"},
        ),
    )
    assert patched[ACME] == {"clearance": 5, "badgeIssued": "2024-05-01T12:00:00Z"}
    error = await scim.json(
        "PATCH",
        f"/Users/{user['id']}",
        patch_op({"op": "replace", "path": f"{ACME}:clearance", "value": "x"}),
        expect=400,
    )
    assert error["scimType"] == "invalidValue"
    # and projected by URN
    only = await scim.json("GET", f"/Users/{user['id']}?attributes={ACME}:clearance")
    assert only[ACME] == {"clearance": 5}


async def test_extension_from_a_json_file_and_per_source_selection(tmp_path, aiohttp_client, storage_url):
    schema = tomllib.loads(ACME_TOML)["schema_extensions"][0]["schema"]
    (tmp_path / "acme.json").write_text(json.dumps(schema))
    config = make_config(
        storage_url,
        [
            {"slug": "demo", "name": "Demo"},
            {"slug": "plain", "name": "Plain", "extensions": []},
            {"slug": "acmeonly", "name": "Acme only", "extensions": [ACME]},
        ],
    )
    config["schema_extensions"] = [{"resource_type": "User", "file": "acme.json"}]
    # The file path is relative to the config file's folder.
    config_file = tmp_path / "scimhost.toml"
    config_file.write_text(_as_toml(config))
    app = create_app(config_file)
    client = await aiohttp_client(app)
    urns = {}
    for slug in ("demo", "plain", "acmeonly"):
        scim = ScimClient(client, slug, await app[HOST].issue_token(slug))
        urns[slug] = [s["id"] for s in (await scim.json("GET", "/Schemas"))["Resources"]]
    assert ACME in urns["demo"] and ENTERPRISE in urns["demo"]
    assert ACME not in urns["plain"] and ENTERPRISE not in urns["plain"]
    assert ACME in urns["acmeonly"] and ENTERPRISE not in urns["acmeonly"]


def _as_toml(config: dict) -> str:
    lines = [f'[storage.tortoise]\nurl = "{config["storage"]["tortoise"]["url"]}"']
    for source in config["sources"]:
        lines.append(f'[[sources]]\nslug = "{source["slug"]}"\nname = "{source["name"]}"')
        if "extensions" in source:
            lines.append("extensions = " + json.dumps(source["extensions"]))
    for extension in config["schema_extensions"]:
        lines.append(
            f'[[schema_extensions]]\nresource_type = "{extension["resource_type"]}"\nfile = "{extension["file"]}"'
        )
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "extension, message",
    [
        ({"resource_type": "User"}, "schema_extensions[0].file: give exactly one of file and schema"),
        ({"resource_type": "User", "file": "missing.json"}, "schema_extensions[0].file: cannot read"),
        ({"resource_type": "User", "schema": {"id": "not-a-urn", "attributes": []}}, "schema_extensions[0].schema.id"),
        (
            {"resource_type": "User", "schema": {"id": ACME, "attributes": [{"name": "x", "type": "float"}]}},
            "schema_extensions[0].schema.attributes[0] (x).type",
        ),
        (
            {"resource_type": "User", "schema": {"id": ACME, "attributes": [{"name": "x", "mutable": True}]}},
            "schema_extensions[0].schema.attributes[0].mutable: unknown attribute characteristic",
        ),
    ],
)
def test_broken_extension_declarations_name_the_key(tmp_path, extension, message):
    config = make_config(f"sqlite://{tmp_path}/db.sqlite3")
    config["schema_extensions"] = [extension]
    with pytest.raises(ConfigError) as excinfo:
        load_host(config)
    assert message in str(excinfo.value)


def test_extension_on_a_missing_resource_type_or_unknown_urn_is_an_error(tmp_path):
    config = make_config(f"sqlite://{tmp_path}/db.sqlite3", [{"slug": "s", "name": "S", "extensions": ["urn:nope:x"]}])
    with pytest.raises(ConfigError, match="sources\\[0\\].extensions: no schema extension"):
        load_host(config)
    config = make_config(f"sqlite://{tmp_path}/db.sqlite3")
    config["schema_extensions"] = [{"resource_type": "Device", "schema": {"id": ACME, "attributes": []}}]
    with pytest.raises(Exception, match="resource type 'Device'"):
        load_host(config)


async def test_extension_attribute_uniqueness_is_enforced(aiohttp_client, storage_url):
    config = make_config(storage_url)
    config["schema_extensions"] = [
        {
            "resource_type": "User",
            "schema": {"id": ACME, "attributes": [{"name": "badgeNumber", "uniqueness": "server"}]},
        }
    ]
    app = create_app(config)
    client = await aiohttp_client(app)
    scim = ScimClient(client, "demo", await app[HOST].issue_token("demo"))
    await scim.create_user("a", **{ACME: {"badgeNumber": "B-1"}})
    error = await scim.json("POST", "/Users", {"userName": "b", ACME: {"badgeNumber": "b-1"}}, expect=409)
    assert error["scimType"] == "uniqueness" and "badgeNumber" in error["detail"]
    await scim.create_user("b", **{ACME: {"badgeNumber": "B-2"}})
