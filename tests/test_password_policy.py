"""A source's password policy on every write path (POST, PUT, PATCH, Bulk): "hash" keeps a
one-way hash, "refuse" answers 400 invalidValue and stores nothing, "drop" stores no password;
refused or dropped, `password` is not in the source's User schema nor changePassword supported."""

from __future__ import annotations

import logging

import pytest
from helpers import ScimClient, make_config, patch_op, stored_rows

from scimhost.app import create_app
from scimhost.http.keys import HOST
from scimhost.passwords import verify_password

USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


async def source_with(aiohttp_client, storage_url, policy: str):
    config = make_config(storage_url, sources=[{"slug": "demo", "name": "Demo", "passwords": policy}])
    client = await aiohttp_client(create_app(config))
    scim = ScimClient(client, "demo", await client.app[HOST].issue_token("demo"))
    return client, scim


async def stored_hash(client, user_id: str):
    [row] = await stored_rows(
        client.app[HOST].storage, "SELECT password_hash FROM scimhost_resource WHERE id = {}", user_id
    )
    return row["password_hash"]


async def writes(scim, expect: int, user_id: str) -> list[dict]:
    """The four write paths, each carrying a password; their responses' bodies."""
    answers = [
        await scim.json(
            "POST", "/Users", {"userName": "posted", "password": "p0st"}, expect=201 if expect < 400 else expect
        ),
        await scim.json(
            "PUT", f"/Users/{user_id}", {"userName": "base", "password": "pu7"}, expect=200 if expect < 400 else expect
        ),
        await scim.json(
            "PATCH",
            f"/Users/{user_id}",
            patch_op({"op": "replace", "path": "password", "value": "pa7ch"}),
            expect=200 if expect < 400 else expect,
        ),
    ]
    bulk = await scim.json(
        "POST",
        "/Bulk",
        {
            "schemas": [BULK],
            "Operations": [
                {"method": "POST", "path": "/Users", "bulkId": "b", "data": {"userName": "bulked", "password": "bu1k"}},
                {
                    "method": "PATCH",
                    "path": f"/Users/{user_id}",
                    "data": patch_op({"op": "add", "path": "password", "value": "bu1k2"}),
                },
            ],
        },
    )
    answers.append(bulk)
    return answers


async def test_hash_keeps_a_one_way_hash_on_every_write_path(aiohttp_client, storage_url):
    client, scim = await source_with(aiohttp_client, storage_url, "hash")
    user = await scim.create_user("base")
    *_, bulk = await writes(scim, 200, user["id"])
    assert [op["status"] for op in bulk["Operations"]] == ["201", "200"]
    assert verify_password("bu1k2", await stored_hash(client, user["id"]))
    posted = await scim.json("GET", '/Users?filter=userName eq "posted"')
    assert verify_password("p0st", await stored_hash(client, posted["Resources"][0]["id"]))
    schema = await scim.json("GET", f"/Schemas/{USER_URN}")
    assert "password" in [a["name"] for a in schema["attributes"]]
    assert (await scim.json("GET", "/ServiceProviderConfig"))["changePassword"]["supported"] is True


async def test_refuse_answers_invalid_value_and_stores_nothing(aiohttp_client, storage_url):
    client, scim = await source_with(aiohttp_client, storage_url, "refuse")
    user = await scim.create_user("base", title="unchanged")
    for answer in (await writes(scim, 400, user["id"]))[:3]:
        assert answer["scimType"] == "invalidValue" and "password" in answer["detail"]
    bulk = (await writes(scim, 400, user["id"]))[3]
    assert [(op["status"], op["response"]["scimType"]) for op in bulk["Operations"]] == [
        ("400", "invalidValue"),
        ("400", "invalidValue"),
    ]
    # Read back: nothing was created, the user is as it was.
    listed = await scim.json("GET", "/Users")
    assert [u["userName"] for u in listed["Resources"]] == ["base"]
    assert listed["Resources"][0]["meta"]["version"] == user["meta"]["version"]
    assert listed["Resources"][0]["title"] == "unchanged"
    assert await stored_hash(client, user["id"]) is None
    # A write without a password goes through.
    await scim.json("PUT", f"/Users/{user['id']}", {"userName": "base", "title": "fine"})
    schema = await scim.json("GET", f"/Schemas/{USER_URN}")
    assert "password" not in [a["name"] for a in schema["attributes"]]
    assert (await scim.json("GET", "/ServiceProviderConfig"))["changePassword"]["supported"] is False


async def test_drop_stores_no_password_and_says_so_at_info(aiohttp_client, storage_url, caplog):
    client, scim = await source_with(aiohttp_client, storage_url, "drop")
    user = await scim.create_user("base")
    with caplog.at_level(logging.INFO, logger="scimhost.resource_service"):
        *_, bulk = await writes(scim, 200, user["id"])
    assert [op["status"] for op in bulk["Operations"]] == ["201", "200"]
    assert await stored_hash(client, user["id"]) is None
    posted = await scim.json("GET", '/Users?filter=userName eq "posted"')
    assert await stored_hash(client, posted["Resources"][0]["id"]) is None
    dropped = [r for r in caplog.records if "password was dropped" in r.getMessage()]
    assert len(dropped) == 5 and all("p0st" not in r.getMessage() for r in dropped)
    schema = await scim.json("GET", f"/Schemas/{USER_URN}")
    assert "password" not in [a["name"] for a in schema["attributes"]]


def test_an_unknown_policy_is_a_config_error(tmp_path):
    from scimhost.config import ConfigError
    from scimhost.host import load_host

    config = make_config(
        f"sqlite://{tmp_path}/db.sqlite3", sources=[{"slug": "demo", "name": "D", "passwords": "plain"}]
    )
    with pytest.raises(ConfigError, match="passwords: must be one of hash, refuse, drop"):
        load_host(config)
