"""OneLogin, JumpCloud and Google Workspace provisioning cycles."""

from __future__ import annotations

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def ops(*operations):
    return {"schemas": [PATCH], "Operations": list(operations)}


async def test_onelogin_cycle(scim):
    # OneLogin encodes spaces as +, may leave a trailing & or ?, and sends unknown parameters
    user = await scim.json("POST", "/Users", {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "jdoe@onelogin.example",
        "name": {"givenName": "John", "familyName": "Doe"}, "emails": [{"value": "jdoe@onelogin.example", "primary": True}],
        "externalId": "12345", "active": True, "groups": [{"$ref": None, "value": "x"}],
    }, expect=201)
    for query in ("?filter=userName+eq+%22jdoe%40onelogin.example%22&", "?filter=externalId+eq+%2212345%22&sortOrder=ascending&foo=bar"):
        assert (await scim.json("GET", "/Users" + query))["totalResults"] == 1
    assert (await scim.json("GET", "/Users?"))["totalResults"] == 1
    # updates by PUT, with nulls for cleared attributes
    await scim.json("PUT", f"/Users/{user['id']}", {"userName": "jdoe@onelogin.example", "title": None, "active": False, "nickName": None})
    assert (await scim.json("GET", f"/Users/{user['id']}"))["active"] is False
    group = await scim.json("POST", "/Groups", {"displayName": "OneLogin Role", "members": [{"value": user["id"], "$ref": None}]}, expect=201)
    await scim.json("PATCH", f"/Groups/{group['id']}", ops({"op": "remove", "path": "members", "value": [{"value": user["id"]}]}), expect=204)
    await scim.json("DELETE", f"/Users/{user['id']}", expect=204)


async def test_jumpcloud_cycle(scim):
    # JumpCloud replays membership changes: adding a present member, removing an absent one and
    # renaming to the same name all succeed
    alice = await scim.create_user("alice@jc.example")
    bob = await scim.create_user("bob@jc.example")
    group = await scim.json("POST", "/Groups", {"displayName": "jc-group", "members": [{"value": alice["id"]}]}, expect=201)
    gid = group["id"]
    for _ in range(2):
        await scim.json("PATCH", f"/Groups/{gid}", ops({"op": "add", "path": "members", "value": [{"value": alice["id"]}]}), expect=204)
        await scim.json("PATCH", f"/Groups/{gid}", ops({"op": "remove", "path": f'members[value eq "{bob["id"]}"]'}), expect=204)
        await scim.json("PATCH", f"/Groups/{gid}", ops({"op": "replace", "path": "displayName", "value": "jc-group"}), expect=204)
    assert [m["value"] for m in (await scim.json("GET", f"/Groups/{gid}"))["members"]] == [alice["id"]]
    await scim.json("PATCH", f"/Users/{bob['id']}", ops({"op": "replace", "path": "active", "value": False}))
    await scim.json("DELETE", f"/Groups/{gid}", expect=204)


async def test_google_workspace_cycle(scim):
    # Google Workspace looks users up by userName, creates, updates with PATCH replace and deletes
    assert (await scim.json("GET", '/Users?filter=userName eq "ada@gw.example"'))["totalResults"] == 0
    user = await scim.json("POST", "/Users", {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ada@gw.example",
        "name": {"givenName": "Ada", "familyName": "Lovelace"}, "active": True,
        "emails": [{"value": "ada@gw.example", "type": "work", "primary": True}],
    }, expect=201)
    await scim.json("PATCH", f"/Users/{user['id']}", ops(
        {"op": "replace", "path": "name.familyName", "value": "King"},
        {"op": "replace", "path": "active", "value": False},
    ))
    current = await scim.json("GET", f"/Users/{user['id']}")
    assert current["name"]["familyName"] == "King" and current["active"] is False
    await scim.json("DELETE", f"/Users/{user['id']}", expect=204)
    assert (await scim.json("GET", '/Users?filter=userName eq "ada@gw.example"'))["totalResults"] == 0
