"""Bad input gets a SCIM error with the right status and scimType, and the store is unchanged."""

from __future__ import annotations

import pytest
from helpers import make_config, patch_op, snapshot

from scimhost.app import create_app


@pytest.mark.parametrize(
    "body, status, scim_type",
    [
        (b"{not json", 400, "invalidSyntax"),
        (b"", 400, "invalidSyntax"),
        (b"[1, 2]", 400, "invalidSyntax"),
        (b'"just a string"', 400, "invalidSyntax"),
        (b'{"userName": 42}', 400, "invalidValue"),
        (b'{"userName": "x", "active": "maybe"}', 400, "invalidValue"),
        (b'{"userName": "x", "emails": "a@x"}', 400, "invalidValue"),
        (b'{"userName": "x", "emails": [{"value": "a", "type": "nonsense"}]}', 400, "invalidValue"),
        (b'{"userName": "x", "name": "Barbara"}', 400, "invalidValue"),
        (b'{"userName": "x", "x509Certificates": [{"value": "not base64!"}]}', 400, "invalidValue"),
        (b'{"userName": "x", "schemas": "urn:x"}', 400, "invalidValue"),
        (b'{"userName": "x", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": []}', 400, "invalidValue"),
        (b"[" * 5000 + b"]" * 5000, 400, "invalidSyntax"),
    ],
)
async def test_bad_create_bodies(seeded, body, status, scim_type):
    scim, _, _ = seeded
    before = await snapshot(scim)
    response = await scim.request("POST", "/Users", body, headers={"Content-Type": "application/scim+json"})
    error = await response.json(content_type=None)
    assert response.status == status, error
    assert error["scimType"] == scim_type and error["status"] == str(status)
    assert await snapshot(scim) == before


async def test_deeply_nested_unknown_attribute_is_refused_naming_it(seeded):
    """Undeclared attributes are kept as sent, nested at most 16 levels deep."""
    scim, _, _ = seeded
    before = await snapshot(scim)
    nested = b'{"userName": "deep", "junk": ' + b'{"a": ' * 500 + b"1" + b"}" * 500 + b"}"
    response = await scim.request("POST", "/Users", nested)
    error = await response.json(content_type=None)
    assert (response.status, error["scimType"]) == (400, "invalidValue") and "'junk'" in error["detail"]
    assert await snapshot(scim) == before
    shallow = b'{"userName": "shallow", "junk": ' + b'{"a": ' * 15 + b"1" + b"}" * 15 + b"}"
    assert (await scim.request("POST", "/Users", shallow)).status == 201


async def test_bad_content_type_is_415(seeded):
    scim, _, _ = seeded
    before = await snapshot(scim)
    response = await scim.request(
        "POST", "/Users", b"userName=x", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status == 415
    assert await snapshot(scim) == before


async def test_json_without_content_type_or_with_charset_is_accepted(seeded):
    scim, _, _ = seeded
    response = await scim.client.post(
        scim.base + "/Users", data=b'{"userName": "plain"}', headers=scim.headers, skip_auto_headers=["Content-Type"]
    )
    assert response.status == 201
    response = await scim.request(
        "POST", "/Users", b'{"userName": "cs"}', headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert response.status == 201


@pytest.mark.parametrize(
    "body, status, scim_type",
    [
        ({"Operations": "add"}, 400, "invalidSyntax"),
        (
            {"schemas": ["urn:wrong"], "Operations": [{"op": "add", "path": "title", "value": "x"}]},
            400,
            "invalidSyntax",
        ),
        (patch_op("not an object"), 400, "invalidSyntax"),
        (patch_op({"op": "add", "path": "title"}), 400, "invalidValue"),
        (patch_op({"op": "add", "path": 5, "value": "x"}), 400, "invalidPath"),
        (
            patch_op(
                {"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:nosuch", "value": "x"}
            ),
            400,
            "invalidPath",
        ),
        (patch_op({"op": "remove", "path": "urn:nope:attr"}), 400, "noTarget"),
        (patch_op({"op": "add", "path": "name.nosuch", "value": "x"}), 400, "invalidPath"),
        (patch_op({"op": "add", "path": "emails[value pr", "value": "x"}), 400, "invalidPath"),
        (patch_op({"op": "replace", "path": "userName", "value": 7}), 400, "invalidValue"),
        (patch_op({"op": "remove", "path": "userName"}), 400, "invalidValue"),
    ],
)
async def test_bad_patches(seeded, body, status, scim_type):
    scim, user, _ = seeded
    before = await snapshot(scim)
    error = await scim.json("PATCH", f"/Users/{user['id']}", body, expect=status)
    assert error.get("scimType") == scim_type, error
    assert await snapshot(scim) == before


async def test_patch_with_ten_thousand_operations_is_refused(seeded):
    scim, user, _ = seeded
    before = await snapshot(scim)
    body = patch_op(*({"op": "add", "path": "title", "value": str(i)} for i in range(10_000)))
    error = await scim.json("PATCH", f"/Users/{user['id']}", body, expect=413)
    assert "10000 operations" in error["detail"]
    assert await snapshot(scim) == before


async def test_unknown_ids(seeded):
    scim, _, _ = seeded
    before = await snapshot(scim)
    for method, body in (
        ("GET", None),
        ("PUT", {"userName": "x"}),
        ("PATCH", patch_op({"op": "add", "path": "title", "value": "x"})),
        ("DELETE", None),
    ):
        error = await scim.json(method, "/Users/00000000-0000-0000-0000-000000000000", body, expect=404)
        assert error["status"] == "404"
    await scim.json("GET", "/Users/" + "x" * 3000, expect=404)
    assert await snapshot(scim) == before


async def test_huge_body_is_413_and_changes_nothing(aiohttp_client, storage_url):
    from helpers import ScimClient

    from scimhost.http.keys import HOST

    app = create_app(make_config(storage_url, max_body_bytes=4096))
    client = await aiohttp_client(app)
    scim = ScimClient(client, "demo", await app[HOST].issue_token("demo"))
    user = await scim.create_user("u")
    big = {"userName": "x", "title": "t" * 10_000}
    error = await scim.json("POST", "/Users", big, expect=413)
    assert error["status"] == "413"

    async def chunks():
        yield b'{"userName": "y", "title": "'
        for _ in range(10):
            yield b"t" * 1000
        yield b'"}'

    response = await client.post(
        scim.base + "/Users", data=chunks(), headers={**scim.headers, "Content-Type": "application/scim+json"}
    )
    assert response.status == 413
    assert (await scim.json("GET", "/Users"))["Resources"] == [user]


async def test_bad_paging_and_filter_parameters(seeded):
    scim, _, _ = seeded
    error = await scim.json("GET", "/Users?startIndex=abc", expect=400)
    assert error["scimType"] == "invalidValue"
    await scim.json("GET", "/Users?count=-5", expect=200)
