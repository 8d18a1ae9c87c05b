"""Bulk (RFC 7644 §3.7): bulkId references in any order, cycles, failOnErrors, limits."""

from __future__ import annotations

from helpers import ScimClient, make_config, patch_op

from scimhost.app import create_app
from scimhost.http.keys import HOST

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


def bulk(*operations, **fields):
    return {"schemas": [BULK], "Operations": list(operations), **fields}


async def test_group_created_before_the_users_it_references(scim):
    response = await scim.json(
        "POST",
        "/Bulk",
        bulk(
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "g1",
                "data": {"displayName": "Tour Guides", "members": [{"value": "bulkId:u1"}, {"value": "bulkId:u2"}]},
            },
            {"method": "POST", "path": "/Users", "bulkId": "u1", "data": {"userName": "alice"}},
            {"method": "POST", "path": "/Users", "bulkId": "u2", "data": {"userName": "bob"}},
            {
                "method": "PATCH",
                "path": "/Users/bulkId:u1",
                "data": patch_op({"op": "add", "path": "title", "value": "Guide"}),
            },
        ),
    )
    assert response["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:BulkResponse"]
    results = response["Operations"]
    assert [r["status"] for r in results] == ["201", "201", "201", "200"]
    assert [r.get("bulkId") for r in results] == ["g1", "u1", "u2", None]
    group = await scim.json("GET", results[0]["location"].split("/v2")[1])
    alice = await scim.json("GET", results[1]["location"].split("/v2")[1])
    assert sorted(m["display"] for m in group["members"]) == ["alice", "bob"]
    assert alice["title"] == "Guide" and results[3]["version"] == alice["meta"]["version"]


async def test_circular_and_unknown_references_fail_with_409(scim):
    response = await scim.json(
        "POST",
        "/Bulk",
        bulk(
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "a",
                "data": {"displayName": "A", "members": [{"value": "bulkId:b"}]},
            },
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "b",
                "data": {"displayName": "B", "members": [{"value": "bulkId:a"}]},
            },
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "c",
                "data": {"displayName": "C", "members": [{"value": "bulkId:nope"}]},
            },
            {"method": "POST", "path": "/Users", "bulkId": "ok", "data": {"userName": "fine"}},
        ),
    )
    statuses = {r["bulkId"]: r["status"] for r in response["Operations"]}
    assert statuses == {"a": "409", "b": "409", "c": "409", "ok": "201"}
    assert (await scim.json("GET", "/Groups"))["totalResults"] == 0


async def test_each_operation_is_atomic_and_errors_are_reported(scim):
    existing = await scim.create_user("taken")
    response = await scim.json(
        "POST",
        "/Bulk",
        bulk(
            {"method": "POST", "path": "/Users", "bulkId": "dup", "data": {"userName": "TAKEN"}},
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "g",
                "data": {"displayName": "G", "members": [{"value": "bulkId:dup"}]},
            },
            {"method": "PUT", "path": f"/Users/{existing['id']}", "version": 'W/"9"', "data": {"userName": "x"}},
            {"method": "DELETE", "path": "/Users/00000000-0000-0000-0000-000000000000"},
            {"method": "DELETE", "path": f"/Users/{existing['id']}", "version": existing["meta"]["version"]},
            {"method": "POST", "path": "/Nothing", "bulkId": "n", "data": {}},
        ),
    )
    results = response["Operations"]
    assert [r["status"] for r in results] == ["409", "409", "412", "404", "204", "404"]
    assert results[0]["response"]["scimType"] == "uniqueness"
    assert (await scim.json("GET", "/Users"))["totalResults"] == 0
    assert (await scim.json("GET", "/Groups"))["totalResults"] == 0


async def test_fail_on_errors_stops_processing(scim):
    response = await scim.json(
        "POST",
        "/Bulk",
        bulk(
            {"method": "POST", "path": "/Users", "bulkId": "1", "data": {"name": {}}},
            {"method": "POST", "path": "/Users", "bulkId": "2", "data": {"name": {}}},
            {"method": "POST", "path": "/Users", "bulkId": "3", "data": {"userName": "never"}},
            failOnErrors=2,
        ),
    )
    assert [r["status"] for r in response["Operations"]] == ["400", "400"]
    assert (await scim.json("GET", "/Users"))["totalResults"] == 0


async def test_bulk_limits(aiohttp_client, storage_url):
    config = make_config(storage_url, max_body_bytes=2048)
    config["limits"] = {"max_bulk_operations": 2}
    app = create_app(config)
    client = await aiohttp_client(app)
    scim = ScimClient(client, "demo", await app[HOST].issue_token("demo"))
    ops = [{"method": "POST", "path": "/Users", "bulkId": str(i), "data": {"userName": f"u{i}"}} for i in range(3)]
    error = await scim.json("POST", "/Bulk", bulk(*ops), expect=413)
    assert "at most 2" in error["detail"]
    big = [{"method": "POST", "path": "/Users", "bulkId": "1", "data": {"userName": "x" * 3000}}]
    await scim.json("POST", "/Bulk", bulk(*big), expect=413)
    spc = await scim.json("GET", "/ServiceProviderConfig")
    assert spc["bulk"] == {"supported": True, "maxOperations": 2, "maxPayloadSize": 2048}
    for body in (
        {"Operations": []},
        {"schemas": ["urn:x"], "Operations": ops[:1]},
        bulk({"method": "GET", "path": "/Users"}),
        bulk({"method": "POST", "path": "/Users", "data": {}}),
        bulk(
            {"method": "POST", "path": "/Users", "bulkId": "a", "data": {}},
            {"method": "POST", "path": "/Users", "bulkId": "a", "data": {}},
        ),
    ):
        error = await scim.json("POST", "/Bulk", body, expect=400)
        assert error["scimType"] == "invalidSyntax"
    assert (await scim.json("GET", "/Users"))["totalResults"] == 0


async def test_a_storage_failure_is_one_operations_result(scim, monkeypatch):
    """Operations before and after a failing one keep their committed results."""
    from scimhost.storage.backend import StorageError

    storage = scim.client.app[HOST].storage
    victim = await scim.create_user("victim")
    original = storage.update_resource

    async def failing(source, resource_type, resource_id, **kwargs):
        if resource_id == victim["id"]:
            raise StorageError("the disk is full")
        return await original(source, resource_type, resource_id, **kwargs)

    monkeypatch.setattr(storage, "update_resource", failing)
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "a", "data": {"userName": "before"}},
            {
                "method": "PATCH",
                "path": f"/Users/{victim['id']}",
                "data": {
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "path": "title", "value": "x"}],
                },
            },
            {"method": "POST", "path": "/Users", "bulkId": "b", "data": {"userName": "after"}},
        ],
    }
    result = await scim.json("POST", "/Bulk", body)
    assert [r["status"] for r in result["Operations"]] == ["201", "503", "201"]
    assert result["Operations"][1]["response"]["status"] == "503"
    names = sorted(u["userName"] for u in (await scim.json("GET", "/Users"))["Resources"])
    assert names == ["after", "before", "victim"]
